//! Text analysis shared by queries and papers, so both sides see the same words: Unicode
//! compatibility normalisation, case folding, diacritics stripped, split at every character
//! that is not a letter or digit, and English (Porter2) stemming for title and abstract.

use std::ops::Range;
use std::sync::OnceLock;

use rust_stemmers::{Algorithm, Stemmer};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::{decompose_compatible, is_combining_mark};

/// One word of a text: its normalised (unstemmed) form and where it stands in the
/// original text, in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub text: String,
    pub span: Range<usize>,
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || is_combining_mark(c)
}

/// Splits `text` into normalised words with their byte spans in `text`.
pub fn tokenize(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        if c.is_ascii_alphanumeric() {
            start.get_or_insert(i);
            word.push(c.to_ascii_lowercase());
        } else if is_word_char(c) {
            start.get_or_insert(i);
            // Compatibility decomposition, then drop the marks: `é` → `e`, `ﬁ` → `fi`.
            decompose_compatible(c, |d| {
                if !is_combining_mark(d) {
                    word.extend(d.to_lowercase());
                }
            });
        } else if let Some(s) = start.take() {
            push_word(&mut tokens, &mut word, s..i);
        }
    }
    if let Some(s) = start {
        push_word(&mut tokens, &mut word, s..text.len());
    }
    tokens
}

fn push_word(tokens: &mut Vec<Token>, word: &mut String, span: Range<usize>) {
    // A decomposition can leave non-word characters (`½` → `1⁄2`); split on them too.
    let composed: String = if word.is_ascii() {
        word.clone()
    } else {
        word.nfc().collect()
    };
    word.clear();
    let mut parts = composed
        .split(|c: char| !is_word_char(c))
        .filter(|p| !p.is_empty());
    if let Some(first) = parts.next() {
        tokens.push(Token {
            text: first.to_string(),
            span: span.clone(),
        });
        for part in parts {
            tokens.push(Token {
                text: part.to_string(),
                span: span.clone(),
            });
        }
    }
}

/// The normalised words of `text`, without spans.
pub fn words(text: &str) -> Vec<String> {
    tokenize(text).into_iter().map(|t| t.text).collect()
}

/// The normalised words of a person's name in reading order: a name written
/// "Last, First" ("Smith, John", "García Márquez, Gabriel José", "Lapalu, N.") reads as
/// "First Last", so `author:"john smith"` finds it. A comma before a suffix
/// ("King, Jr.") is not such a name.
pub fn name_words(name: &str) -> Vec<String> {
    const SUFFIXES: [&str; 7] = ["jr", "sr", "ii", "iii", "iv", "phd", "md"];
    let Some((last, first)) = name.split_once(',') else {
        return words(name);
    };
    let first_words = words(first);
    let is_suffix = first_words.len() == 1 && SUFFIXES.contains(&first_words[0].as_str());
    if first.contains(',') || first_words.is_empty() || is_suffix {
        return words(name);
    }
    let mut all = first_words;
    all.extend(words(last));
    all
}

/// Porter2 (English) stem of a normalised word.
pub fn stem(word: &str) -> String {
    static STEMMER: OnceLock<Stemmer> = OnceLock::new();
    STEMMER
        .get_or_init(|| Stemmer::create(Algorithm::English))
        .stem(word)
        .into_owned()
}

/// A category as compared: trimmed, NFKC, lowercase (`cs.LG` → `cs.lg`).
pub fn category(raw: &str) -> String {
    raw.trim().nfkc().collect::<String>().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn a_name_keeps_its_words_in_any_order(name in "\\PC{0,40}") {
            let mut reordered = name_words(&name);
            let mut plain = words(&name);
            reordered.sort();
            plain.sort();
            proptest::prop_assert_eq!(reordered, plain);
        }
    }

    #[test]
    fn last_comma_first_names_read_first_last() {
        assert_eq!(name_words("Smith, John"), ["john", "smith"]);
        assert_eq!(
            name_words("García Márquez, Gabriel José"),
            words("Gabriel José García Márquez")
        );
        assert_eq!(name_words("John Smith"), ["john", "smith"]);
        assert_eq!(name_words("King, Jr."), words("King, Jr."));
        assert_eq!(
            name_words("Johnson and Johnson Research"),
            words("Johnson and Johnson Research")
        );
    }

    #[test]
    fn words_are_folded_stripped_and_split() {
        assert_eq!(words("Control-Variate"), ["control", "variate"]);
        assert_eq!(
            words("Café NAÏVE Ｆｕｌｌ ﬁne"),
            ["cafe", "naive", "full", "fine"]
        );
        assert_eq!(words("AstroM$^3$ model"), ["astrom", "3", "model"]);
        assert_eq!(words("e\u{301}cole"), ["ecole"]);
        assert_eq!(words("Σ-β"), ["σ", "β"]);
        assert_eq!(words("  ...  "), Vec::<String>::new());
    }

    #[test]
    fn spans_point_into_the_original_text() {
        let text = "Über Diffusion-Models";
        let tokens = tokenize(text);
        assert_eq!(tokens[0].text, "uber");
        assert_eq!(&text[tokens[0].span.clone()], "Über");
        assert_eq!(&text[tokens[2].span.clone()], "Models");
    }

    #[test]
    fn stems_join_inflections() {
        assert_eq!(stem("variates"), stem("variate"));
        assert_eq!(stem("diffusion"), "diffus");
        assert_eq!(stem("models"), stem("model"));
    }
}
