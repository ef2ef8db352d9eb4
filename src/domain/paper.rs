//! A paper as paperboy knows it, whatever feed carried it, and the canonical key that
//! makes the same paper from several sources one record.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Invalid;

/// An arXiv identifier split into its stable base (`2409.12345`, `hep-ex/0307015`) and the
/// version, which changes when the authors replace the paper.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ArxivId {
    base: String,
    version: Option<u32>,
}

impl ArxivId {
    /// Parses a bare or prefixed arXiv id: `2409.12345v2`, `oai:arXiv.org:2409.12345v2`,
    /// `arXiv:hep-ex/0307015`, `https://arxiv.org/abs/2409.12345`, `…/pdf/2409.12345v1.pdf`.
    pub fn parse(raw: &str) -> Option<Self> {
        let mut s = raw.trim();
        for prefix in ["oai:arXiv.org:", "oai:arxiv.org:", "arXiv:", "arxiv:"] {
            if let Some(rest) = s.strip_prefix(prefix) {
                s = rest;
            }
        }
        if s.contains("://") || s.starts_with("arxiv.org/") || s.contains("arxiv.org/") {
            return Self::from_url(s);
        }
        Self::parse_bare(s)
    }

    /// Finds the arXiv id in an arXiv abstract/PDF URL or a Hugging Face paper page URL.
    pub fn from_url(raw: &str) -> Option<Self> {
        let with_scheme = if raw.contains("://") {
            raw.to_string()
        } else {
            format!("https://{raw}")
        };
        let url = url::Url::parse(&with_scheme).ok()?;
        let host = url.host_str()?.to_ascii_lowercase();
        let path = url.path().trim_start_matches('/');
        let rest = if host == "arxiv.org" || host.ends_with(".arxiv.org") {
            ["abs/", "pdf/", "html/"]
                .iter()
                .find_map(|p| path.strip_prefix(p))?
        } else if host == "huggingface.co" || host.ends_with(".huggingface.co") {
            path.strip_prefix("papers/")?
        } else {
            return None;
        };
        let rest = rest.trim_end_matches('/');
        let rest = rest.strip_suffix(".pdf").unwrap_or(rest);
        Self::parse_bare(rest)
    }

    fn parse_bare(s: &str) -> Option<Self> {
        let (body, version) = split_version(s);
        let month_ok = |yymm: &str| {
            yymm.len() == 4
                && yymm.bytes().all(|b| b.is_ascii_digit())
                && matches!(yymm[2..].parse::<u8>(), Ok(1..=12))
        };
        let valid = if let Some((archive, number)) = body.split_once('/') {
            // Old style: archive(.SUBJECT)?/YYMMNNN, from arXiv's own list of archives.
            let name = archive.split('.').next().unwrap_or_default();
            OLD_ARCHIVES.contains(&name)
                && number.len() == 7
                && number.bytes().all(|b| b.is_ascii_digit())
                && month_ok(&number[..4])
        } else if let Some((yymm, number)) = body.split_once('.') {
            month_ok(yymm)
                && (number.len() == 4 || number.len() == 5)
                && number.bytes().all(|b| b.is_ascii_digit())
        } else {
            false
        };
        valid.then(|| ArxivId {
            base: body.to_string(),
            version,
        })
    }

