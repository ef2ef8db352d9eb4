//! `paperboy fetch [--feed NAME]`: poll feeds now, one summary line each; exit 1 when any
//! feed failed.

use anyhow::anyhow;

use crate::config::Settings;
use crate::domain::FeedName;
use crate::feeds::{Fetcher, fetch_feeds};

use super::{CliError, open_store, print_json};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this feed.
    #[arg(long, value_name = "NAME")]
    feed: Option<String>,
    /// Print the reports as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(settings: Settings, args: Args) -> Result<(), CliError> {
    let store = open_store(&settings).await?;
    let feeds = match &args.feed {
        Some(name) => {
            let name = FeedName::parse(name)?;
            let feed = store
                .feed(&name)
                .await?
                .ok_or_else(|| CliError::input(format!("no feed named {name}")))?;
            vec![feed]
        }
        None => store.list_feeds().await?,
    };
    let fetcher = Fetcher::new(settings.fetch.clone(), &settings.user_agent())
        .map_err(|e| CliError::Other(e.into()))?;
    let reports = fetch_feeds(&store, &fetcher, feeds).await;
    if args.json {
        print_json(&reports)?;
    } else {
        for report in &reports {
            say!("{report}");
        }
    }
    // The reasons go to stderr too: with --json stdout holds only JSON, and an operator
    // reading the error (a full disk, a read-only database) should not need the log.
    let failed: Vec<String> = reports
        .iter()
        .filter(|r| r.failed())
        .map(|r| r.to_string())
        .collect();
    if !failed.is_empty() {
        return Err(CliError::Other(anyhow!(
            "{} of {} feed(s) failed: {}",
            failed.len(),
            reports.len(),
            failed.join("; ")
        )));
    }
    Ok(())
}
