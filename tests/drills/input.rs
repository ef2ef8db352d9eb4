//! Reliability drills: input.
#[path = "../common/mod.rs"]
mod common;
#[path = "report.rs"]
mod report;
