//! The alerting storage contract: rules, per rule × version × dataset evaluation states, alerts and
//! their history, silences, and the notification outbox.
//!
//! Everything an evaluation or a person's action changes goes through one call,
//! [`AlertStore::commit`], as a list of [`AlertCommit`]s. Each commit is atomic and guarded
//! by compare-and-swap on integer revisions: the state and an updated alert must still
//! have the revisions the evaluator read (every write of either stores the next one, on
//! every backend; an alert's is a column beside its JSON). A commit whose guard
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
pub(crate) mod guards;
pub(crate) mod memory;
pub mod records;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use modelwatch_core::alerting::{
    Alert, AlertFilter, AlertId, AlertStatus, AlertTransition, EventFacts, NotificationEvent,
    OutboxEntry, Rule, RuleId, SeriesState, Severity, Silence, SilenceId, StateDetail,
};
use modelwatch_core::{Dataset, Metric, ModelName, Timestamp, Version};
use serde::{Deserialize, Serialize};

use crate::StoreError;

/// The evaluation state of one rule for one model version's series on one dataset, as
/// persisted: a rule for each dataset has one per dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredState {
    pub rule_id: RuleId,
    /// The rule's model, so a model's states are found without reading its rules.
    pub model: ModelName,
    pub version: Version,
    /// `None`: the default dataset.
    pub dataset: Option<Dataset>,
    pub state: SeriesState,
}

/// Write `next` if the stored state of (`rule_id`, `version`, `dataset`) still has
/// `previous_revision` (a missing state counts as revision 0, the default state's).
#[derive(Debug, Clone, PartialEq)]
pub struct StateWrite {
    pub rule_id: RuleId,
    pub model: ModelName,
    pub version: Version,
    pub dataset: Option<Dataset>,
    pub previous_revision: u64,
    pub next: SeriesState,
}

/// Insert `alert` (when `previous_revision` is `None`; its id must be new) or replace the
/// stored alert if it still has `previous_revision`. The alert is stored with the next
/// revision, [`AlertWriteGuarded::revision`], whatever its own field says; the
/// constructors set that field to it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertWriteGuarded {
    pub previous_revision: Option<u64>,
    pub alert: Alert,
}

impl AlertWriteGuarded {
    /// A new alert, written with revision 1.
    pub fn insert(mut alert: Alert) -> Self {
        alert.revision = Alert::next_revision(None);
        AlertWriteGuarded {
            previous_revision: None,
            alert,
        }
    }

    /// `alert` replacing `previous`, the alert as it was read.
    pub fn replace(previous: &Alert, mut alert: Alert) -> Self {
        alert.revision = Alert::next_revision(Some(previous.revision));
        AlertWriteGuarded {
            previous_revision: Some(previous.revision),
            alert,
        }
    }

    /// The revision the alert is stored with.
    pub fn revision(&self) -> u64 {
        Alert::next_revision(self.previous_revision)
    }
}

/// One atomic, guarded change: what an evaluation or a person's action writes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertCommit {
    pub state: Option<StateWrite>,
    pub alert: Option<AlertWriteGuarded>,
    pub transition: Option<AlertTransition>,
    /// Deliveries to enqueue; their facts are kept in the row's `payload` column.
    pub notifications: Vec<OutboxEntry>,
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

/// What an outbox row's `payload` column says about its event.
///
/// Rows are written as `{"facts": …}` ([`EventFacts`]). Rows written before that carry the
/// whole alert as of the event (`{"event", "channel", "alert"}`, or the alert itself); they
/// are read as [`OutboxPayload::Snapshot`] so a database upgraded with rows still pending
/// delivers them. A column that is neither is not an error of the store (one bad row must
/// not stop every claim): it is read as [`OutboxPayload::Unreadable`], kept as stored, and
/// the delivery fails it with the reason.
// Facts is what every row written now holds, so it stays unboxed; the rare snapshot of
// an old row is boxed.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum OutboxPayload {
    Facts(EventFacts),
    Snapshot(Box<Alert>),
    Unreadable { text: String, error: String },
}

