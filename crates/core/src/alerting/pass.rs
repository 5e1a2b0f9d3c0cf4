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
use crate::sample::Version;
use crate::time::Timestamp;

/// How long after an observation it may still page: 24 hours. A breach whose breaching
/// observations are all older is recorded as a past breach, not paged: a server that was
/// down overnight still pages for the night, an import of last year does not.
pub const PAGING_HORIZON: Duration = Duration::from_secs(24 * 3600);

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
    pub state: &'a SeriesState,
    /// The alert `state.alert_id` names, as stored.
    pub tracked: Option<&'a Alert>,
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
}

/// An alert to write: insert when `previous` is `None`, else replace `previous`.
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
    /// Deliveries to enqueue, each with the alert as it stood when it was decided.
    pub notifications: Vec<(OutboxEntry, Alert)>,
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
        steps.push(PlannedStep {
            at,
            evaluated_at: now,
            value: observation.condition_value(),
            decision: evaluation.decision.clone(),
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
            let alert = write.alert().clone();
            match &mut commit.alert {
                Some(planned) => planned.alert = alert.clone(),
                None => {
                    commit.alert = Some(PlannedAlert {
                        previous: match write {
                            AlertWrite::Insert(_) => None,
                            AlertWrite::Update(_) => tracked.clone(),
                        },
                        alert: alert.clone(),
                    })
                }
            }
            commit
                .notifications
                .extend(entries.into_iter().map(|entry| (entry, alert.clone())));
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
    /// Applies `commits` in order; a commit whose alert guard fails (the alert is not
    /// `previous`) is refused, as a store would, and so are the ones after it.
    pub fn apply(&mut self, commits: &[PlannedCommit]) -> bool {
        for commit in commits {
            if let Some(planned) = &commit.alert {
                if self.alerts.get(&planned.alert.id) != planned.previous.as_ref() {
                    return false;
                }
                self.alerts
                    .insert(planned.alert.id.clone(), planned.alert.clone());
            }
            self.history.extend(commit.transition.clone());
            for (entry, _) in &commit.notifications {
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
