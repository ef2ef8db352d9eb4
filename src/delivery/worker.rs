//! The delivery worker: claims due deliveries from the outbox with a lease, checks that the
//! reader may still be mailed, renders the stored digest, sends it (with a cap on
//! concurrent sends and on messages per second) and records how it went. 4xx, timeouts and
//! dropped connections are retried with capped exponential backoff and jitter until the
//! delivery is too old; 5xx bounces and suppresses the reader; a refused login or TLS
//! stops the worker with the queue intact.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU32;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::time::Duration as StdDuration;

use anyhow::Context;
use chrono::{Duration, Utc};
use futures_util::FutureExt;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

use lettre::Message;

use super::mailer::{Mailer, SmtpClass};
use crate::config::DeliverySettings;
use crate::domain::token::Links;
use crate::domain::{Subscriber, SubscriberStatus, Verp};
use crate::email::{self, Email};
use crate::error::chain;
use crate::store::{Claimed, DigestEntry, DigestRecord, Outcome, Store, StoredEntry, StoredPaper};

/// What a drain delivered.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct DrainReport {
    pub sent: usize,
    pub retry: usize,
    pub failed: usize,
    pub bounced: usize,
    pub suppressed: usize,
}

impl DrainReport {
    fn add(&mut self, other: &DrainReport) {
        self.sent += other.sent;
        self.retry += other.retry;
        self.failed += other.failed;
        self.bounced += other.bounced;
        self.suppressed += other.suppressed;
    }

    fn count(&mut self, outcome: &Outcome) {
        let label = match outcome {
            Outcome::Sent(_) => "sent",
            Outcome::Retry { .. } => "retry",
            Outcome::Released => "released",
            Outcome::Failed(_) => "failed",
            Outcome::Bounced(_) => "bounced",
            Outcome::Suppressed(_) => "suppressed",
        };
        crate::metrics::global()
            .deliveries
            .with_label_values(&[label])
            .inc();
        self.tally(outcome);
    }

    /// Counts `outcome` in the report only.
    fn tally(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Sent(_) => self.sent += 1,
            Outcome::Retry { .. } | Outcome::Released => self.retry += 1,
            Outcome::Failed(_) => self.failed += 1,
            Outcome::Bounced(_) => self.bounced += 1,
            Outcome::Suppressed(_) => self.suppressed += 1,
        }
    }
}

/// In words: `12 sent, 1 to retry, 0 failed, 0 bounced, 0 suppressed`.
impl std::fmt::Display for DrainReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} sent, {} to retry, {} failed, {} bounced, {} suppressed",
            self.sent, self.retry, self.failed, self.bounced, self.suppressed
        )
    }
}

/// A delivery's outcome on its way to the recorder, with the send slot it frees.
type Done = (Claimed, Outcome, Option<OwnedSemaphorePermit>);

/// Claimed deliveries with what each is sent from (or its outcome without a send).
type Batch = (Vec<Claimed>, HashMap<i64, Result<Ready, Outcome>>);

/// What a send task returns: its outcome, and the reason to stop everything if any.
type Finished = Result<(Outcome, Option<String>), tokio::task::JoinError>;

/// What a panic said, when it said it as text.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a send panicked")
}

/// Whether to stop claiming and sending: the worker was told to stop, or the relay
/// refused us for good.
#[derive(Clone)]
struct Halt {
    stop: Option<watch::Receiver<bool>>,
    halted: Arc<AtomicBool>,
}

impl Halt {
    fn now(&self) -> bool {
        self.stop.as_ref().is_some_and(|s| *s.borrow()) || self.halted.load(AtomicOrdering::SeqCst)
    }

    /// The relay refused us for good: nothing more is claimed or sent.
    fn raise(&self) {
        self.halted.store(true, AtomicOrdering::SeqCst);
    }
}

/// Where an outcome goes to be written: the recorder's queue.
type Recorder = tokio::sync::mpsc::UnboundedSender<Done>;

