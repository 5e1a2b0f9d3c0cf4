//! The evaluation state machine of one rule for one model version.
//!
//! [`evaluate`] is pure: it takes what the engine persisted last time ([`SeriesState`] and
//! the alert it points at), this evaluation's [`Observation`], and an
//! [`EvaluationContext`] holding "now", the global configuration, rate-limit counts and
//! silences. It returns a [`Decision`] saying what happened and why, the state to persist,
//! and the alert write and history record to apply. Live evaluation and the backtest both
//! drive this one function, which is why they agree.
//!
//! Anti-flap: an alert fires after `for_evaluations` consecutive breaching observations
//! and its condition counts as cleared after `clear_after_evaluations` clear ones. An
//! observation that is not newer than the last one counted is ignored, so evaluating
//! twice (or from two evaluators at once) without new data changes nothing.
//!
//! **Past breaches.** An observation older than the paging horizon (see
//! [`super::pass`]) is evaluated with [`EvaluationContext::historical`] set: where it
//! would fire, nobody is paged for an incident long over; the breach is recorded in the
//! state as a [`PastBreach`] ([`Decision::WouldHaveFired`]) and stays open until the
//! condition counts as cleared. When the breach is still going on at an observation
//! inside the horizon, the alert fires there and then, as it would have all along.

use super::alert::{Alert, AlertStatus, AlertTransition, Trigger, SYSTEM_ACTOR};
use super::condition::{ChangePointReading, Observation, Unjudgeable, Verdict};
use super::ids::AlertId;
use super::limits::{
    mute_reason, rate_limit_reason, AlertConfig, HoldReason, NotifyDecision, NotifyReason,
    RateCounts,
};
use super::no_data::Cadence;
use super::rule::{Condition, Rule, Severity};
use super::silence::{muting_silence, Silence};
use crate::detection::changepoint::{ChangePointState, Tuning};
use crate::metric::MetricScope;
use crate::sample::{Dataset, Version};
use crate::time::Timestamp;

/// What the engine persists per rule × model version between evaluations.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SeriesState {
    pub consecutive_breaches: u32,
    pub consecutive_clears: u32,
    /// The newest alert this rule raised for this version, open or closed: the target of
    /// deduplication while open, the start of the cooldown once resolved.
    pub alert_id: Option<AlertId>,
    /// The time of the newest observation counted; older or equal ones are ignored.
    pub last_observed_at: Option<Timestamp>,
    /// Bumped by every evaluation that changes the state, for compare-and-swap writes
    /// when two evaluators race.
    pub revision: u64,
    /// What else a rule keeps between evaluations; the stores keep it as one JSON value,
    /// so it can grow without a migration.
    pub detail: StateDetail,
}

/// The part of a [`SeriesState`] stored as one JSON value. Every field has a default, so
/// a state stored before a field existed reads back as it was.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StateDetail {
    /// Breaches older than the paging horizon that would have fired, oldest first (at
    /// most [`MAX_PAST_BREACHES`]): the rule's history of what it did not page for.
    pub past_breaches: Vec<PastBreach>,
    /// A change-point rule's detector, advanced by every sample counted.
    pub change_point: Option<ChangePointState>,
    /// A no-data rule's view of its series' sampling, advanced by every sample counted.
    pub cadence: Option<Cadence>,
}

impl StateDetail {
    pub fn is_empty(&self) -> bool {
        *self == StateDetail::default()
    }

    /// The past breach still going on, if any: neither cleared nor paged yet.
    pub fn open_past_breach(&self) -> Option<&PastBreach> {
        self.past_breaches.last().filter(|b| b.is_open())
    }

    fn open_past_breach_mut(&mut self) -> Option<&mut PastBreach> {
        self.past_breaches.last_mut().filter(|b| b.is_open())
    }

    fn record_past_breach(&mut self, breach: PastBreach) {
        if self.past_breaches.len() >= MAX_PAST_BREACHES {
            self.past_breaches.remove(0);
        }
        self.past_breaches.push(breach);
    }
}

