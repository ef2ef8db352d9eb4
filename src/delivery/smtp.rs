//! SMTP connections to the relay. For `smtp://` (STARTTLS or, locally, none) paperboy keeps
//! its own small pool of lettre connections over sockets with `TCP_NODELAY`: lettre writes
//! a message and its final `.` in two writes, and with Nagle's algorithm the second waits
//! for the relay's delayed ACK (40 ms on Linux) on every message, which capped delivery at
//! a tenth of what the relay takes. `smtps://` (TLS from the first byte) uses lettre's own
//! pooled transport.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::{ClientId, Extension};
use lettre::transport::smtp::response::Response;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// How long one connection attempt, one NOOP check or one whole message exchange may
/// take, unless the SMTP URL says otherwise (`?timeout=SECS`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle connections kept for reuse.
const MAX_IDLE: usize = 16;
/// A connection idle longer than this is checked with NOOP before it is used again.
const CHECK_AFTER: Duration = Duration::from_secs(5);

/// Why a send failed, in the terms the mailer classifies.
#[derive(Debug)]
pub enum SendError {
    Smtp(lettre::transport::smtp::Error),
    /// Opening the connection failed: greeting, STARTTLS or login.
    Setup(lettre::transport::smtp::Error),
    /// No answer in time: the connection is dropped and the message may be retried.
    Timeout,
    Io(std::io::Error),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Smtp(e) => write!(f, "{e}"),
            SendError::Setup(e) => write!(f, "connecting: {e}"),
            SendError::Timeout => f.write_str("the relay did not answer in time"),
            SendError::Io(e) => write!(f, "{e}"),
        }
    }
}

pub enum Sender {
    /// Our pool over `TCP_NODELAY` sockets, with STARTTLS when `tls` is set.
    Direct(DirectPool),
    /// lettre's pooled transport (implicit TLS).
    Lettre(AsyncSmtpTransport<Tokio1Executor>),
}

impl Sender {
    pub async fn send(&self, message: Message) -> Result<Response, SendError> {
        match self {
            Sender::Lettre(t) => t.send(message).await.map_err(SendError::Smtp),
            Sender::Direct(pool) => {
                let envelope = message.envelope().clone();
                pool.send(&envelope, &message.formatted()).await
            }
        }
    }
}

impl Sender {
    /// Whether the relay announced SMTPUTF8 (RFC 6531) in its last greeting: `None` until
    /// a connection has been opened, and always for `smtps://`, whose pooled transport
    /// does not show the greeting.
    pub fn smtputf8(&self) -> Option<bool> {
        match self {
            Sender::Lettre(_) => None,
            Sender::Direct(pool) => match pool.smtputf8.load(Ordering::Relaxed) {
                UTF8_YES => Some(true),
                UTF8_NO => Some(false),
                _ => None,
            },
        }
    }

    /// Opens a connection to learn what the relay announces (see [`Sender::smtputf8`]);
    /// the connection is kept for the first send. A relay that is away leaves it unknown.
    pub async fn greet(&self) {
        if let Sender::Direct(pool) = self
            && let Ok(conn) = pool.connect().await
        {
            pool.put_idle(conn);
        }
    }
}

const UTF8_NO: u8 = 1;
const UTF8_YES: u8 = 2;

pub struct DirectPool {
    host: String,
    port: u16,
    tls: Option<TlsParameters>,
    credentials: Option<Credentials>,
    hello: ClientId,
    timeout: Duration,
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
    /// What the last greeting said of SMTPUTF8: 0 not seen yet, [`UTF8_NO`], [`UTF8_YES`].
    smtputf8: AtomicU8,
}

impl DirectPool {
    pub fn new(
        host: String,
        port: u16,
        tls: Option<TlsParameters>,
        credentials: Option<Credentials>,
        timeout: Duration,
    ) -> Self {
        DirectPool {
            host,
            port,
            tls,
            credentials,
            hello: ClientId::default(),
            timeout,
            idle: Mutex::new(Vec::new()),
            smtputf8: AtomicU8::new(0),
        }
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, SendError> {
        let tcp = tokio::time::timeout(
            self.timeout,
            tokio::net::TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| SendError::Timeout)?
        .map_err(SendError::Io)?;
        tcp.set_nodelay(true).map_err(SendError::Io)?;
        let setup = async {
            let mut conn =
                AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello).await?;
            if let Some(tls) = &self.tls {
                conn.starttls(tls.clone(), &self.hello).await?;
            }
            if let Some(credentials) = &self.credentials {
                conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                    .await?;
            }
            Ok::<_, lettre::transport::smtp::Error>(conn)
        };
        let conn = tokio::time::timeout(self.timeout, setup)
            .await
            .map_err(|_| SendError::Timeout)?
            .map_err(SendError::Setup)?;
        let utf8 = conn.server_info().supports_feature(Extension::SmtpUtfEight);
        self.smtputf8
            .store(if utf8 { UTF8_YES } else { UTF8_NO }, Ordering::Relaxed);
        Ok(conn)
    }

    /// An idle connection that still works: one used a moment ago as it is, an older one
    /// after a NOOP (relays close idle connections). A NOOP left unanswered is bounded by
    /// the timeout like every other exchange: a relay that froze must not hold the send
    /// (and its lease) forever.
    async fn take_idle(&self) -> Option<AsyncSmtpConnection> {
        loop {
            let (mut conn, since) = self.idle.lock().ok().and_then(|mut idle| idle.pop())?;
            if conn.has_broken() {
                continue;
            }
            if since.elapsed() < CHECK_AFTER {
                return Some(conn);
            }
            match tokio::time::timeout(self.timeout, conn.test_connected()).await {
                Ok(true) => return Some(conn),
                // Closed by the relay: the next idle one may still be open.
                Ok(false) => continue,
                // The relay does not answer: the other idle connections would wait as
                // long, so a new connection (with its own timeout) is tried instead.
                Err(_) => return None,
            }
        }
    }

    fn put_idle(&self, conn: AsyncSmtpConnection) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE
        {
            idle.push((conn, Instant::now()));
        }
    }

    /// One message, over an idle connection when there is one, else a new one. A failure
    /// is never retried here: once the message is under way the relay may have taken it,
    /// and the delivery's retry (with the same Message-ID) is the only second attempt.
    async fn send(&self, envelope: &Envelope, bytes: &[u8]) -> Result<Response, SendError> {
        let mut conn = match self.take_idle().await {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        match tokio::time::timeout(self.timeout, conn.send(envelope, bytes)).await {
            Ok(Ok(response)) => {
                self.put_idle(conn);
                Ok(response)
            }
            Ok(Err(e)) => Err(SendError::Smtp(e)),
            Err(_) => Err(SendError::Timeout),
        }
    }
}
