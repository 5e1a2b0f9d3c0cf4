//! The detectors under test, all asked the same question at the same "now": (a) the
//! seed's plain percentage rule, (b) modelwatch's default check over the same windows, and
//! on streams with a daily cycle (c) modelwatch with its seasonal daily baseline.

use modelwatch_core::detection::{
    detection_windows, Comparison, ComparisonWindow, DetectionOptions, Detector, History,
    MetricWindows, Reference, Seasonality, WindowSpec,
};
use modelwatch_core::{MetricDefinition, ModelName, Point, TimeRange, Timestamp, Version};

/// The seed's threshold: degraded when worse by more than 5 %.
pub const PLAIN_THRESHOLD_PERCENTAGE: f64 = 5.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Plain,
    Modelwatch,
    /// modelwatch with the `seasonal: daily` option: the baseline is the same hours a day
    /// earlier. Run only where a daily cycle is known to exist.
    ModelwatchDailyBaseline,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Plain, Kind::Modelwatch, Kind::ModelwatchDailyBaseline];

    pub fn label(self) -> &'static str {
        match self {
            Kind::Plain => "plain 5 % rule (seed)",
            Kind::Modelwatch => "modelwatch default",
            Kind::ModelwatchDailyBaseline => "modelwatch, seasonal: daily",
        }
    }
}

/// Points of a time-ordered series inside a range.
pub fn slice(points: &[Point], range: TimeRange) -> &[Point] {
    let start = points.partition_point(|p| p.timestamp < range.start);
    let end = points.partition_point(|p| p.timestamp < range.end);
    &points[start..end.max(start)]
}

/// A detector with its scratch buffers, reused across checks.
#[derive(Debug)]
pub struct Runner {
    pub spec: WindowSpec,
    pub options: DetectionOptions,
    detector: Detector,
    model: ModelName,
    version: Version,
}

impl Runner {
    pub fn new(comparison_hours: Option<u32>) -> Runner {
        Runner {
            spec: WindowSpec {
                comparison_hours,
                ..WindowSpec::default()
            },
            options: options_from_env(),
            detector: Detector::default(),
            model: ModelName::parse("bench").unwrap_or_else(|_| unreachable!()),
            version: Version::parse("v1").unwrap_or_else(|_| unreachable!()),
        }
    }

    /// Does `kind` call the series degraded at `now` (only points before `now` are seen)?
    pub fn degraded(
        &mut self,
        kind: Kind,
        definition: &MetricDefinition,
        series: &[Point],
        now: Timestamp,
    ) -> bool {
        let spec = match kind {
            Kind::ModelwatchDailyBaseline => WindowSpec {
                seasonal: Some(Seasonality::Daily),
                ..self.spec
            },
            _ => self.spec,
        };
        let windows = detection_windows(now, &spec);
        let baseline = slice(series, windows.baseline);
        let (comparison, latest_point);
        match windows.comparison {
            ComparisonWindow::Latest { search } => {
                latest_point = slice(series, search).last();
                comparison = Comparison::Latest(latest_point);
            }
            ComparisonWindow::Range(range) => comparison = Comparison::Window(slice(series, range)),
        }
        match kind {
            Kind::Plain => plain_rule(definition, baseline, comparison),
            Kind::Modelwatch | Kind::ModelwatchDailyBaseline => {
                let reference = windows.reference.map(|(seasonality, range)| Reference {
                    seasonality,
                    points: slice(series, range),
                });
                let history = match (windows.comparison, windows.history) {
                    (ComparisonWindow::Range(range), Some(history)) => Some(History {
                        points: slice(series, history),
                        end: range.end,
                        window_minutes: ((range.end.as_millis() - range.start.as_millis()) / 60_000)
                            as usize,
                    }),
                    _ => None,
                };
                let input = MetricWindows {
                    definition,
                    baseline,
                    comparison,
                    reference,
                    history,
                };
                self.detector
                    .check(&self.model, &self.version, &input, &self.options)
                    .is_degraded
            }
        }
    }
}