    /// The arXiv id behind one of arXiv's own DOIs (`10.48550/arXiv.2609.26820`), which
    /// name the preprint itself, not a journal version.
    pub fn from_doi(doi: &str) -> Option<Self> {
        let doi = normalise_doi(doi)?;
        let id = doi.strip_prefix("10.48550/arxiv.")?;
        Self::parse_bare(id)
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn version(&self) -> Option<u32> {
        self.version
    }

    /// The same paper, whatever its version.
    pub fn without_version(&self) -> ArxivId {
        ArxivId {
            base: self.base.clone(),
            version: None,
        }
    }

    pub fn abs_url(&self) -> String {
        format!("https://arxiv.org/abs/{}", self.base)
    }

    pub fn pdf_url(&self) -> String {
        format!("https://arxiv.org/pdf/{}", self.base)
    }
}

/// The archives of arXiv's pre-2007 identifiers (`hep-th/9901001`).
const OLD_ARCHIVES: &[&str] = &[
    "acc-phys", "adap-org", "alg-geom", "ao-sci", "astro-ph", "atom-ph", "bayes-an", "chao-dyn",
    "chem-ph", "cmp-lg", "comp-gas", "cond-mat", "cs", "dg-ga", "funct-an", "gr-qc", "hep-ex",
    "hep-lat", "hep-ph", "hep-th", "math", "math-ph", "mtrl-th", "nlin", "nucl-ex", "nucl-th",
    "patt-sol", "physics", "plasm-ph", "q-alg", "q-bio", "quant-ph", "solv-int", "supr-con",
];

/// Splits a trailing `vN` off an id; `2409.12345v2` → (`2409.12345`, Some(2)).
fn split_version(s: &str) -> (&str, Option<u32>) {
    if let Some(pos) = s.rfind('v') {
        let digits = &s[pos + 1..];
        if pos > 0
            && !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && let Ok(n) = digits.parse()
        {
            return (&s[..pos], Some(n));
        }
    }
    (s, None)
}

/// The canonical identity of a paper across sources: `arxiv:<id without version>` when
/// there is one, else `doi:<lowercased DOI>`, else `url:<normalised link>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PaperKey(String);

impl PaperKey {
    pub fn arxiv(id: &ArxivId) -> Self {
        Self(format!("arxiv:{}", id.base))
    }

    /// A DOI such as `10.1101/2024.01.02.123456`; prefixes like `doi:` or
    /// `https://doi.org/` are accepted and dropped. arXiv's own DOIs
    /// (`10.48550/arXiv.2609.26820`) give the arXiv key: they name the same preprint.
    pub fn doi(raw: &str) -> Option<Self> {
        if let Some(id) = ArxivId::from_doi(raw) {
            return Some(Self::arxiv(&id));
        }
        normalise_doi(raw).map(|d| Self(format!("doi:{d}")))
    }

    /// A link normalised so that cosmetic differences do not split one paper in two:
    /// lowercase host, no fragment, no tracking parameters, no trailing slash.
    pub fn url(raw: &str) -> Option<Self> {
        let mut url = url::Url::parse(raw.trim()).ok()?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return None;
        }
        url.set_fragment(None);
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| !(k.starts_with("utm_") || k == "rss" || k == "ref"))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        if kept.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(kept);
        }
        let _ = url.set_scheme("https");
        let mut s = url.to_string();
        while s.ends_with('/') && s.matches('/').count() > 3 {
            s.pop();
        }
        Some(Self(format!("url:{s}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Where a person reads the paper: its arXiv abstract page, its DOI's resolver, or
    /// its link.
    pub fn landing_url(&self) -> String {
        if let Some(id) = self.0.strip_prefix("arxiv:") {
            format!("https://arxiv.org/abs/{id}")
        } else if let Some(doi) = self.0.strip_prefix("doi:") {
            // A DOI may hold `#`, `?` or `%`, which would end or change the path.
            const IN_PATH: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
                .add(b' ')
                .add(b'"')
                .add(b'#')
                .add(b'%')
                .add(b'<')
                .add(b'>')
                .add(b'?')
                .add(b'`')
                .add(b'{')
                .add(b'}');
            format!(
                "https://doi.org/{}",
                percent_encoding::utf8_percent_encode(doi, IN_PATH)
            )
        } else {
            self.0.strip_prefix("url:").unwrap_or(&self.0).to_string()
        }
    }
}

impl TryFrom<String> for PaperKey {
    type Error = Invalid;

    fn try_from(s: String) -> Result<Self, Invalid> {
        Self::parse(&s)
    }
}

impl From<PaperKey> for String {
    fn from(k: PaperKey) -> String {
        k.0
    }
}

impl PaperKey {
    /// Reads a key as a person types it: `arxiv:2409.12345`, a bare arXiv id, `doi:10.…`,
    /// or `url:https://…`.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let s = s.trim();
        if let Some(rest) = s.strip_prefix("doi:") {
            return Self::doi(rest).ok_or_else(|| Invalid::new(format!("not a DOI: {rest:?}")));
        }
        if let Some(rest) = s.strip_prefix("url:") {
            return Self::url(rest).ok_or_else(|| Invalid::new(format!("not a URL: {rest:?}")));
        }
        if let Some(id) = ArxivId::parse(s) {
            return Ok(Self::arxiv(&id));
        }
        Err(Invalid::new(format!(
            "not a paper key: {s:?} (expected arxiv:ID, doi:DOI or url:URL)"
        )))
    }
}

impl fmt::Display for PaperKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Lowercases a DOI and strips resolver prefixes; `None` when it is not a DOI.
pub fn normalise_doi(raw: &str) -> Option<String> {
    let mut s = raw.trim();
    for prefix in [
        "https://doi.org/",
        "http://doi.org/",
        "https://dx.doi.org/",
        "http://dx.doi.org/",
        "doi:",
        "DOI:",
    ] {
        if let Some(rest) = s.strip_prefix(prefix) {
            s = rest.trim();
        }
    }
    let (prefix, suffix) = s.split_once('/')?;
    let registrant = prefix.strip_prefix("10.")?;
    let ok = !registrant.is_empty()
        && registrant.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && !suffix.is_empty()
        && !suffix.chars().any(char::is_whitespace);
    ok.then(|| s.to_lowercase())
}

/// How arXiv announced an entry in its RSS listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AnnounceType {
    New,
    Cross,
    Replace,
    ReplaceCross,
}

