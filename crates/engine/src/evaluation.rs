//! Evaluation of alert rules: per enabled rule × model version × dataset (one dataset, or
//! each separately: see [`Rule`]), count every sample not
//! yet counted, in order, through the core's replay ([`plan`]), and apply what it plans
//! (alerts, history, state, outbox) as guarded commits.
//!
//! A pass reads everything it needs in bulk (rules, states, tracked alerts, silences, the
//! last hour's notified alerts, the uncounted samples of every series and the windows
//! their observations need) and commits all its writes in one store call, which is what
//! makes 10,000 rules cheap. Each commit is guarded by compare-and-swap on the revisions
//! of the state and of the tracked alert, so a second evaluator running at the same moment
//! cannot create a duplicate: the loser's write is refused, it re-reads, and sees that the
//! samples were already counted. Evaluating again without new samples changes nothing.
//!
//! **A whole version.** A no-data rule on metric `*` has one target per version ×
//! dataset, made of the series of every metric the version has there: their uncounted
//! samples are read in the same batched reads and merged by time
//! ([`no_data::version_observations`]), so the version is silent only when none of its
//! metrics reports. The backtest replays the same merge.
//!
//! **What is counted.** Every sample newer than the last one the state counted. A rule ×
//! version evaluated for the first time starts one paging horizon back (24 h, see
//! [`PAGING_HORIZON`](modelwatch_core::alerting::PAGING_HORIZON)): a rule created over an imported day fires now for a condition
//! that holds at the end of it, as the backtest says it would. A change-point rule starts
//! 30 days back ([`CHANGE_POINT_WARM_UP`](modelwatch_core::alerting::CHANGE_POINT_WARM_UP)),
//! so its detector has learnt the series before it may page. Samples older than the
//! horizon are replayed too (after an outage, or an import into a watched series) but
//! cannot page: where they would fire, the state records a past breach.
//!
//! **Bounded passes.** A pass does at most [`MAX_WORK_PER_PASS`] units of work, an
//! observation costing what it was measured to take in microseconds ([`cost`]: a
//! threshold sample 1, a latest-value check 30, a window check with its week of history
//! 900), so about two seconds. It serves the rule × versions with the
//! smallest backlog first (in steady operation every one has a sample or two, and all are
//! served), each up to [`READ_SPAN`] of samples past its last counted one (a gap is
//! skipped); the rest wait for the next pass. So a target's windows (a week of history for
//! a window rule) are read once for a day of its samples, not once per sample. The state records how far it got; the report's
//! `backlog` says more is waiting, and the server's evaluator runs the next pass at once.
//!
//! **Contention.** A target whose commit loses a race is re-read and re-planned, up to
//! [`MAX_ATTEMPTS`] rounds; what a pass committed is always reported, and targets still
//! contended after the last round are listed in [`EvaluationReport::contended`] for the
//! next pass to pick up.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use modelwatch_core::alerting::limits::RATE_WINDOW_MS;
use modelwatch_core::alerting::no_data::{self, Tail};
use modelwatch_core::alerting::observe::{instants, needs_windows, observations, observes};
use modelwatch_core::alerting::{
    first_counted, plan, Alert, AlertId, Clock, ComparisonMode, Condition, Decision, Observation,
    Plan, PlanContext, PlannedCommit, RateLedger, Rule, RuleId, SeriesState, Silence, Target,
};
use modelwatch_core::detection::SeriesPoints;
use modelwatch_core::predictions::metrics::coverage_metric;
use modelwatch_core::predictions::{is_computed_dataset, Task};
use modelwatch_core::{
    Dataset, DatasetScope, Metric, MetricDefinition, MetricScope, ModelName, Point, Sample,
    SeriesKey, TimeRange, Timestamp, Version,
};
use modelwatch_store::alerts::{AlertCommit, AlertWriteGuarded, CommitOutcome, StateWrite};
use modelwatch_store::{SeriesFilter, SeriesInfo};

use crate::alerting::{Engine, EngineError, MAX_ATTEMPTS};
use crate::observe::{read_series, SeriesRead};

/// The work one pass does at most, in [`cost`] units (about microseconds).
pub const MAX_WORK_PER_PASS: usize = 2_000_000;
/// How far past its last counted sample a target's samples are read in one pass.
pub const READ_SPAN: Duration = Duration::from_secs(24 * 3600);
/// Targets whose uncounted samples are read in one store call.
const UNCOUNTED_PER_READ: usize = 1024;
/// Targets whose observations' windows are read (and held) at once.
const OBSERVED_PER_READ: usize = 64;

