//! The PostgreSQL schema and its versioned migrations.
//!
//! Applied versions are recorded in `modelwatch_migrations` (one row per version), so a
//! database shows which migrations it has had and when. Migrations run inside one
//! transaction holding a transaction-scoped advisory lock: several servers starting at
//! once on one database migrate it exactly once, and a database written by a newer
//! modelwatch is refused instead of misread.
//!
//! Text columns use the "C" collation so that ordering is by bytes, as in the SQLite
//! backend and in Rust, whatever the database's locale.

use tokio_postgres::Client;

use super::{pg_error, Location};
use crate::StoreError;

/// Key of the advisory lock serialising migrations ("mwat" in ASCII, as SQLite's
/// application id, followed by 1 for "schema").
const MIGRATION_LOCK: i64 = 0x6D77_6174_0000_0001;

/// `(version, description, sql)`: each entry brings the schema from `version - 1` to
/// `version`. Keep the versions contiguous and in order; a version, once landed, never
/// changes.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "samples: series, datasets, samples keyed by (series, time), custom metric definitions",
        // Timestamps are epoch milliseconds in a bigint: exactly the precision of
        // `Timestamp`, no conversion on the hot path, and TimescaleDB accepts integer time
        // columns. The primary key (series_id, ts) is the index every range query, latest
        // lookup and time-bucket aggregate uses. `samples` has no foreign keys on purpose:
        // their per-row trigger checks cost more than the COPY itself (measured: 10,000 rows
        // took 4x longer), and the ids are written only by `samples.rs`, which takes them
        // from `series` and `datasets` in the same transaction.
        r#"CREATE TABLE series (
        id      integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        model   text COLLATE "C" NOT NULL,
        version text COLLATE "C" NOT NULL,
        metric  text COLLATE "C" NOT NULL,
        UNIQUE (model, version, metric)
    );
    CREATE TABLE datasets (
        id   integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name text COLLATE "C" NOT NULL UNIQUE
    );
    CREATE TABLE samples (
        series_id  integer NOT NULL,
        ts         bigint NOT NULL,
        value      double precision NOT NULL,
        dataset_id integer,
        PRIMARY KEY (series_id, ts)
    );
    CREATE TABLE metric_definitions (
        metric    text COLLATE "C" PRIMARY KEY,
        direction text NOT NULL CHECK (direction IN ('higher_is_better', 'lower_is_better')),
        min_value double precision,
        max_value double precision
    );"#,
    ),
    (
        2,
        "alerting: rules, evaluation states, alerts and their transitions, silences, outbox",
        // Rules and alerts are the core's JSON plus the columns queries filter on, as
        // in the SQLite schema.
        r#"CREATE TABLE alert_rules (
        id      text COLLATE "C" PRIMARY KEY,
        model   text COLLATE "C" NOT NULL,
        enabled boolean NOT NULL,
        body    text NOT NULL
    );
    CREATE INDEX alert_rules_by_model ON alert_rules (model, id);
    CREATE TABLE alert_states (
        rule_id              text COLLATE "C" NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
        version              text COLLATE "C" NOT NULL,
        model                text COLLATE "C" NOT NULL,
        consecutive_breaches bigint NOT NULL,
        consecutive_clears   bigint NOT NULL,
        alert_id             text,
        last_observed_ms     bigint,
        revision             bigint NOT NULL,
        PRIMARY KEY (rule_id, version)
    );
    CREATE INDEX alert_states_by_model ON alert_states (model);
    CREATE TABLE alerts (
        id            text COLLATE "C" PRIMARY KEY,
        rule_id       text NOT NULL,
        model         text COLLATE "C" NOT NULL,
        version       text NOT NULL,
        status        text NOT NULL
            CHECK (status IN ('active', 'acknowledged', 'resolved', 'suppressed')),
        severity      text NOT NULL,
        notified      boolean NOT NULL,
        first_seen_ms bigint NOT NULL,
        resolved_ms   bigint,
        body          text NOT NULL
    );
    CREATE INDEX alerts_by_time ON alerts (first_seen_ms);
    CREATE INDEX alerts_by_model_time ON alerts (model, first_seen_ms);
    CREATE INDEX alerts_open ON alerts (model) WHERE resolved_ms IS NULL;
    CREATE TABLE alert_transitions (
        id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        alert_id    text NOT NULL REFERENCES alerts (id),
        at_ms       bigint NOT NULL,
        by_actor    text NOT NULL,
        from_status text,
        to_status   text NOT NULL,
        notes       text
    );
    CREATE INDEX alert_transitions_by_alert ON alert_transitions (alert_id, id);
    CREATE TABLE silences (
        id         text COLLATE "C" PRIMARY KEY,
        model      text NOT NULL,
        version    text,
        metric     text,
        starts_ms  bigint NOT NULL,
        ends_ms    bigint NOT NULL,
        created_by text NOT NULL,
        comment    text NOT NULL,
        created_ms bigint NOT NULL
    );
    CREATE INDEX silences_by_end ON silences (ends_ms);
    CREATE TABLE notification_outbox (
        id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        alert_id        text NOT NULL REFERENCES alerts (id),
        channel         text NOT NULL,
        event           text NOT NULL CHECK (event IN ('firing', 'acknowledged', 'resolved')),
        severity        text NOT NULL,
        payload         text NOT NULL,
        dedup_key       text NOT NULL UNIQUE,
        status          text NOT NULL DEFAULT 'pending'
            CHECK (status IN ('pending', 'delivered', 'failed')),
        attempts        bigint NOT NULL DEFAULT 0,
        next_attempt_ms bigint NOT NULL,
        last_error      text,
        created_ms      bigint NOT NULL,
        delivered_ms    bigint,
        lease_owner     text,
        lease_until_ms  bigint
    );
    CREATE INDEX notification_outbox_due ON notification_outbox (next_attempt_ms)
        WHERE status = 'pending';
    CREATE INDEX notification_outbox_by_alert ON notification_outbox (alert_id, id);"#,
    ),
    (
        3,
        "API tokens (hash only)",
        "CREATE TABLE api_tokens (
        id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name       text NOT NULL,
        scope      text NOT NULL CHECK (scope IN ('read', 'write')),
        hash       text NOT NULL UNIQUE,
        created_ms bigint NOT NULL,
        revoked_ms bigint
    );",
    ),
    (
        4,
        "notification outbox: status skipped for deliveries held back on purpose",
        // `failed` then means a real failure. Rows earlier versions recorded as failed
        // with "skipped: reason" become skipped with the reason alone.
        "ALTER TABLE notification_outbox DROP CONSTRAINT notification_outbox_status_check;
    ALTER TABLE notification_outbox ADD CONSTRAINT notification_outbox_status_check
        CHECK (status IN ('pending', 'delivered', 'failed', 'skipped'));
    UPDATE notification_outbox SET status = 'skipped', last_error = substr(last_error, 10)
        WHERE status = 'failed' AND last_error LIKE 'skipped: %';",
    ),
    (
        5,
        "notification outbox: finished_ms, when a row reached its final state, indexed for retention",
        // Rows already final get the best time there is: delivered ones when they were
        // delivered, failed and skipped ones when their last attempt was due (at or
        // shortly before they finished). The index holds finished rows only (pending
        // ones, which churn, stay out of it); the prune's `finished_ms < $1` implies its
        // predicate (`<` is strict), so the planner range-scans it, generic plans included.
        // Adding a nullable column without a default rewrites nothing.
        "ALTER TABLE notification_outbox ADD COLUMN finished_ms bigint;
    UPDATE notification_outbox
        SET finished_ms = CASE WHEN status = 'delivered'
                               THEN coalesce(delivered_ms, next_attempt_ms)
                               ELSE next_attempt_ms END
        WHERE status <> 'pending';
    CREATE INDEX notification_outbox_finished ON notification_outbox (finished_ms)
        WHERE finished_ms IS NOT NULL;",
    ),
    (
        6,
        "rule states: detail, what else a rule keeps per version (JSON, null when empty)",
        // Null in every existing row, which reads as an empty detail; adding a nullable
        // column without a default rewrites nothing.
        "ALTER TABLE alert_states ADD COLUMN detail text;",
    ),
    (
        7,
        "series: the dataset is part of the series (model, version, metric, dataset); samples of other datasets than the default move into series of their own",
        // `series.dataset_id` is 0 for the default dataset (a real id would need a
        // nullable column, and NULLs are distinct in a UNIQUE constraint), else a
        // `datasets` id. Every series was of the default dataset until now; a series'
        // samples that carried a dataset move to the series of that dataset. A series
        // held one sample per timestamp, so the moves cannot collide. A dataset literally
        // named `default` is the default dataset from now on (the name is reserved).
        "ALTER TABLE series ADD COLUMN dataset_id integer NOT NULL DEFAULT 0;
    ALTER TABLE series DROP CONSTRAINT series_model_version_metric_key;
    ALTER TABLE series ADD CONSTRAINT series_model_version_metric_dataset_key
        UNIQUE (model, version, metric, dataset_id);
    UPDATE samples SET dataset_id = NULL
        WHERE dataset_id IN (SELECT id FROM datasets WHERE name = 'default');
    DELETE FROM datasets WHERE name = 'default';
    INSERT INTO series (model, version, metric, dataset_id)
        SELECT DISTINCT s.model, s.version, s.metric, x.dataset_id
        FROM samples x JOIN series s ON s.id = x.series_id
        WHERE x.dataset_id IS NOT NULL
        ORDER BY 1, 2, 3, 4;
    UPDATE samples x SET series_id = n.id
        FROM series s, series n
        WHERE x.dataset_id IS NOT NULL AND s.id = x.series_id AND s.dataset_id = 0
          AND n.model = s.model AND n.version = s.version AND n.metric = s.metric
          AND n.dataset_id = x.dataset_id;",
    ),
    (
        8,
        "rule states: the dataset joins the key (rule, version, dataset), empty for the default dataset",
        // Rules watch one dataset or each separately, with a state per dataset. Every
        // existing state was of the default dataset; a column with a constant default is
        // added without rewriting the table.
        r#"ALTER TABLE alert_states ADD COLUMN dataset text COLLATE "C" NOT NULL DEFAULT '';
    ALTER TABLE alert_states DROP CONSTRAINT alert_states_pkey;
    ALTER TABLE alert_states ADD PRIMARY KEY (rule_id, version, dataset);"#,
    ),
    (
        9,
        "predictions and labels: one row per prediction with its label, pending labels, prediction configs",
        // As in SQLite (schema 12): the label sits on its prediction's row, joined by the
        // primary key; a label without its prediction waits in pending_labels; the
        // dataset is empty text for the default one. Writes of predictions and labels
        // take one advisory lock, so a label and its prediction never pass each other.
        r#"CREATE TABLE predictions (
        model    text COLLATE "C" NOT NULL,
        id       text COLLATE "C" NOT NULL,
        version  text COLLATE "C" NOT NULL,
        dataset  text COLLATE "C" NOT NULL,
        ts       bigint NOT NULL,
        class    smallint,
        score    double precision,
        value    double precision,
        truth    double precision,
        label_ms bigint,
        labels   integer NOT NULL DEFAULT 0,
        PRIMARY KEY (model, id)
    );
    CREATE INDEX predictions_by_window ON predictions (model, version, dataset, ts);
    CREATE TABLE pending_labels (
        model       text COLLATE "C" NOT NULL,
        id          text COLLATE "C" NOT NULL,
        truth       double precision NOT NULL,
        label_ms    bigint,
        received_ms bigint NOT NULL,
        labels      integer NOT NULL,
        PRIMARY KEY (model, id)
    );
    CREATE INDEX pending_labels_by_age ON pending_labels (received_ms);
    CREATE TABLE prediction_configs (
        model          text COLLATE "C" PRIMARY KEY,
        window_minutes bigint NOT NULL,
        task           text NOT NULL CHECK (task IN ('classification', 'regression')),
        threshold      double precision NOT NULL,
        min_coverage   double precision NOT NULL
    );"#,
    ),
    (
        10,
        "prediction windows: every revision of a window's metrics, its judgement; the maximum label delay",
        // As in SQLite (schema 13).
        r#"ALTER TABLE prediction_configs
        ADD COLUMN max_label_delay_minutes bigint NOT NULL DEFAULT 10080;
    CREATE TABLE prediction_windows (
        model           text COLLATE "C" NOT NULL,
        version         text COLLATE "C" NOT NULL,
        dataset         text COLLATE "C" NOT NULL,
        start_ms        bigint NOT NULL,
        end_ms          bigint NOT NULL,
        revisions       integer NOT NULL,
        judged_ms       bigint,
        judged_revision integer,
        judged_by       text,
        PRIMARY KEY (model, version, dataset, start_ms)
    );
    CREATE INDEX prediction_windows_waiting ON prediction_windows (model, version, dataset, start_ms)
        WHERE judged_ms IS NULL;
    CREATE TABLE prediction_window_revisions (
        model       text COLLATE "C" NOT NULL,
        version     text COLLATE "C" NOT NULL,
        dataset     text COLLATE "C" NOT NULL,
        start_ms    bigint NOT NULL,
        revision    integer NOT NULL,
        computed_ms bigint NOT NULL,
        predicted   bigint NOT NULL,
        labelled    bigint NOT NULL,
        metrics     text NOT NULL,
        PRIMARY KEY (model, version, dataset, start_ms, revision)
    );"#,
    ),
    (
        11,
        "prediction window sketches: each window's scores, for drift",
        // As in SQLite (schema 14).
        r#"CREATE TABLE prediction_window_sketches (
        model     text COLLATE "C" NOT NULL,
        version   text COLLATE "C" NOT NULL,
        dataset   text COLLATE "C" NOT NULL,
        start_ms  bigint NOT NULL,
        end_ms    bigint NOT NULL,
        count     bigint NOT NULL,
        sketch    text NOT NULL,
        recorded  integer NOT NULL,
        drift_of  integer NOT NULL DEFAULT 0,
        drift_ms  bigint,
        PRIMARY KEY (model, version, dataset, start_ms)
    );
    CREATE INDEX prediction_window_sketches_due
        ON prediction_window_sketches (model, version, dataset, start_ms)
        WHERE drift_of < recorded;"#,
    ),
    (
        12,
        "alerts: revision, the compare-and-swap guard of alert updates (existing alerts: 1)",
        // As in SQLite (schema 15): one more on every write, an update guarded by
        // `WHERE revision = $n`; the JSON is no longer compared. A constant default adds
        // the column without rewriting the table.
        "ALTER TABLE alerts ADD COLUMN revision bigint NOT NULL DEFAULT 1;",
    ),
    (
        13,
        "samples: sealed chunks, a series' points compressed by the chunk codec; `samples` is the head",
        // One row per chunk of one series' points (the codec SQLite seals with), keyed by
        // its last time: chunks of a series never overlap, so the key finds the chunks a
        // range overlaps with one index range scan. The codec's output does not compress
        // further: EXTERNAL spares TOAST the attempt. Existing samples stay in `samples`,
        // now the head, and are sealed as their series are written to or pruned.
        "CREATE TABLE sample_chunks (
        series_id integer NOT NULL,
        first_ts  bigint NOT NULL,
        last_ts   bigint NOT NULL,
        count     integer NOT NULL,
        data      bytea NOT NULL,
        PRIMARY KEY (series_id, last_ts)
    );
    ALTER TABLE sample_chunks ALTER COLUMN data SET STORAGE EXTERNAL;",
    ),
    (
        14,
        "raw prediction retention: by model, the time before which raw predictions were pruned",
        // As in SQLite (schema 16).
        r#"CREATE TABLE prediction_retention (
        model            text COLLATE "C" PRIMARY KEY,
        pruned_before_ms bigint NOT NULL
    );"#,
    ),
    (
        15,
        "prediction window sketches: each window's sketch of each named feature, for feature drift",
        // As in SQLite (schema 17).
        "ALTER TABLE prediction_window_sketches ADD COLUMN features text NOT NULL DEFAULT '';",
    ),
    (
        16,
        "dirty prediction windows: marked with their predictions or labels, cleared once recomputed",
        // As in SQLite (schema 18).
        r#"CREATE TABLE prediction_windows_dirty (
        model    text COLLATE "C" NOT NULL,
        version  text COLLATE "C" NOT NULL,
        dataset  text COLLATE "C" NOT NULL,
        start_ms bigint NOT NULL,
        end_ms   bigint NOT NULL,
        marks    bigint NOT NULL,
        PRIMARY KEY (model, version, dataset, start_ms)
    );"#,
    ),
    (
        17,
        "raw predictions as columnar blocks: an id index to each prediction's location, labels by location",
        // As in SQLite (schema 19); the rows of `predictions` move into blocks after the
        // SQL (prediction_blocks::move_rows_into_blocks), then the table goes. The blocks
        // are already compact: EXTERNAL spares TOAST the attempt to compress them.
        r#"CREATE TABLE prediction_models (
        key   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        model text COLLATE "C" NOT NULL UNIQUE
    );
    CREATE TABLE prediction_blocks (
        key      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        model    text COLLATE "C" NOT NULL,
        version  text COLLATE "C" NOT NULL,
        dataset  text COLLATE "C" NOT NULL,
        start_ms bigint NOT NULL,
        end_ms   bigint NOT NULL,
        min_ms   bigint NOT NULL,
        max_ms   bigint NOT NULL,
        count    integer NOT NULL,
        data     bytea NOT NULL
    );
    ALTER TABLE prediction_blocks ALTER COLUMN data SET STORAGE EXTERNAL;
    CREATE INDEX prediction_blocks_by_time
        ON prediction_blocks (model, version, dataset, max_ms, min_ms);
    CREATE INDEX prediction_blocks_by_window
        ON prediction_blocks (model, version, dataset, start_ms);
    CREATE TABLE prediction_ids (
        model    bigint NOT NULL,
        id       text COLLATE "C" NOT NULL,
        location bigint NOT NULL,
        PRIMARY KEY (model, id)
    );
    CREATE TABLE prediction_labels (
        location bigint PRIMARY KEY,
        truth    double precision NOT NULL,
        label_ms bigint,
        labels   integer NOT NULL
    );"#,
    ),
];

