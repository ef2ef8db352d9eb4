//! `paperboy stats`: papers, feed health, readers by status, digests and deliveries by state.

use chrono::Utc;
use serde_json::json;

use crate::config::Settings;

use super::{CliError, open_store, print_json};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the counts and feed health as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(settings: Settings, args: Args) -> Result<(), CliError> {
    let store = open_store(&settings).await?;
    let stats = store.stats().await?;
    let feeds = store.list_feeds().await?;
    let now = Utc::now();
    if args.json {
        let feeds: Vec<_> = feeds
            .iter()
            .map(|f| {
                json!({
                    "name": f.name,
                    "last_success_age_secs": f.health.last_success_at.map(|t| (now - t).num_seconds()),
                    "consecutive_failures": f.health.consecutive_failures,
                    "last_error": f.health.last_error,
                    "warning": f.health.warning,
                })
            })
            .collect();
        return print_json(&json!({ "stats": stats, "feeds": feeds }));
    }
    let line = |title: &str, counts: &[(String, i64)]| -> Result<(), CliError> {
        let parts: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
        say!(
            "{title}: {}",
            if parts.is_empty() {
                "none".to_string()
            } else {
                parts.join(", ")
            }
        );
        Ok(())
    };
    say!("papers: {}", stats.papers);
    for f in &feeds {
        let age = f
            .health
            .last_success_at
            .map(|t| format!("last success {} min ago", (now - t).num_minutes()))
            .unwrap_or_else(|| "never fetched successfully".into());
        say!(
            "feed {}: {age}, {} failures in a row",
            f.name,
            f.health.consecutive_failures
        );
        if let Some(warning) = &f.health.warning {
            println!("feed {}: degraded: {warning}", f.name);
        }
    }
    line("readers", &stats.subscribers)?;
    line("digests", &stats.digests)?;
    line("deliveries", &stats.deliveries)?;
    say!("suppressed addresses: {}", stats.suppressed);
    Ok(())
}
