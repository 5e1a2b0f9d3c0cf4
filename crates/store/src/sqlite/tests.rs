//! Behaviour only the SQLite backend has: files, schema versions, durability, compaction.

use modelwatch_core::{Sample, SeriesKey, TimeRange, Timestamp};
use rusqlite::Connection;

use super::schema::{self, APPLICATION_ID, LATEST_VERSION};
use super::SqliteStore;
use crate::{MetricStore, StoreError};

fn sample(metric: &str, value: f64, ms: i64) -> Sample {
    let key = SeriesKey::parse("m", "v1", metric).unwrap();
    Sample {
        model: key.model,
        version: key.version,
        metric: key.metric,
        value,
        timestamp: Timestamp::from_millis(ms).unwrap(),
        dataset: None,
    }
}

fn series(metric: &str) -> SeriesKey {
    SeriesKey::parse("m", "v1", metric).unwrap()
}

#[tokio::test]
async fn data_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/m.db");
    let store = SqliteStore::open(&path).await.unwrap();
    store
        .append(vec![
            sample("accuracy", 0.91, 1),
            sample("accuracy", 0.92, 2),
        ])
        .await
        .unwrap();
    // A reader is open (and stays open) when the store closes.
    assert_eq!(
        store
            .range(&series("accuracy"), TimeRange::all())
            .await
            .unwrap()
            .len(),
        2
    );
    store.close().await.unwrap();
    assert!(matches!(
        store.append(vec![sample("accuracy", 0.9, 3)]).await,
        Err(StoreError::Closed)
    ));
    // A clean close leaves no write-ahead log behind.
    let wal = path.with_extension("db-wal");
    assert_eq!(std::fs::metadata(&wal).map_or(0, |m| m.len()), 0);
    let reopened = SqliteStore::open(&path).await.unwrap();
    let points = reopened
        .range(&series("accuracy"), TimeRange::all())
        .await
        .unwrap();
    assert_eq!(
        points.iter().map(|p| p.value).collect::<Vec<_>>(),
        [0.91, 0.92]
    );
}

#[tokio::test]
async fn newer_schema_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    SqliteStore::open(&path)
        .await
        .unwrap()
        .close()
        .await
        .unwrap();
    Connection::open(&path)
        .unwrap()
        .execute_batch(&format!("PRAGMA user_version = {}", LATEST_VERSION + 1))
        .unwrap();
    let error = SqliteStore::open(&path).await.unwrap_err();
    assert!(matches!(error, StoreError::SchemaTooNew { .. }), "{error}");
    assert!(error.to_string().contains("upgrade modelwatch"));
}

#[tokio::test]
async fn foreign_sqlite_file_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('keep');")
        .unwrap();
    assert!(matches!(
        SqliteStore::open(&path).await,
        Err(StoreError::ForeignDatabase { .. })
    ));
    let kept: String = Connection::open(&path)
        .unwrap()
        .query_row("SELECT body FROM notes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(kept, "keep");
    let garbage = dir.path().join("garbage.db");
    std::fs::write(
        &garbage,
        b"this is not a database at all, just text that is long enough",
    )
    .unwrap();
    assert!(SqliteStore::open(&garbage).await.is_err());
}

