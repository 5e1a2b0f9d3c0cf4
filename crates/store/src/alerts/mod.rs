//! The alerting storage contract: rules, per rule × version evaluation states, alerts and
//! their history, silences, and the notification outbox.
//!
//! Everything an evaluation or a person's action changes goes through one call,
//! [`AlertStore::commit`], as a list of [`AlertCommit`]s. Each commit is atomic and guarded
//! by compare-and-swap: the state must still have the revision the evaluator read, and an
//! updated alert must still be exactly the alert the evaluator read. A commit whose guard
//! fails is reported as [`CommitOutcome::Conflict`] and writes nothing, so two evaluators
//! racing on the same rule (or an evaluator racing a person acknowledging) never clobber
//! each other; the loser re-reads and decides again. Outbox rows are inserted in the same
//! transaction with `ON CONFLICT (dedup_key) DO NOTHING`.
//!
//! The outbox is shaped for a delivery worker (issue 7) and for several servers sharing
//! one database (issue 8): rows are claimed with a lease (`lease_owner`, `lease_until`);
//! an expired lease makes the row claimable again, and only the lease holder may mark it.

#[cfg(test)]
pub(crate) mod conformance;
pub(crate) mod memory;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use modelwatch_core::alerting::{
    Alert, AlertFilter, AlertId, AlertTransition, NotificationEvent, OutboxEntry, Rule, RuleId,
    SeriesState, Severity, Silence, SilenceId,
};
use modelwatch_core::{ModelName, Timestamp, Version};
use serde::{Deserialize, Serialize};

use crate::StoreError;

/// The evaluation state of one rule for one model version, as persisted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredState {
    pub rule_id: RuleId,
    /// The rule's model, so a model's states are found without reading its rules.
    pub model: ModelName,
    pub version: Version,
    pub state: SeriesState,
}

/// Write `next` if the stored state of (`rule_id`, `version`) still has
/// `previous_revision` (a missing state counts as revision 0, the default state's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateWrite {
    pub rule_id: RuleId,
    pub model: ModelName,
    pub version: Version,
    pub previous_revision: u64,
    pub next: SeriesState,
}

/// Insert `alert` (when `previous` is `None`; its id must be new) or replace `previous`
/// by `alert` if the stored alert still equals `previous`.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertWriteGuarded {
    pub previous: Option<Alert>,
    pub alert: Alert,
}

/// One delivery to enqueue: the core's [`OutboxEntry`] plus the JSON payload a channel
/// sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotification {
    pub entry: OutboxEntry,
    /// JSON text.
    pub payload: String,
}

/// One atomic, guarded change: what an evaluation or a person's action writes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertCommit {
    pub state: Option<StateWrite>,
    pub alert: Option<AlertWriteGuarded>,
    pub transition: Option<AlertTransition>,
    pub notifications: Vec<NewNotification>,
}

impl AlertCommit {
    pub fn is_empty(&self) -> bool {
        self.state.is_none()
            && self.alert.is_none()
            && self.transition.is_none()
            && self.notifications.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommitOutcome {
    Applied,
    /// A guard failed (someone else changed the state or the alert first); nothing of
    /// this commit was written.
    Conflict,
}

/// Where a delivery stands. `failed` means a real failure (refused, or retries
/// exhausted); a notification held back on purpose is `skipped`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
    /// Not sent, by decision: the alert was acknowledged, resolved or silenced before
    /// the notification was due.
    Skipped,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 4] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Delivered,
        DeliveryStatus::Failed,
        DeliveryStatus::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Skipped => "skipped",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        DeliveryStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// One row of the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub id: i64,
    pub alert_id: AlertId,
    pub channel: String,
    pub event: NotificationEvent,
    pub severity: Severity,
    pub payload: String,
    pub dedup_key: String,
    pub status: DeliveryStatus,
    /// Claims so far (a claim is an attempt, so a worker dying mid-delivery still counts).
    pub attempts: u32,
    pub next_attempt_at: Timestamp,
    /// The last attempt's error; for a `skipped` row, why it was held back.
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub delivered_at: Option<Timestamp>,
    pub lease_owner: Option<String>,
    pub lease_until: Option<Timestamp>,
}