/// How many past breaches a state keeps; a backtest lists them all.
pub const MAX_PAST_BREACHES: usize = 20;

/// A breach that would have fired at an observation older than the paging horizon.
#[derive(Debug, Clone, PartialEq)]
pub struct PastBreach {
    /// The observation at which the rule would have fired.
    pub would_have_fired_at: Timestamp,
    /// The condition's value there (see [`Observation::condition_value`]).
    pub value: Option<f64>,
    /// When the condition counted as cleared again, all before the horizon.
    pub cleared_at: Option<Timestamp>,
    /// The alert that fired when the breach lasted into the horizon.
    pub alert_id: Option<AlertId>,
}

impl PastBreach {
    pub fn is_open(&self) -> bool {
        self.cleared_at.is_none() && self.alert_id.is_none()
    }
}

/// Everything an evaluation needs besides the rule, its state and the observation.
#[derive(Debug, Clone, Copy)]
pub struct EvaluationContext<'a> {
    /// The time the evaluation happens at: the pass's clock, or in a backtest and for a
    /// historical observation, the observation's own time.
    pub now: Timestamp,
    /// The observation is older than the paging horizon: a firing is recorded as a
    /// [`PastBreach`] instead, and nothing notifies.
    pub historical: bool,
    pub config: &'a AlertConfig,
    /// Notified alerts created in the last hour (see [`super::limits::RateLedger`]).
    pub rate: RateCounts,
    /// Silences to consider; only those muting this series at `now` apply.
    pub silences: &'a [Silence],
    /// The id a new alert gets, if this evaluation creates one.
    pub new_alert_id: &'a AlertId,
    /// The label coverage of the window the observed sample stands for, when the series
    /// is computed from predictions ([`Alert::label_coverage`]).
    pub label_coverage: Option<f64>,
}

/// What one evaluation did, and why.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    RuleDisabled,
    /// The observation could not be judged (no data, not finite, wrong kind); nothing changed.
    NotJudged {
        why: Unjudgeable,
    },
    /// The observation is not newer than the last one counted; nothing changed.
    AlreadyCounted {
        last_observed_at: Timestamp,
    },
    /// Breaching, but not yet for long enough to fire.
    Pending {
        breaches: u32,
        needed: u32,
    },
    /// Breaching for long enough, but the previous alert resolved too recently.
    InCooldown {
        until: Timestamp,
        breaches: u32,
    },
    Fired {
        alert_id: AlertId,
        status: AlertStatus,
        notify: NotifyDecision,
    },
    /// A new breach folded into the open alert.
    Updated {
        alert_id: AlertId,
        occurrences: u32,
        worst_value: f64,
        severity_rose: Option<(Severity, Severity)>,
        notify: NotifyDecision,
    },
    /// Between the firing and the clearing line (hysteresis): the open alert stays.
    Holding {
        alert_id: AlertId,
    },
    /// Clear, but not yet for long enough.
    Clearing {
        alert_id: AlertId,
        clears: u32,
        needed: u32,
    },
    /// Clear for long enough; without auto-resolve the alert waits for a person.
    ConditionCleared {
        alert_id: AlertId,
    },
    /// Still clear after [`Decision::ConditionCleared`], alert still open.
    AwaitingResolution {
        alert_id: AlertId,
    },
    /// Clear for long enough and resolved as `modelwatch`.
    AutoResolved {
        alert_id: AlertId,
    },
    /// A suppressed alert's condition cleared; it is closed and stays `suppressed`.
    SuppressedClosed {
        alert_id: AlertId,
    },
    /// Clear and no alert open.
    Clear,
    /// Breaching for long enough at an observation older than the paging horizon: would
    /// have fired, recorded as a [`PastBreach`], nobody paged.
    WouldHaveFired {
        breaches: u32,
    },
    /// Still breaching (or between the lines) during a past breach, before the horizon.
    PastBreachGoesOn {
        since: Timestamp,
    },
    /// A past breach's condition cleared for long enough before the horizon.
    PastBreachCleared {
        since: Timestamp,
    },
}

