//! Degradation checks, performance history and health, and version comparison over stored
//! samples: fetch the windows the core asks for, then run the core's pure functions.

use std::time::Duration;

use modelwatch_core::alerting::Alert;
use modelwatch_core::compare::{
    compare_versions, CompareOptions, VersionComparison, VersionPoints,
};
use modelwatch_core::detection::{
    check_at, detection_windows, DegradationResult, DetectionOptions, DetectionWindows, Detector,
    SeriesPoints, WindowSpec,
};
use modelwatch_core::health::{
    performance_history, HealthOptions, MetricSeries, PerformanceHistory,
};
use modelwatch_core::{
    Dataset, DatasetScope, Metric, MetricDefinition, ModelName, Point, SeriesKey, TimeRange,
    Timestamp, ValidationError, Version,
};
use modelwatch_store::{MetricStore, Pages, SeriesFilter, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{model} {version} has no samples of {metric}")]
    UnknownSeries {
        model: ModelName,
        version: Version,
        metric: Metric,
    },
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The ranges asked for hold more points than one analysis reads.
    #[error("{series} has more than {limit} points in the range asked for; ask for a shorter one")]
    TooManyPoints { series: SeriesKey, limit: usize },
}

/// The most points one analysis (a history, a comparison, a check of every metric)
/// reads, in all its windows together: about 40 MB held at once. (Smaller under test, so
/// a test crosses it with a small store.)
pub const MAX_ANALYSIS_POINTS: usize = if cfg!(test) { 50_000 } else { 1_000_000 };

/// What one analysis may still read; its reads go a page at a time and stop, with
/// [`AnalysisError::TooManyPoints`], the moment they would pass it.
#[derive(Debug)]
struct Budget {
    left: usize,
}

impl Budget {
    fn new() -> Self {
        Budget {
            left: MAX_ANALYSIS_POINTS,
        }
    }

    async fn range(
        &mut self,
        store: &dyn MetricStore,
        key: &SeriesKey,
        range: TimeRange,
    ) -> Result<Vec<Point>, AnalysisError> {
        let mut points = Vec::new();
        let mut pages = Pages::new(store, key, range);
        while let Some(page) = pages.next_page().await? {
            if page.len() > self.left {
                return Err(AnalysisError::TooManyPoints {
                    series: key.clone(),
                    limit: MAX_ANALYSIS_POINTS,
                });
            }
            self.left -= page.len();
            points.extend(page);
        }
        Ok(points)
    }
}

/// The points of one metric that a check at `now` needs ([`DetectionWindows::ranges`]),
/// fetched from the store in one call.
async fn fetch(
    store: &dyn MetricStore,
    key: &SeriesKey,
    windows: &DetectionWindows,
    budget: &mut Budget,
) -> Result<(MetricDefinition, Vec<Point>), AnalysisError> {
    let definition = store.definition(&key.metric).await?;
    let mut points = Vec::new();
    for range in windows.ranges() {
        points.extend(budget.range(store, key, range).await?);
    }
    Ok((definition, points))
}

/// Checks one metric of a model version for degradation at `now`: the same function a
/// degradation rule's observation runs ([`check_at`]), so `check` at `now` and a rule
/// with the same windows and options evaluated at a sample just before `now` agree.
pub async fn check_degradation(
    store: &dyn MetricStore,
    key: &SeriesKey,
    spec: &WindowSpec,
    options: &DetectionOptions,
    now: Timestamp,
) -> Result<DegradationResult, AnalysisError> {
    spec.validate()?;
    let windows = detection_windows(now, spec);
    let (definition, points) = fetch(store, key, &windows, &mut Budget::new()).await?;
    Ok(check_at(
        &mut Detector::default(),
        &key.model,
        &key.version,
        SeriesPoints {
            definition: &definition,
            points: &points,
        },
        &windows,
        options,
    ))
}