pub const LATEST_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// Brings the database's schema to [`LATEST_VERSION`]; turns `samples` into a hypertable
/// when TimescaleDB is available.
pub async fn migrate(client: &mut Client, location: &Location) -> Result<(), StoreError> {
    migrate_to(client, location, LATEST_VERSION).await
}

/// Brings the schema to `target`: tests use an older target to build what an earlier
/// modelwatch left behind.
pub(crate) async fn migrate_to(
    client: &mut Client,
    location: &Location,
    target: i64,
) -> Result<(), StoreError> {
    let transaction = client.transaction().await.map_err(pg_error)?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg_error)?;
    transaction
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS modelwatch_migrations (
                version     bigint PRIMARY KEY,
                description text NOT NULL,
                applied_at  timestamptz NOT NULL DEFAULT now()
            )",
        )
        .await
        .map_err(pg_error)?;
    let current: i64 = transaction
        .query_one(
            "SELECT coalesce(max(version), 0) FROM modelwatch_migrations",
            &[],
        )
        .await
        .map_err(pg_error)?
        .try_get(0)
        .map_err(pg_error)?;
    if current > LATEST_VERSION {
        return Err(StoreError::SchemaTooNew {
            path: location.redacted().into(),
            found: current,
            supported: LATEST_VERSION,
        });
    }
    let fresh = current == 0;
    for &(version, description, sql) in MIGRATIONS
        .iter()
        .filter(|(v, _, _)| *v > current && *v <= target)
    {
        transaction.batch_execute(sql).await.map_err(pg_error)?;
        if version == 17 {
            super::prediction_blocks::move_rows_into_blocks(&transaction).await?;
        }
        transaction
            .execute(
                "INSERT INTO modelwatch_migrations (version, description) VALUES ($1, $2)",
                &[&version, &description],
            )
            .await
            .map_err(pg_error)?;
    }
    if fresh {
        make_hypertable_if_possible(&transaction).await?;
    }
    transaction.commit().await.map_err(pg_error)
}

