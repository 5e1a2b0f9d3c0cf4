//! Continuous evaluation: every enabled rule each `interval`, and the rules of a model
//! version shortly (`debounce`) after new samples for it arrive, so a bad value raises its
//! alert within seconds instead of at the next full pass.
//!
//! The loop owns the clock ([`Clock`]) and reads it once per pass, handing `now` to the
//! engine's entry points. It listens to the [`EventHub`] the event stream reads, which
//! already coalesces samples per series; it publishes the alerts a pass fires or changes
//! back to the hub, and tells a [`PassObserver`] (the HTTP face's `/metrics`) how long
//! each pass took and how many alerts there are. A failing pass is logged and the loop
//! goes on. Before each full pass it judges the prediction windows that time alone made
//! due (see `modelwatch_core::predictions::judging`).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use modelwatch_core::alerting::{AlertId, AlertStatus, Severity};
use modelwatch_core::{ModelName, Sample, Version};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use crate::alerting::Engine;
use crate::clock::Clock;
use crate::evaluation::EvaluationReport;
use crate::events::{AlertChange, Arrivals, Event, EventHub};

/// How often and how soon to evaluate.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub interval: Duration,
    pub debounce: Duration,
}

/// Whoever keeps the loop's figures; every method defaults to doing nothing.
pub trait PassObserver: Send + Sync {
    /// A pass (or a scoped pass) took `elapsed`.
    fn pass_timed(&self, _elapsed: Duration) {}
    /// The loop stored samples of its own (from judged prediction windows).
    fn samples_written(&self, _samples: &[Sample]) {}
    /// How many alerts are in `status` at `severity`, for every pair, after each recount.
    fn alerts_counted(&self, _status: AlertStatus, _severity: Severity, _count: u64) {}
}

/// An observer that keeps nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unobserved;

impl PassObserver for Unobserved {}

/// The evaluation loop and what it needs.
pub struct Evaluator {
    engine: Engine,
    hub: EventHub,
    clock: Clock,
    schedule: Schedule,
    observer: Arc<dyn PassObserver>,
}

impl std::fmt::Debug for Evaluator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evaluator")
            .field("schedule", &self.schedule)
            .finish_non_exhaustive()
    }
}

impl Evaluator {
    pub fn new(engine: Engine, hub: EventHub, clock: Clock, schedule: Schedule) -> Evaluator {
        Evaluator {
            engine,
            hub,
            clock,
            schedule,
            observer: Arc::new(Unobserved),
        }
    }

    /// Tells `observer` what the loop measures.
    pub fn observed_by(mut self, observer: Arc<dyn PassObserver>) -> Evaluator {
        self.observer = observer;
        self
    }

