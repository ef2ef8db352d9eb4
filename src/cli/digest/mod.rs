//! `paperboy digest run|preview`: compose (and deliver) every digest due at an instant, or
//! show what one reader would get; one file per subcommand.

mod preview;
mod run;

use crate::config::Settings;

use super::{CliError, open_store};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Build and deliver every digest due at that instant (default now).
    Run(run::Args),
    /// Render what a reader would get now (or at --at); sends and stores nothing.
    Preview(preview::Args),
}

pub async fn run(settings: Settings, cmd: Command) -> Result<(), CliError> {
    let store = open_store(&settings).await?;
    match cmd {
        Command::Run(args) => run::run(&settings, &store, args).await,
        Command::Preview(args) => preview::run(&settings, &store, args).await,
    }
}
