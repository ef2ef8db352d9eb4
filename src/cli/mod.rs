//! The command line: one file per subcommand (a folder for a command with many), each
//! with its own options and `run`. Errors carry their exit code: 2 for bad input, 1 for
//! everything else. Results go to stdout through `say!`, so that a reader who goes away
//! (`paperboy papers list | head -1`) ends the command quietly, as Unix tools do.

/// Writes one line of a command's results to stdout, returning from the command with
/// [`CliError::Closed`] when the reader of the pipe has gone away.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::cli::write_line(format_args!($($arg)*))?
    };
}

mod bounces;
mod config;
mod digest;
mod feeds;
mod fetch;
mod migrate;
mod papers;
mod resend;
mod send_test_email;
mod serve;
mod stats;
mod subscribers;

use std::fmt;
use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, Utc};
use clap::{Parser, Subcommand};

use crate::config::Settings;
use crate::delivery::MailError;
use crate::domain::Invalid;
use crate::error::chain;
use crate::store::{Store, StoreError};

#[derive(Debug, Parser)]
#[command(
    name = "paperboy",
    version,
    about = "Emails researchers a personal digest of new and trending papers"
)]
pub struct Cli {
    /// Settings file (default: ./paperboy.toml when it exists).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the web service and the feed scheduler.
    Serve(serve::Args),
    /// Apply database migrations.
    Migrate,
    /// Poll feeds now; one summary line per feed.
    Fetch(fetch::Args),
    /// List, add or remove feeds.
    #[command(subcommand)]
    Feeds(feeds::Command),
    /// Look at stored papers.
    #[command(subcommand)]
    Papers(papers::Command),
    /// Compose and deliver digests, or preview one.
    #[command(subcommand)]
    Digest(digest::Command),
    /// Deliver an existing digest again: one reader's, or everyone's of a date.
    Resend(resend::Args),
    /// Reader administration: list, show, add, remove, import, export, erase, rate, like,
    /// unsuppress.
    #[command(subcommand)]
    Subscribers(subscribers::Command),
    /// Bounces and complaints: list them, or import them from a mailbox.
    #[command(subcommand)]
    Bounces(bounces::Command),
    /// Papers, feed health, readers, digests and deliveries, counted.
    Stats(stats::Args),
    /// Send one test message through the configured mailer.
    SendTestEmail(send_test_email::Args),
    /// The effective settings and where each came from (default, file, environment),
    /// secrets redacted.
    Config(config::Args),
}

/// A failed command, with the exit code it maps to. Its Display is the error and each of
/// its causes, once each: what `main` prints after `error: `.
#[derive(Debug)]
pub enum CliError {
    /// The user asked for something malformed or unknown: exit 2.
    Input(anyhow::Error),
    /// Anything else: exit 1.
    Other(anyhow::Error),
    /// Standard output was closed by its reader (`| head`): exit 0 without a word.
    Closed,
}

impl CliError {
    /// Bad input, told in a message of our own.
    fn input(message: String) -> CliError {
        CliError::Input(anyhow::Error::msg(message))
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Input(_) => 2,
            CliError::Other(_) => 1,
            CliError::Closed => 0,
        }
    }

    /// True when there is nothing to say: the output's reader went away.
    pub fn is_quiet(&self) -> bool {
        matches!(self, CliError::Closed)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Input(e) | CliError::Other(e) => write!(f, "{}", chain(e.as_ref())),
            CliError::Closed => f.write_str("standard output was closed"),
        }
    }
}

impl From<anyhow::Error> for CliError {
    fn from(e: anyhow::Error) -> Self {
        CliError::Other(e)
    }
}

impl From<Invalid> for CliError {
    fn from(e: Invalid) -> Self {
        CliError::Input(e.into())
    }
}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(_) | StoreError::NotFound(_) => CliError::Input(e.into()),
            other => CliError::Other(other.into()),
        }
    }
}

impl From<crate::config::ConfigError> for CliError {
    fn from(e: crate::config::ConfigError) -> Self {
        CliError::Input(e.into())
    }
}

/// A mail setting that is wrong is the operator's input; anything else failed.
impl From<MailError> for CliError {
    fn from(e: MailError) -> Self {
        match e {
            MailError::Config { .. } => CliError::Input(e.into()),
            other => CliError::Other(other.into()),
        }
    }
}

