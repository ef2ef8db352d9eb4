//! The HTTP/1 listener: accepts connections up to a cap, closes those that trickle a
//! request head or sit idle too long, and on shutdown stops accepting, closes idle
//! connections at once and gives the requests in progress a bounded grace.
//!
//! axum's own `serve` has no deadlines and waits on shutdown for every connection to end,
//! which an idle keep-alive client decides; this loop drives hyper itself and keeps, per
//! connection, which phase it is in (opened, reading a head, handling a request, idle)
//! and since when.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::ConnectInfo;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::config::WebSettings;

/// The deadlines and the cap of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// From a connection's opening, or from the first byte of a later request, to the end
    /// of that request's head.
    pub header_read_timeout: Duration,
    /// From the end of an answer to the first byte of the next request.
    pub keep_alive_timeout: Duration,
    /// From the end of a request's head to the end of its body.
    pub body_read_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// On shutdown, how long the requests in progress may still take.
    pub shutdown_grace: Duration,
}

/// Descriptors kept for everything but client connections (the database pool, the mail
/// relay, feed fetches, log files), at most half of the limit.
const RESERVED_DESCRIPTORS: u64 = 128;

impl Limits {
    pub fn from_settings(web: &WebSettings) -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(web.header_read_timeout_secs),
            keep_alive_timeout: Duration::from_secs(web.keep_alive_timeout_secs),
            body_read_timeout: Duration::from_secs(web.body_read_timeout_secs),
            max_connections: web.max_connections.max(1),
            shutdown_grace: Duration::from_secs(web.shutdown_grace_secs),
        }
    }

    /// The same limits with the cap lowered, when needed, so that `listeners` listeners at
    /// their caps fit in `descriptors` open files with the rest of the process.
    pub fn fit_descriptors(self, descriptors: u64, listeners: u64) -> Limits {
        let reserve = RESERVED_DESCRIPTORS.min(descriptors / 2);
        let room = descriptors.saturating_sub(reserve) / listeners.max(1);
        let room = usize::try_from(room).unwrap_or(usize::MAX).max(1);
        Limits {
            max_connections: self.max_connections.min(room),
            ..self
        }
    }
}

/// Raises the soft limit on open files to the hard one, and returns the limit in force.
pub fn raise_descriptor_limit() -> io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

/// Serves `router` on `listener` until `stop` turns true (or its sender goes away), then
/// returns once every connection has closed: idle ones at once, busy ones after their
/// answer or at the end of the grace.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let open = Arc::new(Connections::default());
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stopped(&mut stop) => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of descriptors, most likely: give the open connections time to end.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if open.count() >= limits.max_connections {
            open.warn_at_cap(limits.max_connections);
            if !open.evict_longest_waiting() {
                refuse(stream);
                continue;
            }
        }
        let _ = stream.set_nodelay(true);
        let tracker = Arc::new(Tracker::new());
        let registered = open.register(tracker.clone());
        tokio::spawn(connection(
            stream,
            peer,
            router.clone(),
            tracker,
            registered,
            limits,
            stop.clone(),
        ));
    }
    drop(listener);
    let left = open.count();
    if left > 0 {
        tracing::info!(
            connections = left,
            "closing idle connections; requests in progress get {} s",
            limits.shutdown_grace.as_secs()
        );
    }
    // Each connection ends itself within the grace; the extra second covers the last
    // answer's write.
    let all_closed = open.all_closed();
    if tokio::time::timeout(limits.shutdown_grace + Duration::from_secs(1), all_closed)
        .await
        .is_err()
    {
        tracing::warn!(
            connections = open.count(),
            "connections still open after the grace"
        );
    }
}

/// Resolves once `stop` is true or can no longer change.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Counts a connection closed on the client, by why.
fn closed(reason: &str) {
    crate::metrics::global()
        .connections_closed
        .with_label_values(&[reason])
        .inc();
}

/// At the cap with every connection busy: a 503 written without waiting, then closed.
fn refuse(stream: TcpStream) {
    tracing::debug!("connection refused: every connection is busy");
    closed("refused");
    let _ = stream.try_write(
        b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nretry-after: 1\r\n\
          connection: close\r\n\r\n",
    );
}

