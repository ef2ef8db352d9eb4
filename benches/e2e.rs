//! End-to-end benchmark: one day of paperboy for a community of readers, from feed to
//! inbox, run the way an operator runs it: the `paperboy` binary with a config file.
//!
//! With a fixed seed it imports 100,000 confirmed readers (`subscribers import`; queries
//! drawn as in the matching benchmark, time zones spread over the world), serves a
//! 2,000-paper day as an arXiv RSS feed and a Hugging Face daily-papers JSON from a local
//! HTTP server, ingests it (`fetch`), runs the digest tick for an instant at which every
//! reader is due (`digest run --no-deliver`), then delivers the queue into Postfix's
//! `smtp-sink` on 127.0.0.1 with one or several worker processes (`digest run`). Postfix's
//! `smtp-source` then sends the same number of messages of the same size, at the same
//! total concurrency, into the same sink. Every stage is a process of its own, so its time
//! and peak memory (`ru_maxrss`) are its own. Prints one JSON object per configuration.
//!
//! Run: `cargo bench --bench e2e` (SQLite; with `PAPERBOY_TEST_POSTGRES_URL` also
//! PostgreSQL with one and with three workers). Options: `--readers N`, `--only sqlite|
//! postgres|postgres-3`, `--no-smtp` (stop after composing: the 1,000,000-reader run),
//! `--tastes F` (run each configuration twice, the second time with a share F of the
//! readers holding ten ratings each, seven "more" and three "less", so a learned taste:
//! what the taste adds to the digest tick).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use paperboy::config::{DatabaseUrl, Settings};
use paperboy::delivery::Mailer;
use paperboy::digest;
use paperboy::domain::{Rating, RatingSource};
use paperboy::store::Store;
use sqlx::Connection;

mod support;
use support::{Corpus, GenPaper, Rng, Sink, Zipf, flag, round};

const PAPERS: usize = 2_000;
const HF_PAPERS: usize = 50;
const DISTINCT_QUERIES: usize = 300_000;
const CONCURRENCY: usize = 8;

/// Zones readers live in, from UTC-10 to UTC+13, including half- and quarter-hour ones.
const ZONES: &[&str] = &[
    "Pacific/Honolulu",
    "America/Anchorage",
    "America/Los_Angeles",
    "America/Denver",
    "America/Chicago",
    "America/New_York",
    "America/Sao_Paulo",
    "America/St_Johns",
    "Atlantic/Azores",
    "UTC",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Paris",
    "Africa/Lagos",
    "Africa/Nairobi",
    "Europe/Moscow",
    "Asia/Tehran",
    "Asia/Dubai",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Asia/Shanghai",
    "Asia/Singapore",
    "Asia/Tokyo",
    "Asia/Seoul",
    "Australia/Adelaide",
    "Australia/Sydney",
    "Pacific/Auckland",
    "Pacific/Chatham",
    "Pacific/Tongatapu",
];

