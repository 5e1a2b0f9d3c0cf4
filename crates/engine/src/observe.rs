//! Reading what observations need: the points of the ranges the core's
//! [`ranges_needed`] names, for many series at once.
//!
//! Live evaluation and the backtest both read through [`read_series`] and hand the points
//! to the core's [`observations`](modelwatch_core::alerting::observe::observations), so
//! they see exactly the same data.

use modelwatch_core::alerting::observe::ranges_needed;
use modelwatch_core::alerting::Rule;
use modelwatch_core::{Point, SeriesKey, TimeRange, Timestamp};
use modelwatch_store::{MetricStore, StoreError};

/// How many series read their ranges in one store call: enough that the round trip is
/// negligible, few enough to bound the points held at once.
pub(crate) const SERIES_PER_READ: usize = 256;

/// One series to read for a rule: its key and the first and last instant observed.
#[derive(Debug, Clone)]
pub(crate) struct SeriesRead {
    pub key: SeriesKey,
    pub first: Timestamp,
    pub last: Timestamp,
}

/// The points each read needs for `rule_of(read)` (see [`ranges_needed`]), in order: one
/// time-ordered vector per read, the concatenation of its ranges. Reads are grouped into
/// store calls of [`SERIES_PER_READ`], two in flight at a time so that both reader
/// threads decode while this task works.
pub(crate) async fn read_series<'a>(
    metrics: &dyn MetricStore,
    reads: &'a [SeriesRead],
    rule_of: impl Fn(usize) -> &'a Rule,
) -> Result<Vec<Vec<Point>>, StoreError> {
    let mut found = Vec::with_capacity(reads.len());
    let indexed: Vec<(usize, &SeriesRead)> = reads.iter().enumerate().collect();
    let mut groups = indexed.chunks(SERIES_PER_READ);
    while let Some(first) = groups.next() {
        let second = groups.next().unwrap_or(&[]);
        let (a, b) = tokio::join!(
            read_group(metrics, first, &rule_of),
            read_group(metrics, second, &rule_of)
        );
        found.extend(a?);
        found.extend(b?);
    }
    Ok(found)
}

async fn read_group<'a>(
    metrics: &dyn MetricStore,
    group: &[(usize, &SeriesRead)],
    rule_of: &impl Fn(usize) -> &'a Rule,
) -> Result<Vec<Vec<Point>>, StoreError> {
    if group.is_empty() {
        return Ok(Vec::new());
    }
    let mut requests: Vec<(SeriesKey, TimeRange)> = Vec::new();
    let mut counts = Vec::with_capacity(group.len());
    for (index, read) in group {
        let ranges = ranges_needed(rule_of(*index), read.first, read.last);
        counts.push(ranges.len());
        requests.extend(ranges.into_iter().map(|range| (read.key.clone(), range)));
    }
    let mut answered = metrics.range_many(&requests).await?.into_iter();
    let mut found = Vec::with_capacity(group.len());
    for count in counts {
        let mut points = Vec::new();
        for _ in 0..count {
            let part = answered
                .next()
                .ok_or_else(|| StoreError::Database("range_many answered too few ranges".into()))?;
            if points.is_empty() {
                points = part;
            } else {
                points.extend(part);
            }
        }
        found.push(points);
    }
    Ok(found)
}
