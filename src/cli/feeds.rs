//! `paperboy feeds list|add|remove`.

use chrono::Utc;

use crate::config::Settings;
use crate::domain::{FeedKind, FeedName, FeedUrl};

use super::{CliError, open_store, print_json};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Every feed with its health.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Add a feed.
    Add {
        name: String,
        url: String,
        /// arxiv-rss, arxiv-api, hf-daily or feed (any RSS/Atom/JSON feed).
        #[arg(long)]
        kind: String,
    },
    /// Remove a feed; the papers it brought stay.
    Remove { name: String },
}

pub async fn run(settings: Settings, cmd: Command) -> Result<(), CliError> {
    match cmd {
        Command::List { json } => {
            let store = open_store(&settings).await?;
            let feeds = store.list_feeds().await?;
            if json {
                return print_json(&feeds);
            }
            for f in feeds {
                let last_success = f
                    .health
                    .last_success_at
                    .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                    .unwrap_or_else(|| "never".into());
                println!(
                    "{}\t{}\t{}\tlast success: {last_success}",
                    f.name, f.kind, f.url
                );
                if let Some(error) = &f.health.last_error {
                    println!(
                        "\t{} consecutive failure(s), last error: {error}",
                        f.health.consecutive_failures
                    );
                }
            }
            Ok(())
        }
        Command::Add { name, url, kind } => {
            // Validate everything before touching the database.
            let name = FeedName::parse(&name)?;
            let url = FeedUrl::parse(&url)?;
            let kind: FeedKind = kind.parse()?;
            let store = open_store(&settings).await?;
            let feed = store.add_feed(&name, &url, kind, Utc::now()).await?;
            println!("added feed {} ({}) {}", feed.name, feed.kind, feed.url);
            Ok(())
        }
        Command::Remove { name } => {
            let name = FeedName::parse(&name)?;
            let store = open_store(&settings).await?;
            if store.remove_feed(&name).await? {
                println!("removed feed {name}");
                Ok(())
            } else {
                Err(CliError::Input(format!("no feed named {name}")))
            }
        }
    }
}
