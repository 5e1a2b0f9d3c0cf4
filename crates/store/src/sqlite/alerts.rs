//! The alert store on SQLite. Writes go through the single writer (one job per call, in
//! the writer's next IMMEDIATE transaction), so a commit's guard checks and its writes see
//! no other writer in between, in this process or another. Reads use the reader pool.

use std::time::Duration;

use async_trait::async_trait;
use modelwatch_core::alerting::{
    Alert, AlertFilter, AlertId, AlertStatus, AlertTransition, NotificationEvent, Rule, RuleId,
    SeriesState, Severity, Silence, SilenceId,
};
use modelwatch_core::{Metric, ModelName, Timestamp, Version};
use rusqlite::{params, Connection, OptionalExtension, Row, ToSql};

use std::sync::Arc;

use super::SqliteStore;
use crate::alerts::guards::{GuardRow, StateGuards};
use crate::alerts::records::{detail_from_json, rule_body, rule_from_body};
use crate::alerts::{
    alert_label, corrupt, from_json, lease_end, newest_first, optional_timestamp,
    revision_from_sql, revision_to_sql, severity_count, state_dataset, state_detail, stored_alert,
    timestamp, to_json, AlertCommit, AlertLabel, AlertStore, AlertValues, AlertWriteGuarded,
    AlertingRows, ClaimChannels, CommitOutcome, DeliveryResult, DeliveryStatus, Notification,
    NotificationFilter, NotificationValues, OutboxPayload, OutcomeValues, RuleValues,
    SilenceValues, StateValues, StoredState, TransitionValues, FINISHED_BEFORE,
    PRUNE_NOTIFICATIONS_PER_STATEMENT,
};
use crate::decoded::{rule_prefix, state_key, DecodedRows};
use crate::StoreError;

/// Ids per `IN (…)` list, well under SQLite's parameter limit.
const IDS_PER_QUERY: usize = 500;

fn status_column(text: Option<String>) -> Result<Option<AlertStatus>, StoreError> {
    text.map(|t| AlertStatus::parse(&t).map_err(|e| corrupt("alert status", e)))
        .transpose()
}

fn read_rules(
    connection: &Connection,
    model: Option<&ModelName>,
    decoded: &DecodedRows,
) -> Result<Vec<Rule>, StoreError> {
    let mut statement = connection.prepare_cached(
        "SELECT id, body FROM alert_rules WHERE ?1 IS NULL OR model = ?1 ORDER BY model, id",
    )?;
    let rows = statement
        .query_map(params![model.map(ModelName::as_str)], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.iter()
        .map(|(id, body)| decoded.rules.decode(id, body, from_json).map(Rule::from))
        .collect()
}

fn read_state(row: &Row<'_>) -> rusqlite::Result<(String, String, String, StateColumns)> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        StateColumns {
            consecutive_breaches: row.get(3)?,
            consecutive_clears: row.get(4)?,
            alert_id: row.get(5)?,
            last_observed_ms: row.get(6)?,
            revision: row.get(7)?,
            detail: row.get(8)?,
            dataset: row.get(9)?,
        },
    ))
}

struct StateColumns {
    consecutive_breaches: u32,
    consecutive_clears: u32,
    alert_id: Option<String>,
    last_observed_ms: Option<i64>,
    revision: i64,
    detail: Option<String>,
    dataset: String,
}

fn stored_state(
    (rule_id, model, version, columns): (String, String, String, StateColumns),
    decoded: &DecodedRows,
) -> Result<StoredState, StoreError> {
    let detail = match columns.detail.as_deref() {
        Some(text) => decoded.details.decode(
            &state_key(&rule_id, &version, &columns.dataset),
            text,
            detail_from_json,
        )?,
        None => state_detail(None)?,
    };
    Ok(StoredState {
        rule_id: RuleId::parse(&rule_id).map_err(|e| corrupt("state", e))?,
        model: ModelName::parse(&model).map_err(|e| corrupt("state", e))?,
        version: Version::parse(&version).map_err(|e| corrupt("state", e))?,
        dataset: state_dataset(&columns.dataset)?,
        state: SeriesState {
            consecutive_breaches: columns.consecutive_breaches,
            consecutive_clears: columns.consecutive_clears,
            alert_id: columns
                .alert_id
                .map(|id| AlertId::parse(&id).map_err(|e| corrupt("state", e)))
                .transpose()?,
            last_observed_at: optional_timestamp(columns.last_observed_ms)?,
            revision: revision_from_sql(columns.revision),
            detail,
        },
    })
}

