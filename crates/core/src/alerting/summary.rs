//! Queries over alerts: filtering for `list_alerts` and the seed's `AlertSummary`.
//!
//! These work on a slice the store returned, so the store may pre-filter in SQL and still
//! use the same definitions of "in the window".

use std::cmp::{Ordering, Reverse};
use std::time::Duration;

use super::alert::{Alert, AlertStatus};
use super::ids::{AlertId, RuleId};
use super::rule::Severity;
use crate::sample::{ModelName, ValidationError, Version};
use crate::time::{TimeRange, Timestamp};

/// The window of the last `hours` hours (fractions too) up to and including `now`.
pub fn last_hours(hours: f64, now: Timestamp) -> TimeRange {
    let end = now.saturating_add(Duration::from_millis(1));
    // Out of range (parse_hours_or_all refuses it): everything up to now.
    let span = crate::time::hours_span("hours", hours).unwrap_or(Duration::MAX);
    TimeRange::new(now.saturating_sub(span), end)
}

/// How far back a listing, summary or analysis reaches, as the CLI and the HTTP API both
/// take it: a positive number of hours (`24`, or `0.5` for half an hour), or `all`
/// (`None`) for any time.
pub fn parse_hours_or_all(text: &str) -> Result<Option<f64>, ValidationError> {
    if text.trim() == "all" {
        return Ok(None);
    }
    let text = text.trim();
    // Digits with at most one point: what the documents' pattern says (no 1e3, no inf).
    let plain = !text.is_empty()
        && text.chars().all(|c| c.is_ascii_digit() || c == '.')
        && text.matches('.').count() <= 1;
    match text.parse::<f64>() {
        Ok(hours) if plain && hours > 0.0 => {
            // Within the supported time range, so no window computation can overflow.
            crate::time::hours_span("hours", hours)?;
            Ok(Some(hours))
        }
        _ => Err(ValidationError::new(
            "hours",
            format!("{text:?} is neither a positive number of hours (0.5 is half an hour) nor all"),
        )),
    }
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

/// The matching alerts, in [`listing_order`].
pub fn list_alerts<'a>(alerts: &'a [Alert], filter: &AlertFilter) -> Vec<&'a Alert> {
    let mut listed: Vec<&Alert> = alerts.iter().filter(|a| filter.matches(a)).collect();
    listed.sort_by(|a, b| listing_order(a, b));
    listed
}

/// The order of every alert listing: newest first (by `first_seen`), then by id, so no
/// two alerts tie and a [`ListingPosition`] falls between exactly two of them.
pub fn listing_order(a: &Alert, b: &Alert) -> Ordering {
    listing_key(a.first_seen, &a.id).cmp(&listing_key(b.first_seen, &b.id))
}

fn listing_key(first_seen: Timestamp, id: &AlertId) -> (Reverse<Timestamp>, &AlertId) {
    (Reverse(first_seen), id)
}

/// Where an alert stands in [`listing_order`]. A listing continued after the position
/// its last page ended at (keyset paging) neither skips nor repeats an alert when
/// others are added between the pages, as continuing at an offset would: a position
/// names an alert, not a count of alerts before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListingPosition {
    pub first_seen: Timestamp,
    pub id: AlertId,
}

impl ListingPosition {
    pub fn of(alert: &Alert) -> Self {
        ListingPosition {
            first_seen: alert.first_seen,
            id: alert.id.clone(),
        }
    }

    /// Whether `alert` is listed strictly after this position.
    pub fn precedes(&self, alert: &Alert) -> bool {
        listing_key(alert.first_seen, &alert.id) > listing_key(self.first_seen, &self.id)
    }
}

/// Counts of the alerts alive in a window, by status and by severity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertSummary {
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

/// Summarizes the alerts of `model` (or all) alive in `window` (`None`: at any time).
pub fn summarize(
    alerts: &[Alert],
    model: Option<&ModelName>,
    window: Option<TimeRange>,
) -> AlertSummary {
    let mut summary = AlertSummary {
        model: model.cloned(),
        ..AlertSummary::default()
    };
    let filter = AlertFilter {
        model: model.cloned(),
        window,
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn alert(id: u32, first_seen_ms: i64) -> Alert {
        let first_seen = Timestamp::from_millis(first_seen_ms).unwrap();
        Alert {
            id: AlertId::from_u32(id),
            rule_id: crate::alerting::RuleId::from_u32(1),
            rule_name: "r".into(),
            model: crate::ModelName::parse("fraud").unwrap(),
            version: crate::Version::parse("v1").unwrap(),
            dataset: None,
            metric: crate::Metric::parse("accuracy").unwrap().into(),
            severity: crate::alerting::Severity::High,
            status: AlertStatus::Active,
            message: "m".into(),
            value: 0.5,
            worst_value: 0.5,
            trigger: crate::alerting::Trigger::Threshold {
                comparison_operator: crate::alerting::ComparisonOperator::Lt,
                threshold_value: 0.9,
            },
            first_seen,
            last_seen: first_seen,
            occurrences: 1,
            notified: false,
            hold_reason: None,
            acknowledged_by: None,
            acknowledged_at: None,
            resolved_by: None,
            resolved_at: None,
            resolution_notes: None,
            label_coverage: None,
            revision: 0,
        }
    }

    #[test]
    fn a_listing_continued_after_a_position_neither_skips_nor_repeats() {
        // Two alerts share a first_seen, so the id decides between them.
        let mut alerts = [
            alert(3, 1000),
            alert(1, 2000),
            alert(2, 2000),
            alert(4, 500),
        ];
        alerts.sort_by(listing_order);
        let ids: Vec<&str> = alerts.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "alert_00000001",
                "alert_00000002",
                "alert_00000003",
                "alert_00000004"
            ]
        );

        let position = ListingPosition::of(&alerts[1]);
        let after: Vec<bool> = alerts.iter().map(|a| position.precedes(a)).collect();
        assert_eq!(after, [false, false, true, true]);

        // Alerts added after the page was read: a newer one belongs before the position
        // (a later listing's first page shows it), an older one after it.
        assert!(!position.precedes(&alert(9, 3000)));
        assert!(!position.precedes(&alert(0, 2000)));
        assert!(position.precedes(&alert(5, 2000)));
        assert!(position.precedes(&alert(8, 1500)));
    }
}
