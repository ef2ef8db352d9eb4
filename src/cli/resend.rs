//! `paperboy resend`: deliver an existing digest again (same content, new delivery and
//! Message-ID), for one reader or for everyone's digests of a date.

use chrono::{NaiveDate, Utc};
use serde_json::json;

use crate::config::Settings;
use crate::delivery::Mailer;
use crate::domain::EmailAddress;
use crate::store::{DigestRecord, Store};

use super::{CliError, deliver_now, open_store, print_json};

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("who").required(true).args(["email", "all"])))]
pub struct Args {
    /// The reader whose digest goes again.
    #[arg(long, value_name = "ADDR")]
    email: Option<String>,
    /// Which of their digests (default: the latest, or the one of --date).
    #[arg(long, value_name = "ID", conflicts_with = "all")]
    digest: Option<i64>,
    /// The digests whose window ended on this day (UTC).
    #[arg(long, value_name = "YYYY-MM-DD")]
    date: Option<String>,
    /// Every reader's digest of --date.
    #[arg(long, requires = "date")]
    all: bool,
    /// With --all: only digests whose last delivery failed.
    #[arg(long, requires = "all")]
    failed_only: bool,
    /// Print what was resent as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(settings: Settings, args: Args) -> Result<(), CliError> {
    let store = open_store(&settings).await?;
    let date = args
        .date
        .as_deref()
        .map(|d| {
            NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .map_err(|_| CliError::input(format!("bad date {d:?}: use YYYY-MM-DD")))
        })
        .transpose()?;
    let chosen = if let Some(address) = &args.email {
        vec![subscriber_digest(&store, address, args.digest, date).await?]
    } else if let Some(day) = date {
        digests_of_day(&store, day, args.failed_only).await?
    } else {
        Vec::new()
    };
    let mailer = Mailer::from_settings(&settings)?;
    let mut queued = Vec::new();
    for d in &chosen {
        let message_id = mailer.message_ids().next();
        let delivery = store.queue_resend(d.id, &message_id, Utc::now()).await?;
        tracing::info!(digest = d.id, delivery, message_id = %message_id, "resend queued: same content, new delivery");
        queued.push(json!({ "digest": d.id, "delivery": delivery, "message_id": message_id }));
    }
    let report = deliver_now(&settings, &store, &mailer, queued.len(), "resending").await?;
    if args.json {
        return print_json(&json!({ "queued": queued, "delivered": report }));
    }
    say!(
        "{} digests queued again; via {}: {} sent, {} to retry, {} failed, {} bounced, {} suppressed",
        queued.len(),
        mailer.describe(),
        report.sent,
        report.retry,
        report.failed,
        report.bounced,
        report.suppressed
    );
    Ok(())
}

/// One subscriber's digest with papers: `id` when given, else the latest (of `date`).
async fn subscriber_digest(
    store: &Store,
    address: &str,
    id: Option<i64>,
    date: Option<NaiveDate>,
) -> Result<DigestRecord, CliError> {
    let email = EmailAddress::parse_known(address)?;
    let subscriber = store
        .subscriber_by_email(&email)
        .await?
        .ok_or_else(|| CliError::input(format!("no reader {email}")))?;
    let digests = store.digests_of(subscriber.id).await?;
    digests
        .into_iter()
        .filter(|d| d.status == "composed")
        .find(|d| {
            id.is_none_or(|id| d.id == id)
                && date.is_none_or(|day| d.window_end.date_naive() == day)
        })
        .ok_or_else(|| CliError::input(format!("{email} has no such digest with papers")))
}

/// Every digest with papers whose window ended on `day`; with `failed_only`, only those
/// whose last delivery failed.
async fn digests_of_day(
    store: &Store,
    day: NaiveDate,
    failed_only: bool,
) -> Result<Vec<DigestRecord>, CliError> {
    let mut chosen = Vec::new();
    for d in store.digests_on(day).await? {
        if d.status != "composed" {
            continue;
        }
        if failed_only {
            let last = store.deliveries_of(d.id).await?.pop();
            if last.is_none_or(|(_, status, _, _)| status != "failed") {
                continue;
            }
        }
        chosen.push(d);
    }
    Ok(chosen)
}
