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
/// Reserved: 4 alerting (rules, alerts, history, silences, outbox), 5 API tokens.
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
