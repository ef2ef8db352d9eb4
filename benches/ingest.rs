//! Ingest benchmark: a generated 2,000-entry arXiv RSS feed (the real format), parsed and
//! stored in one batch, on SQLite and (with PAPERBOY_TEST_POSTGRES_URL) PostgreSQL.
//! The naive baseline, measured in the same run, stores the same papers one transaction
//! per paper. Prints one JSON object per backend.
//!
//! Run: `cargo bench --bench ingest`

use std::time::Instant;

use chrono::Utc;
use paperboy::config::DatabaseUrl;
use paperboy::domain::{FeedKind, FeedName, FeedUrl};
use paperboy::feeds::parse;
use paperboy::store::Store;
use sqlx::Connection;

const ENTRIES: usize = 2_000;

const WORDS: &[&str] = &[
    "diffusion",
    "transformer",
    "attention",
    "sparse",
    "graph",
    "neural",
    "operator",
    "bayesian",
    "inference",
    "reinforcement",
    "learning",
    "policy",
    "gradient",
    "kernel",
    "causal",
    "representation",
    "contrastive",
    "retrieval",
    "language",
    "model",
    "vision",
    "robust",
    "optimal",
    "transport",
    "scaling",
    "laws",
    "quantum",
    "state",
    "space",
    "federated",
    "privacy",
    "benchmark",
    "agents",
    "reasoning",
    "alignment",
    "sampling",
];

/// A small deterministic generator (xorshift), so every run ingests the same feed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn words(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| WORDS[(self.next() % WORDS.len() as u64) as usize])
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn arxiv_feed(entries: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed);
    let mut xml = String::from(
        "<?xml version='1.0' encoding='UTF-8'?>\n<rss xmlns:arxiv=\"http://arxiv.org/schemas/atom\" \
         xmlns:dc=\"http://purl.org/dc/elements/1.1/\" version=\"2.0\"><channel>\
         <title>cs.LG updates on arXiv.org</title><link>http://rss.arxiv.org/rss/cs.LG</link>\
         <description>bench</description>\n",
    );
    let cats = ["cs.LG", "cs.AI", "cs.CL", "cs.CV", "stat.ML"];
    for i in 0..entries {
        let id = format!("2601.{:05}", i + 1);
        let announce = ["new", "cross", "replace"][i % 3];
        let c1 = cats[i % cats.len()];
        let c2 = cats[(i + 2) % cats.len()];
        xml.push_str(&format!(
            "<item><title>{}</title><link>https://arxiv.org/abs/{id}</link>\
             <description>arXiv:{id}v1 Announce Type: {announce} \nAbstract: {}</description>\
             <guid isPermaLink=\"false\">oai:arXiv.org:{id}v1</guid>\
             <category>{c1}</category><category>{c2}</category>\
             <pubDate>Mon, 05 Jan 2026 00:00:00 -0500</pubDate>\
             <arxiv:announce_type>{announce}</arxiv:announce_type>\
             <dc:creator>{}, {}, {}</dc:creator></item>\n",
            rng.words(9),
            rng.words(160),
            rng.words(2),
            rng.words(2),
            rng.words(2),
        ));
    }
    xml.push_str("</channel></rss>\n");
    xml.into_bytes()
}

async fn fresh_store(url: &DatabaseUrl) -> (Store, i64) {
    let store = Store::open(url).await.expect("open store");
    let feed = store
        .add_feed(
            &FeedName::parse("bench").unwrap(),
            &FeedUrl::parse("https://rss.arxiv.org/rss/cs.LG").unwrap(),
            FeedKind::ArxivRss,
            Utc::now(),
        )
        .await
        .expect("add feed");
    (store, feed.id)
}

/// Returns a database URL for one run and whatever is needed to drop it afterwards.
async fn database(
    backend: &str,
    n: usize,
) -> (
    DatabaseUrl,
    Option<tempfile::TempDir>,
    Option<(String, String)>,
) {
    if backend == "sqlite" {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("bench.db").display());
        return (DatabaseUrl::new(url), Some(dir), None);
    }
    let base = std::env::var("PAPERBOY_TEST_POSTGRES_URL").unwrap();
    let name = format!("pbbench_{}_{n}", std::process::id());
    let mut conn = sqlx::PgConnection::connect(&base).await.expect("postgres");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name}"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let mut url = url::Url::parse(&base).unwrap();
    url.set_path(&name);
    (DatabaseUrl::new(url.to_string()), None, Some((base, name)))
}

async fn drop_database(pg: Option<(String, String)>) {
    if let Some((base, name)) = pg {
        let mut conn = sqlx::PgConnection::connect(&base).await.unwrap();
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await;
    }
}

async fn run(backend: &str, body: &[u8]) -> serde_json::Value {
    // Parse, then store in one batch: what `paperboy fetch` does.
    let (url, _dir, pg) = database(backend, 1).await;
    let (store, feed_id) = fresh_store(&url).await;
    let started = Instant::now();
    let parsed = parse(FeedKind::ArxivRss, body, Some("application/rss+xml"), None).expect("parse");
    let parse_s = started.elapsed().as_secs_f64();
    let stored_at = Instant::now();
    let counts = store
        .upsert_papers(feed_id, &parsed.entries, Utc::now())
        .await
        .expect("store");
    let store_s = stored_at.elapsed().as_secs_f64();
    let total_s = started.elapsed().as_secs_f64();
    assert_eq!(counts.new, ENTRIES);
    // The next day's fetch of the same listing: everything known, nothing new.
    let again = Instant::now();
    let reparsed =
        parse(FeedKind::ArxivRss, body, Some("application/rss+xml"), None).expect("parse");
    let counts_again = store
        .upsert_papers(feed_id, &reparsed.entries, Utc::now())
        .await
        .expect("store");
    let again_s = again.elapsed().as_secs_f64();
    assert_eq!(counts_again.unchanged, ENTRIES);
    store.close().await;
    drop_database(pg).await;

    // Naive baseline: the same papers, one transaction each.
    let (url, _dir2, pg) = database(backend, 2).await;
    let (store, feed_id) = fresh_store(&url).await;
    let naive = Instant::now();
    let parsed = parse(FeedKind::ArxivRss, body, Some("application/rss+xml"), None).expect("parse");
    for entry in &parsed.entries {
        store
            .upsert_papers(feed_id, std::slice::from_ref(entry), Utc::now())
            .await
            .expect("store");
    }
    let naive_s = naive.elapsed().as_secs_f64();
    store.close().await;
    drop_database(pg).await;

    serde_json::json!({
        "benchmark": "ingest",
        "backend": backend,
        "entries": ENTRIES,
        "feed_bytes": body.len(),
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "parse_s": round(parse_s),
        "store_s": round(store_s),
        "parse_plus_store_s": round(total_s),
        "refetch_unchanged_s": round(again_s),
        "naive_one_tx_per_paper_s": round(naive_s),
        "speedup_over_naive": round(naive_s / total_s),
    })
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let body = arxiv_feed(ENTRIES, 0x5eed_cafe);
    let mut backends = vec!["sqlite"];
    if std::env::var("PAPERBOY_TEST_POSTGRES_URL").is_ok_and(|u| !u.is_empty()) {
        backends.push("postgres");
    } else {
        eprintln!("PAPERBOY_TEST_POSTGRES_URL not set: PostgreSQL skipped");
    }
    for backend in backends {
        let result = runtime.block_on(run(backend, &body));
        println!("{result}");
    }
}
