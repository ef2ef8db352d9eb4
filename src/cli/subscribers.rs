//! `paperboy subscribers list|show|add|remove|import|export|erase`: reader administration.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::Utc;
use serde_json::json;

use crate::app::links_for;
use crate::config::Settings;
use crate::delivery::Mailer;
use crate::domain::Subscriber;
use crate::domain::token::{hash_token, random_token};
use crate::domain::{
    EmailAddress, Frequency, MaxPapers, Preferences, QueryList, SendHour, SubscriberStatus,
    TimeZone,
};
use crate::email::notices;
use crate::store::{ConsentText, NewReader, Store};

use super::{CliError, open_store, print_json, progress_bar};

/// What an operator's addition is recorded as agreeing to.
const CLI_CONSENT: ConsentText<'static> = ConsentText {
    version: "cli",
    text: "Added by an operator with `paperboy subscribers add` or `import`.",
};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Every reader (or those in one status), oldest first.
    List {
        /// pending, active, paused, unsubscribed or bounced.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// One reader: settings, status and recent digests.
    Show {
        address: String,
        #[arg(long)]
        json: bool,
    },
    /// Add a reader; without --confirmed they get a confirmation link first.
    Add {
        address: String,
        /// A query (repeat for several); none means the trending digest.
        #[arg(long = "query", value_name = "Q")]
        queries: Vec<String>,
        /// daily, weekdays, weekly or weekly:DAY.
        #[arg(long, default_value = "daily")]
        frequency: String,
        #[arg(long, default_value_t = 8)]
        send_hour: i64,
        #[arg(long, default_value = "UTC")]
        timezone: String,
        #[arg(long, default_value_t = 15)]
        max_papers: i64,
        /// Active at once: only when the address's owner asked for it.
        #[arg(long)]
        confirmed: bool,
    },
    /// Unsubscribe a reader (their record stays; see erase).
    Remove { address: String },
    /// Add readers from CSV: email,query[,frequency,send_hour,timezone,confirmed].
    Import { file: PathBuf },
    /// Everything held on a reader, as JSON.
    Export { address: String },
    /// Remove a reader and all their data; only a hash of the address stays, so that it is
    /// never mailed again.
    Erase { address: String },
}

pub async fn run(settings: Settings, cmd: Command) -> Result<(), CliError> {
    let store = open_store(&settings).await?;
    match cmd {
        Command::List { status, json } => {
            let status = status
                .as_deref()
                .map(str::parse::<SubscriberStatus>)
                .transpose()?;
            let readers = store.list_subscribers(status).await?;
            if json {
                return print_json(&readers);
            }
            for r in &readers {
                println!(
                    "{:<40} {:<12} {:<12} {:02}:00 {:<20} {} queries",
                    r.email,
                    r.status,
                    r.preferences.frequency.as_code(),
                    r.preferences.send_hour.get(),
                    r.preferences.timezone.name(),
                    r.preferences.queries.lines().len()
                );
            }
            Ok(())
        }
        Command::Show { address, json } => {
            let reader = find(&store, &address).await?;
            let digests = store.digests_of(reader.id).await?;
            if json {
                return print_json(&json!({ "subscriber": reader, "digests": digests }));
            }
            println!("{} ({}), reader {}", reader.email, reader.status, reader.id);
            println!("  {}", notices::describe(&reader.preferences));
            for q in reader.preferences.queries.lines() {
                println!("  query: {q}");
            }
            println!("  subscribed {}", reader.created_at.to_rfc3339());
            if let Some(t) = reader.confirmed_at {
                println!("  confirmed {}", t.to_rfc3339());
            }
            for d in digests.iter().take(10) {
                println!(
                    "  digest {}: {} papers, {}, window to {}",
                    d.id,
                    d.total,
                    d.status,
                    d.window_end.to_rfc3339()
                );
            }
            Ok(())
        }
        Command::Add {
            address,
            queries,
            frequency,
            send_hour,
            timezone,
            max_papers,
            confirmed,
        } => {
            let email = EmailAddress::parse(&address)?;
            let preferences = preferences(
                &queries.join("\n"),
                &frequency,
                send_hour,
                &timezone,
                max_papers,
            )?;
            let reader = add(&settings, &store, &email, &preferences, confirmed).await?;
            println!(
                "{} added as {}{}",
                reader.email,
                reader.status,
                if confirmed {
                    ""
                } else {
                    ": a confirmation link was sent"
                }
            );
            Ok(())
        }
        Command::Remove { address } => {
            let reader = find(&store, &address).await?;
            use SubscriberStatus::*;
            let moved = store
                .change_status(
                    reader.id,
                    &[Pending, Active, Paused, Bounced],
                    Unsubscribed,
                    Utc::now(),
                )
                .await?;
            println!(
                "{} {}",
                reader.email,
                if moved {
                    "unsubscribed"
                } else {
                    "was already unsubscribed"
                }
            );
            Ok(())
        }
        Command::Import { file } => import(&settings, &store, &file).await,
        Command::Export { address } => {
            let reader = find(&store, &address).await?;
            let consents = store.consents(reader.id).await?;
            let mut digests = Vec::new();
            for d in store.digests_of(reader.id).await? {
                let papers: Vec<String> = store
                    .digest_entries(d.id, None)
                    .await?
                    .into_iter()
                    .map(|e| e.paper.paper.key.as_str().to_string())
                    .collect();
                let deliveries: Vec<_> = store
                    .deliveries_of(d.id)
                    .await?
                    .into_iter()
                    .map(|(id, status, message_id, attempts)| {
                        json!({ "id": id, "status": status, "message_id": message_id, "attempts": attempts })
                    })
                    .collect();
                digests.push(json!({ "digest": d, "papers": papers, "deliveries": deliveries }));
            }
            print_json(&json!({
                "subscriber": reader,
                "consents": consents,
                "digests": digests,
            }))
        }
        Command::Erase { address } => {
            let email = EmailAddress::parse(&address)?;
            let erased = store.erase_subscriber(&email, Utc::now()).await?;
            if !erased {
                return Err(CliError::Input(format!(
                    "no reader {email} (it is on the suppression list now)"
                )));
            }
            tracing::info!(email = %email.masked(), "reader erased");
            println!(
                "{email} erased; only a hash of the address is kept, so it is never mailed again"
            );
            Ok(())
        }
    }
}

