//! `paperboy feeds list|add|remove`: the feeds that are polled. Each subcommand is a few
//! lines, so they share this file, each with its own options and function.

use chrono::Utc;

use crate::config::Settings;
use crate::domain::{FeedKind, FeedName, FeedUrl};

use super::{CliError, open_store, print_json};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Every feed with its health.
    List(ListArgs),
    /// Add a feed.
    Add(AddArgs),
    /// Remove a feed; the papers it brought stay.
    Remove(RemoveArgs),
}

pub async fn run(settings: Settings, cmd: Command) -> Result<(), CliError> {
    match cmd {
        Command::List(args) => list(&settings, args).await,
        Command::Add(args) => add(&settings, args).await,
        Command::Remove(args) => remove(&settings, args).await,
    }
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Print the feeds and their health as JSON.
    #[arg(long)]
    json: bool,
}

async fn list(settings: &Settings, args: ListArgs) -> Result<(), CliError> {
    let store = open_store(settings).await?;
    let feeds = store.list_feeds().await?;
    if args.json {
        return print_json(&feeds);
    }
    for f in feeds {
        let last_success = f
            .health
            .last_success_at
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_else(|| "never".into());
        say!(
            "{}\t{}\t{}\tlast success: {last_success}",
            f.name,
            f.kind,
            f.url
        );
        if let Some(error) = &f.health.last_error {
            say!(
                "\t{} consecutive failure(s), last error: {error}",
                f.health.consecutive_failures
            );
        }
        if let Some(warning) = &f.health.warning {
            println!("\tdegraded: {warning}");
        }
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// A short name for the feed, unique among the feeds.
    name: String,
    /// The feed's http(s) URL.
    url: String,
    /// arxiv-rss, arxiv-api, hf-daily or feed (any RSS/Atom/JSON feed).
    #[arg(long)]
    kind: String,
}

async fn add(settings: &Settings, args: AddArgs) -> Result<(), CliError> {
    // Validate everything before touching the database.
    let name = FeedName::parse(&args.name)?;
    let url = FeedUrl::parse(&args.url)?;
    let kind: FeedKind = args.kind.parse()?;
    let store = open_store(settings).await?;
    let feed = store.add_feed(&name, &url, kind, Utc::now()).await?;
    say!("added feed {} ({}) {}", feed.name, feed.kind, feed.url);
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct RemoveArgs {
    /// The name of the feed to remove.
    name: String,
}

async fn remove(settings: &Settings, args: RemoveArgs) -> Result<(), CliError> {
    let name = FeedName::parse(&args.name)?;
    let store = open_store(settings).await?;
    if store.remove_feed(&name).await? {
        say!("removed feed {name}");
        Ok(())
    } else {
        Err(CliError::input(format!("no feed named {name}")))
    }
}
