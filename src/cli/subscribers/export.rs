//! `paperboy subscribers export ADDR`: everything held on a subscriber, as JSON (consents,
//! ratings, digests with their papers, deliveries).

use serde_json::{Value, json};

use crate::cli::{CliError, print_json};
use crate::store::{DigestRecord, Store};

use super::find;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The subscriber's email address.
    address: String,
}

pub async fn run(store: &Store, args: Args) -> Result<(), CliError> {
    let subscriber = find(store, &args.address).await?;
    let consents = store.consents(subscriber.id).await?;
    let ratings = store.ratings_of(subscriber.id).await?;
    let mut digests = Vec::new();
    for d in store.digests_of(subscriber.id).await? {
        digests.push(digest(store, d).await?);
    }
    print_json(&json!({
        "subscriber": subscriber,
        "consents": consents,
        "ratings": ratings,
        "digests": digests,
    }))
}

/// One digest with the keys of its papers and its deliveries.
async fn digest(store: &Store, d: DigestRecord) -> Result<Value, CliError> {
    let papers: Vec<String> = store
        .digest_entries(d.id, None)
        .await?
        .into_iter()
        .map(|e| e.paper.paper.key.as_str().to_string())
        .collect();
    let deliveries: Vec<_> = store
        .deliveries_of(d.id)
        .await?
        .into_iter()
        .map(|(id, status, message_id, attempts)| {
            json!({ "id": id, "status": status, "message_id": message_id, "attempts": attempts })
        })
        .collect();
    Ok(json!({ "digest": d, "papers": papers, "deliveries": deliveries }))
}
