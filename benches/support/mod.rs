//! What the benchmarks share: a seeded generator of papers and queries shaped like a
//! research field's (Zipf vocabulary, multi-word terms, authors, categories), memory
//! readings, and Postfix's smtp-sink as the receiving relay.
#![allow(dead_code)]

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::Duration;

pub const VOCAB: usize = 50_000;
pub const CATEGORIES: usize = 40;

pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Samples ranks 0..n with probability proportional to 1/(rank+1)^s.
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    pub fn new(n: usize, s: f64) -> Zipf {
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

    pub fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }
}

pub fn vocabulary(rng: &mut Rng) -> Vec<String> {
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

pub struct Corpus {
    pub words: Vec<String>,
    zipf: Zipf,
    names: Vec<String>,
    categories: Vec<String>,
    /// Multi-word terms of the field ("state space model"), planted in abstracts.
    collocations: Vec<Vec<usize>>,
    collocation_zipf: Zipf,
}

pub const COLLOCATIONS: usize = 5_000;

pub struct GenPaper {
    pub title: String,
    pub abstract_words: Vec<usize>,
    pub abstract_text: String,
    pub authors: Vec<String>,
    pub categories: Vec<String>,
}

impl Corpus {
    pub fn new(rng: &mut Rng) -> Corpus {
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

    pub fn paper(&self, rng: &mut Rng) -> GenPaper {
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
    pub fn topical(&self, rng: &mut Rng) -> &str {
        &self.words[log_uniform(rng, 2_000, VOCAB)]
    }

    /// A query drawn by type: 55% one word, 20% phrase, 15% AND, 5% field, 5% OR/NOT.
    /// Phrases and AND pairs come from a sample paper, as real collocations do.
    pub fn query(&self, rng: &mut Rng, sample: &[GenPaper]) -> String {
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
pub fn log_uniform(rng: &mut Rng, lo: usize, hi: usize) -> usize {
    let (l, h) = ((lo as f64).ln(), (hi as f64).ln());
    ((l + rng.unit() * (h - l)).exp() as usize).clamp(lo, hi - 1)
}

pub fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// (current, peak) resident memory in MiB.
pub fn memory_mib() -> (f64, f64) {
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
pub fn flag(name: &str) -> Option<usize> {
    std::env::args()
        .skip_while(|a| a != name)
        .nth(1)
        .and_then(|n| n.parse().ok())
}

pub fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Postfix's smtp-sink on a free port, discarding what it receives; killed on drop.
pub struct Sink(std::process::Child, pub u16);

impl Sink {
    pub fn start() -> Option<Sink> {
        let port = free_port();
        let mut cmd = Command::new("smtp-sink");
        // As root it must drop to a user; the Postfix package creates `postfix`.
        if std::env::var("USER").is_ok_and(|u| u == "root") || is_root() {
            cmd.args(["-u", "postfix"]);
        }
        let child = cmd
            .args([&format!("127.0.0.1:{port}"), "1024"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(Sink(child, port));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"))
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Corpus {
    /// `n` distinct query strings, drawn as [`Corpus::query`] draws them.
    pub fn distinct_queries(&self, rng: &mut Rng, sample: &[GenPaper], n: usize) -> Vec<String> {
        let mut seen = HashSet::new();
        let mut texts = Vec::with_capacity(n);
        while texts.len() < n {
            let q = self.query(rng, sample);
            if seen.insert(q.clone()) {
                texts.push(q);
            }
        }
        texts
    }
}

/// Postfix's `smtp-source` sending `messages` of `bytes` each, `concurrency` at a time,
/// into the sink on `port`; returns the seconds it took.
pub fn smtp_source(port: u16, messages: usize, concurrency: usize, bytes: usize) -> f64 {
    let started = std::time::Instant::now();
    let status = Command::new("smtp-source")
        .args(["-m", &messages.to_string(), "-s", &concurrency.to_string()])
        .args(["-l", &bytes.to_string()])
        .args([
            "-f",
            "digest@papers.example.org",
            "-t",
            "reader@example.org",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("smtp-source");
    assert!(status.success(), "smtp-source failed");
    started.elapsed().as_secs_f64()
}
