//! Feeds: fetching them politely, parsing every supported format, and normalising each
//! entry into a [`Paper`](crate::domain::Paper) with its canonical key. Hands batches to the
//! store; knows nothing of readers, matching or mail.

mod arxiv;
mod fetch;
mod generic;
mod hf;
mod ingest;
mod seed;
pub mod text;
mod xml_repair;

pub use fetch::{Fetched, Fetcher};
pub use ingest::{FeedReport, FeedStatus, fetch_feeds};
pub use seed::{ArxivLookup, LikedPaper, Resolution, Unresolved, resolve_seeds};

use std::borrow::Cow;

use crate::domain::{FeedKind, Ingested};

/// Why a feed could not be fetched or read. `Request` keeps the HTTP client's error as its
/// source: print it with [`crate::error::chain`].
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("HTTP {status}{}", detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Status { status: u16, detail: Option<String> },
    /// No answer: the address is malformed, the connection failed or broke off, or the
    /// client could not be set up.
    #[error("request failed")]
    Request(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("timed out after {0} s")]
    Timeout(u64),
    #[error("response is larger than the {limit}-byte limit")]
    TooLarge { limit: u64 },
    #[error("rate limited: the server asks to wait {0} s, longer than paperboy waits")]
    RetryAfterTooLong(u64),
    #[error("not a feed: {0}")]
    NotAFeed(String),
    #[error("malformed feed: {0}")]
    Malformed(String),
    #[error("arXiv API error: {0}")]
    ArxivApi(String),
}

/// The entries of one response, normalised.
#[derive(Debug, Default)]
pub struct Parsed {
    pub entries: Vec<Ingested>,
    /// Entries dropped because they had no title or no usable identity.
    pub skipped: usize,
    /// What paperboy had to assume or repair to read the response (a bare `&` escaped, an
    /// undeclared encoding guessed, a date without a zone read as UTC): kept in the feed's
    /// health, which then says the feed is degraded.
    pub notes: Vec<String>,
}

impl Parsed {
    fn push(&mut self, entry: Option<Ingested>) {
        match entry {
            Some(mut e) => {
                scrub(&mut e);
                self.entries.push(e);
            }
            None => self.skipped += 1,
        }
    }

    /// Normalises each JSON item on its own, so that one odd entry is skipped, not fatal.
    fn from_json_items<T: serde::de::DeserializeOwned>(
        items: Vec<serde_json::Value>,
        normalise: impl Fn(T) -> Option<Ingested>,
    ) -> Parsed {
        let mut parsed = Parsed::default();
        for item in items {
            parsed.push(serde_json::from_value::<T>(item).ok().and_then(&normalise));
        }
        parsed
    }
}

/// Parses a whole response body. Either every entry is normalised (or counted as skipped)
/// or the response is refused as a whole: a half-read document yields nothing.
///
/// `content_type` is the HTTP header, whose charset is used when the document itself
/// declares none; `base_url` (the feed's URL) resolves relative links.
pub fn parse(
    kind: FeedKind,
    body: &[u8],
    content_type: Option<&str>,
    base_url: Option<&str>,
) -> Result<Parsed, FeedError> {
    let notes = Notes::default();
    let body = to_utf8(body, content_type, &notes)?;
    let body = body.as_ref();
    let mut parsed = parse_utf8(kind, body, base_url, &notes)?;
    parsed.notes = notes.take();
    Ok(parsed)
}

fn parse_utf8(
    kind: FeedKind,
    body: &[u8],
    base_url: Option<&str>,
    notes: &Notes,
) -> Result<Parsed, FeedError> {
    let head = sniff(body);
    if head.is_empty() {
        return Err(FeedError::NotAFeed("the response is empty".into()));
    }
    if looks_like_html(body) {
        return Err(FeedError::NotAFeed(
            "got an HTML page where a feed was expected".into(),
        ));
    }
    let is_json = head.starts_with('{') || head.starts_with('[');
    match kind {
        FeedKind::HfDaily if is_json => hf::daily_papers(body),
        FeedKind::HfDaily => Err(FeedError::NotAFeed(
            "the Hugging Face daily papers API answers JSON; this is not JSON".into(),
        )),
        _ if is_json => generic::json(body, base_url, notes),
        FeedKind::ArxivRss => {
            let (feed, read) = parse_xml(body, base_url, notes)?;
            Ok(arxiv::rss(&feed, &read))
        }
        FeedKind::ArxivApi => arxiv::api(&parse_xml(body, base_url, notes)?.0),
        FeedKind::Feed => Ok(generic::xml(&parse_xml(body, base_url, notes)?.0)),
    }
}

