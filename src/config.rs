//! Settings: built-in defaults, overridden by `paperboy.toml`, overridden by `PAPERBOY_*`
//! environment variables. Secrets are wrapped so that they never reach logs.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

/// A value that must not be printed: Debug and Display show `[redacted]`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A database URL; its password, if any, is hidden when printed.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any password replaced, fit for logs and error messages. A URL that
    /// does not parse is not shown at all: it might hold a password in an odd place.
    pub fn redacted(&self) -> String {
        let Ok(mut u) = url::Url::parse(&self.0) else {
            return "[unparseable database URL]".into();
        };
        if u.password().is_some() {
            let _ = u.set_password(Some("redacted"));
        }
        let secret =
            |k: &str| k.eq_ignore_ascii_case("password") || k.eq_ignore_ascii_case("sslpassword");
        if u.query_pairs().any(|(k, _)| secret(&k)) {
            let pairs: Vec<(String, String)> = u
                .query_pairs()
                .map(|(k, v)| {
                    let v = if secret(&k) {
                        "redacted".to_string()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            u.query_pairs_mut().clear().extend_pairs(pairs);
        }
        u.to_string()
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl FromStr for LogFormat {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(ConfigError::Invalid {
                key: "log_format",
                message: format!("{other:?} is not text or json"),
            }),
        }
    }
}

/// How feeds are polled.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FetchSettings {
    /// When the scheduler polls the feeds that are not arXiv's (cron with seconds:
    /// `sec min hour dom mon dow`, UTC): hourly, for Hugging Face's daily papers, whose
    /// upvotes move all day. Conditional GETs make polls of unchanged feeds cheap.
    pub schedule: String,
    /// When arXiv feeds are polled: shortly after arXiv's announcement (20:00 US Eastern,
    /// which is 00:00 UTC in summer and 01:00 UTC in winter), Monday to Friday.
    pub arxiv_schedule: String,
    /// Whole-request limit, body included, so a never-ending response is cut off.
    pub timeout_secs: u64,
    /// Responses larger than this are refused.
    pub max_bytes: u64,
    /// Attempts after the first one on 429, 5xx and timeouts.
    pub retries: u32,
    /// First backoff between attempts; doubled each time unless the server sends Retry-After.
    pub backoff_ms: u64,
    /// Longest Retry-After that is waited for; a longer one fails the fetch for this run.
    pub max_retry_after_secs: u64,
    /// Minimum spacing between two requests to an arXiv host (arXiv asks for 3 s).
    pub arxiv_interval_ms: u64,
    /// Minimum spacing between two requests to any other host.
    pub host_interval_ms: u64,
    /// The arXiv API that papers a reader likes are looked up in by id (`id_list=`),
    /// when paperboy does not have them yet.
    pub arxiv_api_url: String,
}

impl Default for FetchSettings {
    fn default() -> Self {
        Self {
            schedule: "0 10 * * * *".into(),
            arxiv_schedule: "0 5 0,1 * * Mon-Fri".into(),
            timeout_secs: 30,
            max_bytes: 20 * 1024 * 1024,
            retries: 3,
            backoff_ms: 2_000,
            max_retry_after_secs: 120,
            arxiv_interval_ms: 3_000,
            host_interval_ms: 1_000,
            arxiv_api_url: "https://export.arxiv.org/api/query".into(),
        }
    }
}

impl FetchSettings {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

/// How the outbox is delivered.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliverySettings {
    /// Messages being sent at once (SMTP connections in use).
    pub concurrency: usize,
    /// Messages started per second, at most.
    pub messages_per_second: u32,
    /// How long a claimed delivery is held before another worker may take it over.
    pub lease_secs: u64,
    /// First wait after a temporary failure; doubled each time …
    pub retry_base_secs: u64,
    /// … up to this.
    pub retry_max_secs: u64,
    /// A delivery still failing this long after it was queued is given up as failed.
    pub give_up_after_hours: u64,
    /// How often an idle worker looks for due deliveries, in milliseconds.
    pub poll_ms: u64,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            concurrency: 4,
            messages_per_second: 20,
            lease_secs: 300,
            retry_base_secs: 60,
            retry_max_secs: 3600,
            give_up_after_hours: 48,
            poll_ms: 1000,
        }
    }
}