/// Turns `samples` into a TimescaleDB hypertable (week-long chunks of the millisecond
/// time column) when the extension is installed on the server or already created in
/// the database. Without it nothing changes: plain PostgreSQL serves the same queries
/// from the primary key. A failure inside the guarded block (no permission to create the
/// extension, say) is rolled back to a savepoint and leaves plain tables.
async fn make_hypertable_if_possible(
    transaction: &tokio_postgres::Transaction<'_>,
) -> Result<(), StoreError> {
    let available = transaction
        .query_opt(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'",
            &[],
        )
        .await
        .map_err(pg_error)?
        .is_some();
    if !available {
        return Ok(());
    }
    transaction
        .batch_execute("SAVEPOINT timescale")
        .await
        .map_err(pg_error)?;
    let converted = transaction
        .batch_execute(
            "CREATE EXTENSION IF NOT EXISTS timescaledb;
             SELECT create_hypertable('samples', 'ts', chunk_time_interval => 604800000::bigint,
                                      migrate_data => true);",
        )
        .await;
    match converted {
        Ok(()) => {
            tracing::info!("samples table is a TimescaleDB hypertable (week-long chunks)");
            transaction
                .batch_execute("RELEASE SAVEPOINT timescale")
                .await
        }
        // Typically: the library is installed but not preloaded, or we may not create
        // extensions. Plain tables serve the same queries, so keep them, but say so: an
        // operator who installed TimescaleDB expects a hypertable.
        Err(error) => {
            tracing::warn!(
                error = %error,
                "TimescaleDB is installed but the samples table could not become a hypertable; \
                 keeping plain PostgreSQL tables (is timescaledb in shared_preload_libraries, \
                 and may this role create extensions?)"
            );
            transaction
                .batch_execute("ROLLBACK TO SAVEPOINT timescale")
                .await
        }
    }
    .map_err(pg_error)
}