/// What one observation of `rule` costs, in units of about a microsecond (measured with
/// `cargo bench -p modelwatch-engine --bench evaluate`): a threshold sample is read and
/// compared; a change-point sample is read and counted by the rule's detector (a few
/// floating-point operations); a latest-value check runs the prediction interval over a
/// day; a window check reads and fits a week of history for the long-run test.
pub fn cost(rule: &Rule) -> usize {
    match &rule.condition {
        Condition::Threshold { .. } | Condition::ChangePoint(_) | Condition::NoData(_) => 1,
        Condition::Degradation {
            comparison: ComparisonMode::Latest,
            ..
        } => 30,
        Condition::Degradation { .. } => 900,
    }
}

/// What is left of a pass's work (see [`cost`]).
struct Budget(usize);

impl Budget {
    fn spent(&self) -> bool {
        self.0 == 0
    }

    /// Takes up to `wanted` observations of `rule`, returning how many were granted.
    fn take(&mut self, rule: &Rule, wanted: usize) -> usize {
        let each = cost(rule);
        let granted = wanted.min(self.0 / each);
        self.0 -= granted * each;
        granted
    }
}

/// What one rule did for one version in a pass.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleEvaluation {
    pub rule_id: RuleId,
    pub model: ModelName,
    pub version: Version,
    /// The dataset evaluated; absent for the default dataset.
    pub dataset: Option<Dataset>,
    /// Samples counted in this pass.
    pub counted: usize,
    /// The decision at the last sample counted (or why none was).
    pub decision: Decision,
}

/// A rule × version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TargetKey {
    pub rule_id: RuleId,
    pub version: Version,
    pub dataset: Option<Dataset>,
}

/// A breach this pass recorded instead of paging for it: it would have fired at a sample
/// older than the paging horizon.
#[derive(Debug, Clone, PartialEq)]
pub struct PastBreachRecorded {
    pub rule_id: RuleId,
    pub model: ModelName,
    pub version: Version,
    pub dataset: Option<Dataset>,
    pub would_have_fired_at: Timestamp,
    pub value: Option<f64>,
}

/// The outcome of a pass.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EvaluationReport {
    /// Alerts this pass created (including suppressed ones), in evaluation order.
    pub alerts_created: Vec<Alert>,
    /// Alerts this pass changed, as they now stand: a repeated breach (occurrences, worst
    /// value, a severity rise) or an auto-resolve.
    pub alerts_updated: Vec<Alert>,
    /// Every rule × version evaluated, with its last decision.
    pub evaluations: Vec<RuleEvaluation>,
    /// Breaches older than the paging horizon, recorded in the rule's state, not paged.
    pub past_breaches: Vec<PastBreachRecorded>,
    /// Writes that lost a race with another evaluator or a person and were decided again.
    pub conflicts: u32,
    /// Rule × versions whose writes still lost after the last round: what they committed
    /// before is reported above, the rest is left to the next pass.
    pub contended: Vec<TargetKey>,
    /// Samples are left to count (the pass reached its bounds): run another pass.
    pub backlog: bool,
}

impl EvaluationReport {
    /// Adds the next pass's report to this one (passes run back to back over a backlog):
    /// its lists are appended, counts added, and `contended` and `backlog` are the later
    /// pass's.
    pub fn absorb(&mut self, next: EvaluationReport) {
        self.alerts_created.extend(next.alerts_created);
        self.alerts_updated.extend(next.alerts_updated);
        self.evaluations.extend(next.evaluations);
        self.past_breaches.extend(next.past_breaches);
        self.conflicts = self.conflicts.saturating_add(next.conflicts);
        self.contended = next.contended;
        self.backlog = next.backlog;
    }
}

#[derive(Debug, Clone)]
struct PassTarget {
    rule: usize,
    version: Version,
    dataset: Option<Dataset>,
    /// The metrics whose series the target counts: the rule's one, or (a rule on `*`)
    /// every metric the version has on the dataset.
    metrics: Vec<Metric>,
    /// The series' oldest and newest samples' times as the series listing has them (of
    /// all of them, for several): when the newest is not newer than what the state
    /// counted, the pass reads nothing.
    first_timestamp: Timestamp,
    last_timestamp: Timestamp,
    /// How old a sample may be and still page: the engine's horizon, and for a metric
    /// computed from predictions that much after the latest its window can be judged
    /// (a window waiting days for its labels pages when it is judged).
    horizon: Duration,
}

/// What a pass shares between its rounds.
struct Pass<'a> {
    rules: &'a [Rule],
    model: Option<&'a ModelName>,
    silences: &'a [Silence],
    now: Timestamp,
}

/// A target read and observed, ready to plan.
struct Observed {
    target: usize,
    state: SeriesState,
    tracked: Option<Alert>,
    observations: Vec<(Timestamp, Observation)>,
}

/// The stored states of a round's rules and the alerts they track; each target takes
/// its own out.
struct Tracking {
    states: HashMap<(RuleId, Version, Option<Dataset>), SeriesState>,
    alerts: HashMap<AlertId, Alert>,
}

impl Tracking {
    /// The alert `state` tracks, taken out.
    fn take(&mut self, state: &SeriesState) -> Option<Alert> {
        state
            .alert_id
            .as_ref()
            .and_then(|id| self.alerts.remove(id))
    }
}