#[tokio::test]
async fn older_schema_is_migrated_keeping_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        // What a modelwatch with schema 1 left behind: one series, one chunk.
        let mut connection = Connection::open(&path).unwrap();
        schema::migrate(&mut connection, &path, 1).unwrap();
        let mut columns = crate::codec::Columns::default();
        columns.push(10, 12.5, 0);
        connection
            .execute(
                "INSERT INTO series (id, model, version, metric) VALUES (1, 'm', 'v1', 'latency')",
                [],
            )
            .unwrap();
        connection
            .execute(
                "INSERT INTO chunks (series_id, min_ms, max_ms, count, data) VALUES (1, 10, 10, 1, ?1)",
                [crate::codec::encode(&columns)],
            )
            .unwrap();
    }
    let version: i64 = Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 1);

    let store = SqliteStore::open(&path).await.unwrap();
    let connection = Connection::open(&path).unwrap();
    let version: i64 = connection
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    let app: i64 = connection
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .unwrap();
    assert_eq!((version, app), (LATEST_VERSION, APPLICATION_ID));
    assert_eq!(
        store
            .latest(&series("latency"))
            .await
            .unwrap()
            .map(|p| p.value),
        Some(12.5)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_batches_are_compacted_into_few_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    let store = SqliteStore::open(&path).await.unwrap();
    for start in (0..5_000i64).step_by(5) {
        store
            .append(
                (start..start + 5)
                    .map(|i| sample("recall", 0.5, i))
                    .collect(),
            )
            .await
            .unwrap();
    }
    store.close().await.unwrap();
    let chunks: i64 = Connection::open(&path)
        .unwrap()
        .query_row("SELECT count(*) FROM chunks", [], |r| r.get(0))
        .unwrap();
    assert!(chunks < 80, "{chunks} chunks for 5000 points");
    let reopened = SqliteStore::open(&path).await.unwrap();
    assert_eq!(
        reopened
            .range(&series("recall"), TimeRange::all())
            .await
            .unwrap()
            .len(),
        5_000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_are_all_committed() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(SqliteStore::open(dir.path().join("m.db")).await.unwrap());
    let mut tasks = Vec::new();
    for writer in 0..8i64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                store
                    .append_one(sample("throughput", 1.0, writer * 1000 + i))
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(
        store
            .range(&series("throughput"), TimeRange::all())
            .await
            .unwrap()
            .len(),
        400
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_and_chunks_read_as_one_with_later_writes_winning() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    let store = SqliteStore::open(&path).await.unwrap();
    // 20 single-sample batches: the first 16 are compacted into chunks, 4 stay in the head.
    for i in 0..20i64 {
        store
            .append(vec![sample("mae", i as f64, i * 10)])
            .await
            .unwrap();
    }
    let count = |table: &str| -> i64 {
        Connection::open(&path)
            .unwrap()
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    };
    assert!(
        count("chunks") > 0 && count("head") > 0,
        "both parts must hold data for this test"
    );
    // Overwrite a point that lives in a chunk, and one that lives in the head.
    store
        .append(vec![sample("mae", 100.0, 30), sample("mae", 190.0, 190)])
        .await
        .unwrap();
    let points = store.range(&series("mae"), TimeRange::all()).await.unwrap();
    let values: Vec<f64> = points.iter().map(|p| p.value).collect();
    let mut expected: Vec<f64> = (0..20).map(|i| i as f64).collect();
    expected[3] = 100.0;
    expected[19] = 190.0;
    assert_eq!(values, expected);
    assert_eq!(
        store.latest(&series("mae")).await.unwrap().map(|p| p.value),
        Some(190.0)
    );
    let listed = store
        .list_series(&crate::SeriesFilter::default())
        .await
        .unwrap();
    assert_eq!(
        (
            listed[0].first_timestamp.as_millis(),
            listed[0].last_timestamp.as_millis()
        ),
        (0, 190)
    );
}

/// Appends `batches` one-sample batches to another series, so the head reaches its
/// compaction threshold (16 rows) and everything in it becomes chunks.
async fn fill_head(store: &SqliteStore, batches: i64) {
    for i in 0..batches {
        store
            .append(vec![sample("filler", 1.0, 1_000_000 + i)])
            .await
            .unwrap();
    }
}

/// Pruning trims a sealed chunk below the sealed size; compaction must not merge it with
/// younger small chunks past a younger sealed chunk, or its older values of shared
/// timestamps would win over the later writes that sealed chunk holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trimmed_chunk_never_wins_over_later_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    let store = SqliteStore::open(&path).await.unwrap();
    // Sealed chunk 1: points 0..1100 with value 1; sealed chunk 2, written later:
    // points 1000..2100 with value 2 (overwriting 1000..1099).
    for value in [1.0, 2.0] {
        let start = (value as i64 - 1) * 1_000;
        store
            .append(
                (start..start + 1_100)
                    .map(|t| sample("mae", value, t))
                    .collect(),
            )
            .await
            .unwrap();
        fill_head(&store, 15).await;
    }
    assert_eq!(
        store
            .delete_samples_before(Timestamp::from_millis(500).unwrap())
            .await
            .unwrap(),
        500
    );
    // Two more head compactions leave two small chunks of 600 points: compaction is due.
    for round in 0..2i64 {
        let start = 3_000 + round * 600;
        store
            .append(
                (start..start + 600)
                    .map(|t| sample("mae", 3.0, t))
                    .collect(),
            )
            .await
            .unwrap();
        fill_head(&store, 15).await;
    }
    let points = store.range(&series("mae"), TimeRange::all()).await.unwrap();
    assert_eq!(points.len(), 500 + 1_100 + 1_200);
    for point in &points {
        let t = point.timestamp.as_millis();
        let expected = match t {
            500..=999 => 1.0,
            1_000..=2_099 => 2.0,
            _ => 3.0,
        };
        assert_eq!(point.value, expected, "at {t}");
    }
    store.close().await.unwrap();
    // The trimmed chunk, the sealed one, and the two young small chunks merged into one.
    let chunks: Vec<(i64, i64)> = Connection::open(&path)
        .unwrap()
        .prepare(
            "SELECT min_ms, count FROM chunks
             WHERE series_id = (SELECT id FROM series WHERE metric = 'mae') ORDER BY id",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(chunks, [(500, 600), (1_000, 1_100), (3_000, 1_200)]);
}

/// Schema 5 recorded deliveries held back on purpose as failed with "skipped: …"; schema
/// 6 turns them into `skipped` rows, keeps ids and real failures, and accepts the status.
#[tokio::test]
async fn outbox_rows_failed_as_skipped_become_skipped() {
    use crate::alerts::{DeliveryStatus, NotificationFilter};
    use crate::AlertStore;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v5.db");
    {
        let mut connection = Connection::open(&path).unwrap();
        schema::migrate(&mut connection, &path, 5).unwrap();
        connection
            .execute_batch(
                "INSERT INTO alerts (id, rule_id, model, version, status, severity, notified,
                     first_seen_ms, body)
                 VALUES ('alert_00000001', 'rule_00000001', 'm', 'v1', 'acknowledged', 'high',
                     1, 1000, '{}');
                 INSERT INTO notification_outbox (id, alert_id, channel, event, severity,
                     payload, dedup_key, status, next_attempt_ms, created_ms, last_error)
                 VALUES (7, 'alert_00000001', 'ops', 'firing', 'high', '{}', 'k1', 'failed',
                     1000, 1000, 'skipped: alert was acknowledged by alice before delivery'),
                    (9, 'alert_00000001', 'team', 'firing', 'high', '{}', 'k2', 'failed', 1000,
                     1000, '410 gone (not retried)'),
                    (12, 'alert_00000001', 'hook', 'firing', 'high', '{}', 'k3', 'pending',
                     1000, 1000, NULL);",
            )
            .unwrap();
        assert!(connection
            .execute(
                "UPDATE notification_outbox SET status = 'skipped' WHERE id = 12",
                []
            )
            .is_err());
    }

    let store = SqliteStore::open(&path).await.unwrap();
    let rows = store
        .list_notifications(&NotificationFilter::default())
        .await
        .unwrap();
    let seen: Vec<(i64, DeliveryStatus, Option<&str>)> = rows
        .iter()
        .map(|r| (r.id, r.status, r.last_error.as_deref()))
        .collect();
    assert_eq!(
        seen,
        [
            (
                7,
                DeliveryStatus::Skipped,
                Some("alert was acknowledged by alice before delivery")
            ),
            (9, DeliveryStatus::Failed, Some("410 gone (not retried)")),
            (12, DeliveryStatus::Pending, None),
        ]
    );
    let connection = Connection::open(&path).unwrap();
    connection
        .execute(
            "UPDATE notification_outbox SET status = 'skipped' WHERE id = 12",
            [],
        )
        .unwrap();
    let indexes: Vec<String> = connection
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'index'
                 AND tbl_name = 'notification_outbox' AND name LIKE 'notification_outbox_%'
             ORDER BY name",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        indexes,
        [
            "notification_outbox_by_alert",
            "notification_outbox_due",
            "notification_outbox_finished"
        ]
    );
}

