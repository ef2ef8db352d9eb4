//! The mailer: one interface over SMTP (any relay, with STARTTLS, implicit TLS or none
//! for a local relay) and a file outbox (`.eml` files) for instances without SMTP.
//! Messages carry a Message-ID that we choose, and bodies are base64 so that nothing a
//! feed or a reader wrote can form an SMTP command line.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lettre::address::{Address, Envelope};
use lettre::message::dkim::{
    DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm,
    DkimSigningKey,
};
use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::TlsParameters;
use lettre::{AsyncSmtpTransport, Message, Tokio1Executor};

use super::smtp::{DEFAULT_TIMEOUT, DirectPool, SendError, Sender};
use crate::config::Settings;
use crate::email::{Email, ListHeaders, MessageIds};

/// Why mail could not be sent. A variant that wraps another error keeps it as its source
/// and leaves it out of its own message: print it with [`crate::error::chain`].
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// A mail setting is wrong (sender, DKIM key, SMTP URL): nothing can be sent.
    #[error("mail settings: {problem}")]
    Config {
        problem: String,
        /// The library's error, when one refused the setting.
        #[source]
        source: Option<BoxError>,
    },
    /// This one message cannot be built.
    #[error("cannot build the message: {problem}")]
    Build {
        problem: String,
        /// The library's error, when one refused the message.
        #[source]
        source: Option<BoxError>,
    },
    #[error("SMTP: {message}")]
    Smtp {
        message: String,
        class: SmtpClass,
        /// The relay's reply code, when it replied.
        code: Option<u16>,
    },
    #[error("cannot write to the outbox")]
    Outbox(#[from] std::io::Error),
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What an SMTP failure means for the message and for the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpClass {
    /// 4xx, a timeout or a dropped connection: try again later.
    Transient,
    /// 5xx: the relay refuses this message or address for good.
    Permanent,
    /// Authentication refused, or TLS refused or broken: nothing can be sent until the
    /// operator fixes the set-up.
    Fatal,
    /// This one message cannot be sent (an address the relay cannot take, a message that
    /// does not build): it fails on its own, and nobody is blamed for a bounce.
    Unsendable,
}

impl SmtpClass {
    /// An error while sending one message.
    fn of(e: &lettre::transport::smtp::Error) -> SmtpClass {
        let code = e.status().map(u16::from);
        if e.is_tls() || matches!(code, Some(454 | 530 | 534 | 535 | 538)) {
            SmtpClass::Fatal
        } else if e.is_client() {
            SmtpClass::Unsendable
        } else if e.is_permanent() {
            SmtpClass::Permanent
        } else {
            SmtpClass::Transient
        }
    }

    /// An error while opening a connection (greeting, STARTTLS, login): a relay that will
    /// not do TLS or take the login stops everything; one that is busy or away is transient.
    fn of_setup(e: &lettre::transport::smtp::Error) -> SmtpClass {
        match SmtpClass::of(e) {
            SmtpClass::Unsendable => SmtpClass::Fatal,
            other => other,
        }
    }
}

impl MailError {
    /// A setting that is wrong, in our own words.
    pub fn config(problem: impl Into<String>) -> MailError {
        MailError::Config {
            problem: problem.into(),
            source: None,
        }
    }

    /// A setting that a library refused: `problem` names it, `source` says why.
    pub fn config_because(problem: impl Into<String>, source: impl Into<BoxError>) -> MailError {
        MailError::Config {
            problem: problem.into(),
            source: Some(source.into()),
        }
    }

    /// A message that cannot be built, in our own words.
    pub fn build(problem: impl Into<String>) -> MailError {
        MailError::Build {
            problem: problem.into(),
            source: None,
        }
    }

    /// A part of a message that a library refused: `problem` names it, `source` says why.
    pub fn build_because(problem: impl Into<String>, source: impl Into<BoxError>) -> MailError {
        MailError::Build {
            problem: problem.into(),
            source: Some(source.into()),
        }
    }

    /// How an error bears on retrying: building and outbox errors are transient (a full
    /// disk frees up), SMTP errors by their class, configuration errors fatal.
    pub fn class(&self) -> SmtpClass {
        match self {
            MailError::Smtp { class, .. } => *class,
            MailError::Config { .. } => SmtpClass::Fatal,
            MailError::Build { .. } => SmtpClass::Unsendable,
            MailError::Outbox(_) => SmtpClass::Transient,
        }
    }
}

/// Where a sent message went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// Accepted by the relay; its reply.
    Relay(String),
    /// Written to this file of the outbox.
    File(PathBuf),
}

