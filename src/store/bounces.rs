//! Bounce and complaint events, the rules they set off, and the suppressions an operator
//! lifts. A hard bounce suppresses the reader at once; soft bounces suppress after
//! [`SOFT_LIMIT`] deliveries within [`SOFT_WINDOW_DAYS`] days with no clean delivery
//! since; a complaint unsubscribes the reader and puts the address on the suppression
//! list.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::{BeginWrite, Store, StoreResult, on_pool};
use crate::domain::token::hash_token;
use crate::domain::{BounceKind, EmailAddress};

/// Soft-bounced deliveries in a row that suppress a reader…
pub const SOFT_LIMIT: i64 = 3;
/// … within this many days.
pub const SOFT_WINDOW_DAYS: i64 = 7;

/// A bounce or complaint to record against a delivery.
#[derive(Debug, Clone)]
pub struct NewBounce<'a> {
    pub delivery_id: i64,
    pub kind: BounceKind,
    /// The enhanced status code, e.g. `5.1.1`.
    pub status: Option<&'a str>,
    pub diagnostic: Option<&'a str>,
    /// `smtp`, `dsn`, `arf` or `verp`.
    pub source: &'a str,
    /// What identifies the report (its Message-ID): the same report is recorded once.
    pub report_key: Option<&'a str>,
    /// When the bounce happened (the report's date).
    pub at: DateTime<Utc>,
}

/// What recording a bounce did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Stored against the delivery's reader; `suppressed` when this event stopped their
    /// mail (it was not stopped before).
    Stored {
        subscriber_id: i64,
        suppressed: bool,
    },
    /// This report was recorded before.
    Duplicate,
    /// No such delivery (erased with its reader, or never ours).
    UnknownDelivery,
}

/// A stored bounce or complaint, with the reader's address.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct BounceEvent {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub delivery_id: Option<i64>,
    pub subscriber_id: i64,
    pub email: String,
    pub kind: String,
    pub status: Option<String>,
    pub diagnostic: Option<String>,
    pub source: String,
}

/// A suppression an operator lifted: when, what, who and why.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct SuppressionLift {
    pub at: DateTime<Utc>,
    pub lifted: String,
    pub lifted_by: String,
    pub reason: String,
}

const SELECT_EVENTS: &str = "SELECT e.id, e.at, e.delivery_id, e.subscriber_id, s.email, e.kind, \
     e.status, e.diagnostic, e.source FROM bounce_events e \
     JOIN subscribers s ON s.id = e.subscriber_id ";

/// Marks a reader bounced, if mail still goes to them (or could): the suppression of a
/// hard bounce and of too many soft ones.
const SUPPRESS_BOUNCED: &str = "UPDATE subscribers SET status = 'bounced', updated_at = $2 \
     WHERE id = $1 AND status IN ('pending', 'active', 'paused')";

/// Soft-bounced deliveries of reader $1 since $2 (the window's start) that came after
/// their last clean delivery (sent, nothing came back) and after the last lifted
/// suppression.
const SOFT_STREAK: &str = "SELECT COUNT(DISTINCT e.delivery_id) FROM bounce_events e \
     WHERE e.subscriber_id = $1 AND e.kind = 'soft' AND e.at > $2 \
     AND e.recorded_at > COALESCE((SELECT MAX(l.at) FROM suppression_lifts l \
         WHERE l.subscriber_id = $1), $2) \
     AND e.delivery_id > COALESCE((SELECT MAX(d.id) FROM deliveries d \
         WHERE d.subscriber_id = $1 AND d.status = 'sent' \
         AND NOT EXISTS (SELECT 1 FROM bounce_events b WHERE b.delivery_id = d.id)), 0)";

impl Store {
    /// Stores a bounce or complaint against its delivery's reader and applies the rules,
    /// in one transaction.
    #[tracing::instrument(skip_all, fields(delivery = b.delivery_id, kind = %b.kind))]
    pub async fn record_bounce(
        &self,
        b: &NewBounce<'_>,
        now: DateTime<Utc>,
    ) -> StoreResult<Recorded> {
        let window_start = b.at - Duration::days(SOFT_WINDOW_DAYS);
        let recorded = on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let reader: Option<(i64, String)> = sqlx::query_as(
                "SELECT d.subscriber_id, s.email_key FROM deliveries d \
                 JOIN subscribers s ON s.id = d.subscriber_id WHERE d.id = $1",
            )
            .bind(b.delivery_id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((subscriber_id, email_key)) = reader else {
                return Ok(Recorded::UnknownDelivery);
            };
            let stored: Option<i64> = sqlx::query_scalar(
                "INSERT INTO bounce_events (at, delivery_id, subscriber_id, kind, status, \
                 diagnostic, source, report_key, recorded_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (report_key) DO NOTHING RETURNING id",
            )
            .bind(b.at)
            .bind(b.delivery_id)
            .bind(subscriber_id)
            .bind(b.kind.as_str())
            .bind(b.status)
            .bind(b.diagnostic)
            .bind(b.source)
            .bind(b.report_key)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            if stored.is_none() {
                return Ok(Recorded::Duplicate);
            }
            let suppress = match b.kind {
                BounceKind::Hard => true,
                BounceKind::Soft => {
                    let streak: i64 = sqlx::query_scalar(SOFT_STREAK)
                        .bind(subscriber_id)
                        .bind(window_start)
                        .fetch_one(&mut *tx)
                        .await?;
                    streak >= SOFT_LIMIT
                }
                BounceKind::Complaint => false,
            };
            let suppressed = if b.kind == BounceKind::Complaint {
                let left = sqlx::query(
                    "UPDATE subscribers SET status = 'unsubscribed', unsubscribed_at = $2, \
                     updated_at = $2 WHERE id = $1 AND status <> 'unsubscribed'",
                )
                .bind(subscriber_id)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    > 0;
                sqlx::query("DELETE FROM confirmation_tokens WHERE subscriber_id = $1")
                    .bind(subscriber_id)
                    .execute(&mut *tx)
                    .await?;
                let listed = sqlx::query(
                    "INSERT INTO suppressions (email_hash, reason, created_at) \
                     VALUES ($1, 'complaint', $2) ON CONFLICT (email_hash) DO NOTHING",
                )
                .bind(hash_token(&email_key))
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    > 0;
                left || listed
            } else if suppress {
                sqlx::query(SUPPRESS_BOUNCED)
                    .bind(subscriber_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    > 0
            } else {
                false
            };
            tx.commit().await?;
            Recorded::Stored { subscriber_id, suppressed }
        });
        Ok(recorded)
    }

