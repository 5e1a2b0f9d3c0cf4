//! Alerting: rules, the per-rule evaluation state machine, silences, limits, the alert
//! lifecycle, summaries, the notification outbox and backtests. All pure.
//!
//! The engine drives it like this, per enabled rule and per model version the rule
//! applies to: read the persisted [`SeriesState`] (default when none) and the alert its
//! `alert_id` names; build an [`Observation`] for every sample not yet counted (the value,
//! or the degradation detector's verdict); read the active silences and the notified
//! alerts of the last hour; let [`plan`] replay them through [`evaluate`]; then apply each
//! [`PlannedCommit`] in one transaction, compare-and-swapping the state on its previous
//! `revision`. The backtest and the scenario tests apply the same plans to memory
//! ([`InMemory`]). People's actions go through [`acknowledge`] and [`resolve`] plus
//! [`outbox::for_transition`].

pub mod alert;
pub mod backtest;
pub mod condition;
pub mod ids;
pub mod lifecycle;
pub mod limits;
pub mod no_data;
pub mod observe;
pub mod outbox;
pub mod pass;
pub mod rule;
pub mod silence;
pub mod state;
pub mod summary;

#[cfg(test)]
mod scenarios;

#[cfg(test)]
mod change_point_tests;

#[cfg(test)]
mod no_data_tests;

pub use alert::{Alert, AlertStatus, AlertTransition, Trigger, SYSTEM_ACTOR};
pub use backtest::{backtest, backtest_on, Backtest, BacktestEvent, BacktestEventKind};
pub use condition::{
    ChangePointReading, DegradationReading, FreshnessReading, Observation, SignificanceTest,
    Unjudgeable, Verdict,
};
pub use ids::{AlertId, RuleId, SilenceId};
pub use lifecycle::{acknowledge, resolve, LifecycleError};
pub use limits::{AlertConfig, HoldReason, NotifyDecision, NotifyReason, RateCounts, RateLedger};
pub use outbox::{EventFacts, NotificationEvent, OutboxEntry};
pub use pass::{
    first_counted, plan, Clock, InMemory, Plan, PlanContext, PlannedAlert, PlannedCommit,
    PlannedStep, Target, CHANGE_POINT_WARM_UP, PAGING_HORIZON,
};
pub use rule::{
    AntiFlap, ChangeDirection, ChangePointCondition, ComparisonMode, ComparisonOperator, Condition,
    ConditionKind, NoDataCondition, Rule, RulePatch, RuleSpec, Severity,
};
pub use silence::{muting_silence, Silence, SilenceSpec};
pub use state::{
    evaluate, minutes_words, no_data_words, AlertWrite, Decision, Evaluation, EvaluationContext,
    PastBreach, SeriesState, StateDetail,
};
pub use summary::{
    last_hours, list_alerts, listing_order, parse_hours_or_all, summarize, AlertFilter,
    AlertSummary, ListingPosition,
};
