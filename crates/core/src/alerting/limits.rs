//! Notification gates: the global configuration, rate limits and the reasons an alert is
//! or is not notified.
//!
//! Every gate returns a reason rather than a bare yes/no, so the engine can record it on
//! the alert, log it and show it. Alerts stopped by the global switch or a rate limit are
//! still recorded, as `suppressed`; never silently dropped.

use std::collections::HashMap;

use super::ids::SilenceId;
use super::rule::Severity;
use crate::sample::ModelName;
use crate::time::Timestamp;

/// The window rate limits count over.
pub const RATE_WINDOW_MS: i64 = 60 * 60 * 1000;

/// The seed's global alert configuration. Defaults are the seed's example values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertConfig {
    pub enable_alerts: bool,
    /// Most new notified alerts across all models in any hour.
    pub max_alerts_per_hour: u32,
    /// Most new notified alerts of one model in any hour.
    pub max_alerts_per_model_per_hour: u32,
    pub min_severity_to_notify: Severity,
}

impl Default for AlertConfig {
    fn default() -> Self {
        AlertConfig {
            enable_alerts: true,
            max_alerts_per_hour: 10,
            max_alerts_per_model_per_hour: 5,
            min_severity_to_notify: Severity::Medium,
        }
    }
}

/// How many new alerts were *notified* in the last hour, globally and for the model being
/// evaluated. Alerts held back (silenced, suppressed, below the minimum severity) do not
/// count, otherwise a storm would keep itself suppressed forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateCounts {
    pub global_last_hour: u32,
    pub model_last_hour: u32,
}

/// Creation times of notified alerts, for an engine that evaluates many rules in one pass
/// and must count the alerts it creates on the way. Seed it with the last hour from the
/// store, then `record` each newly notified alert.
#[derive(Debug, Clone, Default)]
pub struct RateLedger {
    global: Vec<Timestamp>,
    per_model: HashMap<ModelName, Vec<Timestamp>>,
}

impl RateLedger {
    pub fn new() -> Self {
        RateLedger::default()
    }

    /// Records a notified alert created at `at`, forgetting those that left the window
    /// before it, so a long-lived ledger stays small.
    pub fn record(&mut self, model: &ModelName, at: Timestamp) {
        let recent = |t: &Timestamp| at.millis_since(*t) < RATE_WINDOW_MS;
        self.global.retain(recent);
        self.global.push(at);
        let times = self.per_model.entry(model.clone()).or_default();
        times.retain(recent);
        times.push(at);
    }

    /// Notified alerts created in `(now - 1 h, now]`.
    pub fn counts(&self, model: &ModelName, now: Timestamp) -> RateCounts {
        let in_window = |t: &&Timestamp| {
            let age = now.millis_since(**t);
            (0..RATE_WINDOW_MS).contains(&age)
        };
        let count = |times: &[Timestamp]| {
            u32::try_from(times.iter().filter(in_window).count()).unwrap_or(u32::MAX)
        };
        RateCounts {
            global_last_hour: count(&self.global),
            model_last_hour: self.per_model.get(model).map_or(0, |t| count(t)),
        }
    }
}

/// Why a firing notification was not queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldReason {
    /// `enable_alerts` is off.
    AlertsDisabled,
    Silenced {
        silence_id: SilenceId,
    },
    BelowMinSeverity {
        min_severity_to_notify: Severity,
    },
    /// The rule names no channel to notify.
    NoChannels,
    MaxAlertsPerHour {
        limit: u32,
    },
    MaxAlertsPerModelPerHour {
        limit: u32,
    },
    /// The alert was notified already and its severity did not rise.
    AlreadyNotified,
    /// Someone acknowledged the alert and its severity did not rise.
    Acknowledged,
    /// The observation is older than the paging horizon: it updates the open alert, and
    /// pages nobody.
    OlderThanHorizon,
}

impl HoldReason {
    /// Whether an alert created for this reason is recorded as `suppressed`: the switch and
    /// the rate limits stop an alert; silences and the minimum severity only mute it.
    pub fn suppresses(&self) -> bool {
        matches!(
            self,
            HoldReason::AlertsDisabled
                | HoldReason::MaxAlertsPerHour { .. }
                | HoldReason::MaxAlertsPerModelPerHour { .. }
        )
    }
}

/// Why a firing notification is queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyReason {
    /// The alert is new, or was muted so far and no longer is.
    FirstNotification,
    SeverityRose {
        from: Severity,
        to: Severity,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyDecision {
    Notify(NotifyReason),
    Hold(HoldReason),
}

impl NotifyDecision {
    pub fn notifies(&self) -> bool {
        matches!(self, NotifyDecision::Notify(_))
    }

    pub fn hold_reason(&self) -> Option<&HoldReason> {
        match self {
            NotifyDecision::Notify(_) => None,
            NotifyDecision::Hold(reason) => Some(reason),
        }
    }
}

/// Mutes that apply to any firing notification, new alert or not: the switch, silences,
/// the minimum severity, a rule without channels. `None` when nothing mutes.
pub(crate) fn mute_reason(
    config: &AlertConfig,
    severity: Severity,
    silence: Option<&SilenceId>,
    has_channels: bool,
) -> Option<HoldReason> {
    if !config.enable_alerts {
        return Some(HoldReason::AlertsDisabled);
    }
    if let Some(silence_id) = silence {
        return Some(HoldReason::Silenced {
            silence_id: silence_id.clone(),
        });
    }
    if severity < config.min_severity_to_notify {
        return Some(HoldReason::BelowMinSeverity {
            min_severity_to_notify: config.min_severity_to_notify,
        });
    }
    if !has_channels {
        return Some(HoldReason::NoChannels);
    }
    None
}

/// The rate limits, which only a new alert's first notification is subject to.
pub(crate) fn rate_limit_reason(config: &AlertConfig, counts: RateCounts) -> Option<HoldReason> {
    if counts.global_last_hour >= config.max_alerts_per_hour {
        return Some(HoldReason::MaxAlertsPerHour {
            limit: config.max_alerts_per_hour,
        });
    }
    if counts.model_last_hour >= config.max_alerts_per_model_per_hour {
        return Some(HoldReason::MaxAlertsPerModelPerHour {
            limit: config.max_alerts_per_model_per_hour,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms).unwrap()
    }

    #[test]
    fn ledger_counts_the_last_hour_per_model_and_globally() {
        let a = ModelName::parse("a").unwrap();
        let b = ModelName::parse("b").unwrap();
        let mut ledger = RateLedger::new();
        ledger.record(&a, at(0));
        ledger.record(&a, at(1_000));
        ledger.record(&b, at(2_000));
        assert_eq!(
            ledger.counts(&a, at(2_000)),
            RateCounts {
                global_last_hour: 3,
                model_last_hour: 2
            }
        );
        // The alert from time 0 leaves the window exactly one hour later.
        assert_eq!(
            ledger.counts(&a, at(RATE_WINDOW_MS)),
            RateCounts {
                global_last_hour: 2,
                model_last_hour: 1
            }
        );
    }

    #[test]
    fn only_the_switch_and_rate_limits_suppress() {
        assert!(HoldReason::AlertsDisabled.suppresses());
        assert!(HoldReason::MaxAlertsPerHour { limit: 1 }.suppresses());
        assert!(!HoldReason::NoChannels.suppresses());
        assert!(!HoldReason::BelowMinSeverity {
            min_severity_to_notify: Severity::High
        }
        .suppresses());
    }
}