/// A target with samples to count: its index, its state, and the range to read.
type Due = (usize, SeriesState, TimeRange);

/// A target whose samples are read, to be observed over its windows.
struct Ready {
    target: usize,
    state: SeriesState,
    tracked: Option<Alert>,
    /// The samples it observes, in order.
    instants: Vec<Point>,
}

/// What a round reads for its targets.
#[derive(Default)]
struct RoundInput {
    observed: Vec<Observed>,
    /// Targets with nothing new, and the time they counted up to.
    counted: Vec<(usize, Timestamp)>,
    backlog: bool,
    /// The `label_coverage` samples of observed targets computed from predictions, over
    /// their observations' times, by target.
    coverage: HashMap<usize, Vec<Point>>,
}

impl Engine {
    /// Evaluates the enabled rules applying to one model version.
    pub async fn evaluate_model(
        &self,
        model: &ModelName,
        version: &Version,
        now: Timestamp,
    ) -> Result<EvaluationReport, EngineError> {
        self.evaluate_scope(Some(model), Some(version), now).await
    }

    /// Evaluates every enabled rule for every version it applies to.
    pub async fn evaluate_all(&self, now: Timestamp) -> Result<EvaluationReport, EngineError> {
        self.evaluate_scope(None, None, now).await
    }

    /// Passes at `now`, one after the other, until every sample is counted (each pass is
    /// bounded; see the module documentation), reported as one. `scope` narrows them to
    /// one model version.
    pub async fn evaluate_until_counted(
        &self,
        scope: Option<(&ModelName, &Version)>,
        now: Timestamp,
    ) -> Result<EvaluationReport, EngineError> {
        let mut report = EvaluationReport::default();
        loop {
            let (model, version) = scope.map_or((None, None), |(m, v)| (Some(m), Some(v)));
            let pass = self.evaluate_scope(model, version, now).await?;
            let more = pass.backlog;
            report.absorb(pass);
            if !more {
                return Ok(report);
            }
        }
    }

    /// What an evaluation asked for does (`POST …/evaluate`, `modelwatch evaluate`): the
    /// prediction windows that time alone made due are judged first (their label delay
    /// passed, or they closed), so their samples are counted now; then passes run until
    /// every sample is counted ([`Engine::evaluate_until_counted`]). Returns the report
    /// and the samples judging wrote, for whoever announces samples.
    pub async fn judge_and_evaluate(
        &self,
        scope: Option<(&ModelName, &Version)>,
        now: Timestamp,
    ) -> Result<(EvaluationReport, Vec<Sample>), EngineError> {
        let (_, judged) = self.judge_windows(now).await?;
        let report = self.evaluate_until_counted(scope, now).await?;
        Ok((report, judged))
    }

    async fn evaluate_scope(
        &self,
        model: Option<&ModelName>,
        version: Option<&Version>,
        now: Timestamp,
    ) -> Result<EvaluationReport, EngineError> {
        let rules: Vec<Rule> = self
            .alerts
            .list_rules(model)
            .await?
            .into_iter()
            .filter(|r| r.enabled)
            .collect();
        let mut report = EvaluationReport::default();
        if rules.is_empty() {
            return Ok(report);
        }
        let mut targets = self.targets(&rules, model, version).await?;
        let silences = self.alerts.list_silences(Some(now)).await?;
        let hour_ago = now.saturating_sub(Duration::from_millis(
            u64::try_from(RATE_WINDOW_MS).unwrap_or(0),
        ));
        let mut ledger = RateLedger::new();
        for (notified_model, at) in self.alerts.notified_since(hour_ago).await? {
            ledger.record(&notified_model, at);
        }
        let pass = Pass {
            rules: &rules,
            model,
            silences: &silences,
            now,
        };
        for _ in 0..MAX_ATTEMPTS {
            if targets.is_empty() {
                break;
            }
            let retry = self
                .round(&pass, &targets, &mut ledger, &mut report)
                .await?;
            report.conflicts += u32::try_from(retry.len()).unwrap_or(u32::MAX);
            targets = retry;
        }
        report.contended = targets
            .iter()
            .map(|t| TargetKey {
                rule_id: rules[t.rule].id.clone(),
                version: t.version.clone(),
                dataset: t.dataset.clone(),
            })
            .collect();
        Ok(report)
    }

