//! The delivery worker: claims due outbox rows under a lease, renders and sends them per
//! channel, and records the outcome in the same store — delivered, retry later (back-off
//! with jitter), failed with the last error, or skipped with the reason it was held back.
//!
//! Guarantees, given an outbox that leases rows atomically:
//! - a row recorded as delivered is never claimed again, so never sent twice;
//! - a send starts only when it can end (the channel's time-out plus [`LEASE_MARGIN`])
//!   before the row's lease does, and only the lease holder records the outcome, so two
//!   workers — of one server or of several sharing the database — never send one row at
//!   the same time;
//! - a row claimed by a worker that died becomes claimable when its lease runs out, so a
//!   crash or restart loses nothing (the price is at-least-once: a crash, or a time-out,
//!   between the receiver taking the request and the store's write sends that one row
//!   again — under the same key: PagerDuty and Alertmanager collapse it, webhooks carry
//!   it as `X-Modelwatch-Delivery`);
//! - an attempt is a send: a claim counts none, rows that cannot be sent before their
//!   lease ends are given back unsent, and a worker that dies records nothing, so a row
//!   is failed only after `max_attempts` real sends (issue 15);
//! - a worker leases per channel only what that channel can send within one lease (each
//!   send taking its whole time-out), and claims for a channel again only once its
//!   previous rows are done: a backlog of thousands waits in the outbox, not in leases;
//! - channels are delivered concurrently and every call has a timeout, so a dead or slow
//!   receiver delays only its own channel;
//! - a firing notification is not sent when, by the time it is due, its alert has been
//!   acknowledged or resolved, or a silence now mutes it.
//! - what is sent is the stored alert as it stood at the row's event (its facts, see
//!   [`crate::render`]); a row that cannot be rendered is failed with the reason, never
//!   sent with other content.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use modelwatch_core::alerting::{
    muting_silence, Alert, AlertId, AlertStatus, NotificationEvent, Silence,
};
use modelwatch_core::Timestamp;
use modelwatch_store::alerts::{ClaimChannels, OutboxPayload};

use crate::channels::Sender;
use crate::config::{ChannelConfig, NotifyConfig};
use crate::error::DeliveryError;
use crate::message::AlertMessage;
use crate::render::{alert_as_of_event, RenderError};
use crate::schedule::{after_failure, plan, Outcome, RateLimiter};

/// One claimed outbox row, as the worker needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: i64,
    pub alert_id: AlertId,
    pub channel: String,
    pub event: NotificationEvent,
    /// What the alert said at the event.
    pub payload: OutboxPayload,
    pub dedup_key: String,
    /// Sends recorded so far, before this claim (a claim is not an attempt).
    pub attempts: u32,
    pub created_at: Timestamp,
    pub lease_until: Option<Timestamp>,
}

#[derive(Debug, thiserror::Error)]
#[error("outbox: {0}")]
pub struct OutboxError(pub Box<dyn std::error::Error + Send + Sync>);

/// What the worker needs from the store.
#[async_trait]
pub trait Outbox: Send + Sync + fmt::Debug {
    /// Leases up to `limit` due pending rows of `channels` to `owner` until
    /// `now + lease`. A claim counts no attempt.
    async fn claim(
        &self,
        owner: &str,
        now: Timestamp,
        lease: Duration,
        channels: ClaimChannels<'_>,
        limit: usize,
    ) -> Result<Vec<Delivery>, OutboxError>;
    /// Records how a claim ended, counting an attempt when a send was made
    /// ([`Outcome::sent`]); `false` when `owner` no longer holds the lease.
    async fn finish(
        &self,
        id: i64,
        owner: &str,
        outcome: Outcome,
        now: Timestamp,
    ) -> Result<bool, OutboxError>;
    async fn alert(&self, id: &AlertId) -> Result<Option<Alert>, OutboxError>;
    /// Silences in force at `now`.
    async fn silences(&self, now: Timestamp) -> Result<Vec<Silence>, OutboxError>;
}

/// Counts per channel since the worker started, for `/metrics`.
#[derive(Debug, Default)]
pub struct ChannelCounters {
    pub delivered: AtomicU64,
    pub retried: AtomicU64,
    pub failed: AtomicU64,
    pub skipped: AtomicU64,
    pub rate_limited: AtomicU64,
    pub digests: AtomicU64,
}

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PassReport {
    pub claimed: usize,
    pub delivered: usize,
    pub retried: usize,
    pub failed: usize,
    pub skipped: usize,
    /// Claimed but given back unsent: their leases would have ended before a send could.
    pub released: usize,
    /// Messages actually sent (a digest is one).
    pub messages: usize,
}

