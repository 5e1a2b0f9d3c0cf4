//! Alerting behaviour through the engine, on real stores, with an injected clock and
//! predictable ids: every test reads as a timeline of samples and evaluations.
//!
//! Each test is written once and runs on every backend — in memory, an SQLite file and a
//! fresh PostgreSQL database (created per test, dropped afterwards; the PostgreSQL cases
//! fail when the server is unreachable) — so the behaviour cannot depend on the store.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use modelwatch_core::alerting::{
    AlertConfig, AlertFilter, AlertId, AlertStatus, BacktestEventKind, Decision, EventFacts,
    HoldReason, LifecycleError, NotificationEvent, PastBreach, RulePatch, RuleSpec, Severity,
    SilenceSpec, Trigger,
};
use modelwatch_core::{
    Dataset, DatasetScope, MetricScope, ModelName, Sample, SeriesKey, TimeRange, Timestamp, Version,
};
use modelwatch_engine::{Engine, EngineError, EvaluationReport, SequentialIds};
use modelwatch_store::alerts::{DeliveryStatus, Notification, NotificationFilter, OutboxPayload};
use modelwatch_store::postgres::testing::TestDatabase;
use modelwatch_store::{MemoryStore, PostgresStore, SqliteStore, Stores};

const T0: i64 = 1_700_000_000_000;
const MINUTE: i64 = 60_000;

fn at(minute: i64) -> Timestamp {
    Timestamp::from_millis(T0 + minute * MINUTE).unwrap()
}

fn model() -> ModelName {
    ModelName::parse("fraud").unwrap()
}

fn v1() -> Version {
    Version::parse("v1").unwrap()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Memory,
    Sqlite,
    Postgres,
}

/// What keeps a test's database alive (and removes it afterwards).
#[allow(dead_code)]
enum Database {
    Memory,
    Sqlite(tempfile::TempDir),
    Postgres(TestDatabase),
}

impl Database {
    async fn create(backend: Backend) -> Database {
        match backend {
            Backend::Memory => Database::Memory,
            Backend::Sqlite => Database::Sqlite(tempfile::tempdir().unwrap()),
            Backend::Postgres => Database::Postgres(TestDatabase::create("engine").await),
        }
    }

    /// A new connection to this database: for the durable backends another process's view
    /// (its own writer thread or connection pool), serialised with ours only by the
    /// database itself. In memory there is nothing to share: each call is a new store.
    async fn open(&self) -> Stores {
        match self {
            Database::Memory => Stores::of(Arc::new(MemoryStore::new())),
            Database::Sqlite(dir) => Stores::of(Arc::new(
                SqliteStore::open(dir.path().join("a.db")).await.unwrap(),
            )),
            Database::Postgres(database) => {
                Stores::of(Arc::new(PostgresStore::open(database.url()).await.unwrap()))
            }
        }
    }
}

struct Env {
    stores: Stores,
    engine: Engine,
    database: Database,
}

impl Env {
    async fn new(backend: Backend) -> Env {
        Env::with(backend, AlertConfig::default()).await
    }

    async fn with(backend: Backend, config: AlertConfig) -> Env {
        let database = Database::create(backend).await;
        let stores = database.open().await;
        let engine = Engine::new(&stores, config).with_ids(Arc::new(SequentialIds::default()));
        Env {
            stores,
            engine,
            database,
        }
    }

    async fn record(&self, version: &str, metric: &str, value: f64, minute: i64) {
        let key = SeriesKey::parse("fraud", version, metric).unwrap();
        self.stores
            .metrics
            .append_one(Sample {
                model: key.model,
                version: key.version,
                metric: key.metric,
                value,
                timestamp: at(minute),
                dataset: None,
            })
            .await
            .unwrap();
    }

    /// Records `value` at `minute` and evaluates everything right then.
    async fn step(&self, value: f64, minute: i64) -> EvaluationReport {
        self.record("v1", "accuracy", value, minute).await;
        self.engine.evaluate_all(at(minute)).await.unwrap()
    }

    async fn rule(&self, extra: impl FnOnce(&mut RuleSpec)) -> modelwatch_core::alerting::Rule {
        let mut spec = RuleSpec {
            name: "Low accuracy".into(),
            model: "fraud".into(),
            metric: "accuracy".into(),
            threshold_value: Some(0.9),
            comparison_operator: Some("lt".into()),
            severity: Some("high".into()),
            notify_channels: Some(vec!["ops".into(), "pager".into()]),
            ..RuleSpec::default()
        };
        extra(&mut spec);
        self.engine.create_rule(spec, at(0)).await.unwrap()
    }

    async fn outbox(&self) -> Vec<Notification> {
        self.stores
            .alerts
            .list_notifications(&NotificationFilter::default())
            .await
            .unwrap()
    }

    async fn firing_notifications(&self) -> usize {
        self.outbox()
            .await
            .iter()
            .filter(|n| n.event == NotificationEvent::Firing && n.channel == "ops")
            .count()
    }

    async fn alerts(&self) -> Vec<modelwatch_core::alerting::Alert> {
        self.engine
            .list_alerts(&AlertFilter::default())
            .await
            .unwrap()
    }
}

async fn threshold_rule_fires_after_three_breaches_and_queues_one_row_per_channel(
    backend: Backend,
) {
    let env = Env::new(backend).await;
    env.rule(|_| {}).await;
    assert!(env.step(0.95, 1).await.alerts_created.is_empty());
    assert!(env.step(0.85, 2).await.alerts_created.is_empty());
    let pending = env.step(0.84, 3).await;
    assert!(matches!(
        pending.evaluations[0].decision,
        Decision::Pending {
            breaches: 2,
            needed: 3
        }
    ));
    let fired = env.step(0.83, 4).await;
    assert_eq!(fired.alerts_created.len(), 1);
    let alert = &fired.alerts_created[0];
    // Ids come from the injected source: rule 1, then one drawn per evaluation.
    assert_eq!(alert.id.as_str(), "alert_00000005");
    assert_eq!(alert.status, AlertStatus::Active);
    assert_eq!(alert.severity, Severity::High);
    assert_eq!(alert.first_seen, at(4));
    assert!(alert.notified);
    let outbox = env.outbox().await;
    assert_eq!(
        outbox
            .iter()
            .map(|n| n.channel.as_str())
            .collect::<Vec<_>>(),
        ["ops", "pager"]
    );
    assert!(outbox
        .iter()
        .all(|n| n.status == DeliveryStatus::Pending && n.alert_id == alert.id));
    // Each row carries the facts of the alert as it fired, typed, for the worker to
    // render the stored alert as of the event.
    assert!(outbox.iter().all(|n| n.event == NotificationEvent::Firing
        && n.payload == OutboxPayload::Facts(EventFacts::of(alert))));
}

