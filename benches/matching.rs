//! Matching benchmark: 2,000 generated papers (Zipf vocabulary of 50,000 words, 150-250
//! word abstracts, 2-10 authors, 1-3 of 40 categories) against 1,000,000 readers holding
//! about 4 queries each, drawn from 300,000 distinct query strings. Everything comes from
//! a fixed seed. Prints one JSON object: index build time and memory, match time,
//! candidates verified per true match, and the naive evaluator on a 10,000-reader sample,
//! extrapolated, with a check that both find the same matches on the sample.
//!
//! Run: `cargo bench --bench matching` (`-- --readers N --naive-sample M` for a smaller run).

use std::time::Instant;

use paperboy::matching::{Doc, Percolator, Query, TermStats, naive_matches};

mod support;
use support::{Corpus, GenPaper, Rng, Zipf, flag, memory_mib, round};

const PAPERS: usize = 2_000;
const DISTINCT_QUERIES: usize = 300_000;
const NAIVE_SAMPLE: usize = 10_000;

fn main() {
    let subscribers = flag("--readers").unwrap_or(1_000_000);
    let mut rng = Rng(0x5eed);
    let corpus = Corpus::new(&mut rng);

    // Yesterday's papers: where query phrases come from, and the selectivity sample.
    let yesterday: Vec<GenPaper> = (0..PAPERS).map(|_| corpus.paper(&mut rng)).collect();
    let today: Vec<GenPaper> = (0..PAPERS).map(|_| corpus.paper(&mut rng)).collect();
    let to_doc = |p: &GenPaper| Doc::new(&p.title, &p.abstract_text, &p.authors, &p.categories);
    let yesterday_docs: Vec<Doc> = yesterday.iter().map(to_doc).collect();
    let analyse_started = Instant::now();
    let docs: Vec<Doc> = today.iter().map(to_doc).collect();
    let analyse_s = analyse_started.elapsed().as_secs_f64();

    let texts = corpus.distinct_queries(&mut rng, &yesterday, DISTINCT_QUERIES);
    let parse_started = Instant::now();
    let queries: Vec<Query> = texts
        .iter()
        .map(|t| Query::parse(t).expect("generated query parses"))
        .collect();
    let parse_s = parse_started.elapsed().as_secs_f64();

    // Readers pick queries with a skew: popular queries are shared by many readers.
    let popularity = Zipf::new(DISTINCT_QUERIES, 0.6);
    let holdings: Vec<Vec<u32>> = (0..subscribers)
        .map(|_| {
            (0..rng.range(2, 6))
                .map(|_| popularity.sample(&mut rng) as u32)
                .collect()
        })
        .collect();

    let (rss_before, _) = memory_mib();
    let build_started = Instant::now();
    let mut percolator = Percolator::with_stats(TermStats::from_docs(&yesterday_docs));
    for (r, held) in holdings.iter().enumerate() {
        percolator.set_subscriber(r as i64, held.iter().map(|&q| &queries[q as usize]));
    }
    let build_s = build_started.elapsed().as_secs_f64();
    let (rss_after, peak_after_build) = memory_mib();

    let match_started = Instant::now();
    let batch = percolator.match_batch(&docs);
    let per_query_s = match_started.elapsed().as_secs_f64();
    let matched = percolator.subscribers_matching(&batch);
    let match_s = match_started.elapsed().as_secs_f64();
    let pairs: usize = matched.iter().map(|m| m.papers.len()).sum();

    // The naive evaluator: every query of every sampled reader against every paper.
    let sample = NAIVE_SAMPLE.min(subscribers).min(
        std::env::var("BENCH_NAIVE_SAMPLE")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(usize::MAX),
    );
    let naive_started = Instant::now();
    let mut naive: Vec<(i64, Vec<u32>)> = Vec::new();
    for (r, held) in holdings.iter().take(sample).enumerate() {
        let mut papers = Vec::new();
        for (d, doc) in docs.iter().enumerate() {
            if held
                .iter()
                .any(|&q| naive_matches(queries[q as usize].root(), doc))
            {
                papers.push(d as u32);
            }
        }
        if !papers.is_empty() {
            naive.push((r as i64, papers));
        }
    }
    let naive_s = naive_started.elapsed().as_secs_f64();
    let naive_full_s = naive_s * subscribers as f64 / sample as f64;
    let fast_sample: Vec<(i64, Vec<u32>)> = matched
        .iter()
        .filter(|m| (m.subscriber as usize) < sample)
        .map(|m| (m.subscriber, m.papers.iter().map(|(p, _)| *p).collect()))
        .collect();
    let same = fast_sample == naive;
    let (_, peak) = memory_mib();

    let result = serde_json::json!({
        "benchmark": "matching",
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "papers": PAPERS,
        "readers": subscribers,
        "distinct_queries": percolator.query_count(),
        "query_parse_s": round(parse_s),
        "paper_analysis_s": round(analyse_s),
        "index_build_s": round(build_s),
        "index_memory_mib": round(rss_after - rss_before),
        "peak_rss_after_build_mib": round(peak_after_build),
        "match_s": round(match_s),
        "match_per_query_s": round(per_query_s),
        "readers_with_matches": matched.len(),
        "reader_paper_matches": pairs,
        "query_paper_matches": batch.query_matches,
        "candidates_verified": batch.candidates_verified,
        "candidates_per_true_match": round(batch.candidates_verified as f64 / batch.query_matches.max(1) as f64),
        "naive_sample_readers": sample,
        "naive_sample_s": round(naive_s),
        "naive_extrapolated_s": round(naive_full_s),
        "speedup_over_naive": round(naive_full_s / match_s),
        "same_matches_on_sample": same,
        "peak_rss_mib": round(peak),
    });
    println!("{result}");
    assert!(
        same,
        "the percolator and the naive evaluator disagree on the sample"
    );
}
