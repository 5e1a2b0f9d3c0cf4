//! Backtest: replay a rule over stored history and report when it would have fired and
//! cleared, without creating alerts.
//!
//! The replay is live evaluation's ([`super::pass::plan`]), with each observation
//! evaluated at its own time and the commits applied to memory, so a backtest and live
//! evaluation of the same observations agree by construction. What it cannot know is
//! left out: people acknowledging or resolving alerts, silences and rate limits (which
//! change who is told, not when a rule fires).

use super::alert::Alert;
use super::condition::Observation;
use super::ids::AlertId;
use super::limits::{AlertConfig, RateLedger};
use super::pass::{plan, Clock, InMemory, PlanContext, Target};
use super::rule::{Rule, Severity};
use super::state::{Decision, SeriesState};
use crate::sample::{Dataset, Version};
use crate::time::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BacktestEventKind {
    Fired {
        severity: Severity,
    },
    /// The condition cleared for long enough; without auto-resolve the alert stays open.
    ConditionCleared,
    AutoResolved,
    /// A breach that would have fired but fell within the cooldown; reported once per
    /// cooldown.
    HeldByCooldown {
        until: Timestamp,
    },
    /// A change-point rule's detector found another shift while its alert was open: the
    /// alert is updated, nobody is paged again.
    Shifted,
}

impl BacktestEventKind {
    /// The event's name, as reports show it.
    pub fn as_str(self) -> &'static str {
        match self {
            BacktestEventKind::Fired { .. } => "fired",
            BacktestEventKind::ConditionCleared => "condition_cleared",
            BacktestEventKind::AutoResolved => "auto_resolved",
            BacktestEventKind::HeldByCooldown { .. } => "held_by_cooldown",
            BacktestEventKind::Shifted => "shifted",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct BacktestEvent {
    pub at: Timestamp,
    /// Which would-be alert, numbered from 1 in the order they fire.
    pub alert_number: u32,
    pub value: Option<f64>,
    /// For a change-point rule's firing or shift: when the shift began.
    pub change_started_at: Option<Timestamp>,
    pub kind: BacktestEventKind,
}

/// The outcome of a replay: its events and the state a live evaluator would now hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Backtest {
    pub events: Vec<BacktestEvent>,
    pub final_state: SeriesState,
    /// The would-be alert last raised, as live evaluation would have it now.
    pub last_alert: Option<Alert>,
}

/// Replays `rule` for `version` over `observations`, each evaluated at its paired time,
/// starting from `initial` (use `SeriesState::default()` for a fresh rule). Disabled rules
/// are replayed as if enabled: a backtest asks what the rule would do.
pub fn backtest(
    rule: &Rule,
    version: &Version,
    observations: &[(Timestamp, Observation)],
    initial: SeriesState,
) -> Backtest {
    backtest_on(rule, version, None, observations, initial)
}

/// [`backtest`] of `version`'s series on `dataset` (`None`: the default dataset).
pub fn backtest_on(
    rule: &Rule,
    version: &Version,
    dataset: Option<&Dataset>,
    observations: &[(Timestamp, Observation)],
    initial: SeriesState,
) -> Backtest {
    let rule = Rule {
        enabled: true,
        ..rule.clone()
    };
    let config = AlertConfig {
        enable_alerts: true,
        max_alerts_per_hour: u32::MAX,
        max_alerts_per_model_per_hour: u32::MAX,
        min_severity_to_notify: Severity::Low,
    };
    let mut ledger = RateLedger::new();
    let mut drawn = 0u32;
    let mut new_alert_id = || {
        drawn = drawn.wrapping_add(1);
        AlertId::from_u32(drawn)
    };
    let plan = plan(
        Target {
            rule: &rule,
            version,
            dataset,
            state: &initial,
            tracked: None,
            coverage: &[],
        },
        observations.iter().cloned(),
        &mut PlanContext {
            clock: Clock::Backtest,
            config: &config,
            silences: &[],
            ledger: &mut ledger,
            new_alert_id: &mut new_alert_id,
        },
    );
    let mut memory = InMemory::default();
    memory.apply(&plan.commits);
    let mut alerts_fired = 0u32;
    let mut events = Vec::new();
    let mut reported_cooldown: Option<Timestamp> = None;
    for step in &plan.steps {
        let kind = match &step.decision {
            Decision::Fired { .. } => {
                alerts_fired += 1;
                Some(BacktestEventKind::Fired {
                    severity: rule.severity,
                })
            }
            Decision::ConditionCleared { .. } => Some(BacktestEventKind::ConditionCleared),
            Decision::AutoResolved { .. } | Decision::SuppressedClosed { .. } => {
                Some(BacktestEventKind::AutoResolved)
            }
            Decision::InCooldown { until, .. } if reported_cooldown != Some(*until) => {
                reported_cooldown = Some(*until);
                Some(BacktestEventKind::HeldByCooldown { until: *until })
            }
            Decision::Updated { .. } if step.change.is_some() => Some(BacktestEventKind::Shifted),
            _ => None,
        };
        if let Some(kind) = kind {
            events.push(BacktestEvent {
                at: step.at,
                alert_number: alerts_fired,
                value: step.value,
                change_started_at: step.change.map(|c| c.started_at),
                kind,
            });
        }
    }
    Backtest {
        events,
        last_alert: memory.tracked(&plan.state).cloned(),
        final_state: plan.state,
    }
}
