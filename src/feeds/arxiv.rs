//! arXiv's two formats: the daily RSS listing (`rss.arxiv.org`) and the API's Atom search
//! results (`export.arxiv.org/api/query`), including the API's error entries.

use std::collections::HashMap;

use feed_rs::model::{Entry, Feed};

use super::{FeedError, Parsed, text};
use crate::domain::{AnnounceType, ArxivId, Ingested, Paper, normalise_doi};

/// The daily listing. An empty listing (weekends, holidays) is a valid, empty result.
/// `body` is the document `feed` was read from, for the `<arxiv:DOI>` feed-rs leaves out.
pub(super) fn rss(feed: &Feed, body: &[u8]) -> Parsed {
    let dois = rss_dois(body);
    let mut parsed = Parsed::default();
    for entry in &feed.entries {
        parsed.push(rss_entry(entry, &dois));
    }
    parsed
}

/// The `<arxiv:DOI>` of each item, by arXiv id (without version): the journal version's
/// DOI, which lets the journal's own entry merge with the preprint. An item may list
/// several DOIs; the first is kept. Reading stops quietly at the first XML error, which the
/// feed parser has already judged.
fn rss_dois(body: &[u8]) -> HashMap<String, String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut dois = HashMap::new();
    let mut buf = Vec::new();
    let mut field: Option<&'static str> = None;
    let (mut id, mut doi): (Option<ArxivId>, Option<String>) = (None, None);
    loop {
        let event = match reader.read_event_into(&mut buf) {
            Ok(Event::Eof) | Err(_) => break,
            Ok(event) => event,
        };
        match event {
            Event::Start(e) => {
                field = match e.local_name().as_ref() {
                    "item" => {
                        (id, doi) = (None, None);
                        None
                    }
                    "guid" | "link" => Some("id"),
                    "DOI" | "doi" => Some("doi"),
                    _ => None,
                };
            }
            Event::Text(t) => {
                let value = t.into_inner();
                match field {
                    Some("id") if id.is_none() => id = ArxivId::parse(&value),
                    Some("doi") if doi.is_none() => {
                        doi = value.split_whitespace().find_map(normalise_doi);
                    }
                    _ => {}
                }
            }
            Event::End(e) => {
                field = None;
                if e.local_name().as_ref() == "item"
                    && let (Some(id), Some(doi)) = (id.take(), doi.take())
                {
                    dois.insert(id.base().to_string(), doi);
                }
            }
            _ => {}
        }
        buf.clear();
    }
    dois
}

fn rss_entry(entry: &Entry, dois: &HashMap<String, String>) -> Option<Ingested> {
    let id = ArxivId::parse(&entry.id)
        .or_else(|| entry.links.iter().find_map(|l| ArxivId::from_url(&l.href)))?;
    // arXiv titles and descriptions are plain text, and may hold LaTeX such as `$x<y$`; the
    // XML layer already decoded their entities, once, as arXiv meant.
    let title = text::literal(&entry.title.as_ref()?.content);
    if title.is_empty() {
        return None;
    }
    let description = entry
        .summary
        .as_ref()
        .map(|s| s.content.as_str())
        .unwrap_or_default();
    let (announce_type, abstract_text) = split_description(description);
    let mut paper = Paper::from_arxiv(&id, title);
    paper.abstract_text = text::literal(abstract_text);
    paper.doi = dois.get(id.base()).cloned();
    paper.authors = entry
        .authors
        .iter()
        .flat_map(|p| split_author_list(p.name.as_deref().unwrap_or_default()))
        .collect();
    paper.categories = categories(entry);
    paper.published = entry.published.or(entry.updated);
    Some(Ingested {
        paper,
        entry_id: entry.id.clone(),
        announce_type,
    })
}

