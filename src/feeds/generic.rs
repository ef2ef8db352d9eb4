//! Any other source: RSS 0.9/1.0/2.0, Atom and JSON Feed (through feed-rs), plus the
//! bioRxiv/medRxiv `details` API and Semantic Scholar search pages, told apart by shape.
//! Keys come from an arXiv id in the links when there is one, else a DOI, else the link.

use feed_rs::model::{Entry, Feed, FeedType};
use serde::Deserialize;

use super::{FeedError, Notes, Parsed, feed_text, text};
use crate::domain::{ArxivId, Ingested, Paper, PaperKey, normalise_doi};

pub(super) fn xml(feed: &Feed) -> Parsed {
    entries(feed, None)
}

/// The entries of a feed-rs feed. `authors`, when given, names each entry's authors in
/// order (a JSON Feed read by paperboy itself), instead of what feed-rs gathered.
fn entries(feed: &Feed, authors: Option<Vec<Vec<String>>>) -> Parsed {
    let mut parsed = Parsed::default();
    let mut authors = authors.map(Vec::into_iter);
    for entry in &feed.entries {
        let own = authors.as_mut().map(|a| a.next().unwrap_or_default());
        parsed.push(feed_entry(feed, entry, own));
    }
    parsed
}

pub(super) fn json(
    body: &[u8],
    base_url: Option<&str>,
    notes: &Notes,
) -> Result<Parsed, FeedError> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| FeedError::Malformed(format!("invalid JSON: {e}")))?;
    if value.get("collection").is_some_and(|c| c.is_array()) {
        return preprint_api(value);
    }
    if value.get("data").is_some_and(|d| d.is_array()) {
        return semantic_scholar(value);
    }
    let is_json_feed = value
        .get("version")
        .and_then(|v| v.as_str())
        .is_some_and(|v| v.contains("jsonfeed.org"));
    if is_json_feed {
        let feed = super::parse_with_feed_rs(body, base_url, notes)?;
        return Ok(entries(&feed, Some(json_feed_authors(&value))));
    }
    Err(FeedError::NotAFeed(
        "JSON that is neither a JSON Feed, a bioRxiv/medRxiv API answer nor a Semantic Scholar page"
            .into(),
    ))
}

