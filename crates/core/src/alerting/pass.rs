//! Planning a pass: what evaluation writes for one rule × model version.
//!
//! [`plan`] replays the observations not yet counted, in order, through [`evaluate`] and
//! folds the outcome into guarded commits. It is the one replay there is: live
//! evaluation applies its commits to the store, the backtest and the scenario tests to
//! memory ([`InMemory`]), so what a backtest reports is what live evaluation does with
//! the same observations.
//!
//! **The clock** ([`Clock`]). Live, an observation is evaluated at the pass's clock
//! (`now`): an alert it fires fires now, and silences, rate limits, cooldowns and
//! notifications are those of now. An observation older than the **paging horizon**
//! (`now − horizon`) cannot page: it is evaluated at its own time as *historical*, and
//! where it would fire, the breach is recorded in the state as a past breach
//! ([`Decision::WouldHaveFired`]) instead; if the breach is still going on at an
//! observation inside the horizon, the alert fires there. A backtest evaluates every
//! observation at its own time and has no horizon.
//!
//! **Commits** ([`PlannedCommit`]). Each carries the state after its last evaluation,
//! guarded by the revision before it, plus at most one alert write and one history
//! record. Consecutive evaluations are folded into one commit while they touch the same
//! alert and bring no second history record, so a replay of a thousand samples that
//! fires one alert and updates it 999 times is one commit. Commits of one target are
//! chained by revision: if one loses a race, the ones after it do too, and the next pass
//! carries on from the last one applied.

use std::collections::BTreeMap;
use std::time::Duration;

use super::alert::{Alert, AlertTransition};
use super::condition::Observation;
use super::ids::AlertId;
use super::limits::{AlertConfig, RateLedger};
use super::outbox::{self, OutboxEntry};
use super::rule::Rule;
use super::silence::Silence;
use super::state::{evaluate, AlertWrite, Decision, EvaluationContext, SeriesState};
use crate::detection::changepoint::Change;
use crate::sample::{Dataset, Point, Version};
use crate::time::Timestamp;

/// How long after an observation it may still page: 24 hours. A breach whose breaching
/// observations are all older is recorded as a past breach, not paged: a server that was
/// down overnight still pages for the night, an import of last year does not.
pub const PAGING_HORIZON: Duration = Duration::from_secs(24 * 3600);

/// How far back a change-point rule evaluated for the first time starts counting: 30
/// days, so its detector learns the series' level and noise from history (30 samples of
/// a daily metric, a month of a per-minute one) instead of paging blind for its first
/// samples. What it would have fired for before the paging horizon is recorded, not
/// paged, as for any rule.
pub const CHANGE_POINT_WARM_UP: Duration = Duration::from_secs(30 * 24 * 3600);

/// Where a rule × version evaluated for the first time at `now` starts counting.
pub fn first_counted(rule: &Rule, now: Timestamp, horizon: Duration) -> Timestamp {
    let back = match rule.condition {
        super::rule::Condition::ChangePoint(_) => horizon.max(CHANGE_POINT_WARM_UP),
        _ => horizon,
    };
    now.saturating_sub(back)
}

/// When observations are evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// Live evaluation at `now`; observations older than `now − horizon` are historical.
    Live { now: Timestamp, horizon: Duration },
    /// A backtest: every observation at its own time, none historical.
    Backtest,
}

impl Clock {
    /// The time an observation made at `at` is evaluated at, and whether it is historical.
    fn evaluation_time(self, at: Timestamp) -> (Timestamp, bool) {
        match self {
            Clock::Backtest => (at, false),
            Clock::Live { now, horizon } if at < now.saturating_sub(horizon) => (at, true),
            Clock::Live { now, .. } => (now, false),
        }
    }
}

/// One rule × model version as the store has it.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub rule: &'a Rule,
    pub version: &'a Version,
    /// The dataset of the series (`None`: the default one).
    pub dataset: Option<&'a Dataset>,
    pub state: &'a SeriesState,
    /// The alert `state.alert_id` names, as stored.
    pub tracked: Option<&'a Alert>,
    /// For a series computed from predictions: its windows' `label_coverage` samples
    /// (time-ordered), so an alert says the coverage it was decided on. Empty otherwise.
    pub coverage: &'a [Point],
}

