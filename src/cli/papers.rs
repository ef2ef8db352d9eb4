//! `paperboy papers list|show`.

use serde_json::json;

use crate::config::Settings;
use crate::domain::PaperKey;

use super::{CliError, open_store, parse_since, print_json};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Every stored paper, oldest first.
    List {
        /// Only papers first stored on or after this date (YYYY-MM-DD or RFC 3339).
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// One paper and the feeds that carried it.
    Show {
        /// arxiv:ID, a bare arXiv id, doi:DOI or url:URL.
        key: String,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(settings: Settings, cmd: Command) -> Result<(), CliError> {
    match cmd {
        Command::List { since, json } => {
            let since = since.as_deref().map(parse_since).transpose()?;
            let store = open_store(&settings).await?;
            let papers = store.list_papers(since).await?;
            if json {
                return print_json(&papers);
            }
            for p in papers {
                println!(
                    "{}\t{}\t{}",
                    p.paper.key,
                    p.first_seen_at.format("%Y-%m-%d"),
                    p.paper.title
                );
            }
            Ok(())
        }
        Command::Show { key, json } => {
            let key = PaperKey::parse(&key)?;
            let store = open_store(&settings).await?;
            let (stored, sources) = store
                .paper(&key)
                .await?
                .ok_or_else(|| CliError::Input(format!("no paper {key}")))?;
            if json {
                return print_json(&json!({ "paper": stored, "sources": sources }));
            }
            let p = &stored.paper;
            println!("{}\n{}", p.key, p.title);
            if !p.authors.is_empty() {
                println!("authors: {}", p.authors.join(", "));
            }
            if !p.categories.is_empty() {
                println!("categories: {}", p.categories.join(" "));
            }
            if let Some(v) = p.version {
                println!("version: {v}");
            }
            if let Some(doi) = &p.doi {
                println!("doi: {doi}");
            }
            if let Some(u) = p.upvotes {
                println!("upvotes: {u}");
            }
            for (label, link) in [
                ("abstract", &p.links.abs),
                ("pdf", &p.links.pdf),
                ("discussion", &p.links.discussion),
            ] {
                if let Some(link) = link {
                    println!("{label}: {link}");
                }
            }
            println!("first stored: {}", stored.first_seen_at.to_rfc3339());
            for s in &sources {
                println!(
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
                println!("\n{}", p.abstract_text);
            }
            Ok(())
        }
    }
}
