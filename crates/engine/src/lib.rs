//! The engine: the layer between the pure core and the store.
//!
//! It reads windows of samples from a [`modelwatch_store::MetricStore`], runs the core's
//! detectors, health assessment and rule state machine on them, and persists what comes
//! out. Every entry point takes `now`; only the evaluation loop reads a [`Clock`].
//!
//! - [`analysis`]: degradation checks, performance history and health, version comparison
//!   over stored data (issue 3).
//! - [`alerting`]: the [`Engine`] for rules, alert lifecycle, queries and silences;
//!   [`evaluation`] counts every new sample through the core's replay and persists what it
//!   plans with its notifications; [`backtest`] replays a rule over history through the
//!   same observations and the same replay.
//! - [`predictions`]: stores predictions and labels and writes each changed window's
//!   metrics (and label coverage) as samples.
//! - [`evaluator`]: the evaluation loop (every interval, and debounced after samples
//!   arrive), the only reader of the [`Clock`]; [`events`] the hub it listens to and
//!   publishes alerts to (the event stream's source).

pub mod alerting;
pub mod analysis;
pub mod backtest;
mod clock;
pub mod evaluation;
pub mod evaluator;
pub mod events;
mod observe;
pub mod predictions;

pub use alerting::{Engine, EngineError, IdSource, RandomIds, SequentialIds};
pub use backtest::{BacktestReport, VersionBacktest};
pub use clock::Clock;
pub use evaluation::{EvaluationReport, PastBreachRecorded, RuleEvaluation, TargetKey};
pub use events::EventHub;