/// The alerts a query of `body, revision` rows finds.
fn read_alerts(
    connection: &Connection,
    sql: &str,
    params: &[&dyn ToSql],
) -> Result<Vec<Alert>, StoreError> {
    let mut statement = connection.prepare_cached(sql)?;
    let rows = statement
        .query_map(params, |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.iter()
        .map(|(body, revision)| stored_alert(body, *revision))
        .collect()
}

/// Reads what the state guards of `commits` compare against, in one query for the call.
fn state_guards<'a>(
    connection: &Connection,
    commits: &'a [AlertCommit],
) -> Result<StateGuards<'a>, StoreError> {
    let keys: Vec<_> = StateGuards::keys(commits)
        .map(|k| serde_json::json!([k.commit, k.rule_id, k.version, k.dataset]))
        .collect();
    if keys.is_empty() {
        return Ok(StateGuards::new(commits, []));
    }
    let keys = to_json(&keys)?;
    let mut statement = connection.prepare_cached(
        "SELECT k.value ->> 0, r.id IS NOT NULL, s.revision
         FROM json_each(?1) AS k
         LEFT JOIN alert_rules AS r ON r.id = k.value ->> 1
         LEFT JOIN alert_states AS s ON s.rule_id = k.value ->> 1
             AND s.version = k.value ->> 2 AND s.dataset = k.value ->> 3",
    )?;
    let rows = statement
        .query_map(params![keys], |row| {
            Ok(GuardRow {
                commit: row.get(0)?,
                rule_exists: row.get(1)?,
                revision: row.get::<_, Option<i64>>(2)?.map(revision_from_sql),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(StateGuards::new(commits, rows))
}

/// Writes a commit's alert if its guard holds, and says whether it did: an insert when no
/// alert has the id, an update when the stored one has the revision the writer read.
fn write_alert(connection: &Connection, write: &AlertWriteGuarded) -> Result<bool, StoreError> {
    let values = AlertValues::written(write)?;
    let written = match write.previous_revision {
        None => connection
            .prepare_cached(
                "INSERT INTO alerts (id, rule_id, model, version, status, severity, notified,
                     first_seen_ms, resolved_ms, body, revision)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 ON CONFLICT (id) DO NOTHING",
            )?
            .execute(values.sqlite_params())?,
        Some(previous) => connection
            .prepare_cached(
                "UPDATE alerts SET status = ?2, severity = ?3, notified = ?4, resolved_ms = ?5,
                     body = ?6, revision = ?7
                 WHERE id = ?1 AND revision = ?8",
            )?
            .execute(params![
                values.id,
                values.status,
                values.severity,
                values.notified,
                values.resolved_ms,
                values.body,
                values.revision,
                revision_to_sql(previous),
            ])?,
    };
    Ok(written == 1)
}

const INSERT_TRANSITION: &str =
    "INSERT INTO alert_transitions (alert_id, at_ms, by_actor, from_status, to_status, notes)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/// Writes `commit` if its alert guard holds (its state's was checked before), and says
/// whether it did. The alert is written first, its write being its guard, so a conflict
/// leaves nothing to roll back.
fn apply(
    connection: &Connection,
    commit: &AlertCommit,
    decoded: &DecodedRows,
) -> Result<bool, StoreError> {
    if let Some(write) = &commit.alert {
        if !write_alert(connection, write)? {
            return Ok(false);
        }
    }
    if let Some(write) = &commit.state {
        let values = StateValues::new(
            &write.rule_id,
            &write.version,
            write.dataset.as_ref(),
            &write.model,
            &write.next,
        )?;
        connection
            .prepare_cached(
                "INSERT INTO alert_states (rule_id, version, model, consecutive_breaches,
                     consecutive_clears, alert_id, last_observed_ms, revision, detail, dataset)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT (rule_id, version, dataset) DO UPDATE SET
                     model = excluded.model,
                     consecutive_breaches = excluded.consecutive_breaches,
                     consecutive_clears = excluded.consecutive_clears,
                     alert_id = excluded.alert_id,
                     last_observed_ms = excluded.last_observed_ms,
                     revision = excluded.revision,
                     detail = excluded.detail",
            )?
            .execute(values.sqlite_params())?;
        if let Some(text) = values.detail {
            decoded.details.record(
                state_key(
                    write.rule_id.as_str(),
                    write.version.as_str(),
                    values.dataset,
                ),
                text,
                write.next.detail.clone(),
            );
        }
    }
    if let Some(transition) = &commit.transition {
        connection
            .prepare_cached(INSERT_TRANSITION)?
            .execute(TransitionValues::new(transition).sqlite_params())?;
    }
    for entry in &commit.notifications {
        let payload = OutboxPayload::encode_facts(&entry.facts)?;
        connection
            .prepare_cached(
                "INSERT INTO notification_outbox (alert_id, channel, event, severity, payload,
                     dedup_key, next_attempt_ms, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
                 ON CONFLICT (dedup_key) DO NOTHING",
            )?
            .execute(params![
                entry.alert_id.as_str(),
                entry.channel,
                entry.event.as_str(),
                entry.severity.as_str(),
                payload,
                entry.dedup_key,
                entry.created_at.as_millis(),
            ])?;
    }
    Ok(true)
}

const NOTIFICATION_COLUMNS: &str = "id, alert_id, channel, event, severity, payload, dedup_key,
    status, attempts, next_attempt_ms, last_error, created_ms, delivered_ms, lease_owner,
    lease_until_ms, finished_ms";

struct NotificationRow {
    id: i64,
    alert_id: String,
    channel: String,
    event: String,
    severity: String,
    payload: String,
    dedup_key: String,
    status: String,
    attempts: u32,
    next_attempt_ms: i64,
    last_error: Option<String>,
    created_ms: i64,
    delivered_ms: Option<i64>,
    lease_owner: Option<String>,
    lease_until_ms: Option<i64>,
    finished_ms: Option<i64>,
}

fn notification_row(row: &Row<'_>) -> rusqlite::Result<NotificationRow> {
    Ok(NotificationRow {
        id: row.get(0)?,
        alert_id: row.get(1)?,
        channel: row.get(2)?,
        event: row.get(3)?,
        severity: row.get(4)?,
        payload: row.get(5)?,
        dedup_key: row.get(6)?,
        status: row.get(7)?,
        attempts: row.get(8)?,
        next_attempt_ms: row.get(9)?,
        last_error: row.get(10)?,
        created_ms: row.get(11)?,
        delivered_ms: row.get(12)?,
        lease_owner: row.get(13)?,
        lease_until_ms: row.get(14)?,
        finished_ms: row.get(15)?,
    })
}

impl NotificationRow {
    fn decode(self) -> Result<Notification, StoreError> {
        let event = [
            NotificationEvent::Firing,
            NotificationEvent::Acknowledged,
            NotificationEvent::Resolved,
        ]
        .into_iter()
        .find(|e| e.as_str() == self.event)
        .ok_or_else(|| corrupt("notification event", &self.event))?;
        Ok(Notification {
            id: self.id,
            alert_id: AlertId::parse(&self.alert_id).map_err(|e| corrupt("notification", e))?,
            channel: self.channel,
            event,
            severity: Severity::parse(&self.severity).map_err(|e| corrupt("notification", e))?,
            payload: OutboxPayload::decode(&self.payload),
            dedup_key: self.dedup_key,
            status: DeliveryStatus::parse(&self.status)
                .ok_or_else(|| corrupt("notification status", &self.status))?,
            attempts: self.attempts,
            next_attempt_at: timestamp(self.next_attempt_ms)?,
            last_error: self.last_error,
            created_at: timestamp(self.created_ms)?,
            delivered_at: optional_timestamp(self.delivered_ms)?,
            finished_at: optional_timestamp(self.finished_ms)?,
            lease_owner: self.lease_owner,
            lease_until: optional_timestamp(self.lease_until_ms)?,
        })
    }
}

fn silence_row(row: &Row<'_>) -> rusqlite::Result<SilenceRow> {
    Ok(SilenceRow {
        id: row.get(0)?,
        model: row.get(1)?,
        version: row.get(2)?,
        metric: row.get(3)?,
        starts_ms: row.get(4)?,
        ends_ms: row.get(5)?,
        created_by: row.get(6)?,
        comment: row.get(7)?,
        created_ms: row.get(8)?,
    })
}

const SILENCE_COLUMNS: &str =
    "id, model, version, metric, starts_ms, ends_ms, created_by, comment, created_ms";

struct SilenceRow {
    id: String,
    model: String,
    version: Option<String>,
    metric: Option<String>,
    starts_ms: i64,
    ends_ms: i64,
    created_by: String,
    comment: String,
    created_ms: i64,
}

impl SilenceRow {
    fn decode(self) -> Result<Silence, StoreError> {
        let bad = |e: modelwatch_core::ValidationError| corrupt("silence", e);
        Ok(Silence {
            id: SilenceId::parse(&self.id).map_err(bad)?,
            model: ModelName::parse(&self.model).map_err(bad)?,
            version: self
                .version
                .map(|v| Version::parse(&v))
                .transpose()
                .map_err(bad)?,
            metric: self
                .metric
                .map(|m| Metric::parse(&m))
                .transpose()
                .map_err(bad)?,
            starts_at: timestamp(self.starts_ms)?,
            ends_at: timestamp(self.ends_ms)?,
            created_by: self.created_by,
            comment: self.comment,
            created_at: timestamp(self.created_ms)?,
        })
    }
}

fn write_silence(
    connection: &Connection,
    silence: &Silence,
    insert: bool,
) -> Result<usize, StoreError> {
    let sql = if insert {
        "INSERT INTO silences (id, model, version, metric, starts_ms, ends_ms, created_by, comment, created_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (id) DO NOTHING"
    } else {
        "UPDATE silences SET model = ?2, version = ?3, metric = ?4, starts_ms = ?5, ends_ms = ?6,
             created_by = ?7, comment = ?8, created_ms = ?9 WHERE id = ?1"
    };
    Ok(connection
        .prepare_cached(sql)?
        .execute(SilenceValues::new(silence).sqlite_params())?)
}

/// Writes exported rows as they are; rows whose key exists are left alone (see
/// [`AlertStore::import_alerting`]).
fn import_rows(connection: &Connection, rows: &AlertingRows) -> Result<(), StoreError> {
    let mut insert = connection.prepare_cached(
        "INSERT INTO alert_rules (id, model, enabled, body) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT DO NOTHING",
    )?;
    for rule in &rows.rules {
        let body = rule_body(rule)?;
        insert.execute(RuleValues::new(rule, &body).sqlite_params())?;
    }
    let mut insert = connection.prepare_cached(
        "INSERT INTO alert_states (rule_id, version, model, consecutive_breaches,
             consecutive_clears, alert_id, last_observed_ms, revision, detail, dataset)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT DO NOTHING",
    )?;
    for stored in &rows.states {
        insert.execute(
            StateValues::new(
                &stored.rule_id,
                &stored.version,
                stored.dataset.as_ref(),
                &stored.model,
                &stored.state,
            )?
            .sqlite_params(),
        )?;
    }
    let mut inserted = std::collections::HashSet::new();
    let mut insert = connection.prepare_cached(
        "INSERT INTO alerts (id, rule_id, model, version, status, severity, notified,
             first_seen_ms, resolved_ms, body, revision)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) ON CONFLICT DO NOTHING",
    )?;
    for alert in &rows.alerts {
        let changed = insert.execute(AlertValues::new(alert)?.sqlite_params())?;
        if changed > 0 {
            inserted.insert(&alert.id);
        }
    }
    let mut insert = connection.prepare_cached(INSERT_TRANSITION)?;
    for transition in rows
        .transitions
        .iter()
        .filter(|t| inserted.contains(&t.alert_id))
    {
        insert.execute(TransitionValues::new(transition).sqlite_params())?;
    }
    for silence in &rows.silences {
        write_silence(connection, silence, true)?;
    }
    let mut insert = connection.prepare_cached(&format!(
        "INSERT INTO notification_outbox ({NOTIFICATION_COLUMNS})
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
         ON CONFLICT DO NOTHING"
    ))?;
    for n in &rows.notifications {
        insert.execute(NotificationValues::new(n)?.sqlite_params())?;
    }
    Ok(())
}

