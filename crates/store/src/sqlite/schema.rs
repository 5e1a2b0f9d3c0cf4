//! The SQLite schema and its versioned migrations.
//!
//! The schema version lives in `PRAGMA user_version` and the file is marked as
//! modelwatch's with `PRAGMA application_id`, so a foreign SQLite file is refused instead
//! of being written into. Migrations only ever move forward; a file written by a newer
//! modelwatch is refused with a message rather than misread.

use std::path::Path;

use rusqlite::Connection;

use crate::StoreError;

/// "mwat" in ASCII.
pub const APPLICATION_ID: i64 = 0x6D77_6174;

/// `(version, sql)`: each entry brings the schema from `version - 1` to `version`. Keep
/// the versions contiguous and in order; a version, once landed, never changes.
const MIGRATIONS: &[(i64, &str)] = &[
    // Samples, stored as encoded chunks per series (see codec.rs).
    (
        1,
        "CREATE TABLE series (
            id      INTEGER PRIMARY KEY,
            model   TEXT NOT NULL,
            version TEXT NOT NULL,
            metric  TEXT NOT NULL,
            UNIQUE (model, version, metric)
        );
        CREATE TABLE datasets (
            id   INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE
        );
        CREATE TABLE chunks (
            id        INTEGER PRIMARY KEY,
            series_id INTEGER NOT NULL REFERENCES series (id),
            min_ms    INTEGER NOT NULL,
            max_ms    INTEGER NOT NULL,
            count     INTEGER NOT NULL,
            data      BLOB NOT NULL
        );
        CREATE INDEX chunks_by_series_time ON chunks (series_id, max_ms);",
    ),
    // Declared custom metrics; the chunk index also covers min_ms so that range lookups
    // and series listings are answered from the index alone.
    (
        2,
        "CREATE TABLE metric_definitions (
            metric    TEXT PRIMARY KEY,
            direction TEXT NOT NULL CHECK (direction IN ('higher_is_better', 'lower_is_better')),
            min_value REAL,
            max_value REAL
        );
        DROP INDEX chunks_by_series_time;
        CREATE INDEX chunks_by_series_time ON chunks (series_id, max_ms, min_ms);",
    ),
    // The head: one row per committed batch holding all its series (see head.rs), so a
    // batch costs one row instead of one index entry per series; compaction moves head
    // rows into per-series chunks.
    (
        3,
        "CREATE TABLE head (
            id     INTEGER PRIMARY KEY,
            min_ms INTEGER NOT NULL,
            max_ms INTEGER NOT NULL,
            count  INTEGER NOT NULL,
            data   BLOB NOT NULL
        );",
    ),
    // Alerting. Rules and alerts keep their full JSON in `body` (the core's serde, which
    // also reads the seed's names back) with the columns queries filter on beside it; an
    // alert's `body` doubles as its compare-and-swap guard. The outbox is shaped for a
    // delivery worker and for several servers claiming rows with leases.
    (
        4,
        "CREATE TABLE alert_rules (
            id         TEXT PRIMARY KEY,
            model      TEXT NOT NULL,
            enabled    INTEGER NOT NULL,
            body       TEXT NOT NULL
        );
        CREATE INDEX alert_rules_by_model ON alert_rules (model, id);
        CREATE TABLE alert_states (
            rule_id              TEXT NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
            version              TEXT NOT NULL,
            model                TEXT NOT NULL,
            consecutive_breaches INTEGER NOT NULL,
            consecutive_clears   INTEGER NOT NULL,
            alert_id             TEXT,
            last_observed_ms     INTEGER,
            revision             INTEGER NOT NULL,
            PRIMARY KEY (rule_id, version)
        ) WITHOUT ROWID;
        CREATE INDEX alert_states_by_model ON alert_states (model);
        CREATE TABLE alerts (
            id           TEXT PRIMARY KEY,
            rule_id      TEXT NOT NULL,
            model        TEXT NOT NULL,
            version      TEXT NOT NULL,
            status       TEXT NOT NULL
                CHECK (status IN ('active', 'acknowledged', 'resolved', 'suppressed')),
            severity     TEXT NOT NULL,
            notified     INTEGER NOT NULL,
            first_seen_ms  INTEGER NOT NULL,
            resolved_ms    INTEGER,
            body         TEXT NOT NULL
        );
        CREATE INDEX alerts_by_time ON alerts (first_seen_ms);
        CREATE INDEX alerts_by_model_time ON alerts (model, first_seen_ms);
        CREATE INDEX alerts_open ON alerts (model) WHERE resolved_ms IS NULL;
        CREATE TABLE alert_transitions (
            id          INTEGER PRIMARY KEY,
            alert_id    TEXT NOT NULL REFERENCES alerts (id),
            at_ms       INTEGER NOT NULL,
            by_actor    TEXT NOT NULL,
            from_status TEXT,
            to_status   TEXT NOT NULL,
            notes       TEXT
        );
        CREATE INDEX alert_transitions_by_alert ON alert_transitions (alert_id, id);
        CREATE TABLE silences (
            id          TEXT PRIMARY KEY,
            model       TEXT NOT NULL,
            version     TEXT,
            metric      TEXT,
            starts_ms   INTEGER NOT NULL,
            ends_ms     INTEGER NOT NULL,
            created_by  TEXT NOT NULL,
            comment     TEXT NOT NULL,
            created_ms  INTEGER NOT NULL
        );
        CREATE INDEX silences_by_end ON silences (ends_ms);
        CREATE TABLE notification_outbox (
            id              INTEGER PRIMARY KEY,
            alert_id        TEXT NOT NULL REFERENCES alerts (id),
            channel         TEXT NOT NULL,
            event           TEXT NOT NULL CHECK (event IN ('firing', 'acknowledged', 'resolved')),
            severity        TEXT NOT NULL,
            payload         TEXT NOT NULL,
            dedup_key       TEXT NOT NULL UNIQUE,
            status          TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'delivered', 'failed')),
            attempts        INTEGER NOT NULL DEFAULT 0,
            next_attempt_ms INTEGER NOT NULL,
            last_error      TEXT,
            created_ms      INTEGER NOT NULL,
            delivered_ms    INTEGER,
            lease_owner     TEXT,
            lease_until_ms  INTEGER
        );
        CREATE INDEX notification_outbox_due ON notification_outbox (next_attempt_ms)
            WHERE status = 'pending';
        CREATE INDEX notification_outbox_by_alert ON notification_outbox (alert_id, id);",
    ),
    // API tokens for the HTTP server: only the SHA-256 of each token is kept.
    (
        5,
        "CREATE TABLE api_tokens (
            id         INTEGER PRIMARY KEY,
            name       TEXT NOT NULL,
            scope      TEXT NOT NULL CHECK (scope IN ('read', 'write')),
            hash       TEXT NOT NULL UNIQUE,
            created_ms INTEGER NOT NULL,
            revoked_ms INTEGER
        );",
    ),
    // Deliveries held back on purpose (alert acknowledged, resolved or silenced before
    // sending) get their own status `skipped`, so `failed` means a real failure. SQLite
    // cannot alter a CHECK constraint, so the outbox is rebuilt (ids kept); rows that
    // earlier versions recorded as failed with "skipped: reason" become skipped with
    // the reason alone.
    (
        6,
        "CREATE TABLE notification_outbox_v6 (
            id              INTEGER PRIMARY KEY,
            alert_id        TEXT NOT NULL REFERENCES alerts (id),
            channel         TEXT NOT NULL,
            event           TEXT NOT NULL CHECK (event IN ('firing', 'acknowledged', 'resolved')),
            severity        TEXT NOT NULL,
            payload         TEXT NOT NULL,
            dedup_key       TEXT NOT NULL UNIQUE,
            status          TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'delivered', 'failed', 'skipped')),
            attempts        INTEGER NOT NULL DEFAULT 0,
            next_attempt_ms INTEGER NOT NULL,
            last_error      TEXT,
            created_ms      INTEGER NOT NULL,
            delivered_ms    INTEGER,
            lease_owner     TEXT,
            lease_until_ms  INTEGER
        );
        INSERT INTO notification_outbox_v6 (id, alert_id, channel, event, severity, payload,
            dedup_key, status, attempts, next_attempt_ms, last_error, created_ms, delivered_ms,
            lease_owner, lease_until_ms)
        SELECT id, alert_id, channel, event, severity, payload, dedup_key,
            CASE WHEN status = 'failed' AND last_error LIKE 'skipped: %' THEN 'skipped'
                 ELSE status END,
            attempts, next_attempt_ms,
            CASE WHEN status = 'failed' AND last_error LIKE 'skipped: %'
                 THEN substr(last_error, 10) ELSE last_error END,
            created_ms, delivered_ms, lease_owner, lease_until_ms
        FROM notification_outbox;
        DROP TABLE notification_outbox;
        ALTER TABLE notification_outbox_v6 RENAME TO notification_outbox;
        CREATE INDEX notification_outbox_due ON notification_outbox (next_attempt_ms)
            WHERE status = 'pending';
        CREATE INDEX notification_outbox_by_alert ON notification_outbox (alert_id, id);",
    ),
    // When an outbox row reached its final state, for retention. Rows already final get
    // the best time there is: delivered ones when they were delivered, failed and
    // skipped ones when their last attempt was due (at or shortly before they finished).
    // The index holds finished rows only (pending ones, which churn, stay out of it); the
    // prune's `finished_ms < ?` implies its predicate, so SQLite range-scans it.
    (
        7,
        "ALTER TABLE notification_outbox ADD COLUMN finished_ms INTEGER;
        UPDATE notification_outbox
            SET finished_ms = CASE WHEN status = 'delivered'
                                   THEN coalesce(delivered_ms, next_attempt_ms)
                                   ELSE next_attempt_ms END
            WHERE status <> 'pending';
        CREATE INDEX notification_outbox_finished ON notification_outbox (finished_ms)
            WHERE finished_ms IS NOT NULL;",
    ),
    // What else a rule keeps per version between evaluations (past breaches, detector
    // state), as JSON; null in every existing row, which reads as an empty detail.
    (8, "ALTER TABLE alert_states ADD COLUMN detail TEXT;"),
];