/// Assumptions and repairs noted while reading one response, in the order first made.
/// Shared with feed-rs's date parser, hence the lock.
#[derive(Clone, Default)]
pub(crate) struct Notes(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl Notes {
    fn add(&self, note: impl Into<String>) {
        let note = note.into();
        // A poisoned lock only means another note panicked mid-push; the list is intact.
        let mut list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if !list.contains(&note) {
            list.push(note);
        }
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The fields that parsers copy verbatim (ids and links) lose control characters; titles,
/// abstracts, names and categories already went through [`text::plain`].
fn scrub(e: &mut Ingested) {
    let clean = |s: &mut String| *s = text::clean_id(s);
    clean(&mut e.entry_id);
    let p = &mut e.paper;
    p.settle_arxiv_doi();
    for link in [
        &mut p.links.abs,
        &mut p.links.pdf,
        &mut p.links.discussion,
        &mut p.thumbnail,
        &mut p.doi,
        &mut p.arxiv_id,
    ] {
        if let Some(s) = link.as_mut() {
            clean(s);
        }
    }
}

/// Re-encodes a body as UTF-8 (without a BOM), choosing the encoding from the BOM, then the
/// XML declaration, then the HTTP charset, else UTF-8, and when the bytes are not UTF-8
/// either, windows-1252 as browsers do (noted). A declaration is rewritten to say UTF-8 so
/// the XML parsers agree with the bytes they get.
fn to_utf8<'a>(
    body: &'a [u8],
    content_type: Option<&str>,
    notes: &Notes,
) -> Result<Cow<'a, [u8]>, FeedError> {
    if let Some((encoding, bom_len)) = encoding_rs::Encoding::for_bom(body) {
        // The BOM outranks the declaration, which must then stop contradicting it.
        let (text, _) = encoding.decode_without_bom_handling(&body[bom_len..]);
        return Ok(Cow::Owned(declare_utf8(&text).into_bytes()));
    }
    let declared = xml_declared_encoding(body);
    let label = declared.or_else(|| {
        content_type
            .and_then(|ct| {
                ct.split(';')
                    .find_map(|p| p.trim().strip_prefix("charset="))
            })
            .map(|c| c.trim_matches('"').to_string())
    });
    let Some(label) = label else {
        if std::str::from_utf8(body).is_ok() {
            return Ok(Cow::Borrowed(body));
        }
        notes.add("the body is not UTF-8 and declares no encoding: read as windows-1252");
        return Ok(decode_with(encoding_rs::WINDOWS_1252, body));
    };
    let encoding = encoding_rs::Encoding::for_label(label.trim().as_bytes())
        .ok_or_else(|| FeedError::Malformed(format!("unknown character encoding {label:?}")))?;
    Ok(decode_with(encoding, body))
}

fn decode_with<'a>(encoding: &'static encoding_rs::Encoding, body: &'a [u8]) -> Cow<'a, [u8]> {
    if encoding == encoding_rs::UTF_8 {
        return Cow::Borrowed(body);
    }
    let (text, _) = encoding.decode_without_bom_handling(body);
    Cow::Owned(declare_utf8(&text).into_bytes())
}

/// The `encoding="…"` of an XML declaration at the start of the body.
fn xml_declared_encoding(body: &[u8]) -> Option<String> {
    let start = body.iter().position(|b| !b.is_ascii_whitespace())?;
    let head = &body[start..body.len().min(start + 200)];
    if !head.starts_with(b"<?xml") {
        return None;
    }
    let end = head.windows(2).position(|w| w == b"?>")?;
    let decl = String::from_utf8_lossy(&head[..end]);
    let after = &decl[decl.find("encoding")? + "encoding".len()..];
    let after = after.trim_start().strip_prefix('=')?.trim_start();
    let quote = after.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let value = &after[1..];
    Some(value[..value.find(quote)?].to_string())
}

/// Replaces the declared encoding in an already decoded document with UTF-8.
fn declare_utf8(text: &str) -> String {
    let trimmed = text.trim_start();
    if trimmed.starts_with("<?xml")
        && let Some(end) = trimmed.find("?>")
    {
        return format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"{}",
            &trimmed[end..]
        );
    }
    text.to_string()
}