/// Schema 7 records when an outbox row finished. Rows a schema 6 file holds get the best
/// time it has: delivered ones their delivery time, failed and skipped ones when their
/// last attempt was due; pending ones, leased or not, none. Pruning then goes by it.
#[tokio::test]
async fn finished_outbox_rows_of_schema_6_get_a_finishing_time() {
    use crate::alerts::NotificationFilter;
    use crate::AlertStore;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v6.db");
    {
        let mut connection = Connection::open(&path).unwrap();
        schema::migrate(&mut connection, &path, 6).unwrap();
        connection
            .execute_batch(
                "INSERT INTO alerts (id, rule_id, model, version, status, severity, notified,
                     first_seen_ms, body)
                 VALUES ('alert_00000001', 'rule_00000001', 'm', 'v1', 'active', 'high',
                     1, 1000, '{}');
                 INSERT INTO notification_outbox (id, alert_id, channel, event, severity,
                     payload, dedup_key, status, attempts, next_attempt_ms, created_ms,
                     delivered_ms, last_error, lease_owner, lease_until_ms)
                 VALUES
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
            .unwrap();
    }

    let store = SqliteStore::open(&path).await.unwrap();
    let all = NotificationFilter::default();
    let finished: Vec<(i64, Option<i64>)> = store
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
    assert_eq!(
        store
            .delete_finished_notifications(at(2_000))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .delete_finished_notifications(at(9_001))
            .await
            .unwrap(),
        2
    );
    let left: Vec<i64> = store
        .list_notifications(&all)
        .await
        .unwrap()
        .iter()
        .map(|n| n.id)
        .collect();
    assert_eq!(left, [9, 11]);
}