impl Target<'_> {
    /// The label coverage of the window whose sample is at `at`, if the series has one.
    fn coverage_at(&self, at: Timestamp) -> Option<f64> {
        self.coverage
            .binary_search_by_key(&at, |point| point.timestamp)
            .ok()
            .map(|found| self.coverage[found].value)
    }
}

/// What a plan needs besides the target and its observations; shared by the targets of
/// a pass.
pub struct PlanContext<'a> {
    pub clock: Clock,
    pub config: &'a AlertConfig,
    pub silences: &'a [Silence],
    /// Notified alerts of the last hour, including those this pass creates.
    pub ledger: &'a mut RateLedger,
    /// The id a new alert gets; drawn once per evaluation.
    pub new_alert_id: &'a mut dyn FnMut() -> AlertId,
}

impl std::fmt::Debug for PlanContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlanContext")
            .field("clock", &self.clock)
            .field("config", self.config)
            .field("silences", &self.silences.len())
            .finish_non_exhaustive()
    }
}

/// One observation evaluated.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedStep {
    /// The instant observed (the sample's time).
    pub at: Timestamp,
    /// The time it was evaluated at (see [`Clock`]).
    pub evaluated_at: Timestamp,
    /// The condition's value, when the observation had one.
    pub value: Option<f64>,
    pub decision: Decision,
    /// The shift a change-point rule's detector reported at this sample, watched or not.
    pub change: Option<Change>,
}

/// An alert to write: insert when `previous` is `None`, else replace `previous` (guarded
/// by its revision). `alert` has the revision the write gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedAlert {
    pub previous: Option<Alert>,
    pub alert: Alert,
}

/// One atomic, guarded write (see the module documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedCommit {
    /// The state's revision this commit expects to replace.
    pub previous_revision: u64,
    pub state: SeriesState,
    pub alert: Option<PlannedAlert>,
    pub transition: Option<AlertTransition>,
    /// Deliveries to enqueue, each with the facts of the alert as it stood when it was
    /// decided.
    pub notifications: Vec<OutboxEntry>,
}

/// The outcome of replaying one target's observations.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub steps: Vec<PlannedStep>,
    /// In order; empty when nothing changed.
    pub commits: Vec<PlannedCommit>,
    /// The state after the last commit (the state read when there is none).
    pub state: SeriesState,
}

impl Plan {
    /// The alerts this plan creates and updates, as they end up.
    pub fn alerts(&self) -> impl Iterator<Item = &PlannedAlert> {
        self.commits.iter().filter_map(|c| c.alert.as_ref())
    }
}