impl AnnounceType {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "new" => Some(Self::New),
            "cross" => Some(Self::Cross),
            "replace" => Some(Self::Replace),
            "replace-cross" => Some(Self::ReplaceCross),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Cross => "cross",
            Self::Replace => "replace",
            Self::ReplaceCross => "replace-cross",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaperLinks {
    /// The abstract page.
    pub abs: Option<String>,
    pub pdf: Option<String>,
    /// Where people talk about it (the Hugging Face paper page).
    pub discussion: Option<String>,
}

/// A normalised paper: plain-text title and abstract, one name per author.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Paper {
    pub key: PaperKey,
    pub arxiv_id: Option<String>,
    /// The arXiv (or bioRxiv) version this source described.
    pub version: Option<u32>,
    pub doi: Option<String>,
    pub title: String,
    #[serde(rename = "abstract")]
    pub abstract_text: String,
    pub authors: Vec<String>,
    pub categories: Vec<String>,
    pub links: PaperLinks,
    pub published: Option<DateTime<Utc>>,
    /// Hugging Face upvotes, when a source reports them.
    pub upvotes: Option<i64>,
    pub comments: Option<i64>,
    pub thumbnail: Option<String>,
}

impl Paper {
    /// A paper with nothing but its key and title; sources fill in the rest.
    pub fn new(key: PaperKey, title: impl Into<String>) -> Self {
        Self {
            key,
            arxiv_id: None,
            version: None,
            doi: None,
            title: title.into(),
            abstract_text: String::new(),
            authors: Vec::new(),
            categories: Vec::new(),
            links: PaperLinks::default(),
            published: None,
            upvotes: None,
            comments: None,
            thumbnail: None,
        }
    }

    /// A paper keyed by its arXiv id, with the arXiv abstract and PDF links.
    pub fn from_arxiv(id: &ArxivId, title: impl Into<String>) -> Self {
        let mut paper = Self::new(PaperKey::arxiv(id), title);
        paper.arxiv_id = Some(id.base().to_string());
        paper.version = id.version();
        paper.links.abs = Some(id.abs_url());
        paper.links.pdf = Some(id.pdf_url());
        paper
    }

    /// Moves an arXiv DOI (`10.48550/arXiv.…`) out of `doi`: it is the arXiv id in
    /// another form, so it fills `arxiv_id` (and the arXiv links) instead, and `doi` is
    /// left for a journal's DOI.
    pub fn settle_arxiv_doi(&mut self) {
        let Some(id) = self.doi.as_deref().and_then(ArxivId::from_doi) else {
            return;
        };
        self.doi = None;
        self.key = PaperKey::arxiv(&id);
        if self.arxiv_id.is_none() {
            self.arxiv_id = Some(id.base().to_string());
        }
        if self.links.pdf.is_none() {
            self.links.pdf = Some(id.pdf_url());
        }
        if self.links.abs.is_none() {
            self.links.abs = Some(id.abs_url());
        }
    }

