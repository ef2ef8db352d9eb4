//! What an operator says about a feed: its name, its URL and which parser reads it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::Invalid;

/// Which parser reads a feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FeedKind {
    /// `rss.arxiv.org/rss/<categories>`: the daily announcement listing.
    ArxivRss,
    /// `export.arxiv.org/api/query?…`: Atom search results.
    ArxivApi,
    /// `huggingface.co/api/daily_papers`: JSON with upvotes.
    HfDaily,
    /// Any RSS 0.9/1.0/2.0, Atom or JSON Feed, and the bioRxiv/medRxiv and Semantic
    /// Scholar JSON APIs.
    Feed,
}

impl FeedKind {
    pub const ALL: [FeedKind; 4] = [Self::ArxivRss, Self::ArxivApi, Self::HfDaily, Self::Feed];

    /// arXiv's own feeds, polled on arXiv's announcement schedule.
    pub fn is_arxiv(self) -> bool {
        matches!(self, Self::ArxivRss | Self::ArxivApi)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ArxivRss => "arxiv-rss",
            Self::ArxivApi => "arxiv-api",
            Self::HfDaily => "hf-daily",
            Self::Feed => "feed",
        }
    }
}

impl FromStr for FeedKind {
    type Err = Invalid;

    fn from_str(s: &str) -> Result<Self, Invalid> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s.trim())
            .ok_or_else(|| {
                Invalid::new(format!(
                    "unknown feed kind {s:?}; expected one of arxiv-rss, arxiv-api, hf-daily, feed"
                ))
            })
    }
}

impl fmt::Display for FeedKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An operator's short name for a feed: 1–64 characters of letters, digits, `.`, `-`, `_`, `+`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct FeedName(String);

impl FeedName {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let s = s.trim();
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+'));
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(Invalid::new(format!(
                "bad feed name {s:?}: use 1-64 letters, digits, '.', '-', '_' or '+'"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FeedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An absolute http(s) URL with a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeedUrl(String);

impl FeedUrl {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let url = url::Url::parse(s.trim())
            .map_err(|e| Invalid::new(format!("bad feed URL {s:?}: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Invalid::new(format!(
                "bad feed URL {s:?}: only http and https are fetched"
            )));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(Invalid::new(format!("bad feed URL {s:?}: no host")));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Invalid::new(
                "bad feed URL: credentials in feed URLs would be stored and shown in plain text",
            ));
        }
        Ok(Self(url.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FeedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_names() {
        for k in FeedKind::ALL {
            assert_eq!(k.as_str().parse::<FeedKind>().unwrap(), k);
        }
        assert!("rss".parse::<FeedKind>().is_err());
    }

    #[test]
    fn names_and_urls_are_checked() {
        assert!(FeedName::parse("arxiv-cs.LG").is_ok());
        assert!(FeedName::parse("").is_err());
        assert!(FeedName::parse("two words").is_err());
        assert!(FeedUrl::parse("https://rss.arxiv.org/rss/cs.LG").is_ok());
        assert!(FeedUrl::parse("file:///etc/passwd").is_err());
        assert!(FeedUrl::parse("not a url").is_err());
        assert!(FeedUrl::parse("https://user:pw@example.org/feed").is_err());
    }
}