/// The metrics a version has samples of in one dataset (`None`: the default one).
pub async fn metrics_in(
    store: &dyn MetricStore,
    model: &ModelName,
    version: &Version,
    dataset: Option<&Dataset>,
) -> Result<Vec<Metric>, StoreError> {
    let filter = SeriesFilter {
        model: Some(model.clone()),
        version: Some(version.clone()),
        metric: None,
        dataset: DatasetScope::One(dataset.cloned()),
    };
    Ok(store
        .list_series(&filter)
        .await?
        .into_iter()
        .map(|s| s.key.metric)
        .collect())
}

/// Checks every metric the version has in `dataset`, reusing one detector's buffers.
pub async fn check_all_metrics(
    store: &dyn MetricStore,
    model: &ModelName,
    version: &Version,
    dataset: Option<&Dataset>,
    spec: &WindowSpec,
    options: &DetectionOptions,
    now: Timestamp,
) -> Result<Vec<DegradationResult>, AnalysisError> {
    let windows = detection_windows(now, spec);
    let mut detector = Detector::default();
    let mut budget = Budget::new();
    let mut results = Vec::new();
    for metric in metrics_in(store, model, version, dataset).await? {
        let key =
            SeriesKey::new(model.clone(), version.clone(), metric).with_dataset(dataset.cloned());
        let (definition, points) = fetch(store, &key, &windows, &mut budget).await?;
        results.push(check_at(
            &mut detector,
            model,
            version,
            SeriesPoints {
                definition: &definition,
                points: &points,
            },
            &windows,
            options,
        ));
    }
    Ok(results)
}

/// The window of the last `hours` before `now` (fractions too), or of everything up to
/// `now` for `None` (`--hours all`).
pub fn window(hours: Option<f64>, now: Timestamp) -> TimeRange {
    let end = now.saturating_add(Duration::from_millis(1));
    match hours {
        Some(hours) => modelwatch_core::alerting::last_hours(hours, now),
        None => TimeRange::new(Timestamp::MIN, end),
    }
}

/// The window of the last `hours` before `now` (range-checked, see
/// [`modelwatch_core::time::hours_span`]).
pub fn last_hours(hours: f64, now: Timestamp) -> Result<TimeRange, AnalysisError> {
    let span = modelwatch_core::time::hours_span("hours", hours)?;
    let end = now.saturating_add(Duration::from_millis(1));
    Ok(TimeRange::new(now.saturating_sub(span), end))
}

/// The degradation check every view of a version shares: the last hour against the
/// 24 hours before it, enough samples for a verdict on frequently measured metrics.
pub fn analysis_spec() -> WindowSpec {
    WindowSpec {
        comparison_hours: Some(1),
        ..WindowSpec::default()
    }
}

/// One analysis of a version: what the dashboard's model page, `modelwatch monitor` and
/// `GET …/analysis` show, computed once so they cannot disagree. `history` has each
/// metric's summary and trend over the range, with the checks and open alerts folded
/// into the trends, the grade and its reasons; `degradations` are those checks
/// ([`analysis_spec`]); `open_alerts` the version's alerts not resolved yet.
#[derive(Debug, Clone)]
pub struct VersionAnalysis {
    pub history: PerformanceHistory,
    pub degradations: Vec<DegradationResult>,
    pub open_alerts: Vec<Alert>,
}

/// Analyses `model`/`version` on one dataset (`None`: the default one) over `range`
/// (its end is "now" for the checks), with the version's `open_alerts` (other versions'
/// and resolved ones are left out). Datasets are never mixed: each is its own analysis.
pub async fn analyse_version(
    store: &dyn MetricStore,
    model: &ModelName,
    version: &Version,
    dataset: Option<&Dataset>,
    range: TimeRange,
    open_alerts: Vec<Alert>,
    options: &HealthOptions,
) -> Result<VersionAnalysis, AnalysisError> {
    let mut fetched: Vec<(MetricDefinition, Vec<Point>)> = Vec::new();
    let mut budget = Budget::new();
    for metric in metrics_in(store, model, version, dataset).await? {
        let key = SeriesKey::new(model.clone(), version.clone(), metric.clone())
            .with_dataset(dataset.cloned());
        let points = budget.range(store, &key, range).await?;
        fetched.push((store.definition(&metric).await?, points));
    }
    let series: Vec<MetricSeries<'_>> = fetched
        .iter()
        .map(|(definition, points)| MetricSeries { definition, points })
        .collect();
    let mut history = performance_history(model, version, range, &series, options);
    let now = Timestamp::from_millis(range.end.as_millis() - 1).unwrap_or(range.end);
    let degradations = check_all_metrics(
        store,
        model,
        version,
        dataset,
        &analysis_spec(),
        &DetectionOptions::default(),
        now,
    )
    .await?;
    modelwatch_core::health::include_degradations(&mut history, &degradations);
    let open_alerts: Vec<Alert> = open_alerts
        .into_iter()
        .filter(|a| a.is_open() && a.model == *model && a.version == *version)
        .collect();
    modelwatch_core::health::include_open_alerts(&mut history, &open_alerts);
    Ok(VersionAnalysis {
        history,
        degradations,
        open_alerts,
    })
}

