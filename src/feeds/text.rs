//! Turning what feeds put in titles and abstracts into clean plain text: HTML stripped,
//! entities decoded, whitespace collapsed. LaTeX is left as written, which is how
//! researchers read it.

use std::collections::HashSet;
use std::sync::OnceLock;

/// Text that the source declares plain: decode stray entities and collapse whitespace.
pub fn plain(text: &str) -> String {
    collapse_whitespace(&html_escape::decode_html_entities(text))
}

/// Text that may hold HTML markup: tags dropped (with the text of `script` and `style`),
/// block boundaries kept as spaces, entities decoded, whitespace collapsed.
pub fn from_html(html: &str) -> String {
    static CLEANER: OnceLock<ammonia::Builder<'static>> = OnceLock::new();
    let cleaner = CLEANER.get_or_init(|| {
        let mut b = ammonia::Builder::empty();
        b.clean_content_tags(HashSet::from(["script", "style"]));
        b
    });
    let spaced = space_blocks(html);
    let stripped = cleaner.clean(&spaced).to_string();
    plain(&stripped)
}

/// Chooses by a declared media type (`text/html`, `html`, `xhtml`, …).
pub fn by_media_type(text: &str, media_type: &str) -> String {
    if media_type.contains("html") {
        from_html(text)
    } else {
        plain(text)
    }
}

/// Markers that bioRxiv and medRxiv leave in API abstracts when converting from JATS XML:
/// section starts and ends, list items, small caps. Block markers become spaces, inline
/// ones vanish.
pub fn strip_jats_markers(text: &str) -> String {
    const BLOCK: [&str; 4] = ["O_ST_ABS", "C_ST_ABS", "C_LI", "O_LI"];
    const INLINE: [&str; 8] = [
        "O_SCPLOW", "C_SCPLOW", "O_SCPCAP", "C_SCPCAP", "O_FIG", "C_FIG", "O_TBL", "C_TBL",
    ];
    let mut s = text.to_string();
    for m in INLINE {
        s = s.replace(m, "");
    }
    for m in BLOCK {
        s = s.replace(m, " ");
    }
    collapse_whitespace(&s)
}

/// Cleans a list of names, dropping the empty ones.
pub fn names(raw: impl IntoIterator<Item = Option<String>>) -> Vec<String> {
    raw.into_iter()
        .flatten()
        .map(|n| plain(&n))
        .filter(|n| !n.is_empty())
        .collect()
}

/// `2026-09-15` as midnight UTC.
pub fn date_utc(raw: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
}

/// Single spaces between words, and no control characters: a NUL would fail the row on
/// PostgreSQL and an escape sequence would reach the operator's terminal.
pub fn collapse_whitespace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word.chars().filter(|c| !c.is_control()));
    }
    out
}

/// An identifier or URL from a feed, without control characters or surrounding space.
pub fn clean_id(raw: &str) -> String {
    raw.trim().chars().filter(|c| !c.is_control()).collect()
}

/// Puts a space before block-level tags so `<p>a</p><p>b</p>` reads `a b`, not `ab`.
fn space_blocks(html: &str) -> String {
    const BLOCKS: [&str; 16] = [
        "p",
        "br",
        "div",
        "li",
        "ul",
        "ol",
        "tr",
        "td",
        "th",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "blockquote",
    ];
    let mut out = String::with_capacity(html.len() + 16);
    let mut rest = html;
    while let Some(pos) = rest.find('<') {
        out.push_str(&rest[..pos]);
        let tag = &rest[pos + 1..];
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_ascii_lowercase();
        if BLOCKS.contains(&name.as_str()) {
            out.push(' ');
        }
        out.push('<');
        rest = tag;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_stripped_and_entities_decoded() {
        assert_eq!(
            from_html(
                "<p>Deep &amp; <b>wide</b></p><p>nets&#8211;fast</p><script>alert(1)</script>"
            ),
            "Deep & wide nets–fast"
        );
        assert_eq!(from_html("a<br/>b"), "a b");
    }

    #[test]
    fn plain_text_keeps_latex_and_angle_brackets() {
        assert_eq!(
            plain("  $\\ln\\ln T$ bound\n  for  $x<y$ "),
            "$\\ln\\ln T$ bound for $x<y$"
        );
        assert_eq!(plain("AT&amp;T"), "AT&T");
    }

    #[test]
    fn control_characters_never_survive() {
        assert_eq!(plain("A\u{0}B \u{1b}[31mred\u{7}"), "AB [31mred");
        assert_eq!(clean_id(" id\u{0}1\n"), "id1");
    }

    #[test]
    fn jats_markers_are_removed() {
        assert_eq!(
            strip_jats_markers(
                "O_ST_ABSBackgroundC_ST_ABS We used O_SCPLOWKC_SCPLOW means.O_LIOneC_LIO_LITwoC_LI"
            ),
            "Background We used K means. One Two"
        );
    }
}
