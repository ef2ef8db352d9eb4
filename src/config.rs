//! Settings: built-in defaults, overridden by `paperboy.toml`, overridden by `PAPERBOY_*`
//! environment variables. Secrets are wrapped so that they never reach logs.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

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

/// Written as `[redacted]`: `paperboy config` shows that a secret is set, never its value.
impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("[redacted]")
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

/// Written with its password hidden.
impl Serialize for DatabaseUrl {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

/// Whether a `sqlite:` URL carries a login (`sqlite://user:pass@/path`): an `@` in the
/// part a URL reads as `user:password@host`. SQLite would take it as the start of a file
/// path and quietly make a folder named after the credentials.
fn sqlite_names_a_login(url: &str) -> bool {
    let rest = url.trim_start_matches("sqlite:");
    let Some(authority) = rest.strip_prefix("//") else {
        return false;
    };
    let path = authority.split(['?', '#']).next().unwrap_or("");
    path.split('/')
        .next()
        .is_some_and(|first| first.contains('@'))
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
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
#[derive(Debug, Clone, Deserialize, Serialize)]
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
#[derive(Debug, Clone, Deserialize, Serialize)]
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
#[derive(Debug, Clone, Deserialize, Serialize)]
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
    /// A request head (request line and headers) must arrive whole within this many
    /// seconds of its first byte, or of the connection opening; a client that trickles it
    /// is disconnected.
    pub header_read_timeout_secs: u64,
    /// A kept-alive connection that sends nothing for this many seconds after an answer is
    /// closed.
    pub keep_alive_timeout_secs: u64,
    /// A request's body must arrive whole within this many seconds of its head, or the
    /// connection is closed.
    pub body_read_timeout_secs: u64,
    /// Connections open at once, at most (lowered at start to fit the descriptor limit).
    /// At the cap a new connection displaces the one that has waited longest without a
    /// request in progress, so a flood of slow or idle clients cannot lock others out.
    pub max_connections: usize,
    /// On SIGTERM, how long requests in progress may take to finish before `serve` exits
    /// anyway; idle connections are closed at once.
    pub shutdown_grace_secs: u64,
    /// The most confirmation (or settings) links mailed from the form to one mailbox in
    /// 24 hours, whatever the spelling of the address (`+tags`, case, dots at Gmail) and
    /// whatever the client.
    pub mails_per_mailbox_per_day: u32,
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
            header_read_timeout_secs: 10,
            keep_alive_timeout_secs: 75,
            body_read_timeout_secs: 60,
            max_connections: 1024,
            shutdown_grace_secs: 10,
            mails_per_mailbox_per_day: 3,
        }
    }
}

/// Everything paperboy reads from its environment.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub database_url: DatabaseUrl,
    pub bind: String,
    /// A second listener that serves `/metrics` (and `/healthz`); when set, the public
    /// listener does not serve `/metrics`.
    pub admin_bind: Option<String>,
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
            admin_bind: None,
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

/// The settings whose value is secret or may hold a password.
const SECRET_KEYS: [&str; 4] = [
    "smtp_url",
    "secret_key",
    "database_url",
    "mailgun_signing_key",
];

/// What is wrong with the file, by line and key and never by value: toml's own text quotes
/// the offending line (so an SMTP password or the secret key would reach the terminal and
/// the logs). Its message is kept only for a line that holds no secret setting, and toml
/// quotes no line in it; on a secret's line only the kind of error is told.
fn file_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().lines().next().unwrap_or("").trim();
    let lower = message.to_ascii_lowercase();
    let kind = if lower.contains("duplicate") {
        "a duplicate key"
    } else if lower.contains("unknown field") {
        "an unknown key"
    } else if lower.contains("missing field") {
        "a missing key"
    } else if lower.contains("invalid type") || lower.contains("invalid value") {
        "a value of the wrong type"
    } else {
        "a syntax error"
    };
    let Some(start) = e.span().map(|s| s.start.min(text.len())) else {
        return format!("{kind} (no line given)");
    };
    let line_no = text.as_bytes()[..start]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or("");
    let key = key_on_line(line);
    let secret = SECRET_KEYS.iter().any(|k| line.contains(k))
        || key
            .as_deref()
            .is_some_and(|k| SECRET_KEYS.contains(&k.rsplit('.').next().unwrap_or(k)));
    let at = match &key {
        Some(key) => format!("line {line_no}, key {key}"),
        None => format!("line {line_no}"),
    };
    if secret {
        format!("{at}: {kind} (the value is secret and not shown)")
    } else {
        format!("{at}: {kind}: {message}")
    }
}

