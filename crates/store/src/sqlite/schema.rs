//! The SQLite schema and its versioned migrations.
//!
//! The schema version lives in `PRAGMA user_version` and the file is marked as
//! modelwatch's with `PRAGMA application_id`, so a foreign SQLite file is refused instead
//! of being written into. Migrations only ever move forward; a file written by a newer
//! modelwatch is refused with a message rather than misread.

use std::path::Path;

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, Transaction};

use super::writer;
use crate::codec::{self, Columns};
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
    // alert's `body` was its compare-and-swap guard until schema 15. The outbox is shaped
    // for a delivery worker and for several servers claiming rows with leases.
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
    // The dataset becomes part of the series: (model, version, metric, dataset), 0 for the
    // default dataset, else a `datasets` id. SQLite cannot alter a UNIQUE constraint, so
    // the catalogue is rebuilt (ids kept; foreign keys are off while migrating, see
    // `migrate`). Every series was of the default dataset until now; the samples that
    // carried another one are then moved into series of their own by
    // `split_series_by_dataset`.
    (
        9,
        "CREATE TABLE series_v9 (
            id         INTEGER PRIMARY KEY,
            model      TEXT NOT NULL,
            version    TEXT NOT NULL,
            metric     TEXT NOT NULL,
            dataset_id INTEGER NOT NULL DEFAULT 0,
            UNIQUE (model, version, metric, dataset_id)
        );
        INSERT INTO series_v9 (id, model, version, metric)
            SELECT id, model, version, metric FROM series;
        DROP TABLE series;
        ALTER TABLE series_v9 RENAME TO series;",
    ),
    // Rules watch one dataset or each separately, with a state per dataset: the dataset
    // joins the state's key, empty for the default dataset, which is what every existing
    // state was of. SQLite cannot alter a primary key, so the table is rebuilt.
    (
        10,
        "CREATE TABLE alert_states_v10 (
            rule_id              TEXT NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
            version              TEXT NOT NULL,
            dataset              TEXT NOT NULL DEFAULT '',
            model                TEXT NOT NULL,
            consecutive_breaches INTEGER NOT NULL,
            consecutive_clears   INTEGER NOT NULL,
            alert_id             TEXT,
            last_observed_ms     INTEGER,
            revision             INTEGER NOT NULL,
            detail               TEXT,
            PRIMARY KEY (rule_id, version, dataset)
        ) WITHOUT ROWID;
        INSERT INTO alert_states_v10 (rule_id, version, model, consecutive_breaches,
            consecutive_clears, alert_id, last_observed_ms, revision, detail)
        SELECT rule_id, version, model, consecutive_breaches, consecutive_clears, alert_id,
            last_observed_ms, revision, detail
        FROM alert_states;
        DROP TABLE alert_states;
        ALTER TABLE alert_states_v10 RENAME TO alert_states;
        CREATE INDEX alert_states_by_model ON alert_states (model);",
    ),
    // Rule states move out of the primary key's B-tree into a table of their own, keyed
    // by a unique index. In a WITHOUT ROWID table a row is an index record, which keeps
    // at most about a quarter of a page before it spills into overflow pages: a detector's
    // detail (a kilobyte or more) spilled, few states shared a page, and an evaluator
    // writing every state each pass read far more pages than it wrote (bench: a
    // change-point pass over 10,000 states spent a third of its time looking up
    // revisions). A table row keeps up to a page, and the index stays small.
    (
        11,
        "CREATE TABLE alert_states_v11 (
            rule_id              TEXT NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
            version              TEXT NOT NULL,
            dataset              TEXT NOT NULL DEFAULT '',
            model                TEXT NOT NULL,
            consecutive_breaches INTEGER NOT NULL,
            consecutive_clears   INTEGER NOT NULL,
            alert_id             TEXT,
            last_observed_ms     INTEGER,
            revision             INTEGER NOT NULL,
            detail               TEXT,
            UNIQUE (rule_id, version, dataset)
        );
        INSERT INTO alert_states_v11 (rule_id, version, dataset, model, consecutive_breaches,
            consecutive_clears, alert_id, last_observed_ms, revision, detail)
        SELECT rule_id, version, dataset, model, consecutive_breaches, consecutive_clears,
            alert_id, last_observed_ms, revision, detail
        FROM alert_states ORDER BY rule_id, version, dataset;
        DROP TABLE alert_states;
        ALTER TABLE alert_states_v11 RENAME TO alert_states;
        CREATE INDEX alert_states_by_model ON alert_states (model);",
    ),
    // Predictions and labels (issue 22). A prediction's label sits on its row (joined by
    // the primary key, one keyed update); a label waiting for its prediction sits in
    // `pending_labels`. The dataset is empty text for the default dataset. `labels`
    // counts the labels an id received (the latest won). Windows read by the index on
    // (model, version, dataset, ts).
    (
        12,
        "CREATE TABLE predictions (
            model    TEXT NOT NULL,
            id       TEXT NOT NULL,
            version  TEXT NOT NULL,
            dataset  TEXT NOT NULL,
            ts       INTEGER NOT NULL,
            class    INTEGER,
            score    REAL,
            value    REAL,
            truth    REAL,
            label_ms INTEGER,
            labels   INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (model, id)
        ) WITHOUT ROWID;
        CREATE INDEX predictions_by_window ON predictions (model, version, dataset, ts);
        CREATE TABLE pending_labels (
            model       TEXT NOT NULL,
            id          TEXT NOT NULL,
            truth       REAL NOT NULL,
            label_ms    INTEGER,
            received_ms INTEGER NOT NULL,
            labels      INTEGER NOT NULL,
            PRIMARY KEY (model, id)
        ) WITHOUT ROWID;
        CREATE INDEX pending_labels_by_age ON pending_labels (received_ms);
        CREATE TABLE prediction_configs (
            model          TEXT PRIMARY KEY,
            window_minutes INTEGER NOT NULL,
            task           TEXT NOT NULL CHECK (task IN ('classification', 'regression')),
            threshold      REAL NOT NULL,
            min_coverage   REAL NOT NULL
        );",
    ),
    // Window revisions and judgement (issue 22): every computation of a window is kept
    // (`metrics` as `name=value;...`); a window is judged once, on one revision. A
    // configuration's maximum label delay, a week unless set.
    (
        13,
        "ALTER TABLE prediction_configs
            ADD COLUMN max_label_delay_minutes INTEGER NOT NULL DEFAULT 10080;
        CREATE TABLE prediction_windows (
            model           TEXT NOT NULL,
            version         TEXT NOT NULL,
            dataset         TEXT NOT NULL,
            start_ms        INTEGER NOT NULL,
            end_ms          INTEGER NOT NULL,
            revisions       INTEGER NOT NULL,
            judged_ms       INTEGER,
            judged_revision INTEGER,
            judged_by       TEXT,
            PRIMARY KEY (model, version, dataset, start_ms)
        ) WITHOUT ROWID;
        CREATE INDEX prediction_windows_waiting ON prediction_windows (model, version, dataset, start_ms)
            WHERE judged_ms IS NULL;
        CREATE TABLE prediction_window_revisions (
            model       TEXT NOT NULL,
            version     TEXT NOT NULL,
            dataset     TEXT NOT NULL,
            start_ms    INTEGER NOT NULL,
            revision    INTEGER NOT NULL,
            computed_ms INTEGER NOT NULL,
            predicted   INTEGER NOT NULL,
            labelled    INTEGER NOT NULL,
            metrics     TEXT NOT NULL,
            PRIMARY KEY (model, version, dataset, start_ms, revision)
        ) WITHOUT ROWID;",
    ),
    // Drift (issue 22): each window's sketch of its scores (`bucket:count,...`), the
    // number of times it was recorded, and the recording its drift was computed for.
    (
        14,
        "CREATE TABLE prediction_window_sketches (
            model     TEXT NOT NULL,
            version   TEXT NOT NULL,
            dataset   TEXT NOT NULL,
            start_ms  INTEGER NOT NULL,
            end_ms    INTEGER NOT NULL,
            count     INTEGER NOT NULL,
            sketch    TEXT NOT NULL,
            recorded  INTEGER NOT NULL,
            drift_of  INTEGER NOT NULL DEFAULT 0,
            drift_ms  INTEGER,
            PRIMARY KEY (model, version, dataset, start_ms)
        ) WITHOUT ROWID;
        CREATE INDEX prediction_window_sketches_due
            ON prediction_window_sketches (model, version, dataset, start_ms)
            WHERE drift_of < recorded;",
    ),
    // Alerts are compare-and-swapped on an integer revision instead of their JSON: one
    // more on every write, an update guarded by `WHERE revision = ?`. An existing alert
    // counts as written once. A constant default adds the column without a rewrite.
    (
        15,
        "ALTER TABLE alerts ADD COLUMN revision INTEGER NOT NULL DEFAULT 1;",
    ),
    // Raw prediction retention (issue 22): by model, the time before which its raw
    // predictions were pruned; predictions made before it are refused.
    (
        16,
        "CREATE TABLE prediction_retention (
            model            TEXT PRIMARY KEY,
            pruned_before_ms INTEGER NOT NULL
        ) WITHOUT ROWID;",
    ),
    // Feature drift (issue 22): each window's sketch of each named feature
    // (`name=bucket:count,...;...`), added to as predictions arrive; features are not kept
    // on the raw rows. A constant default adds the column without a rewrite.
    (
        17,
        "ALTER TABLE prediction_window_sketches ADD COLUMN features TEXT NOT NULL DEFAULT '';",
    ),
    // Dirty prediction windows (issue 22): marked in the transaction that stores their
    // predictions or labels, cleared once their metrics are recorded, so a crash in
    // between leaves them to recompute. `marks` counts the changes (a clear with a stale
    // count leaves the window dirty).
    (
        18,
        "CREATE TABLE prediction_windows_dirty (
            model    TEXT NOT NULL,
            version  TEXT NOT NULL,
            dataset  TEXT NOT NULL,
            start_ms INTEGER NOT NULL,
            end_ms   INTEGER NOT NULL,
            marks    INTEGER NOT NULL,
            PRIMARY KEY (model, version, dataset, start_ms)
        ) WITHOUT ROWID;",
    ),
    // Raw predictions as columnar blocks (issue 22's ≤ 16 bytes per prediction): each
    // block holds the predictions of one series one window received (see
    // predictions/block.rs), found by series and time; the id index maps a model's
    // prediction id (the model by a small integer) to its location (block and slot),
    // and labels are keyed by location, so a label joins in one keyed lookup and a
    // window reads its blocks and one range of labels. The rows of `predictions` move
    // into blocks (after_sql), then the table goes.
    (
        19,
        "CREATE TABLE prediction_models (
            key   INTEGER PRIMARY KEY,
            model TEXT NOT NULL UNIQUE
        );
        CREATE TABLE prediction_blocks (
            key      INTEGER PRIMARY KEY,
            model    TEXT NOT NULL,
            version  TEXT NOT NULL,
            dataset  TEXT NOT NULL,
            start_ms INTEGER NOT NULL,
            end_ms   INTEGER NOT NULL,
            min_ms   INTEGER NOT NULL,
            max_ms   INTEGER NOT NULL,
            count    INTEGER NOT NULL,
            data     BLOB NOT NULL
        );
        CREATE INDEX prediction_blocks_by_time
            ON prediction_blocks (model, version, dataset, max_ms, min_ms);
        CREATE INDEX prediction_blocks_by_window
            ON prediction_blocks (model, version, dataset, start_ms);
        CREATE TABLE prediction_ids (
            model    INTEGER NOT NULL,
            id       TEXT NOT NULL,
            location INTEGER NOT NULL,
            PRIMARY KEY (model, id)
        ) WITHOUT ROWID;
        CREATE TABLE prediction_labels (
            location INTEGER PRIMARY KEY,
            truth    REAL NOT NULL,
            label_ms INTEGER,
            labels   INTEGER NOT NULL
        );",
    ),
];

