//! The HTTP face of the evaluation loop ([`modelwatch_engine::evaluator`]): the loop runs
//! on the server's event hub and clock, stops when the server shuts down, and keeps its
//! figures in `/metrics` (pass durations, alerts by state and severity, samples written
//! from judged prediction windows).

use std::sync::Arc;
use std::time::Duration;

use modelwatch_core::alerting::{AlertStatus, Severity};
use modelwatch_core::Sample;
use modelwatch_engine::evaluator::{Evaluator, PassObserver};
use modelwatch_engine::Engine;

pub use modelwatch_engine::evaluator::Schedule;

use crate::telemetry::AlertLabels;
use crate::AppState;

/// Runs the evaluation loop until the server shuts down.
pub async fn run(state: AppState, engine: Engine, schedule: Schedule) {
    let shutdown = state.shutting_down();
    Evaluator::new(
        engine,
        state.events().clone(),
        state.clock().clone(),
        schedule,
    )
    .observed_by(Arc::new(Figures(state)))
    .run(shutdown)
    .await;
}

/// The loop's figures, kept in the server's telemetry.
struct Figures(AppState);

impl PassObserver for Figures {
    fn pass_timed(&self, elapsed: Duration) {
        self.0
            .telemetry()
            .evaluation_seconds
            .observe(elapsed.as_secs_f64());
    }

    fn samples_written(&self, samples: &[Sample]) {
        self.0
            .telemetry()
            .samples_ingested
            .inc_by(samples.len() as u64);
    }

    fn alerts_counted(&self, status: AlertStatus, severity: Severity, count: u64) {
        self.0
            .telemetry()
            .alerts
            .get_or_create(&AlertLabels {
                state: status.as_str().to_owned(),
                severity: severity.as_str().to_owned(),
            })
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }
}
