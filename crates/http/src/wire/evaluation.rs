//! The report of an evaluation (`POST …/evaluate`) on the wire: what each rule did for
//! each version, and why.

use modelwatch_core::alerting as domain;
use modelwatch_core::{Dataset, ModelName, Timestamp, Version};
use modelwatch_engine::evaluation as domain_evaluation;
use serde::Serialize;
use utoipa::ToSchema;

use super::alerting::{Alert, AlertStatus, HoldReason, Severity};

/// The kind of a rule's condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConditionKind {
    Threshold,
    Degradation,
    ChangePoint,
    NoData,
}

impl From<domain::ConditionKind> for ConditionKind {
    fn from(kind: domain::ConditionKind) -> Self {
        match kind {
            domain::ConditionKind::Threshold => ConditionKind::Threshold,
            domain::ConditionKind::Degradation => ConditionKind::Degradation,
            domain::ConditionKind::ChangePoint => ConditionKind::ChangePoint,
            domain::ConditionKind::NoData => ConditionKind::NoData,
        }
    }
}

/// Why an observation could not be judged, tagged by `reason`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Unjudgeable {
    NoData,
    NotFinite,
    WrongKind {
        expected: ConditionKind,
        got: ConditionKind,
    },
}

impl From<domain::Unjudgeable> for Unjudgeable {
    fn from(why: domain::Unjudgeable) -> Self {
        match why {
            domain::Unjudgeable::NoData => Unjudgeable::NoData,
            domain::Unjudgeable::NotFinite => Unjudgeable::NotFinite,
            domain::Unjudgeable::WrongKind { expected, got } => Unjudgeable::WrongKind {
                expected: expected.into(),
                got: got.into(),
            },
        }
    }
}

/// Why a firing notification is queued, tagged by `reason`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum NotifyReason {
    /// The alert is new, or was muted so far and no longer is.
    FirstNotification,
    SeverityRose {
        from: Severity,
        to: Severity,
    },
}

impl From<domain::NotifyReason> for NotifyReason {
    fn from(reason: domain::NotifyReason) -> Self {
        match reason {
            domain::NotifyReason::FirstNotification => NotifyReason::FirstNotification,
            domain::NotifyReason::SeverityRose { from, to } => NotifyReason::SeverityRose {
                from: from.into(),
                to: to.into(),
            },
        }
    }
}

/// Whether a firing is notified (`notify`, with its reason) or held back (`hold`, with
/// why), tagged by `decision`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum NotifyDecision {
    Notify(NotifyReason),
    Hold(HoldReason),
}

impl From<&domain::NotifyDecision> for NotifyDecision {
    fn from(decision: &domain::NotifyDecision) -> Self {
        match decision {
            domain::NotifyDecision::Notify(reason) => NotifyDecision::Notify((*reason).into()),
            domain::NotifyDecision::Hold(reason) => NotifyDecision::Hold(reason.into()),
        }
    }
}