impl OutboxPayload {
    /// The column text of `facts`.
    pub(crate) fn encode_facts(facts: &EventFacts) -> Result<String, StoreError> {
        records::facts_payload(facts)
    }

    /// The column text, as it was read (a snapshot is written back as `{"alert": …}`).
    pub(crate) fn encode(&self) -> Result<String, StoreError> {
        match self {
            OutboxPayload::Facts(facts) => OutboxPayload::encode_facts(facts),
            OutboxPayload::Snapshot(alert) => records::snapshot_payload(alert),
            OutboxPayload::Unreadable { text, .. } => Ok(text.clone()),
        }
    }

    pub(crate) fn decode(text: &str) -> OutboxPayload {
        let unreadable = |error: String| OutboxPayload::Unreadable {
            text: text.to_owned(),
            error,
        };
        let value = match serde_json::from_str::<serde_json::Value>(text) {
            Ok(value) => value,
            Err(error) => return unreadable(format!("payload is not JSON: {error}")),
        };
        if value.get("facts").is_some() {
            return match records::facts_from_payload(value) {
                Ok(facts) => OutboxPayload::Facts(facts),
                Err(error) => unreadable(format!("payload's facts: {error}")),
            };
        }
        // Written before facts: the alert snapshot, alone or under `alert`.
        let snapshot = match value.get("alert") {
            Some(alert) => records::snapshot_from_payload(alert.clone()),
            None => records::snapshot_from_payload(value),
        };
        match snapshot {
            Ok(alert) => OutboxPayload::Snapshot(Box::new(alert)),
            Err(error) => unreadable(format!("payload holds neither facts nor an alert: {error}")),
        }
    }
}

/// One row of the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub id: i64,
    pub alert_id: AlertId,
    pub channel: String,
    pub event: NotificationEvent,
    pub severity: Severity,
    pub payload: OutboxPayload,
    pub dedup_key: String,
    pub status: DeliveryStatus,
    /// Sends made so far, as their senders recorded them: a claim alone is no attempt,
    /// and a send whose sender died before recording it is not counted, so a row fails
    /// only after `max_attempts` sends a receiver could have seen.
    pub attempts: u32,
    pub next_attempt_at: Timestamp,
    /// The last attempt's error; for a `skipped` row, why it was held back.
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub delivered_at: Option<Timestamp>,
    /// When the row reached its final state (delivered, failed or skipped); `None` while
    /// pending, leased or not. What retention ages rows by.
    pub finished_at: Option<Timestamp>,
    pub lease_owner: Option<String>,
    pub lease_until: Option<Timestamp>,
}