/// The first few non-blank characters, lowercased, for telling formats apart.
fn sniff(body: &[u8]) -> String {
    let start = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(body.len());
    let end = (start + 512).min(body.len());
    String::from_utf8_lossy(&body[start..end]).to_ascii_lowercase()
}

/// Whether a body is an HTML page (a login wall, a CDN challenge, an error page): its first
/// markup, after blank space, comments and an XML declaration, is an HTML doctype or an
/// `<html>` element. Proxies and portals often put a comment first.
fn looks_like_html(body: &[u8]) -> bool {
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    let mut rest = body;
    loop {
        rest = rest.trim_ascii_start();
        let skip = if rest.starts_with(b"<!--") {
            find(rest, b"-->").map(|end| end + 3)
        } else if rest.starts_with(b"<?") {
            find(rest, b"?>").map(|end| end + 2)
        } else {
            break;
        };
        match skip {
            Some(len) => rest = &rest[len..],
            None => return false,
        }
    }
    let head = rest[..rest.len().min(14)].to_ascii_lowercase();
    head.starts_with(b"<!doctype html") || head.starts_with(b"<html")
}

/// Parses XML with feed-rs after a full well-formedness pass, because feed-rs returns the
/// entries it read before a truncation without an error. Returns the feed and the bytes it
/// was read from.
///
/// A document that fails only because of a bare `&` or an HTML entity XML does not know
/// (`&alpha;`) is read again with those escaped, as feedparser and browsers do, and the
/// repair is noted; a truncated document still yields nothing.
fn parse_xml<'a>(
    body: &'a [u8],
    base_url: Option<&str>,
    notes: &Notes,
) -> Result<(feed_rs::model::Feed, Cow<'a, [u8]>), FeedError> {
    let body = with_rss_version(body);
    let strict = check_well_formed(&body)
        .and_then(|()| parse_with_feed_rs(&drop_userland_namespace(&body), base_url, notes));
    let error = match strict {
        Ok(feed) => return Ok((feed, body)),
        Err(e) => e,
    };
    if is_rss_without_channel(&body) {
        // `<rss></rss>`: a well-formed feed that lists nothing, as feedparser reads it.
        let empty = parse_with_feed_rs(EMPTY_RSS, base_url, notes)?;
        return Ok((empty, body));
    }
    let Some(repaired) = xml_repair::escape_stray_entities(&body) else {
        return Err(error);
    };
    check_well_formed(&repaired).map_err(|_| error_clone(&error))?;
    let feed = parse_with_feed_rs(&drop_userland_namespace(&repaired), base_url, notes)
        .map_err(|_| error_clone(&error))?;
    notes.add(format!(
        "the feed is not well-formed XML ({}); read again with stray `&` and HTML entities escaped",
        error_detail_of(&error)
    ));
    Ok((feed, Cow::Owned(repaired)))
}

const EMPTY_RSS: &[u8] = b"<rss version=\"2.0\"><channel></channel></rss>";

/// A well-formed `<rss>` document with no `<channel>` in it.
fn is_rss_without_channel(body: &[u8]) -> bool {
    let is_rss = xml_repair::root_start(body).is_some_and(|at| body[at..].starts_with(b"<rss"));
    is_rss && check_well_formed(body).is_ok() && !body.windows(8).any(|w| w == b"<channel")
}

fn error_clone(e: &FeedError) -> FeedError {
    FeedError::Malformed(error_detail_of(e))
}

fn error_detail_of(e: &FeedError) -> String {
    match e {
        FeedError::Malformed(m) => m.clone(),
        other => other.to_string(),
    }
}