/// The key a line of TOML sets (`name = …`), or the table it opens (`[web]`); `None` when
/// the line is neither or what stands there does not look like a key (it may be a value).
fn key_on_line(line: &str) -> Option<String> {
    let line = line.trim();
    let key = match line.strip_prefix('[') {
        Some(rest) => rest.trim_start_matches('[').split(']').next()?,
        None => line.split_once('=')?.0,
    }
    .trim();
    let plain =
        |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '"' | '\'' | ' ');
    (!key.is_empty() && key.len() <= 64 && key.chars().all(plain))
        .then(|| key.replace(['"', '\''], ""))
}

/// The file read when no `--config` is given, if it exists.
pub const DEFAULT_CONFIG_FILE: &str = "paperboy.toml";

/// Each environment variable paperboy reads and the setting it overrides.
pub const ENV_SETTINGS: &[(&str, &str)] = &[
    ("PAPERBOY_DATABASE_URL", "database_url"),
    ("PAPERBOY_BIND", "bind"),
    ("PAPERBOY_ADMIN_BIND", "admin_bind"),
    ("PAPERBOY_BASE_URL", "base_url"),
    ("PAPERBOY_SMTP_URL", "smtp_url"),
    ("PAPERBOY_OUTBOX_DIR", "outbox_dir"),
    ("PAPERBOY_FROM", "from"),
    ("PAPERBOY_SECRET_KEY", "secret_key"),
    ("PAPERBOY_DKIM_KEY", "dkim_key"),
    ("PAPERBOY_DKIM_SELECTOR", "dkim_selector"),
    ("PAPERBOY_DKIM_DOMAIN", "dkim_domain"),
    ("PAPERBOY_LOG", "log"),
    ("PAPERBOY_LOG_FORMAT", "log_format"),
    ("PAPERBOY_FETCH_SCHEDULE", "fetch.schedule"),
    ("PAPERBOY_FETCH_ARXIV_SCHEDULE", "fetch.arxiv_schedule"),
    ("PAPERBOY_FETCH_ARXIV_API_URL", "fetch.arxiv_api_url"),
    ("PAPERBOY_TRUST_FORWARDED_FOR", "web.trust_forwarded_for"),
    ("PAPERBOY_BOUNCE_DOMAIN", "bounce_domain"),
    ("PAPERBOY_MAILGUN_SIGNING_KEY", "mailgun_signing_key"),
];

/// Where a setting's effective value came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "from", content = "name")]
pub enum Source {
    Default,
    /// The settings file, by path.
    File(String),
    /// An environment variable, by name.
    Environment(&'static str),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(path) => write!(f, "file {path}"),
            Source::Environment(name) => write!(f, "environment {name}"),
        }
    }
}

/// One effective setting: its dotted key, its value (secrets redacted) and its source.
#[derive(Debug, Clone, Serialize)]
pub struct Explained {
    pub key: String,
    pub value: serde_json::Value,
    pub source: Source,
}

/// The dotted keys of a TOML table's values: `fetch.schedule`, `bind`.
fn dotted_keys(table: &toml::Table, prefix: &str, out: &mut std::collections::BTreeSet<String>) {
    for (k, v) in table {
        let key = format!("{prefix}{k}");
        match v {
            toml::Value::Table(t) => dotted_keys(t, &format!("{key}."), out),
            _ => {
                out.insert(key);
            }
        }
    }
}