/// What one evaluation did, and why, tagged by `decision`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    RuleDisabled,
    /// The observation could not be judged; nothing changed.
    NotJudged {
        why: Unjudgeable,
    },
    /// The observation is not newer than the last one counted; nothing changed.
    AlreadyCounted {
        #[schema(value_type = String, format = DateTime)]
        last_observed_at: Timestamp,
    },
    /// Breaching, but not yet for long enough to fire.
    Pending {
        breaches: u32,
        needed: u32,
    },
    /// Breaching for long enough, but the previous alert resolved too recently.
    InCooldown {
        #[schema(value_type = String, format = DateTime)]
        until: Timestamp,
        breaches: u32,
    },
    Fired {
        #[schema(value_type = String, pattern = r"^alert_[0-9a-f]{8}$")]
        alert_id: domain::AlertId,
        status: AlertStatus,
        notify: NotifyDecision,
    },
    /// A new breach folded into the open alert.
    Updated {
        #[schema(value_type = String, pattern = r"^alert_[0-9a-f]{8}$")]
        alert_id: domain::AlertId,
        occurrences: u32,
        worst_value: f64,
        /// `[from, to]` when the severity rose; null otherwise.
        #[schema(value_type = Option<Vec<Severity>>, min_items = 2, max_items = 2, required = true)]
        severity_rose: Option<(Severity, Severity)>,
        notify: NotifyDecision,
    },
    /// Between the firing and the clearing line (hysteresis): the open alert stays.
    Holding {
        #[schema(value_type = String, pattern = r"^alert_[0-9a-f]{8}$")]
        alert_id: domain::AlertId,
    },
    /// Clear, but not yet for long enough.
    Clearing {
        #[schema(value_type = String, pattern = r"^alert_[0-9a-f]{8}$")]
        alert_id: domain::AlertId,
        clears: u32,
        needed: u32,
    },
    /// Clear for long enough; without auto-resolve the alert waits for a person.
    ConditionCleared {
        #[schema(value_type = String, pattern = r"^alert_[0-9a-f]{8}$")]
        alert_id: domain::AlertId,
    },
    /// Still clear after `condition_cleared`, alert still open.
    AwaitingResolution {
        #[schema(value_type = String, pattern = r"^alert_[0-9a-f]{8}$")]
        alert_id: domain::AlertId,
    },
    /// Clear for long enough and resolved as `modelwatch`.
    AutoResolved {
        #[schema(value_type = String, pattern = r"^alert_[0-9a-f]{8}$")]
        alert_id: domain::AlertId,
    },
    /// A suppressed alert's condition cleared; it is closed and stays `suppressed`.
    SuppressedClosed {
        #[schema(value_type = String, pattern = r"^alert_[0-9a-f]{8}$")]
        alert_id: domain::AlertId,
    },
    /// Clear and no alert open.
    Clear,
    /// Breaching for long enough at an observation older than the paging horizon.
    WouldHaveFired {
        breaches: u32,
    },
    /// Still breaching during a past breach, before the horizon.
    PastBreachGoesOn {
        #[schema(value_type = String, format = DateTime)]
        since: Timestamp,
    },
    /// A past breach's condition cleared for long enough before the horizon.
    PastBreachCleared {
        #[schema(value_type = String, format = DateTime)]
        since: Timestamp,
    },
}

impl From<&domain::Decision> for Decision {
    fn from(decision: &domain::Decision) -> Self {
        use domain::Decision as D;
        match decision {
            D::RuleDisabled => Decision::RuleDisabled,
            D::NotJudged { why } => Decision::NotJudged { why: (*why).into() },
            D::AlreadyCounted { last_observed_at } => Decision::AlreadyCounted {
                last_observed_at: *last_observed_at,
            },
            D::Pending { breaches, needed } => Decision::Pending {
                breaches: *breaches,
                needed: *needed,
            },
            D::InCooldown { until, breaches } => Decision::InCooldown {
                until: *until,
                breaches: *breaches,
            },
            D::Fired {
                alert_id,
                status,
                notify,
            } => Decision::Fired {
                alert_id: alert_id.clone(),
                status: (*status).into(),
                notify: notify.into(),
            },
            D::Updated {
                alert_id,
                occurrences,
                worst_value,
                severity_rose,
                notify,
            } => Decision::Updated {
                alert_id: alert_id.clone(),
                occurrences: *occurrences,
                worst_value: *worst_value,
                severity_rose: severity_rose.map(|(from, to)| (from.into(), to.into())),
                notify: notify.into(),
            },
            D::Holding { alert_id } => Decision::Holding {
                alert_id: alert_id.clone(),
            },
            D::Clearing {
                alert_id,
                clears,
                needed,
            } => Decision::Clearing {
                alert_id: alert_id.clone(),
                clears: *clears,
                needed: *needed,
            },
            D::ConditionCleared { alert_id } => Decision::ConditionCleared {
                alert_id: alert_id.clone(),
            },
            D::AwaitingResolution { alert_id } => Decision::AwaitingResolution {
                alert_id: alert_id.clone(),
            },
            D::AutoResolved { alert_id } => Decision::AutoResolved {
                alert_id: alert_id.clone(),
            },
            D::SuppressedClosed { alert_id } => Decision::SuppressedClosed {
                alert_id: alert_id.clone(),
            },
            D::Clear => Decision::Clear,
            D::WouldHaveFired { breaches } => Decision::WouldHaveFired {
                breaches: *breaches,
            },
            D::PastBreachGoesOn { since } => Decision::PastBreachGoesOn { since: *since },
            D::PastBreachCleared { since } => Decision::PastBreachCleared { since: *since },
        }
    }
}