async fn breaches_fold_into_the_open_alert_and_evaluating_again_changes_nothing(backend: Backend) {
    let env = Env::new(backend).await;
    env.rule(|_| {}).await;
    for minute in 1..=3 {
        env.step(0.8, minute).await;
    }
    for minute in 4..=10 {
        assert!(env
            .step(0.7 - minute as f64 / 100.0, minute)
            .await
            .alerts_created
            .is_empty());
    }
    let alerts = env.alerts().await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].occurrences, 8);
    assert!((alerts[0].worst_value - 0.6).abs() < 1e-9);
    assert_eq!(env.firing_notifications().await, 1);

    let before = env.stores.alerts.states(None).await.unwrap();
    let again = env.engine.evaluate_all(at(11)).await.unwrap();
    assert!(matches!(
        again.evaluations[0].decision,
        Decision::AlreadyCounted { .. }
    ));
    assert_eq!(env.stores.alerts.states(None).await.unwrap(), before);
    assert_eq!(env.alerts().await, alerts);
}

async fn resolved_alert_is_followed_by_a_cooldown(backend: Backend) {
    let env = Env::new(backend).await;
    env.rule(|spec| spec.cooldown_minutes = Some(30)).await;
    for minute in 1..=3 {
        env.step(0.8, minute).await;
    }
    let first = env.alerts().await[0].id.clone();
    env.engine
        .resolve(&first, "ana", Some("retrained"), at(5))
        .await
        .unwrap();
    for minute in 6..=34 {
        let report = env.step(0.8, minute).await;
        assert!(report.alerts_created.is_empty(), "minute {minute}");
    }
    let report = env.step(0.8, 35).await;
    assert_eq!(report.alerts_created.len(), 1, "cooldown over at minute 35");
    assert_ne!(report.alerts_created[0].id, first);
    assert_eq!(env.firing_notifications().await, 2);
}

async fn a_signal_crossing_the_threshold_50_times_notifies_at_most_twice_with_defaults(
    backend: Backend,
) {
    let env = Env::new(backend).await;
    env.rule(|spec| spec.auto_resolve = Some(true)).await;
    // Alternates around the threshold: 50 crossings downwards.
    for minute in 0..100 {
        let value = if minute % 2 == 0 { 0.85 } else { 0.95 };
        env.step(value, minute).await;
    }
    assert!(env.firing_notifications().await <= 2);
    assert!(env.alerts().await.len() <= 2);
}

async fn hysteresis_keeps_the_alert_open_between_the_lines_and_auto_resolves_as_modelwatch(
    backend: Backend,
) {
    let env = Env::new(backend).await;
    env.rule(|spec| {
        spec.clear_threshold = Some(0.93);
        spec.auto_resolve = Some(true);
        spec.for_evaluations = Some(1);
        spec.clear_after_evaluations = Some(2);
    })
    .await;
    assert_eq!(env.step(0.85, 1).await.alerts_created.len(), 1);
    let id = env.alerts().await[0].id.clone();
    // Above the firing line but below the clearing line: holds.
    for minute in 2..=5 {
        let report = env.step(0.91, minute).await;
        assert!(matches!(
            report.evaluations[0].decision,
            Decision::Holding { .. }
        ));
    }
    env.step(0.95, 6).await;
    let report = env.step(0.95, 7).await;
    assert!(matches!(
        report.evaluations[0].decision,
        Decision::AutoResolved { .. }
    ));
    let alert = env.engine.alert(&id).await.unwrap();
    assert_eq!(alert.status, AlertStatus::Resolved);
    assert_eq!(alert.resolved_by.as_deref(), Some("modelwatch"));
    assert_eq!(alert.resolved_at, Some(at(7)));
    // The pass reports the alert it resolved, so the server can publish the change.
    assert_eq!(report.alerts_updated, vec![alert.clone()]);
    let events: Vec<_> = env
        .outbox()
        .await
        .iter()
        .filter(|n| n.channel == "ops")
        .map(|n| n.event)
        .collect();
    assert_eq!(
        events,
        [NotificationEvent::Firing, NotificationEvent::Resolved]
    );
    let history = env.engine.history(&id).await.unwrap();
    assert_eq!(
        history.iter().map(|t| (t.from, t.to)).collect::<Vec<_>>(),
        [
            (None, AlertStatus::Active),
            (Some(AlertStatus::Active), AlertStatus::Resolved)
        ]
    );
}

async fn fire_rules(env: &Env, versions: &[&str], minute: i64) -> EvaluationReport {
    for version in versions {
        env.record(version, "accuracy", 0.5, minute).await;
    }
    env.engine.evaluate_all(at(minute)).await.unwrap()
}

async fn global_rate_limit_suppresses_and_counts_the_excess(backend: Backend) {
    let env = Env::with(
        backend,
        AlertConfig {
            max_alerts_per_hour: 2,
            max_alerts_per_model_per_hour: 100,
            ..AlertConfig::default()
        },
    )
    .await;
    env.rule(|spec| spec.for_evaluations = Some(1)).await;
    let report = fire_rules(&env, &["v1", "v2", "v3", "v4"], 1).await;
    assert_eq!(report.alerts_created.len(), 4);
    let statuses: Vec<AlertStatus> = report.alerts_created.iter().map(|a| a.status).collect();
    assert_eq!(
        statuses,
        [
            AlertStatus::Active,
            AlertStatus::Active,
            AlertStatus::Suppressed,
            AlertStatus::Suppressed
        ]
    );
    assert_eq!(
        report.alerts_created[2].hold_reason,
        Some(HoldReason::MaxAlertsPerHour { limit: 2 })
    );
    assert_eq!(env.firing_notifications().await, 2);
    let summary = env.engine.summary(None, Some(24.0), at(2)).await.unwrap();
    assert_eq!((summary.active_count, summary.suppressed_count), (2, 2));
    assert_eq!(summary.high_count, 4);

    // An hour later the window has room again.
    env.engine
        .resolve(&report.alerts_created[0].id, "ana", None, at(5))
        .await
        .unwrap();
    let env2_report = fire_rules(&env, &["v5"], 62).await;
    assert_eq!(env2_report.alerts_created[0].status, AlertStatus::Active);
}

async fn per_model_rate_limit_suppresses_only_that_model(backend: Backend) {
    let env = Env::with(
        backend,
        AlertConfig {
            max_alerts_per_hour: 100,
            max_alerts_per_model_per_hour: 1,
            ..AlertConfig::default()
        },
    )
    .await;
    env.rule(|spec| spec.for_evaluations = Some(1)).await;
    let report = fire_rules(&env, &["v1", "v2"], 1).await;
    assert_eq!(report.alerts_created[0].status, AlertStatus::Active);
    assert_eq!(report.alerts_created[1].status, AlertStatus::Suppressed);
    assert_eq!(
        report.alerts_created[1].hold_reason,
        Some(HoldReason::MaxAlertsPerModelPerHour { limit: 1 })
    );
    // A suppressed alert cannot be acknowledged, only resolved (closed), and still counts.
    let suppressed = &report.alerts_created[1].id;
    assert!(matches!(
        env.engine.acknowledge(suppressed, "ana", at(2)).await,
        Err(EngineError::Lifecycle(
            LifecycleError::SuppressedNotAcknowledgeable(_)
        ))
    ));
    let closed = env
        .engine
        .resolve(suppressed, "ana", None, at(2))
        .await
        .unwrap();
    assert_eq!(closed.status, AlertStatus::Suppressed);
    assert_eq!(
        env.engine
            .summary(None, Some(1.0), at(3))
            .await
            .unwrap()
            .suppressed_count,
        1
    );
}