impl Notification {
    pub(crate) fn from_new(id: i64, new: &NewNotification) -> Notification {
        Notification {
            id,
            alert_id: new.entry.alert_id.clone(),
            channel: new.entry.channel.clone(),
            event: new.entry.event,
            severity: new.entry.severity,
            payload: new.payload.clone(),
            dedup_key: new.entry.dedup_key.clone(),
            status: DeliveryStatus::Pending,
            attempts: 0,
            next_attempt_at: new.entry.created_at,
            last_error: None,
            created_at: new.entry.created_at,
            delivered_at: None,
            lease_owner: None,
            lease_until: None,
        }
    }

    /// Whether a worker may claim it at `now`: pending, due, and not leased to anyone.
    pub fn claimable(&self, now: Timestamp) -> bool {
        self.status == DeliveryStatus::Pending
            && self.next_attempt_at <= now
            && self.lease_until.is_none_or(|until| until <= now)
    }
}

/// How a delivery attempt ended, reported by the lease holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryResult {
    Delivered,
    /// Try again at `retry_at`.
    Retry {
        error: String,
        retry_at: Timestamp,
    },
    /// Give up for good.
    Failed {
        error: String,
    },
    /// Not sent, on purpose; `reason` is kept in `last_error`.
    Skipped {
        reason: String,
    },
}

/// Narrows the outbox listing; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct NotificationFilter {
    pub alert_id: Option<AlertId>,
    pub status: Option<DeliveryStatus>,
    pub channel: Option<String>,
}

impl NotificationFilter {
    pub fn matches(&self, n: &Notification) -> bool {
        self.alert_id.as_ref().is_none_or(|a| *a == n.alert_id)
            && self.status.is_none_or(|s| s == n.status)
            && self.channel.as_ref().is_none_or(|c| *c == n.channel)
    }
}

/// Every row an alert store holds, exactly as stored (ids, revisions, delivery status,
/// attempts and leases included): what `modelwatch migrate` moves from one store to
/// another.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertingRows {
    /// Ordered by model, then id.
    pub rules: Vec<Rule>,
    /// Ordered by rule, then version.
    pub states: Vec<StoredState>,
    /// Newest first, as listings have them.
    pub alerts: Vec<Alert>,
    /// Every alert's transitions, in the order of `alerts`, each alert's oldest first.
    pub transitions: Vec<AlertTransition>,
    /// Ordered by start, then id.
    pub silences: Vec<Silence>,
    /// The outbox, by id.
    pub notifications: Vec<Notification>,
}

impl AlertingRows {
    /// Rows per table, by table name: what a migration compares at the end.
    pub fn counts(&self) -> [(&'static str, u64); 6] {
        let n = |len: usize| len as u64;
        [
            ("rules", n(self.rules.len())),
            ("rule_states", n(self.states.len())),
            ("alerts", n(self.alerts.len())),
            ("alert_transitions", n(self.transitions.len())),
            ("silences", n(self.silences.len())),
            ("notifications", n(self.notifications.len())),
        ]
    }
}

/// The alerting storage contract.
#[async_trait]
pub trait AlertStore: Send + Sync + fmt::Debug {
    /// Stores a new rule; [`StoreError::AlreadyExists`] when its id is taken.
    async fn insert_rule(&self, rule: Rule) -> Result<(), StoreError>;
    /// Replaces a stored rule; [`StoreError::NotFound`] when there is none with its id.
    async fn update_rule(&self, rule: Rule) -> Result<(), StoreError>;
    /// Deletes a rule and its evaluation states (its alerts and their history stay).
    /// Returns whether it existed.
    async fn delete_rule(&self, id: &RuleId) -> Result<bool, StoreError>;
    async fn rule(&self, id: &RuleId) -> Result<Option<Rule>, StoreError>;
    /// Rules of `model` (or all), ordered by model then id.
    async fn list_rules(&self, model: Option<&ModelName>) -> Result<Vec<Rule>, StoreError>;

    /// Evaluation states of the rules of `model` (or all).
    async fn states(&self, model: Option<&ModelName>) -> Result<Vec<StoredState>, StoreError>;

    /// Applies each commit atomically if its guards hold; one outcome per commit, in order.
    async fn commit(&self, commits: Vec<AlertCommit>) -> Result<Vec<CommitOutcome>, StoreError>;

