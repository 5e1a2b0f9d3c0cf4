//! The behaviour every [`AlertStore`] backend must show, written once and instantiated per
//! backend by `alert_conformance_suite!` (a PostgreSQL backend will add one line).

use std::sync::Arc;
use std::time::Duration;

use modelwatch_core::alerting::{
    outbox, Alert, AlertFilter, AlertId, AlertStatus, AlertTransition, ComparisonOperator,
    EventFacts, NotificationEvent, OutboxEntry, PastBreach, Rule, RuleId, RuleSpec, SeriesState,
    Severity, Silence, SilenceId, StateDetail, Trigger, SYSTEM_ACTOR,
};
use modelwatch_core::detection::changepoint::ChangePointState;
use modelwatch_core::{Dataset, Metric, ModelName, TimeRange, Timestamp, Version};

use super::{
    AlertCommit, AlertLabel, AlertStore, AlertWriteGuarded, ClaimChannels, CommitOutcome,
    DeliveryResult, DeliveryStatus, NotificationFilter, OutboxPayload, StateWrite,
};
use crate::StoreError;

pub struct AlertFixture {
    pub store: Arc<dyn AlertStore>,
    /// A second handle on the same data (the same file or database, opened again; the
    /// same store in memory), as a second server would have.
    pub other: Arc<dyn AlertStore>,
    pub _guard: Box<dyn std::any::Any + Send>,
}

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms).unwrap()
}

fn model(name: &str) -> ModelName {
    ModelName::parse(name).unwrap()
}

fn v(name: &str) -> Version {
    Version::parse(name).unwrap()
}

pub fn rule(id: u32, model_name: &str) -> Rule {
    let spec = RuleSpec {
        name: format!("rule {id}"),
        model: model_name.into(),
        metric: "accuracy".into(),
        threshold_value: Some(0.9),
        comparison_operator: Some("lt".into()),
        notify_channels: Some(vec!["ops".into(), "slack".into()]),
        ..RuleSpec::default()
    };
    Rule::create(spec, RuleId::from_u32(id), at(1_000)).unwrap()
}

/// A fired alert, with the revision a store gives it once inserted (1).
pub fn alert(id: u32, rule: &Rule, version: &str, first_seen: i64) -> Alert {
    Alert {
        id: AlertId::from_u32(id),
        rule_id: rule.id.clone(),
        rule_name: rule.name.clone(),
        model: rule.model.clone(),
        version: v(version),
        dataset: None,
        metric: rule.metric.clone(),
        severity: rule.severity,
        status: AlertStatus::Active,
        message: "accuracy low".into(),
        value: 0.8,
        worst_value: 0.8,
        trigger: Trigger::Threshold {
            comparison_operator: ComparisonOperator::Lt,
            threshold_value: 0.9,
        },
        first_seen: at(first_seen),
        last_seen: at(first_seen),
        occurrences: 1,
        notified: true,
        hold_reason: None,
        acknowledged_by: None,
        acknowledged_at: None,
        resolved_by: None,
        resolved_at: None,
        resolution_notes: None,
        label_coverage: None,
        revision: 1,
    }
}

fn created(alert: &Alert) -> AlertTransition {
    AlertTransition {
        alert_id: alert.id.clone(),
        at: alert.first_seen,
        by: SYSTEM_ACTOR.into(),
        from: None,
        to: alert.status,
        notes: None,
    }
}

fn notifications(alert: &Alert, event: NotificationEvent) -> Vec<OutboxEntry> {
    ["ops", "slack"]
        .into_iter()
        .map(|channel| OutboxEntry {
            dedup_key: format!("{}:{}:{channel}", alert.id, event.as_str()),
            alert_id: alert.id.clone(),
            channel: channel.into(),
            event,
            severity: alert.severity,
            created_at: alert.first_seen,
            facts: EventFacts::of(alert),
        })
        .collect()
}

/// The commit of an evaluation that fires `alert` from the state at `previous_revision`.
fn firing(rule: &Rule, alert: &Alert, previous_revision: u64) -> AlertCommit {
    AlertCommit {
        state: Some(StateWrite {
            rule_id: rule.id.clone(),
            model: rule.model.clone(),
            version: alert.version.clone(),
            dataset: alert.dataset.clone(),
            previous_revision,
            next: SeriesState {
                consecutive_breaches: 3,
                consecutive_clears: 0,
                alert_id: Some(alert.id.clone()),
                last_observed_at: Some(alert.first_seen),
                revision: previous_revision + 1,
                // The state's JSON part round-trips with the rest.
                detail: StateDetail {
                    past_breaches: vec![PastBreach {
                        would_have_fired_at: at(1),
                        value: Some(0.5),
                        cleared_at: None,
                        alert_id: Some(alert.id.clone()),
                    }],
                    // A change-point rule's detector, floats and all.
                    change_point: Some(ChangePointState {
                        last_at: Some(at(1)),
                        samples: 42,
                        level: 0.912_345_678_901_234_5,
                        scale: 0.013_579,
                        spread: 0.010_804,
                        interval_ms: Some(60_000.0),
                        lag_product: -0.125,
                        ..ChangePointState::default()
                    }),
                    // A no-data rule's view of the series' sampling.
                    cadence: Some(modelwatch_core::alerting::no_data::Cadence {
                        last_sample_at: Some(at(1)),
                        gaps_ms: vec![60_000, 59_000, 61_000],
                        // A rule on a whole version: the metrics seen last.
                        last_samples: vec![modelwatch_core::alerting::no_data::LastSample {
                            metric: modelwatch_core::Metric::Latency,
                            at: at(1),
                        }],
                    }),
                },
            },
        }),
        alert: Some(AlertWriteGuarded::insert(alert.clone())),
        transition: Some(created(alert)),
        notifications: notifications(alert, NotificationEvent::Firing),
    }
}

/// A rule watching each dataset keeps a state per dataset: both start at revision 0, a
/// stale write to one conflicts without touching the other, and exports carry them.
pub async fn each_dataset_of_a_rule_keeps_its_own_state(store: &dyn AlertStore) {
    let r = rule(1, "fraud");
    store.insert_rule(r.clone()).await.unwrap();
    let canary = Some(Dataset::parse("canary").unwrap());
    let on_default = alert(1, &r, "v1", 5_000);
    let on_canary = Alert {
        id: AlertId::from_u32(2),
        dataset: canary.clone(),
        ..on_default.clone()
    };
    let outcomes = store
        .commit(vec![firing(&r, &on_default, 0), firing(&r, &on_canary, 0)])
        .await
        .unwrap();
    assert_eq!(outcomes, [CommitOutcome::Applied, CommitOutcome::Applied]);
    let by_dataset = |states: Vec<super::StoredState>| {
        let mut seen: Vec<_> = states
            .into_iter()
            .map(|s| (s.dataset, s.state.alert_id, s.state.revision))
            .collect();
        seen.sort();
        seen
    };
    assert_eq!(
        by_dataset(store.states(None).await.unwrap()),
        [
            (None, Some(on_default.id.clone()), 1),
            (canary.clone(), Some(on_canary.id.clone()), 1)
        ]
    );
    let stale = Alert {
        id: AlertId::from_u32(3),
        ..on_canary.clone()
    };
    assert_eq!(
        store.commit(vec![firing(&r, &stale, 0)]).await.unwrap(),
        [CommitOutcome::Conflict]
    );
    assert_eq!(
        store.alert(&on_canary.id).await.unwrap().unwrap().dataset,
        canary
    );
    let rows = store.export_alerting().await.unwrap();
    assert_eq!(
        rows.states
            .iter()
            .map(|s| s.dataset.clone())
            .collect::<Vec<_>>(),
        [None, canary]
    );
}