/// Each JSON Feed item's authors: version 1.1's `authors` list, else the deprecated
/// `author` object, else the feed's own (same order of preference), one person per object.
/// feed-rs would merge `author` and `authors` into one list.
fn json_feed_authors(feed: &serde_json::Value) -> Vec<Vec<String>> {
    fn names(v: &serde_json::Value) -> Vec<String> {
        let list = match v.get("authors").and_then(|a| a.as_array()) {
            Some(list) if !list.is_empty() => list.iter().collect(),
            _ => v.get("author").into_iter().collect::<Vec<_>>(),
        };
        list.into_iter()
            .filter_map(|a| a.get("name")?.as_str())
            .map(text::literal)
            .filter(|n| !n.is_empty())
            .collect()
    }
    let inherited = names(feed);
    feed.get("items")
        .and_then(|i| i.as_array())
        .map(|items| {
            items
                .iter()
                .map(|item| match names(item) {
                    own if own.is_empty() => inherited.clone(),
                    own => own,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// One entry of a feed-rs feed. `authors` overrides the authors feed-rs found.
fn feed_entry(feed: &Feed, entry: &Entry, authors: Option<Vec<String>>) -> Option<Ingested> {
    let title = feed_text(entry.title.as_ref());
    if title.is_empty() {
        return None;
    }
    let hrefs: Vec<&str> = entry.links.iter().map(|l| l.href.trim()).collect();
    let candidates = std::iter::once(entry.id.as_str()).chain(hrefs.iter().copied());
    // An arXiv id counts only where it is unmistakable: an arXiv or Hugging Face link, or
    // an id that says arXiv. A blog's guid `post/1234567` is not `hep-th/1234567`.
    let arxiv = std::iter::once(entry.id.as_str())
        .filter(|id| id.to_ascii_lowercase().contains("arxiv"))
        .find_map(ArxivId::parse)
        .or_else(|| hrefs.iter().find_map(|h| ArxivId::from_url(h)));
    let mut paper = if let Some(id) = arxiv {
        Paper::from_arxiv(&id, title)
    } else if let Some((doi, version)) = candidates.clone().find_map(preprint_doi) {
        let mut p = Paper::new(PaperKey::doi(&doi)?, title);
        p.doi = Some(doi);
        p.version = version;
        p
    } else if let Some(doi) = candidates.clone().find_map(normalise_doi) {
        let mut p = Paper::new(PaperKey::doi(&doi)?, title);
        p.doi = Some(doi);
        p
    } else {
        let key = candidates.clone().find_map(PaperKey::url)?;
        Paper::new(key, title)
    };
    if paper.links.abs.is_none() {
        paper.links.abs = hrefs.first().map(|h| h.to_string());
    }
    // RSS 1.0 says nothing of a description's type; publishers put HTML in it as they do
    // in RSS 2.0, where feed-rs already treats it as HTML.
    let summary = match (&feed.feed_type, entry.summary.as_ref()) {
        (FeedType::RSS1, Some(s)) => text::from_html(&s.content),
        (_, summary) => feed_text(summary),
    };
    paper.abstract_text = if summary.is_empty() {
        entry
            .content
            .as_ref()
            .and_then(|c| {
                c.body
                    .as_deref()
                    .map(|b| text::by_media_type(b, c.content_type.as_str()))
            })
            .unwrap_or_default()
    } else {
        summary
    };
    paper.authors = authors.unwrap_or_else(|| people(feed, entry, &hrefs));
    for c in &entry.categories {
        // The term is the code (`cs.LG`) that `cat:` queries name; a label is for display.
        let term = text::plain(&c.term);
        if !term.is_empty() && !paper.categories.contains(&term) {
            paper.categories.push(term);
        }
    }
    paper.published = entry.published.or(entry.updated);
    Some(Ingested {
        paper,
        entry_id: entry.id.clone(),
        announce_type: None,
    })
}

/// The authors of a feed-rs entry, one person per Atom `<author>`, `dc:creator` or JSON
/// Feed author object, named as given ("Smith, John" is one person). Only bioRxiv and
/// medRxiv, whose one `dc:creator` lists everyone as `Last, F., Other, G.`, are split. An
/// Atom entry without authors has its feed's (RFC 4287 4.2.1).
fn people(feed: &Feed, entry: &Entry, hrefs: &[&str]) -> Vec<String> {
    let mut persons = &entry.authors;
    if persons.is_empty() && feed.feed_type == FeedType::Atom {
        persons = &feed.authors;
    }
    let names = persons.iter().filter_map(|p| p.name.as_deref());
    if hrefs.iter().any(|h| preprint_doi(h).is_some()) {
        names.flat_map(split_names).collect()
    } else {
        names.map(text::literal).filter(|n| !n.is_empty()).collect()
    }
}

/// bioRxiv and medRxiv links carry the DOI suffix and version:
/// `…/cgi/content/short/2023.12.16.571984v1?rss=1` → (`10.1101/2023.12.16.571984`, 1).
fn preprint_doi(href: &str) -> Option<(String, Option<u32>)> {
    let url = url::Url::parse(href.trim()).ok()?;
    let host = url.host_str()?;
    if !(host.ends_with("biorxiv.org") || host.ends_with("medrxiv.org")) {
        return None;
    }
    let last = url.path_segments()?.next_back()?;
    let (suffix, version) = match last.rsplit_once('v') {
        Some((s, v)) if v.bytes().all(|b| b.is_ascii_digit()) && !v.is_empty() => {
            (s, v.parse().ok())
        }
        _ => (last, None),
    };
    let looks_right =
        suffix.split('.').count() == 4 && suffix.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    looks_right.then(|| (format!("10.1101/{suffix}"), version))
}

/// Author strings from feeds: `A; B`, `A, B and C`, or bioRxiv's `Last, I., Other, J. K.`,
/// where a comma also separates a surname from its initials.
fn split_names(raw: &str) -> Vec<String> {
    let raw = text::plain(raw);
    if raw.contains(';') {
        return raw
            .split(';')
            .map(text::plain)
            .filter(|n| !n.is_empty())
            .collect();
    }
    let is_initials = |s: &str| {
        !s.is_empty()
            && s.split_whitespace()
                .all(|w| w.ends_with('.') && w.chars().filter(|c| c.is_alphabetic()).count() <= 3)
    };
    let parts: Vec<&str> = raw
        .split(',')
        .flat_map(|p| p.split(" and "))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    let mut names = Vec::new();
    let mut i = 0;
    while i < parts.len() {
        if i + 1 < parts.len() && is_initials(parts[i + 1]) {
            names.push(format!("{}, {}", parts[i], parts[i + 1]));
            i += 2;
        } else {
            names.push(parts[i].to_string());
            i += 1;
        }
    }
    names
}

#[derive(Deserialize)]
struct PreprintPage {
    collection: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct Preprint {
    doi: Option<String>,
    title: Option<String>,
    authors: Option<String>,
    date: Option<String>,
    version: Option<String>,
    category: Option<String>,
    #[serde(rename = "abstract")]
    abstract_text: Option<String>,
    server: Option<String>,
}

/// `api.biorxiv.org/details/…` and `api.medrxiv.org/details/…`.
fn preprint_api(value: serde_json::Value) -> Result<Parsed, FeedError> {
    let page: PreprintPage =
        serde_json::from_value(value).map_err(|e| FeedError::Malformed(e.to_string()))?;
    Ok(Parsed::from_json_items(page.collection, preprint_entry))
}

fn preprint_entry(p: Preprint) -> Option<Ingested> {
    let doi = normalise_doi(p.doi.as_deref()?)?;
    let title = text::braced_symbols(&text::from_html(p.title.as_deref()?));
    if title.is_empty() {
        return None;
    }
    let mut paper = Paper::new(PaperKey::doi(&doi)?, title);
    paper.version = p.version.as_deref().and_then(|v| v.trim().parse().ok());
    paper.abstract_text = text::braced_symbols(&text::strip_jats_markers(&text::from_html(
        p.abstract_text.as_deref().unwrap_or_default(),
    )));
    paper.authors = p.authors.as_deref().map(split_names).unwrap_or_default();
    paper.categories = p
        .category
        .map(|c| text::plain(&c))
        .filter(|c| !c.is_empty())
        .into_iter()
        .collect();
    paper.published = p.date.as_deref().and_then(text::date_utc);
    let host = match p.server.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("medrxiv") => "www.medrxiv.org",
        _ => "www.biorxiv.org",
    };
    let version = paper.version.map(|v| format!("v{v}")).unwrap_or_default();
    paper.links.abs = Some(format!("https://{host}/content/{doi}{version}"));
    paper.links.pdf = Some(format!("https://{host}/content/{doi}{version}.full.pdf"));
    paper.doi = Some(doi.clone());
    Some(Ingested {
        paper,
        entry_id: doi,
        announce_type: None,
    })
}

#[derive(Deserialize)]
struct S2Page {
    data: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct S2Paper {
    #[serde(rename = "paperId")]
    paper_id: Option<String>,
    #[serde(rename = "externalIds")]
    external_ids: Option<std::collections::HashMap<String, serde_json::Value>>,
    url: Option<String>,
    title: Option<String>,
    #[serde(rename = "abstract")]
    abstract_text: Option<String>,
    #[serde(rename = "publicationDate")]
    publication_date: Option<String>,
    #[serde(default)]
    authors: Vec<S2Author>,
    #[serde(rename = "openAccessPdf")]
    open_access_pdf: Option<S2Pdf>,
}

#[derive(Deserialize)]
struct S2Author {
    name: Option<String>,
}

#[derive(Deserialize)]
struct S2Pdf {
    url: Option<String>,
}

/// A Semantic Scholar `/graph/v1/paper/search` page.
fn semantic_scholar(value: serde_json::Value) -> Result<Parsed, FeedError> {
    let page: S2Page =
        serde_json::from_value(value).map_err(|e| FeedError::Malformed(e.to_string()))?;
    Ok(Parsed::from_json_items(page.data, s2_entry))
}

fn s2_entry(p: S2Paper) -> Option<Ingested> {
    let title = text::plain(p.title.as_deref()?);
    if title.is_empty() {
        return None;
    }
    let ids = p.external_ids.unwrap_or_default();
    let id_str = |k: &str| ids.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let doi = id_str("DOI").as_deref().and_then(normalise_doi);
    let paper_id = p.paper_id?;
    let mut paper = match id_str("ArXiv").as_deref().and_then(ArxivId::parse) {
        Some(id) => Paper::from_arxiv(&id, title),
        None => match doi.as_deref().and_then(PaperKey::doi) {
            Some(key) => Paper::new(key, title),
            None => Paper::new(PaperKey::url(p.url.as_deref()?)?, title),
        },
    };
    paper.doi = doi;
    paper.abstract_text = text::plain(p.abstract_text.as_deref().unwrap_or_default());
    paper.authors = text::names(p.authors.into_iter().map(|a| a.name));
    paper.published = p.publication_date.as_deref().and_then(text::date_utc);
    if paper.links.pdf.is_none() {
        paper.links.pdf = p.open_access_pdf.and_then(|x| x.url);
    }
    paper.links.discussion = p.url;
    Some(Ingested {
        paper,
        entry_id: paper_id,
        announce_type: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn biorxiv_links_give_the_doi_and_version() {
        assert_eq!(
            preprint_doi("http://biorxiv.org/cgi/content/short/2023.12.16.571984v1?rss=1"),
            Some(("10.1101/2023.12.16.571984".to_string(), Some(1)))
        );
        assert_eq!(
            preprint_doi("https://example.org/2023.12.16.571984v1"),
            None
        );
    }

    #[test]
    fn surname_comma_initials_stay_together() {
        assert_eq!(
            split_names("LAPALU, N., SIMON, A., Plaumann, P.-L., O'Connell, R. J."),
            [
                "LAPALU, N.",
                "SIMON, A.",
                "Plaumann, P.-L.",
                "O'Connell, R. J."
            ]
        );
        assert_eq!(
            split_names("Kumar, P.; Aurange, A."),
            ["Kumar, P.", "Aurange, A."]
        );
        assert_eq!(
            split_names("Ada Lovelace, Alan Turing"),
            ["Ada Lovelace", "Alan Turing"]
        );
    }
}