/// `<rss>` without a `version` attribute is RSS 2.0 to every reader; feed-rs wants it said.
fn with_rss_version(body: &[u8]) -> Cow<'_, [u8]> {
    let Some(start) = xml_repair::root_start(body) else {
        return Cow::Borrowed(body);
    };
    let tag = &body[start..];
    let is_rss = tag.starts_with(b"<rss")
        && tag
            .get(4)
            .is_some_and(|b| b.is_ascii_whitespace() || *b == b'>' || *b == b'/');
    let end = tag.iter().position(|b| *b == b'>').unwrap_or(tag.len());
    let has_version = tag[..end].windows(8).any(|w| w == b"version=");
    if !is_rss || has_version {
        return Cow::Borrowed(body);
    }
    let mut owned = Vec::with_capacity(body.len() + 16);
    owned.extend_from_slice(&body[..start + 4]);
    owned.extend_from_slice(b" version=\"2.0\"");
    owned.extend_from_slice(&body[start + 4..]);
    Cow::Owned(owned)
}

/// Some RSS 2.0 feeds put their elements in Userland's namespace
/// (`xmlns="http://backend.userland.com/rss2"`), which hides them from RSS parsers;
/// without the declaration they are plain RSS 2.0.
fn drop_userland_namespace(body: &[u8]) -> Cow<'_, [u8]> {
    const DECL: &[u8] = b" xmlns=\"http://backend.userland.com/rss2\"";
    match body.windows(DECL.len()).position(|w| w == DECL) {
        Some(pos) => {
            let mut owned = Vec::with_capacity(body.len());
            owned.extend_from_slice(&body[..pos]);
            owned.extend_from_slice(&body[pos + DECL.len()..]);
            Cow::Owned(owned)
        }
        None => Cow::Borrowed(body),
    }
}

fn parse_with_feed_rs(
    body: &[u8],
    base_url: Option<&str>,
    notes: &Notes,
) -> Result<feed_rs::model::Feed, FeedError> {
    let dates = notes.clone();
    feed_rs::parser::Builder::new()
        .sanitize_content(false)
        .base_uri(base_url)
        .timestamp_parser(move |raw| {
            let (at, assumed) = text::timestamp(raw)?;
            if let Some(assumed) = assumed {
                dates.add(assumed);
            }
            Some(at)
        })
        .build()
        .parse(body)
        .map_err(|e| FeedError::Malformed(e.to_string()))
}