    async fn alert(&self, id: &AlertId) -> Result<Option<Alert>, StoreError>;
    /// The alerts with these ids that exist, in no particular order.
    async fn alerts_by_id(&self, ids: &[AlertId]) -> Result<Vec<Alert>, StoreError>;
    /// Matching alerts, newest `first_seen` first (ties by id).
    async fn list_alerts(&self, filter: &AlertFilter) -> Result<Vec<Alert>, StoreError>;
    /// Open alerts (not resolved, whatever their status), newest first.
    async fn open_alerts(&self, model: Option<&ModelName>) -> Result<Vec<Alert>, StoreError>;
    /// An alert's transitions, oldest first.
    async fn history(&self, id: &AlertId) -> Result<Vec<AlertTransition>, StoreError>;
    /// Model and creation time of every notified alert created at or after `since`, to
    /// seed a [`modelwatch_core::alerting::RateLedger`].
    async fn notified_since(
        &self,
        since: Timestamp,
    ) -> Result<Vec<(ModelName, Timestamp)>, StoreError>;

    /// Stores a new silence; [`StoreError::AlreadyExists`] when its id is taken.
    async fn insert_silence(&self, silence: Silence) -> Result<(), StoreError>;
    /// Replaces a silence (e.g. expired early); [`StoreError::NotFound`] when missing.
    async fn update_silence(&self, silence: Silence) -> Result<(), StoreError>;
    async fn silence(&self, id: &SilenceId) -> Result<Option<Silence>, StoreError>;
    /// Silences ending after `ends_after` (all when `None`), ordered by start then id.
    async fn list_silences(
        &self,
        ends_after: Option<Timestamp>,
    ) -> Result<Vec<Silence>, StoreError>;

    /// Leases up to `limit` claimable rows (oldest due first) to `owner` until
    /// `now + lease`, counting an attempt on each. Rows whose lease expired are claimable
    /// again: a worker that died does not strand them.
    async fn claim_notifications(
        &self,
        owner: &str,
        now: Timestamp,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Notification>, StoreError>;
    /// Records the end of an attempt and releases the lease. Returns `false` (changing
    /// nothing) when `owner` no longer holds the lease on row `id`.
    async fn finish_notification(
        &self,
        id: i64,
        owner: &str,
        result: DeliveryResult,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Outbox rows, oldest first.
    async fn list_notifications(
        &self,
        filter: &NotificationFilter,
    ) -> Result<Vec<Notification>, StoreError>;
    /// The newest `limit` matching outbox rows, newest first: what people look at (the
    /// API's `/api/v1/notifications` and `modelwatch notifications list`).
    async fn recent_notifications(
        &self,
        filter: &NotificationFilter,
        limit: usize,
    ) -> Result<Vec<Notification>, StoreError>;

    /// Every row, for moving the installation to another store.
    async fn export_alerting(&self) -> Result<AlertingRows, StoreError> {
        let rules = self.list_rules(None).await?;
        let mut states = self.states(None).await?;
        states.sort_by(|a, b| (&a.rule_id, &a.version).cmp(&(&b.rule_id, &b.version)));
        let alerts = self.list_alerts(&AlertFilter::default()).await?;
        let mut transitions = Vec::new();
        for alert in &alerts {
            transitions.extend(self.history(&alert.id).await?);
        }
        Ok(AlertingRows {
            rules,
            states,
            alerts,
            transitions,
            silences: self.list_silences(None).await?,
            notifications: self
                .list_notifications(&NotificationFilter::default())
                .await?,
        })
    }

    /// Writes exported rows as they are, all in one transaction. Rows whose key the store
    /// already has (a rule's or alert's id, a state's rule and version, an outbox row's id
    /// or dedup key) are left as they are, and an alert's transitions are written only
    /// with the alert itself: importing the same rows twice changes nothing.
    async fn import_alerting(&self, rows: AlertingRows) -> Result<(), StoreError>;
}

/// Row mapping shared by the SQL backends: rules and alerts are stored as the core's JSON,
/// times as epoch milliseconds.
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn corrupt(what: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {error}"))
}

pub(crate) fn timestamp(ms: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_millis(ms).map_err(|e| corrupt("timestamp", e))
}

pub(crate) fn optional_timestamp(ms: Option<i64>) -> Result<Option<Timestamp>, StoreError> {
    ms.map(timestamp).transpose()
}

/// Sorts alerts newest first, the order every listing uses.
pub(crate) fn newest_first(alerts: &mut [Alert]) {
    alerts.sort_by(|a, b| {
        b.first_seen
            .cmp(&a.first_seen)
            .then_with(|| a.id.cmp(&b.id))
    });
}

pub(crate) fn lease_end(now: Timestamp, lease: Duration) -> Timestamp {
    now.saturating_add(lease)
}