    /// Every (rule, version, dataset) to evaluate: a rule for one version, or for each
    /// version of its model that has samples of its metric (of any metric, for a rule on
    /// `*`); on one dataset, or on each dataset with samples, each on its own.
    async fn targets(
        &self,
        rules: &[Rule],
        model: Option<&ModelName>,
        version: Option<&Version>,
    ) -> Result<Vec<PassTarget>, EngineError> {
        let filter = SeriesFilter {
            model: model.cloned(),
            version: version.cloned(),
            metric: None,
            dataset: DatasetScope::Each,
        };
        let listed = self.metrics.list_series(&filter).await?;
        let wholes = if rules.iter().any(|r| r.metric == MetricScope::Every) {
            whole_versions(&listed)
        } else {
            Vec::new()
        };
        let mut versions: HashMap<(ModelName, Metric), Vec<SeriesInfo>> = HashMap::new();
        for series in listed {
            versions
                .entry((series.key.model.clone(), series.key.metric.clone()))
                .or_default()
                .push(series);
        }
        let mut targets = Vec::new();
        for (index, rule) in rules.iter().enumerate() {
            let Some(metric) = rule.metric.metric() else {
                for whole in &wholes {
                    if whole.model == rule.model
                        && rule.watches(&rule.model, &whole.version, whole.dataset.as_ref())
                    {
                        targets.push(PassTarget {
                            rule: index,
                            version: whole.version.clone(),
                            dataset: whole.dataset.clone(),
                            metrics: whole.metrics.clone(),
                            first_timestamp: whole.first_timestamp,
                            last_timestamp: whole.last_timestamp,
                            horizon: self.horizon,
                        });
                    }
                }
                continue;
            };
            let Some(found) = versions.get(&(rule.model.clone(), metric.clone())) else {
                continue;
            };
            for series in found {
                if rule.watches(
                    &rule.model,
                    &series.key.version,
                    series.key.dataset.as_ref(),
                ) {
                    targets.push(PassTarget {
                        rule: index,
                        version: series.key.version.clone(),
                        dataset: series.key.dataset.clone(),
                        metrics: vec![metric.clone()],
                        first_timestamp: series.first_timestamp,
                        last_timestamp: series.last_timestamp,
                        horizon: self.horizon,
                    });
                }
            }
        }
        self.widen_computed_horizons(rules, &mut targets).await?;
        Ok(targets)
    }

    /// Gives the targets on metrics computed from predictions their model's horizon: the
    /// engine's, plus the longest a window can wait to be judged.
    async fn widen_computed_horizons(
        &self,
        rules: &[Rule],
        targets: &mut [PassTarget],
    ) -> Result<(), EngineError> {
        let mut judged_within: HashMap<ModelName, Duration> = HashMap::new();
        for target in targets.iter_mut() {
            if !target.dataset.as_ref().is_some_and(is_computed_dataset) {
                continue;
            }
            let model = &rules[target.rule].model;
            let within = match judged_within.get(model) {
                Some(within) => *within,
                None => {
                    let config = self.predictions.prediction_config(model).await?;
                    // Without a configuration the window's task is read from its
                    // outputs; the task does not change when it is judged.
                    let within = config
                        .unwrap_or_else(|| crate::predictions::default_config(Task::Classification))
                        .judged_within();
                    judged_within.insert(model.clone(), within);
                    within
                }
            };
            target.horizon = self.horizon + within;
        }
        Ok(())
    }

    /// One round over `targets`: read, plan, commit, settle. Returns those whose commits
    /// lost a race (after reporting what they did commit).
    async fn round(
        &self,
        pass: &Pass<'_>,
        targets: &[PassTarget],
        ledger: &mut RateLedger,
        report: &mut EvaluationReport,
    ) -> Result<Vec<PassTarget>, EngineError> {
        let input = self.observe_targets(pass, targets).await?;
        report.backlog |= input.backlog;
        for (index, last_observed_at) in input.counted {
            let target = &targets[index];
            report.evaluations.push(target.evaluation(
                pass,
                0,
                Decision::AlreadyCounted { last_observed_at },
            ));
        }
        let planned = self.plan_round(pass, targets, input.observed, &input.coverage, ledger);
        let commits: Vec<AlertCommit> = planned
            .iter()
            .flat_map(|(index, plan)| {
                let target = &targets[*index];
                let rule = &pass.rules[target.rule];
                plan.commits
                    .iter()
                    .map(move |commit| store_commit(rule, target, commit))
            })
            .collect();
        let outcomes = self.alerts.commit(commits).await?;
        Ok(settle(pass, targets, planned, &outcomes, report))
    }

    /// The core's plan for each observed target (see [`plan`]), in order.
    fn plan_round(
        &self,
        pass: &Pass<'_>,
        targets: &[PassTarget],
        observed: Vec<Observed>,
        coverage: &HashMap<usize, Vec<Point>>,
        ledger: &mut RateLedger,
    ) -> Vec<(usize, Plan)> {
        let mut new_alert_id = || AlertId::from_u32(self.ids.next_id());
        observed
            .into_iter()
            .map(|observed| {
                let target = &targets[observed.target];
                let plan = plan(
                    Target {
                        rule: &pass.rules[target.rule],
                        version: &target.version,
                        dataset: target.dataset.as_ref(),
                        state: &observed.state,
                        tracked: observed.tracked.as_ref(),
                        coverage: coverage.get(&observed.target).map_or(&[], Vec::as_slice),
                    },
                    observed.observations,
                    &mut PlanContext {
                        clock: Clock::Live {
                            now: pass.now,
                            horizon: target.horizon,
                        },
                        config: &self.config,
                        silences: pass.silences,
                        ledger,
                        new_alert_id: &mut new_alert_id,
                    },
                );
                (observed.target, plan)
            })
            .collect()
    }

