//! `paperboy serve`: the web listener plus the scheduler, until Ctrl-C or SIGTERM.

use crate::app::{App, ServeOptions};
use crate::config::Settings;

use super::CliError;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Do not run the feed and digest schedule (for extra replicas).
    #[arg(long)]
    no_scheduler: bool,
    /// Do not deliver the outbox from this instance.
    #[arg(long)]
    no_worker: bool,
    /// Load sample papers and a sample reader, so that a first run with no network shows a
    /// confirmation email and a digest in the outbox.
    #[arg(long)]
    demo: bool,
}

pub async fn run(settings: Settings, args: Args) -> Result<(), CliError> {
    let options = ServeOptions {
        scheduler: !args.no_scheduler,
        worker: !args.no_worker,
        demo: args.demo,
    };
    let app = App::build(settings, options).await?;
    app.run(shutdown_signal()).await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}