/// How the engine writes the alert an evaluation touched.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertWrite {
    Insert(Alert),
    Update(Alert),
}

impl AlertWrite {
    pub fn alert(&self) -> &Alert {
        match self {
            AlertWrite::Insert(alert) | AlertWrite::Update(alert) => alert,
        }
    }
}

/// The result of [`evaluate`]: apply `alert` and `transition`, persist `state` (when it
/// differs from the previous one) and enqueue [`super::outbox::for_evaluation`], all in one
/// transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub decision: Decision,
    pub state: SeriesState,
    pub alert: Option<AlertWrite>,
    pub transition: Option<AlertTransition>,
}

impl Evaluation {
    fn unchanged(decision: Decision, state: &SeriesState) -> Evaluation {
        Evaluation {
            decision,
            state: state.clone(),
            alert: None,
            transition: None,
        }
    }

    /// Whether this evaluation created an alert whose notification counts against the
    /// rate limits.
    pub fn counts_against_rate_limits(&self) -> bool {
        matches!(&self.decision, Decision::Fired { notify, .. } if notify.notifies())
    }
}

/// Evaluates `rule` for `version`'s series on `dataset` (`None`: the default dataset).
/// `tracked` is the alert `state.alert_id` names, as the
/// store has it now (a person may have acknowledged or resolved it since); any other
/// alert passed in is ignored.
pub fn evaluate(
    rule: &Rule,
    version: &Version,
    dataset: Option<&Dataset>,
    state: &SeriesState,
    tracked: Option<&Alert>,
    observation: &Observation,
    ctx: &EvaluationContext<'_>,
) -> Evaluation {
    if !rule.enabled {
        return Evaluation::unchanged(Decision::RuleDisabled, state);
    }
    let tracked = tracked.filter(|alert| state.alert_id.as_ref() == Some(&alert.id));
    let open = tracked.filter(|alert| alert.is_open());
    if let (Some(at), Some(last)) = (observation.observed_at(), state.last_observed_at) {
        if at <= last {
            return Evaluation::unchanged(
                Decision::AlreadyCounted {
                    last_observed_at: last,
                },
                state,
            );
        }
    }
    // A change-point rule's detector counts every new sample, whatever comes of it.
    let (stepped, detector) = step_change_point(rule, state, observation);
    let observation = stepped.as_ref().unwrap_or(observation);
    let past = state.detail.open_past_breach();
    let verdict = match rule
        .condition
        .verdict(observation, open.is_some() || past.is_some())
    {
        Ok(verdict) => verdict,
        Err(why) => return Evaluation::unchanged(Decision::NotJudged { why }, state),
    };
    let mut next = state.clone();
    if detector.is_some() {
        next.detail.change_point = detector;
    }
    if let (Condition::NoData(_), Observation::Freshness(reading)) = (&rule.condition, observation)
    {
        if reading.is_sample() {
            let cadence = next.detail.cadence.get_or_insert_with(Cadence::default);
            cadence.record(reading.at);
            cadence.last_samples.clone_from(&reading.last_samples);
        }
    }
    next.last_observed_at = observation.observed_at();
    next.revision = state.revision.wrapping_add(1);
    let step = Step {
        rule,
        version,
        dataset,
        observation,
        ctx,
    };
    match verdict {
        Verdict::Breaches => {
            next.consecutive_clears = 0;
            next.consecutive_breaches = state.consecutive_breaches.saturating_add(1);
            if let Some(alert) = open {
                return step.update(alert, next);
            }
            let needed = rule.anti_flap.for_evaluations;
            if next.consecutive_breaches < needed {
                let breaches = next.consecutive_breaches;
                return step.only_state(Decision::Pending { breaches, needed }, next);
            }
            if let (Some(breach), true) = (past, ctx.historical) {
                let since = breach.would_have_fired_at;
                return step.only_state(Decision::PastBreachGoesOn { since }, next);
            }
            if let Some(until) = cooldown_end(rule, tracked) {
                if ctx.now < until {
                    let breaches = next.consecutive_breaches;
                    return step.only_state(Decision::InCooldown { until, breaches }, next);
                }
            }
            if ctx.historical {
                next.detail.record_past_breach(PastBreach {
                    would_have_fired_at: ctx.now,
                    value: observation.condition_value(),
                    cleared_at: None,
                    alert_id: None,
                });
                let breaches = next.consecutive_breaches;
                return step.only_state(Decision::WouldHaveFired { breaches }, next);
            }
            step.fire(next)
        }
        Verdict::Holds => {
            next.consecutive_breaches = 0;
            next.consecutive_clears = 0;
            // The condition only holds while an alert (or a past breach) is open; without
            // one this is clear.
            let decision = match (open, past) {
                (Some(alert), _) => Decision::Holding {
                    alert_id: alert.id.clone(),
                },
                (None, Some(breach)) => Decision::PastBreachGoesOn {
                    since: breach.would_have_fired_at,
                },
                (None, None) => Decision::Clear,
            };
            step.only_state(decision, next)
        }
        Verdict::Clear => {
            next.consecutive_breaches = 0;
            next.consecutive_clears = state.consecutive_clears.saturating_add(1);
            match (open, past) {
                (Some(alert), _) => step.clear(alert, next),
                (None, Some(breach)) => {
                    let since = breach.would_have_fired_at;
                    if next.consecutive_clears < rule.anti_flap.clear_after_evaluations {
                        return step.only_state(Decision::PastBreachGoesOn { since }, next);
                    }
                    if let Some(breach) = next.detail.open_past_breach_mut() {
                        breach.cleared_at = Some(ctx.now);
                    }
                    step.only_state(Decision::PastBreachCleared { since }, next)
                }
                (None, None) => step.only_state(Decision::Clear, next),
            }
        }
    }
}