async fn disabled_alerts_and_low_severity_are_recorded_but_not_queued(backend: Backend) {
    let off = Env::with(
        backend,
        AlertConfig {
            enable_alerts: false,
            ..AlertConfig::default()
        },
    )
    .await;
    off.rule(|spec| spec.for_evaluations = Some(1)).await;
    let report = off.step(0.5, 1).await;
    assert_eq!(report.alerts_created[0].status, AlertStatus::Suppressed);
    assert!(off.outbox().await.is_empty());

    let env = Env::new(backend).await;
    env.rule(|spec| {
        spec.for_evaluations = Some(1);
        spec.severity = Some("low".into());
    })
    .await;
    let report = env.step(0.5, 1).await;
    let alert = &report.alerts_created[0];
    assert_eq!(alert.status, AlertStatus::Active);
    assert!(!alert.notified);
    assert!(matches!(
        alert.hold_reason,
        Some(HoldReason::BelowMinSeverity { .. })
    ));
    assert!(env.outbox().await.is_empty());
}

async fn silence_mutes_notifications_but_alerts_are_still_recorded(backend: Backend) {
    let env = Env::new(backend).await;
    env.rule(|spec| spec.for_evaluations = Some(1)).await;
    let silence = env
        .engine
        .add_silence(
            SilenceSpec {
                model: "fraud".into(),
                version: Some("v1".into()),
                duration_minutes: Some(60),
                created_by: "ana".into(),
                comment: "retraining".into(),
                ..SilenceSpec::default()
            },
            at(0),
        )
        .await
        .unwrap();
    let report = env.step(0.5, 1).await;
    assert_eq!(report.alerts_created.len(), 1);
    assert!(matches!(
        report.alerts_created[0].hold_reason,
        Some(HoldReason::Silenced { .. })
    ));
    assert!(env.outbox().await.is_empty());
    assert_eq!(
        env.engine.list_silences(false, at(2)).await.unwrap().len(),
        1
    );

    // Expired early: the still-open alert's firing is notified on the next breach.
    env.engine
        .expire_silence(&silence.id, at(10))
        .await
        .unwrap();
    assert!(env
        .engine
        .list_silences(false, at(11))
        .await
        .unwrap()
        .is_empty());
    env.step(0.5, 11).await;
    assert_eq!(env.firing_notifications().await, 1);
}

async fn lifecycle_transitions_are_kept_and_impossible_ones_refused(backend: Backend) {
    let env = Env::new(backend).await;
    env.rule(|spec| spec.for_evaluations = Some(1)).await;
    let id = env.step(0.5, 1).await.alerts_created[0].id.clone();

    assert!(matches!(
        env.engine.acknowledge(&id, "  ", at(2)).await,
        Err(EngineError::Lifecycle(LifecycleError::MissingActor { .. }))
    ));
    let acked = env.engine.acknowledge(&id, "ana", at(2)).await.unwrap();
    assert_eq!(acked.status, AlertStatus::Acknowledged);
    assert_eq!(acked.acknowledged_by.as_deref(), Some("ana"));
    let again = env.engine.acknowledge(&id, "bo", at(3)).await.unwrap_err();
    assert!(
        again.to_string().contains("already acknowledged (by ana"),
        "{again}"
    );

    // Acknowledged: further breaches do not notify.
    env.step(0.4, 4).await;
    assert_eq!(env.firing_notifications().await, 1);

    let resolved = env
        .engine
        .resolve(&id, "bo", Some("rolled back"), at(5))
        .await
        .unwrap();
    assert_eq!(resolved.status, AlertStatus::Resolved);
    assert_eq!(resolved.resolution_notes.as_deref(), Some("rolled back"));
    let error = env
        .engine
        .resolve(&id, "bo", None, at(6))
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("already resolved (by bo"),
        "{error}"
    );
    assert!(matches!(
        env.engine.acknowledge(&id, "ana", at(6)).await,
        Err(EngineError::Lifecycle(
            LifecycleError::AlreadyResolved { .. }
        ))
    ));
    let unknown = AlertId::from_u32(0xdead_beef);
    assert_eq!(
        env.engine
            .resolve(&unknown, "bo", None, at(6))
            .await
            .unwrap_err()
            .to_string(),
        "no alert has id alert_deadbeef"
    );

    let history = env.engine.history(&id).await.unwrap();
    let steps: Vec<_> = history
        .iter()
        .map(|t| (t.by.as_str(), t.from, t.to, t.notes.as_deref()))
        .collect();
    assert_eq!(
        steps[1],
        (
            "ana",
            Some(AlertStatus::Active),
            AlertStatus::Acknowledged,
            None
        )
    );
    assert_eq!(
        steps[2],
        (
            "bo",
            Some(AlertStatus::Acknowledged),
            AlertStatus::Resolved,
            Some("rolled back")
        )
    );
    assert_eq!(history[1].at, at(2));
    let events: Vec<_> = env
        .outbox()
        .await
        .iter()
        .filter(|n| n.channel == "ops")
        .map(|n| n.event)
        .collect();
    assert_eq!(
        events,
        [
            NotificationEvent::Firing,
            NotificationEvent::Acknowledged,
            NotificationEvent::Resolved
        ]
    );
}

async fn acknowledged_alert_is_renotified_only_when_its_severity_rises(backend: Backend) {
    let env = Env::new(backend).await;
    let rule = env
        .rule(|spec| {
            spec.for_evaluations = Some(1);
            spec.severity = Some("medium".into());
        })
        .await;
    let id = env.step(0.5, 1).await.alerts_created[0].id.clone();
    env.engine.acknowledge(&id, "ana", at(2)).await.unwrap();
    env.step(0.5, 3).await;
    assert_eq!(env.firing_notifications().await, 1);
    env.engine
        .update_rule(
            &rule.id,
            RulePatch {
                severity: Some("critical".into()),
                ..RulePatch::default()
            },
            at(4),
        )
        .await
        .unwrap();
    let report = env.step(0.5, 5).await;
    assert!(matches!(
        report.evaluations[0].decision,
        Decision::Updated {
            severity_rose: Some((Severity::Medium, Severity::Critical)),
            ..
        }
    ));
    assert_eq!(env.firing_notifications().await, 2);
    let alert = env.engine.alert(&id).await.unwrap();
    assert_eq!(alert.severity, Severity::Critical);
    assert_eq!(alert.status, AlertStatus::Acknowledged);
}