impl Notification {
    pub(crate) fn from_new(id: i64, entry: &OutboxEntry) -> Notification {
        Notification {
            id,
            alert_id: entry.alert_id.clone(),
            channel: entry.channel.clone(),
            event: entry.event,
            severity: entry.severity,
            payload: OutboxPayload::Facts(entry.facts.clone()),
            dedup_key: entry.dedup_key.clone(),
            status: DeliveryStatus::Pending,
            attempts: 0,
            next_attempt_at: entry.created_at,
            last_error: None,
            created_at: entry.created_at,
            delivered_at: None,
            finished_at: None,
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

/// How a claim ended, reported by the lease holder. A result that says a send was made
/// (`Delivered`, or `sent: true`) counts one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryResult {
    Delivered,
    /// Try again at `retry_at`; `sent` when a send failed, not when it was held back (by
    /// a rate limit, say).
    Retry {
        error: String,
        retry_at: Timestamp,
        sent: bool,
    },
    /// Give up for good; `sent` when a send was refused or was the last one allowed,
    /// not when there was nothing to send (the alert is gone, the channel unknown).
    Failed {
        error: String,
        sent: bool,
    },
    /// Not sent, on purpose; `reason` is kept in `last_error`.
    Skipped {
        reason: String,
    },
    /// Not sent, not even tried: the lease is given back and the row is claimable again
    /// at once (its lease would have run out before a send could finish).
    Released,
}

impl DeliveryResult {
    /// Whether this result records a send, i.e. counts an attempt.
    pub fn sent(&self) -> bool {
        match self {
            DeliveryResult::Delivered => true,
            DeliveryResult::Retry { sent, .. } | DeliveryResult::Failed { sent, .. } => *sent,
            DeliveryResult::Skipped { .. } | DeliveryResult::Released => false,
        }
    }
}

/// Which rows a claim may take, by channel: one worker claims each channel it knows
/// within what it can send before the lease ends, and the rows of channels it does not
/// know apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimChannels<'a> {
    /// Rows of this channel.
    Only(&'a str),
    /// Rows of every channel but these (`AllBut(&[])`: every row).
    AllBut(&'a [String]),
}

impl ClaimChannels<'_> {
    pub const ANY: ClaimChannels<'static> = ClaimChannels::AllBut(&[]);

    pub fn matches(&self, channel: &str) -> bool {
        match self {
            ClaimChannels::Only(only) => *only == channel,
            ClaimChannels::AllBut(others) => !others.iter().any(|c| c == channel),
        }
    }
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
    /// Ordered by rule, then version, then dataset.
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

/// An alert as the `modelwatch_alerts{state, severity}` gauges count it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertLabel {
    pub id: AlertId,
    pub status: AlertStatus,
    pub severity: Severity,
}

impl AlertLabel {
    pub fn of(alert: &Alert) -> AlertLabel {
        AlertLabel {
            id: alert.id.clone(),
            status: alert.status,
            severity: alert.severity,
        }
    }
}

/// The alerting storage contract.
#[async_trait]
pub trait AlertStore: Send + Sync + fmt::Debug {
    /// Flushes and stops background work; later calls fail with [`StoreError::Closed`].
    /// Idempotent (a backend that keeps samples too closes once, by either trait); named
    /// apart from [`crate::MetricStore::close`] so a backend's `close()` stays one call.
    async fn close_alerting(&self) -> Result<(), StoreError> {
        Ok(())
    }
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
    /// Every open alert's id, status and severity, read without its body through the open
    /// alerts' index: what `/metrics` counts after each pass.
    async fn open_alert_labels(&self) -> Result<Vec<AlertLabel>, StoreError> {
        Ok(self
            .open_alerts(None)
            .await?
            .iter()
            .map(AlertLabel::of)
            .collect())
    }
    /// How many resolved alerts there are of each severity (none: left out), counted
    /// without reading their bodies.
    async fn resolved_alert_counts(&self) -> Result<Vec<(Severity, u64)>, StoreError> {
        let resolved = AlertFilter {
            status: Some(AlertStatus::Resolved),
            ..AlertFilter::default()
        };
        let alerts = self.list_alerts(&resolved).await?;
        Ok(Severity::ALL
            .into_iter()
            .map(|severity| {
                let n = alerts.iter().filter(|a| a.severity == severity).count();
                (severity, n as u64)
            })
            .filter(|(_, n)| *n > 0)
            .collect())
    }
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

    /// Leases up to `limit` claimable rows of `channels` (oldest due first) to `owner`
    /// until `now + lease`. A claim is not an attempt: [`finish_notification`] counts one
    /// when a send was made. Rows whose lease expired are claimable again: a worker that
    /// died does not strand them.
    ///
    /// [`finish_notification`]: AlertStore::finish_notification
    async fn claim_notifications(
        &self,
        owner: &str,
        now: Timestamp,
        lease: Duration,
        channels: ClaimChannels<'_>,
        limit: usize,
    ) -> Result<Vec<Notification>, StoreError>;
    /// Records how a claim ended (counting an attempt when [`DeliveryResult::sent`]) and
    /// releases the lease. Returns `false` (changing nothing) when `owner` no longer
    /// holds the lease on row `id`.
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

    /// Deletes the outbox rows in a final state (delivered, failed, skipped) whose
    /// [`Notification::finished_at`] is before `cutoff`, and returns how many.
    /// Pending rows, leased or not, are never deleted; alerts and their history stay.
    /// Idempotent, and safe while workers (of this or other servers) run.
    async fn delete_finished_notifications(&self, cutoff: Timestamp) -> Result<u64, StoreError>;

    /// Every row, for moving the installation to another store.
    async fn export_alerting(&self) -> Result<AlertingRows, StoreError> {
        let rules = self.list_rules(None).await?;
        let mut states = self.states(None).await?;
        states.sort_by(|a, b| {
            (&a.rule_id, &a.version, &a.dataset).cmp(&(&b.rule_id, &b.version, &b.dataset))
        });
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

/// Outbox rows deleted per statement when pruning: a bounded transaction each, so the
/// outbox is never locked for long. (Tiny under test, so the conformance suite crosses
/// statement boundaries.)
pub(crate) const PRUNE_NOTIFICATIONS_PER_STATEMENT: i64 = if cfg!(test) { 2 } else { 5_000 };

/// The outbox rows that [`AlertStore::delete_finished_notifications`] deletes, as a SQL
/// condition on a cutoff in epoch milliseconds bound as `$1`/`?1`: finished before the
/// cutoff. Both schemas index `finished_ms` where it is not null
/// (`notification_outbox_finished`), and the comparison implies that predicate, so the
/// prune is a range scan of finished rows in time order on both engines. `finished_ms` is
/// set exactly when a row becomes final; the status test keeps a pending row out even if
/// an import brought one with a time.
pub(crate) const FINISHED_BEFORE: &str = "status <> 'pending' AND finished_ms < ";

/// The values one row of an alerting table binds, built from the core's types in one
/// place so both SQL backends, and in each of them the API's writes and the import, bind
/// the same columns the same way. Integers are `i64`, the type both databases store.
/// [`bind_columns!`] turns each into both drivers' parameter lists (`sqlite_params`,
/// `pg_params`), in the column order the struct's doc comment gives.
///
/// An `alert_rules` row: `(id, model, enabled, body)`.
pub(crate) struct RuleValues<'a> {
    pub(crate) id: &'a str,
    pub(crate) model: &'a str,
    pub(crate) enabled: bool,
    pub(crate) body: &'a str,
}

impl<'a> RuleValues<'a> {
    /// `body` is the rule's JSON, serialised by the caller so it can be done before a
    /// write is queued.
    pub(crate) fn new(rule: &'a Rule, body: &'a str) -> Self {
        RuleValues {
            id: rule.id.as_str(),
            model: rule.model.as_str(),
            enabled: rule.enabled,
            body,
        }
    }
}

/// An `alert_states` row: `(rule_id, version, model, consecutive_breaches,
/// consecutive_clears, alert_id, last_observed_ms, revision, detail, dataset)`; `detail` is
/// the state's [`StateDetail`] as JSON, null when empty (every state stored before it
/// existed); `dataset` is the dataset's name, empty for the default dataset (what every
/// state stored before rules had datasets is).
pub(crate) struct StateValues<'a> {
    pub(crate) rule_id: &'a str,
    pub(crate) version: &'a str,
    pub(crate) model: &'a str,
    pub(crate) consecutive_breaches: i64,
    pub(crate) consecutive_clears: i64,
    pub(crate) alert_id: Option<&'a str>,
    pub(crate) last_observed_ms: Option<i64>,
    pub(crate) revision: i64,
    pub(crate) detail: Option<String>,
    pub(crate) dataset: &'a str,
}

impl<'a> StateValues<'a> {
    pub(crate) fn new(
        rule_id: &'a RuleId,
        version: &'a Version,
        dataset: Option<&'a Dataset>,
        model: &'a ModelName,
        state: &'a SeriesState,
    ) -> Result<Self, StoreError> {
        Ok(StateValues {
            rule_id: rule_id.as_str(),
            version: version.as_str(),
            model: model.as_str(),
            consecutive_breaches: i64::from(state.consecutive_breaches),
            consecutive_clears: i64::from(state.consecutive_clears),
            alert_id: state.alert_id.as_ref().map(AlertId::as_str),
            last_observed_ms: state.last_observed_at.map(Timestamp::as_millis),
            revision: revision_to_sql(state.revision),
            detail: if state.detail.is_empty() {
                None
            } else {
                Some(records::detail_to_json(&state.detail)?)
            },
            dataset: dataset.map_or("", Dataset::as_str),
        })
    }
}

/// A state's dataset from its `dataset` column (empty: the default dataset).
pub(crate) fn state_dataset(column: &str) -> Result<Option<Dataset>, StoreError> {
    Dataset::parse_optional(column).map_err(|e| corrupt("state", e))
}

/// A state's [`StateDetail`] from its `detail` column.
pub(crate) fn state_detail(column: Option<&str>) -> Result<StateDetail, StoreError> {
    column.map_or_else(|| Ok(StateDetail::default()), records::detail_from_json)
}

/// Revisions wrap; the bits are stored so the comparison stays exact.
pub(crate) fn revision_to_sql(revision: u64) -> i64 {
    revision as i64
}

pub(crate) fn revision_from_sql(revision: i64) -> u64 {
    revision as u64
}

/// An `alerts` row: `(id, rule_id, model, version, status, severity, notified,
/// first_seen_ms, resolved_ms, body, revision)`; `body` is the alert's JSON, which leaves
/// the revision out.
pub(crate) struct AlertValues<'a> {
    pub(crate) id: &'a str,
    pub(crate) rule_id: &'a str,
    pub(crate) model: &'a str,
    pub(crate) version: &'a str,
    pub(crate) status: &'static str,
    pub(crate) severity: &'static str,
    pub(crate) notified: bool,
    pub(crate) first_seen_ms: i64,
    pub(crate) resolved_ms: Option<i64>,
    pub(crate) body: String,
    pub(crate) revision: i64,
}

impl<'a> AlertValues<'a> {
    /// The row of `alert` as it is, revision included (what an import writes).
    pub(crate) fn new(alert: &'a Alert) -> Result<Self, StoreError> {
        Ok(AlertValues {
            id: alert.id.as_str(),
            rule_id: alert.rule_id.as_str(),
            model: alert.model.as_str(),
            version: alert.version.as_str(),
            status: alert.status.as_str(),
            severity: alert.severity.as_str(),
            notified: alert.notified,
            first_seen_ms: alert.first_seen.as_millis(),
            resolved_ms: alert.resolved_at.map(Timestamp::as_millis),
            body: records::alert_body(alert)?,
            revision: revision_to_sql(alert.revision),
        })
    }