/// The day's data, generated once and shared by every configuration.
struct Day {
    arxiv_rss: Vec<u8>,
    hf_json: Vec<u8>,
    subscribers_csv: Vec<u8>,
    subscribers: usize,
    query_rows: usize,
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn arxiv_id(i: usize) -> String {
    format!("2611.{:05}", i + 1)
}

/// The day as arXiv's RSS announces it (the format of rss.arxiv.org).
fn arxiv_rss(papers: &[GenPaper]) -> Vec<u8> {
    let mut xml = String::from(
        "<?xml version='1.0' encoding='UTF-8'?>\n<rss xmlns:arxiv=\"http://arxiv.org/schemas/atom\" \
         xmlns:dc=\"http://purl.org/dc/elements/1.1/\" xmlns:atom=\"http://www.w3.org/2005/Atom\" \
         version=\"2.0\"><channel><title>cs updates on arXiv.org</title>\
         <link>http://rss.arxiv.org/rss/cs</link><description>cs updates on the arXiv.org \
         e-print archive.</description><language>en-us</language>\
         <lastBuildDate>Mon, 23 Nov 2026 00:30:00 -0500</lastBuildDate>\n",
    );
    for (i, p) in papers.iter().enumerate() {
        let id = arxiv_id(i);
        let announce = if i % 10 == 9 { "cross" } else { "new" };
        let mut cats = String::new();
        for c in &p.categories {
            let _ = write!(cats, "<category>{}</category>", xml_escape(c));
        }
        let _ = writeln!(
            xml,
            "<item><title>{}</title><link>https://arxiv.org/abs/{id}</link>\
             <description>arXiv:{id}v1 Announce Type: {announce} \nAbstract: {}</description>\
             <guid isPermaLink=\"false\">oai:arXiv.org:{id}v1</guid>{cats}\
             <pubDate>Mon, 23 Nov 2026 00:00:00 -0500</pubDate>\
             <arxiv:announce_type>{announce}</arxiv:announce_type>\
             <dc:rights>http://creativecommons.org/licenses/by/4.0/</dc:rights>\
             <dc:creator>{}</dc:creator></item>",
            xml_escape(&p.title),
            xml_escape(&p.abstract_text),
            xml_escape(&p.authors.join(", ")),
        );
    }
    xml.push_str("</channel></rss>\n");
    xml.into_bytes()
}

/// Hugging Face's daily papers for the day: some of the same papers, with upvotes.
fn hf_json(papers: &[GenPaper], rng: &mut Rng) -> Vec<u8> {
    let items: Vec<serde_json::Value> = (0..HF_PAPERS)
        .map(|k| {
            let i = rng.below(papers.len());
            let p = &papers[i];
            serde_json::json!({
                "paper": {
                    "id": arxiv_id(i),
                    "authors": p.authors.iter().map(|a| serde_json::json!({"name": a, "hidden": false})).collect::<Vec<_>>(),
                    "publishedAt": "2026-11-20T00:00:00.000Z",
                    "submittedOnDailyAt": "2026-11-23T00:00:00.000Z",
                    "title": p.title,
                    "summary": p.abstract_text,
                    "upvotes": 200 / (k + 1),
                    "discussionId": format!("6a{k:022x}"),
                },
                "publishedAt": "2026-11-20T00:00:00.000Z",
                "title": p.title,
                "numComments": k % 7,
            })
        })
        .collect();
    serde_json::to_vec(&items).expect("json")
}

fn generate(subscribers: usize) -> Day {
    let mut rng = Rng(0x5eed);
    let corpus = Corpus::new(&mut rng);
    let yesterday: Vec<GenPaper> = (0..PAPERS).map(|_| corpus.paper(&mut rng)).collect();
    let today: Vec<GenPaper> = (0..PAPERS).map(|_| corpus.paper(&mut rng)).collect();
    let texts = corpus.distinct_queries(&mut rng, &yesterday, DISTINCT_QUERIES);
    let popularity = Zipf::new(DISTINCT_QUERIES, 0.6);
    let mut csv = csv::Writer::from_writer(Vec::new());
    csv.write_record([
        "email",
        "query",
        "frequency",
        "send_hour",
        "timezone",
        "confirmed",
    ])
    .expect("csv");
    let mut rows = 0;
    for r in 0..subscribers {
        let frequency = match rng.below(10) {
            0 => "weekly",
            1 => "weekdays",
            _ => "daily",
        };
        let hour = rng.below(24).to_string();
        let zone = ZONES[rng.below(ZONES.len())];
        let email = format!("reader{r}@example.org");
        let mut held: Vec<usize> = (0..rng.range(2, 6))
            .map(|_| popularity.sample(&mut rng))
            .collect();
        held.sort_unstable();
        held.dedup();
        for q in held {
            csv.write_record([
                email.as_str(),
                texts[q].as_str(),
                frequency,
                hour.as_str(),
                zone,
                "yes",
            ])
            .expect("csv");
            rows += 1;
        }
    }
    let hf = hf_json(&today, &mut rng);
    Day {
        arxiv_rss: arxiv_rss(&today),
        hf_json: hf,
        subscribers_csv: csv.into_inner().expect("csv"),
        subscribers,
        query_rows: rows,
    }
}

/// Serves the day's two feeds over HTTP on 127.0.0.1, on a thread of its own.
fn serve_feeds(day: &Day) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    listener.set_nonblocking(true).expect("nonblocking");
    let rss = day.arxiv_rss.clone();
    let hf = day.hf_json.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            use axum::routing::get;
            let app = axum::Router::new()
                .route(
                    "/rss/cs",
                    get(move || {
                        let rss = rss.clone();
                        async move { ([("content-type", "application/rss+xml")], rss) }
                    }),
                )
                .route(
                    "/api/daily_papers",
                    get(move || {
                        let hf = hf.clone();
                        async move { ([("content-type", "application/json")], hf) }
                    }),
                );
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            axum::serve(listener, app).await.expect("serve");
        });
    });
    port
}