#[async_trait]
impl AlertStore for SqliteStore {
    async fn close_alerting(&self) -> Result<(), StoreError> {
        crate::MetricStore::close(self).await
    }

    async fn insert_rule(&self, rule: Rule) -> Result<(), StoreError> {
        let body = rule_body(&rule)?;
        self.write(move |_, tx| {
            let inserted = tx
                .prepare_cached(
                    "INSERT INTO alert_rules (id, model, enabled, body) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (id) DO NOTHING",
                )?
                .execute(RuleValues::new(&rule, &body).sqlite_params())?;
            if inserted == 0 {
                return Err(StoreError::AlreadyExists {
                    kind: "rule",
                    id: rule.id.to_string(),
                });
            }
            Ok(())
        })
        .await
    }

    async fn update_rule(&self, rule: Rule) -> Result<(), StoreError> {
        let body = rule_body(&rule)?;
        self.write(move |_, tx| {
            let updated = tx
                .prepare_cached(
                    "UPDATE alert_rules SET model = ?2, enabled = ?3, body = ?4 WHERE id = ?1",
                )?
                .execute(RuleValues::new(&rule, &body).sqlite_params())?;
            if updated == 0 {
                return Err(StoreError::NotFound {
                    kind: "rule",
                    id: rule.id.to_string(),
                });
            }
            // A rule moved to another model carries its states along.
            tx.prepare_cached("UPDATE alert_states SET model = ?2 WHERE rule_id = ?1")?
                .execute(params![rule.id.as_str(), rule.model.as_str()])?;
            Ok(())
        })
        .await
    }