impl PassReport {
    fn add(&mut self, other: &PassReport) {
        self.claimed += other.claimed;
        self.delivered += other.delivered;
        self.retried += other.retried;
        self.failed += other.failed;
        self.skipped += other.skipped;
        self.released += other.released;
        self.messages += other.messages;
    }
}

/// Rows one claim takes at most: for a channel that digests, what one message lists.
const CLAIM_LIMIT: usize = 200;

/// A send must end at least this long before its row's lease does: room to record the
/// outcome, and for the clocks of servers sharing one outbox to differ a little.
const LEASE_MARGIN: Duration = Duration::from_millis(500);

/// What a send costs beyond its receiver's answer (reading the alert, recording the
/// outcome), in the budget of sends that fit one lease.
const SEND_OVERHEAD: Duration = Duration::from_millis(100);

/// Who a claim is for: one configured channel, or the rows of channels this worker does
/// not know (failed at once: there is nowhere to send them).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Lane {
    Channel(String),
    Unknown,
}

pub struct Worker {
    outbox: Arc<dyn Outbox>,
    sender: Sender,
    config: Arc<NotifyConfig>,
    owner: String,
    /// The configured channels' names, for the claim of everything else.
    channel_names: Vec<String>,
    limiters: Mutex<HashMap<String, RateLimiter>>,
    /// One delivery at a time per channel: keeps its rate limit and event order.
    channel_locks: HashMap<String, Arc<tokio::sync::Mutex<()>>>,
    counters: BTreeMap<String, Arc<ChannelCounters>>,
    jitter: Box<dyn Fn() -> f64 + Send + Sync>,
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("owner", &self.owner)
            .field("channels", &self.config.channels.len())
            .finish_non_exhaustive()
    }
}