/// Replays `observations` (each paired with its instant, time-ordered) for `target`.
/// Every observation counts: one that cannot be judged (no data, not finite) leaves the
/// streaks as they are and is not looked at again.
pub fn plan(
    target: Target<'_>,
    observations: impl IntoIterator<Item = (Timestamp, Observation)>,
    ctx: &mut PlanContext<'_>,
) -> Plan {
    let rule = target.rule;
    let base_revision = target.state.revision;
    let mut state = target.state.clone();
    let mut tracked: Option<Alert> = target.tracked.cloned();
    let mut steps = Vec::new();
    let mut commits: Vec<PlannedCommit> = Vec::new();
    let mut current: Option<PlannedCommit> = None;
    for (at, observation) in observations {
        let (now, historical) = ctx.clock.evaluation_time(at);
        let new_alert_id = (ctx.new_alert_id)();
        let rate_at = match ctx.clock {
            Clock::Live { now, .. } => now,
            Clock::Backtest => at,
        };
        let mut evaluation = evaluate(
            rule,
            target.version,
            target.dataset,
            &state,
            tracked.as_ref(),
            &observation,
            &EvaluationContext {
                now,
                historical,
                config: ctx.config,
                rate: ctx.ledger.counts(&rule.model, rate_at),
                silences: ctx.silences,
                new_alert_id: &new_alert_id,
                label_coverage: target.coverage_at(at),
            },
        );
        // A sample that cannot be judged (too little data for the detector) is counted
        // all the same, its streaks left as they are: the replay moves past it.
        if matches!(evaluation.decision, Decision::NotJudged { .. })
            && state.last_observed_at.is_none_or(|last| at > last)
        {
            evaluation.state.last_observed_at = Some(at);
            evaluation.state.revision = state.revision.wrapping_add(1);
        }
        let change = evaluation
            .state
            .detail
            .change_point
            .as_ref()
            .and_then(|detector| detector.found_at(at))
            .filter(|_| state.last_observed_at < Some(at));
        steps.push(PlannedStep {
            at,
            evaluated_at: now,
            value: change.map_or_else(|| observation.condition_value(), |c| Some(c.shift_sd)),
            decision: evaluation.decision.clone(),
            change,
        });
        if evaluation.state == state && evaluation.alert.is_none() {
            continue;
        }
        if evaluation.counts_against_rate_limits() {
            ctx.ledger.record(&rule.model, rate_at);
        }
        let entries = outbox::for_evaluation(&rule.notify_channels, &evaluation, now);
        let touched = evaluation.alert.as_ref().map(|w| &w.alert().id);
        let split = current.as_ref().is_some_and(|commit| {
            let other_alert = match (&commit.alert, touched) {
                (Some(planned), Some(id)) => planned.alert.id != *id,
                _ => false,
            };
            other_alert || (commit.transition.is_some() && evaluation.transition.is_some())
        });
        if split {
            commits.extend(current.take());
        }
        let commit = current.get_or_insert_with(|| PlannedCommit {
            previous_revision: 0,
            state: SeriesState::default(),
            alert: None,
            transition: None,
            notifications: Vec::new(),
        });
        if let Some(write) = &evaluation.alert {
            let mut alert = write.alert().clone();
            match &mut commit.alert {
                // The same alert again: still one write, of the commit's revision.
                Some(planned) => {
                    alert.revision = planned.alert.revision;
                    planned.alert = alert.clone();
                }
                None => {
                    let previous = match write {
                        AlertWrite::Insert(_) => None,
                        AlertWrite::Update(_) => tracked.clone(),
                    };
                    alert.revision =
                        Alert::next_revision(previous.as_ref().map(|alert| alert.revision));
                    commit.alert = Some(PlannedAlert {
                        previous,
                        alert: alert.clone(),
                    })
                }
            }
            commit.notifications.extend(entries);
            tracked = Some(alert);
        }
        if evaluation.transition.is_some() {
            commit.transition = evaluation.transition;
        }
        commit.state = evaluation.state.clone();
        state = evaluation.state;
    }
    commits.extend(current);
    // One revision per commit, so each commit's guard is the one before it.
    for (index, commit) in commits.iter_mut().enumerate() {
        let index = index as u64;
        commit.previous_revision = base_revision.wrapping_add(index);
        commit.state.revision = base_revision.wrapping_add(index + 1);
    }
    let state = commits
        .last()
        .map_or_else(|| target.state.clone(), |c| c.state.clone());
    Plan {
        steps,
        commits,
        state,
    }
}

/// Commits applied to memory, as the stores apply them to tables: what the backtest
/// and the scenario tests hold instead of a store.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InMemory {
    pub alerts: BTreeMap<AlertId, Alert>,
    pub history: Vec<AlertTransition>,
    pub outbox: Vec<OutboxEntry>,
}

impl InMemory {
    /// Applies `commits` in order; a commit whose alert guard fails (the alert's revision
    /// is not `previous`'s) is refused, as a store would, and so are the ones after it.
    pub fn apply(&mut self, commits: &[PlannedCommit]) -> bool {
        for commit in commits {
            if let Some(planned) = &commit.alert {
                let stored = self.alerts.get(&planned.alert.id).map(|a| a.revision);
                if stored != planned.previous.as_ref().map(|a| a.revision) {
                    return false;
                }
                self.alerts
                    .insert(planned.alert.id.clone(), planned.alert.clone());
            }
            self.history.extend(commit.transition.clone());
            for entry in &commit.notifications {
                if !self.outbox.iter().any(|e| e.dedup_key == entry.dedup_key) {
                    self.outbox.push(entry.clone());
                }
            }
        }
        true
    }