    /// Folds what `newer` knows into `self`; returns whether anything changed.
    ///
    /// A newer arXiv version replaces the text; otherwise a source only fills in what
    /// earlier ones lacked, so the order in which feeds arrive does not matter much.
    pub fn merge(&mut self, newer: &Paper) -> bool {
        let before = self.clone();
        let newer_version = match (self.version, newer.version) {
            (Some(old), Some(new)) => new > old,
            // A versioned source (arXiv itself) is the authority over an unversioned one.
            (None, Some(_)) => true,
            _ => false,
        };
        if newer_version {
            self.version = newer.version;
            replace_if_some(&mut self.title, &newer.title);
            replace_if_some(&mut self.abstract_text, &newer.abstract_text);
            if !newer.authors.is_empty() {
                self.authors = newer.authors.clone();
            }
        } else {
            fill_if_empty(&mut self.title, &newer.title);
            fill_if_empty(&mut self.abstract_text, &newer.abstract_text);
            if self.authors.is_empty() {
                self.authors = newer.authors.clone();
            }
        }
        for cat in &newer.categories {
            if !self.categories.iter().any(|c| c.eq_ignore_ascii_case(cat)) {
                self.categories.push(cat.clone());
            }
        }
        fill_opt(&mut self.arxiv_id, &newer.arxiv_id);
        fill_opt(&mut self.doi, &newer.doi);
        fill_opt(&mut self.links.abs, &newer.links.abs);
        fill_opt(&mut self.links.pdf, &newer.links.pdf);
        fill_opt(&mut self.links.discussion, &newer.links.discussion);
        fill_opt(&mut self.thumbnail, &newer.thumbnail);
        // The earliest date any source gives is the closest to first publication.
        self.published = match (self.published, newer.published) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // Counts only grow on the sites that report them; a stale source must not lower them.
        self.upvotes = max_opt(self.upvotes, newer.upvotes);
        self.comments = max_opt(self.comments, newer.comments);
        *self != before
    }
}

fn replace_if_some(slot: &mut String, value: &str) {
    if !value.is_empty() {
        *slot = value.to_string();
    }
}

fn fill_if_empty(slot: &mut String, value: &str) {
    if slot.is_empty() && !value.is_empty() {
        *slot = value.to_string();
    }
}

fn fill_opt<T: Clone>(slot: &mut Option<T>, value: &Option<T>) {
    if slot.is_none() {
        slot.clone_from(value);
    }
}

