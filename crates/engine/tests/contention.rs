//! A pass whose writes keep losing races reports what it did commit, and names the rule ×
//! versions it left for the next pass, instead of failing and losing the alerts that
//! exist.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use modelwatch_core::alerting::{
    Alert, AlertConfig, AlertFilter, AlertId, AlertTransition, Rule, RuleId, RuleSpec, Silence,
    SilenceId,
};
use modelwatch_core::{ModelName, Sample, SeriesKey, Timestamp, Version};
use modelwatch_engine::evaluation::TargetKey;
use modelwatch_engine::{Engine, SequentialIds};
use modelwatch_store::alerts::{
    AlertCommit, AlertStore, AlertingRows, ClaimChannels, CommitOutcome, DeliveryResult,
    Notification, NotificationFilter, StoredState,
};
use modelwatch_store::{MemoryStore, MetricStore, StoreError, Stores};

/// The memory store, except that every commit for version `v2` loses its race while
/// `contended` is set.
#[derive(Debug)]
struct Contended {
    inner: Arc<MemoryStore>,
    contended: AtomicBool,
}

#[async_trait]
impl AlertStore for Contended {
    async fn insert_rule(&self, rule: Rule) -> Result<(), StoreError> {
        self.inner.insert_rule(rule).await
    }
    async fn update_rule(&self, rule: Rule) -> Result<(), StoreError> {
        self.inner.update_rule(rule).await
    }
    async fn delete_rule(&self, id: &RuleId) -> Result<bool, StoreError> {
        self.inner.delete_rule(id).await
    }
    async fn rule(&self, id: &RuleId) -> Result<Option<Rule>, StoreError> {
        self.inner.rule(id).await
    }
    async fn list_rules(&self, model: Option<&ModelName>) -> Result<Vec<Rule>, StoreError> {
        self.inner.list_rules(model).await
    }
    async fn states(&self, model: Option<&ModelName>) -> Result<Vec<StoredState>, StoreError> {
        self.inner.states(model).await
    }
    async fn commit(&self, commits: Vec<AlertCommit>) -> Result<Vec<CommitOutcome>, StoreError> {
        let contended = self.contended.load(Ordering::SeqCst);
        let lose = |c: &AlertCommit| {
            contended && c.state.as_ref().is_some_and(|s| s.version.as_str() == "v2")
        };
        let mut outcomes = Vec::new();
        for commit in commits {
            if lose(&commit) {
                outcomes.push(CommitOutcome::Conflict);
            } else {
                outcomes.extend(self.inner.commit(vec![commit]).await?);
            }
        }
        Ok(outcomes)
    }
    async fn alert(&self, id: &AlertId) -> Result<Option<Alert>, StoreError> {
        self.inner.alert(id).await
    }
    async fn alerts_by_id(&self, ids: &[AlertId]) -> Result<Vec<Alert>, StoreError> {
        self.inner.alerts_by_id(ids).await
    }
    async fn list_alerts(&self, filter: &AlertFilter) -> Result<Vec<Alert>, StoreError> {
        self.inner.list_alerts(filter).await
    }
    async fn open_alerts(&self, model: Option<&ModelName>) -> Result<Vec<Alert>, StoreError> {
        self.inner.open_alerts(model).await
    }
    async fn history(&self, id: &AlertId) -> Result<Vec<AlertTransition>, StoreError> {
        self.inner.history(id).await
    }
    async fn notified_since(
        &self,
        since: Timestamp,
    ) -> Result<Vec<(ModelName, Timestamp)>, StoreError> {
        self.inner.notified_since(since).await
    }
    async fn insert_silence(&self, silence: Silence) -> Result<(), StoreError> {
        self.inner.insert_silence(silence).await
    }
    async fn update_silence(&self, silence: Silence) -> Result<(), StoreError> {
        self.inner.update_silence(silence).await
    }
    async fn silence(&self, id: &SilenceId) -> Result<Option<Silence>, StoreError> {
        self.inner.silence(id).await
    }
    async fn list_silences(
        &self,
        ends_after: Option<Timestamp>,
    ) -> Result<Vec<Silence>, StoreError> {
        self.inner.list_silences(ends_after).await
    }
    async fn claim_notifications(
        &self,
        owner: &str,
        now: Timestamp,
        lease: Duration,
        channels: ClaimChannels<'_>,
        limit: usize,
    ) -> Result<Vec<Notification>, StoreError> {
        self.inner
            .claim_notifications(owner, now, lease, channels, limit)
            .await
    }
    async fn finish_notification(
        &self,
        id: i64,
        owner: &str,
        result: DeliveryResult,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.inner.finish_notification(id, owner, result, now).await
    }
    async fn list_notifications(
        &self,
        filter: &NotificationFilter,
    ) -> Result<Vec<Notification>, StoreError> {
        self.inner.list_notifications(filter).await
    }
    async fn recent_notifications(
        &self,
        filter: &NotificationFilter,
        limit: usize,
    ) -> Result<Vec<Notification>, StoreError> {
        self.inner.recent_notifications(filter, limit).await
    }
    async fn delete_finished_notifications(&self, cutoff: Timestamp) -> Result<u64, StoreError> {
        self.inner.delete_finished_notifications(cutoff).await
    }
    async fn import_alerting(&self, rows: AlertingRows) -> Result<(), StoreError> {
        self.inner.import_alerting(rows).await
    }
}

