//! The learned taste: a Rocchio profile of the papers a reader rated, over the analysed
//! words of titles and abstracts, the authors and the categories, and the cosine
//! similarity of each paper of a window to it in that window's tf-idf space.
//!
//! Why Rocchio and not a per-reader classifier: a reader has a handful of ratings, a
//! profile is learned in one pass when a rating arrives and fits in a kilobyte, and
//! scoring a window is one posting-list walk per profile term; `cargo bench --bench taste`
//! shows what it gains.

use std::fmt::Write as _;

use rustc_hash::FxHashMap;

use super::document::{Doc, TextField};
use crate::domain::Rating;

/// How many terms of a profile are kept: the ones that weigh most either way.
const TERMS_KEPT: usize = 64;

/// How much a "less like this" pulls against a "more like this" (Rocchio's gamma).
const LESS_WEIGHT: f64 = 0.5;

/// Title words count this many times an abstract word; an author or category once each.
const TITLE_COUNT: f32 = 2.0;

/// How many "more" ratings a reader needs before paperboy suggests papers outside their
/// queries.
pub const SUGGEST_AFTER: i64 = 5;

/// A feature found in more than this share of a window's papers is left out of it …
const COMMON_SHARE: f64 = 0.2;
/// … once the window holds this many papers (a handful proves nothing).
const COMMON_FROM: usize = 50;

/// The version tag of the stored form.
const FORM: &str = "rocchio1";

/// Words too common to say anything about a paper's topic.
const STOP_WORDS: &[&str] = &[
    "about", "above", "across", "after", "again", "against", "all", "also", "among", "and", "any",
    "are", "based", "been", "being", "between", "both", "but", "can", "could", "does", "doing",
    "down", "during", "each", "either", "even", "few", "for", "from", "further", "had", "has",
    "have", "having", "here", "how", "however", "into", "its", "itself", "just", "less", "many",
    "may", "more", "most", "much", "must", "new", "non", "not", "novel", "now", "off", "often",
    "once", "one", "only", "other", "our", "ours", "out", "over", "paper", "per", "propose",
    "proposed", "same", "several", "should", "show", "shows", "since", "some", "such", "than",
    "that", "the", "their", "them", "then", "there", "these", "they", "this", "those", "through",
    "thus", "too", "two", "under", "until", "upon", "use", "used", "using", "very", "via", "was",
    "way", "well", "were", "what", "when", "where", "whether", "which", "while", "who", "whose",
    "why", "will", "with", "within", "without", "work", "would", "yet", "you", "your", "we", "our",
    "us", "is", "be", "by", "as", "at", "an", "in", "of", "on", "or", "to", "it", "if", "so", "no",
];

fn is_stop_word(word: &str) -> bool {
    word.len() < 3 || word.bytes().all(|b| b.is_ascii_digit()) || STOP_WORDS.contains(&word)
}

/// The taste's features of a paper with their raw counts: title and abstract stems (stop
/// words left out, title words counted double), each author's whole name (`@…`) and each
/// category (`#…`). A feature holding a tab or a line break (a category as a feed wrote
/// it) is left out: the stored form separates features with them.
pub fn features(doc: &Doc) -> FxHashMap<String, f32> {
    let mut counts = raw_features(doc);
    counts.retain(|f, _| !f.contains(['\t', '\n', '\r']));
    counts
}

fn raw_features(doc: &Doc) -> FxHashMap<String, f32> {
    let mut counts: FxHashMap<String, f32> = FxHashMap::default();
    let mut text = |field: &TextField, weight: f32| {
        for (stem, surface) in field.stems.iter().zip(&field.surface) {
            if !is_stop_word(surface) {
                *counts.entry(stem.clone()).or_default() += weight;
            }
        }
    };
    text(&doc.title, TITLE_COUNT);
    text(&doc.abstract_text, 1.0);
    for author in &doc.authors {
        if !author.is_empty() {
            *counts.entry(format!("@{}", author.join(" "))).or_default() += 1.0;
        }
    }
    for category in &doc.categories {
        *counts.entry(format!("#{category}")).or_default() += 1.0;
    }
    counts
}

/// One term of a profile: its weight, and the rated paper that gave it most of it.
#[derive(Debug, Clone, PartialEq)]
struct Term {
    feature: String,
    weight: f32,
    exemplar: u16,
}

/// A reader's learned taste.
#[derive(Debug, Clone, PartialEq)]
pub struct Taste {
    terms: Vec<Term>,
    /// The rated papers named by the terms, by paper id.
    exemplars: Vec<i64>,
    /// How many "more" ratings it was learned from.
    more: i64,
}

/// One feature's weight as a profile is learned, with the rated paper that pulled it most
/// up and the one that pulled it most down (index, share).
#[derive(Default)]
struct Pull {
    weight: f64,
    up: Option<(usize, f64)>,
    down: Option<(usize, f64)>,
}

