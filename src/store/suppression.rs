//! The suppression list: mailboxes that may not be mailed again (an erased reader's), kept
//! only as a hash; and the links the form mailed to each mailbox in the last day, kept
//! the same way, so that no spelling of an address gets round either.

use chrono::{DateTime, Duration, Utc};

use super::{Store, StoreResult, email_key, on_pool};
use crate::domain::EmailAddress;
use crate::domain::token::hash_token;

/// The form in which an erased address is remembered: the hash of its mailbox key, so
/// that every spelling of the mailbox is refused.
pub fn suppression_hash(email: &EmailAddress) -> String {
    hash_token(&email.mailbox_key())
}

/// The form earlier versions remembered an address in (the hash of the address folded to
/// lower case). A hash cannot be turned into a mailbox key, so entries filed that way are
/// checked as they are, beside the new form.
fn legacy_suppression_hash(email: &EmailAddress) -> String {
    hash_token(&email_key(email))
}

/// Both hashes an address may be listed under.
pub(super) fn suppression_hashes(email: &EmailAddress) -> [String; 2] {
    [suppression_hash(email), legacy_suppression_hash(email)]
}

/// Whether the address is on the list under either hash, read on `conn` (the transaction
/// that decides what to do with the address, or a pooled connection).
pub(super) async fn is_listed<C>(conn: &mut C, email: &EmailAddress) -> sqlx::Result<bool>
where
    C: sqlx::Connection,
    for<'e> &'e mut C: sqlx::Executor<'e, Database = C::Database>,
    for<'q> &'q str: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
    (String,): for<'r> sqlx::FromRow<'r, <C::Database as sqlx::Database>::Row>,
    <C::Database as sqlx::Database>::Arguments: sqlx::IntoArguments<C::Database>,
{
    let [hash, legacy] = suppression_hashes(email);
    let found: Option<String> = sqlx::query_scalar(
        "SELECT email_hash FROM suppressions WHERE email_hash = $1 OR email_hash = $2",
    )
    .bind(hash.as_str())
    .bind(legacy.as_str())
    .fetch_optional(conn)
    .await?;
    Ok(found.is_some())
}

/// How long a link mailed from the form counts against its mailbox.
pub(super) const MAILBOX_WINDOW: Duration = Duration::days(1);

/// How many links the form mailed to the mailbox with this hash in the last day, read on
/// the transaction that decides whether to send another (and that holds the mailbox's
/// lock). Forgets, for every mailbox, the links older than that.
pub(super) async fn mailbox_mails<C>(
    conn: &mut C,
    mailbox_hash: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<i64>
where
    C: sqlx::Connection,
    for<'e> &'e mut C: sqlx::Executor<'e, Database = C::Database>,
    for<'q> &'q str: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
    for<'q> DateTime<Utc>: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
    (i64,): for<'r> sqlx::FromRow<'r, <C::Database as sqlx::Database>::Row>,
    <C::Database as sqlx::Database>::Arguments: sqlx::IntoArguments<C::Database>,
{
    sqlx::query("DELETE FROM mailbox_mails WHERE sent_at <= $1")
        .bind(now - MAILBOX_WINDOW)
        .execute(&mut *conn)
        .await?;
    sqlx::query_scalar("SELECT COUNT(*) FROM mailbox_mails WHERE mailbox_hash = $1")
        .bind(mailbox_hash)
        .fetch_one(&mut *conn)
        .await
}

/// Counts a link mailed to the mailbox with this hash now.
pub(super) async fn record_mailbox_mail<C>(
    conn: &mut C,
    mailbox_hash: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<()>
where
    C: sqlx::Connection,
    for<'e> &'e mut C: sqlx::Executor<'e, Database = C::Database>,
    for<'q> &'q str: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
    for<'q> DateTime<Utc>: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
    <C::Database as sqlx::Database>::Arguments: sqlx::IntoArguments<C::Database>,
{
    sqlx::query("INSERT INTO mailbox_mails (mailbox_hash, sent_at) VALUES ($1, $2)")
        .bind(mailbox_hash)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

impl Store {
    /// Whether an address is on the suppression list.
    pub async fn is_suppressed(&self, email: &EmailAddress) -> StoreResult<bool> {
        Ok(on_pool!(self, pool => is_listed(&mut *pool.acquire().await?, email).await?))
    }
}