/// A process's wall time, peak resident memory and standard output.
struct Ran {
    seconds: f64,
    peak_rss_mib: f64,
    stdout: String,
}

/// Waits for `child` and reads its peak memory from the kernel's accounting of it.
fn wait_measured(child: std::process::Child, started: Instant, out: &Path, what: &str) -> Ran {
    let pid = i32::try_from(child.id()).expect("pid");
    let mut status = 0;
    // SAFETY: rusage is plain data and wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(waited, pid, "wait4 failed for {what}");
    let stdout = std::fs::read_to_string(out).unwrap_or_default();
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    if code != Some(0) {
        let err = std::fs::read_to_string(out.with_extension("err")).unwrap_or_default();
        panic!("{what} failed ({status}): {stdout}\n{err}");
    }
    Ran {
        seconds,
        peak_rss_mib: usage.ru_maxrss as f64 / 1024.0,
        stdout,
    }
}

struct Run<'a> {
    dir: &'a Path,
    n: usize,
}

impl Run<'_> {
    fn spawn(&mut self, args: &[&str]) -> (std::process::Child, PathBuf) {
        self.n += 1;
        let out = self.dir.join(format!("step{}.out", self.n));
        // `PAPERBOY_E2E_PERF=DIR` records each stage with `perf` into DIR/stepN.data (its
        // times and memory are then perf's as well: for finding where time goes only).
        let mut command = match std::env::var_os("PAPERBOY_E2E_PERF") {
            Some(perf_dir) => {
                let mut c = Command::new("perf");
                c.args(["record", "-F", "499", "-g", "-o"])
                    .arg(Path::new(&perf_dir).join(format!("step{}.data", self.n)))
                    .arg("--")
                    .arg(env!("CARGO_BIN_EXE_paperboy"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_paperboy")),
        };
        let child = command
            .current_dir(self.dir)
            .env("PAPERBOY_LOG", "warn")
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).expect("out file"))
            .stderr(std::fs::File::create(out.with_extension("err")).expect("err file"))
            .spawn()
            .expect("paperboy");
        (child, out)
    }

    fn run(&mut self, args: &[&str]) -> Ran {
        let started = Instant::now();
        let (child, out) = self.spawn(args);
        wait_measured(child, started, &out, &args.join(" "))
    }
}

/// A fresh database: a SQLite file in `dir`, or a new PostgreSQL database.
async fn database(backend: &str, dir: &Path) -> (DatabaseUrl, Option<(String, String)>) {
    if backend == "sqlite" {
        let url = format!("sqlite://{}", dir.join("paperboy.db").display());
        return (DatabaseUrl::new(url), None);
    }
    let base = std::env::var("PAPERBOY_TEST_POSTGRES_URL").expect("postgres url");
    let name = format!("pbe2e_{}", std::process::id());
    let mut conn = sqlx::PgConnection::connect(&base).await.expect("postgres");
    for sql in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .expect("create database");
    }
    let mut url = url::Url::parse(&base).expect("url");
    url.set_path(&name);
    (DatabaseUrl::new(url.to_string()), Some((base, name)))
}

