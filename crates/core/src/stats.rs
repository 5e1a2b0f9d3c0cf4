//! Summaries of a window of values, time-bucketed downsampling for charts, and how a
//! p-value is written.

use crate::sample::{Dataset, Point};
use crate::time::{TimeRange, Timestamp};

/// Descriptive statistics of the values in a window.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub count: u64,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    /// Sample standard deviation (n − 1 in the denominator); 0 for a single value.
    pub std: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub first_timestamp: Timestamp,
    pub last_timestamp: Timestamp,
    /// The value at `last_timestamp`.
    pub last_value: f64,
}

impl Summary {
    /// Summarises points in time order; `None` when there are none.
    pub fn of_points(points: &[Point]) -> Option<Summary> {
        let first = points.first()?;
        let last = points.last()?;
        let (mean, std) = mean_and_std(points.iter().map(|p| p.value));
        let mut sorted: Vec<f64> = points.iter().map(|p| p.value).collect();
        sorted.sort_by(f64::total_cmp);
        Some(Summary {
            count: points.len() as u64,
            mean,
            min: sorted[0],
            max: sorted[sorted.len() - 1],
            std,
            p50: quantile_sorted(&sorted, 0.50),
            p90: quantile_sorted(&sorted, 0.90),
            p95: quantile_sorted(&sorted, 0.95),
            p99: quantile_sorted(&sorted, 0.99),
            first_timestamp: first.timestamp,
            last_timestamp: last.timestamp,
            last_value: last.value,
        })
    }
}

/// How a cross-series read reduces each series' window to one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Aggregation {
    Mean,
    Min,
    Max,
    Sum,
    Count,
    /// The value of the newest sample in the window.
    Last,
}

impl Aggregation {
    pub const ALL: [Aggregation; 6] = [
        Aggregation::Mean,
        Aggregation::Min,
        Aggregation::Max,
        Aggregation::Sum,
        Aggregation::Count,
        Aggregation::Last,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Aggregation::Mean => "mean",
            Aggregation::Min => "min",
            Aggregation::Max => "max",
            Aggregation::Sum => "sum",
            Aggregation::Count => "count",
            Aggregation::Last => "last",
        }
    }
}

/// Count, sum, minimum, maximum and newest sample of one series' window: what every
/// [`Aggregation`] is computed from, so a store reduces a window in one pass. Points may
/// arrive in any order (the newest by timestamp is kept), each timestamp once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowStats {
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub last_timestamp: Timestamp,
    /// The value at `last_timestamp`.
    pub last: f64,
}

impl WindowStats {
    /// The stats of a window holding one point.
    pub fn of(timestamp: Timestamp, value: f64) -> WindowStats {
        WindowStats {
            count: 1,
            sum: value,
            min: value,
            max: value,
            last_timestamp: timestamp,
            last: value,
        }
    }

    pub fn push(&mut self, timestamp: Timestamp, value: f64) {
        self.count += 1;
        self.sum += value;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        if timestamp >= self.last_timestamp {
            self.last_timestamp = timestamp;
            self.last = value;
        }
    }

    /// The stats of points given in any order; `None` when there are none.
    pub fn of_points<'a>(points: impl IntoIterator<Item = &'a Point>) -> Option<WindowStats> {
        let mut stats: Option<WindowStats> = None;
        for point in points {
            match &mut stats {
                Some(stats) => stats.push(point.timestamp, point.value),
                None => stats = Some(WindowStats::of(point.timestamp, point.value)),
            }
        }
        stats
    }

    pub fn mean(&self) -> f64 {
        self.sum / self.count as f64
    }

    pub fn value(&self, aggregation: Aggregation) -> f64 {
        match aggregation {
            Aggregation::Mean => self.mean(),
            Aggregation::Min => self.min,
            Aggregation::Max => self.max,
            Aggregation::Sum => self.sum,
            Aggregation::Count => self.count as f64,
            Aggregation::Last => self.last,
        }
    }
}

