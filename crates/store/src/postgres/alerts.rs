//! The alert store on PostgreSQL: the same tables as SQLite's schema 4 (rules and alerts
//! as the core's JSON plus the columns queries filter on).
//!
//! Several servers may share the database. An evaluation commit checks its guards
//! (the state's and the alert's revisions) and writes in one transaction holding a
//! transaction-scoped advisory lock, so commits of all processes are serialised exactly
//! as SQLite's single writer serialises them: two servers evaluating the same rule
//! cannot both open an alert — the second sees a stale revision and gets a conflict.
//! The outbox is claimed with `SELECT … FOR UPDATE SKIP LOCKED` under a lease, so
//! concurrent workers never claim one row twice and a dead worker's rows come back
//! when the lease ends.

use std::time::Duration;

use async_trait::async_trait;
use modelwatch_core::alerting::{
    Alert, AlertFilter, AlertId, AlertStatus, AlertTransition, NotificationEvent, Rule, RuleId,
    SeriesState, Severity, Silence, SilenceId,
};
use modelwatch_core::{Metric, ModelName, Timestamp, Version};
use tokio_postgres::{GenericClient, Row};

use super::{pg_error, PostgresStore};
use crate::alerts::guards::{GuardRow, StateGuards};
use crate::alerts::records::{rule_body, rule_from_body};
use crate::alerts::{
    alert_label, corrupt, lease_end, newest_first, optional_timestamp, revision_from_sql,
    revision_to_sql, severity_count, state_dataset, state_detail, stored_alert, timestamp,
    AlertCommit, AlertLabel, AlertStore, AlertValues, AlertWriteGuarded, AlertingRows,
    ClaimChannels, CommitOutcome, DeliveryResult, DeliveryStatus, Notification, NotificationFilter,
    NotificationValues, OutboxPayload, OutcomeValues, RuleValues, SilenceValues, StateValues,
    StoredState, TransitionValues, FINISHED_BEFORE, PRUNE_NOTIFICATIONS_PER_STATEMENT,
};
use crate::StoreError;

/// Advisory lock key serialising alert commits and rule deletions across processes
/// ("mwat" then 2 for "alerts").
const ALERT_COMMIT_LOCK: i64 = 0x6D77_6174_0000_0002;

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    index: usize,
) -> Result<T, StoreError> {
    row.try_get(index).map_err(pg_error)
}

fn count(value: i64) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|e| corrupt("count", e))
}

/// The rules of `body` rows.
fn read_rules(rows: &[Row]) -> Result<Vec<Rule>, StoreError> {
    rows.iter()
        .map(|row| rule_from_body(get(row, 0)?))
        .collect()
}

async fn lock_alert_commits(client: &impl GenericClient) -> Result<(), StoreError> {
    client
        .execute("SELECT pg_advisory_xact_lock($1)", &[&ALERT_COMMIT_LOCK])
        .await
        .map_err(pg_error)?;
    Ok(())
}

/// The alerts of `body, revision` rows.
fn read_alerts(rows: &[Row]) -> Result<Vec<Alert>, StoreError> {
    rows.iter()
        .map(|row| stored_alert(get(row, 0)?, get(row, 1)?))
        .collect()
}

