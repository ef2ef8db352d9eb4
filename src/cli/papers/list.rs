//! `paperboy papers list [--since DATE] [--json]`: every stored paper, oldest first.

use crate::cli::{CliError, open_store, parse_since, print_json};
use crate::config::Settings;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only papers first stored on or after this date (YYYY-MM-DD or RFC 3339).
    #[arg(long, value_name = "DATE")]
    since: Option<String>,
    /// Print the papers as JSON instead of lines.
    #[arg(long)]
    json: bool,
}

pub async fn run(settings: &Settings, args: Args) -> Result<(), CliError> {
    let since = args.since.as_deref().map(parse_since).transpose()?;
    let store = open_store(settings).await?;
    let papers = store.list_papers(since).await?;
    if args.json {
        return print_json(&papers);
    }
    for p in papers {
        say!(
            "{}\t{}\t{}",
            p.paper.key,
            p.first_seen_at.format("%Y-%m-%d"),
            p.paper.title
        );
    }
    Ok(())
}