/// Counts a change-point rule's sample with its detector: the reading the condition
/// judges and the detector's next state; `(None, None)` for any other rule or observation.
fn step_change_point(
    rule: &Rule,
    state: &SeriesState,
    observation: &Observation,
) -> (Option<Observation>, Option<ChangePointState>) {
    let (
        Condition::ChangePoint(condition),
        Observation::Sample {
            at,
            value,
            direction,
        },
    ) = (&rule.condition, observation)
    else {
        return (None, None);
    };
    if !value.is_finite() {
        return (None, None);
    }
    let settings = condition.settings(*direction);
    let mut detector = state.detail.change_point.clone().unwrap_or_default();
    let change = detector.observe(&settings, &Tuning::default(), *at, *value);
    let reading = ChangePointReading {
        at: *at,
        value: *value,
        change,
        watched: change.is_some_and(|c| settings.sides.watches(c.upward)),
        shifted: detector.is_shifted(settings.sides),
    };
    (Some(Observation::ChangePoint(reading)), Some(detector))
}

/// When the cooldown after the tracked alert's resolution ends, if it was resolved.
fn cooldown_end(rule: &Rule, tracked: Option<&Alert>) -> Option<Timestamp> {
    let resolved_at = tracked?.resolved_at?;
    let millis = u64::try_from(rule.cooldown_millis()).unwrap_or(0);
    Some(resolved_at.saturating_add(std::time::Duration::from_millis(millis)))
}

struct Step<'a> {
    rule: &'a Rule,
    version: &'a Version,
    dataset: Option<&'a Dataset>,
    observation: &'a Observation,
    ctx: &'a EvaluationContext<'a>,
}

