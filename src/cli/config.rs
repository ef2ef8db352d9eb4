//! `paperboy config [--json]`: the effective settings, each with where it came from
//! (default, the settings file, or an environment variable), secrets redacted.

use crate::cli::{CliError, print_json};
use crate::config::Settings;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the settings as JSON: key, value and source of each.
    #[arg(long)]
    json: bool,
}

pub fn run(path: Option<&std::path::Path>, args: Args) -> Result<(), CliError> {
    let all = Settings::explain(path, |k| std::env::var(k).ok())?;
    if args.json {
        return print_json(&all);
    }
    let width = all.iter().map(|e| e.key.len()).max().unwrap_or(0);
    for e in &all {
        let value = match &e.value {
            serde_json::Value::Null => "(not set)".to_string(),
            other => other.to_string(),
        };
        say!("{:<width$} = {value}  # {}", e.key, e.source);
    }
    Ok(())
}
