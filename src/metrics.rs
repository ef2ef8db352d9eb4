//! Metrics in Prometheus text format: counters the flow bumps as it works (papers
//! ingested, feed errors and fetch times, digests, deliveries and SMTP reply classes, web
//! connections the listener closed on a client), and
//! gauges read from the database when scraped (readers by status, the queue's depth and
//! the age of its oldest entry, how long ago each feed last succeeded, bounces and
//! complaints by kind).

use std::sync::OnceLock;

use chrono::Utc;
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

use crate::store::Store;

/// The counters of this process.
pub struct Metrics {
    registry: Registry,
    pub papers_ingested: IntCounterVec,
    pub feed_errors: IntCounterVec,
    pub fetch_seconds: HistogramVec,
    pub digests: IntCounterVec,
    pub deliveries: IntCounterVec,
    pub smtp_replies: IntCounterVec,
    pub connections_closed: IntCounterVec,
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    // Names are fixed and registered once: a clash is a programming error.
    registry
        .register(Box::new(c.clone()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    c
}

/// The process-wide metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let registry = Registry::new();
        let fetch_seconds = HistogramVec::new(
            HistogramOpts::new(
                "paperboy_feed_fetch_seconds",
                "Time to fetch and store a feed",
            )
            .buckets(vec![0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]),
            &["feed"],
        )
        .unwrap_or_else(|e| panic!("metric paperboy_feed_fetch_seconds: {e}"));
        registry
            .register(Box::new(fetch_seconds.clone()))
            .unwrap_or_else(|e| panic!("metric paperboy_feed_fetch_seconds: {e}"));
        Metrics {
            papers_ingested: counter(
                &registry,
                "paperboy_papers_ingested_total",
                "Papers stored from feeds, new or updated",
                &["feed", "change"],
            ),
            feed_errors: counter(
                &registry,
                "paperboy_feed_errors_total",
                "Feed polls that failed",
                &["feed"],
            ),
            digests: counter(
                &registry,
                "paperboy_digests_total",
                "Digest windows composed (with papers) or skipped (nothing matched)",
                &["outcome"],
            ),
            deliveries: counter(
                &registry,
                "paperboy_deliveries_total",
                "Delivery attempts by how they ended",
                &["outcome"],
            ),
            smtp_replies: counter(
                &registry,
                "paperboy_smtp_replies_total",
                "SMTP replies to messages by class (2xx, 4xx, 5xx, or none for no reply)",
                &["class"],
            ),
            connections_closed: counter(
                &registry,
                "paperboy_http_connections_closed_total",
                "Web connections closed by paperboy rather than the client: head_timeout, \
                 body_timeout, keep_alive_timeout, displaced (at the cap), refused (at the \
                 cap, all busy), shutdown_grace",
                &["reason"],
            ),
            fetch_seconds,
            registry,
        }
    })
}

/// Everything, in Prometheus text format: this process's counters and the database's
/// gauges (read by [`Store::snapshot`]).
pub async fn render(store: &Store) -> anyhow::Result<String> {
    let gauges = Registry::new();
    let subscribers = GaugeVec::new(
        Opts::new("paperboy_subscribers", "Readers by status"),
        &["status"],
    )?;
    let deliveries = GaugeVec::new(
        Opts::new("paperboy_deliveries", "Deliveries by state"),
        &["status"],
    )?;
    let feed_age = GaugeVec::new(
        Opts::new(
            "paperboy_feed_last_success_age_seconds",
            "Seconds since each feed's last successful fetch",
        ),
        &["feed"],
    )?;
    let queue = IntGauge::new(
        "paperboy_queue_depth",
        "Deliveries queued or waiting to retry",
    )?;
    let oldest = prometheus::Gauge::new(
        "paperboy_queue_oldest_age_seconds",
        "Age of the oldest delivery still queued or waiting to retry",
    )?;
    let papers = IntGauge::new("paperboy_papers", "Papers stored")?;
    let bounces = GaugeVec::new(
        Opts::new(
            "paperboy_bounce_events",
            "Bounces and complaints stored, by kind (hard, soft, complaint)",
        ),
        &["kind"],
    )?;
    for m in [&subscribers, &deliveries, &feed_age, &bounces] {
        gauges.register(Box::new(m.clone()))?;
    }
    gauges.register(Box::new(queue.clone()))?;
    gauges.register(Box::new(oldest.clone()))?;
    gauges.register(Box::new(papers.clone()))?;

    let db = store.snapshot().await?;
    papers.set(db.papers);
    for (status, n) in &db.subscribers {
        subscribers
            .with_label_values(&[status.as_str()])
            .set(*n as f64);
    }
    for (status, n) in &db.deliveries {
        deliveries
            .with_label_values(&[status.as_str()])
            .set(*n as f64);
    }
    // Every kind is reported, zero included, so a rate over it starts from the first scrape.
    for kind in ["hard", "soft", "complaint"] {
        let n = db
            .bounces
            .iter()
            .find(|(k, _)| k == kind)
            .map_or(0, |(_, n)| *n);
        bounces.with_label_values(&[kind]).set(n as f64);
    }
    queue.set(db.queue_depth);
    let now = Utc::now();
    oldest.set(
        db.queue_oldest_at
            .map(|t| (now - t).num_milliseconds() as f64 / 1000.0)
            .unwrap_or(0.0),
    );
    for (feed, t) in &db.feeds_last_success {
        feed_age
            .with_label_values(&[feed.as_str()])
            .set((now - *t).num_seconds() as f64);
    }

    let mut families = global().registry.gather();
    families.extend(gauges.gather());
    let mut out = Vec::new();
    TextEncoder::new().encode(&families, &mut out)?;
    Ok(String::from_utf8(out)?)
}