async fn rules_for_all_versions_evaluate_each_version_on_its_own(backend: Backend) {
    let env = Env::new(backend).await;
    env.rule(|spec| spec.for_evaluations = Some(2)).await;
    env.record("v2", "accuracy", 0.5, 1).await;
    env.record("v1", "accuracy", 0.5, 1).await;
    env.engine.evaluate_all(at(1)).await.unwrap();
    env.record("v2", "accuracy", 0.5, 2).await;
    env.record("v1", "accuracy", 0.95, 2).await;
    let report = env
        .engine
        .evaluate_model(&model(), &Version::parse("v2").unwrap(), at(2))
        .await
        .unwrap();
    assert_eq!(report.alerts_created.len(), 1);
    assert_eq!(report.alerts_created[0].version.as_str(), "v2");
    assert_eq!(report.evaluations.len(), 1, "only v2 was asked for");
    let report = env
        .engine
        .evaluate_model(&model(), &v1(), at(2))
        .await
        .unwrap();
    assert!(report.alerts_created.is_empty());
}

async fn invalid_rules_are_refused_with_the_field_named(backend: Backend) {
    let env = Env::new(backend).await;
    let spec = RuleSpec {
        name: "x".into(),
        model: "fraud".into(),
        metric: "accuracy".into(),
        threshold_value: Some(0.9),
        comparison_operator: Some("below".into()),
        ..RuleSpec::default()
    };
    let error = env.engine.create_rule(spec, at(0)).await.unwrap_err();
    assert!(error.to_string().contains("comparison_operator"), "{error}");
    assert!(env.engine.list_rules(None).await.unwrap().is_empty());
}

async fn disabled_and_deleted_rules_do_not_evaluate(backend: Backend) {
    let env = Env::new(backend).await;
    let rule = env.rule(|spec| spec.for_evaluations = Some(1)).await;
    env.engine
        .set_rule_enabled(&rule.id, false, at(0))
        .await
        .unwrap();
    assert!(env.step(0.5, 1).await.evaluations.is_empty());
    env.engine
        .set_rule_enabled(&rule.id, true, at(1))
        .await
        .unwrap();
    assert_eq!(env.step(0.5, 2).await.alerts_created.len(), 1);
    env.engine.delete_rule(&rule.id).await.unwrap();
    assert!(env.step(0.5, 3).await.evaluations.is_empty());
    assert!(matches!(
        env.engine.delete_rule(&rule.id).await,
        Err(EngineError::UnknownRule(_))
    ));
    assert_eq!(env.alerts().await.len(), 1, "alerts outlive their rule");
}

async fn degradation_rule_fires_on_a_significant_drop(backend: Backend) {
    let env = Env::new(backend).await;
    env.engine
        .create_rule(
            RuleSpec {
                name: "Accuracy drop".into(),
                model: "fraud".into(),
                metric: "accuracy".into(),
                max_degradation_percentage: Some(5.0),
                baseline_window_hours: Some(2),
                comparison: Some("latest".into()),
                for_evaluations: Some(2),
                notify_channels: Some(vec!["ops".into()]),
                ..RuleSpec::default()
            },
            at(0),
        )
        .await
        .unwrap();
    // Two hours of a steady 0.95 with a little noise, then 0.80.
    for minute in 0..120 {
        let noise = if minute % 2 == 0 { 0.002 } else { -0.002 };
        env.record("v1", "accuracy", 0.95 + noise, minute).await;
    }
    assert!(env
        .engine
        .evaluate_all(at(119))
        .await
        .unwrap()
        .alerts_created
        .is_empty());
    env.step(0.80, 120).await;
    let report = env.step(0.80, 121).await;
    assert_eq!(report.alerts_created.len(), 1);
    let alert = &report.alerts_created[0];
    assert!(alert.value > 10.0, "degradation percentage {}", alert.value);
    assert!(alert.message.contains("degraded"), "{}", alert.message);
    // The detector's test rides on the alert and into the outbox row's facts, where the
    // notification worker reads the p-value from.
    let Trigger::Degradation {
        test: Some(test), ..
    } = &alert.trigger
    else {
        panic!("no significance test on {:?}", alert.trigger);
    };
    let p_value = test.p_value.expect("a p-value");
    assert!(
        p_value < test.alpha,
        "p {p_value} not below alpha {}",
        test.alpha
    );
    assert!(
        !test.method.is_empty() && test.method != "none",
        "{}",
        test.method
    );
    let outbox = env.outbox().await;
    assert_eq!(outbox.len(), 1);
    let OutboxPayload::Facts(facts) = &outbox[0].payload else {
        panic!("{:?}", outbox[0].payload);
    };
    assert_eq!(facts.trigger, alert.trigger);
}

/// The same samples, evaluated live after each one, and backtested afterwards.
async fn live_and_backtest_agree(env: &Env, values: &[f64]) {
    let mut fired_live = Vec::new();
    let mut resolved_live = Vec::new();
    for (minute, value) in values.iter().enumerate() {
        let minute = minute as i64;
        let report = env.step(*value, minute).await;
        for evaluation in &report.evaluations {
            match evaluation.decision {
                Decision::Fired { .. } => fired_live.push(at(minute)),
                Decision::AutoResolved { .. } => resolved_live.push(at(minute)),
                _ => {}
            }
        }
    }
    let rule = &env.engine.list_rules(None).await.unwrap()[0];
    let replay = env
        .engine
        .backtest(&rule.id, TimeRange::new(at(0), at(values.len() as i64)))
        .await
        .unwrap();
    let events = &replay.versions[0].events;
    let fired: Vec<_> = events
        .iter()
        .filter(|e| matches!(e.kind, BacktestEventKind::Fired { .. }))
        .map(|e| e.at)
        .collect();
    let resolved: Vec<_> = events
        .iter()
        .filter(|e| matches!(e.kind, BacktestEventKind::AutoResolved))
        .map(|e| e.at)
        .collect();
    assert_eq!(fired, fired_live);
    assert_eq!(resolved, resolved_live);
    assert!(!fired.is_empty());
    assert_eq!(replay.versions[0].samples, values.len());
}

async fn backtest_agrees_with_live_evaluation(backend: Backend) {
    let env = Env::new(backend).await;
    env.rule(|spec| {
        spec.auto_resolve = Some(true);
        spec.cooldown_minutes = Some(5);
    })
    .await;
    let values: Vec<f64> = (0..80)
        .map(|i| match i % 20 {
            0..=7 => 0.8,
            8..=9 => 0.92,
            10 => 0.85,
            _ => 0.95,
        })
        .collect();
    live_and_backtest_agree(&env, &values).await;
    // The backtest wrote nothing.
    let alerts_before = env.alerts().await;
    let rule = &env.engine.list_rules(None).await.unwrap()[0];
    env.engine
        .backtest(&rule.id, TimeRange::new(at(0), at(80)))
        .await
        .unwrap();
    assert_eq!(env.alerts().await, alerts_before);
}