async fn drop_database(pg: Option<(String, String)>) {
    if let Some((base, name)) = pg {
        let mut conn = sqlx::PgConnection::connect(&base).await.expect("postgres");
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await;
    }
}

/// The average size of the digest messages, from a sample rendered exactly as the worker
/// renders them.
async fn message_bytes(store: &Store, settings: &Settings, sample: i64) -> usize {
    let links = paperboy::app::links_for(settings, store)
        .await
        .expect("links");
    let mailer = Mailer::from_settings(&Settings::default()).expect("mailer");
    let (mut total, mut n) = (0, 0);
    for id in 1..=sample {
        let Some(subscriber) = store.subscriber(id).await.expect("reader") else {
            continue;
        };
        for d in store.digests_of(id).await.expect("digests") {
            if d.total == 0 {
                continue;
            }
            let view = digest::stored_view(store, &links, &d, &subscriber, false)
                .await
                .expect("view");
            let email =
                paperboy::email::digest::email(&links, &subscriber, &view, "<sample@example.org>")
                    .expect("email");
            total += mailer.formatted(&email).expect("message").len();
            n += 1;
        }
    }
    total / n.max(1)
}

fn json_of(ran: &Ran) -> serde_json::Value {
    serde_json::from_str(&ran.stdout).unwrap_or_else(|e| panic!("{e}: {}", ran.stdout))
}

fn count(rows: &[(String, i64)], status: &str) -> i64 {
    rows.iter()
        .find(|(s, _)| s == status)
        .map(|(_, n)| *n)
        .unwrap_or(0)
}

/// Gives every `1/share`-th reader ten ratings of the day's papers (seven "more", three
/// "less"), recorded as a rating from the digest page is, so each has a learned taste.
/// Returns how many readers were rated.
async fn rate_readers(url: &DatabaseUrl, share: f64) -> usize {
    let store = Store::open(url).await.expect("store");
    let readers = store.active_subscribers().await.expect("readers");
    let upto = store.max_paper_id().await.expect("papers");
    let every = (1.0 / share).round().max(1.0) as usize;
    let mut rng = Rng(0x7a57e);
    let mut rated = 0;
    for r in readers.iter().step_by(every) {
        let ids: Vec<i64> = (0..10)
            .map(|_| 1 + rng.below(upto as usize) as i64)
            .collect();
        for (some, rating) in [(&ids[..7], Rating::More), (&ids[7..], Rating::Less)] {
            digest::taste::rate(&store, r.id, some, rating, RatingSource::Digest, Utc::now())
                .await
                .expect("rate");
        }
        rated += 1;
    }
    store.close().await;
    rated
}

