//! paperboy: emails researchers a personal digest of new and trending papers.
//!
//! The flow runs one way: `feeds` fetch and normalise papers, `store` keeps them, and the
//! later stages (matching, digests, delivery) read from the store; `email` renders every
//! message that `digest` composes and `delivery` transports. `domain`, `config` and
//! `error` lie below all of them; `web`, `cli`, `scheduler` and `app` are entry points that
//! call into the flow, never the reverse. `tests/api/architecture.rs` pins the order.

pub mod app;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod demo;
pub mod digest;
pub mod domain;
pub mod email;
pub mod error;
pub mod feeds;
pub mod matching;
pub mod metrics;
pub mod scheduler;
pub mod store;
pub mod telemetry;
pub mod web;

pub use app::{App, ServeOptions};