    /// The alert a state tracks.
    pub fn tracked(&self, state: &SeriesState) -> Option<&Alert> {
        state.alert_id.as_ref().and_then(|id| self.alerts.get(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::{AlertStatus, PastBreach, RuleId, RuleSpec, Severity};

    const MINUTE: i64 = 60_000;

    fn at(minute: i64) -> Timestamp {
        Timestamp::from_millis(1_700_000_000_000 + minute * MINUTE).unwrap()
    }

    /// `accuracy < 0.9` on model `m`, notifying ops and pager, plus `extra` fields.
    fn rule(extra: &str) -> Rule {
        let spec: RuleSpec = serde_json::from_str(&format!(
            r#"{{"name":"low","model":"m","metric":"accuracy","threshold_value":0.9,
                "comparison_operator":"lt","severity":"high","notify_channels":["ops","pager"]{extra}}}"#
        ))
        .unwrap();
        Rule::create(spec, RuleId::from_u32(1), at(-100_000)).unwrap()
    }

    fn values(from_minute: i64, values: &[f64]) -> Vec<(Timestamp, Observation)> {
        values
            .iter()
            .zip(from_minute..)
            .map(|(value, minute)| {
                (
                    at(minute),
                    Observation::Value {
                        at: at(minute),
                        value: *value,
                    },
                )
            })
            .collect()
    }

    /// Plans `observations` for a fresh state of `rule` at the clock `now` (minutes).
    fn live(
        rule: &Rule,
        state: &SeriesState,
        now: i64,
        observations: Vec<(Timestamp, Observation)>,
    ) -> Plan {
        live_with_coverage(rule, state, now, observations, &[])
    }

    /// [`live`] of a series computed from predictions, whose windows had `coverage`.
    fn live_with_coverage(
        rule: &Rule,
        state: &SeriesState,
        now: i64,
        observations: Vec<(Timestamp, Observation)>,
        coverage: &[Point],
    ) -> Plan {
        let version = Version::parse("v1").unwrap();
        let config = AlertConfig::default();
        let mut ledger = RateLedger::new();
        let mut drawn = 0;
        let mut new_alert_id = || {
            drawn += 1;
            AlertId::from_u32(drawn)
        };
        plan(
            Target {
                rule,
                version: &version,
                dataset: None,
                state,
                tracked: None,
                coverage,
            },
            observations,
            &mut PlanContext {
                clock: Clock::Live {
                    now: at(now),
                    horizon: PAGING_HORIZON,
                },
                config: &config,
                silences: &[],
                ledger: &mut ledger,
                new_alert_id: &mut new_alert_id,
            },
        )
    }

    #[test]
    fn an_alert_of_a_named_dataset_carries_it_and_says_so() {
        let rule = rule(r#","dataset":"*""#);
        let version = Version::parse("v1").unwrap();
        let canary = Dataset::parse("canary").unwrap();
        let breaching = values(0, &[0.5, 0.5, 0.5]);
        let replay = |dataset: Option<&Dataset>| {
            crate::alerting::backtest_on(
                &rule,
                &version,
                dataset,
                &breaching,
                SeriesState::default(),
            )
            .last_alert
            .unwrap()
        };
        let on_canary = replay(Some(&canary));
        assert_eq!(on_canary.dataset, Some(canary));
        assert!(
            on_canary
                .message
                .contains("accuracy of m/v1 on dataset canary"),
            "{}",
            on_canary.message
        );
        let on_default = replay(None);
        assert_eq!(on_default.dataset, None);
        assert!(
            !on_default.message.contains("dataset"),
            "{}",
            on_default.message
        );
        // (The default dataset's alert is stored as alerts always were: the store's
        // record leaves an absent dataset out.)
        assert_eq!(
            on_canary.dataset.as_ref().map(|d| d.as_str()),
            Some("canary")
        );
    }

    fn decisions(plan: &Plan) -> Vec<(Timestamp, &'static str)> {
        plan.steps
            .iter()
            .filter_map(|step| {
                let name = match step.decision {
                    Decision::Fired { .. } => "fired",
                    Decision::WouldHaveFired { .. } => "would have fired",
                    Decision::PastBreachCleared { .. } => "past breach cleared",
                    Decision::AutoResolved { .. } => "resolved",
                    Decision::ConditionCleared { .. } => "cleared",
                    _ => return None,
                };
                Some((step.at, name))
            })
            .collect()
    }

    #[test]
    fn an_import_replayed_at_once_fires_now_at_its_third_breach_in_one_commit() {
        let rule = rule("");
        let observations = values(90, &[0.95, 0.95, 0.95, 0.95, 0.95, 0.8, 0.8, 0.8, 0.7, 0.8]);
        let plan = live(&rule, &SeriesState::default(), 120, observations);
        assert_eq!(decisions(&plan), [(at(97), "fired")]);
        // The alert fires now, for the sample that made it fire, and folds in the rest.
        let [commit] = &plan.commits[..] else {
            panic!("{:#?}", plan.commits)
        };
        let alert = &commit.alert.as_ref().unwrap().alert;
        assert_eq!(commit.alert.as_ref().unwrap().previous, None);
        assert_eq!((alert.first_seen, alert.last_seen), (at(120), at(120)));
        assert_eq!((alert.occurrences, alert.worst_value), (3, 0.7));
        assert_eq!(alert.status, AlertStatus::Active);
        assert_eq!(commit.notifications.len(), 2);
        assert_eq!(commit.transition.as_ref().unwrap().at, at(120));
        assert_eq!((commit.previous_revision, commit.state.revision), (0, 1));
        assert_eq!(plan.state.last_observed_at, Some(at(99)));
        assert_eq!(plan.state.consecutive_breaches, 5);
    }

    #[test]
    fn an_alert_on_a_computed_metric_says_the_coverage_it_was_decided_on() {
        let rule = rule("");
        let coverage = |minute: i64, value: f64| Point {
            timestamp: at(minute),
            value,
            dataset: None,
        };
        // Windows at minutes 0..4; the alert fires at the third breach (minute 2) and
        // is updated by the fourth (minute 3), whose window had 90 % of its labels.
        let plan = live_with_coverage(
            &rule,
            &SeriesState::default(),
            10,
            values(0, &[0.8, 0.8, 0.8, 0.8]),
            &[coverage(0, 0.5), coverage(2, 0.625), coverage(3, 0.9)],
        );
        assert_eq!(decisions(&plan), [(at(2), "fired")]);
        let alert = &plan.alerts().next().unwrap().alert;
        assert_eq!(alert.label_coverage, Some(0.9));
        assert!(
            alert.message.ends_with("(decided at label coverage 90%)"),
            "{}",
            alert.message
        );
        // A pushed metric's alert says nothing of coverage.
        let pushed = live(&rule, &SeriesState::default(), 10, values(0, &[0.8; 4]));
        let alert = &pushed.alerts().next().unwrap().alert;
        assert_eq!(alert.label_coverage, None);
        assert!(!alert.message.contains("coverage"), "{}", alert.message);
    }

    #[test]
    fn a_breach_that_ended_before_the_horizon_is_recorded_and_pages_nobody() {
        let rule = rule("");
        let day = 24 * 60;
        // Minutes 0..10 breach, then clear; "now" is three days later.
        let mut observations = values(0, &[0.8; 10]);
        observations.extend(values(10, &[0.95; 10]));
        let plan = live(&rule, &SeriesState::default(), 3 * day, observations);
        assert_eq!(
            decisions(&plan),
            [(at(2), "would have fired"), (at(12), "past breach cleared")]
        );
        assert!(plan.alerts().next().is_none());
        assert!(plan.commits.iter().all(|c| c.notifications.is_empty()));
        assert_eq!(
            plan.state.detail.past_breaches,
            [PastBreach {
                would_have_fired_at: at(2),
                value: Some(0.8),
                cleared_at: Some(at(12)),
                alert_id: None
            }]
        );
        assert_eq!(plan.state.alert_id, None);
    }

    #[test]
    fn a_past_breach_still_going_on_inside_the_horizon_fires_at_its_first_recent_sample() {
        let rule = rule("");
        let day = 24 * 60;
        let now = 2 * day;
        // Breaching from 30 minutes before the horizon until now, a sample a minute.
        let first = now - day - 30;
        let plan = live(
            &rule,
            &SeriesState::default(),
            now,
            values(first, &[0.8; 60]),
        );
        assert_eq!(
            decisions(&plan),
            [
                (at(first + 2), "would have fired"),
                (at(now - day), "fired")
            ]
        );
        let alert = &plan.alerts().next().unwrap().alert;
        assert_eq!(alert.first_seen, at(now));
        assert_eq!(
            plan.state.detail.past_breaches,
            [PastBreach {
                would_have_fired_at: at(first + 2),
                value: Some(0.8),
                cleared_at: None,
                alert_id: Some(alert.id.clone())
            }]
        );
        assert_eq!(plan.state.alert_id, Some(alert.id.clone()));
    }

    #[test]
    fn each_alert_and_each_history_record_gets_its_own_chained_commit() {
        let rule = rule(
            r#","auto_resolve":true,"cooldown_minutes":0,"for_evaluations":1,"clear_after_evaluations":1"#,
        );
        let observations = values(0, &[0.8, 0.7, 0.95, 0.95, 0.8]);
        let state = SeriesState {
            revision: 41,
            ..SeriesState::default()
        };
        let plan = live(&rule, &state, 10, observations);
        assert_eq!(
            decisions(&plan),
            [(at(0), "fired"), (at(2), "resolved"), (at(4), "fired")]
        );
        let shape: Vec<_> = plan
            .commits
            .iter()
            .map(|c| {
                let alert = c.alert.as_ref().unwrap();
                (
                    c.previous_revision,
                    c.state.revision,
                    alert.alert.id.as_str().to_owned(),
                    alert.previous.as_ref().map(|a| a.status),
                    alert.alert.status,
                    c.transition.as_ref().map(|t| t.to),
                )
            })
            .collect();
        assert_eq!(
            shape,
            [
                (
                    41,
                    42,
                    "alert_00000001".into(),
                    None,
                    AlertStatus::Active,
                    Some(AlertStatus::Active)
                ),
                (
                    42,
                    43,
                    "alert_00000001".into(),
                    Some(AlertStatus::Active),
                    AlertStatus::Resolved,
                    Some(AlertStatus::Resolved)
                ),
                (
                    43,
                    44,
                    "alert_00000005".into(),
                    None,
                    AlertStatus::Active,
                    Some(AlertStatus::Active)
                ),
            ]
        );
        // The first commit folded the second breach into the new alert.
        assert_eq!(plan.commits[0].alert.as_ref().unwrap().alert.occurrences, 2);
        // Alert revisions: one per commit that writes the alert, each guarded by the one
        // before (the first alert's update replaces revision 1, whatever was folded in).
        let revisions: Vec<_> = plan
            .alerts()
            .map(|a| (a.previous.as_ref().map(|p| p.revision), a.alert.revision))
            .collect();
        assert_eq!(revisions, [(None, 1), (Some(1), 2), (None, 1)]);
        let mut memory = InMemory::default();
        let mut stale = plan.commits.clone();
        if let Some(alert) = &mut stale[1].alert {
            alert.previous.as_mut().unwrap().revision = 0;
        }
        assert!(!memory.apply(&stale[..2]));
        let mut memory = InMemory::default();
        assert!(memory.apply(&plan.commits));
        assert_eq!(memory.alerts[&AlertId::from_u32(1)].revision, 2);
        assert_eq!(memory.alerts.len(), 2);
        assert_eq!(memory.history.len(), 3);
        assert_eq!(plan.state.revision, 44);
        assert_eq!(rule.severity, Severity::High);
    }

    #[test]
    fn a_historical_breach_folds_into_an_open_alert_without_notifying() {
        let rule = rule(r#","for_evaluations":1"#);
        let day = 24 * 60;
        let first = live(&rule, &SeriesState::default(), 0, values(0, &[0.8]));
        let mut memory = InMemory::default();
        memory.apply(&first.commits);
        // An outage, then a backlog from long ago (after the last sample counted).
        let version = Version::parse("v1").unwrap();
        let config = AlertConfig::default();
        let mut ledger = RateLedger::new();
        let mut new_alert_id = || AlertId::from_u32(99);
        let backlog = plan(
            Target {
                rule: &rule,
                version: &version,
                dataset: None,
                state: &first.state,
                tracked: memory.tracked(&first.state),
                coverage: &[],
            },
            values(1, &[0.5, 0.6]),
            &mut PlanContext {
                clock: Clock::Live {
                    now: at(3 * day),
                    horizon: PAGING_HORIZON,
                },
                config: &config,
                silences: &[],
                ledger: &mut ledger,
                new_alert_id: &mut new_alert_id,
            },
        );
        let [commit] = &backlog.commits[..] else {
            panic!("{:#?}", backlog.commits)
        };
        let alert = &commit.alert.as_ref().unwrap().alert;
        assert_eq!((alert.occurrences, alert.worst_value), (3, 0.5));
        assert!(commit.notifications.is_empty());
        assert!(backlog.steps.iter().all(|s| matches!(
            &s.decision,
            Decision::Updated { notify, .. } if !notify.notifies()
        )));
    }
}