/// The prune's statement reads the finished-rows index, not the whole outbox.
#[tokio::test]
async fn pruning_the_outbox_reads_the_finished_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    SqliteStore::open(&path)
        .await
        .unwrap()
        .close()
        .await
        .unwrap();
    let connection = Connection::open(&path).unwrap();
    let plan: Vec<String> = connection
        .prepare(&format!(
            "EXPLAIN QUERY PLAN SELECT id FROM notification_outbox
             WHERE {} ?1 LIMIT ?2",
            crate::alerts::FINISHED_BEFORE
        ))
        .unwrap()
        .query_map(rusqlite::params![70_000, 2], |r| r.get(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(plan.len(), 1, "{plan:?}");
    assert!(
        plan[0].starts_with("SEARCH notification_outbox USING INDEX notification_outbox_finished"),
        "{plan:?}"
    );
}

/// What a schema 8 modelwatch (one series per model, version and metric, a dataset per
/// sample) left behind becomes one series per dataset at schema 9, keeping every sample
/// a reader saw — and none that a later write had replaced.
#[tokio::test]
async fn schema_8_series_are_split_by_dataset_keeping_every_sample() {
    use crate::codec::{self, Columns};
    use crate::{DatasetScope, SeriesFilter};
    use modelwatch_core::Dataset;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wave1.db");
    {
        let mut connection = Connection::open(&path).unwrap();
        schema::migrate(&mut connection, &path, 8).unwrap();
        connection
            .execute_batch(
                "INSERT INTO series (id, model, version, metric) VALUES
                     (1, 'fraud', 'v1', 'accuracy'), (2, 'fraud', 'v1', 'latency');
                 INSERT INTO datasets (id, name) VALUES (1, 'prod'), (2, 'canary'), (3, 'default');",
            )
            .unwrap();
        let chunk = |points: &[(i64, f64, u32)]| {
            let mut columns = Columns::default();
            for &(t, value, dataset) in points {
                columns.push(t, value, dataset);
            }
            columns
        };
        let insert_chunk = |series_id: i64, columns: &Columns| {
            connection
                .execute(
                    "INSERT INTO chunks (series_id, min_ms, max_ms, count, data)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    rusqlite::params![
                        series_id,
                        columns.timestamps[0],
                        columns.timestamps[columns.len() - 1],
                        columns.len() as i64,
                        codec::encode(columns)
                    ],
                )
                .unwrap();
        };
        // prod, canary and untagged samples; a later chunk replaces canary's sample at 2
        // with prod's; a sample tagged "default" at 4.
        insert_chunk(1, &chunk(&[(1, 0.90, 1), (2, 0.70, 2), (3, 0.80, 0)]));
        insert_chunk(1, &chunk(&[(2, 0.95, 1), (4, 0.85, 3)]));
        insert_chunk(2, &chunk(&[(1, 20.0, 0), (2, 21.0, 0)]));
        // A batch not compacted yet: canary at 5, latency at 3.
        let row = super::head::encode(vec![
            (1, chunk(&[(5, 0.75, 2)])),
            (2, chunk(&[(3, 22.0, 0)])),
        ]);
        connection
            .execute(
                "INSERT INTO head (min_ms, max_ms, count, data) VALUES (3, 5, 2, ?1)",
                [row],
            )
            .unwrap();
    }

    let store = SqliteStore::open(&path).await.unwrap();
    let dataset = |name: &str| Dataset::parse_optional(name).unwrap();
    let read = |metric: &str, on: &str| {
        let key = SeriesKey::parse("fraud", "v1", metric)
            .unwrap()
            .with_dataset(dataset(on));
        let store = &store;
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
        .list_series(&SeriesFilter {
            model: Some(modelwatch_core::ModelName::parse("fraud").unwrap()),
            ..SeriesFilter::default()
        })
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
    assert_eq!(
        read("latency", "default").await,
        [(1, 20.0, None), (2, 21.0, None), (3, 22.0, None)]
    );

    // The migrated file takes new samples of each dataset, and "default" is no
    // dataset of its own any more.
    let fraud = |value: f64, on: &str| Sample {
        model: modelwatch_core::ModelName::parse("fraud").unwrap(),
        dataset: dataset(on),
        value,
        ..sample("accuracy", value, 6)
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
    store.close().await.unwrap();
    let connection = Connection::open(&path).unwrap();
    let names: Vec<String> = connection
        .prepare("SELECT name FROM datasets ORDER BY name")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(names, ["canary", "prod"]);
    let version: i64 = connection
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, LATEST_VERSION);
}

#[tokio::test]
async fn many_ranges_read_from_shared_head_rows_answer_what_each_range_answers() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("m.db")).await.unwrap();
    let metrics: Vec<String> = (0..50).map(|i| format!("metric_{i:02}")).collect();
    // Three batches over every series (three head rows), the last rewriting a time.
    for (batch, ms) in [(0.0, 10), (1.0, 20), (2.0, 20)] {
        store
            .append(
                metrics
                    .iter()
                    .enumerate()
                    .map(|(i, m)| sample(m, batch + i as f64, ms))
                    .collect(),
            )
            .await
            .unwrap();
    }
    let mut requests: Vec<(SeriesKey, TimeRange)> = metrics
        .iter()
        .map(|m| (series(m), TimeRange::all()))
        .collect();
    requests.push((series("metric_07"), TimeRange::new(at(15), at(30))));
    requests.push((series("absent"), TimeRange::all()));
    let many = store.range_many(&requests).await.unwrap();
    for ((key, range), points) in requests.iter().zip(&many) {
        assert_eq!(*points, store.range(key, *range).await.unwrap(), "{key:?}");
    }
    let values: Vec<f64> = many[7].iter().map(|p| p.value).collect();
    assert_eq!(values, [7.0, 9.0]);
    assert_eq!(many[50].len(), 1);
    assert!(many[51].is_empty());
}

