//! Matching benchmark: 2,000 generated papers (Zipf vocabulary of 50,000 words, 150-250
//! word abstracts, 2-10 authors, 1-3 of 40 categories) against 1,000,000 readers holding
//! about 4 queries each, drawn from 300,000 distinct query strings. Everything comes from
//! a fixed seed. Prints one JSON object: index build time and memory, match time,
//! candidates verified per true match, and the naive evaluator on a 10,000-reader sample,
//! extrapolated, with a check that both find the same matches on the sample.
//!
//! Run: `cargo bench --bench matching` (`-- --readers N --naive-sample M` for a smaller run).

use std::collections::HashSet;
use std::time::Instant;

use paperboy::matching::{Doc, Percolator, Query, TermStats, naive_matches};

const VOCAB: usize = 50_000;
const PAPERS: usize = 2_000;
const DISTINCT_QUERIES: usize = 300_000;
const NAIVE_SAMPLE: usize = 10_000;
const CATEGORIES: usize = 40;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Samples ranks 0..n with probability proportional to 1/(rank+1)^s.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Zipf {
        let mut cdf = Vec::with_capacity(n);
        let mut total = 0.0;
        for r in 0..n {
            total += 1.0 / ((r + 1) as f64).powf(s);
            cdf.push(total);
        }
        for c in &mut cdf {
            *c /= total;
        }
        Zipf { cdf }
    }

    fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }
}

fn vocabulary(rng: &mut Rng) -> Vec<String> {
    const ONSETS: &[&str] = &[
        "b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "st",
        "tr", "pl", "gr", "sh", "th", "ch",
    ];
    const VOWELS: &[&str] = &["a", "e", "i", "o", "u", "ai", "ou", "ea"];
    let mut seen = HashSet::new();
    let mut words = Vec::with_capacity(VOCAB);
    while words.len() < VOCAB {
        let syllables = rng.range(2, 4);
        let mut w = String::new();
        for _ in 0..syllables {
            w.push_str(ONSETS[rng.below(ONSETS.len())]);
            w.push_str(VOWELS[rng.below(VOWELS.len())]);
        }
        if rng.below(3) == 0 {
            w.push_str(["n", "x", "l", "m"][rng.below(4)]);
        }
        if seen.insert(w.clone()) {
            words.push(w);
        }
    }
    words
}

struct Corpus {
    words: Vec<String>,
    zipf: Zipf,
    names: Vec<String>,
    categories: Vec<String>,
    /// Multi-word terms of the field ("state space model"), planted in abstracts.
    collocations: Vec<Vec<usize>>,
    collocation_zipf: Zipf,
}

const COLLOCATIONS: usize = 5_000;

struct GenPaper {
    title: String,
    abstract_words: Vec<usize>,
    abstract_text: String,
    authors: Vec<String>,
    categories: Vec<String>,
}

impl Corpus {
    fn new(rng: &mut Rng) -> Corpus {
        let words = vocabulary(rng);
        let names = (0..20_000)
            .map(|_| {
                let first = &words[rng.range(1_000, 20_000)];
                let last = &words[rng.range(1_000, 49_999)];
                format!("{} {}", capitalise(first), capitalise(last))
            })
            .collect();
        let archives = [
            "cs", "math", "stat", "physics", "q-bio", "econ", "eess", "astro-ph",
        ];
        let categories = (0..CATEGORIES)
            .map(|i| {
                format!(
                    "{}.{}{}",
                    archives[i % archives.len()],
                    (b'A' + (i / archives.len()) as u8) as char,
                    (b'A' + (i % 7) as u8) as char
                )
            })
            .collect();
        let collocations = (0..COLLOCATIONS)
            .map(|_| {
                (0..rng.range(2, 3))
                    .map(|_| log_uniform(rng, 500, VOCAB))
                    .collect()
            })
            .collect();
        Corpus {
            words,
            zipf: Zipf::new(VOCAB, 1.0),
            names,
            categories,
            collocations,
            collocation_zipf: Zipf::new(COLLOCATIONS, 1.0),
        }
    }

