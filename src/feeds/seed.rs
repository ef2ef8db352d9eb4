//! Finding the papers of a reader's "papers I like" list: those paperboy has are taken as
//! stored; arXiv papers it lacks are fetched from the arXiv API by id (up to 100 per
//! request, through the polite fetcher) and stored without making them new to anyone;
//! every entry that cannot be found is listed back with the reason. Recording the ratings
//! is the caller's job.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::ingest::error_detail;
use super::{FeedError, Fetched, Fetcher, parse};
use crate::domain::{ArxivId, FeedKind, Ingested, PaperKey, SeedFormat, SeedId, SeedList};
use crate::error::chain;
use crate::store::{Store, StoreResult, StoredPaper};

/// Ids asked of the arXiv API per request.
const IDS_PER_REQUEST: usize = 100;

/// Requests of one batch at most: after an error entry that names an id, the batch is
/// asked again without it.
const ROUNDS_PER_BATCH: usize = 3;

/// The arXiv API, asked for papers by id.
#[derive(Clone)]
pub struct ArxivLookup {
    fetcher: Fetcher,
    api_url: String,
}

impl ArxivLookup {
    /// `api_url` is the API's query address (`fetch.arxiv_api_url`).
    pub fn new(fetcher: Fetcher, api_url: impl Into<String>) -> Self {
        ArxivLookup {
            fetcher,
            api_url: api_url.into(),
        }
    }

    /// The papers arXiv has under `ids`, in one request, normalised as the `arxiv-api`
    /// feed kind normalises them. Ids it does not know are simply missing.
    pub async fn fetch(&self, ids: &[ArxivId]) -> Result<Vec<Ingested>, FeedError> {
        let mut url =
            url::Url::parse(&self.api_url).map_err(|e| FeedError::Request(Box::new(e)))?;
        let list: Vec<&str> = ids.iter().map(ArxivId::base).collect();
        url.query_pairs_mut()
            .append_pair("id_list", &list.join(","))
            // The API answers 10 results unless told otherwise.
            .append_pair("max_results", &ids.len().to_string());
        let (status, body, content_type) = match self.fetcher.get(url.as_str(), None, None).await? {
            Fetched::Response {
                status,
                body,
                content_type,
                ..
            } => (status, body, content_type),
            Fetched::NotModified => {
                return Err(FeedError::NotAFeed(
                    "the arXiv API answered 304 to a request without validators".into(),
                ));
            }
        };
        if !(200..300).contains(&status) {
            return Err(FeedError::Status {
                status,
                detail: error_detail(FeedKind::ArxivApi, &body),
            });
        }
        let parsed = parse(
            FeedKind::ArxivApi,
            &body,
            content_type.as_deref(),
            Some(url.as_str()),
        )?;
        Ok(parsed.entries)
    }
}

/// A paper of the list that paperboy has (now).
#[derive(Debug, Clone, Serialize)]
pub struct LikedPaper {
    /// The entry that named it, as [`crate::domain::SeedEntry::name`].
    pub entry: String,
    pub paper_id: i64,
    pub key: PaperKey,
    pub title: String,
    /// Fetched from arXiv for this list (else it was stored already).
    pub fetched: bool,
}

/// An entry that names no paper paperboy has or can fetch, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unresolved {
    pub entry: String,
    pub reason: String,
}

/// What a list came to: each paper once, in the list's order, and the entries left over.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Resolution {
    pub papers: Vec<LikedPaper>,
    pub unresolved: Vec<Unresolved>,
}

impl Resolution {
    pub fn paper_ids(&self) -> Vec<i64> {
        self.papers.iter().map(|p| p.paper_id).collect()
    }

    pub fn fetched(&self) -> impl Iterator<Item = &LikedPaper> {
        self.papers.iter().filter(|p| p.fetched)
    }
}

/// Finds every paper `list` names. Only the store failing fails it: an arXiv request that
/// fails leaves its ids unresolved, with the reason.
#[tracing::instrument(skip_all, fields(entries = list.entries.len()))]
pub async fn resolve_seeds(
    store: &Store,
    arxiv: &ArxivLookup,
    list: &SeedList,
    now: DateTime<Utc>,
) -> StoreResult<Resolution> {
    let named: Vec<(&str, &SeedId)> = list
        .entries
        .iter()
        .filter_map(|e| e.id.as_ref().map(|id| (e.name.as_str(), id)))
        .collect();
    let keys: Vec<PaperKey> = unique(named.iter().map(|(_, id)| id.key()));
    let dois: Vec<&str> = unique(named.iter().filter_map(|(_, id)| id.doi()));
    let stored = Found::from(store.papers_by_keys_or_dois(&keys, &dois).await?);
    let missing: Vec<ArxivId> = unique(named.iter().filter_map(|(_, id)| match id {
        SeedId::Arxiv(a) if stored.find(id).is_none() => Some(a.clone()),
        _ => None,
    }));
    let (fetched, failures) = fetch_all(arxiv, &missing).await;
    let fetched = if fetched.is_empty() {
        Found::default()
    } else {
        store.store_unlisted_papers(&fetched, now).await?;
        let keys: Vec<PaperKey> = fetched.iter().map(|i| i.paper.key.clone()).collect();
        Found::from(store.papers_by_keys_or_dois(&keys, &[]).await?)
    };
    let mut resolution = Resolution::default();
    let mut listed = HashSet::new();
    for entry in &list.entries {
        let name = entry.name.clone();
        let Some(id) = &entry.id else {
            let reason = match list.format {
                SeedFormat::Lines => "not an arXiv id, arXiv link or DOI",
                SeedFormat::Bibtex => "the entry gives no arXiv id and no DOI",
            };
            resolution.unresolved.push(Unresolved {
                entry: name,
                reason: reason.into(),
            });
            continue;
        };
        let (paper, was_fetched) = match (stored.find(id), fetched.find(id)) {
            (Some(p), _) => (p, false),
            (None, Some(p)) => (p, true),
            (None, None) => {
                let reason = match id {
                    SeedId::Doi(_) => "paperboy does not have this DOI, and only arXiv papers \
                                       can be fetched"
                        .to_string(),
                    SeedId::Arxiv(a) => match failures.get(a.base()) {
                        Some(why) => format!("could not be fetched from arXiv: {why}"),
                        None => "arXiv has no paper with this id".to_string(),
                    },
                };
                resolution.unresolved.push(Unresolved {
                    entry: name,
                    reason,
                });
                continue;
            }
        };
        // Two entries for one paper rate it once.
        if listed.insert(paper.id) {
            resolution.papers.push(LikedPaper {
                entry: name,
                paper_id: paper.id,
                key: paper.paper.key.clone(),
                title: paper.paper.title.clone(),
                fetched: was_fetched,
            });
        }
    }
    Ok(resolution)
}