pub const LATEST_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// Checks the file is ours and brings its schema to `target` (normally [`LATEST_VERSION`]).
pub fn migrate(connection: &mut Connection, path: &Path, target: i64) -> Result<(), StoreError> {
    let application_id: i64 =
        connection.query_row("PRAGMA application_id", [], |row| row.get(0))?;
    let version: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let has_tables: bool = connection.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table'",
        [],
        |row| row.get(0),
    )?;
    if has_tables && application_id != APPLICATION_ID {
        return Err(StoreError::ForeignDatabase {
            path: path.to_owned(),
        });
    }
    if version > LATEST_VERSION {
        return Err(StoreError::SchemaTooNew {
            path: path.to_owned(),
            found: version,
            supported: LATEST_VERSION,
        });
    }
    for &(next, migration) in MIGRATIONS
        .iter()
        .filter(|(v, _)| *v > version && *v <= target)
    {
        let transaction =
            connection.transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)?;
        // Another process may have migrated while we waited for the lock.
        let current: i64 = transaction.query_row("PRAGMA user_version", [], |row| row.get(0))?;
        if current >= next {
            transaction.commit()?;
            continue;
        }
        transaction.execute_batch(migration)?;
        transaction.execute_batch(&format!(
            "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {next};"
        ))?;
        transaction.commit()?;
    }
    Ok(())
}
