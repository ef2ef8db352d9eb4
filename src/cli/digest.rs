//! `paperboy digest run|preview`: compose (and deliver) every digest due at an instant, or
//! show what one reader would get.

use serde_json::json;

use crate::app::links_for;
use crate::config::Settings;
use crate::delivery::Mailer;
use crate::digest;
use crate::domain::EmailAddress;

use super::{CliError, deliver_now, open_store, parse_since, print_json};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Build and deliver every digest due at that instant (default now).
    Run {
        /// The instant to run for (RFC 3339 or YYYY-MM-DD); default now.
        #[arg(long, value_name = "RFC3339")]
        at: Option<String>,
        /// Compose and report, but store and send nothing.
        #[arg(long)]
        dry_run: bool,
        /// Compose and store the digests, and leave sending them to the delivery workers
        /// (`serve`, or a later `digest run`).
        #[arg(long, conflicts_with = "dry_run")]
        no_deliver: bool,
        /// Print the report as JSON; with --dry-run, also what each reader would get.
        #[arg(long)]
        json: bool,
    },
    /// Render what a reader would get now (or at --at); sends and stores nothing.
    Preview {
        #[arg(long, value_name = "ADDR")]
        email: String,
        #[arg(long, value_name = "RFC3339")]
        at: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Html,
    Text,
}

pub async fn run(settings: Settings, cmd: Command) -> Result<(), CliError> {
    let store = open_store(&settings).await?;
    match cmd {
        Command::Run {
            at,
            dry_run,
            no_deliver,
            json,
        } => {
            let at = at
                .as_deref()
                .map(parse_since)
                .transpose()?
                .unwrap_or_else(chrono::Utc::now);
            let mailer =
                Mailer::from_settings(&settings).map_err(|e| CliError::Input(e.to_string()))?;
            // The digests come back only from a dry run; a real one has stored them.
            let (report, composed) =
                digest::compose_due(&store, &mailer.message_ids(), at, dry_run).await?;
            let delivered = if dry_run || no_deliver {
                None
            } else {
                let (depth, _) = store.queue_depth().await?;
                let expected = usize::try_from(depth).unwrap_or(0);
                Some(deliver_now(&settings, &store, &mailer, expected, "delivering").await?)
            };
            if json {
                let readers: Vec<_> = composed
                    .iter()
                    .map(|c| {
                        json!({
                            "email": c.subscriber.email,
                            "papers": c.entries.len(),
                            "trending": c.trending,
                        })
                    })
                    .collect();
                let mut out = json!({
                    "at": at,
                    "dry_run": dry_run,
                    "report": report,
                    "delivered": delivered,
                });
                if dry_run {
                    out["readers"] = readers.into();
                }
                print_json(&out)?;
            } else {
                println!(
                    "{}: {} due, {} composed, {} skipped (nothing matched), {} already done, {} papers looked at",
                    at.to_rfc3339(),
                    report.due,
                    report.composed,
                    report.skipped,
                    report.already_done,
                    report.papers
                );

                if dry_run {
                    for c in &composed {
                        println!(
                            "  {}: {} papers",
                            c.subscriber.email.masked(),
                            c.entries.len()
                        );
                    }
                }
                if let Some(d) = delivered {
                    println!(
                        "delivered via {}: {} sent, {} to retry, {} failed, {} bounced, {} suppressed",
                        mailer.describe(),
                        d.sent,
                        d.retry,
                        d.failed,
                        d.bounced,
                        d.suppressed
                    );
                }
            }
            if report.failed > 0 {
                return Err(CliError::Other(anyhow::anyhow!(
                    "{} digests could not be stored (see the log); those readers stay due",
                    report.failed
                )));
            }
            Ok(())
        }
        Command::Preview { email, at, format } => {
            let email = EmailAddress::parse(&email)?;
            let reader = store
                .subscriber_by_email(&email)
                .await?
                .ok_or_else(|| CliError::Input(format!("no reader {email}")))?;
            let at = at
                .as_deref()
                .map(parse_since)
                .transpose()?
                .unwrap_or_else(chrono::Utc::now);
            let links = links_for(&settings, &store).await?;
            let view = digest::preview(&store, &links, &reader, at).await?;
            let (html, text) =
                crate::email::digest::bodies(&view).map_err(|e| CliError::Other(e.into()))?;
            match format {
                Format::Html => println!("{html}"),
                Format::Text => {
                    println!("Subject: {}\n", view.subject);
                    println!("{}", text.replace("\r\n", "\n"));
                }
            }
            Ok(())
        }
    }
}
