//! The suppression list: addresses that may not be mailed again (an erased reader's), kept
//! only as a hash of the address.

use super::{Store, StoreResult, email_key, on_pool};
use crate::domain::EmailAddress;
use crate::domain::token::hash_token;

/// The form in which an erased address is remembered.
pub fn suppression_hash(email: &EmailAddress) -> String {
    hash_token(&email_key(email))
}

/// Whether the address with this hash is on the list, read on `conn` (the transaction that
/// decides what to do with the address, or a pooled connection).
pub(super) async fn is_listed<C>(conn: &mut C, hash: &str) -> sqlx::Result<bool>
where
    C: sqlx::Connection,
    for<'e> &'e mut C: sqlx::Executor<'e, Database = C::Database>,
    for<'q> &'q str: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
    (String,): for<'r> sqlx::FromRow<'r, <C::Database as sqlx::Database>::Row>,
    <C::Database as sqlx::Database>::Arguments: sqlx::IntoArguments<C::Database>,
{
    let found: Option<String> =
        sqlx::query_scalar("SELECT email_hash FROM suppressions WHERE email_hash = $1")
            .bind(hash)
            .fetch_optional(conn)
            .await?;
    Ok(found.is_some())
}

impl Store {
    /// Whether an address is on the suppression list.
    pub async fn is_suppressed(&self, email: &EmailAddress) -> StoreResult<bool> {
        let hash = suppression_hash(email);
        Ok(on_pool!(self, pool => is_listed(&mut *pool.acquire().await?, &hash).await?))
    }
}
