//! `paperboy papers show KEY [--json]`: one paper and the feeds that carried it.

use serde_json::json;

use crate::cli::{CliError, open_store, print_json};
use crate::config::Settings;
use crate::domain::PaperKey;
use crate::store::{PaperSource, StoredPaper};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// arxiv:ID, a bare arXiv id, doi:DOI or url:URL.
    key: String,
    /// Print the paper and its sources as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(settings: &Settings, args: Args) -> Result<(), CliError> {
    let key = PaperKey::parse(&args.key)?;
    let store = open_store(settings).await?;
    let (stored, sources) = store
        .paper(&key)
        .await?
        .ok_or_else(|| CliError::input(format!("no paper {key}")))?;
    if args.json {
        return print_json(&json!({ "paper": stored, "sources": sources }));
    }
    print_text(&stored, &sources)?;
    Ok(())
}

/// Every field that has a value, one per line, then the abstract.
fn print_text(stored: &StoredPaper, sources: &[PaperSource]) -> Result<(), CliError> {
    let p = &stored.paper;
    say!("{}\n{}", p.key, p.title);
    if !p.authors.is_empty() {
        say!("authors: {}", p.authors.join(", "));
    }
    if !p.categories.is_empty() {
        say!("categories: {}", p.categories.join(" "));
    }
    if let Some(v) = p.version {
        say!("version: {v}");
    }
    if let Some(doi) = &p.doi {
        say!("doi: {doi}");
    }
    if let Some(u) = p.upvotes {
        say!("upvotes: {u}");
    }
    for (label, link) in [
        ("abstract", &p.links.abs),
        ("pdf", &p.links.pdf),
        ("discussion", &p.links.discussion),
    ] {
        if let Some(link) = link {
            say!("{label}: {link}");
        }
    }
    say!("first stored: {}", stored.first_seen_at.to_rfc3339());
    for s in sources {
        say!(
            "source: {} ({}{})",
            s.feed,
            s.entry_id,
            s.announce_type
                .as_deref()
                .map(|a| format!(", {a}"))
                .unwrap_or_default()
        );
    }
    if !p.abstract_text.is_empty() {
        say!("\n{}", p.abstract_text);
    }
    Ok(())
}