impl Step<'_> {
    fn only_state(&self, decision: Decision, state: SeriesState) -> Evaluation {
        Evaluation {
            decision,
            state,
            alert: None,
            transition: None,
        }
    }

    fn silence_id(&self) -> Option<&super::ids::SilenceId> {
        muting_silence(
            self.ctx.silences,
            &self.rule.model,
            self.version,
            &self.rule.metric,
            self.ctx.now,
        )
        .map(|s| &s.id)
    }

    /// Whether this observation is a change-point detector's outlier (a single sample),
    /// not a shift of the level.
    fn is_outlier(&self) -> bool {
        matches!(self.observation, Observation::ChangePoint(reading)
            if reading.change.is_some_and(|change| change.outlier))
    }

    fn value(&self) -> f64 {
        self.observation.condition_value().unwrap_or(f64::NAN)
    }

    fn trigger(&self) -> Trigger {
        match (&self.rule.condition, self.observation) {
            (
                Condition::Degradation {
                    max_degradation_percentage,
                    ..
                },
                Observation::Degradation(reading),
            ) => Trigger::Degradation {
                max_degradation_percentage: *max_degradation_percentage,
                degradation_percentage: reading.degradation_percentage,
                current_value: reading.current_value,
                baseline_value: reading.baseline_value,
                test: reading.test.clone(),
            },
            (
                Condition::Degradation {
                    max_degradation_percentage,
                    ..
                },
                _,
            ) => Trigger::Degradation {
                max_degradation_percentage: *max_degradation_percentage,
                degradation_percentage: self.value(),
                current_value: f64::NAN,
                baseline_value: f64::NAN,
                test: None,
            },
            (
                Condition::Threshold {
                    comparison_operator,
                    threshold_value,
                    ..
                },
                _,
            ) => Trigger::Threshold {
                comparison_operator: *comparison_operator,
                threshold_value: *threshold_value,
            },
            (Condition::ChangePoint(condition), observation) => {
                let change = match observation {
                    Observation::ChangePoint(reading) => reading.change,
                    _ => None,
                };
                let at = observation.observed_at().unwrap_or(self.ctx.now);
                Trigger::ChangePoint {
                    condition: *condition,
                    change_started_at: change.map_or(at, |c| c.started_at),
                    level_before: change.map_or(f64::NAN, |c| c.level_before),
                    level_after: change.map_or(f64::NAN, |c| c.level_after),
                    shift: change.map_or(f64::NAN, |c| c.shift),
                    shift_percentage: change.and_then(|c| c.shift_percentage),
                    shift_sd: change.map_or(f64::NAN, |c| c.shift_sd),
                    noise_sd: change.map_or(f64::NAN, |c| c.noise_sd),
                }
            }
            (Condition::NoData(condition), observation) => {
                let reading = match observation {
                    Observation::Freshness(reading) => Some(reading),
                    _ => None,
                };
                let minutes = |ms: u64| ms as f64 / 60_000.0;
                Trigger::NoData {
                    condition: *condition,
                    last_sample_at: reading.map_or(self.ctx.now, |r| r.last_sample_at),
                    silent_minutes: reading.map_or(f64::NAN, |r| minutes(r.silent_ms())),
                    usual_interval_minutes: reading.and_then(|r| r.usual_interval_ms).map(minutes),
                    limit_minutes: reading.and_then(|r| r.limit_ms).map_or(f64::NAN, minutes),
                    last_samples: reading.map_or_else(Vec::new, |r| r.last_samples.clone()),
                }
            }
        }
    }

    fn message(&self, trigger: &Trigger) -> String {
        let decided = self.decided(trigger);
        match self.ctx.label_coverage {
            Some(coverage) => format!(
                "{decided} (decided at label coverage {})",
                percent(coverage)
            ),
            None => decided,
        }
    }

    fn decided(&self, trigger: &Trigger) -> String {
        let rule = self.rule;
        let watched = match &rule.metric {
            MetricScope::One(metric) => format!("{metric} of {}/{}", rule.model, self.version),
            MetricScope::Every => format!("{}/{} (every metric)", rule.model, self.version),
        };
        let series = match self.dataset {
            None => watched,
            Some(dataset) => format!("{watched} on dataset {dataset}"),
        };
        match trigger {
            Trigger::Threshold {
                comparison_operator,
                threshold_value,
            } => format!(
                "{}: {series} is {}, {} threshold {threshold_value}",
                rule.name,
                self.value(),
                comparison_operator.describe()
            ),
            Trigger::Degradation {
                max_degradation_percentage,
                degradation_percentage,
                current_value,
                baseline_value,
                ..
            } => format!(
                "{}: {series} degraded {degradation_percentage:.1}% (from {} to {}), more than {max_degradation_percentage}%",
                rule.name,
                readable(*baseline_value),
                readable(*current_value)
            ),
            Trigger::ChangePoint {
                change_started_at,
                level_before,
                level_after,
                shift,
                shift_percentage,
                shift_sd,
                ..
            } => {
                let percentage =
                    shift_percentage.map_or(String::new(), |p| format!("{p:+.1}%, "));
                if self.is_outlier() {
                    return format!(
                        "{}: {series} had an outlying sample of {} at {}, {} its level of {} by {} ({percentage}{shift_sd:+.1} sd of its noise), beyond any the series has shown",
                        rule.name,
                        readable(*level_after),
                        change_started_at.to_rfc3339(),
                        if *shift < 0.0 { "below" } else { "above" },
                        readable(*level_before),
                        readable(shift.abs()),
                    );
                }
                format!(
                    "{}: {series} shifted {} by {} ({percentage}{shift_sd:+.1} sd of its noise), from {} to {}, starting {}",
                    rule.name,
                    if *shift < 0.0 { "down" } else { "up" },
                    readable(shift.abs()),
                    readable(*level_before),
                    readable(*level_after),
                    change_started_at.to_rfc3339()
                )
            }
            Trigger::NoData {
                silent_minutes,
                usual_interval_minutes,
                last_sample_at,
                ..
            } => {
                let silence = no_data_words(*silent_minutes, *usual_interval_minutes);
                match rule.metric {
                    // A whole version's message stays one line: the trigger's
                    // `last_samples` tells when each metric was seen last.
                    MetricScope::Every => format!("{}: {series}: {silence}", rule.name),
                    MetricScope::One(_) => format!(
                        "{}: {series}: {silence}, last sample at {}",
                        rule.name,
                        last_sample_at.to_rfc3339()
                    ),
                }
            }
        }
    }

    fn fire(&self, mut next: SeriesState) -> Evaluation {
        let ctx = self.ctx;
        let rule = self.rule;
        let severity = rule.severity;
        let hold = mute_reason(
            ctx.config,
            severity,
            self.silence_id(),
            !rule.notify_channels.is_empty(),
        )
        .or_else(|| rate_limit_reason(ctx.config, ctx.rate));
        let status = match &hold {
            Some(reason) if reason.suppresses() => AlertStatus::Suppressed,
            _ => AlertStatus::Active,
        };
        let notify = match hold {
            Some(reason) => NotifyDecision::Hold(reason),
            None => NotifyDecision::Notify(NotifyReason::FirstNotification),
        };
        let trigger = self.trigger();
        let value = self.value();
        let alert = Alert {
            id: ctx.new_alert_id.clone(),
            rule_id: rule.id.clone(),
            rule_name: rule.name.clone(),
            model: rule.model.clone(),
            version: self.version.clone(),
            dataset: self.dataset.cloned(),
            metric: rule.metric.clone(),
            severity,
            status,
            message: self.message(&trigger),
            value,
            worst_value: value,
            trigger,
            first_seen: ctx.now,
            last_seen: ctx.now,
            occurrences: 1,
            notified: notify.notifies(),
            hold_reason: notify.hold_reason().cloned(),
            acknowledged_by: None,
            acknowledged_at: None,
            resolved_by: None,
            resolved_at: None,
            resolution_notes: None,
            label_coverage: ctx.label_coverage,
            revision: 0,
        };
        let transition = AlertTransition {
            alert_id: alert.id.clone(),
            at: ctx.now,
            by: SYSTEM_ACTOR.to_owned(),
            from: None,
            to: status,
            notes: Some(format!(
                "fired after {} breaching evaluations",
                next.consecutive_breaches
            )),
        };
        next.alert_id = Some(alert.id.clone());
        if let Some(breach) = next.detail.open_past_breach_mut() {
            breach.alert_id = Some(alert.id.clone());
        }
        Evaluation {
            decision: Decision::Fired {
                alert_id: alert.id.clone(),
                status,
                notify,
            },
            state: next,
            alert: Some(AlertWrite::Insert(alert)),
            transition: Some(transition),
        }
    }

    fn update(&self, open: &Alert, next: SeriesState) -> Evaluation {
        let ctx = self.ctx;
        let rule = self.rule;
        let value = self.value();
        let mut alert = open.clone();
        alert.occurrences = alert.occurrences.saturating_add(1);
        alert.last_seen = ctx.now.max(alert.last_seen);
        alert.value = value;
        if rule.condition.is_worse(value, alert.worst_value) {
            alert.worst_value = value;
        }
        alert.trigger = self.trigger();
        alert.message = self.message(&alert.trigger);
        alert.label_coverage = ctx.label_coverage.or(alert.label_coverage);
        let severity_rose =
            (rule.severity > open.severity).then_some((open.severity, rule.severity));
        if severity_rose.is_some() {
            alert.severity = rule.severity;
        }
        let notify = self.renotify(open, alert.severity, severity_rose.is_some());
        match &notify {
            NotifyDecision::Notify(_) => {
                alert.notified = true;
                alert.hold_reason = None;
            }
            NotifyDecision::Hold(
                HoldReason::AlreadyNotified
                | HoldReason::Acknowledged
                | HoldReason::OlderThanHorizon,
            ) => {}
            NotifyDecision::Hold(reason) => alert.hold_reason = Some(reason.clone()),
        }
        let transition = severity_rose.map(|(from, to)| AlertTransition {
            alert_id: alert.id.clone(),
            at: ctx.now,
            by: SYSTEM_ACTOR.to_owned(),
            from: Some(alert.status),
            to: alert.status,
            notes: Some(format!("severity rose from {from} to {to}")),
        });
        Evaluation {
            decision: Decision::Updated {
                alert_id: alert.id.clone(),
                occurrences: alert.occurrences,
                worst_value: alert.worst_value,
                severity_rose,
                notify,
            },
            state: next,
            alert: Some(AlertWrite::Update(alert)),
            transition,
        }
    }

    /// Whether a breach folded into an open alert notifies: only when the alert was muted
    /// so far and no longer is, or its severity rose. Suppressed alerts stay quiet.
    fn renotify(&self, open: &Alert, severity: Severity, severity_rose: bool) -> NotifyDecision {
        if self.ctx.historical {
            return NotifyDecision::Hold(HoldReason::OlderThanHorizon);
        }
        if open.status == AlertStatus::Suppressed {
            return NotifyDecision::Hold(
                open.hold_reason
                    .clone()
                    .unwrap_or(HoldReason::AlertsDisabled),
            );
        }
        if !severity_rose && open.status == AlertStatus::Acknowledged {
            return NotifyDecision::Hold(HoldReason::Acknowledged);
        }
        if !severity_rose && open.notified {
            return NotifyDecision::Hold(HoldReason::AlreadyNotified);
        }
        let has_channels = !self.rule.notify_channels.is_empty();
        if let Some(reason) =
            mute_reason(self.ctx.config, severity, self.silence_id(), has_channels)
        {
            return NotifyDecision::Hold(reason);
        }
        if open.notified {
            NotifyDecision::Notify(NotifyReason::SeverityRose {
                from: open.severity,
                to: severity,
            })
        } else {
            NotifyDecision::Notify(NotifyReason::FirstNotification)
        }
    }

    fn clear(&self, open: &Alert, next: SeriesState) -> Evaluation {
        let needed = self.rule.anti_flap.clear_after_evaluations;
        let clears = next.consecutive_clears;
        let alert_id = open.id.clone();
        if clears < needed {
            return self.only_state(
                Decision::Clearing {
                    alert_id,
                    clears,
                    needed,
                },
                next,
            );
        }
        let suppressed = open.status == AlertStatus::Suppressed;
        if !suppressed && !self.rule.anti_flap.auto_resolve {
            let decision = if clears == needed {
                Decision::ConditionCleared { alert_id }
            } else {
                Decision::AwaitingResolution { alert_id }
            };
            return self.only_state(decision, next);
        }
        // A historical observation may be older than the alert itself.
        let now = self.ctx.now.max(open.first_seen);
        let notes = format!("condition clear for {clears} evaluations");
        let mut alert = open.clone();
        alert.resolved_by = Some(SYSTEM_ACTOR.to_owned());
        alert.resolved_at = Some(now);
        alert.resolution_notes = Some(notes.clone());
        if !suppressed {
            alert.status = AlertStatus::Resolved;
        }
        let transition = AlertTransition {
            alert_id: alert.id.clone(),
            at: now,
            by: SYSTEM_ACTOR.to_owned(),
            from: Some(open.status),
            to: alert.status,
            notes: Some(if suppressed {
                format!("closed: {notes}")
            } else {
                notes
            }),
        };
        let decision = if suppressed {
            Decision::SuppressedClosed { alert_id }
        } else {
            Decision::AutoResolved { alert_id }
        };
        Evaluation {
            decision,
            state: next,
            alert: Some(AlertWrite::Update(alert)),
            transition: Some(transition),
        }
    }
}