    /// Runs until `shutdown` resolves or the hub closes.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let mut events = self.hub.subscribe();
        let mut ticker = tokio::time::interval(self.schedule.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut dirty: HashSet<(ModelName, Version)> = HashSet::new();
        let mut due: Option<Instant> = None;
        let mut gauges = AlertGauges::default();
        tokio::pin!(shutdown);
        loop {
            let debounce_elapsed = async {
                match due {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut shutdown => return,
                _ = ticker.tick() => {
                    self.judge_windows().await;
                    self.passes(None, &mut gauges).await;
                    self.refresh(&mut gauges).await;
                }
                received = events.recv() => match received {
                    Ok(Event::Samples(update)) => {
                        dirty.insert((update.key.model.clone(), update.key.version.clone()));
                        due.get_or_insert_with(|| Instant::now() + self.schedule.debounce);
                    }
                    Ok(Event::Alert(_)) => {}
                    // Missed some updates: the next full pass covers them.
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return,
                },
                _ = debounce_elapsed => {
                    due = None;
                    for (model, version) in std::mem::take(&mut dirty) {
                        self.passes(Some((&model, &version)), &mut gauges).await;
                    }
                    self.refresh(&mut gauges).await;
                }
            }
        }
    }

    /// Judges the prediction windows that became due by time alone (their label delay
    /// passed, or they closed), so the full pass that follows counts their samples.
    async fn judge_windows(&self) {
        match self.engine.judge_windows(self.clock.now()).await {
            Ok((_, samples)) => {
                self.observer.samples_written(&samples);
                self.hub.samples_stored(Arrivals::of(&samples));
            }
            Err(error) => tracing::warn!(%error, "judging prediction windows failed"),
        }
    }

    /// One pass, then more at once while the pass left samples to count: each pass is
    /// bounded, so a large import is counted in steps without holding anything up for
    /// long.
    async fn passes(&self, scope: Option<(&ModelName, &Version)>, gauges: &mut AlertGauges) {
        for _ in 0..MAX_CATCH_UP_PASSES {
            let started = std::time::Instant::now();
            let now = self.clock.now();
            let outcome = match scope {
                Some((model, version)) => self.engine.evaluate_model(model, version, now).await,
                None => self.engine.evaluate_all(now).await,
            };
            self.observer.pass_timed(started.elapsed());
            match outcome {
                Ok(report) => {
                    publish(&self.hub, &report);
                    gauges.note(&report);
                    if !report.backlog {
                        return;
                    }
                    tokio::task::yield_now().await;
                }
                Err(error) => {
                    tracing::warn!(%error, ?scope, "evaluation pass failed");
                    return;
                }
            }
        }
    }

    /// Counts the alerts again and tells the observer; on a store error the observer
    /// keeps the previous counts and the next refresh counts afresh.
    async fn refresh(&self, gauges: &mut AlertGauges) {
        if let Err(error) = gauges.count(&self.engine).await {
            tracing::warn!(%error, "cannot count the alerts for /metrics");
            gauges.counted_at = None;
            return;
        }
        for (status, severity, count) in gauges.counts() {
            self.observer.alerts_counted(status, severity, count);
        }
    }
}

/// Passes at most this many in a row while samples are left to count (an import or an
/// outage); the next tick carries on.
const MAX_CATCH_UP_PASSES: usize = 100;

/// Logs what a pass recorded and publishes the alerts it created or changed to the hub.
pub fn publish(hub: &EventHub, report: &EvaluationReport) {
    for breach in &report.past_breaches {
        tracing::info!(rule = %breach.rule_id, model = %breach.model, version = %breach.version,
            at = %breach.would_have_fired_at,
            "past breach recorded: it would have fired before the paging horizon; nobody paged");
    }
    for target in &report.contended {
        tracing::warn!(rule = %target.rule_id, version = %target.version,
            "evaluation kept losing races with another evaluator; the next pass carries on");
    }
    for alert in &report.alerts_created {
        tracing::info!(alert = %alert.id, model = %alert.model, version = %alert.version,
            metric = %alert.metric, severity = ?alert.severity, "alert fired");
        hub.alert(AlertChange::Fired, alert.clone());
    }
    for alert in &report.alerts_updated {
        let change = if alert.status == AlertStatus::Resolved {
            tracing::info!(alert = %alert.id, model = %alert.model, version = %alert.version,
                metric = %alert.metric, "alert resolved automatically");
            AlertChange::Resolved
        } else {
            AlertChange::Updated
        };
        hub.alert(change, alert.clone());
    }
}

/// How often the resolved alerts are counted afresh, which takes in what the gauges
/// could not see close: alerts that another server or the CLI opened and resolved
/// between two counts.
const RECOUNT_RESOLVED_EVERY: Duration = Duration::from_secs(3600);

/// The alerts by status and severity, kept without reading every alert ever stored.
///
/// After each pass the open alerts are counted from their labels alone (the store's
/// open-alerts index, no bodies). Resolved alerts (never deleted, never reopened) are
/// counted in the store at the first refresh and hourly; in between, the count grows by
/// the open alerts that have closed since the previous refresh, and by those this
/// loop's passes resolved without their ever being counted open.
#[derive(Debug, Default)]
struct AlertGauges {
    /// The open alerts at the previous refresh.
    open: HashMap<AlertId, Severity>,
    /// How many of them are in each (status, severity).
    open_statuses: HashMap<(AlertStatus, Severity), u64>,
    resolved: HashMap<Severity, u64>,
    /// Alerts the passes since the previous refresh resolved.
    resolved_by_passes: HashMap<AlertId, Severity>,
    counted_at: Option<Instant>,
}

impl AlertGauges {
    /// Takes note of the alerts a pass resolved.
    fn note(&mut self, report: &EvaluationReport) {
        let alerts = report.alerts_created.iter().chain(&report.alerts_updated);
        for alert in alerts.filter(|a| a.status == AlertStatus::Resolved) {
            self.resolved_by_passes
                .insert(alert.id.clone(), alert.severity);
        }
    }

    async fn count(&mut self, engine: &Engine) -> Result<(), modelwatch_store::StoreError> {
        let store = engine.alert_store();
        let labels = store.open_alert_labels().await?;
        let open: HashMap<AlertId, Severity> = labels
            .iter()
            .map(|label| (label.id.clone(), label.severity))
            .collect();
        let recount = self
            .counted_at
            .is_none_or(|at| at.elapsed() >= RECOUNT_RESOLVED_EVERY);
        if recount {
            self.resolved = store.resolved_alert_counts().await?.into_iter().collect();
            self.counted_at = Some(Instant::now());
        } else {
            let closed = self.open.iter().filter(|(id, _)| !open.contains_key(*id));
            let never_counted_open = self
                .resolved_by_passes
                .iter()
                .filter(|(id, _)| !self.open.contains_key(*id) && !open.contains_key(*id));
            for (_, severity) in closed.chain(never_counted_open) {
                *self.resolved.entry(*severity).or_default() += 1;
            }
        }
        self.resolved_by_passes.clear();
        self.open_statuses = labels
            .iter()
            .map(|label| (label.status, label.severity))
            .fold(HashMap::new(), |mut counts, key| {
                *counts.entry(key).or_default() += 1;
                counts
            });
        self.open = open;
        Ok(())
    }

