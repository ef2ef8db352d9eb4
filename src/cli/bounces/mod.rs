//! `paperboy bounces list|import`: the bounces and complaints that came back, and reading
//! them from a mailbox.

mod import;
mod list;

use chrono::SecondsFormat;

use crate::config::Settings;
use crate::store::BounceEvent;

use super::{CliError, open_store};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Bounces and complaints received, oldest first.
    List(list::Args),
    /// Read DSNs, complaint reports (ARF) and other bounces from an .eml file, a Maildir
    /// or an mbox, and record them; other mail is left alone and counted.
    Import(import::Args),
}

pub async fn run(settings: Settings, cmd: Command) -> Result<(), CliError> {
    let store = open_store(&settings).await?;
    match cmd {
        Command::List(args) => list::run(&store, args).await,
        Command::Import(args) => import::run(&settings, &store, args).await,
    }
}

/// One event in a line: `2026-12-01T08:00:00Z hard bounce 5.1.1 of delivery 12 (dsn): …`.
pub fn describe(e: &BounceEvent) -> String {
    let what = match e.kind.as_str() {
        "complaint" => "complaint".to_string(),
        kind => format!("{kind} bounce"),
    };
    let mut line = format!("{} {what}", e.at.to_rfc3339_opts(SecondsFormat::Secs, true));
    if let Some(status) = &e.status {
        line.push_str(&format!(" {status}"));
    }
    if let Some(d) = e.delivery_id {
        line.push_str(&format!(" of delivery {d}"));
    }
    line.push_str(&format!(" ({})", e.source));
    if let Some(diagnostic) = &e.diagnostic {
        line.push_str(&format!(": {}", one_line(diagnostic)));
    }
    line
}

/// A diagnostic on one line, without control characters, at most 200 characters.
fn one_line(s: &str) -> String {
    let flat: String = s
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    match flat.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &flat[..i]),
        None => flat,
    }
}
