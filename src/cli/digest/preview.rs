//! `paperboy digest preview --email ADDR [--at T] [--format html|text|json]`: what one
//! subscriber would get; sends and stores nothing.

use crate::app::links_for;
use crate::cli::{CliError, parse_since};
use crate::config::Settings;
use crate::digest;
use crate::domain::EmailAddress;
use crate::email::digest as render;
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The subscriber whose digest to preview.
    #[arg(long, value_name = "ADDR")]
    email: String,
    /// Compose the window ending at this instant instead of now.
    #[arg(long, value_name = "RFC3339")]
    at: Option<String>,
    /// The email's HTML or text part, or every match as JSON (email order, with why).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Html,
    Text,
    /// `{"papers": [{"key", "title", "score", "queries", "reason", "in_email"}, …],
    /// "suggestions": […]}`
    Json,
}

pub async fn run(settings: &Settings, store: &Store, args: Args) -> Result<(), CliError> {
    let email = EmailAddress::parse_known(&args.email)?;
    let subscriber = store
        .subscriber_by_email(&email)
        .await?
        .ok_or_else(|| CliError::input(format!("no reader {email}")))?;
    let at = args
        .at
        .as_deref()
        .map(parse_since)
        .transpose()?
        .unwrap_or_else(chrono::Utc::now);
    let links = links_for(settings, store).await?;
    let (view, data) = digest::preview(store, &links, &subscriber, at).await?;
    let (html, text) = render::bodies(&view).map_err(|e| CliError::Other(e.into()))?;
    match args.format {
        Format::Json => say!(
            "{}",
            serde_json::to_string_pretty(&data).map_err(|e| CliError::Other(e.into()))?
        ),
        Format::Html => say!("{html}"),
        Format::Text => {
            say!("Subject: {}\n", view.subject);
            say!("{}", text.replace("\r\n", "\n"));
        }
    }
    Ok(())
}
