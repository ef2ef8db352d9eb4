//! Delivery: getting a finished message to the reader's mail server, through an SMTP
//! relay or into the file outbox, and composing the emails about a subscription itself.
//! It sends what it is given; what to send and when is decided upstream.

mod mailer;
pub mod notices;
mod smtp;
pub mod worker;

pub use mailer::{Email, ListHeaders, MailError, Mailer, Sent, SmtpClass};
pub use worker::{DrainReport, Worker};
