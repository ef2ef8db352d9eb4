//! `paperboy subscribers unsuppress ADDR --reason WHY [--by WHO]`: lifts what stops mail
//! to an address (a bounce, a complaint, an erasure) and records who lifted it and why.

use chrono::Utc;

use crate::cli::CliError;
use crate::domain::EmailAddress;
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The suppressed address.
    address: String,
    /// Why mail may go to it again (kept with the record).
    #[arg(long)]
    reason: String,
    /// Who lifts it (default: the user running the command).
    #[arg(long)]
    by: Option<String>,
}

pub async fn run(store: &Store, args: Args) -> Result<(), CliError> {
    let email = EmailAddress::parse(&args.address)?;
    let reason = args.reason.trim();
    if reason.is_empty() {
        return Err(CliError::input("--reason must say why".into()));
    }
    let by = args
        .by
        .or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("LOGNAME").ok())
        .filter(|b| !b.trim().is_empty())
        .ok_or_else(|| CliError::input("cannot tell who you are: pass --by".into()))?;
    let lifted = store
        .lift_suppression(&email, by.trim(), reason, Utc::now())
        .await?;
    if lifted.is_empty() {
        return Err(CliError::input(format!("{email} is not suppressed")));
    }
    say!(
        "{email}: lifted {} (by {}, because {reason})",
        lifted.join(" and "),
        by.trim()
    );
    if lifted.iter().any(|l| l == "complaint") {
        say!("  the reader complained and stays unsubscribed; they may subscribe again");
    }
    Ok(())
}