/// Mean and sample standard deviation by Welford's method (stable for long windows).
pub fn mean_and_std(values: impl IntoIterator<Item = f64>) -> (f64, f64) {
    let (mut n, mut mean, mut m2) = (0u64, 0.0f64, 0.0f64);
    for value in values {
        n += 1;
        let delta = value - mean;
        mean += delta / n as f64;
        m2 += delta * (value - mean);
    }
    let std = if n > 1 {
        (m2 / (n - 1) as f64).sqrt()
    } else {
        0.0
    };
    (if n == 0 { f64::NAN } else { mean }, std)
}

/// The `q`-quantile of sorted values, interpolating linearly between order statistics
/// (numpy's default, R's type 7).
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        1 => sorted[0],
        n => {
            let position = q.clamp(0.0, 1.0) * (n - 1) as f64;
            let lower = position.floor() as usize;
            let upper = (lower + 1).min(n - 1);
            let fraction = position - lower as f64;
            sorted[lower] + (sorted[upper] - sorted[lower]) * fraction
        }
    }
}

/// One time bucket of a downsampled series. Minimum and maximum are kept so that spikes
/// stay visible however far a chart zooms out.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    /// Start of the bucket (inclusive).
    pub start: Timestamp,
    pub count: u64,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    pub first: f64,
    pub last: f64,
}

/// Groups points (in time order) into at most `max_points` equal-width buckets over
/// `range`, returning only the non-empty ones. When the range is unbounded on a side, the
/// data's own first or last time bounds it.
pub fn downsample(points: &[Point], range: TimeRange, max_points: usize) -> Vec<Bucket> {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return Vec::new();
    };
    let mut buckets = Downsampler::new(range, first.timestamp, last.timestamp, max_points);
    for point in points {
        buckets.push(point);
    }
    buckets.finish()
}

/// [`downsample`] a point at a time, for points read a page at a time: it holds only its
/// buckets. It needs the times of the first and last point in `range` up front (they
/// fix the buckets' width); fed the same points, it gives what [`downsample`] gives.
#[derive(Debug, Clone)]
pub struct Downsampler {
    range: TimeRange,
    start: Timestamp,
    width: i64,
    buckets: Vec<Bucket>,
    current_index: i64,
}

impl Downsampler {
    pub fn new(range: TimeRange, first: Timestamp, last: Timestamp, max_points: usize) -> Self {
        let max_points = i64::try_from(max_points.max(1)).unwrap_or(i64::MAX);
        let start = range.start.max(first);
        let end = range
            .end
            .min(Timestamp::from_millis(last.as_millis() + 1).unwrap_or(Timestamp::MAX));
        let span = end.millis_since(start).max(1);
        let width = (span + max_points - 1) / max_points;
        Downsampler {
            range,
            start,
            width,
            buckets: Vec::new(),
            current_index: i64::MIN,
        }
    }

    /// Where the first bucket starts (a store bucketing by itself aligns there).
    pub fn start(&self) -> Timestamp {
        self.start
    }

    /// The buckets' width in milliseconds (at least 1).
    pub fn width(&self) -> i64 {
        self.width
    }

    /// The next point, in time order.
    pub fn push(&mut self, point: &Point) {
        self.push_value(point.timestamp, point.value);
    }

    /// The next point's time and value, in time order.
    pub fn push_value(&mut self, timestamp: Timestamp, value: f64) {
        if !self.range.contains(timestamp) {
            return;
        }
        let index = timestamp.millis_since(self.start) / self.width;
        match self.buckets.last_mut() {
            Some(bucket) if index == self.current_index => {
                bucket.count += 1;
                bucket.mean += (value - bucket.mean) / bucket.count as f64;
                bucket.min = bucket.min.min(value);
                bucket.max = bucket.max.max(value);
                bucket.last = value;
            }
            _ => {
                self.current_index = index;
                let bucket_start =
                    Timestamp::from_millis(self.start.as_millis() + index * self.width)
                        .unwrap_or(self.start);
                self.buckets.push(Bucket {
                    start: bucket_start,
                    count: 1,
                    mean: value,
                    min: value,
                    max: value,
                    first: value,
                    last: value,
                });
            }
        }
    }