pub async fn rules_round_trip_update_and_delete(store: &dyn AlertStore) {
    let a = rule(1, "fraud");
    let b = rule(2, "churn");
    store.insert_rule(a.clone()).await.unwrap();
    store.insert_rule(b.clone()).await.unwrap();
    assert!(matches!(
        store.insert_rule(a.clone()).await,
        Err(StoreError::AlreadyExists { kind: "rule", .. })
    ));
    assert_eq!(store.rule(&a.id).await.unwrap(), Some(a.clone()));
    let listed = store.list_rules(None).await.unwrap();
    assert_eq!(
        listed,
        vec![b.clone(), a.clone()],
        "ordered by model then id"
    );
    assert_eq!(
        store.list_rules(Some(&model("fraud"))).await.unwrap(),
        vec![a.clone()]
    );

    let disabled = a.with_enabled(false, at(2_000));
    store.update_rule(disabled.clone()).await.unwrap();
    assert_eq!(store.rule(&a.id).await.unwrap(), Some(disabled));
    assert!(matches!(
        store.update_rule(rule(9, "x")).await,
        Err(StoreError::NotFound { kind: "rule", .. })
    ));

    store
        .commit(vec![firing(&a, &alert(1, &a, "v1", 5_000), 0)])
        .await
        .unwrap();
    assert_eq!(store.states(None).await.unwrap().len(), 1);
    assert!(store.delete_rule(&a.id).await.unwrap());
    assert!(!store.delete_rule(&a.id).await.unwrap());
    assert_eq!(store.rule(&a.id).await.unwrap(), None);
    assert!(
        store.states(None).await.unwrap().is_empty(),
        "states go with the rule"
    );
    assert!(
        store.alert(&AlertId::from_u32(1)).await.unwrap().is_some(),
        "alerts stay"
    );
}

pub async fn commit_writes_state_alert_history_and_outbox_together(store: &dyn AlertStore) {
    let r = rule(1, "fraud");
    store.insert_rule(r.clone()).await.unwrap();
    let a = alert(7, &r, "v1", 10_000);
    let outcomes = store.commit(vec![firing(&r, &a, 0)]).await.unwrap();
    assert_eq!(outcomes, vec![CommitOutcome::Applied]);

    let states = store.states(Some(&model("fraud"))).await.unwrap();
    assert_eq!(states.len(), 1);
    assert_eq!(states[0].state.revision, 1);
    assert_eq!(states[0].state.alert_id, Some(a.id.clone()));
    assert_eq!(states[0].state.last_observed_at, Some(at(10_000)));
    assert!(store
        .states(Some(&model("other")))
        .await
        .unwrap()
        .is_empty());

    assert_eq!(store.alert(&a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(store.history(&a.id).await.unwrap(), vec![created(&a)]);
    let queued = store
        .list_notifications(&NotificationFilter::default())
        .await
        .unwrap();
    assert_eq!(queued.len(), 2);
    assert!(queued.iter().all(|n| n.status == DeliveryStatus::Pending
        && n.attempts == 0
        && n.next_attempt_at == at(10_000)
        && n.alert_id == a.id
        && n.event == NotificationEvent::Firing
        && n.payload == OutboxPayload::Facts(EventFacts::of(&a))));
    assert_eq!(
        queued
            .iter()
            .map(|n| n.channel.as_str())
            .collect::<Vec<_>>(),
        ["ops", "slack"]
    );
}

pub async fn stale_revision_or_changed_alert_is_a_conflict_and_writes_nothing(
    store: &dyn AlertStore,
) {
    let r = rule(1, "fraud");
    store.insert_rule(r.clone()).await.unwrap();
    let first = alert(1, &r, "v1", 10_000);
    let racing = alert(2, &r, "v1", 10_000);
    // Two evaluators read revision 0 and both fire: only the first commit lands.
    let outcomes = store
        .commit(vec![firing(&r, &first, 0), firing(&r, &racing, 0)])
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        vec![CommitOutcome::Applied, CommitOutcome::Conflict]
    );
    assert_eq!(store.alert(&racing.id).await.unwrap(), None);
    assert!(store.history(&racing.id).await.unwrap().is_empty());
    assert_eq!(
        store
            .list_notifications(&NotificationFilter::default())
            .await
            .unwrap()
            .len(),
        2
    );

    // A person acknowledges; an evaluator that read the alert before must not undo it.
    let mut acknowledged = first.clone();
    acknowledged.status = AlertStatus::Acknowledged;
    acknowledged.acknowledged_by = Some("ana".into());
    let acknowledged = AlertWriteGuarded::replace(&first, acknowledged);
    let person = AlertCommit {
        alert: Some(acknowledged.clone()),
        ..AlertCommit::default()
    };
    let mut stale_update = first.clone();
    stale_update.occurrences = 2;
    let evaluator = AlertCommit {
        alert: Some(AlertWriteGuarded::replace(&first, stale_update)),
        ..AlertCommit::default()
    };
    let outcomes = store.commit(vec![person, evaluator]).await.unwrap();
    assert_eq!(
        outcomes,
        vec![CommitOutcome::Applied, CommitOutcome::Conflict]
    );
    assert_eq!(
        store.alert(&first.id).await.unwrap(),
        Some(acknowledged.alert)
    );

    // Inserting an alert whose id exists is a conflict too.
    let outcomes = store
        .commit(vec![AlertCommit {
            alert: Some(AlertWriteGuarded::insert(first.clone())),
            ..AlertCommit::default()
        }])
        .await
        .unwrap();
    assert_eq!(outcomes, vec![CommitOutcome::Conflict]);
}

pub async fn state_of_a_deleted_rule_is_not_written(store: &dyn AlertStore) {
    let r = rule(1, "fraud");
    let outcomes = store
        .commit(vec![firing(&r, &alert(1, &r, "v1", 1_000), 0)])
        .await
        .unwrap();
    assert_eq!(outcomes, vec![CommitOutcome::Conflict]);
    assert!(store.states(None).await.unwrap().is_empty());
}

/// A state-only commit of `rule` for `version`, from `previous_revision` to the next.
fn state_step(rule: &Rule, version: &str, previous_revision: u64) -> AlertCommit {
    AlertCommit {
        state: Some(StateWrite {
            rule_id: rule.id.clone(),
            model: rule.model.clone(),
            version: v(version),
            dataset: None,
            previous_revision,
            next: SeriesState {
                consecutive_breaches: 1,
                revision: previous_revision + 1,
                ..SeriesState::default()
            },
        }),
        ..AlertCommit::default()
    }
}

/// The guards of one call are read together (one query per call on the SQL backends), yet
/// each commit is checked against the writes of the commits before it in the call.
pub async fn guards_within_one_call_see_the_commits_before_them(store: &dyn AlertStore) {
    let r = rule(1, "fraud");
    let deleted = rule(2, "fraud");
    store.insert_rule(r.clone()).await.unwrap();
    let outcomes = store
        .commit(vec![
            state_step(&r, "v1", 0),
            state_step(&r, "v1", 1),
            // Read revision 1 like the commit before it, which wrote 2 first.
            state_step(&r, "v1", 1),
            state_step(&deleted, "v1", 0),
            state_step(&r, "v2", 0),
            state_step(&r, "v2", 0),
            state_step(&r, "v1", 2),
        ])
        .await
        .unwrap();
    use CommitOutcome::{Applied, Conflict};
    assert_eq!(
        outcomes,
        [Applied, Applied, Conflict, Conflict, Applied, Conflict, Applied]
    );
    let mut revisions: Vec<_> = store
        .states(None)
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.rule_id, s.version.to_string(), s.state.revision))
        .collect();
    revisions.sort();
    assert_eq!(
        revisions,
        [
            (r.id.clone(), "v1".into(), 3),
            (r.id.clone(), "v2".into(), 1)
        ]
    );
}

