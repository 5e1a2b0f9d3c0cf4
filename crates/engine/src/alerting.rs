//! The alerting engine: rules, people's actions on alerts, queries and silences over the
//! [`AlertStore`], with the core's pure alerting logic deciding everything.
//!
//! [`Engine`] owns no clock (every call takes `now`) and draws ids from an injected
//! [`IdSource`], so tests are exact. Evaluation lives in [`crate::evaluation`], backtests in
//! [`crate::backtest`].

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use modelwatch_core::alerting::{
    acknowledge, outbox, resolve, summarize, Alert, AlertConfig, AlertFilter, AlertId,
    AlertSummary, AlertTransition, LifecycleError, Rule, RuleId, RulePatch, RuleSpec, Silence,
    SilenceId, SilenceSpec,
};
use modelwatch_core::detection::DetectionOptions;
use modelwatch_core::{ModelName, Timestamp, ValidationError};
use modelwatch_store::alerts::{AlertCommit, AlertWriteGuarded, CommitOutcome};
use modelwatch_store::{AlertStore, MetricStore, PredictionStore, StoreError, Stores};

use crate::analysis::AnalysisError;

/// How often a write that lost a compare-and-swap race is re-read and retried.
pub(crate) const MAX_ATTEMPTS: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    #[error("no rule has id {0}")]
    UnknownRule(RuleId),
    #[error("no silence has id {0}")]
    UnknownSilence(SilenceId),
    #[error("{0} kept changing while being written; try again")]
    Contention(String),
    /// The thing a request was changing was deleted between its read and its write (a
    /// rule's PATCH racing its DELETE): a conflict, not a missing id.
    #[error("the {kind} {id} was deleted while this request changed it")]
    Deleted { kind: &'static str, id: String },
    #[error(transparent)]
    Analysis(#[from] AnalysisError),
}

/// A write's "no such id" after the read that found it: someone deleted it in between.
fn deleted_meanwhile(error: StoreError) -> EngineError {
    match error {
        StoreError::NotFound { kind, id } => EngineError::Deleted { kind, id },
        other => other.into(),
    }
}

/// Where new rule, alert and silence ids come from.
pub trait IdSource: Send + Sync + fmt::Debug {
    fn next_id(&self) -> u32;
}

/// Random ids (`fastrand`, seeded from the OS). Collisions are possible in a 32-bit space;
/// every insert is guarded, and a taken id is simply drawn again.
#[derive(Debug)]
pub struct RandomIds(Mutex<fastrand::Rng>);

impl RandomIds {
    pub fn new() -> Self {
        RandomIds(Mutex::new(fastrand::Rng::new()))
    }
}

impl Default for RandomIds {
    fn default() -> Self {
        Self::new()
    }
}

impl IdSource for RandomIds {
    fn next_id(&self) -> u32 {
        match self.0.lock() {
            Ok(mut rng) => rng.u32(..),
            // A panic elsewhere poisoned the lock; a fresh generator is as good.
            Err(_) => fastrand::u32(..),
        }
    }
}

/// 1, 2, 3, …: predictable ids for tests.
#[derive(Debug, Default)]
pub struct SequentialIds(AtomicU32);

impl SequentialIds {
    /// Ids start after `last`.
    pub fn after(last: u32) -> Self {
        SequentialIds(AtomicU32::new(last))
    }
}

impl IdSource for SequentialIds {
    fn next_id(&self) -> u32 {
        self.0.fetch_add(1, Ordering::Relaxed).wrapping_add(1)
    }
}

/// Rules, alerts, silences and evaluation, and predictions' metrics, over the stores.
#[derive(Debug, Clone)]
pub struct Engine {
    pub(crate) metrics: Arc<dyn MetricStore>,
    pub(crate) alerts: Arc<dyn AlertStore>,
    /// Predictions, labels and prediction configurations ([`crate::predictions`]).
    pub(crate) predictions: Arc<dyn PredictionStore>,
    pub(crate) config: AlertConfig,
    pub(crate) detection: DetectionOptions,
    pub(crate) ids: Arc<dyn IdSource>,
    /// Samples older than this before a pass's clock cannot page (see
    /// [`crate::evaluation`]).
    pub(crate) horizon: std::time::Duration,
    /// Held by each recomputation of dirty prediction windows: two at once could record
    /// an older read of a window after a newer one (see [`crate::predictions`]).
    pub(crate) recomputing: Arc<tokio::sync::Mutex<()>>,
}

impl Engine {
    pub fn new(stores: &Stores, config: AlertConfig) -> Engine {
        Engine {
            metrics: Arc::clone(&stores.metrics),
            alerts: Arc::clone(&stores.alerts),
            predictions: Arc::clone(&stores.predictions),
            config,
            detection: DetectionOptions::default(),
            ids: Arc::new(RandomIds::new()),
            horizon: modelwatch_core::alerting::PAGING_HORIZON,
            recomputing: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// Pages only for samples at most `horizon` old (default
    /// [`PAGING_HORIZON`](modelwatch_core::alerting::PAGING_HORIZON)).
    pub fn with_horizon(mut self, horizon: std::time::Duration) -> Engine {
        self.horizon = horizon;
        self
    }

    /// Draws ids from `ids` instead of at random.
    pub fn with_ids(mut self, ids: Arc<dyn IdSource>) -> Engine {
        self.ids = ids;
        self
    }

    pub fn config(&self) -> &AlertConfig {
        &self.config
    }

    pub fn alert_store(&self) -> &Arc<dyn AlertStore> {
        &self.alerts
    }

    // ----- rules -----

    /// Validates and stores a new rule.
    pub async fn create_rule(&self, spec: RuleSpec, now: Timestamp) -> Result<Rule, EngineError> {
        let mut last_error = None;
        for _ in 0..MAX_ATTEMPTS {
            let rule = Rule::create(spec.clone(), RuleId::from_u32(self.ids.next_id()), now)?;
            match self.alerts.insert_rule(rule.clone()).await {
                Ok(()) => return Ok(rule),
                Err(error @ StoreError::AlreadyExists { .. }) => last_error = Some(error),
                Err(error) => return Err(error.into()),
            }
        }
        Err(last_error.map_or_else(|| EngineError::Contention("rule id".into()), Into::into))
    }

    pub async fn rule(&self, id: &RuleId) -> Result<Rule, EngineError> {
        self.alerts
            .rule(id)
            .await?
            .ok_or_else(|| EngineError::UnknownRule(id.clone()))
    }

    pub async fn list_rules(&self, model: Option<&ModelName>) -> Result<Vec<Rule>, EngineError> {
        Ok(self.alerts.list_rules(model).await?)
    }

    /// Applies `patch`; the result is validated like a new rule.
    pub async fn update_rule(
        &self,
        id: &RuleId,
        patch: RulePatch,
        now: Timestamp,
    ) -> Result<Rule, EngineError> {
        let updated = self.rule(id).await?.update(patch, now)?;
        self.alerts
            .update_rule(updated.clone())
            .await
            .map_err(deleted_meanwhile)?;
        Ok(updated)
    }

    pub async fn set_rule_enabled(
        &self,
        id: &RuleId,
        enabled: bool,
        now: Timestamp,
    ) -> Result<Rule, EngineError> {
        let updated = self.rule(id).await?.with_enabled(enabled, now);
        self.alerts
            .update_rule(updated.clone())
            .await
            .map_err(deleted_meanwhile)?;
        Ok(updated)
    }

    /// Deletes a rule and its evaluation states; its alerts and their history stay.
    pub async fn delete_rule(&self, id: &RuleId) -> Result<(), EngineError> {
        if self.alerts.delete_rule(id).await? {
            Ok(())
        } else {
            Err(EngineError::UnknownRule(id.clone()))
        }
    }

    // ----- people's actions -----

    /// `active → acknowledged`, recorded as `by`; notifies the rule's channels when the
    /// alert's firing was notified.
    pub async fn acknowledge(
        &self,
        id: &AlertId,
        by: &str,
        now: Timestamp,
    ) -> Result<Alert, EngineError> {
        self.transition(id, |alert| acknowledge(alert, by, now))
            .await
    }

    /// `active | acknowledged → resolved` (a suppressed alert is closed and stays
    /// `suppressed`), recorded as `by` with optional notes.
    pub async fn resolve(
        &self,
        id: &AlertId,
        by: &str,
        notes: Option<&str>,
        now: Timestamp,
    ) -> Result<Alert, EngineError> {
        self.transition(id, |alert| resolve(alert, by, notes, now))
            .await
    }

    async fn transition(
        &self,
        id: &AlertId,
        change: impl Fn(&Alert) -> Result<(Alert, AlertTransition), LifecycleError>,
    ) -> Result<Alert, EngineError> {
        for _ in 0..MAX_ATTEMPTS {
            let alert = self
                .alerts
                .alert(id)
                .await?
                .ok_or_else(|| LifecycleError::UnknownAlert(id.clone()))?;
            let (next, transition) = change(&alert)?;
            // A deleted rule has no channels left to tell.
            let channels = self
                .alerts
                .rule(&alert.rule_id)
                .await?
                .map(|rule| rule.notify_channels)
                .unwrap_or_default();
            let entries = outbox::for_transition(&channels, &next, &transition);
            let write = AlertWriteGuarded::replace(&alert, next);
            let written = write.alert.clone();
            let commit = AlertCommit {
                state: None,
                notifications: entries,
                alert: Some(write),
                transition: Some(transition),
            };
            if self.alerts.commit(vec![commit]).await? == [CommitOutcome::Applied] {
                return Ok(written);
            }
            // An evaluator or another person changed the alert; decide again on what is
            // stored now (which may turn this into a clear refusal).
        }
        Err(EngineError::Contention(format!("alert {id}")))
    }

    // ----- queries -----

    pub async fn alert(&self, id: &AlertId) -> Result<Alert, EngineError> {
        self.alerts
            .alert(id)
            .await?
            .ok_or_else(|| LifecycleError::UnknownAlert(id.clone()).into())
    }

    pub async fn list_alerts(&self, filter: &AlertFilter) -> Result<Vec<Alert>, EngineError> {
        Ok(self.alerts.list_alerts(filter).await?)
    }

    /// Open alerts (active, acknowledged, or suppressed and not yet closed), newest first:
    /// what `monitor` shows.
    pub async fn open_alerts(&self, model: Option<&ModelName>) -> Result<Vec<Alert>, EngineError> {
        Ok(self.alerts.open_alerts(model).await?)
    }

    /// An alert's transitions, oldest first.
    pub async fn history(&self, id: &AlertId) -> Result<Vec<AlertTransition>, EngineError> {
        self.alert(id).await?;
        Ok(self.alerts.history(id).await?)
    }

    /// The seed's summary of the alerts alive in the last `hours` (`None`: at any time).
    pub async fn summary(
        &self,
        model: Option<&ModelName>,
        hours: Option<f64>,
        now: Timestamp,
    ) -> Result<AlertSummary, EngineError> {
        let window = hours.map(|hours| modelwatch_core::alerting::last_hours(hours, now));
        let filter = AlertFilter {
            model: model.cloned(),
            window,
            ..AlertFilter::default()
        };
        let alerts = self.alerts.list_alerts(&filter).await?;
        Ok(summarize(&alerts, model, window))
    }

    // ----- silences -----

    pub async fn add_silence(
        &self,
        spec: SilenceSpec,
        now: Timestamp,
    ) -> Result<Silence, EngineError> {
        let mut last_error = None;
        for _ in 0..MAX_ATTEMPTS {
            let silence = spec
                .clone()
                .validate(SilenceId::from_u32(self.ids.next_id()), now)?;
            match self.alerts.insert_silence(silence.clone()).await {
                Ok(()) => return Ok(silence),
                Err(error @ StoreError::AlreadyExists { .. }) => last_error = Some(error),
                Err(error) => return Err(error.into()),
            }
        }
        Err(last_error.map_or_else(|| EngineError::Contention("silence id".into()), Into::into))
    }

    /// Silences not yet over at `now` (current and future), or all of them.
    pub async fn list_silences(
        &self,
        include_expired: bool,
        now: Timestamp,
    ) -> Result<Vec<Silence>, EngineError> {
        let ends_after = (!include_expired).then_some(now);
        Ok(self.alerts.list_silences(ends_after).await?)
    }

    /// Ends a silence now.
    pub async fn expire_silence(
        &self,
        id: &SilenceId,
        now: Timestamp,
    ) -> Result<Silence, EngineError> {
        let silence = self
            .alerts
            .silence(id)
            .await?
            .ok_or_else(|| EngineError::UnknownSilence(id.clone()))?;
        let expired = silence.expire(now);
        self.alerts
            .update_silence(expired.clone())
            .await
            .map_err(deleted_meanwhile)?;
        Ok(expired)
    }
}
