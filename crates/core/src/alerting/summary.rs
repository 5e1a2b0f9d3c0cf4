//! Queries over alerts: filtering for `list_alerts` and the seed's `AlertSummary`.
//!
//! These work on a slice the store returned, so the store may pre-filter in SQL and still
//! use the same definitions of "in the window".

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::alert::{Alert, AlertStatus};
use super::ids::RuleId;
use super::rule::Severity;
use crate::sample::{ModelName, Version};
use crate::time::{TimeRange, Timestamp};

/// The window of the last `hours` hours up to and including `now`.
pub fn last_hours(hours: u32, now: Timestamp) -> TimeRange {
    let end = now.saturating_add(Duration::from_millis(1));
    TimeRange::new(
        now.saturating_sub(Duration::from_secs(u64::from(hours) * 3600)),
        end,
    )
}

/// Which alerts `list_alerts` returns; `None` fields do not filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertFilter {
    pub model: Option<ModelName>,
    pub version: Option<Version>,
    pub rule_id: Option<RuleId>,
    pub status: Option<AlertStatus>,
    pub severity: Option<Severity>,
    /// Alerts alive at some point of this window (see [`Alert::overlaps`]).
    pub window: Option<TimeRange>,
}

impl AlertFilter {
    pub fn matches(&self, alert: &Alert) -> bool {
        self.model.as_ref().is_none_or(|m| m == &alert.model)
            && self.version.as_ref().is_none_or(|v| v == &alert.version)
            && self.rule_id.as_ref().is_none_or(|r| r == &alert.rule_id)
            && self.status.is_none_or(|s| s == alert.status)
            && self.severity.is_none_or(|s| s == alert.severity)
            && self.window.is_none_or(|w| alert.overlaps(w))
    }
}

/// The matching alerts, newest first.
pub fn list_alerts<'a>(alerts: &'a [Alert], filter: &AlertFilter) -> Vec<&'a Alert> {
    let mut listed: Vec<&Alert> = alerts.iter().filter(|a| filter.matches(a)).collect();
    listed.sort_by(|a, b| {
        b.first_seen
            .cmp(&a.first_seen)
            .then_with(|| a.id.cmp(&b.id))
    });
    listed
}

/// Counts of the alerts alive in a window, by status and by severity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertSummary {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelName>,
    pub total_count: u32,
    pub active_count: u32,
    pub acknowledged_count: u32,
    pub resolved_count: u32,
    pub suppressed_count: u32,
    pub critical_count: u32,
    pub high_count: u32,
    pub medium_count: u32,
    pub low_count: u32,
}

/// Summarizes the alerts of `model` (or all) alive in `window`.
pub fn summarize(alerts: &[Alert], model: Option<&ModelName>, window: TimeRange) -> AlertSummary {
    let mut summary = AlertSummary {
        model: model.cloned(),
        ..AlertSummary::default()
    };
    let filter = AlertFilter {
        model: model.cloned(),
        window: Some(window),
        ..AlertFilter::default()
    };
    for alert in alerts.iter().filter(|a| filter.matches(a)) {
        summary.total_count += 1;
        *match alert.status {
            AlertStatus::Active => &mut summary.active_count,
            AlertStatus::Acknowledged => &mut summary.acknowledged_count,
            AlertStatus::Resolved => &mut summary.resolved_count,
            AlertStatus::Suppressed => &mut summary.suppressed_count,
        } += 1;
        *match alert.severity {
            Severity::Critical => &mut summary.critical_count,
            Severity::High => &mut summary.high_count,
            Severity::Medium => &mut summary.medium_count,
            Severity::Low => &mut summary.low_count,
        } += 1;
    }
    summary
}