/// Whether the server is PGlite: PostgreSQL compiled by Emscripten, which says so in its
/// version string.
pub async fn is_pglite(client: &Client) -> Result<bool, StoreError> {
    let version: String = client
        .query_one("SELECT version()", &[])
        .await
        .and_then(|row| row.try_get(0))
        .map_err(pg_error)?;
    Ok(version.contains("Emscripten"))
}

/// Whether `samples` is a TimescaleDB hypertable (for tests and diagnostics).
pub async fn is_hypertable(client: &Client) -> Result<bool, StoreError> {
    let has_catalog = client
        .query_opt(
            "SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'",
            &[],
        )
        .await
        .map_err(pg_error)?
        .is_some();
    if !has_catalog {
        return Ok(false);
    }
    Ok(client
        .query_opt(
            "SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = 'samples'",
            &[],
        )
        .await
        .map_err(pg_error)?
        .is_some())
}

#[cfg(test)]
mod tests {
    use tokio_postgres::NoTls;

    use modelwatch_core::Timestamp;

    use super::*;
    use crate::alerts::{DeliveryStatus, NotificationFilter};
    use crate::postgres::testing::TestDatabase;

    /// Schema 3 recorded deliveries held back on purpose as failed with "skipped: …";
    /// schema 4 turns them into `skipped` rows and leaves real failures alone.
    #[tokio::test]
    async fn outbox_rows_failed_as_skipped_become_skipped() {
        let database = TestDatabase::create("outbox_v4").await;
        let (mut client, connection) = tokio_postgres::connect(database.url(), NoTls)
            .await
            .unwrap();
        let driver = tokio::spawn(connection);
        migrate_to(&mut client, &Location::new(database.url()), 3)
            .await
            .unwrap();
        client
            .batch_execute(
                "INSERT INTO alerts (id, rule_id, model, version, status, severity, notified,
                     first_seen_ms, body)
                 VALUES ('alert_00000001', 'rule_00000001', 'm', 'v1', 'acknowledged', 'high',
                     true, 1000, '{}');
                 INSERT INTO notification_outbox (alert_id, channel, event, severity, payload,
                     dedup_key, status, next_attempt_ms, created_ms, last_error)
                 VALUES ('alert_00000001', 'ops', 'firing', 'high', '{}', 'k1', 'failed', 1000,
                     1000, 'skipped: alert was acknowledged by alice before delivery'),
                    ('alert_00000001', 'team', 'firing', 'high', '{}', 'k2', 'failed', 1000,
                     1000, '410 gone (not retried)');",
            )
            .await
            .unwrap();
        drop(client);
        let _ = driver.await;