/// Performance history and health of a version over `range`, as [`analyse_version`]
/// grades it without alerts (the seed's `get_performance_history`).
pub async fn history(
    store: &dyn MetricStore,
    model: &ModelName,
    version: &Version,
    dataset: Option<&Dataset>,
    range: TimeRange,
    options: &HealthOptions,
) -> Result<PerformanceHistory, AnalysisError> {
    Ok(
        analyse_version(store, model, version, dataset, range, Vec::new(), options)
            .await?
            .history,
    )
}

/// Two versions of a model to compare on one metric of one dataset.
#[derive(Debug, Clone, Copy)]
pub struct Matchup<'a> {
    pub model: &'a ModelName,
    /// `a`, the version in production.
    pub champion: &'a Version,
    /// `b`, the version that would replace it.
    pub challenger: &'a Version,
    pub metric: &'a Metric,
    pub dataset: Option<&'a Dataset>,
}

/// The champion against the challenger over `range`.
pub async fn compare(
    store: &dyn MetricStore,
    matchup: Matchup<'_>,
    range: TimeRange,
    options: &CompareOptions,
) -> Result<VersionComparison, AnalysisError> {
    let Matchup {
        model,
        champion,
        challenger,
        metric,
        dataset,
    } = matchup;
    let definition = store.definition(metric).await?;
    let mut budget = Budget::new();
    let series = |version: &Version| {
        SeriesKey::new(model.clone(), version.clone(), metric.clone())
            .with_dataset(dataset.cloned())
    };
    let a = budget.range(store, &series(champion), range).await?;
    let b = budget.range(store, &series(challenger), range).await?;
    Ok(compare_versions(
        model,
        &definition,
        VersionPoints {
            version: champion,
            points: &a,
        },
        VersionPoints {
            version: challenger,
            points: &b,
        },
        options,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelwatch_core::detection::DegradationStatus;
    use modelwatch_core::Sample;
    use modelwatch_store::MemoryStore;

    const HOUR_MS: i64 = 3_600_000;

    fn sample(version: &str, metric: &str, value: f64, ms: i64) -> Sample {
        let key = SeriesKey::parse("fraud", version, metric).unwrap();
        Sample {
            model: key.model,
            version: key.version,
            metric: key.metric,
            value,
            timestamp: Timestamp::from_millis(ms).unwrap(),
            dataset: None,
        }
    }

    /// Two days of per-minute accuracy around 0.90, then `drop` in the last hour.
    async fn store_with_drop(drop: f64) -> (MemoryStore, Timestamp) {
        store_with_drop_over(drop, 48 * 60, 60).await
    }

    /// `minutes` of per-minute accuracy around 0.90, `drop` lower in the last
    /// `drop_minutes`.
    async fn store_with_drop_over(
        drop: f64,
        minutes: i64,
        drop_minutes: i64,
    ) -> (MemoryStore, Timestamp) {
        let store = MemoryStore::new();
        let start = 1_700_000_000_000i64;
        let samples = (0..minutes)
            .map(|i| {
                let wobble = ((i * 7919) % 11) as f64 / 1000.0 - 0.005;
                let value = if i >= minutes - drop_minutes {
                    0.90 - drop + wobble
                } else {
                    0.90 + wobble
                };
                sample(
                    "v1",
                    "accuracy",
                    (value * 1e6).round() / 1e6,
                    start + i * 60_000,
                )
            })
            .collect();
        store.append(samples).await.unwrap();
        (
            store,
            Timestamp::from_millis(start + minutes * 60_000).unwrap(),
        )
    }

    /// An analysis whose windows hold more points than it may read stops reading and
    /// says which series and how many, before holding them all.
    #[tokio::test]
    async fn an_analysis_over_too_many_points_is_refused() {
        let (store, now) = store_with_drop_over(0.0, 60_000, 0).await;
        let key = SeriesKey::parse("fraud", "v1", "accuracy").unwrap();
        let fraud = ModelName::parse("fraud").unwrap();
        let v1 = Version::parse("v1").unwrap();
        let everything = TimeRange::new(Timestamp::MIN, now);
        let error = history(
            &store,
            &fraud,
            &v1,
            None,
            everything,
            &HealthOptions::default(),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&error, AnalysisError::TooManyPoints { series, limit }
                if *series == key && *limit == MAX_ANALYSIS_POINTS),
            "{error}"
        );
        assert!(
            error.to_string().contains("ask for a shorter one"),
            "{error}"
        );
        let error = compare(
            &store,
            Matchup {
                model: &fraud,
                champion: &v1,
                challenger: &v1,
                metric: &key.metric,
                dataset: None,
            },
            everything,
            &Default::default(),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(error, AnalysisError::TooManyPoints { .. }),
            "{error}"
        );
        // The last day is well within it.
        let day = last_hours(24.0, now).unwrap();
        assert!(
            history(&store, &fraud, &v1, None, day, &HealthOptions::default())
                .await
                .is_ok()
        );
    }

    /// A canary's drop is the canary's: the default dataset's check of the same metric
    /// stays ok, and each dataset is analysed only from its own samples.
    #[tokio::test]
    async fn datasets_are_checked_and_analysed_apart() {
        let (store, now) = store_with_drop(0.0).await;
        let (dropped, _) = store_with_drop(0.09).await;
        let canary = Dataset::parse("canary").unwrap();
        let everything = TimeRange::new(Timestamp::MIN, now);
        let key = SeriesKey::parse("fraud", "v1", "accuracy").unwrap();
        let samples: Vec<Sample> = dropped
            .range(&key, everything)
            .await
            .unwrap()
            .into_iter()
            .map(|point| Sample {
                dataset: Some(canary.clone()),
                ..sample("v1", "accuracy", point.value, point.timestamp.as_millis())
            })
            .collect();
        store.append(samples).await.unwrap();
        let (fraud, v1) = (key.model.clone(), key.version.clone());
        let spec = WindowSpec {
            comparison_hours: Some(1),
            reference: None,
            ..WindowSpec::default()
        };
        let check = |dataset: Option<Dataset>| {
            let (store, fraud, v1, spec) = (&store, &fraud, &v1, &spec);
            async move {
                let results = check_all_metrics(
                    store,
                    fraud,
                    v1,
                    dataset.as_ref(),
                    spec,
                    &DetectionOptions::default(),
                    now,
                )
                .await
                .unwrap();
                assert_eq!(results.len(), 1);
                results[0].status
            }
        };
        assert_eq!(check(None).await, DegradationStatus::Ok);
        assert_eq!(
            check(Some(canary.clone())).await,
            DegradationStatus::Degraded
        );
        let analysed = analyse_version(
            &store,
            &fraud,
            &v1,
            Some(&canary),
            last_hours(24.0, now).unwrap(),
            Vec::new(),
            &HealthOptions::default(),
        )
        .await
        .unwrap();
        assert_eq!(analysed.degradations[0].status, DegradationStatus::Degraded);
    }

    #[tokio::test]
    async fn a_real_drop_in_the_comparison_window_is_degraded() {
        let (store, now) = store_with_drop(0.09).await;
        let key = SeriesKey::parse("fraud", "v1", "accuracy").unwrap();
        let spec = WindowSpec {
            comparison_hours: Some(1),
            reference: None,
            ..WindowSpec::default()
        };
        let result = check_degradation(&store, &key, &spec, &DetectionOptions::default(), now)
            .await
            .unwrap();
        assert_eq!(result.status, DegradationStatus::Degraded, "{result:?}");
        assert_eq!(result.comparison_samples, 60);
        assert!(result.degradation_percentage.unwrap() > 9.0);
    }

    #[tokio::test]
    async fn a_dense_week_of_history_brings_the_long_run_test() {
        let key = SeriesKey::parse("fraud", "v1", "accuracy").unwrap();
        let spec = WindowSpec {
            comparison_hours: Some(1),
            ..WindowSpec::default()
        };
        let options = DetectionOptions::default();
        let (store, now) = store_with_drop_over(0.06, 8 * 24 * 60, 10 * 60).await;
        let result = check_degradation(&store, &key, &spec, &options, now)
            .await
            .unwrap();
        assert_eq!(result.status, DegradationStatus::Degraded, "{result:?}");
        assert!(
            result.method.starts_with("long_run_")
                && result.method.ends_with("+same_hours+week_ago"),
            "{}",
            result.method
        );
        assert_eq!(result.alpha, options.long_run_alpha);
        assert_eq!(result.comparison_samples, 60);

        let (quiet, now) = store_with_drop_over(0.0, 8 * 24 * 60, 0).await;
        let result = check_degradation(&quiet, &key, &spec, &options, now)
            .await
            .unwrap();
        assert_eq!(result.status, DegradationStatus::Ok, "{result:?}");
        assert!(result.method.starts_with("long_run_"), "{}", result.method);

        // Two days are not enough history: the window tests decide.
        let (short, now) = store_with_drop_over(0.04, 48 * 60, 10 * 60).await;
        let result = check_degradation(&short, &key, &spec, &options, now)
            .await
            .unwrap();
        assert!(result.method.starts_with("welch_t"), "{}", result.method);
    }

    #[tokio::test]
    async fn noise_alone_is_not_degraded_and_every_metric_is_checked() {
        let (store, now) = store_with_drop(0.0).await;
        store
            .append(vec![sample(
                "v1",
                "latency",
                12.0,
                now.as_millis() - HOUR_MS,
            )])
            .await
            .unwrap();
        let spec = WindowSpec {
            comparison_hours: Some(1),
            reference: None,
            ..WindowSpec::default()
        };
        let model = ModelName::parse("fraud").unwrap();
        let version = Version::parse("v1").unwrap();
        let results = check_all_metrics(
            &store,
            &model,
            &version,
            None,
            &spec,
            &DetectionOptions::default(),
            now,
        )
        .await
        .unwrap();
        assert_eq!(results.len(), 2);
        assert_eq!(results[0].status, DegradationStatus::Ok);
        assert_eq!(results[1].status, DegradationStatus::InsufficientData);
    }

    #[tokio::test]
    async fn history_and_comparison_read_the_store() {
        let (store, now) = store_with_drop(0.0).await;
        let model = ModelName::parse("fraud").unwrap();
        let v1 = Version::parse("v1").unwrap();
        let range = last_hours(24.0, now).unwrap();
        let history = history(&store, &model, &v1, None, range, &HealthOptions::default())
            .await
            .unwrap();
        assert_eq!(history.total_snapshots, 24 * 60);
        let v2 = Version::parse("v2").unwrap();
        let samples = (0..120)
            .map(|i| sample("v2", "accuracy", 0.95, now.as_millis() - (i + 1) * 60_000))
            .collect();
        store.append(samples).await.unwrap();
        let comparison = compare(
            &store,
            Matchup {
                model: &model,
                champion: &v1,
                challenger: &v2,
                metric: &Metric::Accuracy,
                dataset: None,
            },
            range,
            &CompareOptions::default(),
        )
        .await
        .unwrap();
        assert_eq!(comparison.challenger_samples, 120);
        assert!(last_hours(-1.0, now).is_err());
    }
}