fn max_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// One feed entry turned into a paper, with what the source said about the entry itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Ingested {
    pub paper: Paper,
    /// The entry's id in its feed (a guid, an Atom id, an API id).
    pub entry_id: String,
    pub announce_type: Option<AnnounceType>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn each_kind_of_key_links_to_where_the_paper_is_read() {
        let url = |k: &str| PaperKey::parse(k).unwrap().landing_url();
        assert_eq!(url("arxiv:2409.12345"), "https://arxiv.org/abs/2409.12345");
        assert_eq!(
            url("doi:10.1002/(SICI)1097#x?y%z"),
            "https://doi.org/10.1002/(sici)1097%23x%3Fy%25z"
        );
        assert_eq!(
            url("url:https://example.org/paper/1"),
            "https://example.org/paper/1"
        );
    }

    #[test]
    fn arxiv_ids_in_every_form_share_one_key() {
        let forms = [
            "2409.12345",
            "2409.12345v3",
            "oai:arXiv.org:2409.12345v1",
            "arXiv:2409.12345",
            "https://arxiv.org/abs/2409.12345v2",
            "http://export.arxiv.org/abs/2409.12345",
            "https://arxiv.org/pdf/2409.12345v1.pdf",
            "https://huggingface.co/papers/2409.12345",
        ];
        for f in forms {
            let id = ArxivId::parse(f).unwrap_or_else(|| panic!("{f} should parse"));
            assert_eq!(PaperKey::arxiv(&id).as_str(), "arxiv:2409.12345", "{f}");
        }
        assert_eq!(ArxivId::parse("2409.12345v3").unwrap().version(), Some(3));
    }

    #[test]
    fn old_style_arxiv_ids_parse() {
        let id = ArxivId::parse("http://arxiv.org/abs/cond-mat/0603029v1").unwrap();
        assert_eq!(id.base(), "cond-mat/0603029");
        assert_eq!(id.version(), Some(1));
        assert!(ArxivId::parse("math.GT/0309136").is_some());
    }

    #[test]
    fn things_that_are_not_arxiv_ids_are_refused() {
        for s in [
            "",
            "abc",
            "2409.123",
            "24091.12345",
            "https://example.org/abs/2409.12345",
            "hep-ex/03070",
        ] {
            assert!(ArxivId::parse(s).is_none(), "{s}");
        }
    }

    #[test]
    fn dois_are_lowercased_and_unprefixed() {
        assert_eq!(
            PaperKey::doi("https://doi.org/10.1101/2024.01.02.ABC")
                .unwrap()
                .as_str(),
            "doi:10.1101/2024.01.02.abc"
        );
        assert!(PaperKey::doi("10.x/abc").is_none());
        assert!(PaperKey::doi("not a doi").is_none());
    }

    #[test]
    fn arxiv_dois_are_arxiv_keys() {
        assert_eq!(
            PaperKey::doi("https://doi.org/10.48550/arXiv.2609.26820")
                .unwrap()
                .as_str(),
            "arxiv:2609.26820"
        );
        let mut p = Paper::new(PaperKey::doi("10.48550/arXiv.2609.26820").unwrap(), "T");
        p.doi = Some("10.48550/arxiv.2609.26820".into());
        p.settle_arxiv_doi();
        assert_eq!(p.doi, None);
        assert_eq!(p.arxiv_id.as_deref(), Some("2609.26820"));
        assert_eq!(p.key.as_str(), "arxiv:2609.26820");
        assert!(ArxivId::from_doi("10.1093/bioinformatics/btac431").is_none());
    }

    #[test]
    fn urls_lose_tracking_parameters_and_fragments() {
        let a = PaperKey::url("http://Example.org/paper/1/?rss=1&utm_source=x#top").unwrap();
        let b = PaperKey::url("https://example.org/paper/1").unwrap();
        assert_eq!(a, b);
        assert!(PaperKey::url("ftp://example.org/x").is_none());
    }

    #[test]
    fn a_new_version_replaces_text_but_fills_nothing_it_lacks() {
        let id1 = ArxivId::parse("2409.12345v1").unwrap();
        let mut stored = Paper::from_arxiv(&id1, "Old title");
        stored.abstract_text = "old".into();
        let id2 = ArxivId::parse("2409.12345v2").unwrap();
        let mut newer = Paper::from_arxiv(&id2, "New title");
        newer.abstract_text = "new".into();
        assert!(stored.merge(&newer));
        assert_eq!(stored.title, "New title");
        assert_eq!(stored.version, Some(2));
        // An older version arriving later changes nothing.
        let mut old_again = Paper::from_arxiv(&id1, "Old title");
        old_again.abstract_text = "old".into();
        assert!(!stored.merge(&old_again));
        assert_eq!(stored.title, "New title");
    }

    #[test]
    fn upvotes_from_a_later_source_fill_in() {
        let id = ArxivId::parse("2409.12345").unwrap();
        let mut stored = Paper::from_arxiv(&id, "T");
        let mut hf = Paper::from_arxiv(&id, "T");
        hf.upvotes = Some(12);
        hf.links.discussion = Some("https://huggingface.co/papers/2409.12345".into());
        assert!(stored.merge(&hf));
        assert_eq!(stored.upvotes, Some(12));
        assert!(
            !stored.merge(&hf),
            "merging the same thing twice changes nothing"
        );
    }

    proptest! {
        #[test]
        fn any_new_style_id_round_trips(yy in 7u32..99, mm in 1u32..=12, num in 0u32..99999, v in proptest::option::of(1u32..30)) {
            let raw = format!("{yy:02}{mm:02}.{num:05}{}", v.map(|v| format!("v{v}")).unwrap_or_default());
            let id = ArxivId::parse(&raw).unwrap();
            prop_assert_eq!(id.base(), format!("{yy:02}{mm:02}.{num:05}"));
            prop_assert_eq!(id.version(), v);
        }

        #[test]
        fn key_parsing_never_panics(s in "\\PC{0,40}") {
            let _ = PaperKey::parse(&s);
        }
    }
}