    async fn delete_rule(&self, id: &RuleId) -> Result<bool, StoreError> {
        let id = id.clone();
        self.decoded.details.forget(&rule_prefix(id.as_str()));
        self.decoded.rules.forget(id.as_str());
        self.write(move |_, tx| {
            tx.prepare_cached("DELETE FROM alert_states WHERE rule_id = ?1")?
                .execute(params![id.as_str()])?;
            let deleted = tx
                .prepare_cached("DELETE FROM alert_rules WHERE id = ?1")?
                .execute(params![id.as_str()])?;
            Ok(deleted > 0)
        })
        .await
    }

    async fn rule(&self, id: &RuleId) -> Result<Option<Rule>, StoreError> {
        let id = id.clone();
        self.read(move |connection, _| {
            let body: Option<String> = connection
                .prepare_cached("SELECT body FROM alert_rules WHERE id = ?1")?
                .query_row(params![id.as_str()], |row| row.get(0))
                .optional()?;
            body.map(|b| rule_from_body(&b)).transpose()
        })
        .await
    }

    async fn list_rules(&self, model: Option<&ModelName>) -> Result<Vec<Rule>, StoreError> {
        let model = model.cloned();
        let decoded = Arc::clone(&self.decoded);
        self.read(move |connection, _| read_rules(connection, model.as_ref(), &decoded))
            .await
    }