/// Reads what the state guards of `commits` compare against, in one query for the call
/// (under the commit lock, so no other commit or rule deletion comes in between).
async fn state_guards<'a>(
    client: &impl GenericClient,
    commits: &'a [AlertCommit],
) -> Result<StateGuards<'a>, StoreError> {
    let mut indexes = Vec::new();
    let mut rule_ids = Vec::new();
    let mut versions = Vec::new();
    let mut datasets = Vec::new();
    for key in StateGuards::keys(commits) {
        indexes.push(i64::try_from(key.commit).map_err(|e| corrupt("commit index", e))?);
        rule_ids.push(key.rule_id);
        versions.push(key.version);
        datasets.push(key.dataset);
    }
    if indexes.is_empty() {
        return Ok(StateGuards::new(commits, []));
    }
    let rows = client
        .query(
            "SELECT k.idx, r.id IS NOT NULL, s.revision
             FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[])
                 AS k (idx, rule_id, version, dataset)
             LEFT JOIN alert_rules AS r ON r.id = k.rule_id
             LEFT JOIN alert_states AS s ON s.rule_id = k.rule_id
                 AND s.version = k.version AND s.dataset = k.dataset",
            &[&indexes, &rule_ids, &versions, &datasets],
        )
        .await
        .map_err(pg_error)?;
    let rows = rows
        .iter()
        .map(|row| {
            Ok(GuardRow {
                commit: usize::try_from(get::<i64>(row, 0)?)
                    .map_err(|e| corrupt("commit index", e))?,
                rule_exists: get(row, 1)?,
                revision: get::<Option<i64>>(row, 2)?.map(revision_from_sql),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(StateGuards::new(commits, rows))
}

/// Writes a commit's alert if its guard holds, and says whether it did: an insert when no
/// alert has the id, an update when the stored one has the revision the writer read.
async fn write_alert(
    client: &impl GenericClient,
    write: &AlertWriteGuarded,
) -> Result<bool, StoreError> {
    let values = AlertValues::written(write)?;
    let written = match write.previous_revision {
        None => client
            .execute(
                "INSERT INTO alerts (id, rule_id, model, version, status, severity, notified,
                     first_seen_ms, resolved_ms, body, revision)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                 ON CONFLICT (id) DO NOTHING",
                &values.pg_params(),
            )
            .await
            .map_err(pg_error)?,
        Some(previous) => client
            .execute(
                "UPDATE alerts SET status = $2, severity = $3, notified = $4, resolved_ms = $5,
                     body = $6, revision = $7
                 WHERE id = $1 AND revision = $8",
                &[
                    &values.id,
                    &values.status,
                    &values.severity,
                    &values.notified,
                    &values.resolved_ms,
                    &values.body,
                    &values.revision,
                    &revision_to_sql(previous),
                ],
            )
            .await
            .map_err(pg_error)?,
    };
    Ok(written == 1)
}

const INSERT_TRANSITION: &str =
    "INSERT INTO alert_transitions (alert_id, at_ms, by_actor, from_status, to_status, notes)
     VALUES ($1, $2, $3, $4, $5, $6)";

/// Writes `commit` if its alert guard holds (its state's was checked before), and says
/// whether it did. The alert is written first, its write being its guard, so a conflict
/// leaves nothing to roll back.
async fn apply(client: &impl GenericClient, commit: &AlertCommit) -> Result<bool, StoreError> {
    if let Some(write) = &commit.alert {
        if !write_alert(client, write).await? {
            return Ok(false);
        }
    }
    if let Some(write) = &commit.state {
        client
            .execute(
                "INSERT INTO alert_states (rule_id, version, model, consecutive_breaches,
                     consecutive_clears, alert_id, last_observed_ms, revision, detail, dataset)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (rule_id, version, dataset) DO UPDATE SET
                     model = excluded.model,
                     consecutive_breaches = excluded.consecutive_breaches,
                     consecutive_clears = excluded.consecutive_clears,
                     alert_id = excluded.alert_id,
                     last_observed_ms = excluded.last_observed_ms,
                     revision = excluded.revision,
                     detail = excluded.detail",
                &StateValues::new(
                    &write.rule_id,
                    &write.version,
                    write.dataset.as_ref(),
                    &write.model,
                    &write.next,
                )?
                .pg_params(),
            )
            .await
            .map_err(pg_error)?;
    }
    if let Some(transition) = &commit.transition {
        client
            .execute(
                INSERT_TRANSITION,
                &TransitionValues::new(transition).pg_params(),
            )
            .await
            .map_err(pg_error)?;
    }
    for entry in &commit.notifications {
        let payload = OutboxPayload::encode_facts(&entry.facts)?;
        client
            .execute(
                "INSERT INTO notification_outbox (alert_id, channel, event, severity, payload,
                     dedup_key, next_attempt_ms, created_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
                 ON CONFLICT (dedup_key) DO NOTHING",
                &[
                    &entry.alert_id.as_str(),
                    &entry.channel,
                    &entry.event.as_str(),
                    &entry.severity.as_str(),
                    &payload,
                    &entry.dedup_key,
                    &entry.created_at.as_millis(),
                ],
            )
            .await
            .map_err(pg_error)?;
    }
    Ok(true)
}

const NOTIFICATION_COLUMNS: &str = "id, alert_id, channel, event, severity, payload, dedup_key,
    status, attempts, next_attempt_ms, last_error, created_ms, delivered_ms, lease_owner,
    lease_until_ms, finished_ms";

fn notification(row: &Row) -> Result<Notification, StoreError> {
    let event_text: &str = get(row, 3)?;
    let event = [
        NotificationEvent::Firing,
        NotificationEvent::Acknowledged,
        NotificationEvent::Resolved,
    ]
    .into_iter()
    .find(|e| e.as_str() == event_text)
    .ok_or_else(|| corrupt("notification event", event_text))?;
    let status: &str = get(row, 7)?;
    Ok(Notification {
        id: get(row, 0)?,
        alert_id: AlertId::parse(get(row, 1)?).map_err(|e| corrupt("notification", e))?,
        channel: get(row, 2)?,
        event,
        severity: Severity::parse(get(row, 4)?).map_err(|e| corrupt("notification", e))?,
        payload: OutboxPayload::decode(get(row, 5)?),
        dedup_key: get(row, 6)?,
        status: DeliveryStatus::parse(status)
            .ok_or_else(|| corrupt("notification status", status))?,
        attempts: count(get(row, 8)?)?,
        next_attempt_at: timestamp(get(row, 9)?)?,
        last_error: get(row, 10)?,
        created_at: timestamp(get(row, 11)?)?,
        delivered_at: optional_timestamp(get(row, 12)?)?,
        lease_owner: get(row, 13)?,
        lease_until: optional_timestamp(get(row, 14)?)?,
        finished_at: optional_timestamp(get(row, 15)?)?,
    })
}

const SILENCE_COLUMNS: &str =
    "id, model, version, metric, starts_ms, ends_ms, created_by, comment, created_ms";

fn silence(row: &Row) -> Result<Silence, StoreError> {
    let bad = |e: modelwatch_core::ValidationError| corrupt("silence", e);
    Ok(Silence {
        id: SilenceId::parse(get(row, 0)?).map_err(bad)?,
        model: ModelName::parse(get(row, 1)?).map_err(bad)?,
        version: get::<Option<&str>>(row, 2)?
            .map(Version::parse)
            .transpose()
            .map_err(bad)?,
        metric: get::<Option<&str>>(row, 3)?
            .map(Metric::parse)
            .transpose()
            .map_err(bad)?,
        starts_at: timestamp(get(row, 4)?)?,
        ends_at: timestamp(get(row, 5)?)?,
        created_by: get(row, 6)?,
        comment: get(row, 7)?,
        created_at: timestamp(get(row, 8)?)?,
    })
}

async fn write_silence(
    store: &PostgresStore,
    silence: &Silence,
    insert: bool,
) -> Result<u64, StoreError> {
    let sql = if insert {
        "INSERT INTO silences (id, model, version, metric, starts_ms, ends_ms, created_by, comment, created_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING"
    } else {
        "UPDATE silences SET model = $2, version = $3, metric = $4, starts_ms = $5, ends_ms = $6,
             created_by = $7, comment = $8, created_ms = $9 WHERE id = $1"
    };
    let client = store.client().await?;
    client
        .execute(sql, &SilenceValues::new(silence).pg_params())
        .await
        .map_err(pg_error)
}

/// Writes exported rows as they are; rows whose key exists are left alone (see
/// [`AlertStore::import_alerting`]). One statement per row: a migration's alerting rows
/// are few next to its samples.
async fn import_rows(
    transaction: &tokio_postgres::Transaction<'_>,
    rows: &AlertingRows,
) -> Result<(), StoreError> {
    // Rule deletions and evaluation commits check rules and states under this lock.
    lock_alert_commits(transaction).await?;
    let insert = transaction
        .prepare(
            "INSERT INTO alert_rules (id, model, enabled, body) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
        )
        .await
        .map_err(pg_error)?;
    for rule in &rows.rules {
        transaction
            .execute(
                &insert,
                &RuleValues::new(rule, &rule_body(rule)?).pg_params(),
            )
            .await
            .map_err(pg_error)?;
    }
    let insert = transaction
        .prepare(
            "INSERT INTO alert_states (rule_id, version, model, consecutive_breaches,
                 consecutive_clears, alert_id, last_observed_ms, revision, detail, dataset)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
        )
        .await
        .map_err(pg_error)?;
    for stored in &rows.states {
        transaction
            .execute(
                &insert,
                &StateValues::new(
                    &stored.rule_id,
                    &stored.version,
                    stored.dataset.as_ref(),
                    &stored.model,
                    &stored.state,
                )?
                .pg_params(),
            )
            .await
            .map_err(pg_error)?;
    }
    let insert = transaction
        .prepare(
            "INSERT INTO alerts (id, rule_id, model, version, status, severity, notified,
                 first_seen_ms, resolved_ms, body, revision)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING",
        )
        .await
        .map_err(pg_error)?;
    let mut inserted = std::collections::HashSet::new();
    for alert in &rows.alerts {
        let changed = transaction
            .execute(&insert, &AlertValues::new(alert)?.pg_params())
            .await
            .map_err(pg_error)?;
        if changed > 0 {
            inserted.insert(&alert.id);
        }
    }
    let insert = transaction
        .prepare(INSERT_TRANSITION)
        .await
        .map_err(pg_error)?;
    for transition in rows
        .transitions
        .iter()
        .filter(|t| inserted.contains(&t.alert_id))
    {
        transaction
            .execute(&insert, &TransitionValues::new(transition).pg_params())
            .await
            .map_err(pg_error)?;
    }
    let insert = transaction
        .prepare(&format!(
            "INSERT INTO silences ({SILENCE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT DO NOTHING"
        ))
        .await
        .map_err(pg_error)?;
    for silence in &rows.silences {
        transaction
            .execute(&insert, &SilenceValues::new(silence).pg_params())
            .await
            .map_err(pg_error)?;
    }
    // Ids are kept (the API shows them), so the identity has to be told to continue
    // after the greatest.
    let insert = transaction
        .prepare(&format!(
            "INSERT INTO notification_outbox ({NOTIFICATION_COLUMNS}) OVERRIDING SYSTEM VALUE
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
             ON CONFLICT DO NOTHING"
        ))
        .await
        .map_err(pg_error)?;
    for n in &rows.notifications {
        transaction
            .execute(&insert, &NotificationValues::new(n)?.pg_params())
            .await
            .map_err(pg_error)?;
    }
    continue_identity_after_max(transaction, "notification_outbox").await
}