/// Asks arXiv for `ids`, [`IDS_PER_REQUEST`] at a time. Returns the papers found and, by
/// arXiv id, why the ids of a failed request could not be fetched.
async fn fetch_all(
    arxiv: &ArxivLookup,
    ids: &[ArxivId],
) -> (Vec<Ingested>, HashMap<String, String>) {
    let mut found = Vec::new();
    let mut failures = HashMap::new();
    for batch in ids.chunks(IDS_PER_REQUEST) {
        let mut batch: Vec<ArxivId> = batch.to_vec();
        for round in 1..=ROUNDS_PER_BATCH {
            match arxiv.fetch(&batch).await {
                Ok(entries) => {
                    let asked: HashSet<&str> = batch.iter().map(ArxivId::base).collect();
                    found.extend(entries.into_iter().filter(|e| {
                        e.paper
                            .arxiv_id
                            .as_deref()
                            .is_some_and(|id| asked.contains(id))
                    }));
                    break;
                }
                Err(error) => {
                    let why = chain(&error).to_string();
                    tracing::warn!(ids = batch.len(), error = %why, "arXiv lookup failed");
                    // An error entry that names one of the ids (`incorrect id format for
                    // …`) fails that id alone: the others are asked again without it.
                    let (named, others): (Vec<ArxivId>, Vec<ArxivId>) = batch
                        .into_iter()
                        .partition(|id| error_names(&error, id.base()));
                    let retry = !named.is_empty() && !others.is_empty() && round < ROUNDS_PER_BATCH;
                    for id in &named {
                        failures.insert(id.base().to_string(), why.clone());
                    }
                    if !retry {
                        for id in &others {
                            failures.insert(id.base().to_string(), why.clone());
                        }
                        break;
                    }
                    batch = others;
                }
            }
        }
    }
    (found, failures)
}

/// Whether arXiv's error message names this id.
fn error_names(error: &FeedError, id: &str) -> bool {
    let message = match error {
        FeedError::ArxivApi(m) => m.as_str(),
        FeedError::Status {
            detail: Some(d), ..
        } => d.as_str(),
        _ => return false,
    };
    message
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '"' | '\''))
        .any(|word| word == id || word.strip_prefix(id).is_some_and(|v| v.starts_with('v')))
}

/// Stored papers found by key, and by DOI whatever their key.
#[derive(Default)]
struct Found {
    by_key: HashMap<String, StoredPaper>,
    /// DOI → the key of the paper that carries it.
    by_doi: HashMap<String, String>,
    /// arXiv id → the key of the paper that carries it (a paper keyed by its journal DOI
    /// that an arXiv entry was merged into).
    by_arxiv: HashMap<String, String>,
}

impl From<Vec<StoredPaper>> for Found {
    fn from(papers: Vec<StoredPaper>) -> Found {
        let mut found = Found::default();
        for p in papers {
            if let Some(doi) = &p.paper.doi {
                found
                    .by_doi
                    .entry(doi.to_lowercase())
                    .or_insert_with(|| p.paper.key.as_str().to_string());
            }
            if let Some(arxiv) = &p.paper.arxiv_id {
                found
                    .by_arxiv
                    .entry(arxiv.clone())
                    .or_insert_with(|| p.paper.key.as_str().to_string());
            }
            found.by_key.insert(p.paper.key.as_str().to_string(), p);
        }
        found
    }
}

impl Found {
    fn find(&self, id: &SeedId) -> Option<&StoredPaper> {
        let key = id.key();
        if let Some(p) = self.by_key.get(key.as_str()) {
            return Some(p);
        }
        if let Some(arxiv) = key.as_str().strip_prefix("arxiv:") {
            return self.by_key.get(self.by_arxiv.get(arxiv)?);
        }
        self.by_key.get(self.by_doi.get(id.doi()?)?)
    }
}

/// The distinct values, in their first order.
fn unique<T: Clone + Eq + std::hash::Hash>(values: impl Iterator<Item = T>) -> Vec<T> {
    let mut seen = HashSet::new();
    values.filter(|v| seen.insert(v.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_names_an_id_only_as_a_whole_word() {
        let error = FeedError::ArxivApi("incorrect id format for 2609.0123".into());
        assert!(error_names(&error, "2609.0123"));
        assert!(!error_names(&error, "2609.01234"));
        let error = FeedError::ArxivApi("no such paper 2609.01234v9".into());
        assert!(error_names(&error, "2609.01234"));
        assert!(!error_names(&FeedError::Timeout(3), "2609.01234"));
    }
}
