//! `paperboy papers list|show`.

use serde_json::json;

use crate::config::Settings;
use crate::domain::{Paper, PaperKey};
use crate::matching::{self, Query};

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
    /// Try a query against the stored papers, ranked and explained as in a digest.
    Search {
        /// A query in paperboy's language, e.g. 'diffusion -survey' or 'author:"Tri Dao"'.
        query: String,
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
        Command::Search { query, since, json } => {
            let query =
                Query::parse(&query).map_err(|e| CliError::Input(format!("bad query: {e}")))?;
            let since = since.as_deref().map(parse_since).transpose()?;
            let store = open_store(&settings).await?;
            let papers: Vec<Paper> = store
                .list_papers(since)
                .await?
                .into_iter()
                .map(|p| p.paper)
                .collect();
            let hits = matching::search(&query, &papers);
            if json {
                let rows: Vec<_> = hits
                    .iter()
                    .map(|h| {
                        json!({
                            "key": h.paper.key,
                            "title": h.paper.title,
                            "score": h.scored.score,
                            "upvotes": h.paper.upvotes,
                            "links": h.paper.links,
                            "matched": h.scored.explanation.queries,
                            "title_spans": h.scored.explanation.title_spans,
                            "abstract_spans": h.scored.explanation.abstract_spans,
                        })
                    })
                    .collect();
                return print_json(&rows);
            }
            for (i, h) in hits.iter().enumerate() {
                let e = &h.scored.explanation;
                println!("{:>3}. {}  score {:.2}", i + 1, h.paper.key, h.scored.score);
                println!("     {}", highlight(&h.paper.title, &e.title_spans));
                for q in &e.queries {
                    let fields: Vec<&str> = q.fields.iter().map(|f| f.name()).collect();
                    println!("     matched: {} in {}", q.query, fields.join(", "));
                }
            }
            eprintln!("{} of {} paper(s) match", hits.len(), papers.len());
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

/// Marks highlighted spans with brackets for a terminal.
fn highlight(text: &str, spans: &[std::ops::Range<usize>]) -> String {
    let mut out = String::with_capacity(text.len() + spans.len() * 2);
    let mut at = 0;
    for span in spans {
        if span.start < at || span.end > text.len() {
            continue;
        }
        out.push_str(&text[at..span.start]);
        out.push('[');
        out.push_str(&text[span.clone()]);
        out.push(']');
        at = span.end;
    }
    out.push_str(&text[at..]);
    out
}
