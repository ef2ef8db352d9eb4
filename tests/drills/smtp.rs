//! Reliability drills: smtp.
#[path = "../common/mod.rs"]
mod common;
#[path = "report.rs"]
mod report;