    /// The row a guarded write stores: its alert with the write's revision.
    pub(crate) fn written(write: &'a AlertWriteGuarded) -> Result<Self, StoreError> {
        Ok(AlertValues {
            revision: revision_to_sql(write.revision()),
            ..AlertValues::new(&write.alert)?
        })
    }
}

/// An `alert_transitions` row: `(alert_id, at_ms, by_actor, from_status, to_status, notes)`.
pub(crate) struct TransitionValues<'a> {
    pub(crate) alert_id: &'a str,
    pub(crate) at_ms: i64,
    pub(crate) by_actor: &'a str,
    pub(crate) from_status: Option<&'static str>,
    pub(crate) to_status: &'static str,
    pub(crate) notes: Option<&'a str>,
}

impl<'a> TransitionValues<'a> {
    pub(crate) fn new(transition: &'a AlertTransition) -> Self {
        TransitionValues {
            alert_id: transition.alert_id.as_str(),
            at_ms: transition.at.as_millis(),
            by_actor: &transition.by,
            from_status: transition.from.map(AlertStatus::as_str),
            to_status: transition.to.as_str(),
            notes: transition.notes.as_deref(),
        }
    }
}

/// A `silences` row: `(id, model, version, metric, starts_ms, ends_ms, created_by,
/// comment, created_ms)`.
pub(crate) struct SilenceValues<'a> {
    pub(crate) id: &'a str,
    pub(crate) model: &'a str,
    pub(crate) version: Option<&'a str>,
    pub(crate) metric: Option<&'a str>,
    pub(crate) starts_ms: i64,
    pub(crate) ends_ms: i64,
    pub(crate) created_by: &'a str,
    pub(crate) comment: &'a str,
    pub(crate) created_ms: i64,
}

