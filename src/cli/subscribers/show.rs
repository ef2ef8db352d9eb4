//! `paperboy subscribers show ADDR [--json]`: one subscriber's settings, status, how many
//! papers they rated, bounces and complaints, lifted suppressions, and recent digests.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;

use crate::cli::{CliError, print_json};
use crate::domain::Preferences;
use crate::store::Store;

use super::find;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The reader's email address.
    address: String,
    /// Print JSON only.
    #[arg(long)]
    json: bool,
}

pub async fn run(store: &Store, args: Args) -> Result<(), CliError> {
    let subscriber = find(store, &args.address).await?;
    let digests = store.digests_of(subscriber.id).await?;
    let ratings = store.ratings_of(subscriber.id).await?;
    let more = ratings.iter().filter(|r| r.rating.is_more()).count();
    let less = ratings.len() - more;
    let bounces = store.bounces_of(subscriber.id).await?;
    let lifts = store.lifts_of(subscriber.id).await?;
    if args.json {
        return print_json(&json!({
            "subscriber": subscriber,
            "ratings": { "more": more, "less": less },
            "digests": digests,
            "bounces": bounces,
            "suppressions_lifted": lifts,
        }));
    }
    say!(
        "{} ({}), reader {}",
        subscriber.email,
        subscriber.status,
        subscriber.id
    );
    say!("  {}", settings_of(&subscriber.preferences));
    for q in subscriber.preferences.queries.lines() {
        say!("  query: {q}");
    }
    say!("  subscribed {}", when(subscriber.created_at));
    if let Some(t) = subscriber.confirmed_at {
        say!("  confirmed {}", when(t));
    }
    say!("  ratings: {more} more like this, {less} less like this");
    for b in &bounces {
        say!("  {}", super::super::bounces::describe(b));
    }
    for l in &lifts {
        say!(
            "  {} lifted {} by {}: {}",
            when(l.at),
            l.lifted,
            l.lifted_by,
            l.reason
        );
    }
    for d in digests.iter().take(10) {
        say!(
            "  digest {}: {} papers, {}, window to {}",
            d.id,
            d.total,
            d.status,
            when(d.window_end)
        );
    }
    Ok(())
}

/// An instant to the second, in UTC: `2026-12-01T08:00:00Z`.
fn when(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The subscriber's settings, as an operator reads them.
fn settings_of(p: &Preferences) -> String {
    let queries = match p.queries.lines().len() {
        0 => "no queries (the trending digest)".to_string(),
        1 => "1 query".to_string(),
        n => format!("{n} queries"),
    };
    format!(
        "{} at {:02}:00 {}, up to {} papers, {queries}",
        p.frequency,
        p.send_hour.get(),
        p.timezone.name(),
        p.max_papers.get()
    )
}
