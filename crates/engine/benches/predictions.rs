//! Ingestion of prediction and label events (issue 22's budgets: ≥ 300,000 prediction
//! events/s ingested durably, a label joined in O(1) amortised, ≤ 16 bytes stored per raw
//! prediction event, ids aside), through the same path as `POST /api/v1/predictions` and
//! `modelwatch predictions log`: batches of 10,000 events stored durably on the SQLite
//! store (`synchronous = FULL`) and every window they touched recomputed into metric
//! samples.
//!
//! Logs `MODELWATCH_BENCH_PREDICTIONS` (1,000,000) scored predictions of one model
//! version, a minute of time spread over every 1,000 of them, so hourly windows hold
//! 60,000; then labels for all of them in the same order, then for a second copy in
//! random order (a join must not depend on arrival order). Prints events/s of each phase
//! and the bytes the database holds per prediction, with and without the ids' own bytes.
//! Then the same three phases on a fresh database through the bulk path of `modelwatch
//! predictions log` / `labels log`: every batch stored (its windows left dirty), then
//! each dirty window recomputed once at the end of the phase.
//!
//! Run with `cargo bench -p modelwatch-engine --bench predictions`. It also prints each
//! prediction table's bytes per prediction (SQLite's `dbstat`).
//!
//! Figures (release, `nice`, 2 cores shared with three other builds: load average 6 to
//! 10; one run each). Before the columnar blocks (72c84ac, rows of (model, id, version,
//! dataset, ts, output, label) and a window index), with `MODELWATCH_BENCH_PREDICTIONS=
//! 200000`: per request 74,256 predictions/s, labels 65,113/s in order, 18,796/s
//! shuffled; bulk 133,409 / 105,930 / 49,025 per s; 140.5 bytes per prediction (116.5
//! without the id, which was stored twice). With the blocks (SQLite schema 19), same
//! size: per request 193,592 / 106,994 / 49,224 per s; bulk 246,428 / 132,972 / 51,718
//! per s; blocks 10.1 bytes per prediction, the id index 25.3 (the 12-byte id, the model
//! key and the location), labels 14.4 per label. At the default 1,000,000, per request:
//! 219,353 predictions/s, labels 102,375/s in order and 13,307/s shuffled (each batch
//! of 10,000 shuffled labels touches all 17 windows, and each is recomputed whole: the
//! recomputation, not the join, bounds that figure); 37.7 bytes per prediction on disk.
//! Bulk at 1,000,000: 251,805 predictions/s, labels 114,766/s in order, 28,410/s
//! shuffled (store only: random id-index and label pages of a 40 MB file).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Instant;

use modelwatch_core::predictions::{
    Features, Label, Output, Prediction, PredictionConfig, PredictionId, Task, WindowLength,
};
use modelwatch_core::{ModelName, Timestamp, Version};
use modelwatch_engine::predictions::{
    log_labels, log_predictions, recompute, store_labels, store_predictions,
};
use modelwatch_store::{SqliteStore, Stores};

/// A whole hour.
const T0: i64 = 472_222 * 3_600_000;
const BATCH: usize = 10_000;

fn id(i: usize) -> String {
    format!("req-{i:08}")
}

fn prediction(model: &ModelName, version: &Version, i: usize) -> Prediction {
    let score = ((i * 7919) % 10_000) as f64 / 10_000.0;
    Prediction {
        id: PredictionId::parse(&id(i)).unwrap(),
        model: model.clone(),
        version: version.clone(),
        dataset: None,
        timestamp: Timestamp::from_millis(T0 + (i as i64) * 60).unwrap(),
        output: Output::Classification {
            class: None,
            score: Some(score),
        },
        features: Features::new(),
    }
}