pub async fn outbox_deduplicates_on_its_key(store: &dyn AlertStore) {
    let r = rule(1, "fraud");
    store.insert_rule(r.clone()).await.unwrap();
    let a = alert(1, &r, "v1", 1_000);
    store.commit(vec![firing(&r, &a, 0)]).await.unwrap();
    let again = AlertCommit {
        notifications: notifications(&a, NotificationEvent::Firing),
        ..AlertCommit::default()
    };
    assert_eq!(
        store.commit(vec![again]).await.unwrap(),
        vec![CommitOutcome::Applied]
    );
    let all = store
        .list_notifications(&NotificationFilter::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 2, "same dedup keys are inserted once");
    // The core's keys differ per event, so a resolution is queued beside the firing.
    let mut resolved = a.clone();
    resolved.status = AlertStatus::Resolved;
    resolved.resolved_at = Some(at(2_000));
    resolved.resolved_by = Some("ana".into());
    let transition = AlertTransition {
        alert_id: a.id.clone(),
        at: at(2_000),
        by: "ana".into(),
        from: Some(AlertStatus::Active),
        to: AlertStatus::Resolved,
        notes: Some("fixed".into()),
    };
    let entries = outbox::for_transition(&r.notify_channels, &resolved, &transition);
    let commit = AlertCommit {
        alert: Some(AlertWriteGuarded::replace(&a, resolved)),
        transition: Some(transition.clone()),
        notifications: entries,
        ..AlertCommit::default()
    };
    store.commit(vec![commit]).await.unwrap();
    let filter = NotificationFilter {
        alert_id: Some(a.id.clone()),
        status: Some(DeliveryStatus::Pending),
        channel: None,
    };
    let all = store.list_notifications(&filter).await.unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all[3].event, NotificationEvent::Resolved);
    let history = store.history(&a.id).await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1], transition);
}

pub async fn alerts_are_listed_filtered_and_newest_first(store: &dyn AlertStore) {
    let r = rule(1, "fraud");
    let s = rule(2, "churn");
    store.insert_rule(r.clone()).await.unwrap();
    store.insert_rule(s.clone()).await.unwrap();
    let old = alert(1, &r, "v1", 1_000);
    let new = alert(2, &r, "v2", 5_000);
    let mut other = alert(3, &s, "v1", 3_000);
    other.severity = Severity::Critical;
    other.notified = false;
    let mut resolved = alert(4, &r, "v1", 2_000);
    resolved.status = AlertStatus::Resolved;
    resolved.resolved_at = Some(at(2_500));
    let commits = [&old, &new, &other, &resolved]
        .into_iter()
        .map(|a| AlertCommit {
            alert: Some(AlertWriteGuarded::insert(a.clone())),
            ..AlertCommit::default()
        })
        .collect();
    store.commit(commits).await.unwrap();
    let ids = |alerts: Vec<Alert>| alerts.into_iter().map(|a| a.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.list_alerts(&AlertFilter::default()).await.unwrap()),
        [&new, &other, &resolved, &old].map(|a| a.id.clone())
    );
    let fraud_active = AlertFilter {
        model: Some(model("fraud")),
        status: Some(AlertStatus::Active),
        ..AlertFilter::default()
    };
    assert_eq!(
        ids(store.list_alerts(&fraud_active).await.unwrap()),
        [&new, &old].map(|a| a.id.clone())
    );
    let critical = AlertFilter {
        severity: Some(Severity::Critical),
        ..AlertFilter::default()
    };
    assert_eq!(
        ids(store.list_alerts(&critical).await.unwrap()),
        [other.id.clone()]
    );
    // Alive in [2_600, 4_000): the resolved one closed before, the newest began after.
    let window = AlertFilter {
        window: Some(TimeRange::new(at(2_600), at(4_000))),
        ..AlertFilter::default()
    };
    assert_eq!(
        ids(store.list_alerts(&window).await.unwrap()),
        [&other, &old].map(|a| a.id.clone())
    );
    assert_eq!(
        ids(store.open_alerts(None).await.unwrap()),
        [&new, &other, &old].map(|a| a.id.clone())
    );
    assert_eq!(
        ids(store.open_alerts(Some(&model("churn"))).await.unwrap()),
        [other.id.clone()]
    );
    let mut found = ids(store
        .alerts_by_id(&[old.id.clone(), AlertId::from_u32(99), other.id.clone()])
        .await
        .unwrap());
    found.sort();
    assert_eq!(found, [old.id.clone(), other.id.clone()]);
    assert_eq!(
        store.notified_since(at(1_500)).await.unwrap(),
        vec![(model("fraud"), at(2_000)), (model("fraud"), at(5_000))]
    );
}