/// The web form's limits against abuse.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSettings {
    /// Take the client address from the last `X-Forwarded-For` entry (the one the reverse
    /// proxy in front added). Only behind a proxy that sets it: otherwise anyone can.
    pub trust_forwarded_for: bool,
    /// Subscribe requests allowed per client address per hour …
    pub subscribe_per_ip_per_hour: u32,
    /// … of which this many may come at once.
    pub subscribe_ip_burst: u32,
    /// Subscribe requests allowed per email address per hour (a burst of up to 3).
    pub subscribe_per_address_per_hour: u32,
    /// Live query previews allowed per client address per minute.
    pub preview_per_ip_per_minute: u32,
    /// "More / less like this" ratings (and their removals) allowed per client address
    /// per minute.
    pub ratings_per_ip_per_minute: u32,
    /// Lists of papers a reader likes sent from the settings page per hour, per client
    /// address and per reader (each may have paperboy ask arXiv for up to 500 papers).
    pub likes_per_hour: u32,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// The least time between two confirmation (or settings) links mailed to one address.
    pub resend_link_after_secs: u64,
}

impl Default for WebSettings {
    fn default() -> Self {
        Self {
            trust_forwarded_for: false,
            subscribe_per_ip_per_hour: 30,
            subscribe_ip_burst: 10,
            subscribe_per_address_per_hour: 6,
            preview_per_ip_per_minute: 120,
            ratings_per_ip_per_minute: 60,
            likes_per_hour: 10,
            max_body_bytes: 64 * 1024,
            resend_link_after_secs: 600,
        }
    }
}

/// Everything paperboy reads from its environment.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub database_url: DatabaseUrl,
    pub bind: String,
    pub base_url: String,
    pub smtp_url: Option<Secret>,
    pub outbox_dir: PathBuf,
    pub from: String,
    /// The domain of each delivery's VERP return path (`bounces+ID-TAG@DOMAIN`); the From
    /// address's domain when unset.
    pub bounce_domain: Option<String>,
    /// Mailgun's webhook signing key: `POST /webhooks/bounces/mailgun` is served only
    /// with it.
    pub mailgun_signing_key: Option<Secret>,
    pub secret_key: Option<Secret>,
    pub dkim_key: Option<PathBuf>,
    pub dkim_selector: Option<String>,
    pub dkim_domain: Option<String>,
    pub log: String,
    pub log_format: LogFormat,
    pub fetch: FetchSettings,
    pub web: WebSettings,
    pub delivery: DeliverySettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            database_url: DatabaseUrl::new("sqlite://data/paperboy.db"),
            bind: "127.0.0.1:8080".into(),
            base_url: "http://127.0.0.1:8080".into(),
            smtp_url: None,
            outbox_dir: PathBuf::from("data/outbox"),
            from: "paperboy <digest@localhost>".into(),
            bounce_domain: None,
            mailgun_signing_key: None,
            secret_key: None,
            dkim_key: None,
            dkim_selector: None,
            dkim_domain: None,
            log: "info".into(),
            log_format: LogFormat::Text,
            fetch: FetchSettings::default(),
            web: WebSettings::default(),
            delivery: DeliverySettings::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("setting {key}: {message}")]
    Invalid { key: &'static str, message: String },
}

/// The file read when no `--config` is given, if it exists.
pub const DEFAULT_CONFIG_FILE: &str = "paperboy.toml";

