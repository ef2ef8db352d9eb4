//! `paperboy subscribers show ADDR [--json]`: one subscriber's settings, status, how many
//! papers they rated, and recent digests.

use serde_json::json;

use crate::cli::{CliError, print_json};
use crate::email::notices;
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
    if args.json {
        return print_json(&json!({
            "subscriber": subscriber,
            "ratings": { "more": more, "less": less },
            "digests": digests,
        }));
    }
    println!(
        "{} ({}), reader {}",
        subscriber.email, subscriber.status, subscriber.id
    );
    println!("  {}", notices::describe(&subscriber.preferences));
    for q in subscriber.preferences.queries.lines() {
        println!("  query: {q}");
    }
    println!("  subscribed {}", subscriber.created_at.to_rfc3339());
    if let Some(t) = subscriber.confirmed_at {
        println!("  confirmed {}", t.to_rfc3339());
    }
    println!("  ratings: {more} more like this, {less} less like this");
    for d in digests.iter().take(10) {
        println!(
            "  digest {}: {} papers, {}, window to {}",
            d.id,
            d.total,
            d.status,
            d.window_end.to_rfc3339()
        );
    }
    Ok(())
}