    fn paper(&self, rng: &mut Rng) -> GenPaper {
        let title_len = rng.range(6, 14);
        let title: Vec<&str> = (0..title_len)
            .map(|_| self.words[self.zipf.sample(rng)].as_str())
            .collect();
        let abstract_len = rng.range(150, 250);
        let mut abstract_words: Vec<usize> = Vec::with_capacity(abstract_len);
        while abstract_words.len() < abstract_len {
            // About one word in thirty starts one of the field's multi-word terms.
            if rng.below(30) == 0 {
                let c = &self.collocations[self.collocation_zipf.sample(rng)];
                abstract_words.extend(c);
            } else {
                abstract_words.push(self.zipf.sample(rng));
            }
        }
        let abstract_text = abstract_words
            .iter()
            .map(|&w| self.words[w].as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let authors = (0..rng.range(2, 10))
            .map(|_| self.names[rng.below(self.names.len())].clone())
            .collect();
        let categories = (0..rng.range(1, 3))
            .map(|_| self.categories[rng.below(CATEGORIES)].clone())
            .collect();
        GenPaper {
            title: capitalise(&title.join(" ")),
            abstract_words,
            abstract_text,
            authors,
            categories,
        }
    }

    /// A topical word: people subscribe to the words of their field, not to the most
    /// common words of all (ranks spread log-uniformly from 2,000 to 50,000).
    fn topical(&self, rng: &mut Rng) -> &str {
        &self.words[log_uniform(rng, 2_000, VOCAB)]
    }

    /// A query drawn by type: 55% one word, 20% phrase, 15% AND, 5% field, 5% OR/NOT.
    /// Phrases and AND pairs come from a sample paper, as real collocations do.
    fn query(&self, rng: &mut Rng, sample: &[GenPaper]) -> String {
        let roll = rng.below(100);
        let p = &sample[rng.below(sample.len())];
        if roll < 55 {
            self.topical(rng).to_string()
        } else if roll < 75 {
            let c = &self.collocations[self.collocation_zipf.sample(rng)];
            let words: Vec<&str> = c.iter().map(|&w| self.words[w].as_str()).collect();
            format!("\"{}\"", words.join(" "))
        } else if roll < 90 {
            // Words that were seen together in one paper, as topics are.
            let mut topical: Vec<usize> = p
                .abstract_words
                .iter()
                .copied()
                .filter(|&w| w >= 500)
                .collect();
            topical.dedup();
            let n = rng.range(2, 3);
            let words: Vec<&str> = (0..n)
                .map(|_| match topical.len() {
                    0 => self.topical(rng),
                    len => self.words[topical[rng.below(len)]].as_str(),
                })
                .collect();
            if rng.below(2) == 0 {
                words.join(" ")
            } else {
                words.join(" AND ")
            }
        } else if roll < 95 {
            match rng.below(3) {
                0 => format!("title:{}", self.topical(rng)),
                1 => {
                    let name = &self.names[rng.below(self.names.len())];
                    let last = name.split(' ').nth(1).unwrap_or(name);
                    format!("author:{last}")
                }
                _ => format!(
                    "cat:{} {}",
                    self.categories[rng.below(CATEGORIES)],
                    self.topical(rng)
                ),
            }
        } else if rng.below(2) == 0 {
            format!("{} OR {}", self.topical(rng), self.topical(rng))
        } else {
            format!("{} -{}", self.topical(rng), self.topical(rng))
        }
    }
}

/// A rank between `lo` and `hi`, uniform in its logarithm.
fn log_uniform(rng: &mut Rng, lo: usize, hi: usize) -> usize {
    let (l, h) = ((lo as f64).ln(), (hi as f64).ln());
    ((l + rng.unit() * (h - l)).exp() as usize).clamp(lo, hi - 1)
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// (current, peak) resident memory in MiB.
fn memory_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .unwrap_or(0.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// `--name N` from the command line.
fn flag(name: &str) -> Option<usize> {
    std::env::args()
        .skip_while(|a| a != name)
        .nth(1)
        .and_then(|n| n.parse().ok())
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn main() {
    let readers = flag("--readers").unwrap_or(1_000_000);
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

    let mut seen = HashSet::new();
    let mut texts = Vec::with_capacity(DISTINCT_QUERIES);
    while texts.len() < DISTINCT_QUERIES {
        let q = corpus.query(&mut rng, &yesterday);
        if seen.insert(q.clone()) {
            texts.push(q);
        }
    }
    drop(seen);
    let parse_started = Instant::now();
    let queries: Vec<Query> = texts
        .iter()
        .map(|t| Query::parse(t).expect("generated query parses"))
        .collect();
    let parse_s = parse_started.elapsed().as_secs_f64();

    // Readers pick queries with a skew: popular queries are shared by many readers.
    let popularity = Zipf::new(DISTINCT_QUERIES, 0.6);
    let holdings: Vec<Vec<u32>> = (0..readers)
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
        percolator.set_reader(r as i64, held.iter().map(|&q| &queries[q as usize]));
    }
    let build_s = build_started.elapsed().as_secs_f64();
    let (rss_after, peak_after_build) = memory_mib();

    let match_started = Instant::now();
    let batch = percolator.match_batch(&docs);
    let per_query_s = match_started.elapsed().as_secs_f64();
    let matched = percolator.readers_matching(&batch);
    let match_s = match_started.elapsed().as_secs_f64();
    let pairs: usize = matched.iter().map(|m| m.papers.len()).sum();

    // The naive evaluator: every query of every sampled reader against every paper.
    let sample = NAIVE_SAMPLE.min(readers).min(
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
    let naive_full_s = naive_s * readers as f64 / sample as f64;
    let fast_sample: Vec<(i64, Vec<u32>)> = matched
        .iter()
        .filter(|m| (m.reader as usize) < sample)
        .map(|m| (m.reader, m.papers.iter().map(|(p, _)| *p).collect()))
        .collect();
    let same = fast_sample == naive;
    let (_, peak) = memory_mib();

    let result = serde_json::json!({
        "benchmark": "matching",
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "papers": PAPERS,
        "readers": readers,
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
