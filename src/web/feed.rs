//! `GET /feeds/{subscriber}.atom?t={token}`: a reader's personal Atom feed, the papers of
//! their digests of the last 30 days with why each matched, for readers who live in a feed
//! reader. The token is signed for the feed alone; a wrong or missing one, an unknown
//! reader, or one who gets no digests (pending, unsubscribed, bounced) is a plain 404.
//! The XML is written with quick-xml's writer, which escapes every text and attribute.

use std::io;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, SecondsFormat, Utc};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesText, Event};
use sha2::{Digest, Sha256};

use super::guard::{LinkToken, subscriber_for};
use super::{AppState, WebError};
use crate::domain::Subscriber;
use crate::domain::token::{LinkKeys, Links, Purpose};
use crate::email::digest::paper_view;
use crate::store::SentEntry;

/// How far back the feed reaches: digests whose window ended within this many days.
const FEED_DAYS: i64 = 30;
/// Entries at most, the newest kept: a broad query can match thousands of papers a month.
const FEED_MAX_ENTRIES: usize = 500;
/// The date in every tag URI paperboy mints (RFC 4151 wants one; it never changes).
const TAG_DATE: &str = "2026";
/// What stays as is of a paper key inside a tag URI; everything else is percent-encoded.
const KEY_KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b':')
    .remove(b'.')
    .remove(b'-')
    .remove(b'_')
    .remove(b'/')
    .remove(b'~');

pub fn router() -> Router<AppState> {
    Router::new().route("/feeds/{file}", get(show))
}

#[tracing::instrument(skip_all)]
async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(file): Path<String>,
    Query(token): Query<LinkToken>,
) -> Result<Response, WebError> {
    let id: i64 = file
        .strip_suffix(".atom")
        .and_then(|id| id.parse().ok())
        .ok_or(WebError::NotFound)?;
    if LinkKeys::subscriber_of(&token.t) != Some(id) {
        return Err(WebError::NotFound);
    }
    let subscriber = subscriber_for(&state, &token.t, Purpose::Feed).await?;
    if !subscriber.status.gets_digests() {
        return Err(WebError::NotFound);
    }
    let since = Utc::now() - chrono::Duration::days(FEED_DAYS);
    let entries = state
        .store
        .sent_entries(subscriber.id, since, FEED_MAX_ENTRIES)
        .await?;
    let body = atom(&state.links, &subscriber, &entries)?;
    // Feed readers poll: the same feed is answered with 304 and no body.
    let etag = format!("\"{}\"", hex(&Sha256::digest(&body)[..16]));
    let etag_value = HeaderValue::from_str(&etag).map_err(|e| WebError::Internal(e.into()))?;
    let cache = HeaderValue::from_static("private, no-cache");
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    if unchanged {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag_value), (header::CACHE_CONTROL, cache)],
        )
            .into_response());
    }
    Ok((
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/atom+xml; charset=utf-8"),
            ),
            (header::ETAG, etag_value),
            (header::CACHE_CONTROL, cache),
        ],
        body,
    )
        .into_response())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An instant as Atom writes it (RFC 3339, UTC).
