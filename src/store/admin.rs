//! What operators do to readers and the outbox from the CLI: add a reader by hand, erase
//! one (leaving only a hash on the suppression list), queue a resend, and the daily
//! clean-up.

use chrono::{DateTime, Utc};

use super::subscribers::{
    ClientInfo, ConsentText, NewRow, insert_consent, insert_subscriber, insert_token,
};
use super::suppression::{is_listed, suppression_hash, suppression_hashes};
use super::{BeginWrite, Store, StoreError, StoreResult, email_key, on_pool};
use crate::domain::{EmailAddress, Preferences, Subscriber};

/// A reader added from the CLI.
#[derive(Debug, Clone)]
pub struct NewSubscriber<'a> {
    pub email: &'a EmailAddress,
    pub preferences: &'a Preferences,
    /// Active at once (the operator vouches for the address), or pending with a
    /// confirmation link.
    pub confirmed: bool,
    pub link_key: &'a str,
    /// The hashed confirmation token, for a pending reader.
    pub token_hash: &'a str,
    pub token_ttl: chrono::Duration,
    pub consent: ConsentText<'a>,
}

impl Store {
    /// Adds a reader; an address already held is a conflict, and a suppressed one is
    /// refused unless the operator confirms it (which lifts the suppression).
    #[tracing::instrument(skip_all, fields(email = %r.email.masked()))]
    pub async fn add_subscriber(
        &self,
        r: &NewSubscriber<'_>,
        now: DateTime<Utc>,
    ) -> StoreResult<Subscriber> {
        let id = self
            .add_subscribers(std::slice::from_ref(r), now)
            .await?
            .pop()
            .unwrap_or_else(|| Err(StoreError::NotFound("no reader was added".into())))?;
        self.subscriber(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("reader {id} vanished")))
    }

    /// Adds many readers in one transaction, each as [`Store::add_reader`] does: the
    /// result of each, in order (its id, or why it was refused). A database error fails
    /// the whole batch and adds nobody.
    #[tracing::instrument(skip_all, fields(subscribers = subscribers.len()))]
    pub async fn add_subscribers(
        &self,
        subscribers: &[NewSubscriber<'_>],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<StoreResult<i64>>> {
        let client = ClientInfo {
            ip: None,
            user_agent: Some("paperboy CLI".into()),
        };
        let mut results = Vec::with_capacity(subscribers.len());
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            for r in subscribers {
                if !r.confirmed && is_listed(&mut *tx, r.email).await? {
                    results.push(Err(StoreError::Conflict(format!(
                        "{} is on the suppression list; add it with --confirmed only if its owner asked",
                        r.email
                    ))));
                    continue;
                }
                let row = NewRow {
                    email: r.email,
                    preferences: r.preferences,
                    link_key: r.link_key,
                    confirmed: r.confirmed,
                    seen_stored_papers: true,
                };
                let Some(id) = insert_subscriber(&mut tx, &row, now).await? else {
                    results.push(Err(StoreError::Conflict(format!(
                        "{} is already a reader",
                        r.email
                    ))));
                    continue;
                };
                // Confirmed by the operator: the address may be mailed again.
                let [hash, legacy] = suppression_hashes(r.email);
                sqlx::query("DELETE FROM suppressions WHERE email_hash = $1 OR email_hash = $2")
                    .bind(&hash)
                    .bind(&legacy)
                    .execute(&mut *tx)
                    .await?;
                insert_consent(&mut tx, id, "requested", now, &client, r.consent).await?;
                if r.confirmed {
                    insert_consent(&mut tx, id, "confirmed", now, &client, r.consent).await?;
                } else {
                    let expires = now + r.token_ttl;
                    insert_token(&mut tx, r.token_hash, id, now, expires, r.preferences).await?;
                }
                results.push(Ok(id));
            }
            tx.commit().await?;
        });
        Ok(results)
    }

    /// Removes a reader and everything held on them (tokens, consent record, digests,
    /// deliveries), keeping only a hash of the address on the suppression list. Returns
    /// whether there was such a reader.
    #[tracing::instrument(skip_all, fields(email = %email.masked()))]
    pub async fn erase_subscriber(
        &self,
        email: &EmailAddress,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let key = email_key(email);
        let hash = suppression_hash(email);
        let erased = on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            // Tokens, the consent record, digests with their papers and deliveries go with
            // the reader: every table that holds a reader's data cascades from theirs.
            let erased = sqlx::query("DELETE FROM subscribers WHERE email_key = $1")
                .bind(&key)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                > 0;
            sqlx::query(
                "INSERT INTO suppressions (email_hash, reason, created_at) VALUES ($1, 'erased', $2) \
                 ON CONFLICT (email_hash) DO NOTHING",
            )
            .bind(&hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            // What the form mailed the mailbox goes too: it is data about the reader, and
            // the suppression now refuses every spelling of the mailbox anyway.
            sqlx::query("DELETE FROM mailbox_mails WHERE mailbox_hash = $1")
                .bind(&hash)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            erased
        });
        Ok(erased)
    }

    /// Queues another delivery of a digest (same content, new Message-ID).
    #[tracing::instrument(skip_all, fields(digest = digest_id))]
    pub async fn queue_resend(
        &self,
        digest_id: i64,
        message_id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<i64> {
        Ok(on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let last: Option<(i64, i64)> = sqlx::query_as(
                "SELECT id, subscriber_id FROM deliveries WHERE digest_id = $1 ORDER BY id DESC LIMIT 1",
            )
            .bind(digest_id)
            .fetch_optional(&mut *tx)
            .await?;
            let subscriber: i64 = match last {
                Some((_, s)) => s,
                None => sqlx::query_scalar("SELECT subscriber_id FROM digests WHERE id = $1")
                    .bind(digest_id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or_else(|| StoreError::NotFound(format!("no digest {digest_id}")))?,
            };
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO deliveries (digest_id, subscriber_id, message_id, status, \
                 next_attempt_at, resend_of, created_at, updated_at) \
                 VALUES ($1, $2, $3, 'queued', $4, $5, $4, $4) RETURNING id",
            )
            .bind(digest_id)
            .bind(subscriber)
            .bind(message_id)
            .bind(now)
            .bind(last.map(|(id, _)| id))
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            id
        }))
    }

    /// Housekeeping: confirmation tokens expired more than a week ago, and readers who never
    /// confirmed within 30 days (with their consent record), are deleted. Returns how many
    /// of each.
    #[tracing::instrument(skip_all)]
    pub async fn clean_up(&self, now: DateTime<Utc>) -> StoreResult<(u64, u64)> {
        let tokens_before = now - chrono::Duration::days(7);
        let pending_before = now - chrono::Duration::days(30);
        Ok(on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let tokens = sqlx::query("DELETE FROM confirmation_tokens WHERE expires_at < $1")
                .bind(tokens_before)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            // Their tokens and consent record go with them (the tables cascade).
            let subscribers = sqlx::query(
                "DELETE FROM subscribers WHERE status = 'pending' AND confirmed_at IS NULL \
                 AND created_at < $1",
            )
            .bind(pending_before)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            (tokens, subscribers)
        }))
    }
}