#[tokio::main]
async fn main() {
    let total: usize = std::env::var("MODELWATCH_BENCH_PREDICTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    println!("{total} predictions of one version, hourly windows of 60,000, batches of {BATCH}, SQLite (synchronous = FULL)");
    println!("per request (POST /api/v1/predictions, /api/v1/predictions/labels): each batch's windows recomputed");
    run(total, false).await;
    println!(
        "bulk (modelwatch predictions log, labels log): each window recomputed once per phase"
    );
    run(total, true).await;
}

async fn run(total: usize, bulk: bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.db");
    let stores = Stores::of(Arc::new(SqliteStore::open(&path).await.unwrap()));
    let model = ModelName::parse("fraud_detector").unwrap();
    let version = Version::parse("v2.1").unwrap();
    stores
        .predictions
        .set_prediction_config(
            &model,
            PredictionConfig::new(WindowLength::HOUR, Task::Classification, 0.5, 0.8).unwrap(),
        )
        .await
        .unwrap();
    let now = Timestamp::from_millis(T0 + (total as i64) * 60 + 1).unwrap();

    let started = Instant::now();
    for from in (0..total).step_by(BATCH) {
        let batch = (from..(from + BATCH).min(total))
            .map(|i| prediction(&model, &version, i))
            .collect();
        if bulk {
            store_predictions(&stores, batch).await.unwrap();
        } else {
            log_predictions(&stores, batch, now).await.unwrap();
        }
    }
    if bulk {
        recompute(&stores, now).await.unwrap();
    }
    let predictions_s = started.elapsed().as_secs_f64();
    let size_predictions = file_size(&path);

    let label = |i: usize| {
        let truth = f64::from(u8::from((i * 7919) % 10_000 > 4_000));
        Label::new(
            PredictionId::parse(&id(i)).unwrap(),
            model.clone(),
            truth,
            None,
        )
        .unwrap()
    };
    let started = Instant::now();
    let in_order = (0..total)
        .step_by(BATCH)
        .map(|from| (from..(from + BATCH).min(total)).map(label).collect());
    log_label_batches(&stores, in_order, bulk, now).await;
    let labels_s = started.elapsed().as_secs_f64();

    // The same labels again, shuffled: each joins a prediction anywhere in the store (a
    // relabel: the latest label wins, every window is recomputed).
    let mut order: Vec<usize> = (0..total).collect();
    fastrand::Rng::with_seed(7).shuffle(&mut order);
    let started = Instant::now();
    let shuffled = order
        .chunks(BATCH)
        .map(|chunk| chunk.iter().map(|&i| label(i)).collect());
    log_label_batches(&stores, shuffled, bulk, now).await;
    let shuffled_s = started.elapsed().as_secs_f64();
    let size_all = file_size(&path);
    let tables = table_sizes(&path);

    let id_bytes = id(0).len() as f64;
    let rate = |s: f64| total as f64 / s;
    println!(
        "predictions logged:         {:>10.0} events/s ({predictions_s:.2} s)",
        rate(predictions_s)
    );
    println!(
        "labels joined, in order:    {:>10.0} events/s ({labels_s:.2} s)",
        rate(labels_s)
    );
    println!(
        "labels joined, shuffled:    {:>10.0} events/s ({shuffled_s:.2} s)",
        rate(shuffled_s)
    );
    println!(
        "stored per prediction:      {:>10.1} bytes ({:.1} without the {id_bytes:.0}-byte id); after labels {:.1}",
        size_predictions as f64 / total as f64,
        size_predictions as f64 / total as f64 - id_bytes,
        size_all as f64 / total as f64,
    );
    let per = |bytes: u64| bytes as f64 / total as f64;
    for (table, bytes) in tables {
        println!("  {table:<34} {:>6.1} bytes per prediction", per(bytes));
    }
}

/// The bytes of each prediction table and index (SQLite's `dbstat`), largest first.
fn table_sizes(path: &std::path::Path) -> Vec<(String, u64)> {
    let connection = rusqlite::Connection::open(path).unwrap();
    let mut statement = connection
        .prepare(
            "SELECT name, sum(pgsize) FROM dbstat
             WHERE name LIKE 'prediction%' OR name LIKE 'pending%'
             GROUP BY name ORDER BY sum(pgsize) DESC",
        )
        .unwrap();
    let sizes = statement
        .query_map([], |row| Ok((row.get(0)?, row.get::<_, i64>(1)? as u64)))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    sizes
        .into_iter()
        .filter(|(_, bytes)| *bytes > 4096)
        .collect()
}

/// The database's bytes on disk, its write-ahead log included.
fn file_size(path: &std::path::Path) -> u64 {
    let mut size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let wal = path.with_extension("db-wal");
    size += std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0);
    size
}

/// Logs `batches` of labels as the API does (each batch's windows recomputed at once) or,
/// in `bulk`, as `modelwatch labels log` does (every batch stored, then each dirty window
/// recomputed once).
async fn log_label_batches(
    stores: &Stores,
    batches: impl Iterator<Item = Vec<Label>>,
    bulk: bool,
    now: Timestamp,
) {
    for batch in batches {
        if bulk {
            store_labels(stores, batch, now).await.unwrap();
        } else {
            log_labels(stores, batch, now).await.unwrap();
        }
    }
    if bulk {
        recompute(stores, now).await.unwrap();
    }
}