    /// Reads the states, tracked alerts and uncounted samples of `targets`, and observes
    /// the samples each target counts this round: which targets are due and from when,
    /// their uncounted samples within the pass's budget, then the windows their
    /// observations need.
    async fn observe_targets(
        &self,
        pass: &Pass<'_>,
        targets: &[PassTarget],
    ) -> Result<RoundInput, EngineError> {
        let mut tracking = self.tracking(pass, targets).await?;
        let mut input = RoundInput::default();
        let due = self.due(pass, targets, &mut tracking, &mut input);
        let ready = self
            .read_due(pass, targets, due, &mut tracking.alerts, &mut input)
            .await?;
        self.observe_ready(pass, targets, ready, &mut input).await?;
        self.read_coverage(pass, targets, &mut input).await?;
        Ok(input)
    }

    /// The label coverage of the windows behind the observed samples of series computed
    /// from predictions, so their alerts say the coverage they were decided on: one read
    /// of each such target's `label_coverage` series over its observations' times.
    async fn read_coverage(
        &self,
        pass: &Pass<'_>,
        targets: &[PassTarget],
        input: &mut RoundInput,
    ) -> Result<(), EngineError> {
        let computed: Vec<(usize, SeriesKey, TimeRange)> = input
            .observed
            .iter()
            .filter_map(|observed| {
                let target = &targets[observed.target];
                let dataset = target.dataset.as_ref()?;
                if !is_computed_dataset(dataset) || target.metrics.len() != 1 {
                    return None;
                }
                let first = observed.observations.first()?.0;
                let last = observed.observations.last()?.0;
                let key = self.key(pass, target, &coverage_metric());
                let range = TimeRange::new(first, last.saturating_add(Duration::from_millis(1)));
                Some((observed.target, key, range))
            })
            .collect();
        if computed.is_empty() {
            return Ok(());
        }
        let requests: Vec<(SeriesKey, TimeRange)> = computed
            .iter()
            .map(|(_, key, range)| (key.clone(), *range))
            .collect();
        let found = self.metrics.range_many(&requests).await?;
        for ((target, ..), points) in computed.into_iter().zip(found) {
            input.coverage.insert(target, points);
        }
        Ok(())
    }

    /// The stored states of `targets`' rules and the alerts they track.
    async fn tracking(
        &self,
        pass: &Pass<'_>,
        targets: &[PassTarget],
    ) -> Result<Tracking, EngineError> {
        let wanted: HashSet<&RuleId> = targets.iter().map(|t| &pass.rules[t.rule].id).collect();
        let mut states: HashMap<(RuleId, Version, Option<Dataset>), SeriesState> = HashMap::new();
        for stored in self.alerts.states(pass.model).await? {
            if wanted.contains(&stored.rule_id) {
                states.insert(
                    (stored.rule_id, stored.version, stored.dataset),
                    stored.state,
                );
            }
        }
        let tracked_ids: Vec<AlertId> =
            states.values().filter_map(|s| s.alert_id.clone()).collect();
        let alerts: HashMap<AlertId, Alert> = self
            .alerts
            .alerts_by_id(&tracked_ids)
            .await?
            .into_iter()
            .map(|a| (a.id.clone(), a))
            .collect();
        Ok(Tracking { states, alerts })
    }

    /// Which targets have samples to count, and from when. A target with nothing new is
    /// reported as counted, or (a no-data rule whose silence is due) observed at once;
    /// one never evaluated whose samples are all older than where it would start is left.
    fn due(
        &self,
        pass: &Pass<'_>,
        targets: &[PassTarget],
        tracking: &mut Tracking,
        input: &mut RoundInput,
    ) -> Vec<Due> {
        let mut due = Vec::new();
        for (index, target) in targets.iter().enumerate() {
            let rule = &pass.rules[target.rule];
            let state = tracking
                .states
                .remove(&(
                    rule.id.clone(),
                    target.version.clone(),
                    target.dataset.clone(),
                ))
                .unwrap_or_default();
            let no_data = match &rule.condition {
                Condition::NoData(condition) => Some(condition),
                _ => None,
            };
            let start = match state.last_observed_at {
                Some(last)
                    if !observes(rule, &target.version, Some(last), target.last_timestamp) =>
                {
                    // Nothing new: a no-data rule looks at the silence all the same.
                    let open = state
                        .alert_id
                        .as_ref()
                        .and_then(|id| tracking.alerts.get(id))
                        .is_some_and(Alert::is_open);
                    let silence = no_data.and_then(|condition| {
                        no_data::silence_due(condition, &state, open, pass.now, target.horizon)
                    });
                    match silence {
                        Some(observation) => input.observed.push(Observed {
                            target: index,
                            tracked: tracking.take(&state),
                            state,
                            observations: vec![observation],
                        }),
                        None => input.counted.push((index, last)),
                    }
                    continue;
                }
                Some(last) => last.saturating_add(Duration::from_millis(1)),
                // A no-data rule learns the series' usual interval from its last week.
                None if no_data.is_some() => {
                    no_data::first_counted(target.last_timestamp, pass.now, target.horizon)
                        .max(target.first_timestamp)
                }
                None => {
                    let fresh_start = first_counted(rule, pass.now, target.horizon);
                    if target.last_timestamp < fresh_start {
                        continue;
                    }
                    fresh_start.max(target.first_timestamp)
                }
            };
            let end = target
                .last_timestamp
                .saturating_add(Duration::from_millis(1));
            due.push((index, state, TimeRange::new(start, end)));
        }
        due
    }

