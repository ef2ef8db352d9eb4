//! Does the learned taste help? A seeded simulation of readers with a hidden interest.
//!
//! A synthetic field of 10 topics (each with its own words, authors and category) plus
//! words every topic uses, and a few broad words (`agent`, `benchmark`, …) that turn up in
//! a quarter of all papers whatever their topic. Each reader has a hidden topic and one or
//! two broad queries, so their queries match about a third of every day's 800 papers and
//! say nothing of the topic. Every simulated day each reader gets their 15-paper digest
//! (the production composer: fair shares, the taste blended in) and rates 5 of the papers
//! shown: "more like this" when on their topic, "less" otherwise, the verdict flipped one
//! time in ten. Their taste is relearned after each day's ratings, as a rating does in
//! production. The same readers without ratings are composed beside them.
//!
//! Prints precision@15 on the hidden topic on days 1, 5 and 10 with and without ratings,
//! how often every matched query is represented (also for readers with seven queries),
//! the stored size of the tastes, and the time learning and composing take.
//!
//! Run: `cargo bench --bench taste`.

use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use paperboy::digest::compose::{Tastes, Window, compose};
use paperboy::domain::{
    ArxivId, EmailAddress, Frequency, MaxPapers, Paper, Preferences, QueryList, Rating, SendHour,
    Subscriber, SubscriberStatus,
};
use paperboy::matching::Doc;
use paperboy::matching::taste::{Rated, Taste};
use paperboy::store::StoredPaper;

mod support;
use support::{Rng, round};

const TOPICS: usize = 10;
const TOPIC_WORDS: usize = 60;
const COMMON_WORDS: usize = 400;
const AUTHORS_PER_TOPIC: usize = 30;
const PAPERS_PER_DAY: usize = 800;
const DAYS: usize = 10;
const READERS: usize = 300;
const CROWDED_READERS: usize = 100;
const SHOWN: usize = 15;
const RATED_PER_DAY: usize = 5;
const NOISE: f64 = 0.1;
/// Words found in a quarter of all papers, whatever their topic.
const BROAD: &[&str] = &[
    "agent",
    "benchmark",
    "graph",
    "robust",
    "scaling",
    "reasoning",
];
const BROAD_SHARE: f64 = 0.25;

/// A made-up word: three to four syllables.
fn word(rng: &mut Rng) -> String {
    const C: &[u8] = b"bdfgklmnprstvz";
    const V: &[u8] = b"aeiou";
    let syllables = rng.range(3, 4);
    let mut w = String::new();
    for _ in 0..syllables {
        w.push(C[rng.below(C.len())] as char);
        w.push(V[rng.below(V.len())] as char);
    }
    w
}

struct Field {
    topic_words: Vec<Vec<String>>,
    common: Vec<String>,
    authors: Vec<Vec<String>>,
}

impl Field {
    fn new(rng: &mut Rng) -> Field {
        let mut fresh = std::collections::HashSet::new();
        let mut unique = |rng: &mut Rng| loop {
            let w = word(rng);
            if fresh.insert(w.clone()) {
                return w;
            }
        };
        let topic_words = (0..TOPICS)
            .map(|_| (0..TOPIC_WORDS).map(|_| unique(rng)).collect())
            .collect();
        let common = (0..COMMON_WORDS).map(|_| unique(rng)).collect();
        let authors = (0..TOPICS)
            .map(|_| {
                (0..AUTHORS_PER_TOPIC)
                    .map(|_| {
                        let first = support::capitalise(&unique(rng));
                        let last = support::capitalise(&unique(rng));
                        format!("{first} {last}")
                    })
                    .collect()
            })
            .collect();
        Field {
            topic_words,
            common,
            authors,
        }
    }

