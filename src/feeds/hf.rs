//! The Hugging Face daily papers API (`/api/daily_papers`): arXiv papers with upvotes,
//! comment counts and a discussion page.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{FeedError, Parsed, text};
use crate::domain::{ArxivId, Ingested, Paper};

#[derive(Deserialize)]
struct Item {
    paper: Option<HfPaper>,
    title: Option<String>,
    summary: Option<String>,
    thumbnail: Option<String>,
    #[serde(rename = "numComments")]
    num_comments: Option<i64>,
}

#[derive(Deserialize)]
struct HfPaper {
    id: Option<String>,
    title: Option<String>,
    summary: Option<String>,
    #[serde(default)]
    authors: Vec<HfAuthor>,
    #[serde(rename = "publishedAt")]
    published_at: Option<DateTime<Utc>>,
    upvotes: Option<i64>,
}

#[derive(Deserialize)]
struct HfAuthor {
    name: Option<String>,
}

pub(super) fn daily_papers(body: &[u8]) -> Result<Parsed, FeedError> {
    // Parse each element on its own so that one odd entry is skipped, not fatal.
    let items: Vec<serde_json::Value> = serde_json::from_slice(body)
        .map_err(|e| FeedError::Malformed(format!("expected a JSON array of daily papers: {e}")))?;
    let mut parsed = Parsed::default();
    for value in items {
        let item = serde_json::from_value::<Item>(value).ok();
        parsed.push(item.and_then(entry));
    }
    Ok(parsed)
}

fn entry(item: Item) -> Option<Ingested> {
    let hf = item.paper?;
    let raw_id = hf.id?;
    let id = ArxivId::parse(&raw_id)?;
    let title = text::plain(hf.title.or(item.title).as_deref().unwrap_or_default());
    if title.is_empty() {
        return None;
    }
    // The id has no version: Hugging Face leaves versions to arXiv.
    let mut paper = Paper::from_arxiv(&id, title);
    paper.abstract_text = text::plain(hf.summary.or(item.summary).as_deref().unwrap_or_default());
    paper.authors = text::names(hf.authors.into_iter().map(|a| a.name));
    paper.published = hf.published_at;
    paper.upvotes = hf.upvotes;
    paper.comments = item.num_comments;
    paper.thumbnail = item.thumbnail.filter(|t| t.starts_with("https://"));
    paper.links.discussion = Some(format!("https://huggingface.co/papers/{}", id.base()));
    Some(Ingested {
        paper,
        entry_id: raw_id,
        announce_type: None,
    })
}