async fn find(store: &Store, address: &str) -> Result<Subscriber, CliError> {
    let email = EmailAddress::parse(address)?;
    store
        .subscriber_by_email(&email)
        .await?
        .ok_or_else(|| CliError::Input(format!("no reader {email}")))
}

fn preferences(
    queries: &str,
    frequency: &str,
    send_hour: i64,
    timezone: &str,
    max_papers: i64,
) -> Result<Preferences, CliError> {
    Ok(Preferences {
        queries: QueryList::parse(queries).map_err(|e| CliError::Input(e.to_string()))?,
        frequency: frequency.parse::<Frequency>()?,
        send_hour: SendHour::new(send_hour)?,
        timezone: timezone.parse::<TimeZone>()?,
        max_papers: MaxPapers::new(max_papers)?,
    })
}

/// Stores a reader and, when not confirmed, mails the confirmation link.
async fn add(
    settings: &Settings,
    store: &Store,
    email: &EmailAddress,
    preferences: &Preferences,
    confirmed: bool,
) -> Result<Subscriber, CliError> {
    let token = random_token().map_err(|e| CliError::Other(e.into()))?;
    let link_key = random_token().map_err(|e| CliError::Other(e.into()))?;
    let reader = store
        .add_reader(
            &NewReader {
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
    if !confirmed {
        let mailer = Mailer::from_settings(settings).map_err(|e| CliError::Input(e.to_string()))?;
        let links = links_for(settings, store).await?;
        let message =
            notices::confirmation(&mailer.message_ids(), &links, &reader, preferences, &token)
                .map_err(|e| CliError::Other(e.into()))?;
        mailer.send(&message).await.map_err(|e| {
            CliError::Other(anyhow::Error::new(e).context("sending the confirmation"))
        })?;
    }
    Ok(reader)
}

/// One reader's rows from the CSV: the first row's settings, every row's query.
struct Pending {
    line: usize,
    frequency: String,
    send_hour: String,
    timezone: String,
    confirmed: bool,
    queries: Vec<String>,
}

async fn import(
    settings: &Settings,
    store: &Store,
    file: &std::path::Path,
) -> Result<(), CliError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(file)
        .map_err(|e| CliError::Input(format!("{}: {e}", file.display())))?;
    let headers = reader
        .headers()
        .map_err(|e| CliError::Input(format!("{}: {e}", file.display())))?
        .clone();
    let col = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let (Some(email_col), Some(query_col)) = (col("email"), col("query")) else {
        return Err(CliError::Input(format!(
            "{}: the header must name at least the columns email and query",
            file.display()
        )));
    };
    let (freq_col, hour_col, tz_col, conf_col) = (
        col("frequency"),
        col("send_hour"),
        col("timezone"),
        col("confirmed"),
    );
    let mut problems: Vec<String> = Vec::new();
    let mut readers: BTreeMap<String, (EmailAddress, Pending)> = BTreeMap::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                problems.push(format!("line {line}: {e}"));
                continue;
            }
        };
        let field = |c: Option<usize>| c.and_then(|c| record.get(c)).unwrap_or("").to_string();
        let email = match EmailAddress::parse(&field(Some(email_col))) {
            Ok(e) => e,
            Err(e) => {
                problems.push(format!("line {line}: {e}"));
                continue;
            }
        };
        let query = field(Some(query_col));
        if !query.is_empty()
            && let Err(e) = crate::matching::Query::parse(&query)
        {
            problems.push(format!("line {line}: query {query:?}: {e}"));
            continue;
        }
        let entry = readers
            .entry(crate::store::email_key(&email))
            .or_insert_with(|| {
                (
                    email.clone(),
                    Pending {
                        line,
                        frequency: field(freq_col),
                        send_hour: field(hour_col),
                        timezone: field(tz_col),
                        confirmed: matches!(
                            field(conf_col).to_ascii_lowercase().as_str(),
                            "1" | "true" | "yes"
                        ),
                        queries: Vec::new(),
                    },
                )
            });
        if !query.is_empty() {
            entry.1.queries.push(query);
        }
    }
    let mut added = 0;
    let bar = progress_bar(readers.len(), "importing");
    let mut confirmed: Vec<(usize, &EmailAddress, Preferences)> = Vec::new();
    for (email, p) in readers.values() {
        let or = |v: &str, d: &str| {
            if v.is_empty() {
                d.to_string()
            } else {
                v.to_string()
            }
        };
        let hour = or(&p.send_hour, "8").parse::<i64>().unwrap_or(-1);
        let prefs = match preferences(
            &p.queries.join("\n"),
            &or(&p.frequency, "daily"),
            hour,
            &or(&p.timezone, "UTC"),
            i64::from(MaxPapers::DEFAULT.get()),
        ) {
            Ok(prefs) => prefs,
            Err(e) => {
                bar.inc(1);
                problems.push(format!("line {}: {email}: {e}", p.line));
                continue;
            }
        };
        if p.confirmed {
            confirmed.push((p.line, email, prefs));
            continue;
        }
        // A pending reader gets a confirmation email, one at a time.
        bar.inc(1);
        match add(settings, store, email, &prefs, false).await {
            Ok(_) => added += 1,
            Err(e) => problems.push(format!("line {}: {email}: {e}", p.line)),
        }
    }
    // Confirmed readers are written a few hundred per transaction.
    for batch in confirmed.chunks(500) {
        let keys = batch
            .iter()
            .map(|_| random_token())
            .collect::<Result<Vec<String>, _>>()
            .map_err(|e| CliError::Other(e.into()))?;
        let new: Vec<NewReader<'_>> = batch
            .iter()
            .zip(&keys)
            .map(|((_, email, prefs), link_key)| NewReader {
                email,
                preferences: prefs,
                confirmed: true,
                link_key,
                token_hash: "",
                token_ttl: chrono::Duration::zero(),
                consent: CLI_CONSENT,
            })
            .collect();
        let results = match store.add_readers(&new, Utc::now()).await {
            Ok(results) => results.into_iter().map(|r| r.map(|_| ())).collect(),
            // The batch failed as a whole: one at a time, so each reader's fate is its own.
            Err(_) => {
                let mut one_by_one = Vec::with_capacity(new.len());
                for reader in &new {
                    one_by_one.push(store.add_reader(reader, Utc::now()).await.map(|_| ()));
                }
                one_by_one
            }
        };
        for ((line, email, _), result) in batch.iter().zip(results) {
            bar.inc(1);
            match result {
                Ok(()) => added += 1,
                Err(e) => problems.push(format!("line {line}: {email}: {}", CliError::from(e))),
            }
        }
    }
    println!(
        "{added} readers added, {} rows or readers refused",
        problems.len()
    );
    if problems.is_empty() {
        return Ok(());
    }
    for p in &problems {
        eprintln!("{p}");
    }
    Err(CliError::Input(format!(
        "{} problems in {} (the good rows were kept)",
        problems.len(),
        file.display()
    )))
}