    async fn states(&self, model: Option<&ModelName>) -> Result<Vec<StoredState>, StoreError> {
        let model = model.cloned();
        let decoded = Arc::clone(&self.decoded);
        self.read(move |connection, _| {
            let mut statement = connection.prepare_cached(
                "SELECT rule_id, model, version, consecutive_breaches, consecutive_clears,
                        alert_id, last_observed_ms, revision, detail, dataset
                 FROM alert_states WHERE ?1 IS NULL OR model = ?1",
            )?;
            let rows = statement
                .query_map(params![model.as_ref().map(ModelName::as_str)], read_state)?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|row| stored_state(row, &decoded))
                .collect()
        })
        .await
    }

    async fn commit(&self, commits: Vec<AlertCommit>) -> Result<Vec<CommitOutcome>, StoreError> {
        if commits.is_empty() {
            return Ok(Vec::new());
        }
        let decoded = Arc::clone(&self.decoded);
        self.write(move |_, tx| {
            let mut outcomes = Vec::with_capacity(commits.len());
            let mut state_guards = state_guards(tx, &commits)?;
            for (index, commit) in commits.iter().enumerate() {
                // A conflict is found before anything of the commit is written, so it
                // needs no rollback; an SQL error fails the whole call.
                if state_guards.hold(index, commit) && apply(tx, commit, &decoded)? {
                    state_guards.applied(commit);
                    outcomes.push(CommitOutcome::Applied);
                } else {
                    outcomes.push(CommitOutcome::Conflict);
                }
            }
            Ok(outcomes)
        })
        .await
    }

    async fn alert(&self, id: &AlertId) -> Result<Option<Alert>, StoreError> {
        let id = id.clone();
        self.read(move |connection, _| {
            let row: Option<(String, i64)> = connection
                .prepare_cached("SELECT body, revision FROM alerts WHERE id = ?1")?
                .query_row(params![id.as_str()], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?;
            row.map(|(body, revision)| stored_alert(&body, revision))
                .transpose()
        })
        .await
    }

    async fn alerts_by_id(&self, ids: &[AlertId]) -> Result<Vec<Alert>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = ids.to_vec();
        self.read(move |connection, _| {
            let mut found = Vec::with_capacity(ids.len());
            for chunk in ids.chunks(IDS_PER_QUERY) {
                let placeholders = vec!["?"; chunk.len()].join(",");
                let sql = format!("SELECT body, revision FROM alerts WHERE id IN ({placeholders})");
                let mut statement = connection.prepare(&sql)?;
                let rows = statement
                    .query_map(
                        rusqlite::params_from_iter(chunk.iter().map(AlertId::as_str)),
                        |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)),
                    )?
                    .collect::<Result<Vec<_>, _>>()?;
                for (body, revision) in rows {
                    found.push(stored_alert(&body, revision)?);
                }
            }
            Ok(found)
        })
        .await
    }

    async fn list_alerts(&self, filter: &AlertFilter) -> Result<Vec<Alert>, StoreError> {
        let filter = filter.clone();
        self.read(move |connection, _| {
            // SQL narrows by the indexed columns; the core's filter has the final word, so
            // "alive in the window" means the same on every backend.
            let window_end = filter.window.map(|w| w.end.as_millis());
            let mut alerts = read_alerts(
                connection,
                "SELECT body, revision FROM alerts
                 WHERE (?1 IS NULL OR model = ?1) AND (?2 IS NULL OR status = ?2)
                   AND (?3 IS NULL OR severity = ?3) AND (?4 IS NULL OR first_seen_ms < ?4)",
                &[
                    &filter.model.as_ref().map(ModelName::as_str),
                    &filter.status.map(AlertStatus::as_str),
                    &filter.severity.map(Severity::as_str),
                    &window_end,
                ],
            )?;
            alerts.retain(|a| filter.matches(a));
            newest_first(&mut alerts);
            Ok(alerts)
        })
        .await
    }

    async fn open_alerts(&self, model: Option<&ModelName>) -> Result<Vec<Alert>, StoreError> {
        let model = model.cloned();
        self.read(move |connection, _| {
            let mut alerts = read_alerts(
                connection,
                "SELECT body, revision FROM alerts
                 WHERE resolved_ms IS NULL AND (?1 IS NULL OR model = ?1)",
                &[&model.as_ref().map(ModelName::as_str)],
            )?;
            newest_first(&mut alerts);
            Ok(alerts)
        })
        .await
    }

    async fn open_alert_labels(&self) -> Result<Vec<AlertLabel>, StoreError> {
        self.read(move |connection, _| {
            let mut statement = connection.prepare_cached(
                "SELECT id, status, severity FROM alerts WHERE resolved_ms IS NULL",
            )?;
            let rows = statement
                .query_map([], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.iter()
                .map(|(id, status, severity)| alert_label(id, status, severity))
                .collect()
        })
        .await
    }

    async fn resolved_alert_counts(&self) -> Result<Vec<(Severity, u64)>, StoreError> {
        self.read(move |connection, _| {
            let mut statement = connection.prepare_cached(
                "SELECT severity, count(*) FROM alerts WHERE status = 'resolved'
                 GROUP BY severity",
            )?;
            let rows = statement
                .query_map([], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.iter()
                .map(|(severity, n)| severity_count(severity, *n))
                .collect()
        })
        .await
    }

    async fn history(&self, id: &AlertId) -> Result<Vec<AlertTransition>, StoreError> {
        let id = id.clone();
        self.read(move |connection, _| {
            let mut statement = connection.prepare_cached(
                "SELECT at_ms, by_actor, from_status, to_status, notes FROM alert_transitions
                 WHERE alert_id = ?1 ORDER BY id",
            )?;
            let rows = statement
                .query_map(params![id.as_str()], |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, Option<String>>(2)?,
                        row.get::<_, String>(3)?,
                        row.get::<_, Option<String>>(4)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|(at, by, from, to, notes)| {
                    Ok(AlertTransition {
                        alert_id: id.clone(),
                        at: timestamp(at)?,
                        by,
                        from: status_column(from)?,
                        to: status_column(Some(to))?.unwrap_or(AlertStatus::Active),
                        notes,
                    })
                })
                .collect()
        })
        .await
    }

    async fn notified_since(
        &self,
        since: Timestamp,
    ) -> Result<Vec<(ModelName, Timestamp)>, StoreError> {
        self.read(move |connection, _| {
            let mut statement = connection.prepare_cached(
                "SELECT model, first_seen_ms FROM alerts
                 WHERE notified AND first_seen_ms >= ?1 ORDER BY first_seen_ms",
            )?;
            let rows = statement
                .query_map(params![since.as_millis()], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|(model, at)| {
                    Ok((
                        ModelName::parse(&model).map_err(|e| corrupt("alert", e))?,
                        timestamp(at)?,
                    ))
                })
                .collect()
        })
        .await
    }

    async fn insert_silence(&self, silence: Silence) -> Result<(), StoreError> {
        self.write(move |_, tx| {
            if write_silence(tx, &silence, true)? == 0 {
                return Err(StoreError::AlreadyExists {
                    kind: "silence",
                    id: silence.id.to_string(),
                });
            }
            Ok(())
        })
        .await
    }

    async fn update_silence(&self, silence: Silence) -> Result<(), StoreError> {
        self.write(move |_, tx| {
            if write_silence(tx, &silence, false)? == 0 {
                return Err(StoreError::NotFound {
                    kind: "silence",
                    id: silence.id.to_string(),
                });
            }
            Ok(())
        })
        .await
    }

    async fn silence(&self, id: &SilenceId) -> Result<Option<Silence>, StoreError> {
        let id = id.clone();
        self.read(move |connection, _| {
            let sql = format!("SELECT {SILENCE_COLUMNS} FROM silences WHERE id = ?1");
            let row = connection
                .prepare_cached(&sql)?
                .query_row(params![id.as_str()], silence_row)
                .optional()?;
            row.map(SilenceRow::decode).transpose()
        })
        .await
    }

    async fn list_silences(
        &self,
        ends_after: Option<Timestamp>,
    ) -> Result<Vec<Silence>, StoreError> {
        self.read(move |connection, _| {
            let sql = format!(
                "SELECT {SILENCE_COLUMNS} FROM silences WHERE ?1 IS NULL OR ends_ms > ?1
                 ORDER BY starts_ms, id"
            );
            let mut statement = connection.prepare_cached(&sql)?;
            let rows = statement
                .query_map(params![ends_after.map(Timestamp::as_millis)], silence_row)?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter().map(SilenceRow::decode).collect()
        })
        .await
    }

    async fn claim_notifications(
        &self,
        owner: &str,
        now: Timestamp,
        lease: Duration,
        channels: ClaimChannels<'_>,
        limit: usize,
    ) -> Result<Vec<Notification>, StoreError> {
        let owner = owner.to_owned();
        let until = lease_end(now, lease);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // One channel, or every channel but a list (as a JSON array, so one statement
        // takes any number of names).
        let (condition, channels) = match channels {
            ClaimChannels::Only(channel) => ("channel = ?5", channel.to_owned()),
            ClaimChannels::AllBut(others) => (
                "channel NOT IN (SELECT value FROM json_each(?5))",
                serde_json::to_string(others).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            ),
        };
        // Select-then-update inside the writer's IMMEDIATE transaction is atomic across
        // processes; PostgreSQL uses `FOR UPDATE SKIP LOCKED` for the same contract.
        self.write(move |_, tx| {
            let sql = format!(
                "UPDATE notification_outbox
                 SET lease_owner = ?1, lease_until_ms = ?2
                 WHERE id IN (
                     SELECT id FROM notification_outbox
                     WHERE status = 'pending' AND next_attempt_ms <= ?3
                       AND (lease_until_ms IS NULL OR lease_until_ms <= ?3)
                       AND {condition}
                     ORDER BY next_attempt_ms, id LIMIT ?4)
                 RETURNING {NOTIFICATION_COLUMNS}"
            );
            let mut statement = tx.prepare_cached(&sql)?;
            let rows = statement
                .query_map(
                    params![owner, until.as_millis(), now.as_millis(), limit, channels],
                    notification_row,
                )?
                .collect::<Result<Vec<_>, _>>()?;
            let mut claimed = rows
                .into_iter()
                .map(NotificationRow::decode)
                .collect::<Result<Vec<_>, _>>()?;
            claimed.sort_by_key(|n| (n.next_attempt_at, n.id));
            Ok(claimed)
        })
        .await
    }

    async fn finish_notification(
        &self,
        id: i64,
        owner: &str,
        result: DeliveryResult,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let owner = owner.to_owned();
        self.write(move |_, tx| {
            let exists: bool = tx
                .prepare_cached("SELECT count(*) > 0 FROM notification_outbox WHERE id = ?1")?
                .query_row(params![id], |row| row.get(0))?;
            if !exists {
                return Err(StoreError::NotFound {
                    kind: "notification",
                    id: id.to_string(),
                });
            }
            let outcome = OutcomeValues::new(&result, now);
            let changed = tx
                .prepare_cached(
                    "UPDATE notification_outbox
                     SET status = ?3, last_error = coalesce(?4, last_error),
                         next_attempt_ms = coalesce(?5, next_attempt_ms),
                         delivered_ms = ?6, finished_ms = ?8, attempts = attempts + ?9,
                         lease_owner = NULL, lease_until_ms = NULL
                     WHERE id = ?1 AND status = 'pending' AND lease_owner = ?2
                       AND lease_until_ms > ?7",
                )?
                .execute(params![
                    id,
                    owner,
                    outcome.status,
                    outcome.error,
                    outcome.next_attempt_ms,
                    outcome.delivered_ms,
                    now.as_millis(),
                    outcome.finished_ms,
                    outcome.attempts,
                ])?;
            Ok(changed > 0)
        })
        .await
    }

    async fn delete_finished_notifications(&self, cutoff: Timestamp) -> Result<u64, StoreError> {
        let mut removed = 0u64;
        loop {
            let deleted = self
                .write(move |_, tx| {
                    let sql = format!(
                        "DELETE FROM notification_outbox WHERE id IN (
                             SELECT id FROM notification_outbox WHERE {FINISHED_BEFORE} ?1
                             LIMIT ?2)"
                    );
                    Ok(tx.prepare_cached(&sql)?.execute(params![
                        cutoff.as_millis(),
                        PRUNE_NOTIFICATIONS_PER_STATEMENT
                    ])?)
                })
                .await?;
            removed += deleted as u64;
            if (deleted as i64) < PRUNE_NOTIFICATIONS_PER_STATEMENT {
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
        self.write(move |_, tx| import_rows(tx, &rows)).await
    }
}

impl SqliteStore {
    async fn select_notifications(
        &self,
        filter: &NotificationFilter,
        order: &'static str,
        limit: Option<usize>,
    ) -> Result<Vec<Notification>, StoreError> {
        let filter = filter.clone();
        // SQLite reads a negative LIMIT as "no limit".
        let limit = limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
        self.read(move |connection, _| {
            let sql = format!(
                "SELECT {NOTIFICATION_COLUMNS} FROM notification_outbox
                 WHERE (?1 IS NULL OR alert_id = ?1) AND (?2 IS NULL OR status = ?2)
                   AND (?3 IS NULL OR channel = ?3)
                 {order} LIMIT ?4"
            );
            let mut statement = connection.prepare_cached(&sql)?;
            let rows = statement
                .query_map(
                    params![
                        filter.alert_id.as_ref().map(AlertId::as_str),
                        filter.status.map(DeliveryStatus::as_str),
                        filter.channel,
                        limit,
                    ],
                    notification_row,
                )?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter().map(NotificationRow::decode).collect()
        })
        .await
    }
}