/// "no data for 47 min (usual interval 1 min)": how messages and notifications describe
/// a silence.
pub fn no_data_words(silent_minutes: f64, usual_interval_minutes: Option<f64>) -> String {
    let usual = usual_interval_minutes.map_or(String::new(), |m| {
        format!(" (usual interval {})", minutes_words(m))
    });
    format!("no data for {}{usual}", minutes_words(silent_minutes))
}

/// A length of time given in minutes, as people say it: "45 s", "47 min", "3.5 h", "2 d".
pub fn minutes_words(minutes: f64) -> String {
    if !minutes.is_finite() {
        return "an unknown time".to_owned();
    }
    let seconds = minutes * 60.0;
    if seconds < 60.0 {
        format!("{} s", readable((seconds * 10.0).round() / 10.0))
    } else if minutes < 120.0 {
        format!("{} min", readable(minutes.round()))
    } else if minutes < 48.0 * 60.0 {
        format!("{} h", readable((minutes / 6.0).round() / 10.0))
    } else {
        format!("{} d", readable((minutes / 144.0).round() / 10.0))
    }
}

/// A share in `[0, 1]` as a percentage for people: `0.8` is "80%", `0.8125` "81.3%".
fn percent(share: f64) -> String {
    format!("{}%", readable((share * 1000.0).round() / 10.0))
}

/// A computed value for people: six significant digits, trailing zeros dropped. A
/// baseline is a mean, and its full binary expansion (0.9430495818815334) reads as noise.
fn readable(value: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        return format!("{value}");
    }
    let magnitude = value.abs().log10().floor() as i32;
    let decimals = usize::try_from((5 - magnitude).clamp(0, 12)).unwrap_or(0);
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::{percent, readable};

    #[test]
    fn coverage_reads_as_a_percentage() {
        assert_eq!(percent(0.8), "80%");
        assert_eq!(percent(0.8125), "81.3%");
        assert_eq!(percent(1.0), "100%");
        assert_eq!(percent(0.0), "0%");
    }

    #[test]
    fn computed_values_read_with_six_significant_digits() {
        assert_eq!(readable(0.943_049_581_881_533_4), "0.94305");
        assert_eq!(readable(41.891_234), "41.8912");
        assert_eq!(readable(0.834_27), "0.83427");
        assert_eq!(readable(1_234_567.8), "1234568");
        assert_eq!(readable(-0.000_123_456_78), "-0.000123457");
        assert_eq!(readable(0.5), "0.5");
        assert_eq!(readable(0.0), "0");
        assert_eq!(readable(f64::NAN), "NaN");
    }
}
