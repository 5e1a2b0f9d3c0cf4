//! Backtests: replay a stored rule over stored history, reporting when it would have
//! fired and cleared, without writing anything.
//!
//! Every sample in the range is observed exactly as live evaluation observes a sample it
//! has not counted yet ([`crate::observe`]) and fed to the core's [`backtest`], which
//! replays them as live evaluation does. So a backtest agrees with live evaluation, which
//! counts every sample, whenever it runs.

use modelwatch_core::alerting::no_data::{self, Tail};
use modelwatch_core::alerting::observe::{
    degradation_check, instants, observations, slice, SAMPLING_SAMPLES,
};
use modelwatch_core::alerting::{
    backtest_on, BacktestEvent, ComparisonMode, Condition, Observation, Rule, RuleId, RuleSpec,
    SeriesState,
};
use modelwatch_core::detection::{sampling_interval, DegradationResult, SeriesPoints};
use modelwatch_core::{
    Dataset, DatasetScope, Metric, MetricScope, SeriesKey, TimeRange, Timestamp, Version,
};
use modelwatch_store::SeriesFilter;

use crate::alerting::{Engine, EngineError};
use crate::analysis;
use crate::evaluation::{merge_times, whole_versions};
use crate::observe::{read_series, SeriesRead};

/// The replay of one version's series on one dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionBacktest {
    pub version: Version,
    /// The dataset replayed; absent for the default dataset.
    pub dataset: Option<Dataset>,
    /// Samples replayed.
    pub samples: usize,
    /// Alerts that would have fired.
    pub alerts: u32,
    pub events: Vec<BacktestEvent>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BacktestReport {
    pub rule: Rule,
    pub from: Timestamp,
    pub to: Timestamp,
    pub versions: Vec<VersionBacktest>,
}

impl Engine {
    /// Replays rule `rule_id` over the samples in `range`, for its version or each version
    /// of its model with samples of its metric. Disabled rules are replayed too.
    pub async fn backtest(
        &self,
        rule_id: &RuleId,
        range: TimeRange,
    ) -> Result<BacktestReport, EngineError> {
        let rule = self.rule(rule_id).await?;
        self.replay(rule, range).await
    }

    /// [`Engine::backtest`] on the datasets of `scope` instead of the rule's own: one
    /// dataset, or each dataset separately.
    pub async fn backtest_on(
        &self,
        rule_id: &RuleId,
        range: TimeRange,
        scope: DatasetScope,
    ) -> Result<BacktestReport, EngineError> {
        let rule = Rule {
            dataset: scope,
            ..self.rule(rule_id).await?
        };
        self.replay(rule, range).await
    }

    /// Replays a rule that is not stored (yet): `spec` is validated as creating it would
    /// be, then replayed like [`Engine::backtest`]. Nothing is written, so a person can
    /// see what a rule would have done before saving it. The report's rule carries the
    /// placeholder id 0.
    pub async fn backtest_spec(
        &self,
        spec: RuleSpec,
        range: TimeRange,
        now: Timestamp,
    ) -> Result<BacktestReport, EngineError> {
        let rule = Rule::create(spec, RuleId::from_u32(0), now)?;
        self.replay(rule, range).await
    }

    /// What `rule` observes of `version`'s series at each sample in `range` it observes
    /// (every sample, or one per slot of its cadence from the range's first sample), as
    /// live evaluation observes them.
    pub async fn observe_range(
        &self,
        rule: &Rule,
        version: &Version,
        range: TimeRange,
    ) -> Result<Vec<(Timestamp, Observation)>, EngineError> {
        self.observe_range_on(rule, version, None, range).await
    }

    /// [`Engine::observe_range`] of `version`'s series on `dataset` (`None`: the
    /// default dataset).
    pub async fn observe_range_on(
        &self,
        rule: &Rule,
        version: &Version,
        dataset: Option<&Dataset>,
        range: TimeRange,
    ) -> Result<Vec<(Timestamp, Observation)>, EngineError> {
        let metric = match &rule.metric {
            MetricScope::One(metric) => metric,
            MetricScope::Every => {
                return self
                    .observe_version_range(rule, version, dataset, range)
                    .await
            }
        };
        let definition = self.metrics.definition(metric).await?;
        let read = [SeriesRead {
            key: SeriesKey::new(rule.model.clone(), version.clone(), metric.clone())
                .with_dataset(dataset.cloned()),
            first: range.start,
            last: Timestamp::from_millis(range.end.as_millis() - 1).unwrap_or(range.start),
        }];
        let points = read_series(&*self.metrics, &read, |_| rule)
            .await?
            .pop()
            .unwrap_or_default();
        let series = SeriesPoints {
            definition: &definition,
            points: &points,
        };
        if let Condition::NoData(condition) = &rule.condition {
            let times: Vec<Timestamp> = slice(&points, range).iter().map(|p| p.timestamp).collect();
            return Ok(no_data::observations(
                condition,
                &SeriesState::default(),
                &times,
                Tail::Until(range.end),
            ));
        }
        let samples = instants(rule, version, None, slice(&points, range));
        Ok(observations(
            rule,
            version,
            series,
            samples,
            &self.detection,
        ))
    }