/// A rated paper to learn from.
pub struct Rated<'a> {
    pub paper_id: i64,
    pub doc: &'a Doc,
    pub rating: Rating,
}

impl Taste {
    /// Learns a profile from rated papers: the mean of the "more" papers' normalised
    /// feature vectors minus half the mean of the "less" ones, cut to the terms that weigh
    /// most. `None` when there is nothing to learn from.
    pub fn learn(rated: &[Rated<'_>]) -> Option<Taste> {
        let more = rated.iter().filter(|r| r.rating.is_more()).count();
        let less = rated.len() - more;
        if rated.is_empty() {
            return None;
        }
        // Per feature: the weight, and the papers that gave the most of it each way.
        let mut weights: FxHashMap<String, Pull> = FxHashMap::default();
        for (i, r) in rated.iter().enumerate() {
            let counts = features(r.doc);
            let norm = counts
                .values()
                .map(|c| f64::from(*c).powi(2))
                .sum::<f64>()
                .sqrt();
            if norm == 0.0 {
                continue;
            }
            let scale = if r.rating.is_more() {
                1.0 / more as f64
            } else {
                -LESS_WEIGHT / less as f64
            };
            for (feature, count) in counts {
                let share = scale * f64::from(count) / norm;
                let slot = weights.entry(feature).or_default();
                slot.weight += share;
                let side = if share > 0.0 {
                    &mut slot.up
                } else {
                    &mut slot.down
                };
                if side.is_none_or(|(_, best)| share.abs() > best) {
                    *side = Some((i, share.abs()));
                }
            }
        }
        // Each term names the paper that pulled most in the direction the term ended up.
        let mut terms: Vec<(String, f64, usize)> = weights
            .into_iter()
            .filter(|(_, p)| p.weight.abs() > 1e-6)
            .filter_map(|(f, p)| {
                let side = if p.weight > 0.0 { p.up } else { p.down };
                side.map(|(i, _)| (f, p.weight, i))
            })
            .collect();
        terms.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()).then_with(|| a.0.cmp(&b.0)));
        terms.truncate(TERMS_KEPT);
        let mut exemplars: Vec<i64> = Vec::new();
        let terms = terms
            .into_iter()
            .map(|(feature, weight, i)| {
                let id = rated[i].paper_id;
                let exemplar = match exemplars.iter().position(|&e| e == id) {
                    Some(at) => at,
                    None => {
                        exemplars.push(id);
                        exemplars.len() - 1
                    }
                };
                Term {
                    feature,
                    weight: weight as f32,
                    // At most TERMS_KEPT exemplars.
                    exemplar: u16::try_from(exemplar).unwrap_or(u16::MAX),
                }
            })
            .collect();
        Some(Taste {
            terms,
            exemplars,
            more: more as i64,
        })
    }

    /// How many "more" ratings it was learned from.
    pub fn more(&self) -> i64 {
        self.more
    }

    /// The rated papers the profile names, by id.
    pub fn exemplars(&self) -> &[i64] {
        &self.exemplars
    }

    /// The stored form: a tag line, the exemplars' ids, then one `feature TAB weight TAB
    /// exemplar` line per term. Features never hold tabs or line breaks (they are
    /// analysed words).
    pub fn to_text(&self) -> String {
        let mut out = String::with_capacity(self.terms.len() * 16 + 64);
        let ids: Vec<String> = self.exemplars.iter().map(i64::to_string).collect();
        // Writing to a String cannot fail.
        let _ = writeln!(out, "{FORM} {}", self.more);
        let _ = writeln!(out, "{}", ids.join(","));
        for t in &self.terms {
            let _ = writeln!(out, "{}\t{:.4}\t{}", t.feature, t.weight, t.exemplar);
        }
        out
    }

    /// Reads the stored form back.
    pub fn from_text(text: &str) -> Result<Taste, String> {
        let mut lines = text.lines();
        let head = lines.next().ok_or("empty taste")?;
        let more = head
            .strip_prefix(FORM)
            .and_then(|rest| rest.trim().parse::<i64>().ok())
            .ok_or_else(|| format!("unknown taste form {head:?}"))?;
        let exemplars = lines
            .next()
            .ok_or("taste without exemplars")?
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<i64>().map_err(|e| format!("exemplar {s:?}: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let mut terms = Vec::new();
        for line in lines {
            let mut parts = line.split('\t');
            let (Some(feature), Some(weight), Some(exemplar), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(format!("taste term {line:?}"));
            };
            let weight: f32 = weight
                .parse()
                .map_err(|e| format!("weight {weight:?}: {e}"))?;
            let exemplar: u16 = exemplar
                .parse()
                .map_err(|e| format!("exemplar {exemplar:?}: {e}"))?;
            if usize::from(exemplar) >= exemplars.len() {
                return Err(format!("taste term {feature:?} names no exemplar"));
            }
            terms.push(Term {
                feature: feature.to_string(),
                weight,
                exemplar,
            });
        }
        Ok(Taste {
            terms,
            exemplars,
            more,
        })
    }
}

/// A window's papers as the taste sees them: for each feature, the papers holding it with
/// their share of the paper's tf-idf vector (times the feature's idf, so that one product
/// with a profile weight is a term of the cosine).
pub struct TasteIndex {
    postings: FxHashMap<String, Vec<(u32, f32)>>,
    idf: FxHashMap<String, f32>,
    /// How many papers the window holds.
    docs: usize,
}

/// How similar papers of a window are to one reader's taste.
pub struct Similarity {
    /// Cosine similarity of each paper of the window, by the paper's index: a dense array,
    /// since a profile's common words touch much of the window, and adding into an array
    /// is several times cheaper than into a map.
    scores: Vec<f32>,
}

impl Similarity {
    /// The paper's similarity, between -1 and 1 (0 when nothing is shared).
    pub fn of(&self, doc: u32) -> f32 {
        self.scores.get(doc as usize).copied().unwrap_or(0.0)
    }

    /// The papers with the highest similarity, best first, with their scores.
    pub fn best(&self, keep: impl Fn(u32) -> bool, n: usize) -> Vec<(u32, f32)> {
        let mut all: Vec<(u32, f32)> = self
            .scores
            .iter()
            .enumerate()
            .filter(|(d, s)| **s > 0.0 && keep(*d as u32))
            .map(|(d, s)| (d as u32, *s))
            .collect();
        let order =
            |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0));
        if all.len() > n && n > 0 {
            all.select_nth_unstable_by(n - 1, order);
            all.truncate(n);
        }
        all.sort_by(order);
        all.truncate(n);
        all
    }
}

