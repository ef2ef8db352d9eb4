//! Delivery benchmark: how fast a digest of 15 papers renders (HTML plus text) and becomes
//! a lettre message, and how fast paperboy's mailer (one pooled SMTP transport, a cap on
//! concurrent sends) pushes 100,000 such digests into Postfix's `smtp-sink` on 127.0.0.1,
//! side by side in the same run with Postfix's `smtp-source` sending the same number of
//! messages of the same size at the same concurrency into the same sink. Prints JSON.
//!
//! Run: `cargo bench --bench delivery` (needs Postfix's smtp-sink and smtp-source;
//! `MESSAGES=10000` for a shorter run).

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use paperboy::config::{Secret, Settings};
use paperboy::delivery::Mailer;
use paperboy::domain::Subscriber;
use paperboy::domain::token::{LinkKeys, Links};
use paperboy::domain::{
    ArxivId, EmailAddress, Frequency, MaxPapers, Paper, Preferences, QueryList, SendHour,
    SubscriberStatus,
};
use paperboy::email::digest as render;
use paperboy::matching::{BatchStats, Doc, Query, rank};
use paperboy::store::{StoredEntry, StoredPaper};
use tokio::sync::Semaphore;

mod support;
use support::Sink;

const CONCURRENCY: usize = 8;
const RENDERS: usize = 5_000;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("fixed instant")
        .with_timezone(&Utc)
}

fn subscriber(i: usize) -> Subscriber {
    Subscriber {
        id: i as i64,
        email: EmailAddress::parse(&format!("reader{i}@example.org")).expect("address"),
        status: SubscriberStatus::Active,
        preferences: Preferences {
            queries: QueryList::parse("diffusion\n\"state space model\"\nauthor:\"Tri Dao\"")
                .expect("queries"),
            frequency: Frequency::Daily,
            send_hour: SendHour::new(8).expect("hour"),
            timezone: "Europe/Berlin".parse().expect("zone"),
            max_papers: MaxPapers::DEFAULT,
            layout: Default::default(),
        },
        link_key: format!("key-{i}"),
        created_at: at("2026-11-01T00:00:00Z"),
        updated_at: at("2026-11-01T00:00:00Z"),
        link_sent_at: None,
        confirmed_at: Some(at("2026-11-01T00:00:00Z")),
        unsubscribed_at: None,
        paper_cursor: 0,
        last_window_end: None,
    }
}

/// Fifteen papers of realistic length (a 1,200-character abstract, five authors).
fn entries() -> Vec<StoredEntry> {
    let queries = subscriber(0).preferences.queries.compile();
    let papers: Vec<Paper> = (0..15)
        .map(|i| {
            let id = ArxivId::parse(&format!("2411.{:05}", 200 + i)).expect("id");
            let mut p = Paper::from_arxiv(
                &id,
                format!("Structured state space models for diffusion, study {i}"),
            );
            p.abstract_text = format!(
                "{} We show that diffusion models match a state space model baseline on long-range tasks. {}",
                "Prior work on generative modelling and sequence models is reviewed here. ".repeat(6),
                "Experiments, ablations and limitations are described in detail. ".repeat(8)
            );
            p.authors = ["Tri Dao", "Albert Gu", "Ada Lovelace", "Alan Turing", "Grace Hopper"]
                .map(String::from)
                .to_vec();
            p.categories = vec!["cs.LG".into(), "stat.ML".into()];
            p.upvotes = Some(30 - i64::from(i));
            p.links.discussion = Some(format!("https://huggingface.co/papers/2411.{:05}", 200 + i));
            p
        })
        .collect();
    let docs: Vec<Doc> = papers.iter().map(Doc::from_paper).collect();
    let stats = BatchStats::new(&docs);
    let refs: Vec<&Query> = queries.iter().collect();
    papers
        .into_iter()
        .zip(&docs)
        .enumerate()
        .map(|(i, (paper, doc))| {
            let scored = rank::score(&refs, doc, paper.upvotes, &stats);
            StoredEntry {
                paper: StoredPaper {
                    id: i as i64,
                    paper,
                    first_seen_at: at("2026-11-27T10:00:00Z"),
                    updated_at: at("2026-11-27T10:00:00Z"),
                },
                score: scored.score,
                explanation: scored.explanation,
                suggested: false,
            }
        })
        .collect()
}