impl<'a> SilenceValues<'a> {
    pub(crate) fn new(silence: &'a Silence) -> Self {
        SilenceValues {
            id: silence.id.as_str(),
            model: silence.model.as_str(),
            version: silence.version.as_ref().map(Version::as_str),
            metric: silence.metric.as_ref().map(Metric::as_str),
            starts_ms: silence.starts_at.as_millis(),
            ends_ms: silence.ends_at.as_millis(),
            created_by: &silence.created_by,
            comment: &silence.comment,
            created_ms: silence.created_at.as_millis(),
        }
    }
}

/// A whole `notification_outbox` row, id included, as the import writes it:
/// `(id, alert_id, channel, event, severity, payload, dedup_key, status, attempts,
/// next_attempt_ms, last_error, created_ms, delivered_ms, lease_owner, lease_until_ms,
/// finished_ms)`.
pub(crate) struct NotificationValues<'a> {
    pub(crate) id: i64,
    pub(crate) alert_id: &'a str,
    pub(crate) channel: &'a str,
    pub(crate) event: &'static str,
    pub(crate) severity: &'static str,
    pub(crate) payload: String,
    pub(crate) dedup_key: &'a str,
    pub(crate) status: &'static str,
    pub(crate) attempts: i64,
    pub(crate) next_attempt_ms: i64,
    pub(crate) last_error: Option<&'a str>,
    pub(crate) created_ms: i64,
    pub(crate) delivered_ms: Option<i64>,
    pub(crate) lease_owner: Option<&'a str>,
    pub(crate) lease_until_ms: Option<i64>,
    pub(crate) finished_ms: Option<i64>,
}

