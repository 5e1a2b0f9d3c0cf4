//! modelwatch's vocabulary and pure logic.
//!
//! Everything here is deterministic: no I/O, no clock, no async runtime. Callers pass
//! "now" in as a [`Timestamp`], which is what makes detection and rule evaluation
//! testable at exact times. The store, the engine and the faces (CLI, HTTP) build on it.

pub mod alerting;
pub mod compare;
pub mod detection;
pub mod health;
pub mod metric;
pub mod name;
pub mod predictions;
pub mod sample;
pub mod stats;
pub mod text;
pub mod time;

pub use metric::{Direction, Metric, MetricDefinition, MetricFamily, MetricScope, ValueRange};
pub use sample::{
    Dataset, DatasetScope, ModelName, Point, Sample, SeriesKey, ValidationError, Version,
};
pub use stats::{Aggregation, Bucket, Summary, WindowStats};
pub use time::{TimeRange, Timestamp};