/// A jitter in [0, 1) from the OS's random source; 0.5 should that fail (it does not on
/// Linux), which only makes retries less spread.
fn random_jitter() -> f64 {
    let mut bytes = [0u8; 8];
    match std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
    {
        Ok(()) => (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64,
        Err(_) => 0.5,
    }
}

/// How many sends to `channel` surely fit in one lease, one after another, each taking
/// its whole time-out: at least one (validation keeps the lease at three time-outs).
fn sends_per_lease(lease: Duration, channel: &ChannelConfig) -> usize {
    let budget = lease.saturating_sub(LEASE_MARGIN).as_millis();
    let per_send = (channel.timeout + SEND_OVERHEAD).as_millis().max(1);
    usize::try_from(budget / per_send)
        .unwrap_or(usize::MAX)
        .max(1)
}

/// Rows to lease for `channel` at once: what its sends within one lease can carry — one
/// row a send, or for a channel that digests, up to [`CLAIM_LIMIT`] (they go as one
/// message). Rows planned beyond that are given back unsent.
fn claim_limit(lease: Duration, channel: &ChannelConfig) -> usize {
    if channel.kind.digests() {
        CLAIM_LIMIT
    } else {
        sends_per_lease(lease, channel).min(CLAIM_LIMIT)
    }
}

impl Worker {
    /// `owner` names this worker in leases (host and pid, say): two workers must differ.
    pub fn new(
        outbox: Arc<dyn Outbox>,
        config: Arc<NotifyConfig>,
        owner: impl Into<String>,
    ) -> Result<Worker, DeliveryError> {
        let names: Vec<String> = config.channels.keys().map(|n| n.to_string()).collect();
        Ok(Worker {
            outbox,
            sender: Sender::new()?,
            owner: owner.into(),
            limiters: Mutex::new(HashMap::new()),
            channel_locks: names
                .iter()
                .map(|n| (n.clone(), Arc::new(tokio::sync::Mutex::new(()))))
                .collect(),
            counters: names
                .iter()
                .map(|n| (n.clone(), Arc::new(ChannelCounters::default())))
                .collect(),
            channel_names: names,
            config,
            jitter: Box::new(random_jitter),
        })
    }

    /// Fixed jitter, for tests that assert retry times.
    pub fn with_jitter(mut self, jitter: impl Fn() -> f64 + Send + Sync + 'static) -> Self {
        self.jitter = Box::new(jitter);
        self
    }

    pub fn counters(&self) -> &BTreeMap<String, Arc<ChannelCounters>> {
        &self.counters
    }

    fn lanes(&self) -> impl Iterator<Item = Lane> + '_ {
        self.channel_names
            .iter()
            .map(|name| Lane::Channel(name.clone()))
            .chain([Lane::Unknown])
    }

    /// Leases what `lane` can send within one lease; also says whether that was all it
    /// could take (more may be due).
    async fn claim(
        &self,
        lane: &Lane,
        now: Timestamp,
    ) -> Result<(Vec<Delivery>, bool), OutboxError> {
        let lease = self.config.policy.lease;
        let (channels, limit) = match lane {
            Lane::Channel(name) => {
                let Some(channel) = self.config.channel(name) else {
                    return Ok((Vec::new(), false));
                };
                (ClaimChannels::Only(name), claim_limit(lease, channel))
            }
            Lane::Unknown => (ClaimChannels::AllBut(&self.channel_names), CLAIM_LIMIT),
        };
        let rows = self
            .outbox
            .claim(&self.owner, now, lease, channels, limit)
            .await?;
        let full = rows.len() >= limit;
        Ok((rows, full))
    }

    /// Delivers one lane's claimed rows.
    async fn deliver(
        &self,
        lane: &Lane,
        rows: Vec<Delivery>,
        now: Timestamp,
        claimed_at: std::time::Instant,
    ) -> Result<PassReport, OutboxError> {
        match lane {
            Lane::Channel(name) => self.deliver_channel(name, rows, now, claimed_at).await,
            Lane::Unknown => self.fail_unknown(rows, now).await,
        }
    }

    /// Works through one lane's backlog: claims, delivers, and claims again at once while
    /// claims come back full, until the lane is drained or `shutdown` turns true.
    async fn drain(
        &self,
        lane: &Lane,
        clock: &(dyn Fn() -> Timestamp + Send + Sync),
        shutdown: &tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), OutboxError> {
        loop {
            let now = clock();
            let claimed_at = std::time::Instant::now();
            let (rows, full) = self.claim(lane, now).await?;
            if rows.is_empty() {
                return Ok(());
            }
            self.deliver(lane, rows, now, claimed_at).await?;
            if !full || *shutdown.borrow() {
                return Ok(());
            }
        }
    }

    /// One pass at `now`: claim what is due for every channel (once), deliver every
    /// channel concurrently, wait for all of them (each bounded by its timeouts).
    /// `modelwatch notify --once` is this.
    pub async fn run_once(self: &Arc<Self>, now: Timestamp) -> Result<PassReport, OutboxError> {
        let mut report = PassReport::default();
        let mut tasks = tokio::task::JoinSet::new();
        for lane in self.lanes() {
            let claimed_at = std::time::Instant::now();
            let (rows, _) = self.claim(&lane, now).await?;
            if rows.is_empty() {
                continue;
            }
            report.claimed += rows.len();
            let worker = Arc::clone(self);
            tasks.spawn(async move { worker.deliver(&lane, rows, now, claimed_at).await });
        }
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(Ok(part)) => report.add(&part),
                Ok(Err(error)) => {
                    tracing::warn!(%error, "notification pass could not record an outcome")
                }
                Err(error) => tracing::error!(%error, "notification task panicked"),
            }
        }
        Ok(report)
    }

    /// Every poll interval, starts a task for each channel that has none running, which
    /// works through that channel's backlog a lease's worth at a time, until `shutdown`
    /// turns true. A slow or hanging receiver delays only its own channel and holds no
    /// more rows than it can send within a lease; a fast one drains a backlog without
    /// waiting for the next tick.
    pub async fn run(
        self: Arc<Self>,
        clock: impl Fn() -> Timestamp + Send + Sync + 'static,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let clock: Arc<dyn Fn() -> Timestamp + Send + Sync> = Arc::new(clock);
        let mut tick = tokio::time::interval(self.config.policy.poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut tasks = tokio::task::JoinSet::new();
        let mut busy: HashMap<tokio::task::Id, Lane> = HashMap::new();
        let mut stop = shutdown.clone();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => {}
            }
            if *stop.borrow() {
                break;
            }
            while let Some(done) = tasks.try_join_next_with_id() {
                let id = match done {
                    Ok((id, ())) => id,
                    Err(error) => {
                        tracing::error!(%error, "notification task panicked");
                        error.id()
                    }
                };
                busy.remove(&id);
            }
            for lane in self.lanes() {
                if busy.values().any(|b| *b == lane) {
                    continue;
                }
                let worker = Arc::clone(&self);
                let (clock, shutdown) = (Arc::clone(&clock), shutdown.clone());
                let task_lane = lane.clone();
                let handle = tasks.spawn(async move {
                    if let Err(error) = worker.drain(&task_lane, &*clock, &shutdown).await {
                        tracing::warn!(%error, "cannot claim notifications or record an outcome; trying again next tick");
                    }
                });
                busy.insert(handle.id(), lane);
            }
        }
        // Let in-flight sends finish (each is bounded by its timeout) so their outcomes
        // are recorded rather than left to lease expiry.
        while tasks.join_next().await.is_some() {}
    }

    async fn finish(
        &self,
        row: &Delivery,
        outcome: Outcome,
        now: Timestamp,
        report: &mut PassReport,
    ) -> Result<(), OutboxError> {
        let counters = self.counters.get(&row.channel);
        let count = |pick: fn(&ChannelCounters) -> &AtomicU64| {
            if let Some(c) = counters {
                pick(c).fetch_add(1, Ordering::Relaxed);
            }
        };
        match &outcome {
            Outcome::Delivered => {
                report.delivered += 1;
                count(|c| &c.delivered);
            }
            Outcome::Retry { .. } => {
                report.retried += 1;
                count(|c| &c.retried);
            }
            Outcome::Skipped { reason } => {
                report.skipped += 1;
                count(|c| &c.skipped);
                tracing::debug!(channel = row.channel, alert_id = %row.alert_id, reason, "notification skipped");
            }
            Outcome::Failed { error, .. } => {
                report.failed += 1;
                count(|c| &c.failed);
                tracing::warn!(channel = row.channel, alert_id = %row.alert_id, error, "notification failed for good");
            }
            Outcome::Released => report.released += 1,
        }
        if !self
            .outbox
            .finish(row.id, &self.owner, outcome, now)
            .await?
        {
            tracing::warn!(
                id = row.id,
                "lost the lease on a notification before recording it"
            );
        }
        Ok(())
    }

    /// Rows of a channel this worker does not know: nothing to send them with.
    async fn fail_unknown(
        &self,
        rows: Vec<Delivery>,
        now: Timestamp,
    ) -> Result<PassReport, OutboxError> {
        let mut report = PassReport::default();
        for row in &rows {
            let outcome = Outcome::Failed {
                error: DeliveryError::UnknownChannel(row.channel.clone()).to_string(),
                sent: false,
            };
            self.finish(row, outcome, now, &mut report).await?;
        }
        Ok(report)
    }

    /// `now` is the time the rows were claimed at, `claimed_at` the same moment on the
    /// monotonic clock: their leases are measured from it.
    async fn deliver_channel(
        &self,
        channel_name: &str,
        rows: Vec<Delivery>,
        now: Timestamp,
        claimed_at: std::time::Instant,
    ) -> Result<PassReport, OutboxError> {
        let mut report = PassReport::default();
        let Some(channel) = self.config.channel(channel_name) else {
            return self.fail_unknown(rows, now).await;
        };
        let lock = self.channel_locks.get(channel_name).cloned();
        let _serial = match &lock {
            Some(lock) => Some(lock.lock().await),
            None => None,
        };
        // Whether a send started now ends, at the channel's time-out, safely before the
        // row's lease does. Only then may it start: once the lease has run out another
        // worker may claim the row and send it too.
        let fits_lease = |row: &Delivery| {
            row.lease_until.is_none_or(|until| {
                now.saturating_add(claimed_at.elapsed())
                    .saturating_add(channel.timeout)
                    .saturating_add(LEASE_MARGIN)
                    < until
            })
        };
        // Waiting for the channel may have eaten into the lease: a row whose lease ends
        // before a send could finish is given back unsent, for the next claim.
        let (rows, stale): (Vec<Delivery>, Vec<Delivery>) =
            rows.into_iter().partition(|row| fits_lease(row));
        for row in &stale {
            self.finish(row, Outcome::Released, now, &mut report)
                .await?;
        }
        let silences = self.outbox.silences(now).await?;
        let mut sendable: Vec<(Delivery, AlertMessage)> = Vec::new();
        for row in rows {
            match self.prepare(&row, &silences, now).await? {
                Ok(message) => sendable.push((row, message)),
                Err(outcome) => self.finish(&row, outcome, now, &mut report).await?,
            }
        }
        let available = self.limiter(channel, |l| l.available(now));
        let plan = plan(
            sendable.len(),
            available,
            channel.kind.digests(),
            channel.digest_after,
        );
        for group in &plan.messages {
            // Sends within a channel are serialised, so a long batch can outlive its
            // leases: what could no longer finish in time is given back unsent, for
            // whichever worker claims it next. No attempt is counted for it.
            if !group.iter().all(|&i| fits_lease(&sendable[i].0)) {
                for &i in group {
                    self.finish(&sendable[i].0, Outcome::Released, now, &mut report)
                        .await?;
                }
                continue;
            }
            let messages: Vec<AlertMessage> =
                group.iter().map(|&i| sendable[i].1.clone()).collect();
            if messages.len() > 1 {
                if let Some(c) = self.counters.get(channel_name) {
                    c.digests.fetch_add(1, Ordering::Relaxed);
                }
            }
            let result = self.sender.send(channel, &messages, now).await;
            self.limiter(channel, |l| l.record(now));
            report.messages += 1;
            for &i in group {
                let row = &sendable[i].0;
                let outcome = match &result {
                    Ok(()) => Outcome::Delivered,
                    Err(error) => after_failure(
                        &self.config.policy,
                        row.attempts.saturating_add(1),
                        error,
                        now,
                        (self.jitter)(),
                    ),
                };
                self.finish(row, outcome, now, &mut report).await?;
            }
        }
        if !plan.deferred.is_empty() {
            let retry_at = self.limiter(channel, |l| l.next_free(now));
            if let Some(c) = self.counters.get(channel_name) {
                c.rate_limited
                    .fetch_add(plan.deferred.len() as u64, Ordering::Relaxed);
            }
            for &i in &plan.deferred {
                let outcome = Outcome::Retry {
                    error: format!(
                        "rate limited: {} messages a minute to this channel",
                        channel.max_per_minute
                    ),
                    retry_at,
                    sent: false,
                };
                self.finish(&sendable[i].0, outcome, now, &mut report)
                    .await?;
            }
        }
        Ok(report)
    }

    fn limiter<T>(&self, channel: &ChannelConfig, f: impl FnOnce(&mut RateLimiter) -> T) -> T {
        let mut limiters = match self.limiters.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let limiter = limiters
            .entry(channel.name.to_string())
            .or_insert_with(|| RateLimiter::new(channel.max_per_minute));
        f(limiter)
    }

    /// The message to send for `row`, or the outcome when there is nothing to send.
    async fn prepare(
        &self,
        row: &Delivery,
        silences: &[Silence],
        now: Timestamp,
    ) -> Result<Result<AlertMessage, Outcome>, OutboxError> {
        let cannot_render = |error: RenderError| Outcome::Failed {
            error: error.to_string(),
            sent: false,
        };
        let Some(current) = self.outbox.alert(&row.alert_id).await? else {
            return Ok(Err(cannot_render(RenderError::AlertGone(
                row.alert_id.clone(),
            ))));
        };
        if let Some(reason) = skip_reason(row.event, &current, silences, now) {
            return Ok(Err(Outcome::Skipped { reason }));
        }
        // The alert as of the event, with the detector's test that fired it.
        let alert = match alert_as_of_event(&row.payload, &current) {
            Ok(alert) => alert,
            Err(error) => return Ok(Err(cannot_render(error))),
        };
        Ok(Ok(AlertMessage::new(
            row.dedup_key.clone(),
            row.event,
            alert,
            row.created_at,
            &self.config.dashboard_url,
        )))
    }
}

/// Why a due notification should not go out any more, if so. Only firing notifications
/// are held back: acknowledgement and resolution follow-ups always go to those who heard
/// the alert fire.
pub fn skip_reason(
    event: NotificationEvent,
    current: &Alert,
    silences: &[Silence],
    now: Timestamp,
) -> Option<String> {
    if event != NotificationEvent::Firing {
        return None;
    }
    match current.status {
        AlertStatus::Acknowledged => {
            return Some(format!(
                "alert was acknowledged by {} before delivery",
                current.acknowledged_by.as_deref().unwrap_or("someone")
            ))
        }
        AlertStatus::Resolved => return Some("alert was resolved before delivery".into()),
        AlertStatus::Active | AlertStatus::Suppressed => {}
    }
    muting_silence(
        silences,
        &current.model,
        &current.version,
        &current.metric,
        now,
    )
    .map(|silence| format!("muted by {}", silence.id))
}