    /// The uncounted samples of the due targets, the smallest backlogs first (a target
    /// evaluated every pass has a sample or two), each up to a day of samples, until the
    /// pass's budget is spent; the others wait for the next pass. No-data rules are
    /// observed here (they need only the samples' times); the others are returned with
    /// their samples, to be observed over their windows.
    async fn read_due(
        &self,
        pass: &Pass<'_>,
        targets: &[PassTarget],
        mut due: Vec<Due>,
        tracked: &mut HashMap<AlertId, Alert>,
        input: &mut RoundInput,
    ) -> Result<Vec<Ready>, EngineError> {
        due.sort_by_key(|(_, _, range)| range.length_millis());
        let mut budget = Budget(MAX_WORK_PER_PASS);
        let mut ready = Vec::new();
        let mut due = due.into_iter().peekable();
        while due.peek().is_some() && !budget.spent() {
            let group: Vec<_> = due.by_ref().take(UNCOUNTED_PER_READ).collect();
            let uncounted = self.uncounted(pass, targets, &group).await?;
            for ((index, state, _), (per_metric, more)) in group.into_iter().zip(uncounted) {
                let target = &targets[index];
                let rule = &pass.rules[target.rule];
                let (mut instants, unread) = match (&rule.condition, &rule.metric) {
                    (Condition::NoData(condition), MetricScope::Every) => {
                        // The whole version: every metric's samples, merged by time.
                        let mut merged = merge_times(&target.metrics, &per_metric);
                        let allowed = budget.take(rule, merged.len());
                        let unread = more || allowed < merged.len();
                        input.backlog |= unread;
                        merged.truncate(allowed);
                        if merged.is_empty() {
                            continue;
                        }
                        let tail = self.tail(pass, unread);
                        input.observed.push(Observed {
                            target: index,
                            observations: no_data::version_observations(
                                condition, &state, &merged, tail,
                            ),
                            tracked: state.alert_id.as_ref().and_then(|id| tracked.remove(id)),
                            state,
                        });
                        continue;
                    }
                    _ => {
                        let points = per_metric.into_iter().next().unwrap_or_default();
                        let instants: Vec<Point> =
                            instants(rule, &target.version, state.last_observed_at, &points)
                                .into_iter()
                                .cloned()
                                .collect();
                        (instants, more)
                    }
                };
                let allowed = budget.take(rule, instants.len());
                let unread = unread || allowed < instants.len();
                input.backlog |= unread;
                instants.truncate(allowed);
                if instants.is_empty() {
                    continue;
                }
                let tracked = state.alert_id.as_ref().and_then(|id| tracked.remove(id));
                // A no-data rule needs only the samples' times: no windows to read.
                if let Condition::NoData(condition) = &rule.condition {
                    let times: Vec<Timestamp> = instants.iter().map(|p| p.timestamp).collect();
                    input.observed.push(Observed {
                        target: index,
                        observations: no_data::observations(
                            condition,
                            &state,
                            &times,
                            self.tail(pass, unread),
                        ),
                        state,
                        tracked,
                    });
                    continue;
                }
                ready.push(Ready {
                    target: index,
                    state,
                    tracked,
                    instants,
                });
            }
        }
        input.backlog |= due.peek().is_some();
        Ok(ready)
    }

    /// Where a no-data rule's silence is judged up to: now, unless samples are left
    /// unread (then the next pass judges it).
    fn tail(&self, pass: &Pass<'_>, unread: bool) -> Tail {
        if unread {
            Tail::Open
        } else {
            Tail::Now {
                now: pass.now,
                horizon: self.horizon,
            }
        }
    }

