//! Continuous evaluation: every enabled rule each `interval`, and the rules of a model
//! version shortly (`debounce`) after new samples for it arrive, so a bad value raises its
//! alert within seconds instead of at the next full pass.
//!
//! The evaluator listens to the same event hub the SSE stream reads, which already
//! coalesces samples per series; it publishes the alerts a pass fires back to the hub,
//! times each pass and keeps the alert gauges for `/metrics`. A failing pass is logged
//! and the loop goes on. Before each full pass it judges the prediction windows that
//! time alone made due (see `modelwatch_core::predictions::judging`).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use modelwatch_core::alerting::{AlertId, AlertStatus, Severity};
use modelwatch_core::{ModelName, Version};
use modelwatch_engine::alerting::Engine;
use modelwatch_engine::evaluation::EvaluationReport;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use crate::events::Event;
use crate::telemetry::AlertLabels;
use crate::AppState;

/// How often and how soon to evaluate.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub interval: Duration,
    pub debounce: Duration,
}

/// Runs until the server shuts down.
pub async fn run(state: AppState, engine: Engine, schedule: Schedule) {
    let mut events = state.events().subscribe();
    let mut ticker = tokio::time::interval(schedule.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut dirty: HashSet<(ModelName, Version)> = HashSet::new();
    let mut due: Option<Instant> = None;
    let mut gauges = AlertGauges::default();
    let shutdown = state.shutting_down();
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
                judge_windows(&state, &engine).await;
                pass(&state, &engine, None, &mut gauges).await;
                gauges.refresh(&state, &engine).await;
            }
            received = events.recv() => match received {
                Ok(Event::Samples(update)) => {
                    if let Some(key) = &update.key {
                        dirty.insert((key.model.clone(), key.version.clone()));
                        due.get_or_insert_with(|| Instant::now() + schedule.debounce);
                    }
                }
                Ok(Event::Alert(_)) => {}
                // Missed some updates: the next full pass covers them.
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            },
            _ = debounce_elapsed => {
                due = None;
                for (model, version) in std::mem::take(&mut dirty) {
                    pass(&state, &engine, Some((&model, &version)), &mut gauges).await;
                }
                gauges.refresh(&state, &engine).await;
            }
        }
    }
}

/// Judges the prediction windows that became due by time alone (their label delay
/// passed, or they closed), so the full pass that follows counts their samples.
async fn judge_windows(state: &AppState, engine: &Engine) {
    match engine.judge_windows(state.now()).await {
        Ok((_, samples)) => state.announce(&samples),
        Err(error) => tracing::warn!(%error, "judging prediction windows failed"),
    }
}

/// Passes at most this many in a row while samples are left to count (an import or an
/// outage); the next tick carries on.
const MAX_CATCH_UP_PASSES: usize = 100;

