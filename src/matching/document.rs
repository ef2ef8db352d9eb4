//! A paper analysed for matching: the words of each field, stemmed and surface forms,
//! with their spans in the original text, plus position maps for fast verification.

use std::collections::HashMap;
use std::ops::Range;

use crate::domain::Paper;
use crate::domain::analysis::{category, name_words, stem, tokenize};
use crate::domain::query::Field;

/// The analysed words of a title or an abstract.
#[derive(Debug, Clone, Default)]
pub struct TextField {
    /// Porter2 stems, one per word, in order.
    pub stems: Vec<String>,
    /// Normalised unstemmed words (for prefixes), one per word.
    pub surface: Vec<String>,
    /// Byte range of each word in the original text.
    pub spans: Vec<Range<usize>>,
    /// Where each stem occurs.
    positions: HashMap<String, Vec<u32>>,
}

impl TextField {
    pub fn new(text: &str) -> Self {
        let tokens = tokenize(text);
        let mut field = TextField {
            stems: Vec::with_capacity(tokens.len()),
            surface: Vec::with_capacity(tokens.len()),
            spans: Vec::with_capacity(tokens.len()),
            positions: HashMap::with_capacity(tokens.len()),
        };
        for (i, token) in tokens.into_iter().enumerate() {
            let s = stem(&token.text);
            field.positions.entry(s.clone()).or_default().push(i as u32);
            field.stems.push(s);
            field.surface.push(token.text);
            field.spans.push(token.span);
        }
        field
    }

    /// Positions where `stem` occurs (empty when it does not).
    pub fn positions(&self, stem: &str) -> &[u32] {
        self.positions.get(stem).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Start positions of the stems `phrase` in a row.
    pub fn phrase_starts(&self, phrase: &[String]) -> Vec<u32> {
        let Some(first) = phrase.first() else {
            return Vec::new();
        };
        self.positions(first)
            .iter()
            .copied()
            .filter(|&p| {
                let p = p as usize;
                p + phrase.len() <= self.stems.len()
                    && phrase
                        .iter()
                        .enumerate()
                        .all(|(k, w)| self.stems[p + k] == *w)
            })
            .collect()
    }
}

/// A paper ready to be matched.
#[derive(Debug, Clone, Default)]
pub struct Doc {
    pub title: TextField,
    pub abstract_text: TextField,
    /// The normalised words of each author's name, in reading order (see
    /// [`name_words`]).
    pub authors: Vec<Vec<String>>,
    /// Lowercased categories.
    pub categories: Vec<String>,
}

impl Doc {
    pub fn new(title: &str, abstract_text: &str, authors: &[String], categories: &[String]) -> Doc {
        Doc {
            title: TextField::new(title),
            abstract_text: TextField::new(abstract_text),
            authors: authors.iter().map(|a| name_words(a)).collect(),
            categories: categories.iter().map(|c| category(c)).collect(),
        }
    }

    pub fn from_paper(paper: &Paper) -> Doc {
        Doc::new(
            &paper.title,
            &paper.abstract_text,
            &paper.authors,
            &paper.categories,
        )
    }

    /// The title or abstract; `None` for other fields.
    pub fn text(&self, field: Field) -> Option<&TextField> {
        match field {
            Field::Title => Some(&self.title),
            Field::Abstract => Some(&self.abstract_text),
            _ => None,
        }
    }
}
