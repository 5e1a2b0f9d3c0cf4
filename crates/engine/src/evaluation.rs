//! Evaluation of alert rules: per enabled rule × model version, read the persisted state
//! and the alert it tracks, observe the newest sample, let the core's [`evaluate`] decide,
//! and commit the outcome (alert, history, state, outbox) as one guarded write.
//!
//! A pass reads everything it needs in bulk (rules, states, tracked alerts, silences, the
//! last hour's notified alerts, the newest sample of every series) and commits all its
//! writes in one store call, which is what makes 10,000 rules cheap. Each write is guarded
//! by compare-and-swap on the state's revision and the tracked alert, so a second
//! evaluator running at the same moment cannot create a duplicate: the loser's write is
//! refused, it re-reads, and sees that the sample was already counted. Evaluating again
//! without new samples changes nothing.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use modelwatch_core::alerting::limits::RATE_WINDOW_MS;
use modelwatch_core::alerting::{
    evaluate, outbox, Alert, AlertId, AlertWrite, Decision, EvaluationContext, RateLedger, Rule,
    RuleId, SeriesState,
};
use modelwatch_core::{Metric, ModelName, Point, SeriesKey, Timestamp, Version};
use modelwatch_store::alerts::{AlertCommit, AlertWriteGuarded, CommitOutcome, StateWrite};
use modelwatch_store::SeriesFilter;
use serde::Serialize;

use crate::alerting::{notifications, Engine, EngineError, MAX_ATTEMPTS};
use crate::observe::{live_observations, LiveCheck};

/// What one rule did for one version in a pass.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleEvaluation {
    pub rule_id: RuleId,
    pub model: ModelName,
    pub version: Version,
    #[serde(flatten)]
    pub decision: Decision,
}

/// The outcome of a pass.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EvaluationReport {
    /// Alerts this pass created (including suppressed ones), in evaluation order.
    pub alerts_created: Vec<Alert>,
    /// Alerts this pass changed, as they now stand: a repeated breach (occurrences, worst
    /// value, a severity rise) or an auto-resolve.
    pub alerts_updated: Vec<Alert>,
    /// Every rule × version evaluated, with its decision.
    pub evaluations: Vec<RuleEvaluation>,
    /// Writes that lost a race with another evaluator or a person and were decided again.
    pub conflicts: u32,
}

/// What a pass does with one target before the core decides.
enum Step {
    /// The state already counted the newest sample.
    AlreadyCounted(Timestamp),
    /// The series has no sample.
    Skip,
    /// The newest sample is new: observe it.
    Observe,
}

/// The alert an evaluation wrote, kept until its commit is known to have applied.
enum AlertWritten {
    Created(Alert),
    Updated(Alert),
    Nothing,
}

#[derive(Debug, Clone)]
struct Target {
    rule: usize,
    version: Version,
    /// The newest sample's time as the series listing has it: when it is not newer than
    /// what the state counted, the pass skips reading the sample itself.
    last_timestamp: Timestamp,
}

impl Engine {
    /// Evaluates the enabled rules applying to one model version.
    pub async fn evaluate_model(
        &self,
        model: &ModelName,
        version: &Version,
        now: Timestamp,
    ) -> Result<EvaluationReport, EngineError> {
        self.evaluate_scope(Some(model), Some(version), now).await
    }

    /// Evaluates every enabled rule for every version it applies to.
    pub async fn evaluate_all(&self, now: Timestamp) -> Result<EvaluationReport, EngineError> {
        self.evaluate_scope(None, None, now).await
    }

    async fn evaluate_scope(
        &self,
        model: Option<&ModelName>,
        version: Option<&Version>,
        now: Timestamp,
    ) -> Result<EvaluationReport, EngineError> {
        let rules: Vec<Rule> = self
            .alerts
            .list_rules(model)
            .await?
            .into_iter()
            .filter(|r| r.enabled)
            .collect();
        let mut report = EvaluationReport::default();
        if rules.is_empty() {
            return Ok(report);
        }
        let mut targets = self.targets(&rules, model, version).await?;
        let silences = self.alerts.list_silences(Some(now)).await?;
        let hour_ago = now.saturating_sub(Duration::from_millis(
            u64::try_from(RATE_WINDOW_MS).unwrap_or(0),
        ));
        let mut ledger = RateLedger::new();
        for (notified_model, at) in self.alerts.notified_since(hour_ago).await? {
            ledger.record(&notified_model, at);
        }
        for _ in 0..MAX_ATTEMPTS {
            if targets.is_empty() {
                break;
            }
            let retry = self
                .evaluate_targets(
                    &rules,
                    &targets,
                    model,
                    &silences,
                    &mut ledger,
                    now,
                    &mut report,
                )
                .await?;
            report.conflicts += u32::try_from(retry.len()).unwrap_or(u32::MAX);
            targets = retry;
        }
        if !targets.is_empty() {
            return Err(EngineError::Contention(format!(
                "the evaluation states of {} rule(s)",
                targets.len()
            )));
        }
        Ok(report)
    }

