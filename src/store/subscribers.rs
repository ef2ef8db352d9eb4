//! Readers: their preferences and status, confirmation tokens (stored hashed), the consent
//! record, and the instance secret that signs their links.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::suppression::{is_listed, mailbox_mails, record_mailbox_mail, suppression_hash};
use super::{
    BeginWrite, Store, StoreError, StoreResult, WriteTx, email_key, on_pool, push_id_list,
};
use crate::domain::{
    DigestLayout, EmailAddress, Frequency, MaxPapers, Preferences, QueryList, SendHour, Subscriber,
    SubscriberStatus, TimeZone,
};

/// Where a request came from, for the consent record.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// The words of the form the reader agreed to, and their version.
#[derive(Debug, Clone, Copy)]
pub struct ConsentText<'a> {
    pub version: &'a str,
    pub text: &'a str,
}

/// One line of the consent record.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ConsentRecord {
    pub event: String,
    pub at: DateTime<Utc>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub form_version: String,
    pub form_text: String,
}

/// What a subscription request led to, and so which email (if any) goes out.
#[derive(Debug, Clone)]
pub enum RequestOutcome {
    /// A new or not-yet-confirmed reader (or one who left): send the confirmation link for
    /// the request's token. The stored settings are those of before the request.
    Confirm(Subscriber),
    /// The reader is already confirmed; their settings are unchanged. Send them the link to
    /// their preferences.
    AlreadySubscribed(Subscriber),
    /// Nothing changes and nothing is sent: a link went to this address a short while
    /// ago (or another request for it is being handled right now), or the address bounced
    /// or was erased.
    NothingToSend,
}

/// A subscription request: a new token (already hashed) to file if a link goes out.
#[derive(Debug, Clone)]
pub struct SubscriptionRequest<'a> {
    pub email: &'a EmailAddress,
    pub preferences: &'a Preferences,
    pub token_hash: &'a str,
    pub token_ttl: Duration,
    /// A second link to the same address waits at least this long.
    pub resend_after: Duration,
    /// The most links mailed to one mailbox (every spelling of it) in a day.
    pub daily_mailbox_limit: u32,
    pub link_key: &'a str,
    pub client: &'a ClientInfo,
    pub consent: ConsentText<'a>,
}

#[derive(sqlx::FromRow)]
struct SubscriberRow {
    id: i64,
    email: String,
    status: String,
    queries: String,
    frequency: String,
    send_hour: i32,
    timezone: String,
    max_papers: i32,
    group_by_query: bool,
    suggestions: bool,
    link_key: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    link_sent_at: Option<DateTime<Utc>>,
    confirmed_at: Option<DateTime<Utc>>,
    unsubscribed_at: Option<DateTime<Utc>>,
    paper_cursor: i64,
    last_window_end: Option<DateTime<Utc>>,
}

impl TryFrom<SubscriberRow> for Subscriber {
    type Error = StoreError;

    fn try_from(r: SubscriberRow) -> StoreResult<Self> {
        let corrupt = |what: &str, e: &dyn std::fmt::Display| {
            StoreError::Corrupt(format!("subscriber {}: {what}: {e}", r.id))
        };
        Ok(Subscriber {
            id: r.id,
            email: EmailAddress::parse_known(&r.email).map_err(|e| corrupt("email", &e))?,
            status: r.status.parse().map_err(|e| corrupt("status", &e))?,
            preferences: Preferences {
                queries: QueryList::parse(&r.queries).map_err(|e| corrupt("queries", &e))?,
                frequency: r
                    .frequency
                    .parse::<Frequency>()
                    .map_err(|e| corrupt("frequency", &e))?,
                send_hour: SendHour::new(r.send_hour.into())
                    .map_err(|e| corrupt("send_hour", &e))?,
                timezone: r
                    .timezone
                    .parse::<TimeZone>()
                    .map_err(|e| corrupt("timezone", &e))?,
                max_papers: MaxPapers::new(r.max_papers.into())
                    .map_err(|e| corrupt("max_papers", &e))?,
                layout: DigestLayout {
                    group_by_query: r.group_by_query,
                    suggestions: r.suggestions,
                },
            },
            link_key: r.link_key,
            created_at: r.created_at,
            updated_at: r.updated_at,
            link_sent_at: r.link_sent_at,
            confirmed_at: r.confirmed_at,
            unsubscribed_at: r.unsubscribed_at,
            paper_cursor: r.paper_cursor,
            last_window_end: r.last_window_end,
        })
    }
}