/// What one rule did for one version (and dataset) in a pass.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RuleEvaluation {
    #[schema(value_type = String, pattern = r"^rule_[0-9a-f]{8}$")]
    pub rule_id: domain::RuleId,
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$")]
    pub model: ModelName,
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$")]
    pub version: Version,
    /// The dataset evaluated; absent for the default dataset.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$")]
    pub dataset: Option<Dataset>,
    /// Samples counted in this pass.
    pub counted: usize,
    /// The decision at the last sample counted (or why none was).
    #[serde(flatten)]
    pub decision: Decision,
}

/// A breach recorded instead of paged: it would have fired at a sample older than the
/// paging horizon.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PastBreachRecorded {
    #[schema(value_type = String, pattern = r"^rule_[0-9a-f]{8}$")]
    pub rule_id: domain::RuleId,
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$")]
    pub model: ModelName,
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$")]
    pub version: Version,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$")]
    pub dataset: Option<Dataset>,
    #[schema(value_type = String, format = DateTime)]
    pub would_have_fired_at: Timestamp,
    #[schema(required = true)]
    pub value: Option<f64>,
}

/// A rule × version (and dataset).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetKey {
    #[schema(value_type = String, pattern = r"^rule_[0-9a-f]{8}$")]
    pub rule_id: domain::RuleId,
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$")]
    pub version: Version,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$")]
    pub dataset: Option<Dataset>,
}

/// The outcome of an evaluation's passes.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvaluationReport {
    /// Alerts created (including suppressed ones), in evaluation order.
    pub alerts_created: Vec<Alert>,
    /// Alerts changed, as they now stand.
    pub alerts_updated: Vec<Alert>,
    /// Every rule × version evaluated, with its last decision.
    pub evaluations: Vec<RuleEvaluation>,
    /// Breaches older than the paging horizon, recorded, not paged.
    pub past_breaches: Vec<PastBreachRecorded>,
    /// Writes that lost a race and were decided again.
    pub conflicts: u32,
    /// Rule × versions whose writes still lost after the last round; the next pass
    /// carries on.
    pub contended: Vec<TargetKey>,
    /// Samples are left to count: run another pass.
    pub backlog: bool,
}

impl From<&domain_evaluation::EvaluationReport> for EvaluationReport {
    fn from(report: &domain_evaluation::EvaluationReport) -> Self {
        EvaluationReport {
            alerts_created: report.alerts_created.iter().map(Into::into).collect(),
            alerts_updated: report.alerts_updated.iter().map(Into::into).collect(),
            evaluations: report
                .evaluations
                .iter()
                .map(|evaluation| RuleEvaluation {
                    rule_id: evaluation.rule_id.clone(),
                    model: evaluation.model.clone(),
                    version: evaluation.version.clone(),
                    dataset: evaluation.dataset.clone(),
                    counted: evaluation.counted,
                    decision: (&evaluation.decision).into(),
                })
                .collect(),
            past_breaches: report
                .past_breaches
                .iter()
                .map(|breach| PastBreachRecorded {
                    rule_id: breach.rule_id.clone(),
                    model: breach.model.clone(),
                    version: breach.version.clone(),
                    dataset: breach.dataset.clone(),
                    would_have_fired_at: breach.would_have_fired_at,
                    value: breach.value,
                })
                .collect(),
            conflicts: report.conflicts,
            contended: report
                .contended
                .iter()
                .map(|target| TargetKey {
                    rule_id: target.rule_id.clone(),
                    version: target.version.clone(),
                    dataset: target.dataset.clone(),
                })
                .collect(),
            backlog: report.backlog,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms).unwrap()
    }