impl<'a> NotificationValues<'a> {
    pub(crate) fn new(n: &'a Notification) -> Result<Self, StoreError> {
        Ok(NotificationValues {
            id: n.id,
            alert_id: n.alert_id.as_str(),
            channel: &n.channel,
            event: n.event.as_str(),
            severity: n.severity.as_str(),
            payload: n.payload.encode()?,
            dedup_key: &n.dedup_key,
            status: n.status.as_str(),
            attempts: i64::from(n.attempts),
            next_attempt_ms: n.next_attempt_at.as_millis(),
            last_error: n.last_error.as_deref(),
            created_ms: n.created_at.as_millis(),
            delivered_ms: n.delivered_at.map(Timestamp::as_millis),
            lease_owner: n.lease_owner.as_deref(),
            lease_until_ms: n.lease_until.map(Timestamp::as_millis),
            finished_ms: n.finished_at.map(Timestamp::as_millis),
        })
    }
}

/// The length of a parameter array: one per field named.
macro_rules! count_fields {
    () => { 0 };
    ($head:ident $($tail:ident)*) => { 1 + count_fields!($($tail)*) };
}

/// A row-values struct's fields, in column order, as each driver's parameter list
/// (`sqlite_params`, `pg_params`): one list, so the two SQL backends cannot bind a column
/// at different positions.
macro_rules! bind_columns {
    ($values:ident: $($field:ident),+ $(,)?) => {
        impl $values<'_> {
            pub(crate) fn sqlite_params(
                &self,
            ) -> [&dyn rusqlite::ToSql; count_fields!($($field)+)] {
                [$(&self.$field),+]
            }

            pub(crate) fn pg_params(
                &self,
            ) -> [&(dyn tokio_postgres::types::ToSql + Sync); count_fields!($($field)+)] {
                [$(&self.$field),+]
            }
        }
    };
}

bind_columns!(RuleValues: id, model, enabled, body);
bind_columns!(
    StateValues:
    rule_id, version, model, consecutive_breaches, consecutive_clears, alert_id, last_observed_ms,
    revision, detail, dataset,
);
bind_columns!(
    AlertValues:
    id, rule_id, model, version, status, severity, notified, first_seen_ms, resolved_ms, body,
    revision,
);
bind_columns!(TransitionValues: alert_id, at_ms, by_actor, from_status, to_status, notes);
bind_columns!(
    SilenceValues:
    id, model, version, metric, starts_ms, ends_ms, created_by, comment, created_ms,
);
bind_columns!(
    NotificationValues:
    id, alert_id, channel, event, severity, payload, dedup_key, status, attempts, next_attempt_ms,
    last_error, created_ms, delivered_ms, lease_owner, lease_until_ms, finished_ms,
);

