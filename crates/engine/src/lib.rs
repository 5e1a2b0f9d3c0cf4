//! The engine: the layer between the pure core and the store.
//!
//! It reads windows of samples from a [`modelwatch_store::MetricStore`], runs the core's
//! detectors, health assessment and rule state machine on them, and persists what comes
//! out. It owns no clock: every entry point takes `now`.
//!
//! - [`analysis`]: degradation checks, performance history and health, version comparison
//!   over stored data (issue 3).
//! - evaluation of alert rules (issue 4) lives beside it.

pub mod analysis;
