//! `paperboy subscribers import FILE`: subscribers from CSV, one row per query. Every row is
//! read and checked first; then pending subscribers are added one at a time with their
//! confirmation email, and confirmed ones a few hundred per transaction. A refused row or
//! subscriber is reported and the good ones are kept.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::Utc;

use crate::cli::{CliError, progress_bar};
use crate::config::Settings;
use crate::domain::token::random_token;
use crate::domain::{EmailAddress, MaxPapers, Preferences, quoted};
use crate::matching::Query;
use crate::store::{NewSubscriber, Store, StoreResult, email_key};

use super::add::add_subscriber;
use super::{CLI_CONSENT, preferences};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A CSV file with a header row naming at least `email` and `query` (one row per
    /// query), and optionally `frequency`, `send_hour`, `timezone` and `confirmed`.
    file: PathBuf,
}

pub async fn run(settings: &Settings, store: &Store, args: Args) -> Result<(), CliError> {
    let file = args.file.as_path();
    let Parsed {
        subscribers,
        mut problems,
    } = read(file)?;
    let bar = progress_bar(subscribers.len(), "importing");
    let mut added = 0;
    let mut confirmed: Vec<Checked<'_>> = Vec::new();
    for (email, rows) in subscribers.values() {
        let preferences = match rows.preferences() {
            Ok(preferences) => preferences,
            Err(e) => {
                bar.inc(1);
                problems.push(format!("line {}: {email}: {e}", rows.line));
                continue;
            }
        };
        if rows.confirmed {
            confirmed.push((rows.line, email, preferences));
            continue;
        }
        // A pending subscriber gets a confirmation email, one at a time.
        bar.inc(1);
        match add_subscriber(settings, store, email, &preferences, false).await {
            Ok(_) => added += 1,
            Err(e) => problems.push(format!("line {}: {email}: {e}", rows.line)),
        }
    }
    // Confirmed subscribers are written a few hundred per transaction.
    for batch in confirmed.chunks(500) {
        added += add_confirmed(store, batch, &bar, &mut problems).await?;
    }
    summarise(added, &problems, file)
}

/// One subscriber's rows from the CSV: the first row's settings, every row's query.
struct Rows {
    line: usize,
    frequency: String,
    send_hour: String,
    timezone: String,
    confirmed: bool,
    queries: Vec<String>,
}

impl Rows {
    /// The settings, with the defaults of `subscribers add` for the columns left empty.
    fn preferences(&self) -> Result<Preferences, CliError> {
        fn or<'a>(value: &'a str, default: &'a str) -> &'a str {
            if value.is_empty() { default } else { value }
        }
        let hour = or(&self.send_hour, "8").parse::<i64>().unwrap_or(-1);
        preferences(
            &self.queries.join("\n"),
            or(&self.frequency, "daily"),
            hour,
            or(&self.timezone, "UTC"),
            i64::from(MaxPapers::DEFAULT.get()),
        )
    }
}

/// A subscriber whose rows checked out: the first row's line, the address, the settings.
type Checked<'a> = (usize, &'a EmailAddress, Preferences);

/// Where the header puts each column; email and query are required.
struct Columns {
    email: usize,
    query: usize,
    frequency: Option<usize>,
    send_hour: Option<usize>,
    timezone: Option<usize>,
    confirmed: Option<usize>,
}

impl Columns {
    fn of(headers: &csv::StringRecord, file: &Path) -> Result<Columns, CliError> {
        let col = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
        let (Some(email), Some(query)) = (col("email"), col("query")) else {
            return Err(CliError::input(format!(
                "{}: the header must name at least the columns email and query",
                file.display()
            )));
        };
        Ok(Columns {
            email,
            query,
            frequency: col("frequency"),
            send_hour: col("send_hour"),
            timezone: col("timezone"),
            confirmed: col("confirmed"),
        })
    }
}

/// What the CSV holds: each subscriber's rows by address key, and why rows were refused.
#[derive(Default)]
struct Parsed {
    subscribers: BTreeMap<String, (EmailAddress, Rows)>,
    problems: Vec<String>,
}

