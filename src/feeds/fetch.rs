//! HTTP fetching that a feed owner would accept: conditional GET, gzip, a clear
//! User-Agent, per-host spacing (3 s for arXiv), retries with backoff that honour
//! Retry-After, and hard caps on time and size so one bad server cannot stall a run.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use reqwest::StatusCode;
use reqwest::header::{
    CONTENT_LENGTH, CONTENT_TYPE, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED,
    RETRY_AFTER,
};

use super::FeedError;
use crate::config::FetchSettings;
use crate::error::chain;

/// What a GET brought back.
#[derive(Debug)]
pub enum Fetched {
    /// 304: the validators still hold; nothing to parse.
    NotModified,
    /// A final answer (2xx, or a 4xx that retrying will not change) and its body.
    Response {
        status: u16,
        body: Vec<u8>,
        content_type: Option<String>,
        etag: Option<String>,
        last_modified: Option<String>,
    },
}

/// A shared HTTP client with politeness state; clone freely.
#[derive(Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    settings: FetchSettings,
    arxiv_hosts: Option<Arc<DefaultKeyedRateLimiter<String>>>,
    other_hosts: Option<Arc<DefaultKeyedRateLimiter<String>>>,
}

fn limiter(interval_ms: u64) -> Option<Arc<DefaultKeyedRateLimiter<String>>> {
    let quota =
        Quota::with_period(Duration::from_millis(interval_ms))?.allow_burst(NonZeroU32::MIN);
    Some(Arc::new(RateLimiter::keyed(quota)))
}

fn is_arxiv_host(host: &str) -> bool {
    host == "arxiv.org" || host.ends_with(".arxiv.org")
}

impl Fetcher {
    pub fn new(settings: FetchSettings, user_agent: &str) -> Result<Self, FeedError> {
        // Installing fails only when a provider is already installed, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .user_agent(user_agent)
            .timeout(settings.timeout())
            .connect_timeout(Duration::from_secs(settings.timeout_secs.min(10)))
            .redirect(reqwest::redirect::Policy::limited(5))
            .build()
            .map_err(|e| FeedError::Request(e.into()))?;
        Ok(Self {
            client,
            arxiv_hosts: limiter(settings.arxiv_interval_ms),
            other_hosts: limiter(settings.host_interval_ms),
            settings,
        })
    }

    /// GETs `url`, sending the validators from the last successful fetch.
    #[tracing::instrument(skip_all, fields(url = %url))]
    pub async fn get(
        &self,
        url: &str,
        etag: Option<&str>,
        last_modified: Option<&str>,
    ) -> Result<Fetched, FeedError> {
        let parsed = url::Url::parse(url).map_err(|e| FeedError::Request(e.into()))?;
        let host = parsed.host_str().unwrap_or_default().to_ascii_lowercase();
        let mut attempt: u32 = 0;
        loop {
            self.wait_turn(&host).await;
            let (error, retry_after) = match self.attempt(url, etag, last_modified).await {
                Ok(fetched) => return Ok(fetched),
                Err(Attempt::Final(e)) => return Err(e),
                Err(Attempt::Retry { error, after }) => (error, after),
            };
            if attempt >= self.settings.retries {
                return Err(error);
            }
            let backoff = Duration::from_millis(
                self.settings
                    .backoff_ms
                    .saturating_mul(1u64 << attempt.min(16)),
            );
            let delay = match retry_after {
                Some(wait) if wait.as_secs() > self.settings.max_retry_after_secs => {
                    return Err(FeedError::RetryAfterTooLong(wait.as_secs()));
                }
                Some(wait) => wait,
                None => backoff,
            };
            tracing::info!(attempt = attempt + 1, delay_ms = delay.as_millis() as u64, error = %chain(&error), "retrying feed");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    async fn wait_turn(&self, host: &str) {
        let limiter = if is_arxiv_host(host) {
            &self.arxiv_hosts
        } else {
            &self.other_hosts
        };
        if let Some(limiter) = limiter {
            limiter.until_key_ready(&host.to_string()).await;
        }
    }

    async fn attempt(
        &self,
        url: &str,
        etag: Option<&str>,
        last_modified: Option<&str>,
    ) -> Result<Fetched, Attempt> {
        let mut request = self.client.get(url);
        if let Some(etag) = etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        if let Some(lm) = last_modified {
            request = request.header(IF_MODIFIED_SINCE, lm);
        }
        let mut response = request.send().await.map_err(|e| self.transport(e))?;
        let status = response.status();
        if status == StatusCode::NOT_MODIFIED {
            return Ok(Fetched::NotModified);
        }
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            let after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            return Err(Attempt::Retry {
                error: FeedError::Status {
                    status: status.as_u16(),
                    detail: status.canonical_reason().map(str::to_string),
                },
                after,
            });
        }
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        let content_type = header(CONTENT_TYPE);
        let new_etag = header(ETAG);
        let new_last_modified = header(LAST_MODIFIED);
        let limit = self.settings.max_bytes;
        let declared = header(CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit) {
            return Err(Attempt::Final(FeedError::TooLarge { limit }));
        }
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() as u64 + chunk.len() as u64 > limit {
                        return Err(Attempt::Final(FeedError::TooLarge { limit }));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => return Err(self.broken_body(e)),
            }
        }
        Ok(Fetched::Response {
            status: status.as_u16(),
            body,
            content_type,
            etag: new_etag,
            last_modified: new_last_modified,
        })
    }