async fn an_unsaved_rule_backtests_as_the_same_rule_saved_and_stores_nothing(backend: Backend) {
    let env = Env::new(backend).await;
    for minute in 0..40 {
        let value = if (10..20).contains(&minute) {
            0.8
        } else {
            0.95
        };
        env.record("v1", "accuracy", value, minute).await;
    }
    let spec = RuleSpec {
        name: "Low accuracy".into(),
        model: "fraud".into(),
        version: Some("v1".into()),
        metric: "accuracy".into(),
        threshold_value: Some(0.9),
        comparison_operator: Some("lt".into()),
        auto_resolve: Some(true),
        ..RuleSpec::default()
    };
    let range = TimeRange::new(at(0), at(40));
    let unsaved = env
        .engine
        .backtest_spec(spec.clone(), range, at(40))
        .await
        .unwrap();
    assert!(env.engine.list_rules(None).await.unwrap().is_empty());
    assert!(env.alerts().await.is_empty());
    let saved = env.engine.create_rule(spec.clone(), at(40)).await.unwrap();
    let replay = env.engine.backtest(&saved.id, range).await.unwrap();
    assert_eq!(unsaved.versions, replay.versions);
    assert!(unsaved.versions[0]
        .events
        .iter()
        .any(|e| matches!(e.kind, BacktestEventKind::Fired { .. })));

    let invalid = RuleSpec {
        comparison_operator: Some("about".into()),
        ..spec
    };
    let error = env
        .engine
        .backtest_spec(invalid, range, at(40))
        .await
        .unwrap_err();
    assert!(matches!(error, EngineError::Invalid(_)), "{error:?}");
}

async fn degradation_backtest_agrees_with_live_evaluation(backend: Backend) {
    let env = Env::new(backend).await;
    env.engine
        .create_rule(
            RuleSpec {
                name: "drop".into(),
                model: "fraud".into(),
                metric: "accuracy".into(),
                max_degradation_percentage: Some(5.0),
                baseline_window_hours: Some(1),
                comparison: Some("latest".into()),
                auto_resolve: Some(true),
                cooldown_minutes: Some(0),
                ..RuleSpec::default()
            },
            at(0),
        )
        .await
        .unwrap();
    let values: Vec<f64> = (0..200)
        .map(|i| {
            let noise = [0.003, -0.002, 0.001, -0.003][i % 4];
            (if (90..110).contains(&i) { 0.8 } else { 0.95 }) + noise
        })
        .collect();
    live_and_backtest_agree(&env, &values).await;
}

/// Accuracy around 0.9 with deterministic noise of sd 0.01, 0.03 lower from minute 300.
fn shifted_accuracy(count: usize) -> Vec<f64> {
    let mut state = 7u64;
    (0..count)
        .map(|i| {
            let mut uniform = || {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
            };
            let (u1, u2) = (uniform(), uniform());
            let noise = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            0.9 + 0.01 * noise - if i >= 300 { 0.03 } else { 0.0 }
        })
        .collect()
}

fn change_point_spec() -> RuleSpec {
    RuleSpec {
        name: "accuracy shift".into(),
        model: "fraud".into(),
        metric: "accuracy".into(),
        condition_type: Some("change_point".into()),
        notify_channels: Some(vec!["ops".into()]),
        ..RuleSpec::default()
    }
}

/// The alert's change-point trigger: when the shift began and its size in noise units.
fn change_of(alert: &modelwatch_core::alerting::Alert) -> (Timestamp, f64) {
    match alert.trigger {
        Trigger::ChangePoint {
            change_started_at,
            shift_sd,
            ..
        } => (change_started_at, shift_sd),
        ref other => panic!("{other:?}"),
    }
}

async fn change_point_rule_fires_live_where_the_backtest_says(backend: Backend) {
    let env = Env::new(backend).await;
    env.engine
        .create_rule(change_point_spec(), at(0))
        .await
        .unwrap();
    let values = shifted_accuracy(400);
    live_and_backtest_agree(&env, &values).await;
    let alerts = env.alerts().await;
    let [alert] = &alerts[..] else {
        panic!("{alerts:#?}")
    };
    assert_eq!(alert.first_seen, at(306));
    let (started, shift_sd) = change_of(alert);
    assert_eq!(started, at(300));
    assert!((shift_sd + 3.0).abs() < 1.0, "{shift_sd}");
    assert_eq!(env.firing_notifications().await, 1);
    // The detector's state is stored with the rule's state.
    let state = &env.stores.alerts.states(None).await.unwrap()[0].state;
    let detector = state.detail.change_point.as_ref().unwrap();
    assert_eq!(detector.last_at, Some(at(399)));
}

/// The durable backends: the detector's state goes through the database. Minutes are
/// evaluated by two servers in turn (each its own connection), then by a third after a
/// restart; the alert is the one a single evaluator and the backtest give.
async fn change_point_state_survives_restarts_and_moves_between_servers(backend: Backend) {
    let env = Env::new(backend).await;
    let rule = env
        .engine
        .create_rule(change_point_spec(), at(0))
        .await
        .unwrap();
    let other = env.database.open().await;
    let second =
        Engine::new(&other, AlertConfig::default()).with_ids(Arc::new(SequentialIds::after(1_000)));
    let values = shifted_accuracy(400);
    for (minute, value) in values.iter().enumerate().take(301) {
        env.record("v1", "accuracy", *value, minute as i64).await;
        let engine = if minute % 2 == 0 {
            &env.engine
        } else {
            &second
        };
        engine.evaluate_all(at(minute as i64)).await.unwrap();
    }
    other.close().await.unwrap();
    // A restart mid-change: a new connection, a new engine.
    let restarted = env.database.open().await;
    let third = Engine::new(&restarted, AlertConfig::default())
        .with_ids(Arc::new(SequentialIds::after(2_000)));
    for (minute, value) in values.iter().enumerate().skip(301) {
        env.record("v1", "accuracy", *value, minute as i64).await;
        third.evaluate_all(at(minute as i64)).await.unwrap();
    }
    let alerts = env.alerts().await;
    let [alert] = &alerts[..] else {
        panic!("{alerts:#?}")
    };
    assert_eq!(alert.first_seen, at(306));
    assert_eq!(change_of(alert).0, at(300));
    let replay = env
        .engine
        .backtest(&rule.id, TimeRange::new(at(0), at(400)))
        .await
        .unwrap();
    let fired: Vec<_> = replay.versions[0]
        .events
        .iter()
        .filter(|e| matches!(e.kind, BacktestEventKind::Fired { .. }))
        .map(|e| (e.at, e.change_started_at))
        .collect();
    assert_eq!(fired, [(at(306), Some(at(300)))]);
    restarted.close().await.unwrap();
}

