//! Feeds: fetching them politely, parsing every supported format, and normalising each
//! entry into a [`Paper`](crate::domain::Paper) with its canonical key. Hands batches to the
//! store; knows nothing of readers, matching or mail.

mod arxiv;
mod fetch;
mod generic;
mod hf;
mod ingest;
pub mod text;

pub use fetch::{Fetched, Fetcher};
pub use ingest::{FeedReport, FeedStatus, fetch_feeds};

use crate::domain::{FeedKind, Ingested};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    #[error("HTTP {status}{}", detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Status { status: u16, detail: Option<String> },
    #[error("request failed: {0}")]
    Request(String),
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
}

impl Parsed {
    fn push(&mut self, entry: Option<Ingested>) {
        match entry {
            Some(e) => self.entries.push(e),
            None => self.skipped += 1,
        }
    }
}

/// Parses a whole response body. Either every entry is normalised (or counted as skipped)
/// or the response is refused as a whole: a half-read document yields nothing.
pub fn parse(kind: FeedKind, body: &[u8]) -> Result<Parsed, FeedError> {
    let body = strip_bom(body);
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
        _ if is_json => generic::json(body),
        FeedKind::ArxivRss => Ok(arxiv::rss(&parse_xml(body)?)),
        FeedKind::ArxivApi => arxiv::api(&parse_xml(body)?),
        FeedKind::Feed => Ok(generic::xml(&parse_xml(body)?)),
    }
}

fn strip_bom(body: &[u8]) -> &[u8] {
    body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body)
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

fn looks_like_html(body: &[u8]) -> bool {
    let head = sniff(body);
    let head = head.trim_start();
    head.starts_with("<!doctype html")
        || head.starts_with("<html")
        || (head.starts_with("<?xml") && head.contains("<html"))
}

/// Parses XML with feed-rs after a full well-formedness pass, because feed-rs returns the
/// entries it read before a truncation without an error.
fn parse_xml(body: &[u8]) -> Result<feed_rs::model::Feed, FeedError> {
    check_well_formed(body)?;
    feed_rs::parser::Builder::new()
        .sanitize_content(false)
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
            FeedError::Malformed(format!(
                "{e} at byte {}",
                reader.buffer_position()
            ))
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
        return Err(FeedError::Malformed("no XML element in the response".into()));
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
        assert!(matches!(parse(FeedKind::Feed, body), Err(FeedError::Malformed(_))));
    }

    #[test]
    fn html_pages_are_not_feeds() {
        let body = b"<!DOCTYPE html><html><head><title>502</title></head><body>Bad gateway</body></html>";
        let err = parse(FeedKind::ArxivRss, body).unwrap_err();
        assert!(err.to_string().contains("HTML page"), "{err}");
    }

    #[test]
    fn empty_bodies_are_not_feeds() {
        assert!(matches!(parse(FeedKind::Feed, b"  \n"), Err(FeedError::NotAFeed(_))));
    }
}