    /// Timeouts and connection failures are worth another try; the rest are not.
    fn transport(&self, e: reqwest::Error) -> Attempt {
        if e.is_timeout() {
            Attempt::Retry {
                error: FeedError::Timeout(self.settings.timeout_secs),
                after: None,
            }
        } else if e.is_connect() || e.is_request() || e.is_body() {
            Attempt::Retry {
                error: request_failed(e),
                after: None,
            }
        } else {
            Attempt::Final(request_failed(e))
        }
    }
}

impl Fetcher {
    /// A body that broke off mid-transfer (the connection reset or closed before the
    /// announced length) is as passing as a failed connection, so it is tried again.
    /// reqwest reports it as a decode error wrapping the cause, which [`Self::transport`]
    /// would take for final.
    fn broken_body(&self, e: reqwest::Error) -> Attempt {
        let error = if e.is_timeout() {
            FeedError::Timeout(self.settings.timeout_secs)
        } else {
            request_failed(e)
        };
        Attempt::Retry { error, after: None }
    }
}

enum Attempt {
    /// Try again after the backoff, or after the server's Retry-After when it gave one.
    Retry {
        error: FeedError,
        after: Option<Duration>,
    },
    Final(FeedError),
}

/// The URL is left out of the error: the feed is named next to it anyway, and a URL can
/// carry a token in its query.
fn request_failed(e: reqwest::Error) -> FeedError {
    FeedError::Request(Box::new(e.without_url()))
}

/// `Retry-After: 120` or `Retry-After: Wed, 21 Oct 2026 07:28:00 GMT`.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[tokio::test]
    async fn a_body_cut_short_is_fetched_again() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let seen = connections.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                seen.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                // 100 bytes announced, 10 sent, then the connection closes.
                let _ = socket
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n<rss versi")
                    .await;
            }
        });
        let settings = FetchSettings {
            retries: 2,
            backoff_ms: 1,
            host_interval_ms: 0,
            ..FetchSettings::default()
        };
        let fetcher = Fetcher::new(settings, "test").unwrap();
        let err = fetcher
            .get(&format!("http://{addr}/feed"), None, None)
            .await
            .unwrap_err();
        assert!(matches!(err, FeedError::Request(_)), "{err}");
        assert_eq!(connections.load(Ordering::SeqCst), 3, "tried three times");
    }

    #[test]
    fn arxiv_hosts_are_recognised() {
        assert!(is_arxiv_host("export.arxiv.org"));
        assert!(is_arxiv_host("arxiv.org"));
        assert!(!is_arxiv_host("notarxiv.org"));
    }
}