/// A schema 9 file's rule states (keyed by rule and version) become the default dataset's
/// states at schema 10, every column kept; the rule can then keep a state per dataset.
#[tokio::test]
async fn schema_9_rule_states_become_the_default_dataset_s() {
    use crate::alerts::conformance;
    use crate::AlertStore;
    use modelwatch_core::alerting::{AlertId, StateDetail};
    use modelwatch_core::Dataset;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v9.db");
    let rule = conformance::rule(1, "fraud");
    {
        let mut connection = Connection::open(&path).unwrap();
        schema::migrate(&mut connection, &path, 9).unwrap();
        connection
            .execute(
                "INSERT INTO alert_rules (id, model, enabled, body) VALUES (?1, 'fraud', 1, ?2)",
                rusqlite::params![
                    rule.id.as_str(),
                    crate::alerts::records::rule_body(&rule)
                        .unwrap()
                        .replace(r#""dataset":"default","#, "")
                ],
            )
            .unwrap();
        connection
            .execute_batch(
                r#"INSERT INTO alert_states (rule_id, version, model, consecutive_breaches,
                     consecutive_clears, alert_id, last_observed_ms, revision, detail)
                 VALUES ('rule_00000001', 'v1', 'fraud', 3, 0, 'alert_00000009', 5000, 7,
                     '{"past_breaches":[{"would_have_fired_at":"1970-01-01T00:00:00.001Z","value":0.5}]}'),
                    ('rule_00000001', 'v2', 'fraud', 1, 2, NULL, 6000, 4, NULL);"#,
            )
            .unwrap();
    }

    let store = SqliteStore::open(&path).await.unwrap();
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
                s.state.consecutive_clears,
                s.state.alert_id.clone(),
                s.state.last_observed_at.map(Timestamp::as_millis),
                s.state.revision,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("v1", None, 3, 0, Some(AlertId::from_u32(9)), Some(5000), 7),
            ("v2", None, 1, 2, None, Some(6000), 4)
        ]
    );
    assert_eq!(states[0].state.detail.past_breaches.len(), 1);
    assert_eq!(states[1].state.detail, StateDetail::default());

    // The canary's state of v1 is a state of its own, beside the default dataset's.
    let mut canary_state = states[0].clone();
    canary_state.dataset = Some(Dataset::parse("canary").unwrap());
    canary_state.state.revision = 1;
    let outcome = store
        .commit(vec![crate::alerts::AlertCommit {
            state: Some(crate::alerts::StateWrite {
                rule_id: canary_state.rule_id.clone(),
                model: canary_state.model.clone(),
                version: canary_state.version.clone(),
                dataset: canary_state.dataset.clone(),
                previous_revision: 0,
                next: canary_state.state.clone(),
            }),
            ..Default::default()
        }])
        .await
        .unwrap();
    assert_eq!(outcome, [crate::alerts::CommitOutcome::Applied]);
    assert_eq!(store.states(None).await.unwrap().len(), 3);
    // Deleting the rule still takes its states along.
    assert!(store.delete_rule(&rule.id).await.unwrap());
    assert!(store.states(None).await.unwrap().is_empty());
    store.close().await.unwrap();
    let connection = Connection::open(&path).unwrap();
    let index: i64 = connection
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'alert_states_by_model'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(index, 1);
}

