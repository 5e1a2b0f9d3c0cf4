//! Continuous evaluation: every enabled rule each `interval`, and the rules of a model
//! version shortly (`debounce`) after new samples for it arrive, so a bad value raises its
//! alert within seconds instead of at the next full pass.
//!
//! The evaluator listens to the same event hub the SSE stream reads, which already
//! coalesces samples per series; it publishes the alerts a pass fires back to the hub and
//! times each pass for `/metrics`. A failing pass is logged and the loop goes on.

use std::collections::HashSet;
use std::time::Duration;

use modelwatch_core::alerting::{AlertFilter, AlertStatus, Severity};
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
                pass(&state, &engine, None).await;
                refresh_alert_gauges(&state, &engine).await;
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
                    pass(&state, &engine, Some((&model, &version))).await;
                }
                refresh_alert_gauges(&state, &engine).await;
            }
        }
    }
}

/// Passes at most this many in a row while samples are left to count (an import or an
/// outage); the next tick carries on.
const MAX_CATCH_UP_PASSES: usize = 100;

/// One pass, then more at once while the pass left samples to count: each pass is
/// bounded, so a large import is counted in steps without holding anything up for long.
async fn pass(state: &AppState, engine: &Engine, scope: Option<(&ModelName, &Version)>) {
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
        if let Ok(json) = serde_json::to_value(alert) {
            state.events().alert("fired", json);
        }
    }
    for alert in &report.alerts_updated {
        let change = if alert.status == AlertStatus::Resolved {
            tracing::info!(alert = %alert.id, model = %alert.model, version = %alert.version,
                metric = %alert.metric, "alert resolved automatically");
            "resolved"
        } else {
            "updated"
        };
        if let Ok(json) = serde_json::to_value(alert) {
            state.events().alert(change, json);
        }
    }
}

/// Sets `modelwatch_alerts{state, severity}` from the open alerts.
async fn refresh_alert_gauges(state: &AppState, engine: &Engine) {
    let Ok(alerts) = engine.list_alerts(&AlertFilter::default()).await else {
        return;
    };
    let gauges = &state.telemetry().alerts;
    for status in AlertStatus::ALL {
        for severity in Severity::ALL {
            let count = alerts
                .iter()
                .filter(|a| a.status == status && a.severity == severity)
                .count();
            gauges
                .get_or_create(&AlertLabels {
                    state: status.as_str().to_owned(),
                    severity: severity.as_str().to_owned(),
                })
                .set(count as i64);
        }
    }
}