/// One drain's settings: how many deliveries a claim takes, for how long, and when to
/// stop.
struct Drain {
    batch: usize,
    lease: Duration,
    halt: Halt,
}

/// The sender's state: the send tasks in flight, what they did, and the reason to stop
/// everything if the relay refused us for good.
struct Sends {
    tasks: JoinSet<(Outcome, Option<String>)>,
    report: DrainReport,
    fatal: Option<String>,
    outcomes: Recorder,
}

impl Sends {
    /// An outcome decided without a send.
    fn note(&mut self, c: &Claimed, outcome: Outcome) {
        self.report.count(&outcome);
        let _ = self.outcomes.send((c.clone(), outcome, None));
    }

    /// Counts a finished send; a relay that refused us for good halts the claims.
    fn collect(&mut self, done: Finished, halt: &Halt) {
        let (outcome, stop) = match done {
            Ok(done) => done,
            // Not expected: the task catches a panic of its attempt and records it.
            Err(e) => (Outcome::Failed(format!("internal error: {e}")), None),
        };
        self.report.count(&outcome);
        if stop.is_some() {
            self.fatal = stop;
            halt.raise();
        }
    }
}

/// How many papers a worker keeps between batches before reading afresh.
const PAPERS_KEPT: usize = 20_000;

/// How many rounds of concurrent sends one claim (a batch) covers.
const ROUND_SENDS: usize = 4;

/// How often a drain tells its progress at info.
const PROGRESS_EVERY: StdDuration = StdDuration::from_secs(5);

/// What a claimed delivery is rendered from.
struct Ready {
    subscriber: Subscriber,
    digest: DigestRecord,
    entries: Vec<StoredEntry>,
}

/// The relay cannot be used until the operator acts (login or TLS refused).
#[derive(Debug, thiserror::Error)]
#[error("delivery stopped: {0}")]
pub struct Stopped(pub String);

/// Told after each delivery attempt is recorded (the CLI's progress bar).
pub type Progress = Arc<dyn Fn() + Send + Sync>;

#[derive(Clone)]
pub struct Worker {
    progress: Option<Progress>,
    store: Store,
    mailer: Mailer,
    links: Links,
    verp: Verp,
    settings: DeliverySettings,
    owner: String,
    sends: Arc<Semaphore>,
    rate: Arc<DefaultDirectRateLimiter>,
}

impl Worker {
    pub fn new(store: Store, mailer: Mailer, links: Links, settings: DeliverySettings) -> Self {
        let owner = format!(
            "{}-{}-{:x}",
            hostname(),
            std::process::id(),
            getrandom::u64().unwrap_or_default() & 0xffff_ffff
        );
        let per_second = NonZeroU32::new(settings.messages_per_second).unwrap_or(NonZeroU32::MIN);
        Worker {
            progress: None,
            sends: Arc::new(Semaphore::new(settings.concurrency.max(1))),
            rate: Arc::new(RateLimiter::direct(Quota::per_second(per_second))),
            verp: Verp::new(links.keys().clone(), mailer.bounce_domain()),
            store,
            mailer,
            links,
            settings,
            owner,
        }
    }