/// The columns [`AlertStore::finish_notification`] writes for an attempt's outcome, in one
/// place so both SQL backends record an outcome the same way: `None` for `error` and
/// `next_attempt_ms` keeps the stored value; `delivered_ms` and `finished_ms` are written
/// as they are (a retry leaves the row pending, so both stay null).
pub(crate) struct OutcomeValues<'a> {
    pub(crate) status: &'static str,
    /// Attempts to add: 1 for a send, 0 otherwise.
    pub(crate) attempts: i64,
    pub(crate) error: Option<&'a str>,
    pub(crate) next_attempt_ms: Option<i64>,
    pub(crate) delivered_ms: Option<i64>,
    pub(crate) finished_ms: Option<i64>,
}

impl<'a> OutcomeValues<'a> {
    pub(crate) fn new(result: &'a DeliveryResult, now: Timestamp) -> Self {
        let now = now.as_millis();
        let attempts = i64::from(result.sent());
        let final_state = |status, error: &'a str| OutcomeValues {
            status,
            attempts,
            error: Some(error),
            next_attempt_ms: None,
            delivered_ms: None,
            finished_ms: Some(now),
        };
        match result {
            DeliveryResult::Delivered => OutcomeValues {
                status: DeliveryStatus::Delivered.as_str(),
                attempts,
                error: None,
                next_attempt_ms: None,
                delivered_ms: Some(now),
                finished_ms: Some(now),
            },
            DeliveryResult::Retry {
                error, retry_at, ..
            } => OutcomeValues {
                status: DeliveryStatus::Pending.as_str(),
                attempts,
                error: Some(error),
                next_attempt_ms: Some(retry_at.as_millis()),
                delivered_ms: None,
                finished_ms: None,
            },
            DeliveryResult::Failed { error, .. } => {
                final_state(DeliveryStatus::Failed.as_str(), error)
            }
            DeliveryResult::Skipped { reason } => {
                final_state(DeliveryStatus::Skipped.as_str(), reason)
            }
            DeliveryResult::Released => OutcomeValues {
                status: DeliveryStatus::Pending.as_str(),
                attempts,
                error: None,
                next_attempt_ms: None,
                delivered_ms: None,
                finished_ms: None,
            },
        }
    }
}

/// Row mapping shared by the SQL backends: rules and alerts are stored as the core's JSON,
/// times as epoch milliseconds.
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// An alert from its row's `body` (the JSON, without the revision) and `revision`.
pub(crate) fn stored_alert(body: &str, revision: i64) -> Result<Alert, StoreError> {
    let mut alert = records::alert_from_body(body)?;
    alert.revision = revision_from_sql(revision);
    Ok(alert)
}

/// An `(id, status, severity)` row of the alerts table.
pub(crate) fn alert_label(
    id: &str,
    status: &str,
    severity: &str,
) -> Result<AlertLabel, StoreError> {
    Ok(AlertLabel {
        id: AlertId::parse(id).map_err(|e| corrupt("alert id", e))?,
        status: AlertStatus::parse(status).map_err(|e| corrupt("alert status", e))?,
        severity: Severity::parse(severity).map_err(|e| corrupt("alert severity", e))?,
    })
}

/// A `(severity, count(*))` row of the alerts table.
pub(crate) fn severity_count(severity: &str, n: i64) -> Result<(Severity, u64), StoreError> {
    Ok((
        Severity::parse(severity).map_err(|e| corrupt("alert severity", e))?,
        u64::try_from(n).map_err(|e| corrupt("alert count", e))?,
    ))
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

/// Sorts alerts newest first, the core's order of every listing (the HTTP API's cursor
/// paging relies on every backend answering in it).
pub(crate) fn newest_first(alerts: &mut [Alert]) {
    alerts.sort_by(modelwatch_core::alerting::listing_order);
}

pub(crate) fn lease_end(now: Timestamp, lease: Duration) -> Timestamp {
    now.saturating_add(lease)
}
