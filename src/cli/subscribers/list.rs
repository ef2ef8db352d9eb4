//! `paperboy subscribers list [--status S] [--json]`: every subscriber, oldest first, as
//! aligned columns or JSON.

use crate::cli::{CliError, print_json};
use crate::domain::SubscriberStatus;
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// pending, active, paused, unsubscribed or bounced.
    #[arg(long)]
    status: Option<String>,
    /// Print the readers as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub async fn run(store: &Store, args: Args) -> Result<(), CliError> {
    let status = args
        .status
        .as_deref()
        .map(str::parse::<SubscriberStatus>)
        .transpose()?;
    let subscribers = store.list_subscribers(status).await?;
    if args.json {
        return print_json(&subscribers);
    }
    if subscribers.is_empty() {
        eprintln!("no readers");
        return Ok(());
    }
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::NOTHING)
        .set_header([
            "ADDRESS",
            "STATUS",
            "FREQUENCY",
            "HOUR",
            "TIME ZONE",
            "PAPERS",
            "QUERIES",
            "SINCE",
        ]);
    for s in &subscribers {
        let p = &s.preferences;
        table.add_row([
            s.email.to_string(),
            s.status.to_string(),
            p.frequency.as_code(),
            format!("{:02}:00", p.send_hour.get()),
            p.timezone.name().to_string(),
            p.max_papers.get().to_string(),
            p.queries.lines().len().to_string(),
            s.created_at.format("%Y-%m-%d").to_string(),
        ]);
    }
    // Columns padded by one space each side: the first one's leading space is dropped.
    for line in table.lines() {
        let line = line.trim_end();
        say!("{}", line.strip_prefix(' ').unwrap_or(line));
    }
    Ok(())
}
