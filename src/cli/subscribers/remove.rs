//! `paperboy subscribers remove ADDR`: unsubscribe; the record stays (see `erase`).

use chrono::Utc;

use crate::cli::CliError;
use crate::domain::SubscriberStatus;
use crate::store::Store;

use super::find;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The address of the reader to unsubscribe.
    address: String,
}

pub async fn run(store: &Store, args: Args) -> Result<(), CliError> {
    let subscriber = find(store, &args.address).await?;
    use SubscriberStatus::*;
    let moved = store
        .change_status(
            subscriber.id,
            &[Pending, Active, Paused, Bounced],
            Unsubscribed,
            Utc::now(),
        )
        .await?;
    say!(
        "{} {}",
        subscriber.email,
        if moved {
            "unsubscribed"
        } else {
            "was already unsubscribed"
        }
    );
    Ok(())
}
