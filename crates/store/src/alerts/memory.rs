//! The in-memory alert store: every table a map behind one mutex, so a commit is atomic
//! simply by holding the lock for all of it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use modelwatch_core::alerting::{
    Alert, AlertFilter, AlertId, AlertTransition, Rule, RuleId, Silence, SilenceId,
};
use modelwatch_core::{Dataset, ModelName, Timestamp, Version};

use super::{
    lease_end, newest_first, AlertCommit, AlertStore, AlertingRows, ClaimChannels, CommitOutcome,
    DeliveryResult, DeliveryStatus, Notification, NotificationFilter, StoredState,
};
use crate::{MemoryStore, StoreError};

#[derive(Debug, Default)]
pub(crate) struct Tables {
    rules: BTreeMap<RuleId, Rule>,
    states: BTreeMap<(RuleId, Version, Option<Dataset>), StoredState>,
    alerts: HashMap<AlertId, Alert>,
    history: HashMap<AlertId, Vec<AlertTransition>>,
    silences: BTreeMap<SilenceId, Silence>,
    outbox: Vec<Notification>,
    outbox_keys: HashMap<String, usize>,
}

impl Tables {
    fn guards_hold(&self, commit: &AlertCommit) -> bool {
        if let Some(write) = &commit.state {
            if !self.rules.contains_key(&write.rule_id) {
                // Deleted while being evaluated: nothing to record against.
                return false;
            }
            let revision = self
                .states
                .get(&(
                    write.rule_id.clone(),
                    write.version.clone(),
                    write.dataset.clone(),
                ))
                .map_or(0, |s| s.state.revision);
            if revision != write.previous_revision {
                return false;
            }
        }
        if let Some(write) = &commit.alert {
            let stored = self.alerts.get(&write.alert.id).map(|a| a.revision);
            if stored != write.previous_revision {
                return false;
            }
        }
        true
    }

    fn apply(&mut self, commit: AlertCommit) {
        if let Some(write) = commit.state {
            let key = (
                write.rule_id.clone(),
                write.version.clone(),
                write.dataset.clone(),
            );
            self.states.insert(
                key,
                StoredState {
                    rule_id: write.rule_id,
                    model: write.model,
                    version: write.version,
                    dataset: write.dataset,
                    state: write.next,
                },
            );
        }
        if let Some(write) = commit.alert {
            let revision = write.revision();
            let mut alert = write.alert;
            alert.revision = revision;
            self.alerts.insert(alert.id.clone(), alert);
        }
        if let Some(transition) = commit.transition {
            self.history
                .entry(transition.alert_id.clone())
                .or_default()
                .push(transition);
        }
        for entry in commit.notifications {
            if self.outbox_keys.contains_key(&entry.dedup_key) {
                continue;
            }
            // Kept in id order (imports included), so the last row has the greatest id.
            let id = self.outbox.last().map_or(1, |n| n.id.saturating_add(1));
            self.outbox_keys
                .insert(entry.dedup_key.clone(), self.outbox.len());
            self.outbox.push(Notification::from_new(id, &entry));
        }
    }
}

fn poisoned<T>(_: T) -> StoreError {
    StoreError::Database("a thread panicked while holding the in-memory alert store".into())
}

fn not_found(kind: &'static str, id: impl ToString) -> StoreError {
    StoreError::NotFound {
        kind,
        id: id.to_string(),
    }
}

impl MemoryStore {
    fn tables(&self) -> Result<std::sync::MutexGuard<'_, Tables>, StoreError> {
        self.alerting.lock().map_err(poisoned)
    }
}

#[async_trait]
impl AlertStore for MemoryStore {
    async fn insert_rule(&self, rule: Rule) -> Result<(), StoreError> {
        let mut tables = self.tables()?;
        if tables.rules.contains_key(&rule.id) {
            return Err(StoreError::AlreadyExists {
                kind: "rule",
                id: rule.id.to_string(),
            });
        }
        tables.rules.insert(rule.id.clone(), rule);
        Ok(())
    }

    async fn update_rule(&self, rule: Rule) -> Result<(), StoreError> {
        let mut tables = self.tables()?;
        match tables.rules.get_mut(&rule.id) {
            Some(stored) => {
                *stored = rule;
                Ok(())
            }
            None => Err(not_found("rule", &rule.id)),
        }
    }

    async fn delete_rule(&self, id: &RuleId) -> Result<bool, StoreError> {
        let mut tables = self.tables()?;
        tables.states.retain(|(rule_id, _, _), _| rule_id != id);
        Ok(tables.rules.remove(id).is_some())
    }

    async fn rule(&self, id: &RuleId) -> Result<Option<Rule>, StoreError> {
        Ok(self.tables()?.rules.get(id).cloned())
    }

