//! The integration tests: one binary with a module per area, linked once instead of once
//! per file. `helpers` is the shared harness (databases, servers, the running app, and
//! steps named after what a person does); the reliability drills in `tests/drills/` are
//! targets of their own that include it by path.

mod helpers;

mod addresses;
mod admin;
mod architecture;
mod audit;
mod bounces;
mod browser;
mod cli;
mod conformance;
mod crash;
mod digest_mail;
mod digests;
mod feed;
mod fidelity;
mod form;
mod ingest;
mod instances;
mod likes;
mod mail;
mod matching;
mod postfix;
mod preview;
mod ratings;
mod server;
mod taste;
mod web;