#[tokio::test]
async fn schema_10_rule_states_move_to_a_table_of_their_own_unchanged() {
    use crate::alerts::{conformance, AlertCommit, CommitOutcome, StateWrite};
    use crate::AlertStore;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v10.db");
    let rule = conformance::rule(1, "fraud");
    // A change-point detector's evidence as versions before the columns wrote it.
    let detail = r#"{"change_point":{"last_at":"2023-11-14T22:14:20.000Z","samples":40,
        "level":0.95,"scale":0.01,"spread":0.008,"settling":0,
        "up":{"statistic":0.4,"started_at":"2023-11-14T22:13:20.000Z","samples":2,
            "value_sum":1.92,"reference":0.95},
        "down":{"statistic":0.0,"samples":0,"value_sum":0.0,"reference":0.0},
        "evidence":[
            {"at":"2023-11-14T22:13:20.000Z","value":0.96,"residual":1.0},
            {"at":"2023-11-14T22:14:20.000Z","value":0.96,"residual":0.9}]}}"#;
    {
        let mut connection = Connection::open(&path).unwrap();
        schema::migrate(&mut connection, &path, 10).unwrap();
        connection
            .execute(
                "INSERT INTO alert_rules (id, model, enabled, body) VALUES (?1, 'fraud', 1, ?2)",
                rusqlite::params![
                    rule.id.as_str(),
                    crate::alerts::records::rule_body(&rule).unwrap()
                ],
            )
            .unwrap();
        connection
            .execute(
                "INSERT INTO alert_states (rule_id, version, dataset, model,
                     consecutive_breaches, consecutive_clears, alert_id, last_observed_ms,
                     revision, detail)
                 VALUES ('rule_00000001', 'v1', '', 'fraud', 0, 0, NULL, 1700000060000, 7, ?1),
                    ('rule_00000001', 'v1', 'canary', 'fraud', 1, 2, NULL, 6000, 4, NULL)",
                rusqlite::params![detail],
            )
            .unwrap();
    }

    let store = SqliteStore::open(&path).await.unwrap();
    let mut states = store.states(None).await.unwrap();
    states.sort_by(|a, b| a.dataset.cmp(&b.dataset));
    assert_eq!(states.len(), 2);
    let default = &states[0];
    assert_eq!(
        (default.dataset.as_ref(), default.state.revision),
        (None, 7)
    );
    let detector = default.state.detail.change_point.as_ref().unwrap();
    let evidence: Vec<_> = detector
        .evidence
        .iter()
        .map(|e| (e.at.as_millis(), e.value, e.residual))
        .collect();
    assert_eq!(
        evidence,
        [
            (1_700_000_000_000, 0.96, 1.0),
            (1_700_000_060_000, 0.96, 0.9)
        ]
    );
    assert_eq!(states[1].state.revision, 4);

    // The key still guards: a write from revision 7 applies, one from a stale revision
    // does not, and the state written reads back as written (in the new form).
    let write = |previous_revision: u64, revision: u64| AlertCommit {
        state: Some(StateWrite {
            rule_id: default.rule_id.clone(),
            model: default.model.clone(),
            version: default.version.clone(),
            dataset: None,
            previous_revision,
            next: modelwatch_core::alerting::SeriesState {
                revision,
                ..default.state.clone()
            },
        }),
        ..Default::default()
    };
    let outcomes = store.commit(vec![write(7, 8), write(7, 9)]).await.unwrap();
    assert_eq!(outcomes, [CommitOutcome::Applied, CommitOutcome::Conflict]);
    let mut states = store.states(None).await.unwrap();
    states.sort_by(|a, b| a.dataset.cmp(&b.dataset));
    assert_eq!(states[0].state.revision, 8);
    assert_eq!(states[0].state.detail, default.state.detail);
    assert!(store.delete_rule(&rule.id).await.unwrap());
    assert!(store.states(None).await.unwrap().is_empty());
    store.close().await.unwrap();
}

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms).unwrap()
}