    /// A paper of `topic`, numbered `n`.
    fn paper(&self, rng: &mut Rng, topic: usize, n: usize) -> Paper {
        let topical = &self.topic_words[topic];
        // Topic words follow a rough Zipf: a few are in most papers of the topic.
        let pick_topical = |rng: &mut Rng| {
            let r = rng.unit();
            &topical[((r * r) * TOPIC_WORDS as f64) as usize]
        };
        let pick_common = |rng: &mut Rng| {
            let r = rng.unit();
            &self.common[((r * r) * COMMON_WORDS as f64) as usize]
        };
        let broad: Vec<&str> = BROAD
            .iter()
            .enumerate()
            .filter(|(b, _)| {
                // Slightly more likely in one topic, so broad queries are not pure noise.
                let share = if b % TOPICS == topic {
                    BROAD_SHARE * 1.5
                } else {
                    BROAD_SHARE
                };
                rng.unit() < share
            })
            .map(|(_, w)| *w)
            .collect();
        let mut title: Vec<String> = Vec::new();
        for _ in 0..rng.range(2, 3) {
            title.push(pick_topical(rng).clone());
        }
        for _ in 0..rng.range(3, 5) {
            title.push(pick_common(rng).clone());
        }
        for w in &broad {
            if rng.unit() < 0.3 {
                title.insert(rng.below(title.len()), (*w).to_string());
            }
        }
        let mut abstract_words: Vec<String> = Vec::new();
        for _ in 0..90 {
            if rng.unit() < 0.2 {
                abstract_words.push(pick_topical(rng).clone());
            } else {
                abstract_words.push(pick_common(rng).clone());
            }
        }
        for w in &broad {
            let at = rng.below(abstract_words.len());
            abstract_words.insert(at, (*w).to_string());
        }
        let id = ArxivId::parse(&format!("2612.{:05}", n)).expect("id");
        let mut p = Paper::from_arxiv(&id, support::capitalise(&title.join(" ")));
        p.abstract_text = format!("{}.", support::capitalise(&abstract_words.join(" ")));
        p.authors = (0..4)
            .map(|_| self.authors[topic][rng.below(AUTHORS_PER_TOPIC)].clone())
            .collect();
        p.categories = vec![format!("cs.T{topic}"), format!("cs.T{}", rng.below(TOPICS))];
        if rng.unit() < 0.05 {
            p.upvotes = Some(rng.range(1, 200) as i64);
        }
        p
    }
}

fn at(day: usize) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-01T08:00:00Z")
        .expect("instant")
        .with_timezone(&Utc)
        + Duration::days(day as i64)
}

fn reader(id: usize, queries: &str, cursor: i64) -> Subscriber {
    Subscriber {
        id: id as i64,
        email: EmailAddress::parse(&format!("reader{id}@example.org")).expect("address"),
        status: SubscriberStatus::Active,
        preferences: Preferences {
            queries: QueryList::parse(queries).expect("queries"),
            frequency: Frequency::Daily,
            send_hour: SendHour::new(8).expect("hour"),
            timezone: "UTC".parse().expect("zone"),
            max_papers: MaxPapers::new(SHOWN as i64).expect("n"),
            layout: Default::default(),
        },
        link_key: format!("key-{id}"),
        created_at: at(0),
        updated_at: at(0),
        link_sent_at: None,
        confirmed_at: Some(at(0)),
        unsubscribed_at: None,
        paper_cursor: cursor,
        last_window_end: None,
    }
}

/// One simulated reader.
struct Sim {
    topic: usize,
    queries: String,
    /// (paper id, more?) of every rating so far.
    rated: Vec<(i64, Rating)>,
    taste: Option<Taste>,
}

