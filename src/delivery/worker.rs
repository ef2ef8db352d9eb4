//! The delivery worker: claims due deliveries from the outbox with a lease, checks that the
//! reader may still be mailed, renders the stored digest, sends it (with a cap on
//! concurrent sends and on messages per second) and records how it went. 4xx, timeouts and
//! dropped connections are retried with capped exponential backoff and jitter until the
//! delivery is too old; 5xx bounces and suppresses the reader; a refused login or TLS
//! stops the worker with the queue intact.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use anyhow::Context;
use chrono::{Duration, Utc};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

use super::mailer::{Mailer, SmtpClass};
use crate::config::DeliverySettings;
use crate::digest;
use crate::domain::SubscriberStatus;
use crate::domain::token::Links;
use crate::store::{Claimed, DigestRecord, Outcome, Store, StoredEntry, Subscriber};

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
        match outcome {
            Outcome::Sent(_) => self.sent += 1,
            Outcome::Retry { .. } | Outcome::Released => self.retry += 1,
            Outcome::Failed(_) => self.failed += 1,
            Outcome::Bounced(_) => self.bounced += 1,
            Outcome::Suppressed(_) => self.suppressed += 1,
        }
    }
}

/// A delivery's outcome on its way to the recorder, with the send slot it frees.
type Done = (Claimed, Outcome, Option<OwnedSemaphorePermit>);