        let stores = crate::open(database.url()).await.unwrap();
        let rows = stores
            .alerts
            .list_notifications(&NotificationFilter::default())
            .await
            .unwrap();
        let statuses: Vec<(DeliveryStatus, Option<&str>)> = rows
            .iter()
            .map(|r| (r.status, r.last_error.as_deref()))
            .collect();
        assert_eq!(
            statuses,
            [
                (
                    DeliveryStatus::Skipped,
                    Some("alert was acknowledged by alice before delivery")
                ),
                (DeliveryStatus::Failed, Some("410 gone (not retried)")),
            ]
        );
    }

    /// Outbox rows are written as `{"facts": …}`; a row written before that, with the alert
    /// as of its event, still reads as that snapshot.
    #[tokio::test]
    async fn outbox_rows_of_the_previous_payload_format_read_as_their_alert_snapshot() {
        use crate::alerts::conformance::{alert, rule};
        use crate::alerts::{AlertCommit, AlertWriteGuarded, OutboxPayload};
        use modelwatch_core::alerting::Alert;

        let database = TestDatabase::create("outbox_payload").await;
        let stores = crate::open(database.url()).await.unwrap();
        let a = alert(7, &rule(1, "fraud"), "v1", 10_000);
        let insert = AlertCommit {
            alert: Some(AlertWriteGuarded::insert(a.clone())),
            ..AlertCommit::default()
        };
        stores.alerts.commit(vec![insert]).await.unwrap();
        let body: serde_json::Value =
            serde_json::from_str(&crate::alerts::records::alert_body(&a).unwrap()).unwrap();
        let old =
            serde_json::json!({"event": "firing", "channel": "ops", "alert": body}).to_string();
        let (client, connection) = tokio_postgres::connect(database.url(), NoTls)
            .await
            .unwrap();
        let driver = tokio::spawn(connection);
        client
            .execute(
                "INSERT INTO notification_outbox (alert_id, channel, event, severity, payload,
                     dedup_key, status, next_attempt_ms, created_ms)
                 VALUES ($1, 'ops', 'firing', 'high', $2, 'k1', 'pending', 1000, 1000)",
                &[&a.id.as_str(), &old],
            )
            .await
            .unwrap();
        drop(client);
        let _ = driver.await;
        let rows = stores
            .alerts
            .list_notifications(&NotificationFilter::default())
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            rows[0].payload,
            OutboxPayload::Snapshot(Box::new(Alert { revision: 0, ..a }))
        );
    }

    /// Schema 5 records when an outbox row finished. Rows a schema 4 database holds get
    /// the best time it has: delivered ones their delivery time, failed and skipped ones
    /// when their last attempt was due; pending ones, leased or not, none. Pruning then
    /// goes by it.
    #[tokio::test]
    async fn finished_outbox_rows_of_schema_4_get_a_finishing_time() {
        let database = TestDatabase::create("outbox_v5").await;
        let (mut client, connection) = tokio_postgres::connect(database.url(), NoTls)
            .await
            .unwrap();
        let driver = tokio::spawn(connection);
        migrate_to(&mut client, &Location::new(database.url()), 4)
            .await
            .unwrap();
        client
            .batch_execute(
                "INSERT INTO alerts (id, rule_id, model, version, status, severity, notified,
                     first_seen_ms, body)
                 VALUES ('alert_00000001', 'rule_00000001', 'm', 'v1', 'active', 'high',
                     true, 1000, '{}');
                 INSERT INTO notification_outbox (id, alert_id, channel, event, severity,
                     payload, dedup_key, status, attempts, next_attempt_ms, created_ms,
                     delivered_ms, last_error, lease_owner, lease_until_ms)
                 OVERRIDING SYSTEM VALUE VALUES
                    (3, 'alert_00000001', 'a', 'firing', 'high', '{}', 'k1', 'delivered', 1,
                     1000, 1000, 1500, NULL, NULL, NULL),
                    (5, 'alert_00000001', 'b', 'firing', 'high', '{}', 'k2', 'failed', 4,
                     9000, 1000, NULL, '410 gone', NULL, NULL),
                    (8, 'alert_00000001', 'c', 'firing', 'high', '{}', 'k3', 'skipped', 1,
                     2000, 1000, NULL, 'acknowledged', NULL, NULL),
                    (9, 'alert_00000001', 'd', 'firing', 'high', '{}', 'k4', 'pending', 2,
                     4000, 1000, NULL, 'timeout', 'w1', 99000),
                    (11, 'alert_00000001', 'e', 'firing', 'high', '{}', 'k5', 'pending', 0,
                     1000, 1000, NULL, NULL, NULL, NULL);",
            )
            .await
            .unwrap();
        drop(client);
        let _ = driver.await;

        let stores = crate::open(database.url()).await.unwrap();
        let all = NotificationFilter::default();
        let finished: Vec<(i64, Option<i64>)> = stores
            .alerts
            .list_notifications(&all)
            .await
            .unwrap()
            .iter()
            .map(|n| (n.id, n.finished_at.map(Timestamp::as_millis)))
            .collect();
        assert_eq!(
            finished,
            [
                (3, Some(1500)),
                (5, Some(9000)),
                (8, Some(2000)),
                (9, None),
                (11, None)
            ]
        );
        let at = |ms| Timestamp::from_millis(ms).unwrap();
        let prune = |ms| stores.alerts.delete_finished_notifications(at(ms));
        assert_eq!(prune(2_000).await.unwrap(), 1);
        assert_eq!(prune(9_001).await.unwrap(), 2);
        let left: Vec<i64> = stores
            .alerts
            .list_notifications(&all)
            .await
            .unwrap()
            .iter()
            .map(|n| n.id)
            .collect();
        assert_eq!(left, [9, 11]);
    }

    /// What a schema 6 modelwatch (one series per model, version and metric, a dataset
    /// per sample) left behind becomes one series per dataset at schema 7, every sample
    /// kept; a sample tagged `default` is in the default dataset.
    #[tokio::test]
    async fn schema_6_series_are_split_by_dataset_keeping_every_sample() {
        use crate::{DatasetScope, SeriesFilter};
        use modelwatch_core::{Dataset, Sample, SeriesKey, TimeRange};

        let database = TestDatabase::create("series_v7").await;
        let (mut client, connection) = tokio_postgres::connect(database.url(), NoTls)
            .await
            .unwrap();
        let driver = tokio::spawn(connection);
        migrate_to(&mut client, &Location::new(database.url()), 6)
            .await
            .unwrap();
        client
            .batch_execute(
                "INSERT INTO series (id, model, version, metric) OVERRIDING SYSTEM VALUE VALUES
                     (1, 'fraud', 'v1', 'accuracy'), (2, 'fraud', 'v1', 'latency');
                 SELECT setval(pg_get_serial_sequence('series', 'id'), 2);
                 INSERT INTO datasets (id, name) OVERRIDING SYSTEM VALUE VALUES
                     (1, 'prod'), (2, 'canary'), (3, 'default');
                 SELECT setval(pg_get_serial_sequence('datasets', 'id'), 3);
                 INSERT INTO samples (series_id, ts, value, dataset_id) VALUES
                     (1, 1, 0.90, 1), (1, 2, 0.95, 1), (1, 3, 0.80, NULL), (1, 4, 0.85, 3),
                     (1, 5, 0.75, 2), (2, 1, 20.0, NULL), (2, 2, 21.0, NULL);",
            )
            .await
            .unwrap();
        drop(client);
        let _ = driver.await;

        let stores = crate::open(database.url()).await.unwrap();
        let store = &stores.metrics;
        let dataset = |name: &str| Dataset::parse_optional(name).unwrap();
        let read = |metric: &str, on: &str| {
            let key = SeriesKey::parse("fraud", "v1", metric)
                .unwrap()
                .with_dataset(dataset(on));
            async move {
                store
                    .range(&key, TimeRange::all())
                    .await
                    .unwrap()
                    .iter()
                    .map(|p| (p.timestamp.as_millis(), p.value, p.dataset.clone()))
                    .collect::<Vec<_>>()
            }
        };
        let listed: Vec<String> = store
            .list_series(&SeriesFilter::default())
            .await
            .unwrap()
            .iter()
            .map(|s| s.key.to_string())
            .collect();
        assert_eq!(
            listed,
            [
                "fraud/v1/accuracy",
                "fraud/v1/accuracy [canary]",
                "fraud/v1/accuracy [prod]",
                "fraud/v1/latency"
            ]
        );
        assert_eq!(
            read("accuracy", "default").await,
            [(3, 0.80, None), (4, 0.85, None)]
        );
        assert_eq!(
            read("accuracy", "prod").await,
            [(1, 0.90, dataset("prod")), (2, 0.95, dataset("prod"))]
        );
        assert_eq!(
            read("accuracy", "canary").await,
            [(5, 0.75, dataset("canary"))]
        );
        assert_eq!(read("latency", "default").await.len(), 2);

        // New samples of each dataset go to their series; "default" is no dataset of
        // its own any more.
        let fraud = |value: f64, on: &str| Sample {
            model: modelwatch_core::ModelName::parse("fraud").unwrap(),
            version: modelwatch_core::Version::parse("v1").unwrap(),
            metric: modelwatch_core::Metric::Accuracy,
            value,
            timestamp: Timestamp::from_millis(6).unwrap(),
            dataset: dataset(on),
        };
        store
            .append(vec![fraud(0.65, "canary"), fraud(0.81, "default")])
            .await
            .unwrap();
        assert_eq!(read("accuracy", "canary").await.len(), 2);
        assert_eq!(read("accuracy", "default").await.len(), 3);
        let only_default = SeriesFilter {
            dataset: DatasetScope::One(None),
            ..SeriesFilter::default()
        };
        assert_eq!(store.list_series(&only_default).await.unwrap().len(), 2);
        let (client, connection) = tokio_postgres::connect(database.url(), NoTls)
            .await
            .unwrap();
        let driver = tokio::spawn(connection);
        let names: Vec<String> = client
            .query("SELECT name FROM datasets ORDER BY name", &[])
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert_eq!(names, ["canary", "prod"]);
        drop(client);
        let _ = driver.await;
    }

    /// A schema 7 database's rule states (keyed by rule and version) become the default
    /// dataset's states at schema 8, every column kept; the rule can then keep a state
    /// per dataset, and a stale write to one dataset's state still conflicts.
    #[tokio::test]
    async fn schema_7_rule_states_become_the_default_dataset_s() {
        use crate::alerts::{conformance, AlertCommit, CommitOutcome, StateWrite};
        use modelwatch_core::alerting::AlertId;
        use modelwatch_core::Dataset;

        let database = TestDatabase::create("states_v8").await;
        let (mut client, connection) = tokio_postgres::connect(database.url(), NoTls)
            .await
            .unwrap();
        let driver = tokio::spawn(connection);
        migrate_to(&mut client, &Location::new(database.url()), 7)
            .await
            .unwrap();
        let rule = conformance::rule(1, "fraud");
        let body = crate::alerts::records::rule_body(&rule)
            .unwrap()
            .replace(r#""dataset":"default","#, "");
        client
            .execute(
                "INSERT INTO alert_rules (id, model, enabled, body) VALUES ($1, 'fraud', true, $2)",
                &[&rule.id.as_str(), &body],
            )
            .await
            .unwrap();
        client
            .batch_execute(
                r#"INSERT INTO alert_states (rule_id, version, model, consecutive_breaches,
                     consecutive_clears, alert_id, last_observed_ms, revision, detail)
                 VALUES ('rule_00000001', 'v1', 'fraud', 3, 0, 'alert_00000009', 5000, 7,
                     '{"past_breaches":[{"would_have_fired_at":"1970-01-01T00:00:00.001Z","value":0.5}]}'),
                    ('rule_00000001', 'v2', 'fraud', 1, 2, NULL, 6000, 4, NULL);"#,
            )
            .await
            .unwrap();
        drop(client);
        let _ = driver.await;

        let stores = crate::open(database.url()).await.unwrap();
        let store = &stores.alerts;
        assert_eq!(store.rule(&rule.id).await.unwrap(), Some(rule.clone()));
        let mut states = store.states(None).await.unwrap();
        states.sort_by(|a, b| a.version.cmp(&b.version));
        let seen: Vec<_> = states
            .iter()
            .map(|s| {
                (
                    s.version.as_str(),
                    s.dataset.clone(),
                    s.state.consecutive_breaches,
                    s.state.alert_id.clone(),
                    s.state.last_observed_at.map(Timestamp::as_millis),
                    s.state.revision,
                    s.state.detail.past_breaches.len(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("v1", None, 3, Some(AlertId::from_u32(9)), Some(5000), 7, 1),
                ("v2", None, 1, None, Some(6000), 4, 0)
            ]
        );
        let write = |dataset: Option<Dataset>, previous_revision: u64| AlertCommit {
            state: Some(StateWrite {
                rule_id: rule.id.clone(),
                model: rule.model.clone(),
                version: states[0].version.clone(),
                dataset,
                previous_revision,
                next: states[0].state.clone(),
            }),
            ..AlertCommit::default()
        };
        let canary = Some(Dataset::parse("canary").unwrap());
        assert_eq!(
            store
                .commit(vec![write(canary, 0), write(None, 0)])
                .await
                .unwrap(),
            [CommitOutcome::Applied, CommitOutcome::Conflict]
        );
        assert_eq!(store.states(None).await.unwrap().len(), 3);
    }

    /// A schema 11 database guarded alert updates by comparing the alert's JSON; schema
    /// 12 gives every alert revision 1, and the database keeps working: the alert reads
    /// back with it, an update from it lands (revision 2), one from the old revision
    /// conflicts.
    /// Migration 17 moves the rows of `predictions` into columnar blocks: every window
    /// holds the same predictions and labels, ids keep joining labels and refusing
    /// duplicates, a pending label still waits (the suite SQLite's schema 19 passes).
    #[tokio::test]
    async fn schema_16_predictions_move_into_blocks_with_the_same_metrics() {
        use crate::predictions::conformance::{legacy_rows, rows_moved_into_blocks_read_back};

        let database = TestDatabase::create("predictions_v16").await;
        let (mut client, connection) = tokio_postgres::connect(database.url(), NoTls)
            .await
            .unwrap();
        let driver = tokio::spawn(connection);
        migrate_to(&mut client, &Location::new(database.url()), 16)
            .await
            .unwrap();
        client
            .execute(
                "INSERT INTO prediction_configs (model, window_minutes, task, threshold,
                    min_coverage, max_label_delay_minutes)
                 VALUES ('fraud', 120, 'classification', 0.5, 0.0, 10080)",
                &[],
            )
            .await
            .unwrap();
        let rows = legacy_rows();
        for row in &rows {
            let (class, score, value) = crate::predictions::output_columns(&row.output);
            client
                .execute(
                    "INSERT INTO predictions
                        (model, id, version, dataset, ts, class, score, value, truth, label_ms,
                         labels)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                    &[
                        &row.model,
                        &row.id,
                        &row.version,
                        &row.dataset,
                        &row.ts,
                        &class.map(|c| c as i16),
                        &score,
                        &value,
                        &row.label.map(|l| l.0),
                        &row.label.map(|_| row.ts + 5),
                        &row.label.map_or(0, |l| l.1 as i32),
                    ],
                )
                .await
                .unwrap();
        }
        client
            .execute(
                "INSERT INTO pending_labels (model, id, truth, label_ms, received_ms, labels)
                 VALUES ('fraud', 'late', 1.0, NULL, 0, 1)",
                &[],
            )
            .await
            .unwrap();
        drop(client);
        let _ = driver.await;

        let store = crate::PostgresStore::open(database.url()).await.unwrap();
        rows_moved_into_blocks_read_back(&store, &rows).await;
    }

    #[tokio::test]
    async fn schema_11_alerts_get_revision_1_and_keep_being_updated() {
        use crate::alerts::conformance::{alert, rule};
        use crate::alerts::{AlertCommit, AlertWriteGuarded, CommitOutcome};
        use modelwatch_core::alerting::{Alert, AlertStatus};

        let database = TestDatabase::create("alerts_v12").await;
        let (mut client, connection) = tokio_postgres::connect(database.url(), NoTls)
            .await
            .unwrap();
        let driver = tokio::spawn(connection);
        migrate_to(&mut client, &Location::new(database.url()), 11)
            .await
            .unwrap();
        let r = rule(1, "fraud");
        let fired = alert(7, &r, "v1", 10_000);
        client
            .execute(
                "INSERT INTO alerts (id, rule_id, model, version, status, severity, notified,
                     first_seen_ms, body)
                 VALUES ($1, $2, 'fraud', 'v1', 'active', 'high', true, 10000, $3)",
                &[
                    &fired.id.as_str(),
                    &r.id.as_str(),
                    &crate::alerts::records::alert_body(&fired).unwrap(),
                ],
            )
            .await
            .unwrap();
        drop(client);
        let _ = driver.await;

        let stores = crate::open(database.url()).await.unwrap();
        let store = &stores.alerts;
        let read = store.alert(&fired.id).await.unwrap().unwrap();
        assert_eq!(
            read,
            Alert {
                revision: 1,
                ..fired.clone()
            }
        );
        let mut acknowledged = read.clone();
        acknowledged.status = AlertStatus::Acknowledged;
        acknowledged.acknowledged_by = Some("ana".into());
        let update = |write: AlertWriteGuarded| AlertCommit {
            alert: Some(write),
            ..AlertCommit::default()
        };
        let acknowledged = AlertWriteGuarded::replace(&read, acknowledged);
        let stale = AlertWriteGuarded::replace(&read, read.clone());
        assert_eq!(
            store
                .commit(vec![update(acknowledged.clone()), update(stale)])
                .await
                .unwrap(),
            [CommitOutcome::Applied, CommitOutcome::Conflict]
        );
        let stored = store.alert(&fired.id).await.unwrap().unwrap();
        assert_eq!(stored, acknowledged.alert);
        assert_eq!(stored.revision, 2);
    }

    /// The prune's statement can read the finished-rows index, with the cutoff as a
    /// parameter (a generic plan, as a prepared statement may get). Sequential scans are
    /// disabled because an almost empty table is cheaper to scan: the point is that the
    /// index matches the condition at all.
    #[tokio::test]
    async fn pruning_the_outbox_can_read_the_finished_index() {
        let database = TestDatabase::create("outbox_plan").await;
        let (mut client, connection) = tokio_postgres::connect(database.url(), NoTls)
            .await
            .unwrap();
        let driver = tokio::spawn(connection);
        migrate(&mut client, &Location::new(database.url()))
            .await
            .unwrap();
        client
            .batch_execute(&format!(
                "SET enable_seqscan = off;
                 SET plan_cache_mode = force_generic_plan;
                 PREPARE prune (bigint, bigint) AS
                     SELECT id FROM notification_outbox
                     WHERE {} $1 LIMIT $2;",
                crate::alerts::FINISHED_BEFORE
            ))
            .await
            .unwrap();
        let plan: Vec<String> = client
            .query("EXPLAIN EXECUTE prune(70000, 2)", &[])
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert!(
            plan.iter()
                .any(|line| line.contains("Index Scan using notification_outbox_finished")),
            "{plan:#?}"
        );
        drop(client);
        let _ = driver.await;
    }
}