    /// Takes a signed webhook call's token: true the first time, false for a replay.
    /// Tokens older than `keep` are forgotten (their calls are refused as stale anyway).
    pub async fn first_use_of_webhook_token(
        &self,
        provider: &str,
        token: &str,
        now: DateTime<Utc>,
        keep: Duration,
    ) -> StoreResult<bool> {
        Ok(on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query("DELETE FROM webhook_tokens WHERE seen_at < $1")
                .bind(now - keep)
                .execute(&mut *tx)
                .await?;
            let first = sqlx::query(
                "INSERT INTO webhook_tokens (provider, token, seen_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (provider, token) DO NOTHING",
            )
            .bind(provider)
            .bind(token)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
            tx.commit().await?;
            first
        }))
    }

    /// Gives back a webhook token whose call could not be recorded.
    pub async fn forget_webhook_token(&self, provider: &str, token: &str) -> StoreResult<()> {
        on_pool!(self, pool => {
            sqlx::query("DELETE FROM webhook_tokens WHERE provider = $1 AND token = $2")
                .bind(provider)
                .bind(token)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The delivery that carried the message with this Message-ID (without brackets).
    pub async fn delivery_by_message_id(&self, message_id: &str) -> StoreResult<Option<i64>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar("SELECT id FROM deliveries WHERE message_id = $1")
                .bind(message_id.trim().trim_start_matches('<').trim_end_matches('>'))
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Bounces and complaints received since `since` (all when `None`), oldest first.
    pub async fn bounce_events(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> StoreResult<Vec<BounceEvent>> {
        let since = since.unwrap_or(DateTime::UNIX_EPOCH);
        Ok(on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{SELECT_EVENTS} WHERE e.at >= $1 ORDER BY e.at, e.id"
            )))
            .bind(since)
            .fetch_all(pool)
            .await?
        }))
    }

    /// One reader's bounces and complaints, oldest first.
    pub async fn bounces_of(&self, subscriber_id: i64) -> StoreResult<Vec<BounceEvent>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{SELECT_EVENTS} WHERE e.subscriber_id = $1 ORDER BY e.at, e.id"
            )))
            .bind(subscriber_id)
            .fetch_all(pool)
            .await?
        }))
    }

    /// The suppressions lifted for a reader, oldest first.
    pub async fn lifts_of(&self, subscriber_id: i64) -> StoreResult<Vec<SuppressionLift>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT at, lifted, lifted_by, reason FROM suppression_lifts \
                 WHERE subscriber_id = $1 ORDER BY at, id",
            )
            .bind(subscriber_id)
            .fetch_all(pool)
            .await?
        }))
    }

    /// How many bounce events of each kind are stored.
    pub async fn bounce_counts(&self) -> StoreResult<Vec<(String, i64)>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as("SELECT kind, COUNT(*) FROM bounce_events GROUP BY kind ORDER BY kind")
                .fetch_all(pool)
                .await?
        }))
    }

    /// Lifts what stops mail to `email`: a bounced reader becomes active again (pending
    /// if never confirmed) with a fresh window, and the address leaves the suppression
    /// list (a complaint's or an erasure's entry; a reader who complained stays
    /// unsubscribed and may subscribe again). Records who and why. Returns what was
    /// lifted, empty when nothing was suppressed.
    #[tracing::instrument(skip_all, fields(email = %email.masked()))]
    pub async fn lift_suppression(
        &self,
        email: &EmailAddress,
        by: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<String>> {
        let key = super::email_key(email);
        let hash = hash_token(&key);
        let lifted = on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let reader: Option<(i64, String, Option<DateTime<Utc>>)> = sqlx::query_as(
                "SELECT id, status, confirmed_at FROM subscribers WHERE email_key = $1",
            )
            .bind(&key)
            .fetch_optional(&mut *tx)
            .await?;
            let mut lifted = Vec::new();
            if let Some((id, status, confirmed)) = &reader
                && status == "bounced"
            {
                let to = if confirmed.is_some() { "active" } else { "pending" };
                sqlx::query(
                    "UPDATE subscribers SET status = $2, updated_at = $3, last_window_end = $3, \
                     paper_cursor = (SELECT COALESCE(MAX(id), 0) FROM papers) WHERE id = $1",
                )
                .bind(id)
                .bind(to)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                lifted.push("bounced".to_string());
            }
            let listed: Option<String> = sqlx::query_scalar(
                "DELETE FROM suppressions WHERE email_hash = $1 RETURNING reason",
            )
            .bind(&hash)
            .fetch_optional(&mut *tx)
            .await?;
            lifted.extend(listed);
            if !lifted.is_empty() {
                sqlx::query(
                    "INSERT INTO suppression_lifts (subscriber_id, at, lifted, lifted_by, reason) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(reader.as_ref().map(|r| r.0))
                .bind(now)
                .bind(lifted.join(", "))
                .bind(by)
                .bind(reason)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            lifted
        });
        Ok(lifted)
    }
}