/// Makes a table's identity column continue after its greatest id (after rows were
/// inserted with their own ids).
pub(crate) async fn continue_identity_after_max(
    client: &impl GenericClient,
    table: &str,
) -> Result<(), StoreError> {
    client
        .execute(
            &format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table}
                 HAVING max(id) IS NOT NULL"
            ),
            &[],
        )
        .await
        .map_err(pg_error)?;
    Ok(())
}

#[async_trait]
impl AlertStore for PostgresStore {
    async fn close_alerting(&self) -> Result<(), StoreError> {
        crate::MetricStore::close(self).await
    }

    async fn insert_rule(&self, rule: Rule) -> Result<(), StoreError> {
        let client = self.client().await?;
        let inserted = client
            .execute(
                "INSERT INTO alert_rules (id, model, enabled, body) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (id) DO NOTHING",
                &RuleValues::new(&rule, &rule_body(&rule)?).pg_params(),
            )
            .await
            .map_err(pg_error)?;
        if inserted == 0 {
            return Err(StoreError::AlreadyExists {
                kind: "rule",
                id: rule.id.to_string(),
            });
        }
        Ok(())
    }

    async fn update_rule(&self, rule: Rule) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(pg_error)?;
        let updated = transaction
            .execute(
                "UPDATE alert_rules SET model = $2, enabled = $3, body = $4 WHERE id = $1",
                &RuleValues::new(&rule, &rule_body(&rule)?).pg_params(),
            )
            .await
            .map_err(pg_error)?;
        if updated == 0 {
            return Err(StoreError::NotFound {
                kind: "rule",
                id: rule.id.to_string(),
            });
        }
        // A rule moved to another model carries its states along.
        transaction
            .execute(
                "UPDATE alert_states SET model = $2 WHERE rule_id = $1",
                &[&rule.id.as_str(), &rule.model.as_str()],
            )
            .await
            .map_err(pg_error)?;
        transaction.commit().await.map_err(pg_error)
    }

    async fn delete_rule(&self, id: &RuleId) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(pg_error)?;
        // Not while a commit checks that the rule exists.
        lock_alert_commits(&*transaction).await?;
        transaction
            .execute(
                "DELETE FROM alert_states WHERE rule_id = $1",
                &[&id.as_str()],
            )
            .await
            .map_err(pg_error)?;
        let deleted = transaction
            .execute("DELETE FROM alert_rules WHERE id = $1", &[&id.as_str()])
            .await
            .map_err(pg_error)?;
        transaction.commit().await.map_err(pg_error)?;
        Ok(deleted > 0)
    }

    async fn rule(&self, id: &RuleId) -> Result<Option<Rule>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT body FROM alert_rules WHERE id = $1",
                &[&id.as_str()],
            )
            .await
            .map_err(pg_error)?;
        row.map(|row| rule_from_body(get(&row, 0)?)).transpose()
    }

    async fn list_rules(&self, model: Option<&ModelName>) -> Result<Vec<Rule>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT body FROM alert_rules WHERE $1::text IS NULL OR model = $1
                 ORDER BY model, id",
                &[&model.map(ModelName::as_str)],
            )
            .await
            .map_err(pg_error)?;
        read_rules(&rows)
    }

    async fn states(&self, model: Option<&ModelName>) -> Result<Vec<StoredState>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT rule_id, model, version, consecutive_breaches, consecutive_clears,
                        alert_id, last_observed_ms, revision, detail, dataset
                 FROM alert_states WHERE $1::text IS NULL OR model = $1",
                &[&model.map(ModelName::as_str)],
            )
            .await
            .map_err(pg_error)?;
        rows.iter()
            .map(|row| {
                Ok(StoredState {
                    rule_id: RuleId::parse(get(row, 0)?).map_err(|e| corrupt("state", e))?,
                    model: ModelName::parse(get(row, 1)?).map_err(|e| corrupt("state", e))?,
                    version: Version::parse(get(row, 2)?).map_err(|e| corrupt("state", e))?,
                    dataset: state_dataset(get(row, 9)?)?,
                    state: SeriesState {
                        consecutive_breaches: count(get(row, 3)?)?,
                        consecutive_clears: count(get(row, 4)?)?,
                        alert_id: get::<Option<&str>>(row, 5)?
                            .map(|id| AlertId::parse(id).map_err(|e| corrupt("state", e)))
                            .transpose()?,
                        last_observed_at: optional_timestamp(get(row, 6)?)?,
                        revision: revision_from_sql(get(row, 7)?),
                        detail: state_detail(get::<Option<&str>>(row, 8)?)?,
                    },
                })
            })
            .collect()
    }

    async fn commit(&self, commits: Vec<AlertCommit>) -> Result<Vec<CommitOutcome>, StoreError> {
        if commits.is_empty() {
            return Ok(Vec::new());
        }
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(pg_error)?;
        lock_alert_commits(&*transaction).await?;
        let mut outcomes = Vec::with_capacity(commits.len());
        let mut state_guards = state_guards(&*transaction, &commits).await?;
        for (index, commit) in commits.iter().enumerate() {
            // A conflict is found before anything of the commit is written, so it needs
            // no rollback; an SQL error fails (and rolls back) the whole call.
            if state_guards.hold(index, commit) && apply(&*transaction, commit).await? {
                state_guards.applied(commit);
                outcomes.push(CommitOutcome::Applied);
            } else {
                outcomes.push(CommitOutcome::Conflict);
            }
        }
        transaction.commit().await.map_err(pg_error)?;
        Ok(outcomes)
    }

    async fn alert(&self, id: &AlertId) -> Result<Option<Alert>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT body, revision FROM alerts WHERE id = $1",
                &[&id.as_str()],
            )
            .await
            .map_err(pg_error)?;
        row.map(|row| stored_alert(get(&row, 0)?, get(&row, 1)?))
            .transpose()
    }

    async fn alerts_by_id(&self, ids: &[AlertId]) -> Result<Vec<Alert>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = ids.iter().map(AlertId::as_str).collect();
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT body, revision FROM alerts WHERE id = ANY ($1::text[])",
                &[&ids],
            )
            .await
            .map_err(pg_error)?;
        read_alerts(&rows)
    }

    async fn list_alerts(&self, filter: &AlertFilter) -> Result<Vec<Alert>, StoreError> {
        // SQL narrows by the indexed columns; the core's filter has the final word, so
        // "alive in the window" means the same on every backend.
        let window_end = filter.window.map(|w| w.end.as_millis());
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT body, revision FROM alerts
                 WHERE ($1::text IS NULL OR model = $1) AND ($2::text IS NULL OR status = $2)
                   AND ($3::text IS NULL OR severity = $3)
                   AND ($4::bigint IS NULL OR first_seen_ms < $4)",
                &[
                    &filter.model.as_ref().map(ModelName::as_str),
                    &filter.status.map(AlertStatus::as_str),
                    &filter.severity.map(Severity::as_str),
                    &window_end,
                ],
            )
            .await
            .map_err(pg_error)?;
        let mut alerts = read_alerts(&rows)?;
        alerts.retain(|a| filter.matches(a));
        newest_first(&mut alerts);
        Ok(alerts)
    }

    async fn open_alerts(&self, model: Option<&ModelName>) -> Result<Vec<Alert>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT body, revision FROM alerts
                 WHERE resolved_ms IS NULL AND ($1::text IS NULL OR model = $1)",
                &[&model.map(ModelName::as_str)],
            )
            .await
            .map_err(pg_error)?;
        let mut alerts = read_alerts(&rows)?;
        newest_first(&mut alerts);
        Ok(alerts)
    }

    async fn open_alert_labels(&self) -> Result<Vec<AlertLabel>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, status, severity FROM alerts WHERE resolved_ms IS NULL",
                &[],
            )
            .await
            .map_err(pg_error)?;
        rows.iter()
            .map(|row| alert_label(get(row, 0)?, get(row, 1)?, get(row, 2)?))
            .collect()
    }

    async fn resolved_alert_counts(&self) -> Result<Vec<(Severity, u64)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT severity, count(*) FROM alerts WHERE status = 'resolved'
                 GROUP BY severity",
                &[],
            )
            .await
            .map_err(pg_error)?;
        rows.iter()
            .map(|row| severity_count(get(row, 0)?, get(row, 1)?))
            .collect()
    }

    async fn history(&self, id: &AlertId) -> Result<Vec<AlertTransition>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT at_ms, by_actor, from_status, to_status, notes FROM alert_transitions
                 WHERE alert_id = $1 ORDER BY id",
                &[&id.as_str()],
            )
            .await
            .map_err(pg_error)?;
        let status = |text: &str| AlertStatus::parse(text).map_err(|e| corrupt("alert status", e));
        rows.iter()
            .map(|row| {
                Ok(AlertTransition {
                    alert_id: id.clone(),
                    at: timestamp(get(row, 0)?)?,
                    by: get(row, 1)?,
                    from: get::<Option<&str>>(row, 2)?.map(status).transpose()?,
                    to: status(get(row, 3)?)?,
                    notes: get(row, 4)?,
                })
            })
            .collect()
    }

    async fn notified_since(
        &self,
        since: Timestamp,
    ) -> Result<Vec<(ModelName, Timestamp)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT model, first_seen_ms FROM alerts
                 WHERE notified AND first_seen_ms >= $1 ORDER BY first_seen_ms",
                &[&since.as_millis()],
            )
            .await
            .map_err(pg_error)?;
        rows.iter()
            .map(|row| {
                Ok((
                    ModelName::parse(get(row, 0)?).map_err(|e| corrupt("alert", e))?,
                    timestamp(get(row, 1)?)?,
                ))
            })
            .collect()
    }

    async fn insert_silence(&self, silence: Silence) -> Result<(), StoreError> {
        if write_silence(self, &silence, true).await? == 0 {
            return Err(StoreError::AlreadyExists {
                kind: "silence",
                id: silence.id.to_string(),
            });
        }
        Ok(())
    }

    async fn update_silence(&self, silence: Silence) -> Result<(), StoreError> {
        if write_silence(self, &silence, false).await? == 0 {
            return Err(StoreError::NotFound {
                kind: "silence",
                id: silence.id.to_string(),
            });
        }
        Ok(())
    }

    async fn silence(&self, id: &SilenceId) -> Result<Option<Silence>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!("SELECT {SILENCE_COLUMNS} FROM silences WHERE id = $1"),
                &[&id.as_str()],
            )
            .await
            .map_err(pg_error)?;
        row.as_ref().map(silence).transpose()
    }

    async fn list_silences(
        &self,
        ends_after: Option<Timestamp>,
    ) -> Result<Vec<Silence>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {SILENCE_COLUMNS} FROM silences
                     WHERE $1::bigint IS NULL OR ends_ms > $1 ORDER BY starts_ms, id"
                ),
                &[&ends_after.map(Timestamp::as_millis)],
            )
            .await
            .map_err(pg_error)?;
        rows.iter().map(silence).collect()
    }

    async fn claim_notifications(
        &self,
        owner: &str,
        now: Timestamp,
        lease: Duration,
        channels: ClaimChannels<'_>,
        limit: usize,
    ) -> Result<Vec<Notification>, StoreError> {
        let until = lease_end(now, lease);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let condition = match channels {
            ClaimChannels::Only(_) => "channel = $5",
            ClaimChannels::AllBut(_) => "channel <> ALL($5)",
        };
        let client = self.client().await?;
        let sql = format!(
            "UPDATE notification_outbox
             SET lease_owner = $1, lease_until_ms = $2
             WHERE id IN (
                 SELECT id FROM notification_outbox
                 WHERE status = 'pending' AND next_attempt_ms <= $3
                   AND (lease_until_ms IS NULL OR lease_until_ms <= $3)
                   AND {condition}
                 ORDER BY next_attempt_ms, id LIMIT $4
                 FOR UPDATE SKIP LOCKED)
             RETURNING {NOTIFICATION_COLUMNS}"
        );
        // SKIP LOCKED: a row another worker is claiming right now is left to it rather
        // than waited for; the statement is atomic, so no row is claimed twice.
        let rows = match channels {
            ClaimChannels::Only(channel) => {
                client
                    .query(
                        &sql,
                        &[
                            &owner,
                            &until.as_millis(),
                            &now.as_millis(),
                            &limit,
                            &channel,
                        ],
                    )
                    .await
            }
            ClaimChannels::AllBut(others) => {
                client
                    .query(
                        &sql,
                        &[
                            &owner,
                            &until.as_millis(),
                            &now.as_millis(),
                            &limit,
                            &others,
                        ],
                    )
                    .await
            }
        }
        .map_err(pg_error)?;
        let mut claimed = rows
            .iter()
            .map(notification)
            .collect::<Result<Vec<_>, _>>()?;
        claimed.sort_by_key(|n| (n.next_attempt_at, n.id));
        Ok(claimed)
    }

    async fn finish_notification(
        &self,
        id: i64,
        owner: &str,
        result: DeliveryResult,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let exists = client
            .query_opt("SELECT 1 FROM notification_outbox WHERE id = $1", &[&id])
            .await
            .map_err(pg_error)?
            .is_some();
        if !exists {
            return Err(StoreError::NotFound {
                kind: "notification",
                id: id.to_string(),
            });
        }
        let outcome = OutcomeValues::new(&result, now);
        // One statement: the lease check and the write cannot be separated by another
        // worker's claim.
        let changed = client
            .execute(
                "UPDATE notification_outbox
                 SET status = $3, last_error = coalesce($4, last_error),
                     next_attempt_ms = coalesce($5, next_attempt_ms),
                     delivered_ms = $6, finished_ms = $8, attempts = attempts + $9,
                     lease_owner = NULL, lease_until_ms = NULL
                 WHERE id = $1 AND status = 'pending' AND lease_owner = $2
                   AND lease_until_ms > $7",
                &[
                    &id,
                    &owner,
                    &outcome.status,
                    &outcome.error,
                    &outcome.next_attempt_ms,
                    &outcome.delivered_ms,
                    &now.as_millis(),
                    &outcome.finished_ms,
                    &outcome.attempts,
                ],
            )
            .await
            .map_err(pg_error)?;
        Ok(changed > 0)
    }

    async fn delete_finished_notifications(&self, cutoff: Timestamp) -> Result<u64, StoreError> {
        let client = self.client().await?;
        // Each statement commits on its own; a row another server deleted first is
        // simply not found, so concurrent prunes count every row once between them. Done
        // when a statement finds fewer rows than its limit (rows another server took
        // from under it do not mean none are left). The condition is repeated in the
        // DELETE so that it holds for the row as it is when deleted.
        let delete = client
            .prepare(&format!(
                "WITH batch AS (
                     SELECT id FROM notification_outbox WHERE {FINISHED_BEFORE} $1 LIMIT $2),
                 gone AS (
                     DELETE FROM notification_outbox
                     WHERE id IN (SELECT id FROM batch) AND {FINISHED_BEFORE} $1
                     RETURNING 1)
                 SELECT (SELECT count(*) FROM batch), (SELECT count(*) FROM gone)"
            ))
            .await
            .map_err(pg_error)?;
        let mut removed = 0u64;
        loop {
            let row = client
                .query_one(
                    &delete,
                    &[&cutoff.as_millis(), &PRUNE_NOTIFICATIONS_PER_STATEMENT],
                )
                .await
                .map_err(pg_error)?;
            let (found, deleted): (i64, i64) = (
                row.try_get(0).map_err(pg_error)?,
                row.try_get(1).map_err(pg_error)?,
            );
            removed += deleted.unsigned_abs();
            if found < PRUNE_NOTIFICATIONS_PER_STATEMENT {
                return Ok(removed);
            }
        }
    }

    async fn list_notifications(
        &self,
        filter: &NotificationFilter,
    ) -> Result<Vec<Notification>, StoreError> {
        self.select_notifications(filter, "ORDER BY id", None).await
    }

    async fn recent_notifications(
        &self,
        filter: &NotificationFilter,
        limit: usize,
    ) -> Result<Vec<Notification>, StoreError> {
        self.select_notifications(filter, "ORDER BY id DESC", Some(limit))
            .await
    }

    async fn import_alerting(&self, rows: AlertingRows) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(pg_error)?;
        import_rows(&transaction, &rows).await?;
        transaction.commit().await.map_err(pg_error)
    }
}

impl PostgresStore {
    async fn select_notifications(
        &self,
        filter: &NotificationFilter,
        order: &'static str,
        limit: Option<usize>,
    ) -> Result<Vec<Notification>, StoreError> {
        // LIMIT NULL is no limit.
        let limit = limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX));
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {NOTIFICATION_COLUMNS} FROM notification_outbox
                     WHERE ($1::text IS NULL OR alert_id = $1) AND ($2::text IS NULL OR status = $2)
                       AND ($3::text IS NULL OR channel = $3)
                     {order} LIMIT $4"
                ),
                &[
                    &filter.alert_id.as_ref().map(AlertId::as_str),
                    &filter.status.map(DeliveryStatus::as_str),
                    &filter.channel,
                    &limit,
                ],
            )
            .await
            .map_err(pg_error)?;
        rows.iter().map(notification).collect()
    }
}