/// Binds a reader's preferences as the next seven parameters, in the order every statement
/// names their columns: queries, frequency, send_hour, timezone, max_papers,
/// group_by_query, suggestions.
macro_rules! bind_preferences {
    ($query:expr, $p:expr) => {
        $query
            .bind($p.queries.to_text())
            .bind($p.frequency.as_code())
            .bind(i32::from($p.send_hour.get()))
            .bind($p.timezone.name())
            .bind(i32::from($p.max_papers.get()))
            .bind($p.layout.group_by_query)
            .bind($p.layout.suggestions)
    };
}

macro_rules! select_subscribers {
    ($rest:literal) => {
        concat!(
            "SELECT id, email, status, queries, frequency, send_hour, timezone, max_papers, ",
            "group_by_query, suggestions, ",
            "link_key, created_at, updated_at, link_sent_at, confirmed_at, unsubscribed_at, ",
            "paper_cursor, last_window_end ",
            "FROM subscribers ",
            $rest
        )
    };
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    subscriber_id: i64,
    expires_at: DateTime<Utc>,
    used_at: Option<DateTime<Utc>>,
    queries: String,
    frequency: String,
    send_hour: i32,
    timezone: String,
    max_papers: i32,
    group_by_query: bool,
    suggestions: bool,
}

/// How long a reader who left waits between two links from the form.
const LEFT_RESEND_AFTER: Duration = Duration::days(1);

/// Whether a link went to this reader too recently for another.
fn too_soon(row: &SubscriberRow, resend_after: Duration, now: DateTime<Utc>) -> bool {
    let wait = if row.status == "unsubscribed" {
        resend_after.max(LEFT_RESEND_AFTER)
    } else {
        resend_after
    };
    row.link_sent_at.is_some_and(|t| now - t < wait)
}

impl Store {
    #[tracing::instrument(skip_all, fields(subscriber = id))]
    pub async fn subscriber(&self, id: i64) -> StoreResult<Option<Subscriber>> {
        let row: Option<SubscriberRow> = on_pool!(self, pool => {
            sqlx::query_as(select_subscribers!("WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        row.map(Subscriber::try_from).transpose()
    }

    /// The readers with these ids that exist, in no particular order.
    pub async fn subscribers_by_ids(&self, ids: &[i64]) -> StoreResult<Vec<Subscriber>> {
        let mut found = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let rows: Vec<SubscriberRow> = on_pool!(self, pool => {
                let mut q = sqlx::QueryBuilder::new(select_subscribers!("WHERE id IN ("));
                push_id_list(&mut q, chunk.iter().copied());
                q.build_query_as().fetch_all(pool).await?
            });
            for row in rows {
                found.push(Subscriber::try_from(row)?);
            }
        }
        Ok(found)
    }

    /// Every confirmed reader whose digests are on. A row that no longer reads as a
    /// reader is logged and left out, so it cannot stop everyone else's digest.
    #[tracing::instrument(skip_all)]
    pub async fn active_subscribers(&self) -> StoreResult<Vec<Subscriber>> {
        let rows: Vec<SubscriberRow> = on_pool!(self, pool => {
            sqlx::query_as(select_subscribers!("WHERE status = 'active' ORDER BY id"))
                .fetch_all(pool)
                .await?
        });
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                Subscriber::try_from(r)
                    .map_err(|e| tracing::error!(error = %e, "unreadable reader left out"))
                    .ok()
            })
            .collect())
    }

    /// Every reader, or those in one status, oldest first.
    #[tracing::instrument(skip_all)]
    pub async fn list_subscribers(
        &self,
        status: Option<SubscriberStatus>,
    ) -> StoreResult<Vec<Subscriber>> {
        let rows: Vec<SubscriberRow> = on_pool!(self, pool => {
            match status {
                Some(s) => sqlx::query_as(select_subscribers!("WHERE status = $1 ORDER BY id"))
                    .bind(s.as_str())
                    .fetch_all(pool)
                    .await?,
                None => sqlx::query_as(select_subscribers!("ORDER BY id"))
                    .fetch_all(pool)
                    .await?,
            }
        });
        rows.into_iter().map(Subscriber::try_from).collect()
    }