/// Work a migration needs beyond its SQL, run in the same transaction right after it.
fn after_sql(version: i64, transaction: &Transaction<'_>) -> Result<(), StoreError> {
    match version {
        9 => split_series_by_dataset(transaction),
        19 => super::prediction_blocks::move_rows_into_blocks(transaction),
        _ => Ok(()),
    }
}

/// Schema 9: the samples of a series tagged with datasets move into one series per
/// dataset, keeping every sample. Up to schema 8 a series held one sample per timestamp
/// (whatever its dataset; the later write won), so the samples are read as a reader sees
/// them — chunks in write order, later writes winning — and then split: no two datasets
/// can clash at one time, and no overwritten sample comes back. The head is compacted
/// first, so every sample sits in a chunk. A dataset literally named `default` is the
/// default dataset from now on (that name is reserved for it).
fn split_series_by_dataset(transaction: &Transaction<'_>) -> Result<(), StoreError> {
    writer::compact_head(transaction, &mut writer::WriterState::default())?;
    let default_named: Option<u32> = transaction
        .query_row(
            "SELECT id FROM datasets WHERE name = ?1",
            [modelwatch_core::Dataset::DEFAULT_NAME],
            |row| row.get(0),
        )
        .optional()?;
    let as_stored = |id: u32| if Some(id) == default_named { 0 } else { id };
    let series: Vec<(i64, String, String, String)> = {
        let mut statement =
            transaction.prepare("SELECT id, model, version, metric FROM series ORDER BY id")?;
        let rows = statement.query_map([], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })?;
        rows.collect::<Result<_, _>>()?
    };
    for (series_id, model, version, metric) in series {
        let chunks: Vec<Vec<u8>> = {
            let mut statement = transaction
                .prepare_cached("SELECT data FROM chunks WHERE series_id = ?1 ORDER BY id")?;
            let rows = statement.query_map([series_id], |row| row.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        let mut tagged = false;
        for data in &chunks {
            let mut columns = Columns::default();
            codec::decode_into(data, &mut columns)?;
            if columns.datasets.iter().any(|&id| id != 0) {
                tagged = true;
                break;
            }
        }
        if !tagged {
            continue;
        }
        let mut all = Columns::default();
        for data in &chunks {
            codec::decode_into(data, &mut all)?;
        }
        let all = codec::sort_keeping_last(all);
        let mut by_dataset: BTreeMap<u32, Columns> = BTreeMap::new();
        for ((&t, &value), &dataset) in all.timestamps.iter().zip(&all.values).zip(&all.datasets) {
            let dataset = as_stored(dataset);
            by_dataset
                .entry(dataset)
                .or_default()
                .push(t, value, dataset);
        }
        transaction
            .prepare_cached("DELETE FROM chunks WHERE series_id = ?1")?
            .execute([series_id])?;
        for (dataset_id, columns) in by_dataset {
            let target = if dataset_id == 0 {
                series_id
            } else {
                transaction
                    .prepare_cached(
                        "INSERT INTO series (model, version, metric, dataset_id) VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(rusqlite::params![model, version, metric, dataset_id])?;
                transaction.last_insert_rowid()
            };
            for piece in writer::pieces(&columns) {
                writer::insert_chunk(transaction, target, &piece)?;
            }
        }
    }
    if let Some(id) = default_named {
        transaction.execute("DELETE FROM datasets WHERE id = ?1", [id])?;
    }
    let broken: Option<i64> = transaction
        .query_row("PRAGMA foreign_key_check(chunks)", [], |row| row.get(1))
        .optional()?;
    if let Some(row) = broken {
        return Err(StoreError::Corrupt(format!(
            "chunk {row} refers to a series that does not exist"
        )));
    }
    Ok(())
}

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
    // Rebuilding a table others refer to (schema 9's `series`) needs foreign keys off:
    // SQLite would otherwise check the references to the dropped table. The pragma is
    // ignored inside a transaction, hence here; a migration that rebuilds a table checks
    // the references to it before committing.
    connection.execute_batch("PRAGMA foreign_keys = OFF")?;
    let migrated = apply(connection, version, target);
    connection.execute_batch("PRAGMA foreign_keys = ON")?;
    migrated
}

fn apply(connection: &mut Connection, version: i64, target: i64) -> Result<(), StoreError> {
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
        after_sql(next, &transaction)?;
        transaction.execute_batch(&format!(
            "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {next};"
        ))?;
        transaction.commit()?;
    }
    Ok(())
}