fn date(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Text as XML 1.0 may carry it: the control characters it forbids (even escaped) are
/// dropped. Feeds have been seen to carry them.
fn xml_chars(text: &str) -> String {
    text.chars()
        .filter(|&c| {
            matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
        })
        .collect()
}

/// `<name>text</name>`, escaped.
fn text_element<W: io::Write>(w: &mut Writer<W>, name: &str, text: &str) -> io::Result<()> {
    w.create_element(name)
        .write_text_content(BytesText::new(&xml_chars(text)))?;
    Ok(())
}

/// `<link rel=… type=… href=…/>`.
fn link<W: io::Write>(w: &mut Writer<W>, rel: &str, kind: &str, href: &str) -> io::Result<()> {
    w.create_element("link")
        .with_attribute(("rel", rel))
        .with_attribute(("type", kind))
        .with_attribute(("href", xml_chars(href).as_str()))
        .write_empty()?;
    Ok(())
}

/// The Atom document of a reader's feed. Entries keep the order of `entries`: newest
/// digest first, and within a digest in email order (the emailed papers as the email
/// listed them, then the other matches, best first). That order is
/// the one the reader already knows, and each entry's `updated` is the end of its
/// digest's window (when paperboy composed it for them), so dates never increase down the
/// feed and readers that sort by date agree with it; sorting by the papers' own dates
/// instead would scatter a digest (a new version of an old paper, a preprint announced
/// days after it was written) and lose its ranking.
fn atom(links: &Links, subscriber: &Subscriber, entries: &[SentEntry]) -> io::Result<Vec<u8>> {
    let host = links.host();
    let updated = entries
        .first()
        .map(|e| e.window_end)
        .or(subscriber.confirmed_at)
        .unwrap_or(subscriber.created_at);
    let self_url = links.feed(subscriber.id, &subscriber.link_key);
    let home = links.home();
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("utf-8"), None)))?;
    w.create_element("feed")
        .with_attribute(("xmlns", "http://www.w3.org/2005/Atom"))
        .write_inner_content(|w| {
            text_element(
                w,
                "id",
                &format!("tag:{host},{TAG_DATE}:feed/{}", subscriber.id),
            )?;
            text_element(w, "title", "Your paperboy papers")?;
            text_element(
                w,
                "subtitle",
                "The papers of your digests of the last 30 days, newest first, with why each matched.",
            )?;
            text_element(w, "updated", &date(updated))?;
            link(w, "self", "application/atom+xml", &self_url)?;
            link(w, "alternate", "text/html", &home)?;
            w.create_element("author").write_inner_content(|w| {
                text_element(w, "name", "paperboy")?;
                text_element(w, "uri", &home)
            })?;
            w.create_element("generator")
                .write_text_content(BytesText::new("paperboy"))?;
            for e in entries {
                entry(w, &host, e)?;
            }
            Ok(())
        })?;
    Ok(w.into_inner())
}

/// One paper: its title, link, authors and categories, an excerpt of its abstract and
/// the words the email uses to say why it matched and why it has its place.
fn entry<W: io::Write>(w: &mut Writer<W>, host: &str, e: &SentEntry) -> io::Result<()> {
    let paper = &e.entry.paper.paper;
    // Numbered as in no email: a feed entry has no place number.
    let view = paper_view(&e.entry, 0, None);
    let key = utf8_percent_encode(paper.key.as_str(), KEY_KEEP);
    let why = if view.matched.is_empty() {
        if e.trending {
            "One of the most upvoted new papers: you had no queries when it was sent.".to_string()
        } else {
            String::new()
        }
    } else {
        format!("Matched: {}", view.matched)
    };
    let mut summary = String::new();
    if !view.snippet_html.is_empty() {
        summary.push_str(&format!("<p>{}</p>", view.snippet_html));
    }
    for words in [&why, &view.reason] {
        if !words.is_empty() {
            summary.push_str(&format!("<p>{}</p>", html_escape::encode_text(words)));
        }
    }
    w.create_element("entry").write_inner_content(|w| {
        text_element(w, "id", &format!("tag:{host},{TAG_DATE}:paper/{key}"))?;
        text_element(w, "title", &paper.title)?;
        if let Some(url) = &view.abs_url {
            link(w, "alternate", "text/html", url)?;
        }
        if let Some(url) = &view.pdf_url {
            link(w, "related", "application/pdf", url)?;
        }
        if let Some(published) = paper.published {
            text_element(w, "published", &date(published))?;
        }
        text_element(w, "updated", &date(e.window_end))?;
        for name in &paper.authors {
            w.create_element("author")
                .write_inner_content(|w| text_element(w, "name", name))?;
        }
        for category in &paper.categories {
            w.create_element("category")
                .with_attribute(("term", xml_chars(category).as_str()))
                .write_empty()?;
        }
        w.create_element("summary")
            .with_attribute(("type", "html"))
            .write_text_content(BytesText::new(&xml_chars(&summary)))?;
        Ok(())
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_xml_cannot_carry_are_dropped_and_the_rest_kept() {
        assert_eq!(xml_chars("a\u{0}b\u{1b}c\td\ne\u{FFFF}é"), "abc\td\neé");
    }

    #[test]
    fn paper_keys_stay_readable_in_tag_uris() {
        let enc = |k: &str| utf8_percent_encode(k, KEY_KEEP).to_string();
        assert_eq!(enc("arxiv:2411.00001"), "arxiv:2411.00001");
        assert_eq!(enc("doi:10.1000/a b#c"), "doi:10.1000/a%20b%23c");
    }
}