    #[tracing::instrument(skip_all, fields(email = %email.masked()))]
    pub async fn subscriber_by_email(
        &self,
        email: &EmailAddress,
    ) -> StoreResult<Option<Subscriber>> {
        let row: Option<SubscriberRow> = on_pool!(self, pool => {
            sqlx::query_as(select_subscribers!("WHERE email_key = $1"))
                .bind(email_key(email))
                .fetch_optional(pool)
                .await?
        });
        row.map(Subscriber::try_from).transpose()
    }

    /// Files a subscription request from the form. A new address becomes a pending reader;
    /// a pending reader, or one who left, gets a fresh confirmation token that carries the
    /// settings asked for (they replace the stored ones only when the link is used, so a
    /// stranger cannot change what a reader confirms). A confirmed reader is left as is and
    /// gets a link to their settings. An address that bounced is never mailed from the
    /// form. Within `resend_after` of the last link (a day for a reader who left) nothing
    /// changes at all, so a form submitted again and again mails the address once; and
    /// once `daily_mailbox_limit` links went to the mailbox in the last day, under any
    /// spelling (`ann+1@…`, `A.nn@gmail.com`) and from any client, nothing changes either.
    #[tracing::instrument(skip_all, fields(email = %req.email.masked()))]
    pub async fn request_subscription(
        &self,
        req: &SubscriptionRequest<'_>,
        now: DateTime<Utc>,
    ) -> StoreResult<RequestOutcome> {
        let key = email_key(req.email);
        let mailbox = suppression_hash(req.email);
        let id: i64 = on_pool!(self, pool => {
            let mut tx = pool.begin_mailbox_write(&mailbox).await?;
            // An erased mailbox is never mailed from the form, under any spelling.
            if is_listed(&mut *tx, req.email).await? {
                return Ok(RequestOutcome::NothingToSend);
            }
            if mailbox_mails(&mut *tx, &mailbox, now).await? >= i64::from(req.daily_mailbox_limit) {
                return Ok(RequestOutcome::NothingToSend);
            }
            let existing: Option<SubscriberRow> = sqlx::query_as(pool.locking(
                select_subscribers!("WHERE email_key = $1"),
                select_subscribers!("WHERE email_key = $1 FOR UPDATE"),
            ))
            .bind(&key)
            .fetch_optional(&mut *tx)
            .await?;
            let id = match existing {
                Some(row) if row.status == "bounced" || too_soon(&row, req.resend_after, now) => {
                    return Ok(RequestOutcome::NothingToSend);
                }
                Some(row) => {
                    sqlx::query("UPDATE subscribers SET link_sent_at = $2 WHERE id = $1")
                        .bind(row.id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    if row.status == "active" || row.status == "paused" {
                        record_mailbox_mail(&mut *tx, &mailbox, now).await?;
                        tx.commit().await?;
                        let mut subscriber = Subscriber::try_from(row)?;
                        subscriber.link_sent_at = Some(now);
                        return Ok(RequestOutcome::AlreadySubscribed(subscriber));
                    }
                    row.id
                }
                // Two requests for a new address at once: the one that loses the race finds
                // the row taken and, as the other has just mailed a link, sends nothing.
                None => match insert_subscriber(&mut tx, &NewRow::from_form(req), now).await? {
                    Some(id) => id,
                    None => return Ok(RequestOutcome::NothingToSend),
                },
            };
            insert_token(&mut tx, req.token_hash, id, now, now + req.token_ttl, req.preferences)
                .await?;
            insert_consent(&mut tx, id, "requested", now, req.client, req.consent).await?;
            record_mailbox_mail(&mut *tx, &mailbox, now).await?;
            tx.commit().await?;
            id
        });
        let subscriber = self
            .subscriber(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("subscriber {id} vanished")))?;
        Ok(RequestOutcome::Confirm(subscriber))
    }

