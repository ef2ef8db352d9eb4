//! `paperboy subscribers erase ADDR`: remove a subscriber and all their data; only a hash
//! of the address stays, on the suppression list.

use chrono::Utc;

use crate::cli::CliError;
use crate::domain::EmailAddress;
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The address whose reader and every trace of it are erased.
    address: String,
}

pub async fn run(store: &Store, args: Args) -> Result<(), CliError> {
    let email = EmailAddress::parse_known(&args.address)?;
    let erased = store.erase_subscriber(&email, Utc::now()).await?;
    if !erased {
        return Err(CliError::input(format!(
            "no reader {email} (it is on the suppression list now)"
        )));
    }
    tracing::info!(email = %email.masked(), "reader erased");
    say!("{email} erased; only a hash of the address is kept, so it is never mailed again");
    Ok(())
}