    /// Every decision, as the domain has it and as the API has always shown it.
    fn decisions() -> Vec<(domain::Decision, Value)> {
        use domain::{AlertStatus as S, ConditionKind, Severity as Sev};
        use domain::{Decision as D, HoldReason, NotifyDecision, NotifyReason, Unjudgeable};
        let id = || domain::AlertId::from_u32(1);
        let noon = at(1_714_564_800_000);
        vec![
            (D::RuleDisabled, json!({"decision": "rule_disabled"})),
            (
                D::NotJudged {
                    why: Unjudgeable::NoData,
                },
                json!({"decision": "not_judged", "why": {"reason": "no_data"}}),
            ),
            (
                D::NotJudged {
                    why: Unjudgeable::NotFinite,
                },
                json!({"decision": "not_judged", "why": {"reason": "not_finite"}}),
            ),
            (
                D::NotJudged {
                    why: Unjudgeable::WrongKind {
                        expected: ConditionKind::Threshold,
                        got: ConditionKind::NoData,
                    },
                },
                json!({"decision": "not_judged", "why": {"reason": "wrong_kind", "expected": "threshold", "got": "no_data"}}),
            ),
            (
                D::AlreadyCounted {
                    last_observed_at: noon,
                },
                json!({"decision": "already_counted", "last_observed_at": "2024-05-01T12:00:00.000Z"}),
            ),
            (
                D::Pending {
                    breaches: 1,
                    needed: 3,
                },
                json!({"decision": "pending", "breaches": 1, "needed": 3}),
            ),
            (
                D::InCooldown {
                    until: at(1_714_566_600_000),
                    breaches: 3,
                },
                json!({"decision": "in_cooldown", "until": "2024-05-01T12:30:00.000Z", "breaches": 3}),
            ),
            (
                D::Fired {
                    alert_id: id(),
                    status: S::Active,
                    notify: NotifyDecision::Notify(NotifyReason::FirstNotification),
                },
                json!({"decision": "fired", "alert_id": "alert_00000001", "status": "active",
                    "notify": {"decision": "notify", "reason": "first_notification"}}),
            ),
            (
                D::Fired {
                    alert_id: id(),
                    status: S::Suppressed,
                    notify: NotifyDecision::Hold(HoldReason::MaxAlertsPerHour { limit: 5 }),
                },
                json!({"decision": "fired", "alert_id": "alert_00000001", "status": "suppressed",
                    "notify": {"decision": "hold", "reason": "max_alerts_per_hour", "limit": 5}}),
            ),
            (
                D::Updated {
                    alert_id: id(),
                    occurrences: 2,
                    worst_value: 9.5,
                    severity_rose: Some((Sev::Low, Sev::High)),
                    notify: NotifyDecision::Notify(NotifyReason::SeverityRose {
                        from: Sev::Low,
                        to: Sev::High,
                    }),
                },
                json!({"decision": "updated", "alert_id": "alert_00000001", "occurrences": 2, "worst_value": 9.5,
                    "severity_rose": ["low", "high"],
                    "notify": {"decision": "notify", "reason": "severity_rose", "from": "low", "to": "high"}}),
            ),
            (
                D::Updated {
                    alert_id: id(),
                    occurrences: 3,
                    worst_value: 9.5,
                    severity_rose: None,
                    notify: NotifyDecision::Hold(HoldReason::AlreadyNotified),
                },
                json!({"decision": "updated", "alert_id": "alert_00000001", "occurrences": 3, "worst_value": 9.5,
                    "severity_rose": null, "notify": {"decision": "hold", "reason": "already_notified"}}),
            ),
            (
                D::Holding { alert_id: id() },
                json!({"decision": "holding", "alert_id": "alert_00000001"}),
            ),
            (
                D::Clearing {
                    alert_id: id(),
                    clears: 1,
                    needed: 2,
                },
                json!({"decision": "clearing", "alert_id": "alert_00000001", "clears": 1, "needed": 2}),
            ),
            (
                D::ConditionCleared { alert_id: id() },
                json!({"decision": "condition_cleared", "alert_id": "alert_00000001"}),
            ),
            (
                D::AwaitingResolution { alert_id: id() },
                json!({"decision": "awaiting_resolution", "alert_id": "alert_00000001"}),
            ),
            (
                D::AutoResolved { alert_id: id() },
                json!({"decision": "auto_resolved", "alert_id": "alert_00000001"}),
            ),
            (
                D::SuppressedClosed { alert_id: id() },
                json!({"decision": "suppressed_closed", "alert_id": "alert_00000001"}),
            ),
            (D::Clear, json!({"decision": "clear"})),
            (
                D::WouldHaveFired { breaches: 3 },
                json!({"decision": "would_have_fired", "breaches": 3}),
            ),
            (
                D::PastBreachGoesOn {
                    since: at(1_714_557_600_000),
                },
                json!({"decision": "past_breach_goes_on", "since": "2024-05-01T10:00:00.000Z"}),
            ),
            (
                D::PastBreachCleared {
                    since: at(1_714_557_600_000),
                },
                json!({"decision": "past_breach_cleared", "since": "2024-05-01T10:00:00.000Z"}),
            ),
        ]
    }