/// The leaves of a JSON object as dotted keys, in order.
fn leaves(value: &serde_json::Value, prefix: &str, out: &mut Vec<(String, serde_json::Value)>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                leaves(v, &format!("{prefix}{k}."), out);
            }
        }
        other => out.push((prefix.trim_end_matches('.').to_string(), other.clone())),
    }
}

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
        let file = Self::file_to_read(path);
        let mut settings = match file {
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    message: file_error(&text, &e),
                    path,
                })?
            }
            None => Settings::default(),
        };
        settings.apply_env(env)?;
        settings.validate()?;
        Ok(settings)
    }

    /// Every effective setting, as [`Settings::load_with`] builds it, with where its value
    /// came from: the environment wins over the file, the file over the default. Secrets
    /// show as `[redacted]` and a database URL without its password.
    pub fn explain(
        path: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Vec<Explained>, ConfigError> {
        let settings = Self::load_with(path, &env)?;
        let file = Self::file_to_read(path);
        let mut from_file = std::collections::BTreeSet::new();
        if let Some(path) = &file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            // It parsed as settings a moment ago, so it parses as a table.
            if let Ok(table) = text.parse::<toml::Table>() {
                dotted_keys(&table, "", &mut from_file);
            }
        }
        let value = serde_json::to_value(&settings).map_err(|e| ConfigError::Invalid {
            key: "settings",
            message: e.to_string(),
        })?;
        let mut all = Vec::new();
        leaves(&value, "", &mut all);
        Ok(all
            .into_iter()
            .map(|(key, value)| {
                let from_env = ENV_SETTINGS.iter().find(|(name, setting)| {
                    *setting == key && env(name).is_some_and(|v| !v.trim().is_empty())
                });
                let source = match (from_env, &file) {
                    (Some((name, _)), _) => Source::Environment(name),
                    (None, Some(path)) if from_file.contains(&key) => {
                        Source::File(path.display().to_string())
                    }
                    _ => Source::Default,
                };
                Explained { key, value, source }
            })
            .collect())
    }

    /// `path`, or `paperboy.toml` when it exists.
    fn file_to_read(path: Option<&Path>) -> Option<PathBuf> {
        match path {
            Some(p) => Some(p.to_path_buf()),
            None => {
                let default = PathBuf::from(DEFAULT_CONFIG_FILE);
                default.exists().then_some(default)
            }
        }
    }

    fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let get = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        if let Some(v) = get("PAPERBOY_DATABASE_URL") {
            self.database_url = DatabaseUrl::new(v);
        }
        if let Some(v) = get("PAPERBOY_BIND") {
            self.bind = v;
        }
        if let Some(v) = get("PAPERBOY_ADMIN_BIND") {
            self.admin_bind = Some(v);
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
        if self
            .secret_key
            .as_ref()
            .is_some_and(|k| k.expose().len() < 32)
        {
            return Err(ConfigError::Invalid {
                key: "secret_key",
                message: "PAPERBOY_SECRET_KEY must be at least 32 characters".into(),
            });
        }
        if db.starts_with("sqlite:") && sqlite_names_a_login(db) {
            return Err(ConfigError::Invalid {
                key: "database_url",
                message: "a sqlite:// URL names a file and takes no user name or password \
                          (SQLite has no login; the URL is not shown, as it may hold one). \
                          Write sqlite:///absolute/path.db or sqlite://relative/path.db"
                    .into(),
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
            || w.mails_per_mailbox_per_day == 0
            || w.max_body_bytes < 1024
            || w.resend_link_after_secs > 86_400
        {
            return Err(ConfigError::Invalid {
                key: "web",
                message: "rate limits must be above zero, max_body_bytes at least 1024 and resend_link_after_secs at most a day".into(),
            });
        }
        let timeouts = [
            w.header_read_timeout_secs,
            w.keep_alive_timeout_secs,
            w.body_read_timeout_secs,
        ];
        if timeouts.iter().any(|t| !(1..=3600).contains(t))
            || w.shutdown_grace_secs > 3600
            || w.max_connections == 0
        {
            return Err(ConfigError::Invalid {
                key: "web",
                message: "header_read_timeout_secs, keep_alive_timeout_secs and \
                          body_read_timeout_secs must be from 1 to 3600, shutdown_grace_secs \
                          at most 3600, and max_connections above zero"
                    .into(),
            });
        }
        if let Some(admin) = &self.admin_bind
            && admin.trim() == self.bind.trim()
        {
            return Err(ConfigError::Invalid {
                key: "admin_bind",
                message: format!("{admin:?} is the web listener's own address (bind)"),
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
    fn every_variable_read_is_listed_with_the_setting_it_overrides() {
        let asked = std::cell::RefCell::new(Vec::new());
        Settings::default()
            .apply_env(|name| {
                asked.borrow_mut().push(name.to_string());
                None
            })
            .unwrap();
        let mut listed: Vec<String> = ENV_SETTINGS.iter().map(|(n, _)| n.to_string()).collect();
        let mut asked = asked.into_inner();
        listed.sort();
        asked.sort();
        assert_eq!(asked, listed);
        let keys: Vec<String> = Settings::explain(None, env_of(&[]))
            .unwrap()
            .into_iter()
            .map(|e| e.key)
            .collect();
        for (_, key) in ENV_SETTINGS {
            assert!(keys.iter().any(|k| k == key), "{key} is not a setting");
        }
    }

    #[test]
    fn explained_settings_name_their_source_and_never_show_a_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("paperboy.toml");
        std::fs::write(
            &path,
            "bind = \"0.0.0.0:9000\"\nsmtp_url = \"smtp://alice:hunter2@relay.example.org\"\n\
             database_url = \"postgres://pb:s3cret@db/paperboy\"\n[delivery]\nconcurrency = 8\n",
        )
        .unwrap();
        let env = env_of(&[
            (
                "PAPERBOY_SECRET_KEY",
                "k3y-that-is-long-enough-for-paperboy-0123456789",
            ),
            ("PAPERBOY_LOG", "debug"),
            ("PAPERBOY_BIND", "  "),
        ]);
        let all = Settings::explain(Some(&path), env).unwrap();
        let of = |key: &str| all.iter().find(|e| e.key == key).unwrap().clone();
        let file = Source::File(path.display().to_string());
        assert_eq!(of("bind").source, file, "a blank variable does not count");
        assert_eq!(of("bind").value, "0.0.0.0:9000");
        assert_eq!(of("delivery.concurrency").source, file);
        assert_eq!(of("delivery.concurrency").value, 8);
        assert_eq!(of("log").source, Source::Environment("PAPERBOY_LOG"));
        assert_eq!(
            of("secret_key").source,
            Source::Environment("PAPERBOY_SECRET_KEY")
        );
        assert_eq!(of("secret_key").value, "[redacted]");
        assert_eq!(of("smtp_url").value, "[redacted]");
        assert_eq!(of("fetch.schedule").source, Source::Default);
        assert_eq!(of("admin_bind").value, serde_json::Value::Null);
        let text = serde_json::to_string(&all).unwrap();
        for secret in ["hunter2", "s3cret", "k3y-that"] {
            assert!(!text.contains(secret), "{secret} shown: {text}");
        }
        assert!(
            text.contains("postgres://pb:redacted@db/paperboy"),
            "{text}"
        );
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
    fn the_listener_has_safe_limits_by_default_and_refuses_unsafe_ones() {
        let s = Settings::load_with(None, env_of(&[("PAPERBOY_ADMIN_BIND", "127.0.0.1:9090")]))
            .unwrap();
        assert_eq!(s.admin_bind.as_deref(), Some("127.0.0.1:9090"));
        let w = &s.web;
        assert_eq!(
            (
                w.header_read_timeout_secs,
                w.keep_alive_timeout_secs,
                w.body_read_timeout_secs,
                w.max_connections,
                w.shutdown_grace_secs
            ),
            (10, 75, 60, 1024, 10)
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("paperboy.toml");
        for bad in [
            "header_read_timeout_secs = 0",
            "keep_alive_timeout_secs = 0",
            "body_read_timeout_secs = 0",
            "max_connections = 0",
            "header_read_timeout_secs = 86400",
            "shutdown_grace_secs = 7200",
        ] {
            std::fs::write(&path, format!("[web]\n{bad}\n")).unwrap();
            let err = Settings::load_with(Some(&path), env_of(&[])).unwrap_err();
            assert!(err.to_string().contains("web"), "{bad}: {err}");
        }
        let err = Settings::load_with(None, env_of(&[("PAPERBOY_ADMIN_BIND", "127.0.0.1:8080")]))
            .unwrap_err();
        assert!(err.to_string().contains("admin_bind"), "{err}");
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

    /// Loads `text` as the config file and returns the error it gives.
    fn file_error_of(text: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("paperboy.toml");
        std::fs::write(&path, text).unwrap();
        Settings::load_with(Some(&path), env_of(&[]))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn config_errors_name_the_line_and_key_and_never_a_secret() {
        let key = "k3y-0123456789abcdef0123456789abcdef";
        for (text, line, name, secret) in [
            (
                "bind = \"0.0.0.0:1\"\nsmtp_url = \"smtp://alice:hunter2@relay:587\n",
                2,
                "smtp_url",
                "hunter2",
            ),
            (
                &format!("secret_key = \"{key}\"\nsecret_key = \"{key}\"\n"),
                2,
                "secret_key",
                key,
            ),
            (
                "secret_key = 123456789123\n",
                1,
                "secret_key",
                "123456789123",
            ),
            (
                "database_url = [\"postgres://app:s3cret@db/pb\"]\n",
                1,
                "database_url",
                "s3cret",
            ),
            (
                "log = \"info\"\nsmtp_urll = \"smtp://bob:pa55word@relay\"\n",
                2,
                "smtp_urll",
                "pa55word",
            ),
            (
                "smtp_url = 'smtp://carol:0pen-sesame@relay' x\n",
                1,
                "smtp_url",
                "0pen-sesame",
            ),
        ] {
            let e = file_error_of(text);
            assert!(e.contains(&format!("line {line}")), "{e}");
            assert!(e.contains(name), "{e}");
            assert!(!e.contains(secret), "{secret} leaked: {e}");
            assert!(!e.contains("smtp://"), "{e}");
        }
        // A setting that is no secret keeps toml's explanation.
        let e = file_error_of("[web]\nmax_body_bytes = \"big\"\n");
        assert!(e.contains("line 2, key max_body_bytes"), "{e}");
        assert!(e.contains("wrong type"), "{e}");
    }

    #[test]
    fn sqlite_urls_with_a_login_are_refused_without_showing_it() {
        for url in [
            "sqlite://user:pass@/tmp/x.db",
            "sqlite://user@data/x.db",
            "sqlite://:pass@x.db?mode=rwc",
        ] {
            let e = Settings::load_with(None, env_of(&[("PAPERBOY_DATABASE_URL", url)]))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("database_url") && e.contains("no user name"),
                "{e}"
            );
            assert!(
                !e.contains(":pass") && !e.contains("user@") && !e.contains("user:"),
                "{e}"
            );
        }
        for url in [
            "sqlite://data/paperboy.db",
            "sqlite:///home/a@b/x.db",
            "sqlite:x.db",
        ] {
            assert!(
                Settings::load_with(None, env_of(&[("PAPERBOY_DATABASE_URL", url)])).is_ok(),
                "{url}"
            );
        }
    }

    #[test]
    fn secrets_never_print() {
        let s = Settings::load_with(
            None,
            env_of(&[
                ("PAPERBOY_SMTP_URL", "smtp://user:hunter2@mail:587"),
                (
                    "PAPERBOY_SECRET_KEY",
                    "k3y-0123456789abcdef0123456789abcdef",
                ),
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
