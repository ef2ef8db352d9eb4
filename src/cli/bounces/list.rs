//! `paperboy bounces list [--since DATE] [--json]`: every bounce and complaint stored.

use crate::cli::{CliError, parse_since, print_json};
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only those received on or after this date (YYYY-MM-DD, UTC) or instant (RFC 3339).
    #[arg(long, value_name = "DATE")]
    since: Option<String>,
    /// Print JSON only.
    #[arg(long)]
    json: bool,
}

pub async fn run(store: &Store, args: Args) -> Result<(), CliError> {
    let since = args.since.as_deref().map(parse_since).transpose()?;
    let events = store.bounce_events(since).await?;
    if args.json {
        return print_json(&events);
    }
    if events.is_empty() {
        eprintln!("no bounces or complaints");
        return Ok(());
    }
    for e in &events {
        say!("{} {}", e.email, super::describe(e));
    }
    Ok(())
}