    #[test]
    fn an_evaluation_report_shows_every_decision_as_the_api_always_has() {
        let rule_id = domain::RuleId::parse("rule_00000007").unwrap();
        let model = ModelName::parse("fraud").unwrap();
        let version = Version::parse("v1").unwrap();
        let canary = Some(Dataset::parse("canary").unwrap());
        let (decisions, shown): (Vec<_>, Vec<_>) = decisions().into_iter().unzip();
        let report = domain_evaluation::EvaluationReport {
            alerts_created: Vec::new(),
            alerts_updated: Vec::new(),
            evaluations: decisions
                .into_iter()
                .enumerate()
                .map(|(i, decision)| domain_evaluation::RuleEvaluation {
                    rule_id: rule_id.clone(),
                    model: model.clone(),
                    version: version.clone(),
                    dataset: if i % 2 == 0 { None } else { canary.clone() },
                    counted: i,
                    decision,
                })
                .collect(),
            past_breaches: vec![domain_evaluation::PastBreachRecorded {
                rule_id: rule_id.clone(),
                model: model.clone(),
                version: version.clone(),
                dataset: canary.clone(),
                would_have_fired_at: at(1_714_564_800_000),
                value: None,
            }],
            conflicts: 2,
            contended: vec![domain_evaluation::TargetKey {
                rule_id,
                version,
                dataset: None,
            }],
            backlog: true,
        };
        let evaluations: Vec<Value> = shown
            .into_iter()
            .enumerate()
            .map(|(i, mut decision)| {
                let mut evaluation = json!({"rule_id": "rule_00000007", "model": "fraud",
                    "version": "v1", "counted": i});
                if i % 2 == 1 {
                    evaluation["dataset"] = json!("canary");
                }
                for (field, value) in decision.as_object_mut().unwrap() {
                    evaluation[field] = value.take();
                }
                evaluation
            })
            .collect();
        assert_eq!(
            serde_json::to_value(EvaluationReport::from(&report)).unwrap(),
            json!({
                "alerts_created": [], "alerts_updated": [], "evaluations": evaluations,
                "past_breaches": [{"rule_id": "rule_00000007", "model": "fraud", "version": "v1",
                    "dataset": "canary", "would_have_fired_at": "2024-05-01T12:00:00.000Z",
                    "value": null}],
                "conflicts": 2,
                "contended": [{"rule_id": "rule_00000007", "version": "v1"}],
                "backlog": true
            })
        );
    }
}