/// One connection, until it ends, misses a deadline, is displaced, or the grace ends.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    tracker: Arc<Tracker>,
    _registered: Registered,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let io = TokioIo::new(Watched {
        stream,
        tracker: tracker.clone(),
    });
    let service = {
        let tracker = tracker.clone();
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let in_flight = InFlight::start(tracker.clone(), !request.body().is_end_stream());
            let mut router = router.clone();
            let tracker = tracker.clone();
            let mut request = request.map(|body| Body::new(Arriving { body, tracker }));
            request.extensions_mut().insert(ConnectInfo(peer));
            async move {
                let Ok(response) = tower_service::Service::call(&mut router, request).await;
                Ok::<_, Infallible>(response.map(|body| {
                    Body::new(Tracked {
                        body,
                        _in_flight: in_flight,
                    })
                }))
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The deadlines are kept below, per phase.
    builder.header_read_timeout(None);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut grace_ends: Option<Instant> = None;
    loop {
        let phase = tracker.state();
        if phase.evicted {
            tracing::debug!(%peer, "connection displaced by a newer one at the cap");
            closed("displaced");
            return;
        }
        if grace_ends.is_some() && phase.busy == 0 {
            return;
        }
        let deadline = match (phase.deadline(&limits), grace_ends) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if deadline.is_some_and(|d| d <= Instant::now()) {
            let reason = if grace_ends.is_some_and(|g| g <= Instant::now()) {
                "shutdown_grace"
            } else {
                phase.deadline_name()
            };
            tracing::debug!(%peer, reason, "connection closed at its deadline");
            closed(reason);
            return;
        }
        let far = Instant::now() + Duration::from_secs(86_400);
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            () = tracker.wake.notified() => {}
            () = tokio::time::sleep_until(deadline.unwrap_or(far)), if deadline.is_some() => {}
            () = stopped(&mut stop), if grace_ends.is_none() => {
                // No keep-alive after the answer in progress; an idle connection goes now.
                conn.as_mut().graceful_shutdown();
                grace_ends = Some(Instant::now() + limits.shutdown_grace);
            }
        }
    }
}

/// Where a connection is, and since when.
#[derive(Debug, Clone, Copy)]
struct Phase {
    /// Requests being handled or answered (their bodies still being sent).
    busy: usize,
    /// Since when the body of the request in progress has been awaited, until it has all
    /// arrived (or the handler dropped it).
    body_since: Option<Instant>,
    /// No request yet on this connection.
    fresh: bool,
    /// Bytes of a request head have arrived since the last answer.
    reading_head: bool,
    /// When the connection opened, the last answer ended, or the head began.
    since: Instant,
    /// Displaced by a newer connection at the cap.
    evicted: bool,
}

impl Phase {
    /// Which deadline [`Phase::deadline`] gives, for logs and metrics.
    fn deadline_name(&self) -> &'static str {
        if self.busy > 0 {
            "body_timeout"
        } else if self.fresh || self.reading_head {
            "head_timeout"
        } else {
            "keep_alive_timeout"
        }
    }

    /// When the connection is closed unless something happens first; none while a
    /// request is handled with its body all there.
    fn deadline(&self, limits: &Limits) -> Option<Instant> {
        if self.busy > 0 {
            self.body_since
                .map(|since| since + limits.body_read_timeout)
        } else if self.fresh || self.reading_head {
            Some(self.since + limits.header_read_timeout)
        } else {
            Some(self.since + limits.keep_alive_timeout)
        }
    }
}

struct Tracker {
    phase: Mutex<Phase>,
    /// Woken on every change of phase, so the connection's deadline is worked out again.
    wake: Notify,
}