fn no_data_spec() -> RuleSpec {
    RuleSpec {
        name: "fraud silent".into(),
        model: "fraud".into(),
        metric: "accuracy".into(),
        no_data_intervals: Some(5.0),
        notify_channels: Some(vec!["ops".into()]),
        ..RuleSpec::default()
    }
}

/// A series reporting every minute stops after minute 60: passes without new samples
/// (the injected clock moving on) fire the rule once the silence reaches five usual
/// intervals, once; data coming back resolves it; the backtest dates the same silence.
async fn a_silent_series_fires_on_passes_without_samples_and_resolves_when_data_returns(
    backend: Backend,
) {
    let env = Env::new(backend).await;
    let rule = env.engine.create_rule(no_data_spec(), at(0)).await.unwrap();
    for minute in 0..=60 {
        env.step(0.95, minute).await;
    }
    for minute in 61..65 {
        let report = env.engine.evaluate_all(at(minute)).await.unwrap();
        assert!(report.alerts_created.is_empty(), "{minute}: {report:#?}");
    }
    let report = env.engine.evaluate_all(at(65)).await.unwrap();
    let [alert] = &report.alerts_created[..] else {
        panic!("{report:#?}")
    };
    assert_eq!(alert.first_seen, at(65));
    assert!(
        alert
            .message
            .contains("no data for 5 min (usual interval 1 min)"),
        "{}",
        alert.message
    );
    assert!(matches!(
        alert.trigger,
        Trigger::NoData { last_sample_at, .. } if last_sample_at == at(60)
    ));
    // Later passes while still silent change nothing and page nobody again.
    for minute in [66, 80, 120] {
        let report = env.engine.evaluate_all(at(minute)).await.unwrap();
        assert!(report.alerts_created.is_empty() && report.alerts_updated.is_empty());
    }
    assert_eq!(env.firing_notifications().await, 1);
    // Data returns at 130: resolved then, by modelwatch.
    let report = env.step(0.95, 130).await;
    let [resolved] = &report.alerts_updated[..] else {
        panic!("{report:#?}")
    };
    assert_eq!(resolved.status, AlertStatus::Resolved);
    assert_eq!(resolved.resolved_at, Some(at(130)));
    assert!(env.engine.open_alerts(None).await.unwrap().is_empty());
    // The backtest over the same history fires at the limit and resolves with the data.
    let replay = env
        .engine
        .backtest(&rule.id, TimeRange::new(at(0), at(131)))
        .await
        .unwrap();
    let events: Vec<_> = replay.versions[0]
        .events
        .iter()
        .map(|e| (e.at, e.kind))
        .collect();
    assert_eq!(
        events,
        [
            (
                at(65),
                BacktestEventKind::Fired {
                    severity: Severity::Medium
                }
            ),
            (at(130), BacktestEventKind::AutoResolved)
        ]
    );
}

/// The usual interval lives in the rule's state: a second server and a restarted one
/// judge the silence as the first would have.
async fn no_data_state_moves_between_servers(backend: Backend) {
    let env = Env::new(backend).await;
    env.engine.create_rule(no_data_spec(), at(0)).await.unwrap();
    for minute in 0..=30 {
        env.step(0.95, minute).await;
    }
    let other = env.database.open().await;
    let second =
        Engine::new(&other, AlertConfig::default()).with_ids(Arc::new(SequentialIds::after(1_000)));
    assert!(second
        .evaluate_all(at(34))
        .await
        .unwrap()
        .alerts_created
        .is_empty());
    let report = second.evaluate_all(at(36)).await.unwrap();
    assert_eq!(report.alerts_created.len(), 1, "{report:#?}");
    assert_eq!(report.alerts_created[0].first_seen, at(36));
    assert!(env
        .engine
        .evaluate_all(at(37))
        .await
        .unwrap()
        .alerts_created
        .is_empty());
    other.close().await.unwrap();
}

/// A no-data rule on `*` watches the whole version: while latency still reports, the
/// version is not silent although accuracy stopped; once both stop, it fires at the last
/// sample plus the limit, names the metrics seen last, is not muted by a silence of one
/// metric, resolves at the first sample back, and the backtest replays the same merge.
async fn a_silent_version_fires_only_when_every_metric_stops(backend: Backend) {
    let env = Env::new(backend).await;
    let rule = env
        .engine
        .create_rule(
            RuleSpec {
                name: "fraud silent".into(),
                model: "fraud".into(),
                metric: "*".into(),
                no_data_minutes: Some(10.0),
                notify_channels: Some(vec!["ops".into()]),
                ..RuleSpec::default()
            },
            at(0),
        )
        .await
        .unwrap();
    assert_eq!(rule.metric, MetricScope::Every);
    // A silence of accuracy alone says nothing about the version.
    env.engine
        .add_silence(
            SilenceSpec {
                model: "fraud".into(),
                metric: Some("accuracy".into()),
                duration_minutes: Some(24 * 60),
                created_by: "ana".into(),
                comment: "accuracy job paused".into(),
                ..SilenceSpec::default()
            },
            at(0),
        )
        .await
        .unwrap();
    for minute in 0..=60 {
        env.record("v1", "accuracy", 0.95, minute).await;
        env.record("v1", "latency", 120.0, minute).await;
        env.engine.evaluate_all(at(minute)).await.unwrap();
    }
    // Accuracy stops at 60; latency goes on until 90.
    for minute in 61..=90 {
        env.record("v1", "latency", 120.0, minute).await;
        let report = env.engine.evaluate_all(at(minute)).await.unwrap();
        assert!(report.alerts_created.is_empty(), "{minute}: {report:#?}");
    }
    for minute in 91..100 {
        let report = env.engine.evaluate_all(at(minute)).await.unwrap();
        assert!(report.alerts_created.is_empty(), "{minute}: {report:#?}");
    }
    let report = env.engine.evaluate_all(at(100)).await.unwrap();
    let [alert] = &report.alerts_created[..] else {
        panic!("{report:#?}")
    };
    assert_eq!(alert.first_seen, at(100));
    assert_eq!(alert.metric, MetricScope::Every);
    assert_eq!(alert.hold_reason, None);
    let Trigger::NoData {
        last_sample_at,
        last_samples,
        ..
    } = &alert.trigger
    else {
        panic!("{:?}", alert.trigger)
    };
    assert_eq!(*last_sample_at, at(90));
    let seen: Vec<(&str, Timestamp)> = last_samples
        .iter()
        .map(|s| (s.metric.as_str(), s.at))
        .collect();
    assert_eq!(seen, [("latency", at(90)), ("accuracy", at(60))]);
    assert!(
        alert.message.contains("fraud/v1 (every metric)"),
        "{}",
        alert.message
    );
    assert_eq!(env.firing_notifications().await, 1);
    for minute in [101, 110] {
        let report = env.engine.evaluate_all(at(minute)).await.unwrap();
        assert!(report.alerts_created.is_empty() && report.alerts_updated.is_empty());
    }
    // Accuracy comes back at 120: the version reports again.
    env.record("v1", "accuracy", 0.95, 120).await;
    let report = env.engine.evaluate_all(at(120)).await.unwrap();
    let [resolved] = &report.alerts_updated[..] else {
        panic!("{report:#?}")
    };
    assert_eq!(resolved.resolved_at, Some(at(120)));
    // The backtest merges the same samples: one version, fired at 100, resolved at 120.
    let replay = env
        .engine
        .backtest(&rule.id, TimeRange::new(at(0), at(121)))
        .await
        .unwrap();
    assert_eq!(replay.versions.len(), 1);
    let events: Vec<_> = replay.versions[0]
        .events
        .iter()
        .map(|e| (e.at, e.kind))
        .collect();
    assert_eq!(
        events,
        [
            (
                at(100),
                BacktestEventKind::Fired {
                    severity: Severity::Medium
                }
            ),
            (at(120), BacktestEventKind::AutoResolved)
        ]
    );
}