/// The gauges' reads see exactly what the listing sees: the open alerts' labels, and
/// the resolved ones counted by severity.
pub async fn open_labels_and_resolved_counts_match_the_listing(store: &dyn AlertStore) {
    let r = rule(1, "fraud");
    store.insert_rule(r.clone()).await.unwrap();
    let active = alert(1, &r, "v1", 1_000);
    let mut acknowledged = alert(2, &r, "v2", 2_000);
    acknowledged.status = AlertStatus::Acknowledged;
    acknowledged.severity = Severity::Critical;
    let resolved = |id: u32, severity: Severity| {
        let mut a = alert(id, &r, "v3", 3_000 + i64::from(id));
        a.status = AlertStatus::Resolved;
        a.resolved_at = Some(at(9_000));
        a.severity = severity;
        a
    };
    let alerts = [
        active.clone(),
        acknowledged.clone(),
        resolved(3, Severity::Low),
        resolved(4, Severity::Low),
        resolved(5, Severity::Critical),
    ];
    let commits = alerts
        .iter()
        .map(|a| AlertCommit {
            alert: Some(AlertWriteGuarded::insert(a.clone())),
            ..AlertCommit::default()
        })
        .collect();
    store.commit(commits).await.unwrap();

    let mut labels = store.open_alert_labels().await.unwrap();
    labels.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(
        labels,
        [
            AlertLabel::of(&active),
            AlertLabel {
                id: acknowledged.id.clone(),
                status: AlertStatus::Acknowledged,
                severity: Severity::Critical,
            },
        ]
    );
    let mut counts = store.resolved_alert_counts().await.unwrap();
    counts.sort();
    assert_eq!(counts, [(Severity::Low, 2), (Severity::Critical, 1)]);
}

pub async fn silences_round_trip_and_expire(store: &dyn AlertStore) {
    let silence = Silence {
        id: SilenceId::from_u32(1),
        model: model("fraud"),
        version: Some(v("v1")),
        metric: Some(Metric::parse("accuracy").unwrap()),
        starts_at: at(1_000),
        ends_at: at(10_000),
        created_by: "ana".into(),
        comment: "retraining".into(),
        created_at: at(900),
    };
    let broad = Silence {
        id: SilenceId::from_u32(2),
        version: None,
        metric: None,
        starts_at: at(500),
        ends_at: at(3_000),
        ..silence.clone()
    };
    store.insert_silence(silence.clone()).await.unwrap();
    store.insert_silence(broad.clone()).await.unwrap();
    assert!(matches!(
        store.insert_silence(broad.clone()).await,
        Err(StoreError::AlreadyExists { .. })
    ));
    assert_eq!(
        store.silence(&silence.id).await.unwrap(),
        Some(silence.clone())
    );
    assert_eq!(
        store.list_silences(None).await.unwrap(),
        vec![broad.clone(), silence.clone()]
    );
    assert_eq!(
        store.list_silences(Some(at(3_000))).await.unwrap(),
        vec![silence.clone()]
    );
    let expired = silence.expire(at(2_000));
    store.update_silence(expired.clone()).await.unwrap();
    assert_eq!(store.silence(&silence.id).await.unwrap(), Some(expired));
    assert!(store
        .list_silences(Some(at(3_000)))
        .await
        .unwrap()
        .is_empty());
    assert!(matches!(
        store
            .update_silence(Silence {
                id: SilenceId::from_u32(3),
                ..silence
            })
            .await,
        Err(StoreError::NotFound { .. })
    ));
}

pub async fn claims_lease_rows_and_only_the_holder_finishes_them(store: &dyn AlertStore) {
    let r = rule(1, "fraud");
    store.insert_rule(r.clone()).await.unwrap();
    let a = alert(1, &r, "v1", 1_000);
    store.commit(vec![firing(&r, &a, 0)]).await.unwrap();
    let lease = Duration::from_secs(30);

    assert!(
        store
            .claim_notifications("w1", at(999), lease, ClaimChannels::ANY, 10)
            .await
            .unwrap()
            .is_empty(),
        "not due before created"
    );
    let claimed = store
        .claim_notifications("w1", at(2_000), lease, ClaimChannels::ANY, 1)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].attempts, 0, "a claim is not an attempt");
    assert_eq!(claimed[0].lease_owner.as_deref(), Some("w1"));
    assert_eq!(claimed[0].lease_until, Some(at(32_000)));
    let second = store
        .claim_notifications("w2", at(2_000), lease, ClaimChannels::ANY, 10)
        .await
        .unwrap();
    assert_eq!(second.len(), 1, "a leased row is not claimed twice");
    assert_ne!(second[0].id, claimed[0].id);

    // w2 retries later; w1 delivers; a stranger cannot finish w1's row.
    assert!(!store
        .finish_notification(claimed[0].id, "w2", DeliveryResult::Delivered, at(3_000))
        .await
        .unwrap());
    assert!(store
        .finish_notification(claimed[0].id, "w1", DeliveryResult::Delivered, at(3_000))
        .await
        .unwrap());
    let retry = DeliveryResult::Retry {
        error: "timeout".into(),
        retry_at: at(60_000),
        sent: true,
    };
    assert!(store
        .finish_notification(second[0].id, "w2", retry, at(3_000))
        .await
        .unwrap());
    assert!(
        store
            .claim_notifications("w1", at(59_999), lease, ClaimChannels::ANY, 10)
            .await
            .unwrap()
            .is_empty(),
        "back-off respected"
    );
    let again = store
        .claim_notifications("w1", at(60_000), lease, ClaimChannels::ANY, 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 1, "the failed send counted");
    assert_eq!(again[0].last_error.as_deref(), Some("timeout"));
    assert_eq!(again[0].finished_at, None, "a retry is not an end");

    // w1 dies holding the lease; once it expires, w3 takes the row over and w1's late
    // report is refused.
    let taken = store
        .claim_notifications("w3", at(90_000), lease, ClaimChannels::ANY, 10)
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].attempts, 1, "w1 recorded no send");
    assert!(!store
        .finish_notification(taken[0].id, "w1", DeliveryResult::Delivered, at(91_000))
        .await
        .unwrap());
    let failed = DeliveryResult::Failed {
        error: "410 gone".into(),
        sent: true,
    };
    assert!(store
        .finish_notification(taken[0].id, "w3", failed, at(91_000))
        .await
        .unwrap());

    let rows = store
        .list_notifications(&NotificationFilter::default())
        .await
        .unwrap();
    assert_eq!(rows[0].status, DeliveryStatus::Delivered);
    assert_eq!(rows[0].delivered_at, Some(at(3_000)));
    assert_eq!(rows[0].finished_at, Some(at(3_000)));
    assert_eq!(rows[0].lease_owner, None);
    assert_eq!(rows[1].status, DeliveryStatus::Failed);
    assert_eq!(rows[1].last_error.as_deref(), Some("410 gone"));
    assert_eq!((rows[0].attempts, rows[1].attempts), (1, 2));
    // Failed when w3 said so, not when its last attempt was due (60,000).
    assert_eq!(
        (rows[1].next_attempt_at, rows[1].finished_at),
        (at(60_000), Some(at(91_000)))
    );
    assert!(matches!(
        store
            .finish_notification(999, "w1", DeliveryResult::Delivered, at(1))
            .await,
        Err(StoreError::NotFound { .. })
    ));
}