/// Reader `i`'s view of the digest: 15 papers shown of 18.
fn digest_view(links: &Links, entries: &[StoredEntry], i: usize) -> render::DigestView {
    let r = subscriber(i);
    render::view(
        entries,
        &render::DigestFacts {
            total: entries.len() + 3,
            trending: false,
            window: (at("2026-11-27T07:00:00Z"), at("2026-11-28T07:00:00Z")),
            per_query: Vec::new(),
        },
        &r.preferences,
        render::DigestLinks {
            archive: Some(links.archive(i as i64, "archive-key")),
            preferences: links.preferences(r.id, &r.link_key),
            unsubscribe: links.unsubscribe(r.id, &r.link_key),
            feed: links.feed(r.id, &r.link_key),
        },
    )
}

fn email_for(
    mailer: &Mailer,
    links: &Links,
    entries: &[StoredEntry],
    i: usize,
) -> paperboy::email::Email {
    let view = digest_view(links, entries, i);
    render::email(links, &subscriber(i), &view, &mailer.message_ids().next()).expect("render")
}

fn main() {
    let messages: usize = std::env::var("MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let links = Links::new(
        "https://papers.example.org",
        LinkKeys::new(b"benchmark key, long enough to sign"),
    );
    let entries = entries();
    let outbox = Mailer::from_settings(&Settings::default()).expect("mailer");

    // Rendering: the view (snippets, links), then the two bodies, then the lettre message.
    let views: Vec<render::DigestView> = (0..RENDERS)
        .map(|i| digest_view(&links, &entries, i))
        .collect();
    let started = Instant::now();
    for i in 0..RENDERS {
        std::hint::black_box(digest_view(&links, &entries, i));
    }
    let view_us = started.elapsed().as_secs_f64() * 1e6 / RENDERS as f64;
    let started = Instant::now();
    let mut bytes = 0;
    for view in &views {
        let (html, text) = render::bodies(view).expect("render");
        bytes += html.len() + text.len();
    }
    let render_us = started.elapsed().as_secs_f64() * 1e6 / RENDERS as f64;
    let started = Instant::now();
    let mut message_bytes = 0;
    for i in 0..RENDERS {
        let email = email_for(&outbox, &links, &entries, i);
        message_bytes = outbox.formatted(&email).expect("message").len();
    }
    let message_us = started.elapsed().as_secs_f64() * 1e6 / RENDERS as f64;

    let mut report = serde_json::json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "papers_per_digest": entries.len(),
        "view_us": (view_us * 10.0).round() / 10.0,
        "render_bodies_us": (render_us * 10.0).round() / 10.0,
        "render_and_build_message_us": (message_us * 10.0).round() / 10.0,
        "bodies_bytes": bytes / RENDERS,
        "message_bytes": message_bytes,
    });

    let Some(sink) = Sink::start() else {
        report["smtp"] = "skipped: Postfix's smtp-sink is not installed".into();
        println!("{}", serde_json::to_string_pretty(&report).expect("json"));
        return;
    };

    // paperboy's mailer: messages rendered ahead, then sent through one pooled transport.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let settings = Settings {
        smtp_url: Some(Secret::new(format!("smtp://127.0.0.1:{}?tls=none", sink.1))),
        from: "paperboy <digest@papers.example.org>".into(),
        ..Settings::default()
    };
    let (paperboy_s, failed) = rt.block_on(async {
        let mailer = Mailer::from_settings(&settings).expect("smtp mailer");
        let emails: Vec<_> = (0..messages)
            .map(|i| email_for(&mailer, &links, &entries, i % 1000))
            .collect();
        let slots = Arc::new(Semaphore::new(CONCURRENCY));
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for email in emails {
            let permit = slots.clone().acquire_owned().await.expect("slots");
            let mailer = mailer.clone();
            tasks.spawn(async move {
                let ok = mailer.send(&email).await.is_ok();
                drop(permit);
                ok
            });
        }
        let mut failed = 0;
        while let Some(r) = tasks.join_next().await {
            if !r.unwrap_or(false) {
                failed += 1;
            }
        }
        (started.elapsed().as_secs_f64(), failed)
    });
    drop(rt);

    // smtp-source: the same count, size and concurrency into the same sink.
    let source_s = support::smtp_source(sink.1, messages, CONCURRENCY, message_bytes);

    let paperboy_rate = messages as f64 / paperboy_s;
    let source_rate = messages as f64 / source_s;
    report["smtp"] = serde_json::json!({
        "messages": messages,
        "concurrency": CONCURRENCY,
        "paperboy_seconds": (paperboy_s * 100.0).round() / 100.0,
        "paperboy_messages_per_second": paperboy_rate.round(),
        "paperboy_failed": failed,
        "smtp_source_seconds": (source_s * 100.0).round() / 100.0,
        "smtp_source_messages_per_second": source_rate.round(),
        "ratio": (paperboy_rate / source_rate * 1000.0).round() / 1000.0,
    });
    println!("{}", serde_json::to_string_pretty(&report).expect("json"));
}