/// Samples of v1's accuracy at `minutes`, `value(minute)` each, written in one batch.
async fn import(env: &Env, minutes: std::ops::Range<i64>, value: impl Fn(i64) -> f64) {
    let key = SeriesKey::parse("fraud", "v1", "accuracy").unwrap();
    let samples = minutes
        .map(|minute| Sample {
            model: key.model.clone(),
            version: key.version.clone(),
            metric: key.metric.clone(),
            value: value(minute),
            timestamp: at(minute),
            dataset: None,
        })
        .collect();
    env.stores.metrics.append(samples).await.unwrap();
}

/// Passes at `now` until no samples are left to count.
async fn evaluate_until_counted(env: &Env, now: Timestamp) -> Vec<EvaluationReport> {
    let mut reports = Vec::new();
    loop {
        let report = env.engine.evaluate_all(now).await.unwrap();
        let done = !report.backlog;
        reports.push(report);
        if done || reports.len() > 100 {
            return reports;
        }
    }
}

async fn an_imported_day_fires_now_where_the_backtest_says(backend: Backend) {
    let env = Env::new(backend).await;
    let rule = env.rule(|_| {}).await;
    // Ten healthy hours, then twenty minutes of breach, all imported at once.
    import(&env, 0..600, |minute| if minute < 580 { 0.95 } else { 0.8 }).await;
    let report = env.engine.evaluate_all(at(600)).await.unwrap();
    assert_eq!(report.evaluations.len(), 1);
    assert_eq!(report.evaluations[0].counted, 600);
    assert!(!report.backlog);
    let [alert] = &report.alerts_created[..] else {
        panic!("{report:#?}")
    };
    // Fired now, with every breaching sample of the import folded in.
    assert_eq!(alert.first_seen, at(600));
    assert_eq!(alert.occurrences, 18);
    assert_eq!(env.firing_notifications().await, 1);
    let backtest = env
        .engine
        .backtest(&rule.id, TimeRange::new(at(0), at(600)))
        .await
        .unwrap();
    let fired: Vec<_> = backtest.versions[0]
        .events
        .iter()
        .filter(|e| matches!(e.kind, BacktestEventKind::Fired { .. }))
        .map(|e| e.at)
        .collect();
    assert_eq!(fired, [at(582)]);
    assert_eq!(
        env.stores.alerts.states(None).await.unwrap()[0]
            .state
            .last_observed_at,
        Some(at(599))
    );
}

async fn a_backlog_pages_only_inside_the_horizon_and_records_the_rest(backend: Backend) {
    let env = Env::new(backend).await;
    env.rule(|_| {}).await;
    env.step(0.95, 0).await;
    // Three days arrive at once: a breach on the first day that ended long ago, and one
    // still going on at the end.
    let day = 24 * 60;
    import(&env, 1..3 * day, |minute| {
        if (100..200).contains(&minute) || minute >= 3 * day - 10 {
            0.8
        } else {
            0.95
        }
    })
    .await;
    let reports = evaluate_until_counted(&env, at(3 * day)).await;
    // Read a day at a time: three passes.
    assert_eq!(reports.len(), 3);
    let created: Vec<_> = reports.iter().flat_map(|r| &r.alerts_created).collect();
    let [alert] = &created[..] else {
        panic!("{created:#?}")
    };
    assert_eq!(alert.first_seen, at(3 * day));
    let past: Vec<_> = reports
        .iter()
        .flat_map(|r| &r.past_breaches)
        .map(|b| (b.would_have_fired_at, b.value))
        .collect();
    assert_eq!(past, [(at(102), Some(0.8))]);
    // Only the alert of the breach still going on notifies.
    assert_eq!(env.outbox().await.len(), 2);
    assert!(env.outbox().await.iter().all(|n| n.alert_id == alert.id));
    let state = &env.stores.alerts.states(None).await.unwrap()[0].state;
    assert_eq!(state.last_observed_at, Some(at(3 * day - 1)));
    assert_eq!(
        state.detail.past_breaches,
        [PastBreach {
            would_have_fired_at: at(102),
            value: Some(0.8),
            cleared_at: Some(at(202)),
            alert_id: None
        }]
    );
    let counted: usize = reports
        .iter()
        .flat_map(|r| &r.evaluations)
        .map(|e| e.counted)
        .sum();
    assert_eq!(counted, 3 * day as usize - 1);
}

async fn two_evaluators_race(first: Engine, second: Engine, env: &Env) {
    env.rule(|spec| spec.for_evaluations = Some(1)).await;
    for round in 0..20 {
        env.record("v1", "accuracy", 0.5, round).await;
        let (a, b) = tokio::join!(
            first.evaluate_all(at(round)),
            second.evaluate_all(at(round))
        );
        a.unwrap();
        b.unwrap();
    }
    let alerts = env.alerts().await;
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0].occurrences, 20, "each sample counted once");
    assert_eq!(env.firing_notifications().await, 1);
}

async fn two_concurrent_evaluators_create_no_duplicate_alert(backend: Backend) {
    let env = Env::new(backend).await;
    let first = Engine::new(&env.stores, AlertConfig::default())
        .with_ids(Arc::new(SequentialIds::after(1_000)));
    let second = Engine::new(&env.stores, AlertConfig::default())
        .with_ids(Arc::new(SequentialIds::after(2_000)));
    two_evaluators_race(first, second, &env).await;
}

/// The durable backends only: a second store on the same database stands for another
/// process (its own SQLite writer thread, or its own PostgreSQL connection pool),
/// serialised with ours by nothing but the database.
async fn two_processes_on_one_database_create_no_duplicate_alert(backend: Backend) {
    let env = Env::new(backend).await;
    let other = env.database.open().await;
    let first = Engine::new(&env.stores, AlertConfig::default())
        .with_ids(Arc::new(SequentialIds::after(1_000)));
    let second =
        Engine::new(&other, AlertConfig::default()).with_ids(Arc::new(SequentialIds::after(2_000)));
    two_evaluators_race(first, second, &env).await;
    other.close().await.unwrap();
}