impl TasteIndex {
    pub fn new(docs: &[Doc]) -> TasteIndex {
        let vectors: Vec<FxHashMap<String, f32>> = docs.iter().map(features).collect();
        let mut df: FxHashMap<&str, u32> = FxHashMap::default();
        for v in &vectors {
            for f in v.keys() {
                *df.entry(f.as_str()).or_default() += 1;
            }
        }
        let n = docs.len() as f64;
        // Features in a large share of the window say little of a topic and would make
        // every reader's similarity walk most of the window: they are left out of the space.
        let common = |d: u32| docs.len() >= COMMON_FROM && f64::from(d) > n * COMMON_SHARE;
        let idf: FxHashMap<String, f32> = df
            .iter()
            .filter(|(_, d)| !common(**d))
            .map(|(f, d)| {
                (
                    f.to_string(),
                    ((n + 1.0) / (f64::from(*d) + 1.0)).ln() as f32 + 1.0,
                )
            })
            .collect();
        let mut postings: FxHashMap<String, Vec<(u32, f32)>> = FxHashMap::default();
        for (i, v) in vectors.iter().enumerate() {
            let norm = v
                .iter()
                .filter_map(|(f, c)| idf.get(f).map(|w| (c * w).powi(2)))
                .sum::<f32>()
                .sqrt();
            if norm == 0.0 {
                continue;
            }
            for (f, c) in v {
                let Some(&w) = idf.get(f) else { continue };
                postings
                    .entry(f.clone())
                    .or_default()
                    .push((i as u32, c * w * w / norm));
            }
        }
        TasteIndex {
            postings,
            idf,
            docs: docs.len(),
        }
    }

    /// The cosine similarity of every paper of the window to `taste`, in the window's
    /// tf-idf space (profile terms the window lacks count for nothing).
    pub fn similarity(&self, taste: &Taste) -> Similarity {
        let norm = taste
            .terms
            .iter()
            .filter_map(|t| self.idf.get(&t.feature).map(|w| (t.weight * w).powi(2)))
            .sum::<f32>()
            .sqrt();
        let mut scores = vec![0.0f32; self.docs];
        if norm > 0.0 {
            for t in &taste.terms {
                let weight = t.weight / norm;
                for &(doc, w) in self.postings.get(&t.feature).map_or(&[][..], Vec::as_slice) {
                    // Postings hold indexes of this window's papers only.
                    scores[doc as usize] += weight * w;
                }
            }
        }
        Similarity { scores }
    }

