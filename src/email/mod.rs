//! Every email paperboy writes: the outgoing [`Email`] (its two bodies, its list headers
//! and a Message-ID on the sender's domain) and the rendering of each kind from
//! `templates/email`: the digest, the confirmation link and the note to an address already
//! subscribed. It builds messages and never sends one: that is the delivery module's job.

pub mod digest;
pub mod notices;
pub mod text;

use std::sync::atomic::{AtomicU64, Ordering};

use crate::domain::EmailAddress;
use crate::domain::token::Links;

/// An email ready to go: both bodies carry the same content.
#[derive(Debug, Clone)]
pub struct Email {
    pub to: EmailAddress,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// Without angle brackets: `id@domain`.
    pub message_id: String,
    /// The list headers of mail sent to a subscriber (RFC 2919, 2369 and 8058).
    pub list: Option<ListHeaders>,
}

/// What lets a mail client name the list and unsubscribe in one click.
#[derive(Debug, Clone)]
pub struct ListHeaders {
    /// `paperboy digest <digest.example.org>`: the List-Id.
    pub id: String,
    /// The HTTPS (or, locally, HTTP) address whose POST unsubscribes.
    pub unsubscribe_url: String,
    /// Marks machine-sent mail (`Auto-Submitted: auto-generated`) and bulk mail
    /// (`Precedence: bulk`) when set; confirmations are neither bulk nor auto-replies.
    pub bulk: bool,
    /// `Feedback-ID` for mailbox providers' complaint loops: `campaign:kind:sender`.
    pub feedback_id: Option<String>,
}

/// The List-Id of every email to a subscriber: `paperboy digest <digest.HOST>`.
fn list_id(links: &Links) -> String {
    format!("paperboy digest <digest.{}>", links.host())
}

/// Makes Message-IDs on the sender's domain, unique to this process and instant. A
/// delivery's Message-ID is chosen once, when its digest is written, so a resend after a
/// crash carries the same one.
#[derive(Debug, Clone)]
pub struct MessageIds {
    domain: String,
}

impl MessageIds {
    /// Message-IDs `…@domain`, the domain of the From address.
    pub fn new(domain: impl Into<String>) -> MessageIds {
        MessageIds {
            domain: domain.into(),
        }
    }

    /// A new Message-ID, without angle brackets.
    pub fn next(&self) -> String {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        format!("{nanos:x}.{:x}.{n:x}@{}", std::process::id(), self.domain)
    }
}

/// A template could not be rendered.
#[derive(Debug, thiserror::Error)]
#[error("cannot render the {what} email")]
pub struct RenderError {
    what: &'static str,
    #[source]
    source: askama::Error,
}

impl RenderError {
    fn of(what: &'static str) -> impl FnOnce(askama::Error) -> RenderError {
        move |source| RenderError { what, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_unique_and_on_the_sender_domain() {
        let ids = MessageIds::new("example.org");
        let (a, b) = (ids.next(), ids.next());
        assert_ne!(a, b);
        assert!(
            a.ends_with("@example.org") && !a.contains(['<', '>']),
            "{a}"
        );
    }
}