async fn engine_round_trips_a_whole_lifecycle(backend: Backend) {
    let env = Env::new(backend).await;
    env.rule(|spec| spec.for_evaluations = Some(1)).await;
    let id = env.step(0.5, 1).await.alerts_created[0].id.clone();
    env.engine.acknowledge(&id, "ana", at(2)).await.unwrap();
    env.engine
        .resolve(&id, "ana", Some("ok"), at(3))
        .await
        .unwrap();
    assert_eq!(env.engine.history(&id).await.unwrap().len(), 3);
    assert_eq!(env.outbox().await.len(), 6);
    let summary = env
        .engine
        .summary(Some(&model()), Some(1.0), at(4))
        .await
        .unwrap();
    assert_eq!((summary.total_count, summary.resolved_count), (1, 1));
    // A day later the last hour has nothing; any time still has the alert.
    let day_later = at(4 + 24 * 60);
    let summary = env
        .engine
        .summary(Some(&model()), Some(1.0), day_later)
        .await;
    assert_eq!(summary.unwrap().total_count, 0);
    let summary = env.engine.summary(Some(&model()), None, day_later).await;
    assert_eq!(summary.unwrap().resolved_count, 1);
    assert!(env.engine.open_alerts(None).await.unwrap().is_empty());
}

/// The rule-level twin of the analysis' "a canary's drop is the canary's": a rule for each
/// dataset evaluates each on its own, with a state of its own, and alerts only for the
/// canary that degraded; a rule for the canary alone does too; the default dataset's rule
/// stays quiet; the backtest replays each dataset apart and agrees.
async fn each_dataset_is_evaluated_apart_and_only_the_degraded_one_alerts(backend: Backend) {
    let env = Env::new(backend).await;
    let canary = Dataset::parse("canary").unwrap();
    let each = env.rule(|s| s.dataset = Some("*".into())).await;
    let only_canary = env.rule(|s| s.dataset = Some("canary".into())).await;
    let default = env.rule(|_| {}).await;
    assert_eq!(each.dataset, DatasetScope::Each);
    assert_eq!(default.dataset, DatasetScope::One(None));
    for minute in 1..=4 {
        env.record("v1", "accuracy", 0.95, minute).await;
        let key = SeriesKey::parse("fraud", "v1", "accuracy").unwrap();
        env.stores
            .metrics
            .append_one(Sample {
                model: key.model,
                version: key.version,
                metric: key.metric,
                value: 0.80,
                timestamp: at(minute),
                dataset: Some(canary.clone()),
            })
            .await
            .unwrap();
        env.engine.evaluate_all(at(minute)).await.unwrap();
    }
    let mut fired: Vec<_> = env
        .alerts()
        .await
        .into_iter()
        .map(|a| {
            (
                a.rule_id,
                a.dataset,
                a.message.contains("on dataset canary"),
            )
        })
        .collect();
    fired.sort();
    assert_eq!(
        fired,
        [
            (each.id.clone(), Some(canary.clone()), true),
            (only_canary.id.clone(), Some(canary.clone()), true)
        ]
    );
    let mut states: Vec<_> = env
        .stores
        .alerts
        .states(None)
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.rule_id, s.dataset, s.state.alert_id.is_some()))
        .collect();
    states.sort();
    assert_eq!(
        states,
        [
            (each.id.clone(), None, false),
            (each.id.clone(), Some(canary.clone()), true),
            (only_canary.id.clone(), Some(canary.clone()), true),
            (default.id.clone(), None, false),
        ]
    );

    let range = TimeRange::new(at(0), at(5));
    let replay = env.engine.backtest(&each.id, range).await.unwrap();
    let per_dataset: Vec<_> = replay
        .versions
        .iter()
        .map(|v| (v.dataset.clone(), v.samples, v.alerts))
        .collect();
    assert_eq!(per_dataset, [(None, 4, 0), (Some(canary.clone()), 4, 1)]);
    let on_canary = env
        .engine
        .backtest_on(&default.id, range, DatasetScope::One(Some(canary.clone())))
        .await
        .unwrap();
    assert_eq!(on_canary.versions.len(), 1);
    assert_eq!(on_canary.versions[0].alerts, 1);
}

/// One `#[tokio::test]` per case, calling it with `$backend`.
macro_rules! cases {
    ($backend:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                super::$case($backend).await;
            }
        )*
    };
}

/// Every case above for one backend, plus `$extra` cases.
macro_rules! alerting_suite {
    ($backend:expr $(, $extra:ident)* $(,)?) => {
        cases!($backend;
            threshold_rule_fires_after_three_breaches_and_queues_one_row_per_channel,
            breaches_fold_into_the_open_alert_and_evaluating_again_changes_nothing,
            resolved_alert_is_followed_by_a_cooldown,
            a_signal_crossing_the_threshold_50_times_notifies_at_most_twice_with_defaults,
            hysteresis_keeps_the_alert_open_between_the_lines_and_auto_resolves_as_modelwatch,
            global_rate_limit_suppresses_and_counts_the_excess,
            per_model_rate_limit_suppresses_only_that_model,
            disabled_alerts_and_low_severity_are_recorded_but_not_queued,
            silence_mutes_notifications_but_alerts_are_still_recorded,
            lifecycle_transitions_are_kept_and_impossible_ones_refused,
            acknowledged_alert_is_renotified_only_when_its_severity_rises,
            rules_for_all_versions_evaluate_each_version_on_its_own,
            invalid_rules_are_refused_with_the_field_named,
            disabled_and_deleted_rules_do_not_evaluate,
            degradation_rule_fires_on_a_significant_drop,
            backtest_agrees_with_live_evaluation,
            degradation_backtest_agrees_with_live_evaluation,
            an_unsaved_rule_backtests_as_the_same_rule_saved_and_stores_nothing,
            two_concurrent_evaluators_create_no_duplicate_alert,
            engine_round_trips_a_whole_lifecycle,
            an_imported_day_fires_now_where_the_backtest_says,
            a_backlog_pages_only_inside_the_horizon_and_records_the_rest,
            change_point_rule_fires_live_where_the_backtest_says,
            a_silent_series_fires_on_passes_without_samples_and_resolves_when_data_returns,
            a_silent_version_fires_only_when_every_metric_stops,
            each_dataset_is_evaluated_apart_and_only_the_degraded_one_alerts,
            $($extra,)*
        );
    };
}

mod memory {
    alerting_suite!(super::Backend::Memory);
}

mod sqlite {
    alerting_suite!(
        super::Backend::Sqlite,
        two_processes_on_one_database_create_no_duplicate_alert,
        change_point_state_survives_restarts_and_moves_between_servers,
        no_data_state_moves_between_servers
    );
}

mod postgres {
    alerting_suite!(
        super::Backend::Postgres,
        two_processes_on_one_database_create_no_duplicate_alert,
        change_point_state_survives_restarts_and_moves_between_servers,
        no_data_state_moves_between_servers
    );
}