    /// Every (status, severity) with its count.
    fn counts(&self) -> Vec<(AlertStatus, Severity, u64)> {
        let mut counts = Vec::new();
        for status in AlertStatus::ALL {
            for severity in Severity::ALL {
                let count = match status {
                    AlertStatus::Resolved => self.resolved.get(&severity).copied().unwrap_or(0),
                    open => self
                        .open_statuses
                        .get(&(open, severity))
                        .copied()
                        .unwrap_or(0),
                };
                counts.push((status, severity, count));
            }
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use modelwatch_core::alerting::{Alert, AlertFilter};
    use modelwatch_core::Timestamp;
    use modelwatch_store::alerts::AlertingRows;
    use serde_json::json;

    use super::*;

    const NOW_MS: i64 = 1_714_564_800_000;

    fn alert(n: u32, severity: &str, status: &str) -> Alert {
        let mut alert = json!({"id": format!("alert_{n:08x}"), "rule_id": "rule_00000001",
            "rule_name": "Low accuracy", "model": "fraud", "version": "v1", "metric": "accuracy",
            "severity": severity, "status": status, "message": "m", "value": 0.5,
            "worst_value": 0.5,
            "trigger": {"condition_type": "threshold", "comparison_operator": "lt", "threshold_value": 0.9},
            "first_seen": NOW_MS - 60_000, "last_seen": NOW_MS - 60_000, "occurrences": 1,
            "notified": false});
        if status == "resolved" {
            alert["resolved_by"] = json!("ana");
            alert["resolved_at"] = json!(NOW_MS - 30_000);
        }
        modelwatch_store::alerts::records::deserialize_alert(alert).expect("an alert")
    }

    async fn import(engine: &Engine, alerts: Vec<Alert>) {
        let rows = AlertingRows {
            alerts,
            ..AlertingRows::default()
        };
        engine
            .alert_store()
            .import_alerting(rows)
            .await
            .expect("import");
    }

    /// What `/metrics` showed before the gauges were kept: every alert listed and counted.
    async fn listed_and_counted(engine: &Engine) -> Vec<(AlertStatus, Severity, u64)> {
        let alerts = engine
            .list_alerts(&AlertFilter::default())
            .await
            .expect("list");
        let mut counts = Vec::new();
        for status in AlertStatus::ALL {
            for severity in Severity::ALL {
                let n = alerts
                    .iter()
                    .filter(|a| a.status == status && a.severity == severity)
                    .count();
                counts.push((status, severity, n as u64));
            }
        }
        counts
    }

    /// Counts afresh as the loop does after a pass.
    async fn refreshed(
        gauges: &mut AlertGauges,
        engine: &Engine,
    ) -> Vec<(AlertStatus, Severity, u64)> {
        gauges.count(engine).await.expect("count");
        gauges.counts()
    }

    /// The gauges read only open alerts after a pass, yet show what listing and counting
    /// every alert showed: through acknowledgements, resolutions by people, alerts a
    /// pass opened and resolved at once, and alerts resolved where this server could not
    /// see them (taken in at the next recount).
    #[tokio::test]
    async fn gauges_kept_from_open_alerts_show_what_counting_every_alert_showed() {
        let stores = modelwatch_store::open("memory").await.expect("store");
        let engine = Engine::new(&stores, Default::default());
        let now = Timestamp::from_millis(NOW_MS).expect("now");
        import(
            &engine,
            vec![
                alert(1, "low", "resolved"),
                alert(2, "low", "resolved"),
                alert(3, "high", "active"),
                alert(4, "critical", "acknowledged"),
                alert(5, "high", "active"),
            ],
        )
        .await;
        let mut gauges = AlertGauges::default();
        let shown = refreshed(&mut gauges, &engine).await;
        assert_eq!(shown, listed_and_counted(&engine).await);

        let id = |n: u32| AlertId::from_u32(n);
        engine.acknowledge(&id(3), "ana", now).await.expect("ack");
        engine
            .resolve(&id(4), "ana", None, now)
            .await
            .expect("resolve");
        engine
            .resolve(&id(5), "ana", None, now)
            .await
            .expect("resolve");
        let shown = refreshed(&mut gauges, &engine).await;
        assert_eq!(shown, listed_and_counted(&engine).await);

        // A pass that opened and resolved an alert between two refreshes.
        import(&engine, vec![alert(6, "medium", "resolved")]).await;
        gauges.note(&EvaluationReport {
            alerts_updated: vec![alert(6, "medium", "resolved")],
            ..EvaluationReport::default()
        });
        let shown = refreshed(&mut gauges, &engine).await;
        assert_eq!(shown, listed_and_counted(&engine).await);

        // Another process opened and resolved one unseen: the hourly recount takes it in.
        import(&engine, vec![alert(7, "critical", "resolved")]).await;
        let shown = refreshed(&mut gauges, &engine).await;
        assert_ne!(shown, listed_and_counted(&engine).await);
        gauges.counted_at = None; // as an hour later
        let shown = refreshed(&mut gauges, &engine).await;
        assert_eq!(shown, listed_and_counted(&engine).await);
    }
}