    /// Observes the ready targets' samples over the windows they need, read a few series
    /// at a time (a window rule's week of history is large). A rule observing each sample
    /// alone (threshold, change point) has read all it needs: its samples.
    async fn observe_ready(
        &self,
        pass: &Pass<'_>,
        targets: &[PassTarget],
        ready: Vec<Ready>,
        input: &mut RoundInput,
    ) -> Result<(), EngineError> {
        let mut definitions: HashMap<Metric, MetricDefinition> = HashMap::new();
        for one in &ready {
            let Some(metric) = pass.rules[targets[one.target].rule].metric.metric() else {
                continue;
            };
            if !definitions.contains_key(metric) {
                definitions.insert(metric.clone(), self.metrics.definition(metric).await?);
            }
        }
        let mut ready = ready.into_iter().peekable();
        while ready.peek().is_some() {
            let group: Vec<Ready> = ready.by_ref().take(OBSERVED_PER_READ).collect();
            let windowed: Vec<&Ready> = group
                .iter()
                .filter(|one| needs_windows(&pass.rules[targets[one.target].rule]))
                .collect();
            let reads: Vec<SeriesRead> = windowed
                .iter()
                .map(|one| {
                    let target = &targets[one.target];
                    SeriesRead {
                        key: self.key(pass, target, &target.metrics[0]),
                        first: one.instants.first().map_or(pass.now, |p| p.timestamp),
                        last: one.instants.last().map_or(pass.now, |p| p.timestamp),
                    }
                })
                .collect();
            let mut windows = read_series(&*self.metrics, &reads, |i| {
                &pass.rules[targets[windowed[i].target].rule]
            })
            .await?
            .into_iter();
            for one in group {
                let target = &targets[one.target];
                let rule = &pass.rules[target.rule];
                let read = if needs_windows(rule) {
                    windows.next().unwrap_or_default()
                } else {
                    Vec::new()
                };
                let Some(definition) = rule.metric.metric().and_then(|m| definitions.get(m)) else {
                    continue;
                };
                let series = SeriesPoints {
                    definition,
                    points: if needs_windows(rule) {
                        &read
                    } else {
                        &one.instants
                    },
                };
                input.observed.push(Observed {
                    target: one.target,
                    observations: observations(
                        rule,
                        &target.version,
                        series,
                        &one.instants,
                        &self.detection,
                    ),
                    tracked: one.tracked,
                    state: one.state,
                });
            }
        }
        Ok(())
    }

    /// The uncounted samples of each due target (in `due`'s order), one vector per metric
    /// of the target, [`READ_SPAN`] at a time: a span without samples (a gap) is skipped
    /// and the read goes on with a span twice as long, until it finds samples or reaches
    /// the newest. Also says whether samples are left after what was read.
    async fn uncounted(
        &self,
        pass: &Pass<'_>,
        targets: &[PassTarget],
        due: &[(usize, SeriesState, TimeRange)],
    ) -> Result<Vec<(Vec<Vec<Point>>, bool)>, EngineError> {
        let mut found: Vec<(Vec<Vec<Point>>, bool)> = vec![(Vec::new(), false); due.len()];
        // (index into `due`, start of the next span, its length)
        let mut pending: Vec<(usize, Timestamp, Duration)> = due
            .iter()
            .enumerate()
            .map(|(i, (_, _, range))| (i, range.start, READ_SPAN))
            .collect();
        while !pending.is_empty() {
            let spans: Vec<TimeRange> = pending
                .iter()
                .map(|(i, start, span)| {
                    TimeRange::new(*start, due[*i].2.end.min(start.saturating_add(*span)))
                })
                .collect();
            let requests: Vec<(SeriesKey, TimeRange)> = pending
                .iter()
                .zip(&spans)
                .flat_map(|((i, ..), span)| {
                    let target = &targets[due[*i].0];
                    target
                        .metrics
                        .iter()
                        .map(move |metric| (self.key(pass, target, metric), *span))
                })
                .collect();
            let mut answered = self.metrics.range_many(&requests).await?.into_iter();
            let mut next = Vec::new();
            for ((i, _, length), span) in pending.into_iter().zip(spans) {
                let per_metric: Vec<Vec<Point>> = answered
                    .by_ref()
                    .take(targets[due[i].0].metrics.len())
                    .collect();
                let more = span.end < due[i].2.end;
                if per_metric.iter().all(Vec::is_empty) && more {
                    next.push((i, span.end, length.saturating_mul(2)));
                } else {
                    found[i] = (per_metric, more);
                }
            }
            pending = next;
        }
        Ok(found)
    }

    fn key(&self, pass: &Pass<'_>, target: &PassTarget, metric: &Metric) -> SeriesKey {
        let rule = &pass.rules[target.rule];
        SeriesKey::new(rule.model.clone(), target.version.clone(), metric.clone())
            .with_dataset(target.dataset.clone())
    }
}

/// A model version on one dataset as the series listing has it: every metric it has
/// there, and the oldest and newest samples of them all.
#[derive(Debug, Clone)]
pub(crate) struct WholeVersion {
    pub model: ModelName,
    pub version: Version,
    pub dataset: Option<Dataset>,
    pub metrics: Vec<Metric>,
    pub first_timestamp: Timestamp,
    pub last_timestamp: Timestamp,
}