    async fn list_rules(&self, model: Option<&ModelName>) -> Result<Vec<Rule>, StoreError> {
        let tables = self.tables()?;
        let mut rules: Vec<Rule> = tables
            .rules
            .values()
            .filter(|r| model.is_none_or(|m| *m == r.model))
            .cloned()
            .collect();
        rules.sort_by(|a, b| a.model.cmp(&b.model).then_with(|| a.id.cmp(&b.id)));
        Ok(rules)
    }

    async fn states(&self, model: Option<&ModelName>) -> Result<Vec<StoredState>, StoreError> {
        Ok(self
            .tables()?
            .states
            .values()
            .filter(|s| model.is_none_or(|m| *m == s.model))
            .cloned()
            .collect())
    }

    async fn commit(&self, commits: Vec<AlertCommit>) -> Result<Vec<CommitOutcome>, StoreError> {
        let mut tables = self.tables()?;
        let mut outcomes = Vec::with_capacity(commits.len());
        for commit in commits {
            if tables.guards_hold(&commit) {
                tables.apply(commit);
                outcomes.push(CommitOutcome::Applied);
            } else {
                outcomes.push(CommitOutcome::Conflict);
            }
        }
        Ok(outcomes)
    }

    async fn alert(&self, id: &AlertId) -> Result<Option<Alert>, StoreError> {
        Ok(self.tables()?.alerts.get(id).cloned())
    }

    async fn alerts_by_id(&self, ids: &[AlertId]) -> Result<Vec<Alert>, StoreError> {
        let tables = self.tables()?;
        Ok(ids
            .iter()
            .filter_map(|id| tables.alerts.get(id).cloned())
            .collect())
    }

    async fn list_alerts(&self, filter: &AlertFilter) -> Result<Vec<Alert>, StoreError> {
        let mut alerts: Vec<Alert> = self
            .tables()?
            .alerts
            .values()
            .filter(|a| filter.matches(a))
            .cloned()
            .collect();
        newest_first(&mut alerts);
        Ok(alerts)
    }

    async fn open_alerts(&self, model: Option<&ModelName>) -> Result<Vec<Alert>, StoreError> {
        let mut alerts: Vec<Alert> = self
            .tables()?
            .alerts
            .values()
            .filter(|a| a.is_open() && model.is_none_or(|m| *m == a.model))
            .cloned()
            .collect();
        newest_first(&mut alerts);
        Ok(alerts)
    }

    async fn history(&self, id: &AlertId) -> Result<Vec<AlertTransition>, StoreError> {
        Ok(self.tables()?.history.get(id).cloned().unwrap_or_default())
    }

    async fn notified_since(
        &self,
        since: Timestamp,
    ) -> Result<Vec<(ModelName, Timestamp)>, StoreError> {
        let mut found: Vec<(ModelName, Timestamp)> = self
            .tables()?
            .alerts
            .values()
            .filter(|a| a.notified && a.first_seen >= since)
            .map(|a| (a.model.clone(), a.first_seen))
            .collect();
        found.sort_by_key(|(_, at)| *at);
        Ok(found)
    }

    async fn insert_silence(&self, silence: Silence) -> Result<(), StoreError> {
        let mut tables = self.tables()?;
        if tables.silences.contains_key(&silence.id) {
            return Err(StoreError::AlreadyExists {
                kind: "silence",
                id: silence.id.to_string(),
            });
        }
        tables.silences.insert(silence.id.clone(), silence);
        Ok(())
    }

    async fn update_silence(&self, silence: Silence) -> Result<(), StoreError> {
        let mut tables = self.tables()?;
        match tables.silences.get_mut(&silence.id) {
            Some(stored) => {
                *stored = silence;
                Ok(())
            }
            None => Err(not_found("silence", &silence.id)),
        }
    }

    async fn silence(&self, id: &SilenceId) -> Result<Option<Silence>, StoreError> {
        Ok(self.tables()?.silences.get(id).cloned())
    }

    async fn list_silences(
        &self,
        ends_after: Option<Timestamp>,
    ) -> Result<Vec<Silence>, StoreError> {
        let mut silences: Vec<Silence> = self
            .tables()?
            .silences
            .values()
            .filter(|s| ends_after.is_none_or(|t| s.ends_at > t))
            .cloned()
            .collect();
        silences.sort_by(|a, b| a.starts_at.cmp(&b.starts_at).then_with(|| a.id.cmp(&b.id)));
        Ok(silences)
    }