    /// What a no-data rule on a whole version observes in `range`: the samples of every
    /// metric `version` has on `dataset`, merged by time as live evaluation merges them.
    async fn observe_version_range(
        &self,
        rule: &Rule,
        version: &Version,
        dataset: Option<&Dataset>,
        range: TimeRange,
    ) -> Result<Vec<(Timestamp, Observation)>, EngineError> {
        let Condition::NoData(condition) = &rule.condition else {
            return Ok(Vec::new());
        };
        let metrics: Vec<Metric> = self
            .metrics
            .list_series(&SeriesFilter {
                model: Some(rule.model.clone()),
                version: Some(version.clone()),
                metric: None,
                dataset: DatasetScope::One(dataset.cloned()),
            })
            .await?
            .into_iter()
            .map(|s| s.key.metric)
            .collect();
        let requests: Vec<(SeriesKey, TimeRange)> = metrics
            .iter()
            .map(|metric| {
                let key = SeriesKey::new(rule.model.clone(), version.clone(), metric.clone())
                    .with_dataset(dataset.cloned());
                (key, range)
            })
            .collect();
        let per_metric = self.metrics.range_many(&requests).await?;
        let merged = merge_times(&metrics, &per_metric);
        Ok(no_data::version_observations(
            condition,
            &SeriesState::default(),
            &merged,
            Tail::Until(range.end),
        ))
    }

    /// What `check` says of `version`'s series at the instant just after `at`, given the
    /// windows and significance level `rule` stands for (`None` for a rule that is not a
    /// degradation rule): what the rule observes of a sample at `at`.
    pub async fn check_as_rule(
        &self,
        rule: &Rule,
        version: &Version,
        at: Timestamp,
    ) -> Result<Option<DegradationResult>, EngineError> {
        let Some(metric) = rule.metric.metric() else {
            return Ok(None);
        };
        let key = SeriesKey::new(rule.model.clone(), version.clone(), metric.clone());
        let sampling = match rule.condition {
            Condition::Degradation {
                comparison: ComparisonMode::Auto,
                ..
            } => {
                let read = [SeriesRead {
                    key: key.clone(),
                    first: at,
                    last: at,
                }];
                let points = read_series(&*self.metrics, &read, |_| rule).await?.concat();
                sampling_interval(&points, at, SAMPLING_SAMPLES)
            }
            _ => None,
        };
        let Some(check) = degradation_check(rule, &self.detection, sampling) else {
            return Ok(None);
        };
        let now = at.saturating_add(std::time::Duration::from_millis(1));
        Ok(Some(
            analysis::check_degradation(&*self.metrics, &key, &check.spec, &check.options, now)
                .await?,
        ))
    }

    async fn replay(&self, rule: Rule, range: TimeRange) -> Result<BacktestReport, EngineError> {
        // The rule's version (each with samples, when it has none) on its dataset (each
        // with samples, when it watches each); a named version or dataset without samples
        // is replayed too, and reports no samples.
        let series: Vec<(Version, Option<Dataset>)> = match (&rule.version, &rule.dataset) {
            (Some(version), DatasetScope::One(dataset)) => {
                vec![(version.clone(), dataset.clone())]
            }
            (version, scope) => {
                let listed = self
                    .metrics
                    .list_series(&SeriesFilter {
                        model: Some(rule.model.clone()),
                        version: version.clone(),
                        metric: rule.metric.metric().cloned(),
                        dataset: scope.clone(),
                    })
                    .await?;
                // A rule on a whole version replays each version × dataset once.
                whole_versions(&listed)
                    .into_iter()
                    .map(|w| (w.version, w.dataset))
                    .collect()
            }
        };
        let mut replays = Vec::with_capacity(series.len());
        for (version, dataset) in series {
            let observations = self
                .observe_range_on(&rule, &version, dataset.as_ref(), range)
                .await?;
            let replay = backtest_on(
                &rule,
                &version,
                dataset.as_ref(),
                &observations,
                SeriesState::default(),
            );
            replays.push(VersionBacktest {
                version,
                dataset,
                samples: observations.len(),
                alerts: replay.events.last().map_or(0, |event| event.alert_number),
                events: replay.events,
            });
        }
        Ok(BacktestReport {
            rule,
            from: range.start,
            to: range.end,
            versions: replays,
        })
    }
}