/// One pass, then more at once while the pass left samples to count: each pass is
/// bounded, so a large import is counted in steps without holding anything up for long.
async fn pass(
    state: &AppState,
    engine: &Engine,
    scope: Option<(&ModelName, &Version)>,
    gauges: &mut AlertGauges,
) {
    for _ in 0..MAX_CATCH_UP_PASSES {
        let started = std::time::Instant::now();
        let now = state.now();
        let outcome = match scope {
            Some((model, version)) => engine.evaluate_model(model, version, now).await,
            None => engine.evaluate_all(now).await,
        };
        state
            .telemetry()
            .evaluation_seconds
            .observe(started.elapsed().as_secs_f64());
        match outcome {
            Ok(report) => {
                publish(state, &report);
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

pub(crate) fn publish(state: &AppState, report: &EvaluationReport) {
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
        state
            .events()
            .alert("fired", crate::wire::Alert::from(alert));
    }
    for alert in &report.alerts_updated {
        let change = if alert.status == AlertStatus::Resolved {
            tracing::info!(alert = %alert.id, model = %alert.model, version = %alert.version,
                metric = %alert.metric, "alert resolved automatically");
            "resolved"
        } else {
            "updated"
        };
        state
            .events()
            .alert(change, crate::wire::Alert::from(alert));
    }
}

/// How often the resolved alerts are counted afresh, which takes in what the gauges
/// could not see close: alerts that another server or the CLI opened and resolved
/// between two counts.
const RECOUNT_RESOLVED_EVERY: Duration = Duration::from_secs(3600);

/// `modelwatch_alerts{state, severity}`, kept without reading every alert ever stored.
///
/// After each pass the open alerts are counted from their labels alone (the store's
/// open-alerts index, no bodies). Resolved alerts (never deleted, never reopened) are
/// counted in the store at the first refresh and hourly; in between, the count grows by
/// the open alerts that have closed since the previous refresh, and by those this
/// server's passes resolved without their ever being counted open.
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

    /// Counts again and sets every gauge; on a store error the gauges keep their values
    /// and the next refresh counts afresh.
    async fn refresh(&mut self, state: &AppState, engine: &Engine) {
        if let Err(error) = self.count(engine).await {
            tracing::warn!(%error, "cannot count the alerts for /metrics");
            self.counted_at = None;
            return;
        }
        let gauges = &state.telemetry().alerts;
        for status in AlertStatus::ALL {
            for severity in Severity::ALL {
                let count = match status {
                    AlertStatus::Resolved => self.resolved.get(&severity).copied().unwrap_or(0),
                    open => self.open_count(open, severity),
                };
                gauges
                    .get_or_create(&AlertLabels {
                        state: status.as_str().to_owned(),
                        severity: severity.as_str().to_owned(),
                    })
                    .set(i64::try_from(count).unwrap_or(i64::MAX));
            }
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

    fn open_count(&self, status: AlertStatus, severity: Severity) -> u64 {
        self.open_statuses
            .get(&(status, severity))
            .copied()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use modelwatch_core::alerting::{Alert, AlertFilter};
    use modelwatch_core::Timestamp;
    use modelwatch_store::alerts::AlertingRows;
    use serde_json::json;

    use super::*;
    use crate::{Clock, Limits};

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
        serde_json::from_value(alert).expect("an alert")
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
    async fn listed_and_counted(engine: &Engine) -> Vec<(AlertStatus, Severity, i64)> {
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
                counts.push((status, severity, n as i64));
            }
        }
        counts
    }

    fn shown(state: &AppState) -> Vec<(AlertStatus, Severity, i64)> {
        let mut shown = Vec::new();
        for status in AlertStatus::ALL {
            for severity in Severity::ALL {
                let labels = AlertLabels {
                    state: status.as_str().to_owned(),
                    severity: severity.as_str().to_owned(),
                };
                shown.push((
                    status,
                    severity,
                    state.telemetry().alerts.get_or_create(&labels).get(),
                ));
            }
        }
        shown
    }

    /// The gauges read only open alerts after a pass, yet show what listing and counting
    /// every alert showed: through acknowledgements, resolutions by people, alerts a
    /// pass opened and resolved at once, and alerts resolved where this server could not
    /// see them (taken in at the next recount).
    #[tokio::test]
    async fn gauges_kept_from_open_alerts_show_what_counting_every_alert_showed() {
        let stores = modelwatch_store::open("memory").await.expect("store");
        let engine = Engine::new(&stores, Default::default());
        let state = AppState::new(
            Arc::clone(&stores.metrics),
            None,
            Limits::default(),
            Clock::new(|| Timestamp::from_millis(NOW_MS).expect("now")),
            Some(engine.clone()),
        );
        let now = state.now();
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
        gauges.refresh(&state, &engine).await;
        assert_eq!(shown(&state), listed_and_counted(&engine).await);

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
        gauges.refresh(&state, &engine).await;
        assert_eq!(shown(&state), listed_and_counted(&engine).await);

        // A pass that opened and resolved an alert between two refreshes.
        import(&engine, vec![alert(6, "medium", "resolved")]).await;
        gauges.note(&EvaluationReport {
            alerts_updated: vec![alert(6, "medium", "resolved")],
            ..EvaluationReport::default()
        });
        gauges.refresh(&state, &engine).await;
        assert_eq!(shown(&state), listed_and_counted(&engine).await);

        // Another process opened and resolved one unseen: the hourly recount takes it in.
        import(&engine, vec![alert(7, "critical", "resolved")]).await;
        gauges.refresh(&state, &engine).await;
        assert_ne!(shown(&state), listed_and_counted(&engine).await);
        gauges.counted_at = None; // as an hour later
        gauges.refresh(&state, &engine).await;
        assert_eq!(shown(&state), listed_and_counted(&engine).await);
    }
}