/// Attempts count sends, not claims: a row claimed and given back, claimed by a worker
/// that died, or held back by a rate limit has used none of its attempts (issue 15: rows
/// failed after one real request). Claims take one channel, or every channel but some.
pub async fn only_sends_count_as_attempts_and_claims_take_channels(store: &dyn AlertStore) {
    let r = rule(1, "fraud");
    store.insert_rule(r.clone()).await.unwrap();
    let a = alert(1, &r, "v1", 1_000);
    store.commit(vec![firing(&r, &a, 0)]).await.unwrap();
    let lease = Duration::from_secs(30);
    let only = |channel| ClaimChannels::Only(channel);

    assert!(store
        .claim_notifications("w1", at(2_000), lease, only("pager"), 10)
        .await
        .unwrap()
        .is_empty());
    let ops = store
        .claim_notifications("w1", at(2_000), lease, only("ops"), 10)
        .await
        .unwrap();
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0].channel, "ops");
    let others = ["ops".to_owned()];
    let slack = store
        .claim_notifications("w1", at(2_000), lease, ClaimChannels::AllBut(&others), 10)
        .await
        .unwrap();
    assert_eq!(slack.len(), 1);
    assert_eq!(slack[0].channel, "slack");

    // Given back: claimable again at once, nothing counted, nothing else changed.
    assert!(store
        .finish_notification(ops[0].id, "w1", DeliveryResult::Released, at(2_500))
        .await
        .unwrap());
    // Held back by a rate limit: a retry without a send.
    let held = DeliveryResult::Retry {
        error: "rate limited".into(),
        retry_at: at(3_000),
        sent: false,
    };
    assert!(store
        .finish_notification(slack[0].id, "w1", held, at(2_500))
        .await
        .unwrap());
    // A worker dies holding the lease of `ops` five times over.
    let mut now = 2_500;
    for _ in 0..5 {
        let claimed = store
            .claim_notifications("dead", at(now), lease, only("ops"), 10)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].attempts, 0);
        now += 30_000;
    }
    let rows = store
        .list_notifications(&NotificationFilter::default())
        .await
        .unwrap();
    assert!(rows.iter().all(|n| n.attempts == 0), "{rows:?}");
    let slack_row = rows.iter().find(|n| n.channel == "slack").unwrap();
    assert_eq!(slack_row.last_error.as_deref(), Some("rate limited"));
    let ops_row = rows.iter().find(|n| n.channel == "ops").unwrap();
    assert_eq!(
        (ops_row.status, ops_row.last_error.as_deref()),
        (DeliveryStatus::Pending, None)
    );

    // Two sends that failed, then one that went through: three attempts.
    for sent in 0..3 {
        let claimed = store
            .claim_notifications("w2", at(now), lease, only("ops"), 10)
            .await
            .unwrap();
        assert_eq!(claimed[0].attempts, sent);
        let result = if sent < 2 {
            DeliveryResult::Retry {
                error: "HTTP 500".into(),
                retry_at: at(now),
                sent: true,
            }
        } else {
            DeliveryResult::Delivered
        };
        assert!(store
            .finish_notification(claimed[0].id, "w2", result, at(now))
            .await
            .unwrap());
    }
    let rows = store
        .list_notifications(&NotificationFilter::default())
        .await
        .unwrap();
    let ops_row = rows.iter().find(|n| n.channel == "ops").unwrap();
    assert_eq!(
        (ops_row.status, ops_row.attempts),
        (DeliveryStatus::Delivered, 3)
    );
}

pub async fn skipped_rows_are_kept_apart_from_failures(store: &dyn AlertStore) {
    let r = rule(1, "fraud");
    store.insert_rule(r.clone()).await.unwrap();
    let a = alert(1, &r, "v1", 1_000);
    store.commit(vec![firing(&r, &a, 0)]).await.unwrap();
    let lease = Duration::from_secs(30);
    let claimed = store
        .claim_notifications("w1", at(2_000), lease, ClaimChannels::ANY, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    let skipped = DeliveryResult::Skipped {
        reason: "alert was acknowledged by alice before delivery".into(),
    };
    assert!(store
        .finish_notification(claimed[0].id, "w1", skipped, at(3_000))
        .await
        .unwrap());
    let failed = DeliveryResult::Failed {
        error: "410 gone".into(),
        sent: true,
    };
    assert!(store
        .finish_notification(claimed[1].id, "w1", failed, at(4_000))
        .await
        .unwrap());

    let only = |status| NotificationFilter {
        status: Some(status),
        ..NotificationFilter::default()
    };
    let rows = store
        .list_notifications(&only(DeliveryStatus::Skipped))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, claimed[0].id);
    assert_eq!(
        rows[0].last_error.as_deref(),
        Some("alert was acknowledged by alice before delivery")
    );
    assert_eq!(
        (
            rows[0].delivered_at,
            rows[0].finished_at,
            rows[0].lease_owner.as_deref()
        ),
        (None, Some(at(3_000)), None)
    );
    let rows = store
        .list_notifications(&only(DeliveryStatus::Failed))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, claimed[1].id);
    assert_eq!(
        (rows[0].delivered_at, rows[0].finished_at),
        (None, Some(at(4_000)))
    );
    // Settled either way: neither is claimed again, even long after.
    assert!(store
        .claim_notifications("w2", at(10_000_000), lease, ClaimChannels::ANY, 10)
        .await
        .unwrap()
        .is_empty());
}