async fn run(
    day: &Day,
    feeds_port: u16,
    backend: &str,
    workers: usize,
    smtp: bool,
    tastes: f64,
) -> serde_json::Value {
    let dir = tempfile::tempdir().expect("temp dir");
    let (url, pg) = database(backend, dir.path()).await;
    let sink = if smtp {
        Some(Sink::start().expect("Postfix's smtp-sink is needed (or pass --no-smtp)"))
    } else {
        None
    };
    let mail = match &sink {
        Some(s) => format!("smtp_url = \"smtp://127.0.0.1:{}?tls=none\"", s.1),
        None => "outbox_dir = \"outbox\"".to_string(),
    };
    let config = format!(
        "database_url = \"{}\"\n{mail}\nfrom = \"paperboy <digest@papers.example.org>\"\n\
         base_url = \"https://papers.example.org\"\nlog = \"warn\"\n\
         secret_key = \"an end-to-end benchmark secret, long enough\"\n\
         [fetch]\nhost_interval_ms = 0\narxiv_interval_ms = 0\n\
         [delivery]\nconcurrency = {CONCURRENCY}\nmessages_per_second = 1000000\n",
        url.expose()
    );
    let config_path = dir.path().join("paperboy.toml");
    std::fs::write(&config_path, config).expect("config");
    std::fs::write(dir.path().join("readers.csv"), &day.subscribers_csv).expect("csv");
    let mut steps = Run {
        dir: dir.path(),
        n: 0,
    };

    // Setup (not part of the day): readers, and the two feeds pointed at the local server.
    let import = steps.run(&["subscribers", "import", "readers.csv"]);
    for name in ["arxiv-cs", "hf-daily"] {
        steps.run(&["feeds", "remove", name]);
    }
    let arxiv_url = format!("http://127.0.0.1:{feeds_port}/rss/cs");
    let hf_url = format!("http://127.0.0.1:{feeds_port}/api/daily_papers");
    steps.run(&[
        "feeds",
        "add",
        "arxiv-cs",
        &arxiv_url,
        "--kind",
        "arxiv-rss",
    ]);
    steps.run(&["feeds", "add", "hf-daily", &hf_url, "--kind", "hf-daily"]);

    // The day: ingest, the digest tick at an instant every reader is due, delivery.
    let ingest = steps.run(&["fetch", "--json"]);
    let rating = Instant::now();
    let rated = if tastes > 0.0 {
        rate_readers(&url, tastes).await
    } else {
        0
    };
    let rating_s = rating.elapsed().as_secs_f64();
    let at: DateTime<Utc> = Utc::now() + chrono::Duration::days(8);
    let at_s = at.to_rfc3339();
    let tick = steps.run(&["digest", "run", "--at", &at_s, "--no-deliver", "--json"]);
    let tick_json = json_of(&tick);
    let report = &tick_json["report"];
    let composed = report["composed"].as_i64().expect("composed");

    let mut result = serde_json::json!({
        "benchmark": "e2e",
        "backend": backend,
        "workers": if smtp { workers } else { 0 },
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "readers": day.subscribers,
        "queries": day.query_rows,
        "papers_in_feeds": PAPERS,
        "setup_import_readers_s": round(import.seconds),
        "readers_with_a_taste": rated,
        "setup_ratings_s": round(rating_s),
        "ingest": {
            "s": round(ingest.seconds),
            "peak_rss_mib": round(ingest.peak_rss_mib),
            "feeds": json_of(&ingest).as_array().map(|a| a.iter().map(|f| serde_json::json!({
                "feed": f["feed"], "new": f["new"], "updated": f["updated"],
            })).collect::<Vec<_>>()),
        },
        "match": {
            "s": round(report["seconds"]["matching"].as_f64().unwrap_or(0.0)),
        },
        "compose": {
            "s": round(tick.seconds),
            "peak_rss_mib": round(tick.peak_rss_mib),
            "stages_s": report["seconds"],
            "due": report["due"],
            "digests_composed": composed,
            "digests_skipped": report["skipped"],
            "failed": report["failed"],
        },
    });
    let mut day_s = ingest.seconds + tick.seconds;

    if let Some(sink) = &sink {
        let started = Instant::now();
        let children: Vec<_> = (0..workers)
            .map(|_| steps.spawn(&["digest", "run", "--at", &at_s, "--json"]))
            .collect();
        let ran: Vec<Ran> = children
            .into_iter()
            .map(|(child, out)| wait_measured(child, started, &out, "digest run (delivery)"))
            .collect();
        let deliver_s = started.elapsed().as_secs_f64();
        day_s += deliver_s;
        let sent_each: Vec<i64> = ran
            .iter()
            .map(|r| json_of(r)["delivered"]["sent"].as_i64().expect("sent"))
            .collect();
        let sent: i64 = sent_each.iter().sum();

        // Nothing lost or doubled: every composed digest sent once, nothing else queued.
        let settings = Settings::load(Some(&config_path)).expect("settings");
        let store = Store::open(&url).await.expect("store");
        let stats = store.stats().await.expect("stats");
        assert_eq!(sent, composed, "messages sent by the workers");
        assert_eq!(
            count(&stats.deliveries, "sent"),
            composed,
            "deliveries sent"
        );
        assert_eq!(
            stats.deliveries.iter().map(|(_, n)| n).sum::<i64>(),
            composed,
            "no delivery left in any other state: {:?}",
            stats.deliveries
        );
        let bytes = message_bytes(&store, &settings, 200).await;
        store.close().await;

        let total_concurrency = CONCURRENCY * workers;
        let source_s = support::smtp_source(
            sink.1,
            usize::try_from(sent).unwrap_or(0),
            total_concurrency,
            bytes,
        );
        let rate = sent as f64 / deliver_s;
        let source_rate = sent as f64 / source_s;
        result["render_and_deliver"] = serde_json::json!({
            "s": round(deliver_s),
            "peak_rss_mib_per_worker": ran.iter().map(|r| round(r.peak_rss_mib)).collect::<Vec<_>>(),
            "messages_sent": sent,
            "sent_per_worker": sent_each,
            "message_bytes": bytes,
            "concurrency": total_concurrency,
            "messages_per_second": rate.round(),
            "duplicates": sent - composed,
        });
        result["smtp_source"] = serde_json::json!({
            "s": round(source_s),
            "messages_per_second": source_rate.round(),
        });
        result["delivery_rate_ratio"] = round(rate / source_rate).into();
    }
    result["whole_day_s"] = round(day_s).into();
    result["peak_rss_mib_max"] = round(
        [ingest.peak_rss_mib, tick.peak_rss_mib]
            .into_iter()
            .chain(
                result["render_and_deliver"]["peak_rss_mib_per_worker"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_f64()),
            )
            .fold(0.0, f64::max),
    )
    .into();
    drop(sink);
    drop_database(pg).await;
    result
}