impl Parsed {
    /// Adds one record: a new subscriber with its settings, or one more query for a known
    /// one. Refuses a bad address or query.
    fn add(
        &mut self,
        columns: &Columns,
        record: &csv::StringRecord,
        line: usize,
    ) -> Result<(), String> {
        let field = |c: Option<usize>| c.and_then(|c| record.get(c)).unwrap_or("").to_string();
        let email = EmailAddress::parse(&field(Some(columns.email))).map_err(|e| e.to_string())?;
        let query = field(Some(columns.query));
        if !query.is_empty()
            && let Err(e) = Query::parse(&query)
        {
            return Err(format!("query {}: {e}", quoted(&query)));
        }
        let (_, rows) = self
            .subscribers
            .entry(email_key(&email))
            .or_insert_with(|| {
                let rows = Rows {
                    line,
                    frequency: field(columns.frequency),
                    send_hour: field(columns.send_hour),
                    timezone: field(columns.timezone),
                    confirmed: matches!(
                        field(columns.confirmed).to_ascii_lowercase().as_str(),
                        "1" | "true" | "yes"
                    ),
                    queries: Vec::new(),
                };
                (email.clone(), rows)
            });
        if !query.is_empty() {
            rows.queries.push(query);
        }
        Ok(())
    }
}

/// Reads the whole file; only an unreadable file or header fails the import.
fn read(file: &Path) -> Result<Parsed, CliError> {
    let unreadable =
        |e: csv::Error| CliError::Input(anyhow::Error::new(e).context(file.display().to_string()));
    let mut csv = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(file)
        .map_err(unreadable)?;
    let columns = Columns::of(csv.headers().map_err(unreadable)?, file)?;
    let mut parsed = Parsed::default();
    // The line a record starts on, as the reader's CSV parser counts it: a quoted value
    // may span several lines, so the record's index says nothing of its line.
    let mut next_line = 2;
    for record in csv.records() {
        let line = match &record {
            Ok(r) => r.position().map(|p| p.line()),
            Err(e) => e.position().map(|p| p.line()),
        }
        .and_then(|l| usize::try_from(l).ok())
        .unwrap_or(next_line);
        next_line = line + 1;
        let added = record
            .map_err(|e| e.to_string())
            .and_then(|record| parsed.add(&columns, &record, line));
        if let Err(problem) = added {
            parsed.problems.push(format!("line {line}: {problem}"));
        }
    }
    Ok(parsed)
}

/// Adds one batch of confirmed subscribers in a transaction; when the batch fails as a
/// whole, one at a time, so that each subscriber's fate is its own. Returns how many were
/// added; the others are told in `problems`.
async fn add_confirmed(
    store: &Store,
    batch: &[Checked<'_>],
    bar: &indicatif::ProgressBar,
    problems: &mut Vec<String>,
) -> Result<usize, CliError> {
    let keys = batch
        .iter()
        .map(|_| random_token())
        .collect::<Result<Vec<String>, _>>()
        .map_err(|e| CliError::Other(e.into()))?;
    let new: Vec<NewSubscriber<'_>> = batch
        .iter()
        .zip(&keys)
        .map(|((_, email, preferences), link_key)| NewSubscriber {
            email,
            preferences,
            confirmed: true,
            link_key,
            token_hash: "",
            token_ttl: chrono::Duration::zero(),
            consent: CLI_CONSENT,
        })
        .collect();
    let results: Vec<StoreResult<()>> = match store.add_subscribers(&new, Utc::now()).await {
        Ok(results) => results.into_iter().map(|r| r.map(|_| ())).collect(),
        Err(_) => {
            let mut one_by_one = Vec::with_capacity(new.len());
            for subscriber in &new {
                one_by_one.push(
                    store
                        .add_subscriber(subscriber, Utc::now())
                        .await
                        .map(|_| ()),
                );
            }
            one_by_one
        }
    };
    let mut added = 0;
    for ((line, email, _), result) in batch.iter().zip(results) {
        bar.inc(1);
        match result {
            Ok(()) => added += 1,
            Err(e) => problems.push(format!("line {line}: {email}: {}", CliError::from(e))),
        }
    }
    Ok(added)
}

/// The summary line on stdout, each problem on stderr, and exit 2 when there were any.
fn summarise(added: usize, problems: &[String], file: &Path) -> Result<(), CliError> {
    say!(
        "{added} readers added, {} rows or readers refused",
        problems.len()
    );
    if problems.is_empty() {
        return Ok(());
    }
    for p in problems {
        eprintln!("{p}");
    }
    Err(CliError::input(format!(
        "{} problems in {} (the good rows were kept)",
        problems.len(),
        file.display()
    )))
}