/// Baseline mean vs the latest value (or the comparison mean): degraded when worse by more
/// than 5 % of the baseline. No statistics, no minimum sample count beyond one.
fn plain_rule(
    definition: &MetricDefinition,
    baseline: &[Point],
    comparison: Comparison<'_>,
) -> bool {
    let baseline: Vec<&Point> = match comparison {
        Comparison::Latest(Some(latest)) => baseline
            .iter()
            .filter(|p| p.timestamp < latest.timestamp)
            .collect(),
        _ => baseline.iter().collect(),
    };
    if baseline.is_empty() {
        return false;
    }
    let base = baseline.iter().map(|p| p.value).sum::<f64>() / baseline.len() as f64;
    let current = match comparison {
        Comparison::Latest(Some(latest)) => latest.value,
        Comparison::Latest(None) => return false,
        Comparison::Window([]) => return false,
        Comparison::Window(points) => {
            points.iter().map(|p| p.value).sum::<f64>() / points.len() as f64
        }
    };
    if base == 0.0 {
        return false;
    }
    100.0 * definition.direction.worsening(base, current) / base.abs() > PLAIN_THRESHOLD_PERCENTAGE
}

/// `DetectionOptions::default()`, or the JSON in `MODELWATCH_DETECTION_OPTIONS` (fields
/// not given keep their defaults) to try other settings on the same streams.
pub fn options_from_env() -> DetectionOptions {
    let mut options = DetectionOptions::default();
    let Ok(json) = std::env::var("MODELWATCH_DETECTION_OPTIONS") else {
        return options;
    };
    if let Err(error) = apply_options(&mut options, &json) {
        eprintln!("ignoring MODELWATCH_DETECTION_OPTIONS: {error}");
        return DetectionOptions::default();
    }
    options
}

/// Sets the fields `json` names: an object of `DetectionOptions` fields by their names
/// (the core's options have no serde; this harness is their only reader from text).
fn apply_options(options: &mut DetectionOptions, json: &str) -> Result<(), String> {
    let fields: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(json).map_err(|e| e.to_string())?;
    for (name, value) in fields {
        let number = value
            .as_f64()
            .ok_or_else(|| format!("{name}: {value} is not a number"))?;
        let count = || {
            value
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| format!("{name}: {value} is not a count"))
        };
        match name.as_str() {
            "alpha" => options.alpha = number,
            "latest_value_alpha" => options.latest_value_alpha = number,
            "min_degradation_percentage" => options.min_degradation_percentage = number,
            "min_baseline_samples" => options.min_baseline_samples = count()?,
            "min_comparison_samples" => options.min_comparison_samples = count()?,
            "min_batches" => options.min_batches = count()?,
            "cusum_threshold_sigmas" => options.cusum_threshold_sigmas = number,
            "daily_cycle_alpha" => options.daily_cycle_alpha = number,
            "daily_cycle_min_r_squared" => options.daily_cycle_min_r_squared = number,
            "long_run_alpha" => options.long_run_alpha = number,
            other => return Err(format!("unknown field `{other}`")),
        }
    }
    Ok(())
}

/// The rows of `points` where `kind`, replayed causally over both directions, turns to
/// degraded: where an alert on its verdict would open. Rows of NAB's probation period
/// count like any other (the scorer ignores them).
pub fn check_onsets(kind: Kind, comparison_hours: Option<u32>, points: &[Point]) -> Vec<usize> {
    use modelwatch_core::{Direction, Metric, ValueRange};
    let definitions = [Direction::HigherIsBetter, Direction::LowerIsBetter].map(|direction| {
        MetricDefinition::custom(
            Metric::Custom("nab_value".to_owned()),
            direction,
            ValueRange::UNBOUNDED,
        )
    });
    let [Ok(higher), Ok(lower)] = definitions else {
        return Vec::new();
    };
    let mut runner = Runner::new(comparison_hours);
    let mut onsets = Vec::new();
    let mut was_flagged = false;
    for row in 0..points.len() {
        let now =
            Timestamp::from_millis(points[row].timestamp.as_millis() + 1).unwrap_or(Timestamp::MAX);
        let seen = &points[..=row];
        let flagged =
            runner.degraded(kind, &higher, seen, now) || runner.degraded(kind, &lower, seen, now);
        if flagged && !was_flagged {
            onsets.push(row);
        }
        was_flagged = flagged;
    }
    onsets
}
