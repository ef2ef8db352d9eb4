//! Delivery: getting a finished message to the reader's mail server, through an SMTP
//! relay or into the file outbox. It sends what it is given; what to send and when is
//! decided upstream.

mod mailer;

pub use mailer::{Email, MailError, Mailer, Sent};