impl Settings {
    /// Defaults < `path` (or `paperboy.toml` when present) < the process environment.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with(path, |k| std::env::var(k).ok())
    }

    /// As [`Settings::load`], reading variables through `env` (tests pass a map).
    pub fn load_with(
        path: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let file = match path {
            Some(p) => Some(p.to_path_buf()),
            None => {
                let default = PathBuf::from(DEFAULT_CONFIG_FILE);
                default.exists().then_some(default)
            }
        };
        let mut settings = match file {
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path,
                    message: e.to_string(),
                })?
            }
            None => Settings::default(),
        };
        settings.apply_env(env)?;
        settings.validate()?;
        Ok(settings)
    }

    fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let get = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        if let Some(v) = get("PAPERBOY_DATABASE_URL") {
            self.database_url = DatabaseUrl::new(v);
        }
        if let Some(v) = get("PAPERBOY_BIND") {
            self.bind = v;
        }
        if let Some(v) = get("PAPERBOY_BASE_URL") {
            self.base_url = v;
        }
        if let Some(v) = get("PAPERBOY_SMTP_URL") {
            self.smtp_url = Some(Secret::new(v));
        }
        if let Some(v) = get("PAPERBOY_OUTBOX_DIR") {
            self.outbox_dir = PathBuf::from(v);
        }
        if let Some(v) = get("PAPERBOY_FROM") {
            self.from = v;
        }
        if let Some(v) = get("PAPERBOY_BOUNCE_DOMAIN") {
            self.bounce_domain = Some(v);
        }
        if let Some(v) = get("PAPERBOY_MAILGUN_SIGNING_KEY") {
            self.mailgun_signing_key = Some(Secret::new(v));
        }
        if let Some(v) = get("PAPERBOY_SECRET_KEY") {
            self.secret_key = Some(Secret::new(v));
        }
        if let Some(v) = get("PAPERBOY_DKIM_KEY") {
            self.dkim_key = Some(PathBuf::from(v));
        }
        if let Some(v) = get("PAPERBOY_DKIM_SELECTOR") {
            self.dkim_selector = Some(v);
        }
        if let Some(v) = get("PAPERBOY_DKIM_DOMAIN") {
            self.dkim_domain = Some(v);
        }
        if let Some(v) = get("PAPERBOY_LOG") {
            self.log = v;
        }
        if let Some(v) = get("PAPERBOY_LOG_FORMAT") {
            self.log_format = v.parse()?;
        }
        if let Some(v) = get("PAPERBOY_FETCH_SCHEDULE") {
            self.fetch.schedule = v;
        }
        if let Some(v) = get("PAPERBOY_FETCH_ARXIV_SCHEDULE") {
            self.fetch.arxiv_schedule = v;
        }
        if let Some(v) = get("PAPERBOY_FETCH_ARXIV_API_URL") {
            self.fetch.arxiv_api_url = v;
        }
        if let Some(v) = get("PAPERBOY_TRUST_FORWARDED_FOR") {
            self.web.trust_forwarded_for = match v.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" => false,
                other => {
                    return Err(ConfigError::Invalid {
                        key: "web.trust_forwarded_for",
                        message: format!("{other:?} is not true or false"),
                    });
                }
            };
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(domain) = &self.bounce_domain {
            let label_ok = |l: &str| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            };
            if domain.len() > 253 || !domain.split('.').all(label_ok) {
                return Err(ConfigError::Invalid {
                    key: "bounce_domain",
                    message: format!("{domain:?} is not a domain name"),
                });
            }
        }
        let db = self.database_url.expose();
        if !(db.starts_with("sqlite:")
            || db.starts_with("postgres://")
            || db.starts_with("postgresql://"))
        {
            return Err(ConfigError::Invalid {
                key: "database_url",
                message: format!(
                    "{} is neither sqlite://… nor postgres://…",
                    self.database_url.redacted()
                ),
            });
        }
        cron::Schedule::from_str(&self.fetch.schedule).map_err(|e| ConfigError::Invalid {
            key: "fetch.schedule",
            message: format!("{:?}: {e}", self.fetch.schedule),
        })?;
        cron::Schedule::from_str(&self.fetch.arxiv_schedule).map_err(|e| ConfigError::Invalid {
            key: "fetch.arxiv_schedule",
            message: format!("{:?}: {e}", self.fetch.arxiv_schedule),
        })?;
        if self.fetch.max_bytes == 0 || self.fetch.timeout_secs == 0 {
            return Err(ConfigError::Invalid {
                key: "fetch",
                message: "max_bytes and timeout_secs must be above zero".into(),
            });
        }
        let api = url::Url::parse(&self.fetch.arxiv_api_url).ok();
        if !api.is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some()) {
            return Err(ConfigError::Invalid {
                key: "fetch.arxiv_api_url",
                message: format!("{:?} is not an http(s) address", self.fetch.arxiv_api_url),
            });
        }
        let d = &self.delivery;
        if d.concurrency == 0
            || d.messages_per_second == 0
            || d.lease_secs == 0
            || d.retry_base_secs == 0
            || d.poll_ms == 0
        {
            return Err(ConfigError::Invalid {
                key: "delivery",
                message: "concurrency, messages_per_second, lease_secs, retry_base_secs and \
                          poll_ms must be above zero"
                    .into(),
            });
        }
        let w = &self.web;
        if w.subscribe_per_ip_per_hour == 0
            || w.subscribe_ip_burst == 0
            || w.subscribe_per_address_per_hour == 0
            || w.preview_per_ip_per_minute == 0
            || w.ratings_per_ip_per_minute == 0
            || w.likes_per_hour == 0
            || w.max_body_bytes < 1024
            || w.resend_link_after_secs > 86_400
        {
            return Err(ConfigError::Invalid {
                key: "web",
                message: "rate limits must be above zero, max_body_bytes at least 1024 and resend_link_after_secs at most a day".into(),
            });
        }
        let base = url::Url::parse(&self.base_url).map_err(|e| ConfigError::Invalid {
            key: "base_url",
            message: format!("{:?}: {e}", self.base_url),
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(ConfigError::Invalid {
                key: "base_url",
                message: format!("{:?} is not an http(s) address", self.base_url),
            });
        }
        Ok(())
    }

    /// The identity paperboy gives feed servers, with a link back to this instance.
    pub fn user_agent(&self) -> String {
        format!(
            "paperboy/{} (+{}; self-hosted paper digest)",
            env!("CARGO_PKG_VERSION"),
            self.base_url
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_work_with_nothing_set() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.toml");
        let s = Settings::load_with(None, env_of(&[])).unwrap();
        assert_eq!(s.database_url.expose(), "sqlite://data/paperboy.db");
        assert_eq!(s.bind, "127.0.0.1:8080");
        assert!(s.smtp_url.is_none());
        assert!(Settings::load_with(Some(&missing), env_of(&[])).is_err());
    }

    #[test]
    fn the_file_overrides_defaults_and_the_environment_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("paperboy.toml");
        std::fs::write(
            &path,
            "bind = \"0.0.0.0:9000\"\nfrom = \"file <f@example.org>\"\n[fetch]\nretries = 1\n",
        )
        .unwrap();
        let s = Settings::load_with(
            Some(&path),
            env_of(&[("PAPERBOY_FROM", "env <e@example.org>")]),
        )
        .unwrap();
        assert_eq!(s.bind, "0.0.0.0:9000");
        assert_eq!(s.from, "env <e@example.org>");
        assert_eq!(s.fetch.retries, 1);
        assert_eq!(s.fetch.timeout_secs, 30);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("paperboy.toml");
        std::fs::write(&path, "databse_url = \"x\"\n").unwrap();
        let err = Settings::load_with(Some(&path), env_of(&[])).unwrap_err();
        assert!(err.to_string().contains("databse_url"), "{err}");
        let err = Settings::load_with(None, env_of(&[("PAPERBOY_DATABASE_URL", "mysql://x")]))
            .unwrap_err();
        assert!(err.to_string().contains("database_url"), "{err}");
        let err =
            Settings::load_with(None, env_of(&[("PAPERBOY_FETCH_SCHEDULE", "often")])).unwrap_err();
        assert!(err.to_string().contains("fetch.schedule"), "{err}");
        let err = Settings::load_with(None, env_of(&[("PAPERBOY_FETCH_ARXIV_SCHEDULE", "daily")]))
            .unwrap_err();
        assert!(err.to_string().contains("fetch.arxiv_schedule"), "{err}");
        let err = Settings::load_with(
            None,
            env_of(&[("PAPERBOY_FETCH_ARXIV_API_URL", "export.arxiv.org/api")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("fetch.arxiv_api_url"), "{err}");
        let s = Settings::load_with(
            None,
            env_of(&[(
                "PAPERBOY_FETCH_ARXIV_API_URL",
                "http://127.0.0.1:9/api/query",
            )]),
        )
        .unwrap();
        assert_eq!(s.fetch.arxiv_api_url, "http://127.0.0.1:9/api/query");
    }

    #[test]
    fn secrets_never_print() {
        let s = Settings::load_with(
            None,
            env_of(&[
                ("PAPERBOY_SMTP_URL", "smtp://user:hunter2@mail:587"),
                ("PAPERBOY_SECRET_KEY", "k3y"),
                ("PAPERBOY_DATABASE_URL", "postgres://app:s3cret@db/paperboy"),
            ]),
        )
        .unwrap();
        let shown = format!("{s:?}");
        for secret in ["hunter2", "k3y", "s3cret"] {
            assert!(!shown.contains(secret), "{secret} leaked: {shown}");
        }
        let odd = DatabaseUrl::new("postgres://app:pa/ss@db/pb");
        assert!(!odd.redacted().contains("pa/ss"), "{}", odd.redacted());
        let query = DatabaseUrl::new("postgres://app@db/pb?sslmode=require&password=s3cret");
        assert!(!query.redacted().contains("s3cret"), "{}", query.redacted());
        assert!(query.redacted().contains("sslmode=require"));
    }
}
