//! Delivery: getting a finished message to the subscriber's mail server, through an SMTP
//! relay or into the file outbox, from the outbox queue (claims, leases, retries, bounces),
//! and reading the bounces and complaints that come back later.
//! It sends what it is given; what to send is decided upstream and every email is
//! rendered by the email module.

pub mod bounces;
mod mailer;
mod smtp;
pub mod webhooks;
pub mod worker;

pub use mailer::{MailError, Mailer, Sent, SmtpClass};
pub use worker::{DrainReport, Worker};
