//! `paperboy subscribers like ADDR --from FILE [--json]`: seeds a reader's taste with the
//! papers they like. The papers found (fetched from arXiv when paperboy lacks them) count
//! as "more like this" ratings; the entries that name no paper paperboy can find are
//! listed. A list that cannot be read records nothing.

use std::path::PathBuf;

use chrono::Utc;
use serde_json::json;

use crate::cli::{CliError, print_json};
use crate::config::Settings;
use crate::digest::taste;
use crate::domain::{Rating, RatingSource, SeedList};
use crate::feeds::{ArxivLookup, Fetcher, resolve_seeds};
use crate::store::Store;

use super::find;

/// A Zotero export of 500 papers with abstracts and notes is about a megabyte.
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The reader's email address.
    address: String,
    /// The papers: arXiv ids, arXiv links or DOIs, one per line (`#` starts a comment), or
    /// a BibTeX export such as Zotero's or Google Scholar's; at most 500 entries.
    #[arg(long, value_name = "FILE")]
    from: PathBuf,
    /// Print what was recorded, fetched and left unresolved as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(settings: &Settings, store: &Store, args: Args) -> Result<(), CliError> {
    let subscriber = find(store, &args.address).await?;
    let file = args.from.display().to_string();
    let unreadable = |e: std::io::Error| {
        CliError::Input(anyhow::Error::new(e).context(format!("reading {file}")))
    };
    let size = std::fs::metadata(&args.from).map_err(unreadable)?.len();
    if size > MAX_FILE_BYTES {
        return Err(CliError::input(format!(
            "{file} is larger than {} MiB, far more than 500 entries take; nothing was recorded",
            MAX_FILE_BYTES / (1024 * 1024)
        )));
    }
    let bytes = std::fs::read(&args.from).map_err(unreadable)?;
    let text = String::from_utf8(bytes).map_err(|_| {
        CliError::input(format!(
            "{file} is not UTF-8 text; nothing was recorded (save it as UTF-8)"
        ))
    })?;
    let list = SeedList::parse(&text)
        .map_err(|e| CliError::input(format!("{file}: {e}; nothing was recorded")))?;
    let fetcher = Fetcher::new(settings.fetch.clone(), &settings.user_agent())
        .map_err(|e| CliError::Other(e.into()))?;
    let arxiv = ArxivLookup::new(fetcher, &settings.fetch.arxiv_api_url);
    let now = Utc::now();
    let resolution = resolve_seeds(store, &arxiv, &list, now).await?;
    let recorded = if resolution.papers.is_empty() {
        0
    } else {
        taste::rate(
            store,
            subscriber.id,
            &resolution.paper_ids(),
            Rating::More,
            RatingSource::Import,
            now,
        )
        .await?
    };
    if args.json {
        return print_json(&json!({
            "subscriber": subscriber.email,
            "format": list.format.as_str(),
            "entries": list.entries.len(),
            "recorded": recorded,
            "papers": resolution.papers,
            "unresolved": resolution.unresolved,
        }));
    }
    let fetched: Vec<_> = resolution.fetched().collect();
    say!(
        "{recorded} papers recorded as \"more like this\" for {} ({} fetched from arXiv), \
         from {} {} entries; {} not resolved",
        subscriber.email,
        fetched.len(),
        list.entries.len(),
        list.format.as_str(),
        resolution.unresolved.len(),
    );
    for paper in fetched {
        say!("fetched: {}  {}", paper.key, paper.title);
    }
    for u in &resolution.unresolved {
        say!("not resolved: {}: {}", u.entry, u.reason);
    }
    Ok(())
}