    pub fn finish(self) -> Vec<Bucket> {
        self.buckets
    }
}

/// A series read for a chart a point at a time: every point while there are at most
/// `max_points`, their buckets (as [`downsample`] makes them) once there are more. It
/// holds at most `max_points` points and as many buckets however many it is fed, so a
/// store can decode a long range straight into it (issue 15).
#[derive(Debug, Clone)]
pub struct Chart {
    range: TimeRange,
    last: Timestamp,
    max_points: usize,
    count: usize,
    points: Vec<Point>,
    buckets: Option<Downsampler>,
}

/// What a [`Chart`] shows.
#[derive(Debug, Clone, PartialEq)]
pub enum Charted {
    /// Every point: there were at most `max_points`.
    Points(Vec<Point>),
    /// Their buckets: there were more.
    Buckets(Vec<Bucket>),
}

impl Chart {
    /// A chart of the points in `range`, the last of which is at `last` (it fixes the
    /// buckets' width, with the first point fed).
    pub fn new(range: TimeRange, last: Timestamp, max_points: usize) -> Chart {
        Chart {
            range,
            last,
            max_points: max_points.max(1),
            count: 0,
            points: Vec::new(),
            buckets: None,
        }
    }

    /// The next point, in time order; points outside the range are left out.
    pub fn push(&mut self, timestamp: Timestamp, value: f64, dataset: Option<&Dataset>) {
        if !self.range.contains(timestamp) {
            return;
        }
        self.count += 1;
        let (range, last, max_points) = (self.range, self.last, self.max_points);
        self.buckets
            .get_or_insert_with(|| Downsampler::new(range, timestamp, last, max_points))
            .push_value(timestamp, value);
        if self.count <= self.max_points {
            self.points.push(Point {
                timestamp,
                value,
                dataset: dataset.cloned(),
            });
        } else if self.count == self.max_points + 1 {
            self.points = Vec::new();
        }
    }

    /// How many points were fed (in the range).
    pub fn count(&self) -> usize {
        self.count
    }

    pub fn finish(self) -> Charted {
        if self.count <= self.max_points {
            Charted::Points(self.points)
        } else {
            Charted::Buckets(self.buckets.map(Downsampler::finish).unwrap_or_default())
        }
    }
}

