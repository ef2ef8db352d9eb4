//! `paperboy digest run [--at T] [--dry-run | --no-deliver] [--json]`: compose every digest
//! due at an instant, then deliver them, and report both.

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::cli::{CliError, deliver_now, parse_since, print_json};
use crate::config::Settings;
use crate::delivery::{DrainReport, Mailer};
use crate::digest::{self, Composed, RunReport};
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
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
}

/// What a run did, for either output.
struct Outcome {
    at: DateTime<Utc>,
    report: RunReport,
    /// Only from a dry run; a real one has stored them.
    composed: Vec<Composed>,
    delivered: Option<DrainReport>,
    /// Deliveries another run holds under a lease that has not run out (it is still
    /// sending, or it crashed): how many and until when. They are sent once it runs out.
    leased: (i64, Option<DateTime<Utc>>),
}

pub async fn run(settings: &Settings, store: &Store, args: Args) -> Result<(), CliError> {
    let at = args
        .at
        .as_deref()
        .map(parse_since)
        .transpose()?
        .unwrap_or_else(Utc::now);
    let mailer = Mailer::from_settings(settings)?;
    let (report, composed) =
        digest::compose_due(store, &mailer.message_ids(), at, args.dry_run).await?;
    let delivered = if args.dry_run || args.no_deliver {
        None
    } else {
        let (depth, _) = store.queue_depth().await?;
        let expected = usize::try_from(depth).unwrap_or(0);
        Some(deliver_now(settings, store, &mailer, expected, "delivering").await?)
    };
    let leased = if args.dry_run {
        (0, None)
    } else {
        store.leased_deliveries(Utc::now()).await?
    };
    let outcome = Outcome {
        at,
        report,
        composed,
        delivered,
        leased,
    };
    if args.json {
        print_json(&outcome.json(args.dry_run))?;
    } else {
        outcome.print_text(args.dry_run, &mailer)?;
    }
    if outcome.report.failed > 0 {
        return Err(CliError::Other(anyhow::anyhow!(
            "{} digests could not be stored (see the log); those readers stay due",
            outcome.report.failed
        )));
    }
    Ok(())
}

impl Outcome {
    fn json(&self, dry_run: bool) -> serde_json::Value {
        let mut out = json!({
            "at": self.at,
            "dry_run": dry_run,
            "report": self.report,
            "delivered": self.delivered,
            "leased": { "deliveries": self.leased.0, "until": self.leased.1 },
        });
        if dry_run {
            let subscribers: Vec<_> = self
                .composed
                .iter()
                .map(|c| {
                    json!({
                        "email": c.subscriber.email,
                        "papers": c.entries.len(),
                        "trending": c.trending,
                    })
                })
                .collect();
            out["readers"] = subscribers.into();
        }
        out
    }

    fn print_text(&self, dry_run: bool, mailer: &Mailer) -> Result<(), CliError> {
        let r = &self.report;
        say!(
            "{}: {} due, {} composed, {} skipped (nothing matched), {} already done, {} papers looked at",
            self.at.to_rfc3339(),
            r.due,
            r.composed,
            r.skipped,
            r.already_done,
            r.papers
        );
        if dry_run {
            for c in &self.composed {
                say!(
                    "  {}: {} papers",
                    c.subscriber.email.masked(),
                    c.entries.len()
                );
            }
        }
        if let Some(d) = &self.delivered {
            say!(
                "delivered via {}: {} sent, {} to retry, {} failed, {} bounced, {} suppressed",
                mailer.describe(),
                d.sent,
                d.retry,
                d.failed,
                d.bounced,
                d.suppressed
            );
        }
        if let (n @ 1.., Some(until)) = self.leased {
            say!(
                "{n} {} held by another run (still sending, or stopped without finishing) \
                 until {}: {} sent once that lease runs out, by `serve` or another `digest run`",
                if n == 1 {
                    "delivery is"
                } else {
                    "deliveries are"
                },
                until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                if n == 1 { "it is" } else { "they are" },
            );
        }
        Ok(())
    }
}
