//! Alerts: instances of a rule firing for one model version, and their history.
//!
//! An alert is *open* until it has a `resolved_at`. Status says what happened to it:
//! `active` and `acknowledged` alerts were (or may still be) notified; `suppressed` alerts
//! were held back by a limit or by the global switch and keep that status for good, so the
//! summary counts them even after modelwatch closes them; `resolved` is final.

use std::fmt;

use super::condition::SignificanceTest;
use super::ids::{AlertId, RuleId};
use super::limits::HoldReason;
use super::no_data::LastSample;
use super::rule::{ChangePointCondition, ComparisonOperator, NoDataCondition, Severity};
use crate::metric::MetricScope;
use crate::sample::{Dataset, ModelName, Version};
use crate::time::{TimeRange, Timestamp};

/// Who modelwatch itself is in history records (auto-resolve, closing suppressed alerts).
pub const SYSTEM_ACTOR: &str = "modelwatch";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertStatus {
    Active,
    Acknowledged,
    Resolved,
    Suppressed,
}

impl AlertStatus {
    pub const ALL: [AlertStatus; 4] = [
        AlertStatus::Active,
        AlertStatus::Acknowledged,
        AlertStatus::Resolved,
        AlertStatus::Suppressed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Active => "active",
            AlertStatus::Acknowledged => "acknowledged",
            AlertStatus::Resolved => "resolved",
            AlertStatus::Suppressed => "suppressed",
        }
    }

    pub fn parse(text: &str) -> Result<Self, crate::sample::ValidationError> {
        AlertStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == text.trim().to_ascii_lowercase())
            .ok_or_else(|| {
                crate::sample::ValidationError::new(
                    "status",
                    format!("{text:?} is not one of active, acknowledged, resolved, suppressed"),
                )
            })
    }
}

impl fmt::Display for AlertStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The line an alert crossed, for messages and the UI.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// A value compared with a line: no statistical test applies.
    Threshold {
        comparison_operator: ComparisonOperator,
        threshold_value: f64,
    },
    Degradation {
        max_degradation_percentage: f64,
        degradation_percentage: f64,
        current_value: f64,
        baseline_value: f64,
        /// The detector's test at the observation that fired or last updated the alert.
        /// Absent in alerts stored before it was recorded; left out of the JSON when
        /// absent, so such alerts read back byte for byte (their body is a CAS guard).
        test: Option<SignificanceTest>,
    },
    /// A change-point detector found a sustained shift of the level.
    ChangePoint {
        condition: ChangePointCondition,
        /// The first sample of the shift.
        change_started_at: Timestamp,
        level_before: f64,
        level_after: f64,
        /// `level_after − level_before`, in the metric's units.
        shift: f64,
        /// The shift in percent of `|level_before|`; absent when that is zero.
        shift_percentage: Option<f64>,
        /// The shift in noise units (robust standard deviations around the level).
        shift_sd: f64,
        noise_sd: f64,
    },
    /// A series (or model version) reported nothing for longer than the rule allows.
    NoData {
        condition: NoDataCondition,
        /// The newest sample before the silence.
        last_sample_at: Timestamp,
        /// How long it had been silent when observed.
        silent_minutes: f64,
        /// The series' usual interval, once known.
        usual_interval_minutes: Option<f64>,
        /// The longest silence the rule allowed.
        limit_minutes: f64,
        /// A rule on a whole version: the metrics seen last before the silence, newest
        /// first, each with its last sample's time.
        last_samples: Vec<LastSample>,
    },
}

/// One alert. `value` and `worst_value` are in the condition's terms: the metric value
/// for threshold rules, the degradation percentage for degradation rules.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub id: AlertId,
    pub rule_id: RuleId,
    pub rule_name: String,
    pub model: ModelName,
    pub version: Version,
    /// The dataset whose series fired; absent for the default dataset (so alerts stored
    /// before rules had datasets read back byte for byte).
    pub dataset: Option<Dataset>,
    /// The rule's metric, or `*` for an alert about the whole version (a no-data rule on
    /// every metric).
    pub metric: MetricScope,
    pub severity: Severity,
    pub status: AlertStatus,
    pub message: String,
    pub value: f64,
    pub worst_value: f64,
    pub trigger: Trigger,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub occurrences: u32,
    /// Whether a firing notification was queued for this alert.
    pub notified: bool,
    /// Why the last firing notification was not queued, when it was not.
    pub hold_reason: Option<HoldReason>,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<Timestamp>,
    pub resolved_by: Option<String>,
    pub resolved_at: Option<Timestamp>,
    pub resolution_notes: Option<String>,
    /// For a metric modelwatch computes from predictions and labels: the share of the
    /// window's predictions that had their label when the alert was decided (fired or
    /// last updated), in `[0, 1]`. Absent for pushed metrics.
    pub label_coverage: Option<f64>,
    /// How many times the stored alert was written: 1 once inserted, one more on every
    /// update ([`Alert::next_revision`]); 0 for an alert not stored yet. The stores'
    /// compare-and-swap guard: a write names the revision it replaces. Kept by the store
    /// beside the alert, never in its JSON.
    pub revision: u64,
}

impl Alert {
    /// The revision an alert is written with: replacing the stored alert of revision
    /// `previous`, or inserting it (`None`). Revisions wrap, like a state's.
    pub fn next_revision(previous: Option<u64>) -> u64 {
        previous.map_or(1, |revision| revision.wrapping_add(1))
    }

    /// Still open: deduplication folds new breaches into it and it can still be resolved.
    pub fn is_open(&self) -> bool {
        self.resolved_at.is_none()
    }

    /// Whether the alert was alive at some point of `range`: created before its end and
    /// either still open or closed after its start.
    pub fn overlaps(&self, range: TimeRange) -> bool {
        self.first_seen < range.end
            && match self.resolved_at {
                None => true,
                Some(resolved) => resolved.max(self.last_seen) >= range.start,
            }
    }
}

/// One change of an alert's status, kept as history. `from` is `None` when the alert was
/// created. Escalations and closing a suppressed alert keep the status and say so in
/// `notes`.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertTransition {
    pub alert_id: AlertId,
    pub at: Timestamp,
    pub by: String,
    pub from: Option<AlertStatus>,
    pub to: AlertStatus,
    pub notes: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_parse_from_their_names() {
        for status in AlertStatus::ALL {
            assert_eq!(AlertStatus::parse(status.as_str()).unwrap(), status);
        }
        assert_eq!(AlertStatus::parse("open").unwrap_err().field, "status");
    }
}
