//! How an error reads for people, on the terminal and in the log: its own message, then
//! each cause's, outermost first, each once.

use std::error::Error;
use std::fmt;

/// `error` and its causes as `outer: cause: root cause`.
///
/// paperboy's errors leave their cause out of their own message (thiserror's `#[source]`
/// without `{0}`), so each level adds only what it knows. A few libraries write their
/// cause into their own message as well: the chain ends at such an error, since everything
/// below it is already written.
pub fn chain<'a>(error: &'a (dyn Error + 'static)) -> Chain<'a> {
    Chain(error)
}

/// See [`chain`].
pub struct Chain<'a>(&'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut level = self.0;
        while !quotes_its_cause(level) {
            let Some(cause) = level.source() else { break };
            write!(f, ": {cause}")?;
            level = cause;
        }
        Ok(())
    }
}

impl fmt::Debug for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// sqlx's errors (`error returned from database: {0}`) and lettre's SMTP errors
/// (`permanent error (550): {source}`) end their message with their cause's.
fn quotes_its_cause(error: &(dyn Error + 'static)) -> bool {
    error.is::<sqlx::Error>()
        || error.is::<sqlx::migrate::MigrateError>()
        || error.is::<lettre::transport::smtp::Error>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot store the papers")]
    struct Outer(#[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("database error")]
    struct Middle(#[source] sqlx::Error);

    #[test]
    fn each_cause_is_written_once_outermost_first() {
        let io = std::io::Error::other("disk full");
        let e = anyhow::Error::new(io)
            .context("writing")
            .context("fetching");
        assert_eq!(
            chain(e.as_ref()).to_string(),
            "fetching: writing: disk full"
        );
    }

    #[test]
    fn the_chain_ends_at_a_library_error_that_already_quotes_its_cause() {
        let sqlx = sqlx::Error::Io(std::io::Error::other("connection reset"));
        let e = Outer(Middle(sqlx));
        assert_eq!(
            chain(&e).to_string(),
            "cannot store the papers: database error: error communicating with database: connection reset"
        );
    }
}
