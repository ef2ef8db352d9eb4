//! Recording what a reader teaches paperboy: their ratings, and the taste learned from
//! them, rebuilt in the same transaction whenever a rating arrives or goes (one reader's
//! papers, a few milliseconds), so a digest run only reads one stored profile per reader.

use chrono::{DateTime, Utc};

use crate::domain::{Rating, RatingSource};
use crate::matching::Doc;
use crate::matching::taste::{Rated, Taste};
use crate::store::{RatedPaper, RatingChange, Store, StoreResult, StoredTaste};

/// Records `rating` of each of `paper_ids` (papers the store holds) for a reader, and
/// relearns their taste. Returns how many ratings were written.
pub async fn rate(
    store: &Store,
    subscriber_id: i64,
    paper_ids: &[i64],
    rating: Rating,
    source: RatingSource,
    now: DateTime<Utc>,
) -> StoreResult<u64> {
    let change = RatingChange::Rate {
        paper_ids,
        rating,
        source,
    };
    store
        .change_ratings(subscriber_id, change, now, |rated| {
            learn(subscriber_id, rated)
        })
        .await
}

/// Forgets a reader's rating of one paper (or all of them, with `None`) and relearns
/// their taste. Returns how many ratings went.
pub async fn unrate(
    store: &Store,
    subscriber_id: i64,
    paper_id: Option<i64>,
    now: DateTime<Utc>,
) -> StoreResult<u64> {
    let change = match paper_id {
        Some(id) => RatingChange::Remove(id),
        None => RatingChange::Clear,
    };
    store
        .change_ratings(subscriber_id, change, now, |rated| {
            learn(subscriber_id, rated)
        })
        .await
}

/// The taste learned from a reader's rated papers, in its stored form.
fn learn(subscriber_id: i64, rated: &[RatedPaper]) -> Option<StoredTaste> {
    let docs: Vec<Doc> = rated
        .iter()
        .map(|r| Doc::from_paper(&r.paper.paper))
        .collect();
    let examples: Vec<Rated<'_>> = rated
        .iter()
        .zip(&docs)
        .map(|(r, doc)| Rated {
            paper_id: r.paper.id,
            doc,
            rating: r.rating,
        })
        .collect();
    let taste = Taste::learn(&examples)?;
    Some(StoredTaste {
        subscriber_id,
        model: taste.to_text(),
        more: taste.more(),
    })
}