/// Retention of the outbox: rows that finished (delivered, failed, skipped) before the
/// cutoff go, by when they finished — not by when their last attempt was due; pending
/// rows, leased or not, and every alert and its history stay.
pub async fn finished_notifications_before_a_cutoff_are_deleted(store: &dyn AlertStore) {
    let r = rule(1, "fraud");
    store.insert_rule(r.clone()).await.unwrap();
    let early = [
        alert(1, &r, "v1", 1_000),
        alert(2, &r, "v2", 1_000),
        alert(4, &r, "v4", 1_000),
    ];
    let late = alert(3, &r, "v3", 50_000);
    for a in early.iter().chain([&late]) {
        store.commit(vec![firing(&r, a, 0)]).await.unwrap();
    }
    let lease = Duration::from_secs(3_600);

    // The six early rows, all due at 1,000, oldest first.
    let claimed = store
        .claim_notifications("w1", at(2_000), lease, ClaimChannels::ANY, 6)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 6);
    let id = |i: usize| claimed[i].id;
    let finish = |id, result, ms| store.finish_notification(id, "w1", result, at(ms));
    let failed = || DeliveryResult::Failed {
        error: "410 gone".into(),
        sent: true,
    };
    let skipped = || DeliveryResult::Skipped {
        reason: "acknowledged".into(),
    };
    assert!(finish(id(0), DeliveryResult::Delivered, 3_000)
        .await
        .unwrap());
    assert!(finish(id(1), failed(), 3_000).await.unwrap());
    assert!(finish(id(2), skipped(), 3_000).await.unwrap());
    let in_flight = id(3);
    // Due long ago, finished just now (a worker that held them through a long wait).
    assert!(finish(id(4), failed(), 75_000).await.unwrap());
    assert!(finish(id(5), skipped(), 75_000).await.unwrap());
    let delivered_late = store
        .claim_notifications("w2", at(60_000), lease, ClaimChannels::ANY, 1)
        .await
        .unwrap();
    assert_eq!(delivered_late.len(), 1);
    let delivered_late = delivered_late[0].id;
    assert!(store
        .finish_notification(delivered_late, "w2", DeliveryResult::Delivered, at(70_000))
        .await
        .unwrap());

    let finished: Vec<(i64, DeliveryStatus, Option<Timestamp>)> = store
        .list_notifications(&NotificationFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|n| (n.id, n.status, n.finished_at))
        .collect();
    let never_claimed = finished
        .iter()
        .map(|(id, _, _)| *id)
        .find(|id| !claimed.iter().any(|c| c.id == *id) && *id != delivered_late)
        .unwrap();
    assert_eq!(
        finished,
        [
            (id(0), DeliveryStatus::Delivered, Some(at(3_000))),
            (id(1), DeliveryStatus::Failed, Some(at(3_000))),
            (id(2), DeliveryStatus::Skipped, Some(at(3_000))),
            (in_flight, DeliveryStatus::Pending, None),
            (id(4), DeliveryStatus::Failed, Some(at(75_000))),
            (id(5), DeliveryStatus::Skipped, Some(at(75_000))),
            (delivered_late, DeliveryStatus::Delivered, Some(at(70_000))),
            (never_claimed, DeliveryStatus::Pending, None),
        ]
    );

    // Finished at 3,000 go; finished exactly at the cutoff or after it (however long
    // ago they were due), leased and never claimed rows stay.
    assert_eq!(
        store
            .delete_finished_notifications(at(70_000))
            .await
            .unwrap(),
        3
    );
    let ids = |rows: Vec<super::Notification>| rows.into_iter().map(|n| n.id).collect::<Vec<_>>();
    let all = NotificationFilter::default();
    assert_eq!(
        ids(store.list_notifications(&all).await.unwrap()),
        [in_flight, id(4), id(5), delivered_late, never_claimed]
    );
    assert_eq!(
        store
            .delete_finished_notifications(at(70_000))
            .await
            .unwrap(),
        0,
        "idempotent"
    );
    assert_eq!(
        store
            .delete_finished_notifications(at(75_000))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        ids(store.list_notifications(&all).await.unwrap()),
        [in_flight, id(4), id(5), never_claimed]
    );

    // The lease holder still finishes its row; only then may it go.
    assert!(store
        .finish_notification(in_flight, "w1", DeliveryResult::Delivered, at(80_000))
        .await
        .unwrap());
    assert_eq!(
        store
            .delete_finished_notifications(at(i64::from(u32::MAX)))
            .await
            .unwrap(),
        3
    );
    let rows = store.list_notifications(&all).await.unwrap();
    assert_eq!(
        rows.iter()
            .map(|n| (n.id, n.status, n.finished_at))
            .collect::<Vec<_>>(),
        [(never_claimed, DeliveryStatus::Pending, None)]
    );

    // The audit trail stays whole.
    assert_eq!(
        store
            .list_alerts(&AlertFilter::default())
            .await
            .unwrap()
            .len(),
        4
    );
    for alert in early.iter().chain([&late]) {
        assert_eq!(store.history(&alert.id).await.unwrap().len(), 1);
    }
}

pub async fn recent_notifications_are_newest_first_filtered_and_limited(store: &dyn AlertStore) {
    let r = rule(1, "fraud");
    store.insert_rule(r.clone()).await.unwrap();
    let a = alert(1, &r, "v1", 1_000);
    let b = alert(2, &r, "v2", 2_000);
    store.commit(vec![firing(&r, &a, 0)]).await.unwrap();
    assert_eq!(
        store.commit(vec![firing(&r, &b, 0)]).await.unwrap(),
        [CommitOutcome::Applied]
    );
    let all = store
        .list_notifications(&NotificationFilter::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 4);
    let ids = |rows: &[super::Notification]| rows.iter().map(|n| n.id).collect::<Vec<_>>();

    let recent = store
        .recent_notifications(&NotificationFilter::default(), 3)
        .await
        .unwrap();
    assert_eq!(ids(&recent), [all[3].id, all[2].id, all[1].id]);
    let slack = NotificationFilter {
        channel: Some("slack".into()),
        ..NotificationFilter::default()
    };
    let recent = store.recent_notifications(&slack, 10).await.unwrap();
    assert_eq!(recent.len(), 2);
    assert!(recent.iter().all(|n| n.channel == "slack"));
    assert_eq!(recent[0].alert_id, b.id);
    assert_eq!(store.list_notifications(&slack).await.unwrap().len(), 2);
    let of_a_on_ops = NotificationFilter {
        alert_id: Some(a.id.clone()),
        channel: Some("ops".into()),
        status: Some(DeliveryStatus::Pending),
    };
    let recent = store.recent_notifications(&of_a_on_ops, 10).await.unwrap();
    assert_eq!(ids(&recent), [all[0].id]);
    assert!(store
        .recent_notifications(
            &NotificationFilter {
                channel: Some("nowhere".into()),
                ..NotificationFilter::default()
            },
            10
        )
        .await
        .unwrap()
        .is_empty());
}

/// An evaluator guards its update with the alert as it read it back; a value whose text
/// did not parse back to the same bits made that guard fail forever on SQLite (every
/// commit a conflict, the pass given up as contention).
pub async fn an_alert_read_back_guards_its_own_update(store: &dyn AlertStore) {
    let r = rule(1, "fraud");
    store.insert_rule(r.clone()).await.unwrap();
    let mut fired = alert(10, &r, "v1", 5_000);
    // A degradation percentage that serde_json's default (fast, inexact) float parsing
    // reads back one unit in the last place off.
    fired.value = 90.422_252_909_423_83;
    fired.worst_value = fired.value;
    store.commit(vec![firing(&r, &fired, 0)]).await.unwrap();
    let read = store.alert(&fired.id).await.unwrap().unwrap();
    assert_eq!(read.value.to_bits(), fired.value.to_bits());
    let mut updated = read.clone();
    updated.occurrences += 1;
    let update = AlertCommit {
        alert: Some(AlertWriteGuarded::replace(&read, updated)),
        ..AlertCommit::default()
    };
    assert_eq!(
        store.commit(vec![update]).await.unwrap(),
        [CommitOutcome::Applied]
    );
}