/// A write that fails after writing part of its work leaves nothing behind, also when it
/// is alone in its transaction (then without a savepoint), and the writer goes on.
#[tokio::test]
async fn a_failed_write_leaves_nothing_and_the_next_one_lands() {
    use crate::AlertStore;
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("m.db")).await.unwrap();
    let failed = store
        .write(|_, transaction| {
            transaction.execute(
                "INSERT INTO alert_rules (id, model, enabled, body) VALUES ('rule_1', 'm', 1, '{}')",
                [],
            )?;
            Err::<(), _>(StoreError::Database("failed on purpose".into()))
        })
        .await;
    assert!(matches!(failed, Err(StoreError::Database(m)) if m == "failed on purpose"));
    let rows: i64 = store
        .read(|connection, _| {
            Ok(connection.query_row("SELECT count(*) FROM alert_rules", [], |row| row.get(0))?)
        })
        .await
        .unwrap();
    assert_eq!(rows, 0);
    store
        .append(vec![sample("accuracy", 0.9, 1)])
        .await
        .unwrap();
    assert!(store.list_rules(None).await.unwrap().is_empty());
    assert_eq!(
        store
            .range(&series("accuracy"), TimeRange::all())
            .await
            .unwrap()
            .len(),
        1
    );
}

/// Outbox rows are written as `{"facts": …}`. A row written before that carries the alert
/// as of its event (`{"event", "channel", "alert"}`): it still reads, as that snapshot, so
/// an upgraded server delivers what was pending; a column that is neither reads as
/// unreadable, with the reason, instead of failing the whole listing.
#[tokio::test]
async fn outbox_rows_of_the_previous_payload_format_read_as_their_alert_snapshot() {
    use crate::alerts::conformance::{alert, rule};
    use crate::alerts::{AlertCommit, AlertWriteGuarded, NotificationFilter, OutboxPayload};
    use crate::AlertStore;
    use modelwatch_core::alerting::Alert;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let r = rule(1, "fraud");
    let a = alert(7, &r, "v1", 10_000);
    let insert = AlertCommit {
        alert: Some(AlertWriteGuarded::insert(a.clone())),
        ..AlertCommit::default()
    };
    store.commit(vec![insert]).await.unwrap();
    let body: serde_json::Value =
        serde_json::from_str(&crate::alerts::records::alert_body(&a).unwrap()).unwrap();
    let old = serde_json::json!({"event": "firing", "channel": "ops", "alert": body}).to_string();
    {
        let connection = Connection::open(&path).unwrap();
        connection
            .execute(
                "INSERT INTO notification_outbox (id, alert_id, channel, event, severity,
                     payload, dedup_key, status, next_attempt_ms, created_ms)
                 VALUES (1, ?1, 'ops', 'firing', 'high', ?2, 'k1', 'pending', 1000, 1000),
                    (2, ?1, 'team', 'firing', 'high', 'not json', 'k2', 'pending', 1000, 1000)",
                rusqlite::params![a.id.as_str(), old],
            )
            .unwrap();
    }
    let rows = store
        .list_notifications(&NotificationFilter::default())
        .await
        .unwrap();
    let by_id = |id: i64| rows.iter().find(|n| n.id == id).unwrap();
    assert_eq!(
        by_id(1).payload,
        OutboxPayload::Snapshot(Box::new(Alert { revision: 0, ..a }))
    );
    let OutboxPayload::Unreadable { text, error } = &by_id(2).payload else {
        panic!("{:?}", by_id(2).payload)
    };
    assert_eq!(text, "not json");
    assert!(error.starts_with("payload is not JSON"), "{error}");
}

/// A schema 14 file guarded alert updates by comparing the alert's JSON; schema 15 gives
/// every alert revision 1, and the file opens and keeps working: the alert reads back
/// with it, an update from it lands (revision 2) and one from the old revision conflicts.
#[tokio::test]
async fn schema_14_alerts_get_revision_1_and_keep_being_updated() {
    use crate::alerts::conformance::{alert, rule};
    use crate::alerts::{AlertCommit, AlertWriteGuarded, CommitOutcome};
    use crate::AlertStore;
    use modelwatch_core::alerting::{Alert, AlertStatus};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v14.db");
    let r = rule(1, "fraud");
    let fired = alert(7, &r, "v1", 10_000);
    {
        let mut connection = Connection::open(&path).unwrap();
        schema::migrate(&mut connection, &path, 14).unwrap();
        connection
            .execute(
                "INSERT INTO alerts (id, rule_id, model, version, status, severity, notified,
                     first_seen_ms, body)
                 VALUES (?1, ?2, 'fraud', 'v1', 'active', 'high', 1, 10000, ?3)",
                rusqlite::params![
                    fired.id.as_str(),
                    r.id.as_str(),
                    crate::alerts::records::alert_body(&fired).unwrap()
                ],
            )
            .unwrap();
    }

    let store = SqliteStore::open(&path).await.unwrap();
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
    store.close().await.unwrap();
    let connection = Connection::open(&path).unwrap();
    let version: i64 = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, LATEST_VERSION);
}