/// `arXiv:2409.12345v1 Announce Type: new \nAbstract: …` → (new, "…").
fn split_description(description: &str) -> (Option<AnnounceType>, &str) {
    let announce = description
        .split_once("Announce Type:")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(AnnounceType::parse);
    let abstract_text = match description.split_once("Abstract:") {
        Some((_, rest)) => rest,
        None => description,
    };
    (announce, abstract_text)
}

/// `dc:creator` holds every author in one string: `A. One, B. Two, C. Three`.
fn split_author_list(names: &str) -> Vec<String> {
    names
        .split(',')
        .flat_map(|part| part.split(" and "))
        .map(text::literal)
        .filter(|n| !n.is_empty())
        .collect()
}

fn categories(entry: &Entry) -> Vec<String> {
    let mut cats: Vec<String> = Vec::new();
    for c in &entry.categories {
        let term = text::plain(&c.term);
        if !term.is_empty() && !cats.contains(&term) {
            cats.push(term);
        }
    }
    cats
}

/// Search results. An error entry (`…/api/errors#…`) fails the whole response with the
/// message arXiv gave; zero results is a valid, empty result.
pub(super) fn api(feed: &Feed) -> Result<Parsed, FeedError> {
    if let Some(message) = api_error(feed) {
        return Err(FeedError::ArxivApi(message));
    }
    let mut parsed = Parsed::default();
    for entry in &feed.entries {
        parsed.push(api_entry(entry));
    }
    Ok(parsed)
}

/// The message of an arXiv API error feed, if this is one.
pub(super) fn api_error(feed: &Feed) -> Option<String> {
    feed.entries
        .iter()
        .find(|e| e.id.contains("/api/errors"))
        .map(|e| {
            e.summary
                .as_ref()
                .map(|s| text::plain(&s.content))
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| e.id.clone())
        })
}

fn api_entry(entry: &Entry) -> Option<Ingested> {
    let id = ArxivId::parse(&entry.id)?;
    let title = text::literal(&entry.title.as_ref()?.content);
    if title.is_empty() {
        return None;
    }
    let mut paper = Paper::from_arxiv(&id, title);
    paper.abstract_text = entry
        .summary
        .as_ref()
        .map(|s| text::literal(&s.content))
        .unwrap_or_default();
    paper.authors = entry
        .authors
        .iter()
        .map(|p| text::literal(p.name.as_deref().unwrap_or_default()))
        .filter(|n| !n.is_empty())
        .collect();
    paper.categories = categories(entry);
    paper.doi = entry
        .links
        .iter()
        .filter(|l| l.title.as_deref() == Some("doi"))
        .find_map(|l| normalise_doi(&l.href));
    // `published` is the first version's submission date; `updated` is this version's.
    paper.published = entry.published.or(entry.updated);
    Some(Ingested {
        paper,
        entry_id: entry.id.clone(),
        announce_type: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_description_prefix_is_split_off() {
        let (kind, abs) = split_description(
            "arXiv:2409.12345v2 Announce Type: replace-cross \nAbstract: We show.",
        );
        assert_eq!(kind, Some(AnnounceType::ReplaceCross));
        assert_eq!(abs.trim(), "We show.");
    }

    #[test]
    fn dois_are_read_per_item() {
        let body = br#"<rss xmlns:arxiv="http://arxiv.org/schemas/atom" version="2.0"><channel>
            <item><link>https://arxiv.org/abs/2609.00001</link><arxiv:DOI>10.1000/ABC 10.1000/def</arxiv:DOI></item>
            <item><link>https://arxiv.org/abs/2609.00002</link></item>
            </channel></rss>"#;
        let dois = rss_dois(body);
        assert_eq!(
            dois.get("2609.00001").map(String::as_str),
            Some("10.1000/abc")
        );
        assert_eq!(dois.len(), 1);
    }

    #[test]
    fn author_lists_split_on_commas_and_and() {
        assert_eq!(
            split_author_list("Ada Lovelace, Alan Turing and Grace Hopper"),
            ["Ada Lovelace", "Alan Turing", "Grace Hopper"]
        );
    }
}
