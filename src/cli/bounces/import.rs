//! `paperboy bounces import PATH [--json]`: reads DSNs, complaint reports and other
//! bounces from an .eml file, a Maildir or an mbox and records them; other mail is left
//! alone and counted.

use std::path::PathBuf;

use crate::cli::{CliError, print_json};
use crate::config::Settings;
use crate::delivery::bounces::{ImportError, import};
use crate::domain::Verp;
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A message (.eml), a Maildir folder, or an mbox file.
    path: PathBuf,
    /// Print JSON only.
    #[arg(long)]
    json: bool,
}

pub async fn run(settings: &Settings, store: &Store, args: Args) -> Result<(), CliError> {
    let links = crate::app::links_for(settings, store).await?;
    // Reading checks only the tag: the domain is the one mail goes out with, unused here.
    let verp = Verp::new(links.keys().clone(), "");
    let report = import(store, &verp, &args.path)
        .await
        .map_err(|e| match e {
            ImportError::Read { .. } => CliError::Input(e.into()),
            ImportError::Store(e) => CliError::from(e),
        })?;
    if args.json {
        return print_json(&report);
    }
    say!(
        "{} messages: {} bounces and complaints recorded ({} readers suppressed), {} seen before, {} naming no delivery of ours, {} not bounces, {} unreadable",
        report.messages,
        report.recorded,
        report.suppressed,
        report.duplicates,
        report.unmatched,
        report.not_bounces,
        report.unreadable
    );
    Ok(())
}