/// A rule stored under the old API's names (`rule_name`, `model_name`, …) and before
/// rules had a dataset reads back, by id and in listings, as the rule it was; written
/// again, it is stored under the current names.
#[tokio::test]
async fn a_rule_stored_with_the_old_names_reads_back() {
    use crate::alerts::conformance::rule;
    use crate::AlertStore;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old-rule.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let r = rule(1, "fraud");
    let old = crate::alerts::records::rule_body(&r)
        .unwrap()
        .replace(r#""id":"#, r#""rule_id":"#)
        .replace(r#""name":"#, r#""rule_name":"#)
        .replace(r#""model":"#, r#""model_name":"#)
        .replace(r#""version":"#, r#""model_version":"#)
        .replace(r#""metric":"#, r#""metric_type":"#)
        .replace(r#""dataset":"default","#, "");
    assert!(old.contains(r#""rule_name":"rule 1""#), "{old}");
    {
        let connection = Connection::open(&path).unwrap();
        connection
            .execute(
                "INSERT INTO alert_rules (id, model, enabled, body) VALUES (?1, 'fraud', 1, ?2)",
                rusqlite::params![r.id.as_str(), old],
            )
            .unwrap();
    }
    assert_eq!(store.rule(&r.id).await.unwrap(), Some(r.clone()));
    assert_eq!(
        store.list_rules(None).await.unwrap(),
        std::slice::from_ref(&r)
    );
    store.update_rule(r.clone()).await.unwrap();
    let body: String = Connection::open(&path)
        .unwrap()
        .query_row("SELECT body FROM alert_rules", [], |row| row.get(0))
        .unwrap();
    assert_eq!(body, crate::alerts::records::rule_body(&r).unwrap());
}

/// Schema 19 moves schema 18's prediction rows into columnar blocks: every window of
/// every series holds the same predictions and labels (so the same metrics), ids keep
/// joining labels and refusing duplicates, and a pending label still waits for its
/// prediction.
#[tokio::test]
async fn schema_18_predictions_move_into_blocks_with_the_same_metrics() {
    use crate::predictions::conformance::{legacy_rows, rows_moved_into_blocks_read_back};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v18.db");
    let rows = legacy_rows();
    {
        let mut connection = Connection::open(&path).unwrap();
        schema::migrate(&mut connection, &path, 18).unwrap();
        connection
            .execute(
                "INSERT INTO prediction_configs (model, window_minutes, task, threshold,
                    min_coverage, max_label_delay_minutes)
                 VALUES ('fraud', 120, 'classification', 0.5, 0.0, 10080)",
                [],
            )
            .unwrap();
        for row in &rows {
            let (class, score, value) = crate::predictions::output_columns(&row.output);
            connection
                .execute(
                    "INSERT INTO predictions
                        (model, id, version, dataset, ts, class, score, value, truth, label_ms,
                         labels)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    rusqlite::params![
                        row.model,
                        row.id,
                        row.version,
                        row.dataset,
                        row.ts,
                        class,
                        score,
                        value,
                        row.label.map(|l| l.0),
                        row.label.map(|_| row.ts + 5),
                        row.label.map_or(0, |l| l.1)
                    ],
                )
                .unwrap();
        }
        connection
            .execute(
                "INSERT INTO pending_labels (model, id, truth, label_ms, received_ms, labels)
                 VALUES ('fraud', 'late', 1.0, NULL, 0, 1)",
                [],
            )
            .unwrap();
    }
    let store = SqliteStore::open(&path).await.unwrap();
    rows_moved_into_blocks_read_back(&store, &rows).await;
    store.close().await.unwrap();
    let connection = Connection::open(&path).unwrap();
    let gone: bool = connection
        .query_row(
            "SELECT count(*) = 0 FROM sqlite_master WHERE name = 'predictions'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert!(gone, "the rows' table is dropped");
}