impl Tracker {
    fn new() -> Tracker {
        Tracker {
            phase: Mutex::new(Phase {
                busy: 0,
                body_since: None,
                fresh: true,
                reading_head: false,
                since: Instant::now(),
                evicted: false,
            }),
            wake: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Phase> {
        // The phase is plain data, valid whatever a panicking holder left half done.
        self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn state(&self) -> Phase {
        *self.lock()
    }

    fn change(&self, f: impl FnOnce(&mut Phase)) {
        f(&mut self.lock());
        self.wake.notify_one();
    }

    fn bytes_read(&self) {
        let mut phase = self.lock();
        if phase.busy == 0 && !phase.fresh && !phase.reading_head {
            phase.reading_head = true;
            phase.since = Instant::now();
            drop(phase);
            self.wake.notify_one();
        }
    }

    fn request_started(&self, with_body: bool) {
        self.change(|p| {
            p.busy += 1;
            p.fresh = false;
            p.reading_head = false;
            p.body_since = with_body.then(Instant::now);
        });
    }

    fn body_arrived(&self) {
        let mut phase = self.lock();
        if phase.body_since.is_some() {
            phase.body_since = None;
            drop(phase);
            self.wake.notify_one();
        }
    }

    fn request_finished(&self) {
        self.change(|p| {
            p.busy = p.busy.saturating_sub(1);
            p.body_since = None;
            if p.busy == 0 {
                p.since = Instant::now();
            }
        });
    }

    /// Since when the connection has waited without a request in progress.
    fn waiting_since(&self) -> Option<Instant> {
        let phase = self.lock();
        (phase.busy == 0 && !phase.evicted).then_some(phase.since)
    }

    fn evict(&self) {
        self.change(|p| p.evicted = true);
    }
}

/// A request from the call of the router until its answer's body is dropped (sent, or
/// abandoned with the connection).
struct InFlight(Arc<Tracker>);

impl InFlight {
    fn start(tracker: Arc<Tracker>, with_body: bool) -> InFlight {
        tracker.request_started(with_body);
        InFlight(tracker)
    }
}

/// A request's body, telling the tracker when it has all arrived or is no longer read.
struct Arriving {
    body: Incoming,
    tracker: Arc<Tracker>,
}

impl HttpBody for Arriving {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) || this.body.is_end_stream() {
            this.tracker.body_arrived();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Arriving {
    fn drop(&mut self) {
        self.tracker.body_arrived();
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// An answer's body that keeps its request counted as in flight until it is dropped.
struct Tracked {
    body: Body,
    _in_flight: InFlight,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The socket, telling the tracker when the bytes of a new request head arrive.
struct Watched {
    stream: TcpStream,
    tracker: Arc<Tracker>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.tracker.bytes_read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// The open connections of one listener.
#[derive(Default)]
struct Connections {
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Tracker>>>,
    /// Woken when the last connection closes.
    emptied: Notify,
    /// When the cap was last reported, so a flood logs once a minute, not per connection.
    cap_reported: Mutex<Option<Instant>>,
}

impl Connections {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<Tracker>>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn count(&self) -> usize {
        self.lock().len()
    }

    fn warn_at_cap(&self, cap: usize) {
        let mut reported = self.cap_reported.lock().unwrap_or_else(|e| e.into_inner());
        if reported.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
            *reported = Some(Instant::now());
            tracing::warn!(
                max_connections = cap,
                "the connection cap is reached: new connections displace the longest-waiting \
                 idle ones (reported once a minute)"
            );
        }
    }

    fn register(self: &Arc<Self>, tracker: Arc<Tracker>) -> Registered {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, tracker);
        Registered {
            connections: self.clone(),
            id,
        }
    }

    /// Displaces the connection that has waited longest without a request in progress;
    /// false when every connection is busy.
    fn evict_longest_waiting(&self) -> bool {
        let victim = self
            .lock()
            .values()
            .filter_map(|t| t.waiting_since().map(|since| (since, t.clone())))
            .min_by_key(|(since, _)| *since)
            .map(|(_, t)| t);
        match victim {
            Some(tracker) => {
                tracker.evict();
                true
            }
            None => false,
        }
    }

    async fn all_closed(&self) {
        loop {
            let emptied = self.emptied.notified();
            if self.count() == 0 {
                return;
            }
            emptied.await;
        }
    }
}

/// A connection's place in [`Connections`], given up when its task ends.
struct Registered {
    connections: Arc<Connections>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut open = self.connections.lock();
        open.remove(&self.id);
        if open.is_empty() {
            drop(open);
            self.connections.emptied.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(75),
            body_read_timeout: Duration::from_secs(60),
            max_connections: 1024,
            shutdown_grace: Duration::from_secs(10),
        }
    }

    #[test]
    fn the_cap_is_lowered_to_fit_the_descriptor_limit() {
        assert_eq!(limits().fit_descriptors(1_048_576, 1).max_connections, 1024);
        assert_eq!(limits().fit_descriptors(256, 1).max_connections, 128);
        assert_eq!(limits().fit_descriptors(256, 2).max_connections, 64);
        assert_eq!(limits().fit_descriptors(100, 1).max_connections, 50);
        assert_eq!(limits().fit_descriptors(0, 1).max_connections, 1);
    }

    #[tokio::test]
    async fn each_phase_has_its_deadline() {
        let l = limits();
        let t = Tracker::new();
        let opened = t.state().since;
        assert_eq!(t.state().deadline(&l), Some(opened + l.header_read_timeout));
        t.request_started(true);
        let body = t.state();
        assert_eq!(
            body.deadline(&l),
            Some(body.body_since.unwrap() + l.body_read_timeout)
        );
        t.body_arrived();
        assert_eq!(t.state().deadline(&l), None);
        t.request_finished();
        let idle = t.state();
        assert_eq!(idle.deadline(&l), Some(idle.since + l.keep_alive_timeout));
        t.bytes_read();
        let head = t.state();
        assert!(head.reading_head);
        assert_eq!(head.deadline(&l), Some(head.since + l.header_read_timeout));
    }

    #[tokio::test]
    async fn at_the_cap_the_longest_waiting_idle_connection_is_displaced() {
        let open = Arc::new(Connections::default());
        let busy = Arc::new(Tracker::new());
        busy.request_started(false);
        let _a = open.register(busy.clone());
        let old = Arc::new(Tracker::new());
        let _b = open.register(old.clone());
        tokio::time::sleep(Duration::from_millis(5)).await;
        let new = Arc::new(Tracker::new());
        let _c = open.register(new.clone());
        assert!(open.evict_longest_waiting());
        assert!(old.state().evicted);
        assert!(!busy.state().evicted && !new.state().evicted);
        assert!(open.evict_longest_waiting());
        assert!(new.state().evicted);
        assert!(!open.evict_longest_waiting(), "the busy one stays");
    }
}
