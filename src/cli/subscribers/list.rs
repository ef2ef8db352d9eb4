//! `paperboy subscribers list [--status S] [--json]`: every subscriber, oldest first.

use crate::cli::{CliError, print_json};
use crate::domain::SubscriberStatus;
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// pending, active, paused, unsubscribed or bounced.
    #[arg(long)]
    status: Option<String>,
    #[arg(long)]
    json: bool,
}

pub async fn run(store: &Store, args: Args) -> Result<(), CliError> {
    let status = args
        .status
        .as_deref()
        .map(str::parse::<SubscriberStatus>)
        .transpose()?;
    let subscribers = store.list_subscribers(status).await?;
    if args.json {
        return print_json(&subscribers);
    }
    for s in &subscribers {
        println!(
            "{:<40} {:<12} {:<12} {:02}:00 {:<20} {} queries",
            s.email,
            s.status,
            s.preferences.frequency.as_code(),
            s.preferences.send_hour.get(),
            s.preferences.timezone.name(),
            s.preferences.queries.lines().len()
        );
    }
    Ok(())
}
