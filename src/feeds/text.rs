//! Turning what feeds put in titles and abstracts into clean plain text: HTML stripped,
//! entities decoded, whitespace collapsed. LaTeX is left as written, which is how
//! researchers read it.

use std::collections::HashSet;
use std::sync::OnceLock;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, Utc};

/// Text from a source that may leave stray entities in plain text (JSON APIs, RSS titles):
/// decode them once and collapse whitespace.
pub fn plain(text: &str) -> String {
    collapse_whitespace(&html_escape::decode_html_entities(text))
}

/// Text that is plain by declaration after its container already decoded it (an XML text
/// node, an Atom `type="text"` element): taken as written, whitespace collapsed. Decoding
/// entities again would turn an escaped `&lt;tag&gt;` into markup that was never there.
pub fn literal(text: &str) -> String {
    collapse_whitespace(text)
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

/// Chooses by a declared media type (`text/html`, `html`, `xhtml`, …); anything else is
/// plain text, taken as written.
pub fn by_media_type(text: &str, media_type: &str) -> String {
    if media_type.contains("html") {
        from_html(text)
    } else {
        literal(text)
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

/// medRxiv and bioRxiv API text spells some characters as `{name}` (`{rho}`, `{beta}`,
/// `{+/-}`): each known name becomes its character; anything else is left as written.
pub fn braced_symbols(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let symbol = after
            .find('}')
            .filter(|&close| close <= 12)
            .and_then(|close| Some((symbol_named(&after[..close])?, close)));
        match symbol {
            Some((c, close)) => {
                out.push(c);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn symbol_named(name: &str) -> Option<char> {
    const GREEK: [&str; 24] = [
        "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
        "lambda", "mu", "nu", "xi", "omicron", "pi", "rho", "sigma", "tau", "upsilon", "phi",
        "chi", "psi", "omega",
    ];
    if let Some(i) = GREEK.iter().position(|g| *g == name) {
        // The lowercase letters run from U+03B1, skipping final sigma (U+03C2).
        let offset = if i >= 17 { i + 1 } else { i } as u32;
        return char::from_u32(0x03B1 + offset);
    }
    let lower = name.to_ascii_lowercase();
    if let Some(i) = GREEK.iter().position(|g| *g == lower)
        && name.starts_with(|c: char| c.is_ascii_uppercase())
    {
        // Capitals from U+0391, with a gap where final sigma would be.
        let offset = if i >= 17 { i + 1 } else { i } as u32;
        return char::from_u32(0x0391 + offset);
    }
    Some(match name {
        "+/-" => '±',
        "micro" => 'µ',
        "degrees" | "degree" => '°',
        "times" => '×',
        "middle dot" => '·',
        "approx" => '≈',
        "ge" => '≥',
        "le" => '≤',
        _ => return None,
    })
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
pub fn date_utc(raw: &str) -> Option<DateTime<Utc>> {
    chrono::NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
}

/// A feed's date: RFC 3339 or RFC 2822 (the formats feeds use), with what had to be
/// assumed when the date did not say it: a zone abbreviation that RFC 2822 does not define
/// (`CEST`) read as its usual offset, or no zone at all read as UTC. `None` when it is not a
/// date paperboy can read.
pub fn timestamp(raw: &str) -> Option<(DateTime<Utc>, Option<String>)> {
    let s = collapse_whitespace(raw);
    if s.is_empty() {
        return None;
    }
    let utc = |d: DateTime<FixedOffset>| d.with_timezone(&Utc);
    if let Ok(d) = DateTime::parse_from_rfc3339(&s) {
        return Some((utc(d), None));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z"] {
        if let Ok(d) = DateTime::parse_from_str(&s, format) {
            return Some((utc(d), None));
        }
    }
    // RFC 2822 already knows UT, GMT and the North American zones (EST, EDT, …).
    if let Ok(d) = DateTime::parse_from_rfc2822(&s) {
        return Some((utc(d), None));
    }
    if let Some((head, zone)) = s.rsplit_once(' ')
        && let Some(offset) = zone_offset(zone)
    {
        let with_offset = format!("{head} {offset}");
        if let Ok(d) = DateTime::parse_from_rfc2822(&with_offset) {
            let note = format!("a date with the zone abbreviation {zone} was read as {offset}");
            return Some((utc(d), Some(note)));
        }
    }
    const NO_ZONE: [&str; 7] = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%a, %d %b %Y %H:%M:%S",
        "%d %b %Y %H:%M:%S",
        "%a, %d %b %Y %H:%M",
        "%d %b %Y %H:%M",
    ];
    let note = || Some("a date without a time zone was read as UTC".to_string());
    for format in NO_ZONE {
        if let Ok(d) = NaiveDateTime::parse_from_str(&s, format) {
            return Some((d.and_utc(), note()));
        }
    }
    let day = NaiveDate::parse_from_str(&s, "%Y-%m-%d").ok()?;
    Some((day.and_hms_opt(0, 0, 0)?.and_utc(), None))
}

/// Offsets of the zone abbreviations feeds use that RFC 2822 does not define.
fn zone_offset(abbreviation: &str) -> Option<&'static str> {
    Some(match abbreviation.to_ascii_uppercase().as_str() {
        "UTC" | "Z" | "WET" => "+0000",
        "BST" | "CET" | "WEST" | "MEZ" => "+0100",
        "CEST" | "EET" | "MESZ" | "SAST" => "+0200",
        "EEST" | "MSK" => "+0300",
        "IST" => "+0530",
        "SGT" | "HKT" | "AWST" => "+0800",
        "JST" | "KST" => "+0900",
        "AEST" => "+1000",
        "AEDT" => "+1100",
        "NZST" => "+1200",
        "NZDT" => "+1300",
        "AKST" => "-0900",
        "AKDT" => "-0800",
        "HST" => "-1000",
        "ADT" => "-0300",
        "AST" => "-0400",
        _ => return None,
    })
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
    fn literal_text_is_not_decoded_again() {
        assert_eq!(
            literal("&lt;tag&gt; and  AT&amp;T"),
            "&lt;tag&gt; and AT&amp;T"
        );
        assert_eq!(by_media_type("x &lt;b&gt;", "text/plain"), "x &lt;b&gt;");
        assert_eq!(by_media_type("x &lt;b&gt;", "text/html"), "x <b>");
    }

    #[test]
    fn dates_with_zone_names_or_no_zone_are_read_with_the_assumption_said() {
        let at = |s: &str| timestamp(s).map(|(d, note)| (d.to_rfc3339(), note.is_some()));
        let expect = |s: &str, assumed| Some((s.to_string(), assumed));
        assert_eq!(
            at("2026-09-24T08:00:00Z"),
            expect("2026-09-24T08:00:00+00:00", false)
        );
        assert_eq!(
            at("Thu, 24 Sep 2026 04:00:00 EDT"),
            expect("2026-09-24T08:00:00+00:00", false)
        );
        assert_eq!(
            at("Thu, 24 Sep 2026 10:00:00 CEST"),
            expect("2026-09-24T08:00:00+00:00", true)
        );
        assert_eq!(
            at("2026-09-24 08:00:00"),
            expect("2026-09-24T08:00:00+00:00", true)
        );
        assert_eq!(
            at("Thu, 24 Sep 2026 08:00:00"),
            expect("2026-09-24T08:00:00+00:00", true)
        );
        assert_eq!(at("2026-09-24"), expect("2026-09-24T00:00:00+00:00", false));
        assert_eq!(at("soon"), None);
    }

    #[test]
    fn braced_symbols_become_characters() {
        assert_eq!(
            braced_symbols("Spearman {rho} = 0.4 {+/-} 0.1, {Delta}T, {unknown} {x"),
            "Spearman ρ = 0.4 ± 0.1, ΔT, {unknown} {x"
        );
        assert_eq!(braced_symbols("{sigma}{tau}{omega}"), "στω");
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