    /// Every (rule, version) pair to evaluate: a rule for one version, or for each version
    /// of its model that has samples of its metric.
    async fn targets(
        &self,
        rules: &[Rule],
        model: Option<&ModelName>,
        version: Option<&Version>,
    ) -> Result<Vec<Target>, EngineError> {
        let filter = SeriesFilter {
            model: model.cloned(),
            version: version.cloned(),
            metric: None,
        };
        let mut versions: HashMap<(ModelName, Metric), Vec<(Version, Timestamp)>> = HashMap::new();
        for series in self.metrics.list_series(&filter).await? {
            versions
                .entry((series.key.model, series.key.metric))
                .or_default()
                .push((series.key.version, series.last_timestamp));
        }
        let mut targets = Vec::new();
        for (index, rule) in rules.iter().enumerate() {
            let Some(found) = versions.get(&(rule.model.clone(), rule.metric.clone())) else {
                continue;
            };
            for (v, last_timestamp) in found {
                if rule.applies_to(&rule.model, v) {
                    targets.push(Target {
                        rule: index,
                        version: v.clone(),
                        last_timestamp: *last_timestamp,
                    });
                }
            }
        }
        Ok(targets)
    }

    /// One round over `targets`; returns those whose write lost a race.
    #[allow(clippy::too_many_arguments)]
    async fn evaluate_targets(
        &self,
        rules: &[Rule],
        targets: &[Target],
        model: Option<&ModelName>,
        silences: &[modelwatch_core::alerting::Silence],
        ledger: &mut RateLedger,
        now: Timestamp,
        report: &mut EvaluationReport,
    ) -> Result<Vec<Target>, EngineError> {
        let wanted: HashSet<&RuleId> = targets.iter().map(|t| &rules[t.rule].id).collect();
        let mut states: HashMap<(RuleId, Version), SeriesState> = HashMap::new();
        for stored in self.alerts.states(model).await? {
            if wanted.contains(&stored.rule_id) {
                states.insert((stored.rule_id, stored.version), stored.state);
            }
        }
        let tracked_ids: Vec<AlertId> =
            states.values().filter_map(|s| s.alert_id.clone()).collect();
        let tracked: HashMap<AlertId, Alert> = self
            .alerts
            .alerts_by_id(&tracked_ids)
            .await?
            .into_iter()
            .map(|a| (a.id.clone(), a))
            .collect();
        let default_state = SeriesState::default();
        let state_of = |target: &Target| {
            states
                .get(&(rules[target.rule].id.clone(), target.version.clone()))
                .unwrap_or(&default_state)
        };
        // Only series with a sample newer than their state counted need reading.
        let fresh = |target: &Target| {
            state_of(target)
                .last_observed_at
                .is_none_or(|last| target.last_timestamp > last)
        };
        let keys: Vec<SeriesKey> = targets
            .iter()
            .filter(|t| fresh(t))
            .map(|t| {
                let rule = &rules[t.rule];
                SeriesKey::new(rule.model.clone(), t.version.clone(), rule.metric.clone())
            })
            .collect();
        let mut fetched = self.metrics.latest_many(&keys).await?.into_iter();
        let latest: Vec<Option<Point>> = targets
            .iter()
            .map(|t| {
                if fresh(t) {
                    fetched.next().flatten()
                } else {
                    None
                }
            })
            .collect();

        // Which targets have a sample to observe: the rest are decided without one.
        let mut checks = Vec::new();
        let steps: Vec<Step> = targets
            .iter()
            .zip(&latest)
            .map(|(target, latest)| {
                let newest = latest
                    .as_ref()
                    .map_or(target.last_timestamp, |p| p.timestamp);
                if let Some(last) = state_of(target).last_observed_at.filter(|t| *t >= newest) {
                    // No newer sample: the core would say the same without windows fetched.
                    return Step::AlreadyCounted(last);
                }
                let Some(latest) = latest else {
                    return Step::Skip;
                };
                checks.push(LiveCheck {
                    rule: &rules[target.rule],
                    version: &target.version,
                    latest,
                });
                Step::Observe
            })
            .collect();
        let mut observations = live_observations(&*self.metrics, &checks, &self.detection)
            .await?
            .into_iter();

        let mut pending: Vec<(usize, AlertCommit, Decision, AlertWritten)> = Vec::new();
        for (index, (target, step)) in targets.iter().zip(steps).enumerate() {
            let rule = &rules[target.rule];
            let state = state_of(target);
            let decision = |decision| RuleEvaluation {
                rule_id: rule.id.clone(),
                model: rule.model.clone(),
                version: target.version.clone(),
                decision,
            };
            let observation = match step {
                Step::AlreadyCounted(last_observed_at) => {
                    report
                        .evaluations
                        .push(decision(Decision::AlreadyCounted { last_observed_at }));
                    continue;
                }
                Step::Skip => continue,
                Step::Observe => match observations.next() {
                    Some(observation) => observation,
                    None => continue,
                },
            };
            let tracked_alert = state.alert_id.as_ref().and_then(|id| tracked.get(id));
            let new_alert_id = AlertId::from_u32(self.ids.next_id());
            let ctx = EvaluationContext {
                now,
                config: &self.config,
                rate: ledger.counts(&rule.model, now),
                silences,
                new_alert_id: &new_alert_id,
            };
            let evaluation = evaluate(
                rule,
                &target.version,
                state,
                tracked_alert,
                &observation,
                &ctx,
            );
            if evaluation.state == *state && evaluation.alert.is_none() {
                report.evaluations.push(decision(evaluation.decision));
                continue;
            }
            // Counted now so later rules of this pass see it; a write that then loses a
            // race leaves the count one high for this pass, erring on the quiet side.
            if evaluation.counts_against_rate_limits() {
                ledger.record(&rule.model, now);
            }
            let entries = outbox::for_evaluation(&rule.notify_channels, &evaluation, now);
            let written = match &evaluation.alert {
                Some(AlertWrite::Insert(alert)) => AlertWritten::Created(alert.clone()),
                Some(AlertWrite::Update(alert)) => AlertWritten::Updated(alert.clone()),
                None => AlertWritten::Nothing,
            };
            let alert = evaluation.alert.as_ref().map(|write| AlertWriteGuarded {
                previous: match write {
                    AlertWrite::Insert(_) => None,
                    AlertWrite::Update(_) => tracked_alert.cloned(),
                },
                alert: write.alert().clone(),
            });
            let commit = AlertCommit {
                state: Some(StateWrite {
                    rule_id: rule.id.clone(),
                    model: rule.model.clone(),
                    version: target.version.clone(),
                    previous_revision: state.revision,
                    next: evaluation.state.clone(),
                }),
                notifications: alert
                    .as_ref()
                    .map(|w| notifications(entries, &w.alert))
                    .unwrap_or_default(),
                alert,
                transition: evaluation.transition.clone(),
            };
            pending.push((index, commit, evaluation.decision, written));
        }
        let (meta, commits): (Vec<_>, Vec<_>) = pending
            .into_iter()
            .map(|(index, commit, decision, written)| ((index, decision, written), commit))
            .unzip();
        let outcomes = self.alerts.commit(commits).await?;
        let mut retry = Vec::new();
        for ((index, decision, written), outcome) in meta.into_iter().zip(outcomes) {
            let target = &targets[index];
            match outcome {
                CommitOutcome::Applied => {
                    let rule = &rules[target.rule];
                    report.evaluations.push(RuleEvaluation {
                        rule_id: rule.id.clone(),
                        model: rule.model.clone(),
                        version: target.version.clone(),
                        decision,
                    });
                    match written {
                        AlertWritten::Created(alert) => report.alerts_created.push(alert),
                        AlertWritten::Updated(alert) => report.alerts_updated.push(alert),
                        AlertWritten::Nothing => {}
                    }
                }
                CommitOutcome::Conflict => retry.push(target.clone()),
            }
        }
        Ok(retry)
    }
}