/// A p-value as every output writes it (health reasons, the CLI, notifications; the
/// dashboard's `pValue` matches): four decimals, or two significant digits in scientific
/// notation below 0.0001, where four decimals would print a misleading 0.0000.
pub fn format_p_value(p: f64) -> String {
    if p != 0.0 && p.abs() < 1e-4 {
        format!("{p:.1e}")
    } else {
        format!("{p:.4}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_stats_give_every_aggregation_whatever_the_order() {
        let in_order = points(&[(1, 0.5), (2, 0.25), (3, 1.0)]);
        let shuffled = points(&[(3, 1.0), (1, 0.5), (2, 0.25)]);
        let stats = WindowStats::of_points(&in_order).unwrap();
        assert_eq!(WindowStats::of_points(&shuffled), Some(stats));
        let values: Vec<(&str, f64)> = Aggregation::ALL
            .iter()
            .map(|a| (a.as_str(), stats.value(*a)))
            .collect();
        assert_eq!(
            values,
            vec![
                ("mean", 1.75 / 3.0),
                ("min", 0.25),
                ("max", 1.0),
                ("sum", 1.75),
                ("count", 3.0),
                ("last", 1.0)
            ]
        );
        assert_eq!(WindowStats::of_points(&[]), None);
    }

    #[test]
    fn tiny_p_values_keep_their_magnitude() {
        assert_eq!(format_p_value(0.0012), "0.0012");
        assert_eq!(format_p_value(0.0003), "0.0003");
        assert_eq!(format_p_value(9.4e-5), "9.4e-5");
        assert_eq!(format_p_value(3.2e-9), "3.2e-9");
        assert_eq!(format_p_value(0.0), "0.0000");
    }

    fn points(values: &[(i64, f64)]) -> Vec<Point> {
        values
            .iter()
            .map(|&(t, value)| Point {
                timestamp: Timestamp::from_millis(t).unwrap(),
                value,
                dataset: None,
            })
            .collect()
    }

    #[test]
    fn summary_has_exact_values() {
        let s = Summary::of_points(&points(&[
            (1, 2.0),
            (2, 4.0),
            (3, 4.0),
            (4, 4.0),
            (5, 5.0),
            (6, 5.0),
            (7, 7.0),
            (8, 9.0),
        ]))
        .unwrap();
        assert_eq!(s.count, 8);
        assert_eq!(s.mean, 5.0);
        assert!((s.std - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
        assert_eq!((s.min, s.max), (2.0, 9.0));
        assert_eq!(s.p50, 4.5);
        assert!((s.p90 - 7.6).abs() < 1e-12);
        assert_eq!(s.last_value, 9.0);
    }

    #[test]
    fn single_value_summary_has_zero_std() {
        let s = Summary::of_points(&points(&[(1, 0.5)])).unwrap();
        assert_eq!((s.std, s.p99, s.mean), (0.0, 0.5, 0.5));
        assert!(Summary::of_points(&[]).is_none());
    }

    #[test]
    fn a_chart_keeps_the_points_up_to_max_points_and_then_gives_downsample_s_buckets() {
        let data: Vec<(i64, f64)> = (0..5_000).map(|i| (i * 1_000, (i % 97) as f64)).collect();
        let all = points(&data);
        let range = TimeRange::new(
            Timestamp::from_millis(10_000).unwrap(),
            Timestamp::from_millis(4_000_000).unwrap(),
        );
        let inside: Vec<Point> = all
            .iter()
            .filter(|p| range.contains(p.timestamp))
            .cloned()
            .collect();
        let last = inside.last().unwrap().timestamp;
        for max_points in [1, 100, inside.len() - 1, inside.len(), 10_000] {
            let mut chart = Chart::new(range, last, max_points);
            for point in &all {
                chart.push(point.timestamp, point.value, point.dataset.as_ref());
            }
            assert_eq!(chart.count(), inside.len());
            let expected = if inside.len() <= max_points {
                Charted::Points(inside.clone())
            } else {
                Charted::Buckets(downsample(&inside, range, max_points))
            };
            assert_eq!(chart.finish(), expected, "max_points {max_points}");
        }
    }

    #[test]
    fn downsample_never_exceeds_max_points_and_keeps_extremes() {
        let data: Vec<(i64, f64)> = (0..10_000)
            .map(|i| (i * 60_000, if i == 4_321 { 99.0 } else { 1.0 }))
            .collect();
        let buckets = downsample(&points(&data), TimeRange::all(), 7);
        assert!(buckets.len() <= 7);
        assert_eq!(buckets.iter().map(|b| b.count).sum::<u64>(), 10_000);
        assert!(buckets.iter().any(|b| b.max == 99.0));
    }

    #[test]
    fn downsample_respects_range() {
        let data: Vec<(i64, f64)> = (0..100).map(|i| (i, i as f64)).collect();
        let range = TimeRange::new(
            Timestamp::from_millis(10).unwrap(),
            Timestamp::from_millis(20).unwrap(),
        );
        let buckets = downsample(&points(&data), range, 5);
        assert_eq!(buckets.len(), 5);
        assert_eq!(buckets.iter().map(|b| b.count).sum::<u64>(), 10);
        assert_eq!(buckets[0].start.as_millis(), 10);
        assert_eq!((buckets[0].min, buckets[0].max), (10.0, 11.0));
    }
}