    async fn claim_notifications(
        &self,
        owner: &str,
        now: Timestamp,
        lease: Duration,
        channels: ClaimChannels<'_>,
        limit: usize,
    ) -> Result<Vec<Notification>, StoreError> {
        let mut tables = self.tables()?;
        let mut due: Vec<usize> = (0..tables.outbox.len())
            .filter(|&i| {
                tables.outbox[i].claimable(now) && channels.matches(&tables.outbox[i].channel)
            })
            .collect();
        due.sort_by_key(|&i| (tables.outbox[i].next_attempt_at, tables.outbox[i].id));
        due.truncate(limit);
        let until = lease_end(now, lease);
        Ok(due
            .into_iter()
            .map(|i| {
                let row = &mut tables.outbox[i];
                row.lease_owner = Some(owner.to_owned());
                row.lease_until = Some(until);
                row.clone()
            })
            .collect())
    }

    async fn finish_notification(
        &self,
        id: i64,
        owner: &str,
        result: DeliveryResult,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut tables = self.tables()?;
        let Some(row) = tables.outbox.iter_mut().find(|n| n.id == id) else {
            return Err(not_found("notification", id));
        };
        let holds_lease = row.status == DeliveryStatus::Pending
            && row.lease_owner.as_deref() == Some(owner)
            && row.lease_until.is_some_and(|until| until > now);
        if !holds_lease {
            return Ok(false);
        }
        row.lease_owner = None;
        row.lease_until = None;
        if result.sent() {
            row.attempts = row.attempts.saturating_add(1);
        }
        match result {
            DeliveryResult::Delivered => {
                row.status = DeliveryStatus::Delivered;
                row.delivered_at = Some(now);
            }
            DeliveryResult::Retry {
                error, retry_at, ..
            } => {
                row.last_error = Some(error);
                row.next_attempt_at = retry_at;
            }
            DeliveryResult::Released => {}
            DeliveryResult::Failed { error, .. } => {
                row.status = DeliveryStatus::Failed;
                row.last_error = Some(error);
            }
            DeliveryResult::Skipped { reason } => {
                row.status = DeliveryStatus::Skipped;
                row.last_error = Some(reason);
            }
        }
        if row.status != DeliveryStatus::Pending {
            row.finished_at = Some(now);
        }
        Ok(true)
    }

    async fn delete_finished_notifications(&self, cutoff: Timestamp) -> Result<u64, StoreError> {
        let mut tables = self.tables()?;
        let before = tables.outbox.len();
        tables.outbox.retain(|n| {
            n.status == DeliveryStatus::Pending
                || n.finished_at.is_none_or(|finished| finished >= cutoff)
        });
        Ok((before - tables.outbox.len()) as u64)
    }

    async fn list_notifications(
        &self,
        filter: &NotificationFilter,
    ) -> Result<Vec<Notification>, StoreError> {
        Ok(self
            .tables()?
            .outbox
            .iter()
            .filter(|n| filter.matches(n))
            .cloned()
            .collect())
    }

    async fn import_alerting(&self, rows: AlertingRows) -> Result<(), StoreError> {
        let mut tables = self.tables()?;
        for rule in rows.rules {
            tables.rules.entry(rule.id.clone()).or_insert(rule);
        }
        for state in rows.states {
            let key = (
                state.rule_id.clone(),
                state.version.clone(),
                state.dataset.clone(),
            );
            tables.states.entry(key).or_insert(state);
        }
        let mut inserted = HashSet::new();
        for alert in rows.alerts {
            if !tables.alerts.contains_key(&alert.id) {
                inserted.insert(alert.id.clone());
                tables.alerts.insert(alert.id.clone(), alert);
            }
        }
        for transition in rows.transitions {
            if inserted.contains(&transition.alert_id) {
                tables
                    .history
                    .entry(transition.alert_id.clone())
                    .or_default()
                    .push(transition);
            }
        }
        for silence in rows.silences {
            tables.silences.entry(silence.id.clone()).or_insert(silence);
        }
        let ids: HashSet<i64> = tables.outbox.iter().map(|n| n.id).collect();
        for row in rows.notifications {
            if !ids.contains(&row.id) && !tables.outbox_keys.contains_key(&row.dedup_key) {
                tables.outbox_keys.insert(row.dedup_key.clone(), 0);
                tables.outbox.push(row);
            }
        }
        tables.outbox.sort_by_key(|n| n.id);
        let keys = tables
            .outbox
            .iter()
            .enumerate()
            .map(|(i, n)| (n.dedup_key.clone(), i))
            .collect();
        tables.outbox_keys = keys;
        Ok(())
    }

    async fn recent_notifications(
        &self,
        filter: &NotificationFilter,
        limit: usize,
    ) -> Result<Vec<Notification>, StoreError> {
        Ok(self
            .tables()?
            .outbox
            .iter()
            .rev()
            .filter(|n| filter.matches(n))
            .take(limit)
            .cloned()
            .collect())
    }
}