/// How many rounds of concurrent sends one claim covers.
const ROUND_SENDS: usize = 4;

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
            match self.round(Some(&stop)).await {
                Ok((_, 0)) => {}
                Ok(_) => continue,
                Err(e) if e.downcast_ref::<Stopped>().is_some() => {
                    tracing::error!(error = %format!("{e:#}"), "DELIVERY STOPPED: fix the SMTP settings and restart; the queue is kept");
                    return Err(e);
                }
                Err(e) => tracing::error!(error = %format!("{e:#}"), "delivery round failed"),
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

    /// Delivers everything due now, round after round, until nothing is due.
    pub async fn drain(&self) -> anyhow::Result<DrainReport> {
        let mut total = DrainReport::default();
        loop {
            let (report, claimed) = self.round(None).await?;
            total.sent += report.sent;
            total.retry += report.retry;
            total.failed += report.failed;
            total.bounced += report.bounced;
            total.suppressed += report.suppressed;
            if claimed == 0 {
                return Ok(total);
            }
        }
    }

    /// One claim and its sends. Returns the outcomes and how many were claimed.
    ///
    /// The round's readers, digests and papers are read in a few queries, and every write
    /// (leases, outcomes) is made from this loop, one at a time; the send tasks only
    /// render and talk to the relay, so the sends of a round never queue for the
    /// database.
    async fn round(
        &self,
        stop: Option<&watch::Receiver<bool>>,
    ) -> anyhow::Result<(DrainReport, usize)> {
        // A few times what can be sent at once, so the round's reads and the wait for its
        // slowest send are shared by many messages; each waits for a free slot only as
        // long as a few sends take, far inside its lease.
        let batch = self.settings.concurrency.max(1) * ROUND_SENDS;
        let lease = Duration::seconds(i64::try_from(self.settings.lease_secs).unwrap_or(300));
        let claimed = self
            .store
            .claim_deliveries(&self.owner, batch, lease, Utc::now())
            .await
            .context("claiming deliveries")?;
        let n = claimed.len();
        let mut report = DrainReport::default();
        if n == 0 {
            return Ok((report, 0));
        }
        let mut prepared = match self.prepare(&claimed).await {
            Ok(prepared) => prepared,
            Err(e) => {
                // The database failed us: every claimed delivery tries again later.
                let reason = format!("{e:#}");
                self.retry_all(&claimed, &reason, &mut report).await;
                return Ok((report, n));
            }
        };
        // Only while the leases are still ours: a delivery another worker took over after
        // our lease ran out is theirs to send.
        let ids: Vec<i64> = claimed.iter().map(|c| c.id).collect();
        let held = match self
            .store
            .renew_leases(&ids, &self.owner, Utc::now() + lease)
            .await
        {
            Ok(held) => held,
            Err(e) => {
                let reason = format!("renewing the leases: {e}");
                self.retry_all(&claimed, &reason, &mut report).await;
                return Ok((report, n));
            }
        };
        // Outcomes are written by a recorder of their own, a few per transaction, while
        // this loop goes on handing messages to the relay. A send's slot is freed only once
        // its outcome is written, so a crash can repeat at most `concurrency` messages.
        let (outcomes, mut queue) = tokio::sync::mpsc::unbounded_channel::<Done>();
        let recorder = {
            let me = self.clone();
            tokio::spawn(async move {
                let mut batch = Vec::new();
                while queue.recv_many(&mut batch, 64).await > 0 {
                    let (done, slots): (Vec<(Claimed, Outcome)>, Vec<_>) = batch
                        .drain(..)
                        .map(|(c, outcome, slot)| ((c, outcome), slot))
                        .unzip();
                    me.finish_all(&done).await;
                    // Written: these sends' slots are free for the next messages.
                    drop(slots);
                }
            })
        };
        // An outcome decided here, without a send.
        let note = |c: &Claimed, outcome: Outcome, report: &mut DrainReport| {
            report.count(&outcome);
            let _ = outcomes.send((c.clone(), outcome, None));
        };
        let mut tasks = JoinSet::new();
        let mut fatal: Option<String> = None;
        for c in claimed {
            let stopping = stop.is_some_and(|s| *s.borrow());
            if stopping || fatal.is_some() || !held.contains(&c.id) {
                // Not attempted: back to the queue as it was (or already another's).
                note(&c, Outcome::Released, &mut report);
                continue;
            }
            let ready = match prepared.remove(&c.id) {
                Some(Ok(ready)) => ready,
                Some(Err(outcome)) => {
                    note(&c, outcome, &mut report);
                    continue;
                }
                None => {
                    let outcome = self.retry_or_fail(&c, "not prepared".into());
                    note(&c, outcome, &mut report);
                    continue;
                }
            };
            let permit = self
                .sends
                .clone()
                .acquire_owned()
                .await
                .context("send slots closed")?;
            self.rate.until_ready().await;
            let me = self.clone();
            let recorder = outcomes.clone();
            tasks.spawn(async move {
                // Run in a task of its own, so that a bug that panics fails this delivery
                // and not the round.
                let inner = me.clone();
                let claimed = c.clone();
                let outcome =
                    match tokio::spawn(async move { inner.send(&claimed, ready).await }).await {
                        Ok(outcome) => outcome,
                        Err(e) => Ok(Outcome::Failed(format!("internal error: {e}"))),
                    };
                let (outcome, stop) = match outcome {
                    Ok(outcome) => (outcome, None),
                    Err(reason) => (Outcome::Released, Some(reason)),
                };
                // The slot goes with the outcome and is freed once it is written.
                let _ = recorder.send((c, outcome.clone(), Some(permit)));
                (outcome, stop)
            });
            // Collect finished sends as we go so a fatal error stops further claims.
            while let Some(done) = tasks.try_join_next() {
                let (outcome, stop) = done.context("a send task panicked")?;
                report.count(&outcome);
                if stop.is_some() {
                    fatal = stop;
                }
            }
        }
        while let Some(done) = tasks.join_next().await {
            let (outcome, stop) = done.context("a send task panicked")?;
            report.count(&outcome);
            if stop.is_some() {
                fatal = stop;
            }
        }
        // Every outcome of the round is written before the round ends.
        drop(outcomes);
        if let Err(e) = recorder.await {
            tracing::error!(error = %e, "the delivery recorder panicked; those deliveries are retried after their lease");
        }
        if let Some(reason) = fatal {
            return Err(Stopped(reason).into());
        }
        Ok((report, n))
    }

    /// Reads what the claimed deliveries need, in a few queries, and decides for each
    /// whether it may be sent: the reader must still exist and be active (suppression is
    /// checked here, as the delivery is claimed). The outcome instead of a send otherwise.
    async fn prepare(
        &self,
        claimed: &[Claimed],
    ) -> anyhow::Result<HashMap<i64, Result<Ready, Outcome>>> {
        let reader_ids: Vec<i64> = claimed.iter().map(|c| c.subscriber_id).collect();
        let digest_ids: Vec<i64> = claimed.iter().map(|c| c.digest_id).collect();
        let mut readers: HashMap<i64, Subscriber> = self
            .store
            .subscribers_by_ids(&reader_ids)
            .await
            .context("reading the readers")?
            .into_iter()
            .map(|s| (s.id, s))
            .collect();
        let mut digests: HashMap<i64, (DigestRecord, Vec<StoredEntry>)> = self
            .store
            .digests_for_sending(&digest_ids)
            .await
            .context("reading the digests")?
            .into_iter()
            .map(|(d, entries)| (d.id, (d, entries)))
            .collect();
        let mut prepared = HashMap::new();
        for c in claimed {
            let ready = match readers.get(&c.subscriber_id) {
                None => Err(Outcome::Suppressed("the reader was erased".into())),
                Some(s) if s.status != SubscriberStatus::Active => {
                    Err(Outcome::Suppressed(format!("the reader is {}", s.status)))
                }
                Some(_) => match digests.remove(&c.digest_id) {
                    None => Err(self.retry_or_fail(c, "the digest is gone".into())),
                    Some((digest, entries)) => Ok(Ready {
                        // A reader appears once per round: one delivery each.
                        subscriber: readers.remove(&c.subscriber_id).ok_or_else(|| {
                            anyhow::anyhow!("reader {} twice in one round", c.subscriber_id)
                        })?,
                        digest,
                        entries,
                    }),
                },
            };
            prepared.insert(c.id, ready);
        }
        Ok(prepared)
    }

    /// Puts every claimed delivery back to try again later (or gives it up when too old),
    /// in one transaction: the round could not go on.
    async fn retry_all(&self, claimed: &[Claimed], reason: &str, report: &mut DrainReport) {
        let done: Vec<(Claimed, Outcome)> = claimed
            .iter()
            .map(|c| (c.clone(), self.retry_or_fail(c, reason.to_string())))
            .collect();
        for (_, outcome) in &done {
            report.count(outcome);
        }
        self.finish_all(&done).await;
    }

    /// Records outcomes, in one transaction. A database that fails here is logged, not
    /// fatal to the round: those deliveries keep their lease and are claimed again when
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
                        error = %e,
                        outcome = ?outcome,
                        "could not record a delivery; it is retried after its lease"
                    );
                }
            }
        }
    }

    /// Renders and sends one delivery. `Err` carries the reason the whole worker must stop.
    async fn send(&self, c: &Claimed, ready: Ready) -> Result<Outcome, String> {
        let subscriber = &ready.subscriber;
        let view = digest::view_of_record(&ready.digest, &ready.entries, subscriber, &self.links);
        let email = match digest::email(&self.links, subscriber, &view, &c.message_id) {
            Ok(email) => email,
            Err(e) => return Ok(self.retry_or_fail(c, format!("{e:#}"))),
        };
        let sent = self.mailer.send(&email).await;
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
                tracing::info!(delivery = c.id, to = %subscriber.email.masked(), "digest sent");
                Ok(Outcome::Sent(match sent {
                    super::Sent::Relay(reply) => reply,
                    super::Sent::File(path) => path.display().to_string(),
                }))
            }
            Err(e) => match e.class() {
                SmtpClass::Fatal => Err(e.to_string()),
                SmtpClass::Permanent => {
                    tracing::warn!(delivery = c.id, to = %subscriber.email.masked(), error = %e, "hard bounce: reader suppressed");
                    Ok(Outcome::Bounced(e.to_string()))
                }
                SmtpClass::Transient => Ok(self.retry_or_fail(c, e.to_string())),
                SmtpClass::Unsendable => {
                    tracing::warn!(delivery = c.id, error = %e, "this message cannot be sent");
                    Ok(Outcome::Failed(e.to_string()))
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
