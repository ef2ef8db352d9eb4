//! paperboy: emails researchers a personal digest of new and trending papers.
//!
//! The flow runs one way: `feeds` fetch and normalise papers, `store` keeps them, and the
//! later stages (matching, digests, delivery) read from the store. `web`, `cli` and
//! `scheduler` are entry points that call into that flow, never the reverse.

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