    /// Calls `progress` after each recorded attempt.
    pub fn with_progress(mut self, progress: Progress) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Delivers until `stop` turns true, then lets the sends in flight finish.
    pub async fn run(self, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        tracing::info!(owner = %self.owner, mail = %self.mailer.describe(), "delivery worker started");
        loop {
            if *stop.borrow() {
                break;
            }
            match self.deliver(Some(&stop)).await {
                Ok(_) => {}
                Err(e) if e.downcast_ref::<Stopped>().is_some() => {
                    tracing::error!(error = %chain(e.as_ref()), "DELIVERY STOPPED: fix the SMTP settings and restart; the queue is kept");
                    return Err(e);
                }
                Err(e) => {
                    tracing::error!(error = %chain(e.as_ref()), "delivery failed; trying again after the poll interval")
                }
            }
            let pause = StdDuration::from_millis(self.settings.poll_ms);
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.changed() => {}
            }
        }
        tracing::info!("delivery worker stopped");
        Ok(())
    }

    /// Delivers everything due now, until nothing is due.
    pub async fn drain(&self) -> anyhow::Result<DrainReport> {
        Ok(self.deliver(None).await?.0)
    }

    /// Claims and sends until nothing is due (or `stop` turns true). Returns the outcomes
    /// and how many deliveries were claimed.
    ///
    /// Claims are a pipeline of three stages: the feeder claims a batch and reads its
    /// subscribers, digests and papers (a few queries per batch) while the sender sends
    /// the batch before it, so the relay never waits for the database between batches;
    /// the recorder writes outcomes, a few per transaction, while the sends go on. Every
    /// write (claims, leases, outcomes) is made outside the send tasks, which only render
    /// and talk to the relay.
    async fn deliver(
        &self,
        stop: Option<&watch::Receiver<bool>>,
    ) -> anyhow::Result<(DrainReport, usize)> {
        let drain = Drain {
            // A few times what can be sent at once, so a batch's reads are shared by many
            // messages; a batch waits for free slots only as long as a few sends take, far
            // inside its lease, and its leases are renewed as its sends begin.
            batch: self.settings.concurrency.max(1) * ROUND_SENDS,
            lease: Duration::seconds(i64::try_from(self.settings.lease_secs).unwrap_or(300)),
            halt: Halt {
                stop: stop.cloned(),
                halted: Arc::new(AtomicBool::new(false)),
            },
        };
        // One batch is prepared ahead of the one being sent.
        let (ready_tx, ready_rx) = tokio::sync::mpsc::channel::<Batch>(1);
        let (outcomes, queue) = tokio::sync::mpsc::unbounded_channel::<Done>();
        let recorder = self.spawn_recorder(queue);
        let (fed, (mut report, fatal)) = tokio::join!(
            self.feed(&drain, ready_tx),
            self.send_batches(&drain, ready_rx, outcomes)
        );
        // Every outcome is written before this returns (the sender dropped the last
        // handle on the recorder's queue).
        if let Err(e) = recorder.await {
            tracing::error!(error = %e, "the delivery recorder panicked; those deliveries are retried after their lease");
        }
        if let Some(reason) = fatal {
            return Err(Stopped(reason).into());
        }
        let (claimed, fed_report) = fed?;
        report.add(&fed_report);
        Ok((report, claimed))
    }

    /// The recorder: writes outcomes as they come, a few per transaction. A send's slot
    /// travels with its outcome and is freed only once the outcome is written, so a crash
    /// can repeat at most `concurrency` messages.
    fn spawn_recorder(
        &self,
        mut queue: tokio::sync::mpsc::UnboundedReceiver<Done>,
    ) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut batch = Vec::new();
            // What was recorded so far, told at info every few seconds (each message is
            // a debug line).
            let mut so_far = DrainReport::default();
            let mut told = std::time::Instant::now();
            while queue.recv_many(&mut batch, 64).await > 0 {
                let (done, slots): (Vec<(Claimed, Outcome)>, Vec<_>) = batch
                    .drain(..)
                    .map(|(c, outcome, slot)| ((c, outcome), slot))
                    .unzip();
                me.finish_all(&done).await;
                // Written: these sends' slots are free for the next messages.
                drop(slots);
                for (_, outcome) in &done {
                    so_far.tally(outcome);
                }
                if told.elapsed() >= PROGRESS_EVERY {
                    told = std::time::Instant::now();
                    tracing::info!("delivering: {so_far} so far");
                }
            }
        })
    }

    /// The feeder: claims batches and prepares each for the sender until nothing is due
    /// or the drain halts. Returns how many deliveries it claimed and the outcomes it
    /// decided itself (a batch whose reads failed, one the sender would no longer take).
    async fn feed(
        &self,
        drain: &Drain,
        ready_tx: tokio::sync::mpsc::Sender<Batch>,
    ) -> anyhow::Result<(usize, DrainReport)> {
        let mut claimed_total = 0;
        let mut report = DrainReport::default();
        let mut papers = HashMap::new();
        while !drain.halt.now() {
            let claimed = self
                .store
                .claim_deliveries(&self.owner, drain.batch, drain.lease, Utc::now())
                .await
                .context("claiming deliveries")?;
            if claimed.is_empty() {
                break;
            }
            claimed_total += claimed.len();
            match self.prepare(&claimed, &mut papers).await {
                Ok(prepared) => {
                    if let Err(refused) = ready_tx.send((claimed, prepared)).await {
                        // The sending side has stopped: back to the queue.
                        let (claimed, _) = refused.0;
                        self.release_all(&claimed, &mut report).await;
                        break;
                    }
                }
                Err(e) => {
                    // The database failed us: these deliveries try again later.
                    let reason = chain(e.as_ref()).to_string();
                    self.retry_all(&claimed, &reason, &mut report).await;
                }
            }
        }
        // Dropping the sending end here tells the sender that no batch follows.
        Ok((claimed_total, report))
    }

    /// The sender: sends each prepared batch whose leases are still ours, at most
    /// `concurrency` messages at once. Returns its outcomes and, when the relay refused us
    /// for good, the reason.
    async fn send_batches(
        &self,
        drain: &Drain,
        mut ready_rx: tokio::sync::mpsc::Receiver<Batch>,
        outcomes: Recorder,
    ) -> (DrainReport, Option<String>) {
        let mut sends = Sends {
            tasks: JoinSet::new(),
            report: DrainReport::default(),
            fatal: None,
            outcomes,
        };
        while let Some((claimed, mut prepared)) = ready_rx.recv().await {
            let Some(held) = self.renew_leases(drain, &claimed, &mut sends.report).await else {
                continue;
            };
            for c in claimed {
                if drain.halt.now() || !held.contains(&c.id) {
                    // Not attempted: back to the queue as it was (or already another's).
                    sends.note(&c, Outcome::Released);
                    continue;
                }
                match prepared.remove(&c.id) {
                    Some(Ok(ready)) => self.start_send(drain, &mut sends, c, ready).await,
                    Some(Err(outcome)) => sends.note(&c, outcome),
                    None => {
                        let outcome = self.retry_or_fail(&c, "not prepared".into());
                        sends.note(&c, outcome);
                    }
                }
            }
        }
        while let Some(done) = sends.tasks.join_next().await {
            sends.collect(done, &drain.halt);
        }
        (sends.report, sends.fatal)
    }

    /// Renews the leases of a batch about to be sent: only deliveries whose lease is still
    /// ours are sent (one another worker took over after our lease ran out is theirs).
    /// `None` when the renewal failed and the whole batch was put back to retry.
    async fn renew_leases(
        &self,
        drain: &Drain,
        claimed: &[Claimed],
        report: &mut DrainReport,
    ) -> Option<HashSet<i64>> {
        if drain.halt.now() {
            return Some(HashSet::new());
        }
        let ids: Vec<i64> = claimed.iter().map(|c| c.id).collect();
        match self
            .store
            .renew_leases(&ids, &self.owner, Utc::now() + drain.lease)
            .await
        {
            Ok(held) => Some(held),
            Err(e) => {
                let reason = format!("renewing the leases: {}", chain(&e));
                self.retry_all(claimed, &reason, report).await;
                None
            }
        }
    }

    /// Starts one delivery's send task. Each message is rendered before it takes a send
    /// slot, so a slot is held only while the relay and the outcome's write take; at most
    /// twice as many messages as slots are rendered at a time.
    async fn start_send(&self, drain: &Drain, sends: &mut Sends, c: Claimed, ready: Ready) {
        while sends.tasks.len() >= 2 * self.settings.concurrency.max(1) {
            if let Some(done) = sends.tasks.join_next().await {
                sends.collect(done, &drain.halt);
            }
        }
        let me = self.clone();
        let recorder = sends.outcomes.clone();
        let halt = drain.halt.clone();
        sends.tasks.spawn(async move {
            // A bug that panics fails this delivery, recorded as such, and not the others.
            let (outcome, permit) = match AssertUnwindSafe(me.attempt(&c, ready, &halt))
                .catch_unwind()
                .await
            {
                Ok(done) => done,
                Err(panic) => (
                    Ok(Outcome::Failed(format!(
                        "internal error: {}",
                        panic_message(panic.as_ref())
                    ))),
                    None,
                ),
            };
            let (outcome, stop) = match outcome {
                Ok(outcome) => (outcome, None),
                Err(reason) => (Outcome::Released, Some(reason)),
            };
            // The slot goes with the outcome and is freed once it is written.
            let _ = recorder.send((c, outcome.clone(), permit));
            (outcome, stop)
        });
        // Collect finished sends as we go, so a fatal error stops further sends.
        while let Some(done) = sends.tasks.try_join_next() {
            sends.collect(done, &drain.halt);
        }
    }

    /// Renders one delivery, waits for a send slot and the rate limit, and sends it.
    /// Returns the outcome (`Err` with the reason the whole worker must stop) and the slot.
    async fn attempt(
        &self,
        c: &Claimed,
        ready: Ready,
        halt: &Halt,
    ) -> (Result<Outcome, String>, Option<OwnedSemaphorePermit>) {
        let (email, message) = match self.render(c, ready) {
            Ok(rendered) => rendered,
            Err(outcome) => return (Ok(outcome), None),
        };
        let Ok(permit) = self.sends.clone().acquire_owned().await else {
            return (Ok(Outcome::Released), None);
        };
        if halt.now() {
            // Stopped while this one waited for its slot.
            return (Ok(Outcome::Released), Some(permit));
        }
        self.rate.until_ready().await;
        (self.transmit(c, &email, message).await, Some(permit))
    }

    /// Reads what the claimed deliveries need, in a few queries, and decides for each
    /// whether it may be sent ([`Worker::ready`]). `papers` keeps the papers read so far:
    /// a day's digests share a few thousand.
    async fn prepare(
        &self,
        claimed: &[Claimed],
        papers: &mut HashMap<i64, StoredPaper>,
    ) -> anyhow::Result<HashMap<i64, Result<Ready, Outcome>>> {
        let subscriber_ids: Vec<i64> = claimed.iter().map(|c| c.subscriber_id).collect();
        let digest_ids: Vec<i64> = claimed.iter().map(|c| c.digest_id).collect();
        let subscribers: HashMap<i64, Subscriber> = self
            .store
            .subscribers_by_ids(&subscriber_ids)
            .await
            .context("reading the readers")?
            .into_iter()
            .map(|s| (s.id, s))
            .collect();
        let mut digests: HashMap<i64, (DigestRecord, Vec<DigestEntry>)> = self
            .store
            .digests_for_sending(&digest_ids)
            .await
            .context("reading the digests")?
            .into_iter()
            .map(|(d, entries)| (d.id, (d, entries)))
            .collect();
        let mut needed: Vec<i64> = digests
            .values()
            .flat_map(|(_, entries)| entries.iter().map(|e| e.paper_id))
            .collect();
        needed.sort_unstable();
        needed.dedup();
        let mut missing: Vec<i64> = needed
            .iter()
            .copied()
            .filter(|id| !papers.contains_key(id))
            .collect();
        if papers.len() + missing.len() > PAPERS_KEPT {
            papers.clear();
            missing = needed;
        }
        if !missing.is_empty() {
            let read = self
                .store
                .papers_by_ids(&missing)
                .await
                .context("reading the papers")?;
            papers.extend(read.into_iter().map(|p| (p.id, p)));
        }
        Ok(claimed
            .iter()
            .map(|c| (c.id, self.ready(c, &subscribers, &mut digests, papers)))
            .collect())
    }

    /// What one claimed delivery is sent from, or its outcome without a send: the
    /// subscriber must still exist and be active (suppression is checked here, as the
    /// delivery is claimed), and its digest and every paper of it must still be there.
    fn ready(
        &self,
        c: &Claimed,
        subscribers: &HashMap<i64, Subscriber>,
        digests: &mut HashMap<i64, (DigestRecord, Vec<DigestEntry>)>,
        papers: &HashMap<i64, StoredPaper>,
    ) -> Result<Ready, Outcome> {
        let subscriber = match subscribers.get(&c.subscriber_id) {
            None => return Err(Outcome::Suppressed("the reader was erased".into())),
            Some(s) if s.status != SubscriberStatus::Active => {
                return Err(Outcome::Suppressed(format!("the reader is {}", s.status)));
            }
            Some(s) => s,
        };
        let Some((digest, listed)) = digests.remove(&c.digest_id) else {
            return Err(self.retry_or_fail(c, "the digest is gone".into()));
        };
        let entries: Option<Vec<StoredEntry>> = listed
            .into_iter()
            .map(|e| {
                papers.get(&e.paper_id).map(|p| StoredEntry {
                    paper: p.clone(),
                    score: e.score,
                    explanation: e.explanation,
                    suggested: e.suggested,
                })
            })
            .collect();
        match entries {
            Some(entries) => Ok(Ready {
                subscriber: subscriber.clone(),
                digest,
                entries,
            }),
            None => Err(self.retry_or_fail(c, "a paper of the digest is gone".into())),
        }
    }

    /// Puts every claimed delivery back to try again later (or gives it up when too old),
    /// in one transaction: its batch could not go on.
    async fn retry_all(&self, claimed: &[Claimed], reason: &str, report: &mut DrainReport) {
        self.settle_all(
            claimed,
            |c| self.retry_or_fail(c, reason.to_string()),
            report,
        )
        .await;
    }

    /// Puts claimed deliveries back in the queue as they were, not attempted.
    async fn release_all(&self, claimed: &[Claimed], report: &mut DrainReport) {
        self.settle_all(claimed, |_| Outcome::Released, report)
            .await;
    }

    /// Records `outcome` of each claimed delivery, unsent, in one transaction.
    async fn settle_all(
        &self,
        claimed: &[Claimed],
        outcome: impl Fn(&Claimed) -> Outcome,
        report: &mut DrainReport,
    ) {
        let done: Vec<(Claimed, Outcome)> =
            claimed.iter().map(|c| (c.clone(), outcome(c))).collect();
        for (_, outcome) in &done {
            report.count(outcome);
        }
        self.finish_all(&done).await;
    }

    /// Records outcomes, in one transaction. A database that fails here is logged, not
    /// fatal to the drain: those deliveries keep their lease and are claimed again when
    /// it runs out.
    async fn finish_all(&self, done: &[(Claimed, Outcome)]) {
        if let Some(progress) = &self.progress {
            for _ in done {
                progress();
            }
        }
        let outcomes: Vec<(i64, &Outcome)> = done.iter().map(|(c, o)| (c.id, o)).collect();
        match self
            .store
            .finish_deliveries(&outcomes, &self.owner, Utc::now())
            .await
        {
            Ok(held) => {
                for ((c, _), held) in done.iter().zip(held) {
                    if !held {
                        tracing::warn!(
                            delivery = c.id,
                            "lease lost before the outcome was recorded"
                        );
                    }
                }
            }
            Err(e) => {
                for (c, outcome) in done {
                    tracing::error!(
                        delivery = c.id,
                        error = %chain(&e),
                        outcome = %outcome,
                        "could not record a delivery; it is retried after its lease"
                    );
                }
            }
        }
    }

    /// Renders one delivery: its email and the MIME message, or the outcome when it cannot
    /// be rendered.
    fn render(&self, c: &Claimed, ready: Ready) -> Result<(Email, Message), Outcome> {
        let subscriber = &ready.subscriber;
        let view =
            email::digest::view_of_record(&ready.digest, &ready.entries, subscriber, &self.links);
        let email = email::digest::email(&self.links, subscriber, &view, &c.message_id)
            .map_err(|e| self.retry_or_fail(c, chain(&e).to_string()))?;
        // The VERP return path names this delivery, so a bounce that comes back later is
        // matched to it without guessing.
        let return_path = self.verp.address(c.id);
        match self.mailer.message_returning_to(&email, Some(&return_path)) {
            Ok(message) => Ok((email, message)),
            Err(e) => {
                tracing::warn!(delivery = c.id, error = %chain(&e), "this message cannot be sent");
                Err(Outcome::Failed(chain(&e).to_string()))
            }
        }
    }

    /// Sends one rendered delivery. `Err` carries the reason the whole worker must stop.
    async fn transmit(
        &self,
        c: &Claimed,
        email: &Email,
        message: Message,
    ) -> Result<Outcome, String> {
        let subscriber = &email.to;
        let sent = self.mailer.send_message(email, message).await;
        let class = match &sent {
            Ok(_) => "2xx",
            Err(super::MailError::Smtp { code, .. }) => match code.map(|c| c / 100) {
                Some(4) => "4xx",
                Some(5) => "5xx",
                _ => "none",
            },
            Err(_) => "none",
        };
        crate::metrics::global()
            .smtp_replies
            .with_label_values(&[class])
            .inc();
        match sent {
            Ok(sent) => {
                tracing::debug!(delivery = c.id, to = %subscriber.masked(), "digest sent");
                Ok(Outcome::Sent(match sent {
                    super::Sent::Relay(reply) => reply,
                    super::Sent::File(path) => path.display().to_string(),
                }))
            }
            Err(e) => match e.class() {
                SmtpClass::Fatal => Err(chain(&e).to_string()),
                SmtpClass::Permanent => {
                    tracing::warn!(delivery = c.id, to = %subscriber.masked(), error = %chain(&e), "hard bounce: reader suppressed");
                    Ok(Outcome::Bounced(chain(&e).to_string()))
                }
                SmtpClass::Transient => Ok(self.retry_or_fail(c, chain(&e).to_string())),
                SmtpClass::Unsendable => {
                    tracing::warn!(delivery = c.id, error = %chain(&e), "this message cannot be sent");
                    Ok(Outcome::Failed(chain(&e).to_string()))
                }
            },
        }
    }

    /// The next attempt after a temporary failure, or failed when the delivery is too old.
    fn retry_or_fail(&self, c: &Claimed, error: String) -> Outcome {
        let now = Utc::now();
        let age = now - c.created_at;
        if age > Duration::hours(i64::try_from(self.settings.give_up_after_hours).unwrap_or(48)) {
            tracing::warn!(delivery = c.id, error = %error, "giving up after too many failures");
            return Outcome::Failed(error);
        }
        let at = now + backoff(&self.settings, c.attempts);
        tracing::info!(delivery = c.id, attempts = c.attempts, at = %at, error = %error, "will retry");
        Outcome::Retry { error, at }
    }
}

/// `base · 2^(attempts−1)`, capped, times a random factor in [0.75, 1.25).
pub fn backoff(s: &DeliverySettings, attempts: i32) -> Duration {
    let exp = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(0);
    let raw = s
        .retry_base_secs
        .saturating_mul(1u64 << exp)
        .min(s.retry_max_secs);
    let jitter = 0.75 + (getrandom::u64().unwrap_or(0) % 1000) as f64 / 2000.0;
    Duration::milliseconds((raw as f64 * 1000.0 * jitter) as i64)
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "paperboy".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_is_capped_and_jittered() {
        let s = DeliverySettings {
            retry_base_secs: 60,
            retry_max_secs: 3600,
            ..DeliverySettings::default()
        };
        for (attempts, base) in [(1, 60.0), (2, 120.0), (3, 240.0), (10, 3600.0)] {
            let got = backoff(&s, attempts).num_milliseconds() as f64 / 1000.0;
            assert!(got >= base * 0.75 && got < base * 1.25, "{attempts}: {got}");
        }
    }
}