    /// What a confirmation token would confirm, changing nothing: the reader and the
    /// settings the token carries, while it is unused and unexpired. The page a
    /// confirmation link opens shows this; only [`Store::confirm`] uses the token.
    #[tracing::instrument(skip_all)]
    pub async fn confirmation(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<(Subscriber, Preferences)>> {
        let token: Option<TokenRow> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT subscriber_id, expires_at, used_at, queries, frequency, send_hour, \
                 timezone, max_papers, group_by_query, suggestions \
                 FROM confirmation_tokens WHERE token_hash = $1",
            )
            .bind(token_hash)
            .fetch_optional(pool)
            .await?
        });
        let Some(t) = token.filter(|t| t.used_at.is_none() && t.expires_at > now) else {
            return Ok(None);
        };
        let Some(subscriber) = self.subscriber(t.subscriber_id).await? else {
            return Ok(None);
        };
        let corrupt = |what: &str, e: &dyn std::fmt::Display| {
            StoreError::Corrupt(format!("confirmation of {}: {what}: {e}", t.subscriber_id))
        };
        let preferences = Preferences {
            queries: QueryList::parse(&t.queries).map_err(|e| corrupt("queries", &e))?,
            frequency: t
                .frequency
                .parse::<Frequency>()
                .map_err(|e| corrupt("frequency", &e))?,
            send_hour: SendHour::new(t.send_hour.into()).map_err(|e| corrupt("send_hour", &e))?,
            timezone: t
                .timezone
                .parse::<TimeZone>()
                .map_err(|e| corrupt("timezone", &e))?,
            max_papers: MaxPapers::new(t.max_papers.into())
                .map_err(|e| corrupt("max_papers", &e))?,
            layout: DigestLayout {
                group_by_query: t.group_by_query,
                suggestions: t.suggestions,
            },
        };
        Ok(Some((subscriber, preferences)))
    }

    /// Uses a confirmation token: once, before it expires, for a reader still waiting for
    /// it (or one who left and asked to come back). The reader becomes active with the
    /// settings the token carries, and the confirmation joins the consent record. `None`
    /// for a token that is unknown, used, expired or no longer applies.
    #[tracing::instrument(skip_all)]
    pub async fn confirm(
        &self,
        token_hash: &str,
        client: &ClientInfo,
        consent: ConsentText<'_>,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Subscriber>> {
        let id: Option<i64> = on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let token: Option<TokenRow> = sqlx::query_as(
                "SELECT subscriber_id, expires_at, used_at, queries, frequency, send_hour, \
                 timezone, max_papers, group_by_query, suggestions \
                 FROM confirmation_tokens WHERE token_hash = $1",
            )
            .bind(token_hash)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(t) = token.filter(|t| t.used_at.is_none() && t.expires_at > now) else {
                return Ok(None);
            };
            // Compare-and-set: of two uses at once, one wins.
            let won = sqlx::query(
                "UPDATE confirmation_tokens SET used_at = $2 \
                 WHERE token_hash = $1 AND used_at IS NULL",
            )
            .bind(token_hash)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if won == 0 {
                return Ok(None);
            }
            let activated = sqlx::query(
                "UPDATE subscribers SET status = 'active', confirmed_at = $2, \
                 unsubscribed_at = NULL, updated_at = $2, queries = $3, frequency = $4, \
                 send_hour = $5, timezone = $6, max_papers = $7, group_by_query = $8, \
                 suggestions = $9, last_window_end = $2, \
                 paper_cursor = (SELECT COALESCE(MAX(id), 0) FROM papers) \
                 WHERE id = $1 AND status IN ('pending', 'unsubscribed')",
            )
            .bind(t.subscriber_id)
            .bind(now)
            .bind(&t.queries)
            .bind(&t.frequency)
            .bind(t.send_hour)
            .bind(&t.timezone)
            .bind(t.max_papers)
            .bind(t.group_by_query)
            .bind(t.suggestions)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let applies = if activated > 0 {
                insert_consent(&mut tx, t.subscriber_id, "confirmed", now, client, consent).await?;
                true
            } else {
                let status: Option<String> =
                    sqlx::query_scalar("SELECT status FROM subscribers WHERE id = $1")
                        .bind(t.subscriber_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                matches!(status.as_deref(), Some("active") | Some("paused"))
            };
            tx.commit().await?;
            applies.then_some(t.subscriber_id)
        });
        match id {
            Some(id) => self.subscriber(id).await,
            None => Ok(None),
        }
    }

    /// Replaces a reader's preferences.
    #[tracing::instrument(skip_all, fields(subscriber = id))]
    pub async fn update_preferences(
        &self,
        id: i64,
        p: &Preferences,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let changed = on_pool!(self, pool => {
            let query = sqlx::query(
                "UPDATE subscribers SET queries = $2, frequency = $3, send_hour = $4, \
                 timezone = $5, max_papers = $6, group_by_query = $7, suggestions = $8, \
                 updated_at = $9 WHERE id = $1",
            )
            .bind(id);
            bind_preferences!(query, p)
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(changed > 0)
    }

    /// Moves a reader from one of `from` to `to` in one compare-and-set; returns whether
    /// it moved. Leaving (unsubscribed) also voids every confirmation link still out.
    /// Becoming active again starts a fresh window: nothing piles up while paused or away.
    #[tracing::instrument(skip_all, fields(subscriber = id, to = %to))]
    pub async fn change_status(
        &self,
        id: i64,
        from: &[SubscriberStatus],
        to: SubscriberStatus,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let Some(first) = from.first() else {
            return Ok(false);
        };
        // Five slots cover every status; unused ones repeat the first.
        let slot = |i: usize| from.get(i).unwrap_or(first).as_str();
        let unsubscribed_at = (to == SubscriberStatus::Unsubscribed).then_some(now);
        let moved = on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let sql = if to == SubscriberStatus::Active {
                "UPDATE subscribers SET status = $2, unsubscribed_at = $3, updated_at = $4, \
                 last_window_end = $4, paper_cursor = (SELECT COALESCE(MAX(id), 0) FROM papers) \
                 WHERE id = $1 AND status IN ($5, $6, $7, $8, $9)"
            } else {
                "UPDATE subscribers SET status = $2, unsubscribed_at = $3, updated_at = $4 \
                 WHERE id = $1 AND status IN ($5, $6, $7, $8, $9)"
            };
            let moved = sqlx::query(sql)
            .bind(id)
            .bind(to.as_str())
            .bind(unsubscribed_at)
            .bind(now)
            .bind(slot(0))
            .bind(slot(1))
            .bind(slot(2))
            .bind(slot(3))
            .bind(slot(4))
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
            if moved && to == SubscriberStatus::Unsubscribed {
                sqlx::query("DELETE FROM confirmation_tokens WHERE subscriber_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            moved
        });
        Ok(moved)
    }

    /// Adds a confirmation to the consent record: a reader who came back from their
    /// settings page.
    #[tracing::instrument(skip_all, fields(subscriber = id))]
    pub async fn record_consent(
        &self,
        id: i64,
        client: &ClientInfo,
        consent: ConsentText<'_>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            insert_consent(&mut tx, id, "confirmed", now, client, consent).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// The consent record of a reader, oldest first.
    #[tracing::instrument(skip_all, fields(subscriber = id))]
    pub async fn consents(&self, id: i64) -> StoreResult<Vec<ConsentRecord>> {
        let rows = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT event, at, ip, user_agent, form_version, form_text FROM consents \
                 WHERE subscriber_id = $1 ORDER BY id",
            )
            .bind(id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }

    /// The instance secret that signs links: `candidate` is kept the first time any
    /// instance asks, and every instance gets the kept one from then on.
    #[tracing::instrument(skip_all)]
    pub async fn instance_secret(&self, candidate: &str) -> StoreResult<String> {
        let secret: String = on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO settings (name, value) VALUES ('secret_key', $1) \
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(candidate)
            .execute(pool)
            .await?;
            sqlx::query_scalar("SELECT value FROM settings WHERE name = 'secret_key'")
                .fetch_one(pool)
                .await?
        });
        Ok(secret)
    }

    /// Moves a confirmation token's expiry: for tests of expired links and for operators
    /// who need to void one.
    #[tracing::instrument(skip_all)]
    pub async fn set_token_expiry(&self, token_hash: &str, at: DateTime<Utc>) -> StoreResult<bool> {
        let changed = on_pool!(self, pool => {
            sqlx::query("UPDATE confirmation_tokens SET expires_at = $2 WHERE token_hash = $1")
                .bind(token_hash)
                .bind(at)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(changed > 0)
    }
}

/// A subscriber row to create, and how it starts.
pub(super) struct NewRow<'a> {
    pub email: &'a EmailAddress,
    pub preferences: &'a Preferences,
    pub link_key: &'a str,
    /// Active at once, with a window starting now (the operator vouches for the address),
    /// or pending until the confirmation link is used.
    pub confirmed: bool,
    /// Whether the papers stored so far count as seen from the start (`paper_cursor` at
    /// the latest paper), as for a subscriber the operator adds; one from the form starts
    /// at none and gets its window when it confirms.
    pub seen_stored_papers: bool,
}

impl<'a> NewRow<'a> {
    fn from_form(req: &SubscriptionRequest<'a>) -> NewRow<'a> {
        NewRow {
            email: req.email,
            preferences: req.preferences,
            link_key: req.link_key,
            confirmed: false,
            seen_stored_papers: false,
        }
    }
}

/// Creates a subscriber, whose link goes out now; `None` when the address is already
/// held. The one place a subscriber row is inserted.
pub(super) async fn insert_subscriber<DB>(
    tx: &mut WriteTx<DB>,
    r: &NewRow<'_>,
    now: DateTime<Utc>,
) -> sqlx::Result<Option<i64>>
where
    DB: sqlx::Database,
    for<'q> i64: sqlx::Decode<'q, DB> + sqlx::Type<DB>,
    for<'q> i32: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> bool: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> DateTime<Utc>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<DateTime<Utc>>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    (i64,): for<'r> sqlx::FromRow<'r, DB::Row>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'e> &'e mut DB::Connection: sqlx::Executor<'e, Database = DB>,
{
    let query = sqlx::query_scalar::<DB, i64>(
        "INSERT INTO subscribers (email, email_key, status, queries, frequency, send_hour, \
         timezone, max_papers, group_by_query, suggestions, link_key, created_at, updated_at, \
         link_sent_at, confirmed_at, last_window_end, paper_cursor) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $12, $13, $13, \
         CASE WHEN $14 THEN (SELECT COALESCE(MAX(id), 0) FROM papers) ELSE 0 END) \
         ON CONFLICT (email_key) DO NOTHING RETURNING id",
    )
    .bind(r.email.as_str())
    .bind(email_key(r.email))
    .bind(if r.confirmed { "active" } else { "pending" });
    bind_preferences!(query, r.preferences)
        .bind(r.link_key)
        .bind(now)
        .bind(r.confirmed.then_some(now))
        .bind(r.seen_stored_papers)
        .fetch_optional(&mut **tx)
        .await
}

pub(super) async fn insert_consent<DB>(
    tx: &mut WriteTx<DB>,
    id: i64,
    event: &str,
    now: DateTime<Utc>,
    client: &ClientInfo,
    consent: ConsentText<'_>,
) -> sqlx::Result<()>
where
    DB: sqlx::Database,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> DateTime<Utc>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> <DB as sqlx::Database>::Arguments: sqlx::IntoArguments<DB>,
    for<'e> &'e mut <DB as sqlx::Database>::Connection: sqlx::Executor<'e, Database = DB>,
{
    sqlx::query::<DB>(
        "INSERT INTO consents (subscriber_id, event, at, ip, user_agent, form_version, form_text) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(event)
    .bind(now)
    .bind(client.ip.as_deref())
    .bind(client.user_agent.as_deref())
    .bind(consent.version)
    .bind(consent.text)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Files a confirmation token (its hash) with the settings it will confirm.
pub(super) async fn insert_token<DB>(
    tx: &mut WriteTx<DB>,
    token_hash: &str,
    id: i64,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    p: &Preferences,
) -> sqlx::Result<()>
where
    DB: sqlx::Database,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i32: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> bool: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> DateTime<Utc>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> <DB as sqlx::Database>::Arguments: sqlx::IntoArguments<DB>,
    for<'e> &'e mut <DB as sqlx::Database>::Connection: sqlx::Executor<'e, Database = DB>,
{
    let query = sqlx::query::<DB>(
        "INSERT INTO confirmation_tokens (token_hash, subscriber_id, created_at, expires_at, \
         queries, frequency, send_hour, timezone, max_papers, group_by_query, suggestions) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(token_hash)
    .bind(id)
    .bind(now)
    .bind(expires_at);
    bind_preferences!(query, p).execute(&mut **tx).await?;
    Ok(())
}