/// An alert's revision counts its writes (1 on insert, one more per update, whatever
/// changed, nothing included), and an update names the revision it replaces: a stale or
/// missing one is a conflict that writes nothing of its commit, its state included.
pub async fn alert_revisions_count_writes_and_guard_updates(store: &dyn AlertStore) {
    let r = rule(1, "fraud");
    store.insert_rule(r.clone()).await.unwrap();
    let mut fired = alert(1, &r, "v1", 5_000);
    fired.revision = 0;
    let insert = AlertWriteGuarded::insert(fired);
    assert_eq!((insert.previous_revision, insert.revision()), (None, 1));
    assert_eq!(insert.alert.revision, 1);
    let mut commit = firing(&r, &insert.alert, 0);
    commit.alert = Some(insert);
    assert_eq!(
        store.commit(vec![commit]).await.unwrap(),
        [CommitOutcome::Applied]
    );
    let read = store.alert(&AlertId::from_u32(1)).await.unwrap().unwrap();
    assert_eq!(read.revision, 1);

    // An update that changes nothing is a write all the same.
    let same = AlertWriteGuarded::replace(&read, read.clone());
    assert_eq!((same.previous_revision, same.revision()), (Some(1), 2));
    let update = |write: AlertWriteGuarded| AlertCommit {
        alert: Some(write),
        ..AlertCommit::default()
    };
    assert_eq!(
        store.commit(vec![update(same.clone())]).await.unwrap(),
        [CommitOutcome::Applied]
    );
    let mut acknowledged = same.alert.clone();
    acknowledged.status = AlertStatus::Acknowledged;
    acknowledged.acknowledged_by = Some("ana".into());
    let acknowledged = AlertWriteGuarded::replace(&same.alert, acknowledged);
    assert_eq!(
        store
            .commit(vec![update(acknowledged.clone())])
            .await
            .unwrap(),
        [CommitOutcome::Applied]
    );
    let stored = store.alert(&read.id).await.unwrap().unwrap();
    assert_eq!(stored, acknowledged.alert);
    assert_eq!(stored.revision, 3);
    assert_eq!(
        store.list_alerts(&AlertFilter::default()).await.unwrap(),
        std::slice::from_ref(&stored)
    );
    assert_eq!(
        store
            .alerts_by_id(std::slice::from_ref(&read.id))
            .await
            .unwrap(),
        std::slice::from_ref(&stored)
    );
    assert_eq!(
        store.open_alerts(None).await.unwrap(),
        std::slice::from_ref(&stored)
    );

    // A stale update, with a state write whose own guard holds, a history record and a
    // notification: nothing of it is written.
    let mut stale = read.clone();
    stale.occurrences = 9;
    let mut commit = state_step(&r, "v1", 1);
    commit.alert = Some(AlertWriteGuarded::replace(&read, stale));
    commit.transition = Some(created(&read));
    commit.notifications = notifications(&read, NotificationEvent::Resolved);
    let missing = AlertWriteGuarded {
        previous_revision: Some(1),
        alert: alert(2, &r, "v1", 5_000),
    };
    assert_eq!(
        store.commit(vec![commit, update(missing)]).await.unwrap(),
        [CommitOutcome::Conflict, CommitOutcome::Conflict]
    );
    assert_eq!(store.alert(&read.id).await.unwrap(), Some(stored));
    assert_eq!(store.alert(&AlertId::from_u32(2)).await.unwrap(), None);
    assert_eq!(store.history(&read.id).await.unwrap(), [created(&read)]);
    let states = store.states(None).await.unwrap();
    assert_eq!(states[0].state.revision, 1);
    assert_eq!(states[0].state.consecutive_breaches, 3);
    let queued = store
        .list_notifications(&NotificationFilter::default())
        .await
        .unwrap();
    assert!(queued.iter().all(|n| n.event == NotificationEvent::Firing));
}

/// Two handles on one store (two servers on one file or database) race on the same rule
/// state and the same alert, round after round: each time exactly one write lands, and
/// the revisions count exactly the writes that did.
pub async fn writers_on_two_handles_never_both_win(
    store: Arc<dyn AlertStore>,
    other: Arc<dyn AlertStore>,
) {
    let r = rule(1, "fraud");
    store.insert_rule(r.clone()).await.unwrap();
    let (first, second) = (alert(1, &r, "v1", 5_000), alert(2, &r, "v1", 5_000));
    let (a, b) = tokio::join!(
        store.commit(vec![firing(&r, &first, 0)]),
        other.commit(vec![firing(&r, &second, 0)]),
    );
    let outcomes = [a.unwrap(), b.unwrap()].concat();
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == CommitOutcome::Applied)
            .count(),
        1,
        "{outcomes:?}"
    );
    let winner = if outcomes[0] == CommitOutcome::Applied {
        &first
    } else {
        &second
    };
    let open = store.open_alerts(None).await.unwrap();
    assert_eq!(open, std::slice::from_ref(winner));

    for round in 0..10u32 {
        let (read, read_other) = tokio::join!(store.alert(&winner.id), other.alert(&winner.id));
        let (read, read_other) = (read.unwrap().unwrap(), read_other.unwrap().unwrap());
        assert_eq!(read, read_other);
        assert_eq!(read.revision, u64::from(round) + 1);
        let step = |by: &Alert, occurrences: u32| AlertCommit {
            alert: Some(AlertWriteGuarded::replace(
                by,
                Alert {
                    occurrences,
                    ..by.clone()
                },
            )),
            ..AlertCommit::default()
        };
        let (a, b) = tokio::join!(
            store.commit(vec![step(&read, 100 + round)]),
            other.commit(vec![step(&read_other, 200 + round)]),
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_ne!(a, b, "round {round}: exactly one update lands");
        let landed = if a == [CommitOutcome::Applied] {
            100 + round
        } else {
            200 + round
        };
        let stored = other.alert(&winner.id).await.unwrap().unwrap();
        assert_eq!(
            (stored.occurrences, stored.revision),
            (landed, u64::from(round) + 2)
        );
    }
}