/// The versions × datasets of `listed`, in the order they first appear.
pub(crate) fn whole_versions(listed: &[SeriesInfo]) -> Vec<WholeVersion> {
    let mut found: Vec<WholeVersion> = Vec::new();
    let mut index: HashMap<(&ModelName, &Version, Option<&Dataset>), usize> = HashMap::new();
    for series in listed {
        let key = &series.key;
        let at = *index
            .entry((&key.model, &key.version, key.dataset.as_ref()))
            .or_insert_with(|| {
                found.push(WholeVersion {
                    model: key.model.clone(),
                    version: key.version.clone(),
                    dataset: key.dataset.clone(),
                    metrics: Vec::new(),
                    first_timestamp: series.first_timestamp,
                    last_timestamp: series.last_timestamp,
                });
                found.len() - 1
            });
        let whole = &mut found[at];
        whole.metrics.push(key.metric.clone());
        whole.first_timestamp = whole.first_timestamp.min(series.first_timestamp);
        whole.last_timestamp = whole.last_timestamp.max(series.last_timestamp);
    }
    found
}

/// The sample times of several metrics' series (`per_metric[i]` of `metrics[i]`, each
/// time-ordered), merged into one time-ordered stream, each with its metric.
pub(crate) fn merge_times<'a>(
    metrics: &'a [Metric],
    per_metric: &[Vec<Point>],
) -> Vec<(Timestamp, &'a Metric)> {
    let mut merged: Vec<(Timestamp, &Metric)> = metrics
        .iter()
        .zip(per_metric)
        .flat_map(|(metric, points)| points.iter().map(move |p| (p.timestamp, metric)))
        .collect();
    merged.sort();
    merged
}

/// What a round's commits did, added to `report`: the alerts of every commit applied
/// (a target's commits are chained, so after its first conflict none applied), and for
/// each target fully committed its past breaches and last decision. Returns the targets
/// with a commit refused, to be re-read and re-planned.
fn settle(
    pass: &Pass<'_>,
    targets: &[PassTarget],
    planned: Vec<(usize, Plan)>,
    outcomes: &[CommitOutcome],
    report: &mut EvaluationReport,
) -> Vec<PassTarget> {
    let mut outcomes = outcomes.iter();
    let mut retry = Vec::new();
    for (index, plan) in planned {
        let target = &targets[index];
        let applied = outcomes
            .by_ref()
            .take(plan.commits.len())
            .collect::<Vec<_>>()
            .iter()
            .take_while(|outcome| ***outcome == CommitOutcome::Applied)
            .count();
        for commit in &plan.commits[..applied] {
            match &commit.alert {
                Some(written) if written.previous.is_none() => {
                    report.alerts_created.push(written.alert.clone());
                }
                Some(written) => report.alerts_updated.push(written.alert.clone()),
                None => {}
            }
        }
        if applied < plan.commits.len() {
            retry.push(target.clone());
            continue;
        }
        let rule = &pass.rules[target.rule];
        for step in &plan.steps {
            if matches!(step.decision, Decision::WouldHaveFired { .. }) {
                report.past_breaches.push(PastBreachRecorded {
                    rule_id: rule.id.clone(),
                    model: rule.model.clone(),
                    version: target.version.clone(),
                    dataset: target.dataset.clone(),
                    would_have_fired_at: step.at,
                    value: step.value,
                });
            }
        }
        if let Some(last) = plan.steps.last() {
            report.evaluations.push(target.evaluation(
                pass,
                plan.steps.len(),
                last.decision.clone(),
            ));
        }
    }
    retry
}

impl PassTarget {
    /// What the target did in a pass: `counted` samples, its last decision.
    fn evaluation(&self, pass: &Pass<'_>, counted: usize, decision: Decision) -> RuleEvaluation {
        let rule = &pass.rules[self.rule];
        RuleEvaluation {
            rule_id: rule.id.clone(),
            model: rule.model.clone(),
            version: self.version.clone(),
            dataset: self.dataset.clone(),
            counted,
            decision,
        }
    }
}

/// A planned commit as the store takes it.
fn store_commit(rule: &Rule, target: &PassTarget, commit: &PlannedCommit) -> AlertCommit {
    AlertCommit {
        state: Some(StateWrite {
            rule_id: rule.id.clone(),
            model: rule.model.clone(),
            version: target.version.clone(),
            dataset: target.dataset.clone(),
            previous_revision: commit.previous_revision,
            next: commit.state.clone(),
        }),
        alert: commit.alert.as_ref().map(|planned| AlertWriteGuarded {
            previous_revision: planned.previous.as_ref().map(|alert| alert.revision),
            alert: planned.alert.clone(),
        }),
        transition: commit.transition.clone(),
        notifications: commit.notifications.clone(),
    }
}