#[derive(Clone)]
pub enum Mailer {
    Smtp {
        transport: Arc<Sender>,
        from: Mailbox,
        bounce_domain: String,
        relay: String,
        dkim: Option<Arc<Dkim>>,
    },
    Outbox {
        dir: PathBuf,
        from: Mailbox,
        bounce_domain: String,
        dkim: Option<Arc<Dkim>>,
    },
}

/// DKIM signing (RSA-SHA256, relaxed/relaxed): one configuration for mail with list
/// headers and one for mail without, so each signs exactly the headers it carries.
pub struct Dkim {
    plain: DkimConfig,
    listed: DkimConfig,
}

/// The headers every signature covers.
const SIGNED: [&str; 5] = ["From", "To", "Subject", "Date", "Message-ID"];
/// … and, on mail to readers, these too.
const SIGNED_LIST: [&str; 3] = ["List-Id", "List-Unsubscribe", "List-Unsubscribe-Post"];

impl Dkim {
    /// Reads an RSA private key (PEM, PKCS#1 or PKCS#8) for `selector._domainkey.domain`.
    pub fn load(path: &std::path::Path, selector: &str, domain: &str) -> Result<Dkim, MailError> {
        use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
        use rsa::pkcs8::DecodePrivateKey;
        use rsa::traits::PublicKeyParts;
        let pem = std::fs::read_to_string(path)
            .map_err(|e| MailError::config_because(format!("DKIM key {}", path.display()), e))?;
        let key = rsa::RsaPrivateKey::from_pkcs1_pem(&pem)
            .or_else(|_| rsa::RsaPrivateKey::from_pkcs8_pem(&pem))
            .map_err(|_| {
                MailError::config(format!(
                    "DKIM key {}: not an RSA private key in PEM (PKCS#1 or PKCS#8)",
                    path.display()
                ))
            })?;
        if key.size() * 8 < 2048 {
            return Err(MailError::config(format!(
                "DKIM key {}: {} bits; use at least 2048",
                path.display(),
                key.size() * 8
            )));
        }
        let pkcs1 = key
            .to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)
            .map_err(|e| MailError::config_because("DKIM key", e))?;
        let config = |headers: Vec<&'static str>| -> Result<DkimConfig, MailError> {
            let signing = DkimSigningKey::new(&pkcs1, DkimSigningAlgorithm::Rsa)
                .map_err(|e| MailError::config_because("DKIM key", e))?;
            Ok(DkimConfig::new(
                selector.to_string(),
                domain.to_string(),
                signing,
                headers
                    .into_iter()
                    .map(HeaderName::new_from_ascii_str)
                    .collect(),
                DkimCanonicalization {
                    header: DkimCanonicalizationType::Relaxed,
                    body: DkimCanonicalizationType::Relaxed,
                },
            ))
        };
        Ok(Dkim {
            plain: config(SIGNED.to_vec())?,
            listed: config(SIGNED.iter().chain(SIGNED_LIST.iter()).copied().collect())?,
        })
    }
}

impl Mailer {
    /// SMTP when `PAPERBOY_SMTP_URL` is set, else the outbox folder.
    pub fn from_settings(settings: &Settings) -> Result<Mailer, MailError> {
        let from: Mailbox = settings
            .from
            .parse()
            .map_err(|e| MailError::config_because(format!("from {:?}", settings.from), e))?;
        let dkim = match (
            &settings.dkim_key,
            &settings.dkim_selector,
            &settings.dkim_domain,
        ) {
            (Some(key), Some(selector), Some(domain)) => {
                Some(Arc::new(Dkim::load(key, selector, domain)?))
            }
            (None, None, None) => None,
            _ => {
                return Err(MailError::config(
                    "DKIM needs all of PAPERBOY_DKIM_KEY, PAPERBOY_DKIM_SELECTOR and PAPERBOY_DKIM_DOMAIN",
                ));
            }
        };
        let bounce_domain = settings
            .bounce_domain
            .clone()
            .unwrap_or_else(|| from.email.domain().to_string());
        let Some(url) = &settings.smtp_url else {
            return Ok(Mailer::Outbox {
                dir: settings.outbox_dir.clone(),
                from,
                bounce_domain,
                dkim,
            });
        };
        let (transport, relay) = smtp_transport(url.expose())?;
        let transport = Arc::new(transport);
        Ok(Mailer::Smtp {
            transport,
            from,
            bounce_domain,
            relay,
            dkim,
        })
    }