fn main() {
    let subscribers = flag("--readers").unwrap_or(100_000);
    let only = std::env::args().skip_while(|a| a != "--only").nth(1);
    let smtp = !std::env::args().any(|a| a == "--no-smtp");
    let postgres = std::env::var("PAPERBOY_TEST_POSTGRES_URL").is_ok_and(|u| !u.is_empty());
    let tastes: Option<f64> = std::env::args()
        .skip_while(|a| a != "--tastes")
        .nth(1)
        .map(|v| v.parse().expect("--tastes takes a share, such as 0.2"));
    let mut configs = vec![("sqlite", 1)];
    if postgres {
        configs.push(("postgres", 1));
        if smtp {
            configs.push(("postgres", 3));
        }
    } else {
        eprintln!("PAPERBOY_TEST_POSTGRES_URL not set: PostgreSQL skipped");
    }
    if let Some(only) = &only {
        configs.retain(|(b, w)| match only.as_str() {
            "postgres-3" => *b == "postgres" && *w == 3,
            name => *b == name && *w == 1,
        });
    }
    let started = Instant::now();
    let day = generate(subscribers);
    eprintln!(
        "generated {} readers ({} query rows) in {:.1} s",
        day.subscribers,
        day.query_rows,
        started.elapsed().as_secs_f64()
    );
    let port = serve_feeds(&day);
    std::thread::sleep(Duration::from_millis(100));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for (backend, workers) in configs {
        let plain = runtime.block_on(run(&day, port, backend, workers, smtp, 0.0));
        println!("{plain}");
        if let Some(share) = tastes {
            let steered = runtime.block_on(run(&day, port, backend, workers, smtp, share));
            println!("{steered}");
            let tick = |v: &serde_json::Value| v["compose"]["s"].as_f64().unwrap_or(0.0);
            println!(
                "{}",
                serde_json::json!({
                    "benchmark": "e2e-taste-overhead",
                    "backend": backend,
                    "readers_with_a_taste": steered["readers_with_a_taste"],
                    "tick_s_without": tick(&plain),
                    "tick_s_with": tick(&steered),
                    "added": round(tick(&steered) / tick(&plain).max(1e-9) - 1.0),
                })
            );
        }
    }
}