fn at(minute: i64) -> Timestamp {
    Timestamp::from_millis(1_700_000_000_000 + minute * 60_000).unwrap()
}

#[tokio::test]
async fn a_contended_pass_reports_what_it_committed_and_what_it_left() {
    let memory = Arc::new(MemoryStore::new());
    let store = Arc::new(Contended {
        inner: Arc::clone(&memory),
        contended: AtomicBool::new(true),
    });
    let stores = Stores {
        metrics: memory.clone(),
        alerts: store.clone(),
        tokens: memory.clone(),
        predictions: memory.clone(),
    };
    let engine =
        Engine::new(&stores, AlertConfig::default()).with_ids(Arc::new(SequentialIds::default()));
    let spec = RuleSpec {
        name: "low".into(),
        model: "fraud".into(),
        metric: "accuracy".into(),
        threshold_value: Some(0.9),
        comparison_operator: Some("lt".into()),
        severity: Some("high".into()),
        for_evaluations: Some(1),
        notify_channels: Some(vec!["ops".into()]),
        ..RuleSpec::default()
    };
    let rule = engine.create_rule(spec, at(0)).await.unwrap();
    for version in ["v1", "v2"] {
        let key = SeriesKey::parse("fraud", version, "accuracy").unwrap();
        memory
            .append(vec![Sample {
                model: key.model,
                version: key.version,
                metric: key.metric,
                value: 0.5,
                timestamp: at(1),
                dataset: None,
            }])
            .await
            .unwrap();
    }

    let report = engine.evaluate_all(at(1)).await.unwrap();
    // v1's alert exists and is reported; v2 lost every round and waits for the next pass.
    let [alert] = &report.alerts_created[..] else {
        panic!("{report:#?}")
    };
    assert_eq!(alert.version.as_str(), "v1");
    assert_eq!(
        report.contended,
        [TargetKey {
            rule_id: rule.id.clone(),
            version: Version::parse("v2").unwrap(),
            dataset: None,
        }]
    );
    assert_eq!(report.conflicts, 5);

    store.contended.store(false, Ordering::SeqCst);
    let next = engine.evaluate_all(at(2)).await.unwrap();
    let [alert] = &next.alerts_created[..] else {
        panic!("{next:#?}")
    };
    assert_eq!(alert.version.as_str(), "v2");
    assert!(next.contended.is_empty());
}