    /// Message-IDs on the sender's domain.
    pub fn message_ids(&self) -> MessageIds {
        MessageIds::new(self.from().email.domain())
    }

    fn dkim(&self) -> Option<&Dkim> {
        match self {
            Mailer::Smtp { dkim, .. } | Mailer::Outbox { dkim, .. } => dkim.as_deref(),
        }
    }

    /// The domain of VERP return paths: `bounce_domain`, else the From address's.
    pub fn bounce_domain(&self) -> &str {
        match self {
            Mailer::Smtp { bounce_domain, .. } | Mailer::Outbox { bounce_domain, .. } => {
                bounce_domain
            }
        }
    }

    fn from(&self) -> &Mailbox {
        match self {
            Mailer::Smtp { from, .. } | Mailer::Outbox { from, .. } => from,
        }
    }

    /// Whether mail can go to an address whose local part is not ASCII (`用户@example.org`):
    /// only through a relay that announced SMTPUTF8 when paperboy last connected (see
    /// [`Mailer::greet_relay`]). Unknown counts as no. The outbox folder takes any address.
    pub fn takes_utf8_local_parts(&self) -> bool {
        match self {
            Mailer::Smtp { transport, .. } => transport.smtputf8() == Some(true),
            Mailer::Outbox { .. } => true,
        }
    }

    /// Connects to the relay once, so that [`Mailer::takes_utf8_local_parts`] knows what
    /// it announces before the first send; nothing for the outbox.
    pub async fn greet_relay(&self) {
        if let Mailer::Smtp { transport, .. } = self {
            transport.greet().await;
        }
    }

    /// Where mail goes, for messages to the operator.
    pub fn describe(&self) -> String {
        match self {
            Mailer::Smtp { relay, .. } => format!("SMTP relay {relay}"),
            Mailer::Outbox { dir, .. } => format!("the outbox folder {}", dir.display()),
        }
    }

    #[tracing::instrument(skip_all, fields(to = %email.to.masked(), message_id = %email.message_id))]
    pub async fn send(&self, email: &Email) -> Result<Sent, MailError> {
        let message = self.message(email)?;
        self.send_message(email, message).await
    }

