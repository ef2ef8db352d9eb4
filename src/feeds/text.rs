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

/// A feed's date: RFC 3339 or RFC 2822 (the formats feeds use, with the usual slips: a
/// wrong or long weekday, a long month name, month before day, a one-digit hour), with
/// what had to be assumed when the date did not say it: a zone abbreviation that RFC 2822
/// does not define (`CEST`) read as its usual offset, or no zone at all read as UTC. `None`
/// when it is not a date paperboy can read.
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
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(d) = NaiveDateTime::parse_from_str(&s, format) {
            return Some((d.and_utc(), Some(NO_ZONE.to_string())));
        }
    }
    if let Ok(day) = NaiveDate::parse_from_str(&s, "%Y-%m-%d") {
        return Some((day.and_hms_opt(0, 0, 0)?.and_utc(), None));
    }
    rfc2822_lenient(&s)
}

const NO_ZONE: &str = "a date without a time zone was read as UTC";

/// RFC 2822 as feeds write it: `[Weekday, ]D Mon YYYY HH:MM[:SS] [zone]`.
fn rfc2822_lenient(s: &str) -> Option<(DateTime<Utc>, Option<String>)> {
    // The weekday says nothing the date does not, and is often wrong or spelled out.
    let s = match s.split_once(',') {
        Some((day, rest)) if day.chars().all(char::is_alphabetic) => rest.trim(),
        _ => s,
    };
    let mut parts: Vec<String> = s.split(' ').map(str::to_string).collect();
    let month = |t: &str| {
        let t = t.to_ascii_lowercase();
        MONTHS
            .iter()
            .find(|m| t.len() >= 3 && t.starts_with(*m) && t.chars().all(char::is_alphabetic))
            .map(|m| m.to_string())
    };
    if parts.len() >= 4 && month(&parts[0]).is_some() {
        parts.swap(0, 1); // `Sep 24 2026 …`
    }
    if parts.len() < 4 {
        return None;
    }
    parts[1] = month(&parts[1])?;
    let time = &mut parts[3];
    if time.starts_with("24:") {
        time.replace_range(..2, "00");
    }
    if time.find(':') == Some(1) {
        time.insert(0, '0');
    }
    if time.matches(':').count() == 1 {
        time.push_str(":00");
    }
    let stamp = format!("{} {} {} {}", parts[0], parts[1], parts[2], parts[3]);
    let Some(zone) = parts.get(4) else {
        let naive = NaiveDateTime::parse_from_str(&stamp, "%d %b %Y %H:%M:%S").ok()?;
        return Some((naive.and_utc(), Some(NO_ZONE.to_string())));
    };
    let (offset, note) = if zone.starts_with(['+', '-']) {
        (zone.replace(':', ""), None)
    } else if let Some(offset) = rfc2822_zone(zone) {
        (offset.to_string(), None)
    } else {
        let offset = zone_offset(zone)?;
        let note = format!("a date with the zone abbreviation {zone} was read as {offset}");
        (offset.to_string(), Some(note))
    };
    let d =
        DateTime::parse_from_str(&format!("{stamp} {offset}"), "%d %b %Y %H:%M:%S%.f %z").ok()?;
    Some((d.with_timezone(&Utc), note))
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// The zone names RFC 2822 defines (and `UTC`, `Z`, which everyone understands).
fn rfc2822_zone(zone: &str) -> Option<&'static str> {
    Some(match zone.to_ascii_uppercase().as_str() {
        "GMT" | "UT" | "UTC" | "Z" => "+0000",
        "EST" => "-0500",
        "EDT" => "-0400",
        "CST" => "-0600",
        "CDT" => "-0500",
        "MST" => "-0700",
        "MDT" => "-0600",
        "PST" => "-0800",
        "PDT" => "-0700",
        _ => return None,
    })
}

/// Offsets of the zone abbreviations feeds use that RFC 2822 does not define.
fn zone_offset(abbreviation: &str) -> Option<&'static str> {
    Some(match abbreviation.to_ascii_uppercase().as_str() {
        "WET" => "+0000",
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
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn reading_any_text_never_panics(s in "\\PC{0,60}") {
            let _ = timestamp(&s);
            let _ = braced_symbols(&s);
            if !s.contains('{') {
                prop_assert_eq!(braced_symbols(&s), s.clone());
            }
        }

        #[test]
        fn any_rfc3339_instant_reads_back(secs in 0i64..4_000_000_000) {
            let at = DateTime::from_timestamp(secs, 0).unwrap();
            prop_assert_eq!(timestamp(&at.to_rfc3339()), Some((at, None)));
            prop_assert_eq!(timestamp(&at.to_rfc2822()), Some((at, None)));
        }
    }

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
        // The slips feeds make: a wrong or long weekday, a long month, month first, a
        // one-digit hour, `UTC`, no seconds.
        for slip in [
            "Sat, 24 Sep 2026 08:00:00 GMT",
            "Thursday, 24 September 2026 08:00:00 +0000",
            "Thu, Sep 24 2026 08:00:00 UTC",
            "24 Sep 2026 8:00:00 Z",
            "Thu, 24 Sep 2026 04:00 -04:00",
        ] {
            assert_eq!(
                at(slip),
                expect("2026-09-24T08:00:00+00:00", false),
                "{slip}"
            );
        }
        assert_eq!(at("soon"), None);
        assert_eq!(at("Thu, 24 Sep 2026 08:00:00 XYZ"), None);
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
