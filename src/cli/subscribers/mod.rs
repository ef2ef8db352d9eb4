//! `paperboy subscribers list|show|add|remove|import|export|erase|rate|like|unsuppress`: subscriber
//! administration, one file per subcommand; what several of them share is here.

mod add;
mod erase;
mod export;
mod import;
mod like;
mod list;
mod rate;
mod remove;
mod show;
mod unsuppress;

use crate::config::Settings;
use crate::domain::Subscriber;
use crate::domain::{
    EmailAddress, Frequency, MaxPapers, Preferences, QueryList, SendHour, TimeZone,
};
use crate::store::{ConsentText, Store};

use super::{CliError, open_store};

/// What an operator's addition is recorded as agreeing to.
const CLI_CONSENT: ConsentText<'static> = ConsentText {
    version: "cli",
    text: "Added by an operator with `paperboy subscribers add` or `import`.",
};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Every reader (or those in one status), oldest first.
    List(list::Args),
    /// One reader: settings, status and recent digests.
    Show(show::Args),
    /// Add a reader; without --confirmed they get a confirmation link first.
    Add(add::Args),
    /// Unsubscribe a reader (their record stays; see erase).
    Remove(remove::Args),
    /// Add readers from CSV: email,query[,frequency,send_hour,timezone,confirmed].
    Import(import::Args),
    /// Everything held on a reader, as JSON.
    Export(export::Args),
    /// Remove a reader and all their data; only a hash of the address stays, so that it is
    /// never mailed again.
    Erase(erase::Args),
    /// Record "more / less like this" ratings of stored papers for a reader.
    Rate(rate::Args),
    /// Record the papers a reader likes (arXiv ids, links or DOIs, one per line, or a
    /// BibTeX export) as "more like this"; papers paperboy lacks are fetched from arXiv.
    Like(like::Args),
    /// Lift a suppression (a bounce, a complaint or an erasure) and record who and why.
    Unsuppress(unsuppress::Args),
}

pub async fn run(settings: Settings, cmd: Command) -> Result<(), CliError> {
    let store = open_store(&settings).await?;
    match cmd {
        Command::List(args) => list::run(&store, args).await,
        Command::Show(args) => show::run(&store, args).await,
        Command::Add(args) => add::run(&settings, &store, args).await,
        Command::Remove(args) => remove::run(&store, args).await,
        Command::Import(args) => import::run(&settings, &store, args).await,
        Command::Export(args) => export::run(&store, args).await,
        Command::Erase(args) => erase::run(&store, args).await,
        Command::Rate(args) => rate::run(&store, args).await,
        Command::Like(args) => like::run(&settings, &store, args).await,
        Command::Unsuppress(args) => unsuppress::run(&store, args).await,
    }
}

/// The subscriber with this address, or an input error naming it.
async fn find(store: &Store, address: &str) -> Result<Subscriber, CliError> {
    let email = EmailAddress::parse_known(address)?;
    store
        .subscriber_by_email(&email)
        .await?
        .ok_or_else(|| CliError::input(format!("no reader {email}")))
}

/// Preferences from the raw values of `add`'s options or an imported row.
fn preferences(
    queries: &str,
    frequency: &str,
    send_hour: i64,
    timezone: &str,
    max_papers: i64,
) -> Result<Preferences, CliError> {
    Ok(Preferences {
        queries: QueryList::parse(queries).map_err(|e| CliError::Input(e.into()))?,
        frequency: frequency.parse::<Frequency>()?,
        send_hour: SendHour::new(send_hour)?,
        timezone: timezone.parse::<TimeZone>()?,
        max_papers: MaxPapers::new(max_papers)?,
        layout: Default::default(),
    })
}