    /// Sends `message`, built from `email` by [`Mailer::message`].
    #[tracing::instrument(skip_all, fields(to = %email.to.masked(), message_id = %email.message_id))]
    pub async fn send_message(&self, email: &Email, message: Message) -> Result<Sent, MailError> {
        match self {
            Mailer::Smtp { transport, .. } => {
                let reply = transport.send(message).await.map_err(|e| MailError::Smtp {
                    message: e.to_string(),
                    code: match &e {
                        SendError::Smtp(e) | SendError::Setup(e) => e.status().map(u16::from),
                        SendError::Timeout | SendError::Io(_) => None,
                    },
                    class: match &e {
                        SendError::Smtp(e) => SmtpClass::of(e),
                        SendError::Setup(e) => SmtpClass::of_setup(e),
                        SendError::Timeout | SendError::Io(_) => SmtpClass::Transient,
                    },
                })?;
                let text: Vec<String> = reply.message().map(str::to_string).collect();
                Ok(Sent::Relay(format!("{} {}", reply.code(), text.join(" "))))
            }
            Mailer::Outbox { dir, .. } => {
                tokio::fs::create_dir_all(dir).await?;
                let safe: String = email
                    .message_id
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '.' {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect();
                let path = dir.join(format!("{safe}.eml"));
                let partial = dir.join(format!(".{safe}.eml.part"));
                // Written aside, then renamed: a reader of the folder never sees half a mail.
                tokio::fs::write(&partial, message.formatted()).await?;
                tokio::fs::rename(&partial, &path).await?;
                Ok(Sent::File(path))
            }
        }
    }

    /// The message exactly as it would be sent, headers and bodies (signed when DKIM is
    /// configured): for previews, benchmarks and checks.
    pub fn formatted(&self, email: &Email) -> Result<Vec<u8>, MailError> {
        Ok(self.message(email)?.formatted())
    }

    /// The MIME message of `email` (signed when DKIM is configured), to hand to
    /// [`Mailer::send_message`] later.
    pub fn message(&self, email: &Email) -> Result<Message, MailError> {
        self.message_returning_to(email, None)
    }

    /// As [`Mailer::message`], with `return_path` as the envelope sender (a delivery's VERP
    /// address) instead of the From address; the From header stays as it is.
    pub fn message_returning_to(
        &self,
        email: &Email,
        return_path: Option<&str>,
    ) -> Result<Message, MailError> {
        // The domain in A-labels, in `To` and so in `RCPT TO`: a relay needs SMTPUTF8
        // only for a local part that is not ASCII.
        let to: Mailbox = email
            .to
            .to_ascii_domain()
            .parse()
            .map_err(|e| MailError::build_because("recipient", e))?;
        let part = |content_type: ContentType, body: &str| {
            // Base64 never fails and never leaves a line that starts with a dot.
            Body::new_with_encoding(body.to_string(), ContentTransferEncoding::Base64)
                .map(|b| SinglePart::builder().header(content_type).body(b))
                .map_err(|_| MailError::build("cannot encode the body"))
        };
        let mut builder = Message::builder()
            .from(self.from().clone())
            .to(to.clone())
            .subject(email.subject.clone())
            .message_id(Some(format!("<{}>", email.message_id)))
            .date_now();
        if let Some(path) = return_path {
            let sender: Address = path
                .parse()
                .map_err(|e| MailError::build_because("return path", e))?;
            let envelope = Envelope::new(Some(sender), vec![to.email.clone()])
                .map_err(|e| MailError::build_because("envelope", e))?;
            builder = builder.envelope(envelope);
        }
        if let Some(list) = &email.list {
            for (name, value) in list_headers(list)? {
                builder = builder.raw_header(HeaderValue::new(
                    HeaderName::new_from_ascii_str(name),
                    value,
                ));
            }
        }
        let mut message = builder
            .multipart(
                MultiPart::alternative()
                    .singlepart(part(ContentType::TEXT_PLAIN, &email.text)?)
                    .singlepart(part(ContentType::TEXT_HTML, &email.html)?),
            )
            .map_err(|e| MailError::build_because("envelope", e))?;
        if let Some(dkim) = self.dkim() {
            message.sign(if email.list.is_some() {
                &dkim.listed
            } else {
                &dkim.plain
            });
        }
        Ok(message)
    }
}

/// The List-* headers, refusing any value that could break out of its header line.
fn list_headers(list: &ListHeaders) -> Result<Vec<(&'static str, String)>, MailError> {
    let clean = |v: &str| {
        if v.chars().all(|c| c.is_ascii() && !c.is_ascii_control()) {
            Ok(())
        } else {
            Err(MailError::build(format!(
                "header value {v:?} is not printable ASCII"
            )))
        }
    };
    clean(&list.id)?;
    clean(&list.unsubscribe_url)?;
    if let Some(f) = &list.feedback_id {
        clean(f)?;
    }
    if list.unsubscribe_url.contains(['<', '>', ' ']) {
        return Err(MailError::build("unsubscribe URL holds <, > or a space"));
    }
    let mut headers = vec![
        ("List-Id", list.id.clone()),
        ("List-Unsubscribe", format!("<{}>", list.unsubscribe_url)),
        (
            "List-Unsubscribe-Post",
            "List-Unsubscribe=One-Click".to_string(),
        ),
    ];
    if list.bulk {
        headers.push(("Precedence", "bulk".into()));
        headers.push(("Auto-Submitted", "auto-generated".into()));
    }
    if let Some(f) = &list.feedback_id {
        headers.push(("Feedback-ID", f.clone()));
    }
    Ok(headers)
}

/// `smtp://user:pass@host:587` (STARTTLS required), `smtps://host:465` (TLS from the
/// start), `smtp://host:25?tls=none` (a local relay, no encryption). `timeout=SECS`
/// bounds each connection attempt and each message exchange (30 s by default): a relay
/// that stops answering costs a retry, not a stuck worker.
fn smtp_transport(raw: &str) -> Result<(Sender, String), MailError> {
    let url = url::Url::parse(raw).map_err(|e| MailError::config_because("SMTP URL", e))?;
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| MailError::config("SMTP URL has no host"))?
        .to_string();
    let tls = url
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.into_owned());
    let implicit = match (url.scheme(), tls.as_deref()) {
        ("smtps", _) => true,
        ("smtp", None | Some("required") | Some("none")) => false,
        (scheme, tls) => {
            return Err(MailError::config(format!(
                "SMTP URL: scheme {scheme:?} with tls={tls:?} is not understood; use smtp://, smtps:// or smtp://…?tls=none"
            )));
        }
    };
    let timeout = match url.query_pairs().find(|(k, _)| k == "timeout") {
        None => DEFAULT_TIMEOUT,
        Some((_, v)) => match v.parse::<u64>() {
            Ok(secs @ 1..=3600) => Duration::from_secs(secs),
            _ => {
                return Err(MailError::config(format!(
                    "SMTP URL: timeout={v:?} is not a number of seconds between 1 and 3600"
                )));
            }
        },
    };
    let plain = tls.as_deref() == Some("none");
    let default_port = if implicit {
        465
    } else if plain {
        25
    } else {
        587
    };
    let port = url.port().unwrap_or(default_port);
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !url.username().is_empty() && plain && !loopback {
        return Err(MailError::config(format!(
            "SMTP relay {host}: refusing to send a password without TLS to a remote host; drop tls=none"
        )));
    }
    let credentials = (!url.username().is_empty()).then(|| {
        Credentials::new(
            percent_decode(url.username()),
            percent_decode(url.password().unwrap_or_default()),
        )
    });
    let relay = format!("{host}:{port}");
    if implicit {
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::relay(&host)
            .map_err(|e| MailError::config_because(format!("SMTP relay {host}"), e))?
            .port(port)
            .timeout(Some(timeout));
        if let Some(c) = credentials {
            builder = builder.credentials(c);
        }
        return Ok((Sender::Lettre(builder.build()), relay));
    }
    let tls = if plain {
        None
    } else {
        Some(
            TlsParameters::new(host.clone())
                .map_err(|e| MailError::config_because(format!("SMTP relay {host}"), e))?,
        )
    };
    Ok((
        Sender::Direct(DirectPool::new(host, port, tls, credentials, timeout)),
        relay,
    ))
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    // The pooled transport needs a runtime to be built and dropped in.
    #[tokio::test]
    async fn smtp_urls_choose_the_encryption() {
        assert_eq!(
            smtp_transport("smtp://u:p@mail.example.org").unwrap().1,
            "mail.example.org:587"
        );
        assert_eq!(
            smtp_transport("smtps://mail.example.org").unwrap().1,
            "mail.example.org:465"
        );
        assert_eq!(
            smtp_transport("smtp://127.0.0.1:2525?tls=none").unwrap().1,
            "127.0.0.1:2525"
        );
        assert!(smtp_transport("http://mail.example.org").is_err());
        assert!(smtp_transport("smtp://mail.example.org?tls=maybe").is_err());
        assert!(smtp_transport("smtp://u:p@mail.example.org?tls=none").is_err());
        assert!(smtp_transport("smtp://u:p@127.0.0.1:25?tls=none").is_ok());
        assert!(smtp_transport("smtp://127.0.0.1:25?tls=none&timeout=5").is_ok());
        assert!(smtp_transport("smtp://127.0.0.1:25?tls=none&timeout=0").is_err());
        assert!(smtp_transport("smtp://127.0.0.1:25?timeout=soon").is_err());
    }
}
