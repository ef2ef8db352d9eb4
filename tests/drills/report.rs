//! The one line of figures each drill prints, so CI's log shows what every drill did.
#![allow(dead_code)]

/// Prints `DRILL <name> <json>` on stdout, e.g. requests made, faults injected,
/// messages checked and duplicates found.
pub fn report(drill: &str, figures: serde_json::Value) {
    println!("DRILL {drill} {figures}");
}