    /// The rated paper (by id) that `doc` owes most of its similarity to, in the direction
    /// given: the exemplar of the profile term that adds most (`up`) or takes most away.
    pub fn most_like(&self, taste: &Taste, doc: u32, up: bool) -> Option<i64> {
        taste
            .terms
            .iter()
            .filter(|t| (t.weight > 0.0) == up)
            .filter_map(|t| {
                let list = self.postings.get(&t.feature)?;
                let at = list.binary_search_by_key(&doc, |(d, _)| *d).ok()?;
                Some((t, (t.weight * list[at].1).abs()))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .and_then(|(t, _)| taste.exemplars.get(usize::from(t.exemplar)).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(title: &str, abstract_text: &str) -> Doc {
        Doc::new(
            title,
            abstract_text,
            &["Ada Lovelace".into()],
            &["cs.LG".into()],
        )
    }

    #[test]
    fn a_profile_ranks_papers_like_the_liked_ones_first() {
        let liked = doc(
            "Protein folding with diffusion",
            "We fold proteins with a diffusion model of residues.",
        );
        let disliked = doc(
            "Stock prices forecasting",
            "We forecast stock prices with a recurrent model.",
        );
        let taste = Taste::learn(&[
            Rated {
                paper_id: 7,
                doc: &liked,
                rating: Rating::More,
            },
            Rated {
                paper_id: 9,
                doc: &disliked,
                rating: Rating::Less,
            },
        ])
        .expect("learned");
        let window = vec![
            doc(
                "Forecasting stock markets",
                "Prices of stock forecast by a model.",
            ),
            doc(
                "Diffusion for protein structure",
                "Residues of proteins, folded.",
            ),
            doc("Graph coloring", "Colours of graphs."),
        ];
        let index = TasteIndex::new(&window);
        let sim = index.similarity(&taste);
        assert!(sim.of(1) > sim.of(2), "{} {}", sim.of(1), sim.of(2));
        assert!(sim.of(0) < sim.of(1));
        assert!(
            sim.of(0) < 0.0 || sim.of(0) < sim.of(2) + 0.05,
            "{}",
            sim.of(0)
        );
        assert_eq!(index.most_like(&taste, 1, true), Some(7));
        assert_eq!(index.most_like(&taste, 0, false), Some(9));
        assert_eq!(sim.best(|_| true, 1)[0].0, 1);
    }

    #[test]
    fn a_term_names_a_paper_rated_the_way_the_term_pulls() {
        // Three liked papers and a disliked one share a category; the disliked one has
        // the most of it, yet the category pulls up, so it names a liked paper.
        let liked: Vec<Doc> = (0..3)
            .map(|i| Doc::new(&format!("Alpha {i}"), "beta gamma", &[], &["cs.LG".into()]))
            .collect();
        let disliked = Doc::new("Zeta", "", &[], &["cs.LG".into()]);
        let mut rated: Vec<Rated<'_>> = liked
            .iter()
            .enumerate()
            .map(|(i, doc)| Rated {
                paper_id: i as i64,
                doc,
                rating: Rating::More,
            })
            .collect();
        rated.push(Rated {
            paper_id: 99,
            doc: &disliked,
            rating: Rating::Less,
        });
        let taste = Taste::learn(&rated).expect("learned");
        let window = vec![Doc::new("Unrelated words", "", &[], &["cs.LG".into()])];
        let index = TasteIndex::new(&window);
        assert!(index.similarity(&taste).of(0) > 0.0);
        let named = index.most_like(&taste, 0, true).expect("named");
        assert_ne!(named, 99);
    }

    #[test]
    fn features_never_hold_the_stored_forms_separators() {
        let doc = Doc::new("Title", "", &[], &["cs.LG\tx".into(), "math\nCO".into()]);
        let f = features(&doc);
        assert!(f.keys().all(|k| !k.contains(['\t', '\n'])), "{f:?}");
        assert!(f.contains_key("titl") || f.contains_key("title"), "{f:?}");
    }

    #[test]
    fn the_stored_form_reads_back_and_stays_small() {
        let docs: Vec<Doc> = (0..20)
            .map(|i| {
                doc(
                    &format!("Paper {i} on sparse attention kernels number{i}"),
                    &"Long abstract with many distinct words like transformer scaling \
                      retrieval memory compression quantisation distillation pruning "
                        .repeat(3),
                )
            })
            .collect();
        let rated: Vec<Rated<'_>> = docs
            .iter()
            .enumerate()
            .map(|(i, d)| Rated {
                paper_id: i as i64 + 100,
                doc: d,
                rating: if i % 4 == 0 {
                    Rating::Less
                } else {
                    Rating::More
                },
            })
            .collect();
        let taste = Taste::learn(&rated).expect("learned");
        let text = taste.to_text();
        assert!(text.len() < 1_800, "{} bytes", text.len());
        let back = Taste::from_text(&text).expect("reads back");
        assert_eq!(back.more(), 15);
        assert_eq!(back.exemplars(), taste.exemplars());
        assert_eq!(back.terms.len(), taste.terms.len());
        assert!(Taste::from_text("other 1\n\n").is_err());
        assert!(Taste::from_text("rocchio1 1\n5\nword\t0.5\t3\n").is_err());
        assert!(Taste::learn(&[]).is_none());
    }
}