fn main() {
    let mut rng = Rng(0x7a57e);
    let field = Field::new(&mut rng);
    let mut sims: Vec<Sim> = (0..READERS)
        .map(|_| {
            let topic = rng.below(TOPICS);
            let a = rng.below(BROAD.len());
            let queries = if rng.unit() < 0.5 {
                BROAD[a].to_string()
            } else {
                let b = (a + 1 + rng.below(BROAD.len() - 1)) % BROAD.len();
                format!("{}\n{}*", BROAD[a], &BROAD[b][..BROAD[b].len() - 1])
            };
            Sim {
                topic,
                queries,
                rated: Vec::new(),
                taste: None,
            }
        })
        .collect();
    // Readers with seven queries, as a crowded list looks: one broad, five topic words of
    // different topics, one author.
    let crowded: Vec<String> = (0..CROWDED_READERS)
        .map(|_| {
            let mut lines = vec![format!("{}*", &BROAD[rng.below(BROAD.len())][..4])];
            for _ in 0..5 {
                let t = rng.below(TOPICS);
                lines.push(format!("title:{}", field.topic_words[t][rng.below(12)]));
            }
            let t = rng.below(TOPICS);
            lines.push(format!(
                "author:\"{}\"",
                field.authors[t][rng.below(AUTHORS_PER_TOPIC)]
            ));
            lines.join("\n")
        })
        .collect();

    let mut all_papers: Vec<(StoredPaper, usize)> = Vec::new();
    let mut docs: Vec<Doc> = Vec::new();
    let mut precision: Vec<(f64, f64)> = Vec::with_capacity(DAYS + 1);
    precision.push((0.0, 0.0));
    let (mut represented, mut checked) = (0usize, 0usize);
    let (mut learn_s, mut learned) = (0.0f64, 0usize);
    let (mut with_s, mut without_s) = (0.0f64, 0.0f64);
    let mut suggestion_hits = (0usize, 0usize);
    for day in 1..=DAYS {
        let cursor = all_papers.len() as i64;
        for _ in 0..PAPERS_PER_DAY {
            let topic = rng.below(TOPICS);
            let n = all_papers.len() + 1;
            let paper = field.paper(&mut rng, topic, n);
            docs.push(Doc::from_paper(&paper));
            all_papers.push((
                StoredPaper {
                    id: n as i64,
                    paper,
                    first_seen_at: at(day),
                    updated_at: at(day),
                },
                topic,
            ));
        }
        let upto = all_papers.len() as i64;
        let window = Window::new(
            all_papers[cursor as usize..]
                .iter()
                .map(|(p, _)| (p.clone(), 1))
                .collect(),
            upto,
        );
        let readers: Vec<Subscriber> = sims
            .iter()
            .enumerate()
            .map(|(i, s)| reader(i, &s.queries, cursor))
            .collect();
        let tastes = Tastes::new(
            sims.iter()
                .enumerate()
                .filter_map(|(i, s)| s.taste.clone().map(|t| (i as i64, t))),
            all_papers.iter().map(|(p, _)| {
                (
                    p.id,
                    p.paper.key.as_str().to_string(),
                    p.paper.title.clone(),
                )
            }),
        );
        let started = Instant::now();
        let steered = compose(&readers, &window, &tastes, at(day));
        with_s += started.elapsed().as_secs_f64();
        let started = Instant::now();
        let plain = compose(&readers, &window, &Tastes::default(), at(day));
        without_s += started.elapsed().as_secs_f64();
        let topic_of = |paper_id: i64| all_papers[(paper_id - 1) as usize].1;
        let precision_of = |entries: &[paperboy::store::DigestEntry], topic: usize| {
            let emailed: Vec<i64> = entries
                .iter()
                .filter(|e| !e.suggested)
                .take(SHOWN)
                .map(|e| e.paper_id)
                .collect();
            if emailed.is_empty() {
                return None;
            }
            let hits = emailed.iter().filter(|&&id| topic_of(id) == topic).count();
            Some(hits as f64 / emailed.len() as f64)
        };
        let (mut p_with, mut p_without, mut n) = (0.0, 0.0, 0usize);
        for ((sim, s), p) in sims.iter_mut().zip(&steered).zip(&plain) {
            let (Some(a), Some(b)) = (
                precision_of(&s.entries, sim.topic),
                precision_of(&p.entries, sim.topic),
            ) else {
                continue;
            };
            p_with += a;
            p_without += b;
            n += 1;
            for e in s.entries.iter().filter(|e| e.suggested) {
                suggestion_hits.1 += 1;
                if topic_of(e.paper_id) == sim.topic {
                    suggestion_hits.0 += 1;
                }
            }
            // The reader rates 5 of the papers shown.
            let mut shown: Vec<i64> = s
                .entries
                .iter()
                .filter(|e| !e.suggested)
                .take(SHOWN)
                .map(|e| e.paper_id)
                .collect();
            for _ in 0..RATED_PER_DAY.min(shown.len()) {
                let id = shown.swap_remove(rng.below(shown.len()));
                let mut more = topic_of(id) == sim.topic;
                if rng.unit() < NOISE {
                    more = !more;
                }
                sim.rated.retain(|(p, _)| *p != id);
                sim.rated.push((id, Rating::from_more(more)));
            }
            let started = Instant::now();
            let examples: Vec<Rated<'_>> = sim
                .rated
                .iter()
                .map(|&(id, rating)| Rated {
                    paper_id: id,
                    doc: &docs[(id - 1) as usize],
                    rating,
                })
                .collect();
            sim.taste = Taste::learn(&examples);
            learn_s += started.elapsed().as_secs_f64();
            learned += 1;
        }
        for c in steered.iter().chain(&plain) {
            let matched = c.per_query.iter().filter(|(_, n)| *n > 0).count();
            if matched == 0 || matched > SHOWN {
                continue;
            }
            checked += 1;
            if every_query_represented(c) {
                represented += 1;
            }
        }
        // The crowded readers: seven queries each, no ratings.
        let crowded_readers: Vec<Subscriber> = crowded
            .iter()
            .enumerate()
            .map(|(i, q)| reader(READERS + i, q, cursor))
            .collect();
        for c in compose(&crowded_readers, &window, &Tastes::default(), at(day)) {
            let matched = c.per_query.iter().filter(|(_, n)| *n > 0).count();
            if matched == 0 || matched > SHOWN {
                continue;
            }
            checked += 1;
            if every_query_represented(&c) {
                represented += 1;
            }
        }
        precision.push((p_with / n.max(1) as f64, p_without / n.max(1) as f64));
    }
    let sizes: Vec<usize> = sims
        .iter()
        .filter_map(|s| s.taste.as_ref().map(|t| t.to_text().len()))
        .collect();
    let ratings_per_reader =
        sims.iter().map(|s| s.rated.len()).sum::<usize>() as f64 / READERS as f64;
    // A rating row: two ids, a flag, a short source and a timestamp, about 40 bytes.
    let rating_row_bytes = 40.0;
    let day = |d: usize| {
        serde_json::json!({
            "with_ratings": round(precision[d].0),
            "without_ratings": round(precision[d].1),
            "relative_gain": round(precision[d].0 / precision[d].1.max(1e-9) - 1.0),
        })
    };
    let result = serde_json::json!({
        "benchmark": "taste",
        "model": "rocchio",
        "readers": READERS,
        "crowded_readers": CROWDED_READERS,
        "topics": TOPICS,
        "papers_per_day": PAPERS_PER_DAY,
        "shown": SHOWN,
        "rated_per_day": RATED_PER_DAY,
        "noise": NOISE,
        "precision_at_15": { "day_1": day(1), "day_5": day(5), "day_10": day(10) },
        "every_matched_query_represented": {
            "digests_checked": checked,
            "share": round(represented as f64 / checked.max(1) as f64),
        },
        "suggestions_on_topic": round(suggestion_hits.0 as f64 / suggestion_hits.1.max(1) as f64),
        "suggestions_shown": suggestion_hits.1,
        "stored_taste_bytes": {
            "mean": round(sizes.iter().sum::<usize>() as f64 / sizes.len().max(1) as f64),
            "max": sizes.iter().max().copied().unwrap_or(0),
        },
        "ratings_per_reader_day_10": round(ratings_per_reader),
        "ratings_bytes_per_reader_day_10": round(ratings_per_reader * rating_row_bytes),
        "learn_ms_per_reader": round(learn_s * 1000.0 / learned.max(1) as f64),
        "compose_s": { "with_tastes": round(with_s), "without": round(without_s) },
    });
    println!("{result}");
}

/// Whether each query that matched a new paper has a paper in the email.
fn every_query_represented(c: &paperboy::digest::Composed) -> bool {
    let emailed: Vec<&paperboy::store::DigestEntry> = c
        .entries
        .iter()
        .filter(|e| !e.suggested)
        .take(SHOWN)
        .collect();
    c.per_query.iter().filter(|(_, n)| *n > 0).all(|(q, _)| {
        emailed
            .iter()
            .any(|e| e.explanation.queries.iter().any(|m| &m.query == q))
    })
}
