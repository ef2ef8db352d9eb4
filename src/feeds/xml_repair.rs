//! Lenient re-reading of almost-XML: finding the root element past the prolog, and
//! escaping what cannot be an XML entity (a bare `&`, an HTML-only `&alpha;`) so that one
//! typo upstream does not refuse a whole feed.

/// Where the root element's start tag begins: past blank space, the XML declaration,
/// processing instructions, comments and a doctype.
pub(super) fn root_start(body: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        while at < body.len() && body[at].is_ascii_whitespace() {
            at += 1;
        }
        let rest = &body[at..];
        let skip_to = |end: &[u8]| find(rest, end).map(|pos| pos + end.len());
        let skip = if rest.starts_with(b"<?") {
            skip_to(b"?>")
        } else if rest.starts_with(b"<!--") {
            skip_to(b"-->")
        } else if rest.starts_with(b"<!") {
            skip_to(b">")
        } else if rest.starts_with(b"<") {
            return Some(at);
        } else {
            return None;
        };
        at += skip?;
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The body with every `&` that does not start an XML entity or character reference
/// escaped as `&amp;`, and every HTML named entity XML does not declare written as
/// character references. CDATA sections and comments are left alone. `None` when there was
/// nothing to change.
pub(super) fn escape_stray_entities(body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(body.len() + 64);
    let mut changed = false;
    let mut i = 0;
    while i < body.len() {
        let rest = &body[i..];
        if let Some(len) = verbatim_len(rest) {
            out.extend_from_slice(&rest[..len]);
            i += len;
            continue;
        }
        if rest[0] != b'&' {
            out.push(rest[0]);
            i += 1;
            continue;
        }
        let (replacement, consumed) = entity_at(&body[i..]);
        match replacement {
            Some(text) => {
                out.extend_from_slice(text.as_bytes());
                changed = true;
            }
            None => out.extend_from_slice(&body[i..i + consumed]),
        }
        i += consumed;
    }
    changed.then_some(out)
}

/// The length of the CDATA section or comment `rest` starts with, whose text is taken as is.
fn verbatim_len(rest: &[u8]) -> Option<usize> {
    [(&b"<![CDATA["[..], &b"]]>"[..]), (b"<!--", b"-->")]
        .into_iter()
        .find(|(open, _)| rest.starts_with(open))
        .map(|(_, close)| find(rest, close).map_or(rest.len(), |p| p + close.len()))
}

/// What to write for the `&` at the start of `s`, and how many bytes it covers: `None` to
/// keep them as they are.
fn entity_at(s: &[u8]) -> (Option<String>, usize) {
    let end = s
        .iter()
        .take(40)
        .position(|b| *b == b';')
        .filter(|&semi| semi > 1);
    let Some(semi) = end else {
        return (Some("&amp;".into()), 1);
    };
    let name = &s[1..semi];
    let is_char_ref = match name {
        [b'#', b'x' | b'X', hex @ ..] => !hex.is_empty() && hex.iter().all(u8::is_ascii_hexdigit),
        [b'#', dec @ ..] => !dec.is_empty() && dec.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    let is_xml_entity = matches!(name, b"amp" | b"lt" | b"gt" | b"quot" | b"apos");
    if is_char_ref || is_xml_entity {
        return (None, semi + 1);
    }
    if !name.iter().all(u8::is_ascii_alphanumeric) {
        return (Some("&amp;".into()), 1);
    }
    let entity = String::from_utf8_lossy(&s[..=semi]);
    let decoded = html_escape::decode_html_entities(&entity);
    if decoded == entity {
        return (Some("&amp;".into()), 1);
    }
    let refs = decoded
        .chars()
        .map(|c| format!("&#{};", u32::from(c)))
        .collect();
    (Some(refs), semi + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn repairing_twice_changes_nothing_more(s in "\\PC{0,80}") {
            if let Some(once) = escape_stray_entities(s.as_bytes()) {
                prop_assert_eq!(escape_stray_entities(&once), None);
            }
        }

        #[test]
        fn repaired_text_is_well_formed(s in "[a-z &;#x0-9<>]{0,60}") {
            let text = s.replace('<', "&lt;").replace('>', "&gt;");
            let doc = format!("<a>{text}</a>");
            let fixed = escape_stray_entities(doc.as_bytes()).unwrap_or_else(|| doc.into_bytes());
            prop_assert!(super::super::check_well_formed(&fixed).is_ok(), "{}", String::from_utf8_lossy(&fixed));
        }
    }

    fn repaired(s: &str) -> Option<String> {
        escape_stray_entities(s.as_bytes()).map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn stray_ampersands_and_html_entities_are_escaped() {
        assert_eq!(
            repaired("<a>x?foo=1&bar=2 &amp; &#38; &#x26; &alpha; & b &nosuch;</a>").as_deref(),
            Some("<a>x?foo=1&amp;bar=2 &amp; &#38; &#x26; &#945; &amp; b &amp;nosuch;</a>")
        );
        assert_eq!(repaired("<a>fine &amp; &lt;</a>"), None);
        assert_eq!(
            repaired("<a><![CDATA[a & b]]><!-- & --> & </a>").as_deref(),
            Some("<a><![CDATA[a & b]]><!-- & --> &amp; </a>")
        );
    }

    #[test]
    fn the_root_is_found_past_the_prolog() {
        let doc = b"\n<?xml version=\"1.0\"?>\n<!-- c -->\n<!DOCTYPE rss>\n<rss>";
        assert_eq!(root_start(doc), Some(doc.len() - 5));
        assert_eq!(root_start(b"no markup"), None);
    }
}