fn check_well_formed(body: &[u8]) -> Result<(), FeedError> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(body);
    reader.config_mut().check_end_names = true;
    let mut depth: usize = 0;
    let mut seen_root = false;
    let mut buf = Vec::new();
    loop {
        let event = reader.read_event_into(&mut buf).map_err(|e| {
            FeedError::Malformed(format!("{e} at byte {}", reader.buffer_position()))
        })?;
        match event {
            Event::Start(_) => {
                depth += 1;
                seen_root = true;
            }
            Event::Empty(_) => seen_root = true,
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !seen_root {
        return Err(FeedError::Malformed(
            "no XML element in the response".into(),
        ));
    }
    if depth != 0 {
        return Err(FeedError::Malformed(format!(
            "the document ends with {depth} element(s) still open (truncated?)"
        )));
    }
    Ok(())
}

/// Text of a feed-rs title or summary, HTML or plain as the feed declares it.
fn feed_text(text: Option<&feed_rs::model::Text>) -> String {
    text.map(|t| text::by_media_type(&t.content, t.content_type.as_str()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_xml_is_refused_whole() {
        let body = b"<rss version=\"2.0\"><channel><title>x</title><item><title>a</title></item><item><title>b";
        assert!(matches!(
            parse(FeedKind::Feed, body, None, None),
            Err(FeedError::Malformed(_))
        ));
    }

    #[test]
    fn html_pages_are_not_feeds() {
        let body =
            b"<!DOCTYPE html><html><head><title>502</title></head><body>Bad gateway</body></html>";
        let err = parse(FeedKind::ArxivRss, body, None, None).unwrap_err();
        assert!(err.to_string().contains("HTML page"), "{err}");
    }

    #[test]
    fn html_behind_comments_and_declarations_is_not_a_feed() {
        for body in [
            "\n  <!-- Generated by the proxy -->\n<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Blocked</title></head></html>",
            "<!-- maintenance page --><HTML><BODY>Back soon</BODY></HTML>",
            "<?xml version=\"1.0\"?>\n<!-- x -->\n<html xmlns=\"http://www.w3.org/1999/xhtml\"><body/></html>",
        ] {
            for kind in [FeedKind::ArxivRss, FeedKind::Feed] {
                let err = parse(kind, body.as_bytes(), None, None).unwrap_err();
                assert!(err.to_string().contains("HTML page"), "{body}: {err}");
            }
        }
        // A comment before a feed does not make it a page.
        let feed = "<!-- generated --><rss version=\"2.0\"><channel><title>t</title><item><title>a</title><link>https://example.org/a</link></item></channel></rss>";
        let parsed = parse(FeedKind::Feed, feed.as_bytes(), None, None).unwrap();
        assert_eq!(parsed.entries.len(), 1);
    }

    #[test]
    fn declared_encodings_are_decoded() {
        let latin1 = b"<?xml version='1.0' encoding='ISO-8859-1'?><rss version=\"2.0\"><channel><title>t</title><item><title>Caf\xe9</title><link>https://example.org/a</link></item></channel></rss>";
        let parsed = parse(FeedKind::Feed, latin1, None, None).unwrap();
        assert_eq!(parsed.entries[0].paper.title, "Caf\u{e9}");
        let undeclared = b"<rss version=\"2.0\"><channel><title>t</title><item><title>Caf\xe9</title><link>https://example.org/a</link></item></channel></rss>";
        let parsed = parse(
            FeedKind::Feed,
            undeclared,
            Some("application/rss+xml; charset=iso-8859-1"),
            None,
        )
        .unwrap();
        assert_eq!(parsed.entries[0].paper.title, "Caf\u{e9}");
    }

    #[test]
    fn a_byte_order_mark_outranks_the_declaration() {
        let body = "\u{feff}<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><rss version=\"2.0\"><channel><title>t</title><item><title>Café</title><link>https://example.org/a</link></item></channel></rss>";
        let parsed = parse(FeedKind::Feed, body.as_bytes(), None, None).unwrap();
        assert_eq!(parsed.entries[0].paper.title, "Café");
    }

    #[test]
    fn rss_without_a_version_is_rss_2() {
        let body = b"<?xml version=\"1.0\"?>\n<rss><channel><title>t</title><item><title>a</title><link>https://example.org/a</link></item></channel></rss>";
        let parsed = parse(FeedKind::Feed, body, None, None).unwrap();
        assert_eq!(parsed.entries.len(), 1);
        assert!(parsed.notes.is_empty());
        let empty = parse(FeedKind::Feed, b"\xef\xbb\xbf<rss>\n</rss>", None, None).unwrap();
        assert_eq!(empty.entries.len(), 0);
    }

    #[test]
    fn a_bare_ampersand_is_repaired_and_noted() {
        let body = b"<rss version=\"2.0\"><channel><title>t</title><item><title>R&D &alpha;</title><link>https://example.org/a?x=1&y=2</link></item></channel></rss>";
        let parsed = parse(FeedKind::Feed, body, None, None).unwrap();
        assert_eq!(parsed.entries.len(), 1);
        assert_eq!(parsed.entries[0].paper.title, "R&D \u{3b1}");
        assert_eq!(
            parsed.entries[0].paper.links.abs.as_deref(),
            Some("https://example.org/a?x=1&y=2")
        );
        assert_eq!(parsed.notes.len(), 1, "{:?}", parsed.notes);
        assert!(
            parsed.notes[0].contains("not well-formed"),
            "{:?}",
            parsed.notes
        );
    }

    #[test]
    fn undeclared_non_utf8_is_windows_1252() {
        let body = b"<rss version=\"2.0\"><channel><title>t</title><item><title>Caf\xe9 \x93quoted\x94</title><link>https://example.org/a</link></item></channel></rss>";
        let parsed = parse(FeedKind::Feed, body, None, None).unwrap();
        assert_eq!(
            parsed.entries[0].paper.title,
            "Caf\u{e9} \u{201c}quoted\u{201d}"
        );
        assert!(
            parsed.notes[0].contains("windows-1252"),
            "{:?}",
            parsed.notes
        );
    }

    #[test]
    fn empty_bodies_are_not_feeds() {
        assert!(matches!(
            parse(FeedKind::Feed, b"  \n", None, None),
            Err(FeedError::NotAFeed(_))
        ));
    }
}