impl Cli {
    pub async fn run(self) -> Result<(), CliError> {
        let settings = Settings::load(self.config.as_deref())?;
        crate::telemetry::init(&settings.log, settings.log_format);
        match self.command {
            Command::Serve(args) => serve::run(settings, args).await,
            Command::Migrate => migrate::run(settings).await,
            Command::Fetch(args) => fetch::run(settings, args).await,
            Command::Feeds(cmd) => feeds::run(settings, cmd).await,
            Command::Papers(cmd) => papers::run(settings, cmd).await,
            Command::Digest(cmd) => digest::run(settings, cmd).await,
            Command::Subscribers(cmd) => subscribers::run(settings, cmd).await,
            Command::Bounces(cmd) => bounces::run(settings, cmd).await,
            Command::Stats(args) => stats::run(settings, args).await,
            Command::Resend(args) => resend::run(settings, args).await,
            Command::SendTestEmail(args) => send_test_email::run(settings, args).await,
            Command::Config(args) => config::run(self.config.as_deref(), args),
        }
    }
}

/// Opens the configured database, migrated, for a command.
async fn open_store(settings: &Settings) -> Result<Store, CliError> {
    let store = Store::open(&settings.database_url)
        .await
        .map_err(|e| CliError::Other(anyhow::Error::new(e).context("opening the database")))?;
    store
        .seed_default_feeds(Utc::now())
        .await
        .map_err(|e| CliError::Other(e.into()))?;
    Ok(store)
}

/// `2026-11-28` (midnight UTC) or a full RFC 3339 instant.
fn parse_since(raw: &str) -> Result<DateTime<Utc>, CliError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
        .ok_or_else(|| CliError::input(format!("bad date {raw:?}: use YYYY-MM-DD or RFC 3339")))
}

/// A progress bar on stderr when it is a terminal; a hidden one when piped.
fn progress_bar(len: usize, what: &'static str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len as u64);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({eta} left)")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what);
    bar.tick();
    bar
}

/// Delivers everything due now, with a progress bar of `expected` sends on a terminal.
async fn deliver_now(
    settings: &Settings,
    store: &Store,
    mailer: &crate::delivery::Mailer,
    expected: usize,
    what: &'static str,
) -> Result<crate::delivery::DrainReport, CliError> {
    let links = crate::app::links_for(settings, store).await?;
    let bar = progress_bar(expected, what);
    let tick = bar.clone();
    let worker = crate::delivery::Worker::new(
        store.clone(),
        mailer.clone(),
        links,
        settings.delivery.clone(),
    )
    .with_progress(std::sync::Arc::new(move || tick.inc(1)));
    let report = worker.drain().await;
    bar.finish_and_clear();
    Ok(report?)
}

/// Writes one line to stdout: what `say!` expands to.
fn write_line(args: fmt::Arguments<'_>) -> Result<(), CliError> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::BrokenPipe => CliError::Closed,
            _ => CliError::Other(anyhow::Error::new(e).context("writing to standard output")),
        })
}

/// Prints a value as pretty JSON on stdout.
fn print_json(value: &impl serde::Serialize) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| CliError::Other(e.into()))?;
    say!("{text}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every command, argument and option says what it is for in `--help`.
    #[test]
    fn every_command_and_argument_has_a_help_line() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let path = format!("{path} {}", cmd.get_name());
            if cmd.get_about().is_none() {
                missing.push(path.clone());
            }
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &path, missing);
            }
        }
        let mut missing = Vec::new();
        let mut cli = Cli::command();
        cli.build();
        walk(&cli, "", &mut missing);
        assert!(missing.is_empty(), "no help line: {missing:#?}");
    }

    #[test]
    fn an_error_names_each_cause_once() {
        let store = StoreError::Database(sqlx::Error::Protocol("bad reply".into()));
        let e = CliError::Other(anyhow::Error::new(store).context("opening the database"));
        assert_eq!(
            e.to_string(),
            "opening the database: database error: encountered unexpected or invalid data: bad reply"
        );
        let chained = anyhow::anyhow!("disk full")
            .context("storing")
            .context("fetching");
        assert_eq!(
            CliError::Other(chained).to_string(),
            "fetching: storing: disk full"
        );
        let refused = MailError::config_because("SMTP URL", url::ParseError::EmptyHost);
        let e = CliError::from(refused);
        assert_eq!(e.exit_code(), 2);
        assert_eq!(e.to_string(), "mail settings: SMTP URL: empty host");
    }

    #[test]
    fn since_accepts_dates_and_instants() {
        assert_eq!(
            parse_since("2026-11-28").unwrap().to_rfc3339(),
            "2026-11-28T00:00:00+00:00"
        );
        assert!(parse_since("2026-11-28T10:00:00+02:00").is_ok());
        assert_eq!(parse_since("yesterday").unwrap_err().exit_code(), 2);
    }
}