/// A store with a bit of everything: two rules, a fired and acknowledged alert with its
/// history, a second alert, a silence, outbox rows delivered, failed, leased and pending.
async fn populated() -> crate::MemoryStore {
    let store = crate::MemoryStore::new();
    let (a, b) = (rule(1, "fraud"), rule(2, "churn"));
    store.insert_rule(a.clone()).await.unwrap();
    store.insert_rule(b.clone()).await.unwrap();
    let first = alert(10, &a, "v1", 5_000);
    let second = alert(11, &b, "v2", 6_000);
    let outcomes = store
        .commit(vec![firing(&a, &first, 0), firing(&b, &second, 0)])
        .await
        .unwrap();
    assert_eq!(outcomes, [CommitOutcome::Applied, CommitOutcome::Applied]);
    let mut acked = first.clone();
    acked.status = AlertStatus::Acknowledged;
    acked.acknowledged_by = Some("ana".into());
    acked.acknowledged_at = Some(at(7_000));
    let ack = AlertCommit {
        alert: Some(AlertWriteGuarded::replace(&first, acked.clone())),
        transition: Some(AlertTransition {
            alert_id: first.id.clone(),
            at: at(7_000),
            by: "ana".into(),
            from: Some(AlertStatus::Active),
            to: AlertStatus::Acknowledged,
            notes: Some("looking".into()),
        }),
        notifications: notifications(&acked, NotificationEvent::Acknowledged),
        ..AlertCommit::default()
    };
    assert_eq!(
        store.commit(vec![ack]).await.unwrap(),
        [CommitOutcome::Applied]
    );
    store
        .insert_silence(Silence {
            id: SilenceId::from_u32(3),
            model: model("fraud"),
            version: None,
            metric: Some(Metric::parse("accuracy").unwrap()),
            starts_at: at(1_000),
            ends_at: at(90_000),
            created_by: "bo".into(),
            comment: "retraining".into(),
            created_at: at(1_000),
        })
        .await
        .unwrap();
    let claimed = store
        .claim_notifications(
            "w1",
            at(8_000),
            Duration::from_secs(60),
            ClaimChannels::ANY,
            3,
        )
        .await
        .unwrap();
    let (delivered, failed) = (claimed[0].id, claimed[1].id);
    let finished = [
        (delivered, DeliveryResult::Delivered),
        (
            failed,
            DeliveryResult::Failed {
                error: "410 gone".into(),
                sent: true,
            },
        ),
    ];
    for (id, result) in finished {
        assert!(store
            .finish_notification(id, "w1", result, at(8_500))
            .await
            .unwrap());
    }
    store
}

/// What `modelwatch migrate` relies on: every row comes across as it was (ids, status,
/// attempts and leases of the outbox included), and importing again changes nothing.
pub async fn exported_rows_import_as_they_are_and_only_once(store: &dyn AlertStore) {
    let rows = populated().await.export_alerting().await.unwrap();
    let counts: Vec<u64> = rows.counts().iter().map(|(_, n)| *n).collect();
    assert_eq!(counts, [2, 2, 2, 3, 1, 6], "{rows:#?}");
    let statuses: Vec<DeliveryStatus> = rows.notifications.iter().map(|n| n.status).collect();
    assert!(statuses.contains(&DeliveryStatus::Delivered));
    assert!(statuses.contains(&DeliveryStatus::Failed));
    assert!(rows.notifications.iter().any(|n| n.lease_owner.is_some()));
    // Finishing times come across too (retention ages rows by them).
    for n in &rows.notifications {
        let expected = (n.status != DeliveryStatus::Pending).then(|| at(8_500));
        assert_eq!(n.finished_at, expected, "{n:?}");
    }

    store.import_alerting(rows.clone()).await.unwrap();
    assert_eq!(store.export_alerting().await.unwrap(), rows);
    store.import_alerting(rows.clone()).await.unwrap();
    assert_eq!(store.export_alerting().await.unwrap(), rows);

    // New rows continue after the imported ids, and the imported state guards commits.
    let a = store.rule(&RuleId::from_u32(1)).await.unwrap().unwrap();
    let third = alert(12, &a, "v3", 9_000);
    assert_eq!(
        store.commit(vec![firing(&a, &third, 0)]).await.unwrap(),
        [CommitOutcome::Applied]
    );
    let stale = alert(13, &a, "v1", 9_000);
    assert_eq!(
        store.commit(vec![firing(&a, &stale, 0)]).await.unwrap(),
        [CommitOutcome::Conflict]
    );
    let outbox = store
        .list_notifications(&NotificationFilter::default())
        .await
        .unwrap();
    let greatest_imported = rows.notifications.iter().map(|n| n.id).max().unwrap();
    assert_eq!(outbox.len(), 8);
    assert!(outbox[6].id > greatest_imported, "{outbox:#?}");
}

macro_rules! alert_conformance_suite {
    ($backend:ident, $make:expr) => {
        mod $backend {
            use super::*;
            alert_conformance_suite!(@cases $make;
                rules_round_trip_update_and_delete,
                each_dataset_of_a_rule_keeps_its_own_state,
                commit_writes_state_alert_history_and_outbox_together,
                stale_revision_or_changed_alert_is_a_conflict_and_writes_nothing,
                state_of_a_deleted_rule_is_not_written,
                guards_within_one_call_see_the_commits_before_them,
                outbox_deduplicates_on_its_key,
                alerts_are_listed_filtered_and_newest_first,
                open_labels_and_resolved_counts_match_the_listing,
                silences_round_trip_and_expire,
                claims_lease_rows_and_only_the_holder_finishes_them,
                only_sends_count_as_attempts_and_claims_take_channels,
                exported_rows_import_as_they_are_and_only_once,
                skipped_rows_are_kept_apart_from_failures,
                recent_notifications_are_newest_first_filtered_and_limited,
                an_alert_read_back_guards_its_own_update,
                finished_notifications_before_a_cutoff_are_deleted,
                alert_revisions_count_writes_and_guard_updates,
            );
            alert_conformance_suite!(@pairs $make;
                writers_on_two_handles_never_both_win,
            );
        }
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let fixture: AlertFixture = $make.await;
                super::$case(&*fixture.store).await;
            }
        )*
    };
    (@pairs $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let fixture: AlertFixture = $make.await;
                super::$case(fixture.store, fixture.other).await;
            }
        )*
    };
}

alert_conformance_suite!(memory, async {
    let store: Arc<dyn AlertStore> = Arc::new(crate::MemoryStore::new());
    AlertFixture {
        other: Arc::clone(&store),
        store,
        _guard: Box::new(()),
    }
});

alert_conformance_suite!(sqlite, async {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alerts.db");
    let store = crate::SqliteStore::open(&path).await.unwrap();
    let other = crate::SqliteStore::open(&path).await.unwrap();
    AlertFixture {
        store: Arc::new(store),
        other: Arc::new(other),
        _guard: Box::new(dir),
    }
});

alert_conformance_suite!(postgres, async {
    let database = crate::postgres::testing::TestDatabase::create("alerts").await;
    let store = crate::PostgresStore::open(database.url()).await.unwrap();
    let other = crate::PostgresStore::open(database.url()).await.unwrap();
    AlertFixture {
        store: Arc::new(store),
        other: Arc::new(other),
        _guard: Box::new(database),
    }
});
