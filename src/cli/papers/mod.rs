//! `paperboy papers list|search|show`: the stored papers, one file per subcommand.

mod list;
mod search;
mod show;

use crate::config::Settings;

use super::CliError;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Every stored paper, oldest first.
    List(list::Args),
    /// Try a query against the stored papers, ranked and explained as in a digest.
    Search(search::Args),
    /// One paper and the feeds that carried it.
    Show(show::Args),
}

/// Each subcommand checks its arguments before it opens the database.
pub async fn run(settings: Settings, cmd: Command) -> Result<(), CliError> {
    match cmd {
        Command::List(args) => list::run(&settings, args).await,
        Command::Search(args) => search::run(&settings, args).await,
        Command::Show(args) => show::run(&settings, args).await,
    }
}
