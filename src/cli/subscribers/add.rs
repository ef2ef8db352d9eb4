//! `paperboy subscribers add ADDR …`: one subscriber, added by an operator; also the
//! store-and-confirm step that `import` repeats for each pending subscriber.

use chrono::Utc;

use crate::app::links_for;
use crate::cli::CliError;
use crate::config::Settings;
use crate::delivery::Mailer;
use crate::domain::Subscriber;
use crate::domain::token::{hash_token, random_token};
use crate::domain::{EmailAddress, Preferences};
use crate::email::notices;
use crate::store::{NewSubscriber, Store};

use super::{CLI_CONSENT, preferences};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The reader's email address.
    address: String,
    /// A query (repeat for several); none means the trending digest.
    #[arg(long = "query", value_name = "Q")]
    queries: Vec<String>,
    /// daily, weekdays, weekly or weekly:DAY.
    #[arg(long, default_value = "daily")]
    frequency: String,
    /// The hour (0 to 23) the digest is sent, in the reader's time zone.
    #[arg(long, default_value_t = 8)]
    send_hour: i64,
    /// The reader's IANA time zone, e.g. Europe/Berlin.
    #[arg(long, default_value = "UTC")]
    timezone: String,
    /// Papers per digest (1 to 100).
    #[arg(long, default_value_t = 15)]
    max_papers: i64,
    /// Active at once: only when the address's owner asked for it.
    #[arg(long)]
    confirmed: bool,
}

pub async fn run(settings: &Settings, store: &Store, args: Args) -> Result<(), CliError> {
    let email = EmailAddress::parse(&args.address)?;
    let preferences = preferences(
        &args.queries.join("\n"),
        &args.frequency,
        args.send_hour,
        &args.timezone,
        args.max_papers,
    )?;
    let subscriber = add_subscriber(settings, store, &email, &preferences, args.confirmed).await?;
    say!(
        "{} added as {}{}",
        subscriber.email,
        subscriber.status,
        if args.confirmed {
            ""
        } else {
            ": a confirmation link was sent"
        }
    );
    Ok(())
}

/// Stores a subscriber and, when not confirmed, mails the confirmation link.
pub(super) async fn add_subscriber(
    settings: &Settings,
    store: &Store,
    email: &EmailAddress,
    preferences: &Preferences,
    confirmed: bool,
) -> Result<Subscriber, CliError> {
    // Everything the confirmation needs is checked before anything is stored: a mail or
    // link setting that fails after the write would leave a pending reader whom no link
    // reaches, and a retry would only say "already a reader".
    let sender = if confirmed {
        None
    } else {
        Some((
            Mailer::from_settings(settings)?,
            links_for(settings, store).await?,
        ))
    };
    let token = random_token().map_err(|e| CliError::Other(e.into()))?;
    let link_key = random_token().map_err(|e| CliError::Other(e.into()))?;
    let subscriber = store
        .add_subscriber(
            &NewSubscriber {
                email,
                preferences,
                confirmed,
                link_key: &link_key,
                token_hash: &hash_token(&token),
                token_ttl: chrono::Duration::hours(48),
                consent: CLI_CONSENT,
            },
            Utc::now(),
        )
        .await?;
    if let Some((mailer, links)) = sender {
        let message = notices::confirmation(
            &mailer.message_ids(),
            &links,
            &subscriber,
            preferences,
            &token,
        )
        .map_err(|e| CliError::Other(e.into()))?;
        mailer.send(&message).await.map_err(|e| {
            CliError::Other(anyhow::Error::new(e).context("sending the confirmation"))
        })?;
    }
    Ok(subscriber)
}
