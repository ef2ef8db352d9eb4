//! `paperboy subscribers rate ADDR KEY... --more|--less`: record "more / less like this"
//! ratings for a reader, as if they had pressed the buttons on a digest's page. Every key
//! is resolved first: one unknown key (or an unknown reader) and nothing is recorded.

use chrono::Utc;

use crate::cli::CliError;
use crate::digest::taste;
use crate::domain::{PaperKey, Rating, RatingSource};
use crate::store::Store;

use super::find;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The reader's email address.
    address: String,
    /// Paper keys as `papers list` and `papers show` print them: arxiv:ID (or a bare arXiv
    /// id), doi:DOI or url:URL.
    #[arg(required = true, value_name = "KEY")]
    keys: Vec<String>,
    #[command(flatten)]
    rating: Which,
}

/// Exactly one of the two.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
struct Which {
    /// The reader wants more papers like these.
    #[arg(long)]
    more: bool,
    /// The reader wants fewer papers like these.
    #[arg(long)]
    less: bool,
}

pub async fn run(store: &Store, args: Args) -> Result<(), CliError> {
    let subscriber = find(store, &args.address).await?;
    let paper_ids = resolve(store, &args.keys).await?;
    let rating = if args.rating.more {
        Rating::More
    } else {
        Rating::Less
    };
    taste::rate(
        store,
        subscriber.id,
        &paper_ids,
        rating,
        RatingSource::Operator,
        Utc::now(),
    )
    .await?;
    tracing::info!(
        subscriber = subscriber.id,
        papers = paper_ids.len(),
        rating = rating.as_str(),
        "ratings recorded by an operator"
    );
    let n = paper_ids.len();
    say!(
        "{n} {} recorded for {}: {} like this",
        if n == 1 { "rating" } else { "ratings" },
        subscriber.email,
        rating.as_str()
    );
    Ok(())
}

/// The id of the stored paper of each key, each paper once; an input error naming every
/// key that is malformed or not stored.
async fn resolve(store: &Store, keys: &[String]) -> Result<Vec<i64>, CliError> {
    let mut ids = Vec::with_capacity(keys.len());
    let mut unknown = Vec::new();
    for raw in keys {
        let key = match PaperKey::parse(raw) {
            Ok(key) => key,
            Err(e) => {
                unknown.push(format!("{raw}: {e}"));
                continue;
            }
        };
        match store.paper(&key).await? {
            Some((paper, _)) if !ids.contains(&paper.id) => ids.push(paper.id),
            Some(_) => {}
            None => unknown.push(format!("{raw}: no such paper")),
        }
    }
    if unknown.is_empty() {
        return Ok(ids);
    }
    Err(CliError::input(format!(
        "nothing recorded: {} of the keys {} not known:\n  {}",
        unknown.len(),
        if unknown.len() == 1 { "is" } else { "are" },
        unknown.join("\n  ")
    )))
}
