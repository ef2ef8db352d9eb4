//! `paperboy papers search QUERY [--since DATE] [--json]`: a query tried against the stored
//! papers, ranked and explained as in a digest.

use serde_json::json;

use crate::cli::{CliError, open_store, parse_since, print_json};
use crate::config::Settings;
use crate::domain::Paper;
use crate::matching::{self, Hit, Query};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A query in paperboy's language, e.g. 'diffusion -survey' or 'author:"Tri Dao"'
    /// (one that starts with `-` needs no `--` before it).
    #[arg(allow_hyphen_values = true)]
    query: String,
    /// Only papers first stored on or after this date (YYYY-MM-DD or RFC 3339).
    #[arg(long, value_name = "DATE")]
    since: Option<String>,
    /// Print the ranked papers as JSON instead of lines.
    #[arg(long)]
    json: bool,
}

pub async fn run(settings: &Settings, args: Args) -> Result<(), CliError> {
    let query =
        Query::parse(&args.query).map_err(|e| CliError::input(format!("bad query: {e}")))?;
    let since = args.since.as_deref().map(parse_since).transpose()?;
    let store = open_store(settings).await?;
    let papers: Vec<Paper> = store
        .list_papers(since)
        .await?
        .into_iter()
        .map(|p| p.paper)
        .collect();
    let hits = matching::search(&query, &papers);
    if args.json {
        let rows: Vec<_> = hits.iter().map(hit_json).collect();
        return print_json(&rows);
    }
    for (i, h) in hits.iter().enumerate() {
        let e = &h.scored.explanation;
        say!("{:>3}. {}  score {:.2}", i + 1, h.paper.key, h.scored.score);
        say!("     {}", highlight(&h.paper.title, &e.title_spans));
        for q in &e.queries {
            let fields: Vec<&str> = q.fields.iter().map(|f| f.name()).collect();
            say!("     matched: {} in {}", q.query, fields.join(", "));
        }
    }
    eprintln!("{} of {} paper(s) match", hits.len(), papers.len());
    Ok(())
}

fn hit_json(h: &Hit<'_>) -> serde_json::Value {
    json!({
        "key": h.paper.key,
        "title": h.paper.title,
        "score": h.scored.score,
        "upvotes": h.paper.upvotes,
        "links": h.paper.links,
        "matched": h.scored.explanation.queries,
        "title_spans": h.scored.explanation.title_spans,
        "abstract_spans": h.scored.explanation.abstract_spans,
    })
}

/// Marks highlighted spans with brackets for a terminal.
fn highlight(text: &str, spans: &[std::ops::Range<usize>]) -> String {
    let mut out = String::with_capacity(text.len() + spans.len() * 2);
    let mut at = 0;
    for span in spans {
        if span.start < at || span.end > text.len() {
            continue;
        }
        out.push_str(&text[at..span.start]);
        out.push('[');
        out.push_str(&text[span.clone()]);
        out.push(']');
        at = span.end;
    }
    out.push_str(&text[at..]);
    out
}
