//! The behaviour every [`MetricStore`] backend must show, written once and instantiated
//! per backend by [`conformance_suite!`] (quickwit's metastore suite is the model).

use std::ops::Deref;
use std::sync::Arc;

use modelwatch_core::{
    Dataset, DatasetScope, Direction, Metric, MetricDefinition, Point, Sample, SeriesKey,
    TimeRange, Timestamp, ValueRange,
};

use crate::{MetricStore, SeriesFilter, StoreError, WriteCounts};

/// A store under test plus whatever keeps it alive (a temporary directory, a database).
pub struct Fixture {
    pub store: Arc<dyn MetricStore>,
    pub _guard: Box<dyn std::any::Any + Send>,
}

impl Deref for Fixture {
    type Target = dyn MetricStore;
    fn deref(&self) -> &Self::Target {
        &*self.store
    }
}

pub fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms).unwrap()
}

pub fn sample(model: &str, version: &str, metric: &str, value: f64, ms: i64) -> Sample {
    let key = SeriesKey::parse(model, version, metric).unwrap();
    Sample {
        model: key.model,
        version: key.version,
        metric: key.metric,
        value,
        timestamp: at(ms),
        dataset: None,
    }
}

fn key(model: &str, version: &str, metric: &str) -> SeriesKey {
    SeriesKey::parse(model, version, metric).unwrap()
}

fn values(points: &[Point]) -> Vec<(i64, f64)> {
    points
        .iter()
        .map(|p| (p.timestamp.as_millis(), p.value))
        .collect()
}

fn on(dataset: &str, mut sample: Sample) -> Sample {
    sample.dataset = Some(Dataset::parse(dataset).unwrap());
    sample
}

fn key_on(dataset: &str, model: &str, version: &str, metric: &str) -> SeriesKey {
    key(model, version, metric).with_dataset(Some(Dataset::parse(dataset).unwrap()))
}

/// Writes samples that give stored points other values: on a backend that replaces
/// samples they are stored (true); on one that does not (Prometheus), the batch is refused
/// whole, naming the timestamp (false).
async fn rewrite(store: &dyn MetricStore, samples: Vec<Sample>) -> bool {
    if store.capabilities().replaces_samples {
        store.append(samples).await.unwrap();
        return true;
    }
    match store.append(samples).await {
        Err(StoreError::InvalidSample { error, .. }) => {
            assert_eq!(error.field, "timestamp", "{error}")
        }
        other => panic!("a rewrite of a stored point was not refused: {other:?}"),
    }
    false
}

/// Prunes before `cutoff`: the count removed on a backend that deletes; `None` on one
/// that does not (CloudWatch), after checking it removed nothing.
async fn prune(store: &dyn MetricStore, cutoff: Timestamp) -> Option<u64> {
    let removed = store.delete_samples_before(cutoff).await.unwrap();
    if store.capabilities().deletes_samples {
        return Some(removed);
    }
    assert_eq!(removed, 0, "a store that deletes nothing removed samples");
    None
}

pub async fn append_then_range_round_trips_exact_values(store: &dyn MetricStore) {
    store
        .append_one(sample("fraud", "v1", "accuracy", 0.95, 1_000))
        .await
        .unwrap();
    store
        .append_one(sample("fraud", "v1", "accuracy", 0.912345, 2_000))
        .await
        .unwrap();
    store
        .append_one(sample("fraud", "v1", "accuracy", 0.1 + 0.2, 3_000))
        .await
        .unwrap();
    let points = store
        .range(&key("fraud", "v1", "accuracy"), TimeRange::all())
        .await
        .unwrap();
    assert_eq!(
        values(&points),
        vec![(1_000, 0.95), (2_000, 0.912345), (3_000, 0.1 + 0.2)]
    );
    assert!(points.iter().all(|p| p.dataset.is_none()));
}

/// The dataset is part of the series: samples of several datasets at one timestamp are
/// all kept, each read back only from its own series, and listings name the datasets.
pub async fn datasets_at_one_timestamp_are_separate_series(store: &dyn MetricStore) {
    store
        .append(vec![
            on("prod", sample("fraud", "v1", "accuracy", 0.90, 1_000)),
            on("canary", sample("fraud", "v1", "accuracy", 0.70, 1_000)),
            sample("fraud", "v1", "accuracy", 0.80, 1_000),
            on("prod", sample("fraud", "v1", "accuracy", 0.91, 2_000)),
        ])
        .await
        .unwrap();
    // A later write to one dataset replaces that dataset's sample only.
    let canary_value = if rewrite(
        store,
        vec![on("canary", sample("fraud", "v1", "accuracy", 0.60, 1_000))],
    )
    .await
    {
        0.60
    } else {
        0.70
    };
    let prod = key_on("prod", "fraud", "v1", "accuracy");
    let canary = key_on("canary", "fraud", "v1", "accuracy");
    let default = key("fraud", "v1", "accuracy");
    let read =
        |series: SeriesKey| async move { store.range(&series, TimeRange::all()).await.unwrap() };
    let prod_points = read(prod.clone()).await;
    assert_eq!(values(&prod_points), vec![(1_000, 0.90), (2_000, 0.91)]);
    assert!(prod_points.iter().all(|p| p.dataset == prod.dataset));
    assert_eq!(
        values(&read(canary.clone()).await),
        vec![(1_000, canary_value)]
    );
    assert_eq!(values(&read(default.clone()).await), vec![(1_000, 0.80)]);
    assert!(read(key_on("holdout", "fraud", "v1", "accuracy"))
        .await
        .is_empty());

    let latest = store
        .latest_many(&[canary.clone(), default.clone(), prod.clone()])
        .await
        .unwrap();
    let latest: Vec<(i64, f64)> = latest
        .iter()
        .map(|p| {
            let p = p.as_ref().unwrap();
            (p.timestamp.as_millis(), p.value)
        })
        .collect();
    assert_eq!(
        latest,
        [(1_000, canary_value), (1_000, 0.80), (2_000, 0.91)]
    );
    assert_eq!(
        store
            .summary(&prod, TimeRange::all())
            .await
            .unwrap()
            .map(|s| s.count),
        Some(2)
    );

    // Listed default first, then by name; filtered by one dataset or the default one.
    let all = store.list_series(&SeriesFilter::default()).await.unwrap();
    let keys: Vec<SeriesKey> = all.iter().map(|s| s.key.clone()).collect();
    assert_eq!(keys, [default.clone(), canary.clone(), prod.clone()]);
    let only = |dataset: DatasetScope| {
        let filter = SeriesFilter {
            dataset,
            ..SeriesFilter::default()
        };
        async move {
            store
                .list_series(&filter)
                .await
                .unwrap()
                .into_iter()
                .map(|s| s.key)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        only(DatasetScope::parse("prod").unwrap()).await,
        std::slice::from_ref(&prod)
    );
    assert_eq!(
        only(DatasetScope::One(None)).await,
        std::slice::from_ref(&default)
    );
    assert!(only(DatasetScope::parse("holdout").unwrap())
        .await
        .is_empty());
    let fraud = models_name("fraud");
    assert_eq!(
        store.datasets(&fraud, None).await.unwrap(),
        [None, canary.dataset.clone(), prod.dataset.clone()]
    );
    let v1 = modelwatch_core::Version::parse("v1").unwrap();
    assert_eq!(
        store.metrics(&fraud, &v1).await.unwrap(),
        [Metric::Accuracy]
    );

    // Pruning goes through every dataset's series.
    let Some(removed) = prune(store, at(1_500)).await else {
        assert_eq!(read(prod).await.len(), 2);
        assert_eq!(read(canary).await.len(), 1);
        return;
    };
    assert_eq!(removed, 3);
    assert_eq!(values(&read(prod).await), vec![(2_000, 0.91)]);
    assert!(read(canary).await.is_empty());
}

pub async fn batch_is_all_or_nothing(store: &dyn MetricStore) {
    store
        .append_one(sample("m", "v1", "latency", 10.0, 1))
        .await
        .unwrap();
    let batch = vec![
        sample("m", "v1", "latency", 11.0, 2),
        sample("m", "v2", "accuracy", 0.5, 2),
        sample("m", "v1", "latency", -1.0, 3),
    ];
    match store.append(batch).await {
        Err(StoreError::InvalidSample { index: 2, error }) => assert_eq!(error.field, "value"),
        other => panic!("expected the third sample to be refused, got {other:?}"),
    }
    let points = store
        .range(&key("m", "v1", "latency"), TimeRange::all())
        .await
        .unwrap();
    assert_eq!(values(&points), vec![(1, 10.0)]);
    assert!(store
        .range(&key("m", "v2", "accuracy"), TimeRange::all())
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .list_series(&SeriesFilter::default())
            .await
            .unwrap()
            .len(),
        1
    );
}

pub async fn range_is_half_open_sorted_and_isolated(store: &dyn MetricStore) {
    let batch: Vec<Sample> = [5, 1, 4, 2, 3]
        .into_iter()
        .map(|t| sample("m", "v1", "mae", t as f64, t * 10))
        .chain([
            sample("m", "v1", "rmse", 99.0, 20),
            sample("other", "v1", "mae", 99.0, 20),
        ])
        .collect();
    store.append(batch).await.unwrap();
    let points = store
        .range(&key("m", "v1", "mae"), TimeRange::new(at(20), at(50)))
        .await
        .unwrap();
    assert_eq!(values(&points), vec![(20, 2.0), (30, 3.0), (40, 4.0)]);
    assert!(store
        .range(&key("m", "v1", "mae"), TimeRange::new(at(50), at(20)))
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .range(&key("m", "v9", "mae"), TimeRange::all())
        .await
        .unwrap()
        .is_empty());

    // Many ranges at once answer exactly what each range answers, in request order.
    let requests = vec![
        (key("m", "v1", "mae"), TimeRange::new(at(20), at(50))),
        (key("m", "v9", "mae"), TimeRange::all()),
        (key("m", "v1", "rmse"), TimeRange::all()),
        (key("m", "v1", "mae"), TimeRange::new(at(50), at(20))),
        (key("m", "v1", "mae"), TimeRange::all()),
    ];
    let many = store.range_many(&requests).await.unwrap();
    assert_eq!(many.len(), requests.len());
    for ((series, range), points) in requests.iter().zip(&many) {
        assert_eq!(*points, store.range(series, *range).await.unwrap());
    }
    assert_eq!(values(&many[2]), vec![(20, 99.0)]);
}

pub async fn same_timestamp_keeps_the_last_write(store: &dyn MetricStore) {
    let series = key("m", "v1", "accuracy");
    store
        .append(vec![
            sample("m", "v1", "accuracy", 0.1, 7),
            sample("m", "v1", "accuracy", 0.2, 7),
        ])
        .await
        .unwrap();
    store
        .append_one(sample("m", "v1", "accuracy", 0.3, 8))
        .await
        .unwrap();
    let at_7 = if rewrite(store, vec![sample("m", "v1", "accuracy", 0.4, 7)]).await {
        0.4
    } else {
        0.2
    };
    let points = store.range(&series, TimeRange::all()).await.unwrap();
    assert_eq!(values(&points), vec![(7, at_7), (8, 0.3)]);
    assert_eq!(
        store.latest(&series).await.unwrap().map(|p| p.value),
        Some(0.3)
    );
    // The stored value written again is stored, whatever the backend.
    store
        .append_one(sample("m", "v1", "accuracy", 0.3, 8))
        .await
        .unwrap();
    let at_8 = if rewrite(store, vec![sample("m", "v1", "accuracy", 0.5, 8)]).await {
        0.5
    } else {
        0.3
    };
    assert_eq!(
        store.latest(&series).await.unwrap().map(|p| p.value),
        Some(at_8)
    );
}

pub async fn latest_is_the_greatest_timestamp(store: &dyn MetricStore) {
    let series = key("m", "v1", "latency");
    assert_eq!(store.latest(&series).await.unwrap(), None);
    store
        .append_one(sample("m", "v1", "latency", 30.0, 300))
        .await
        .unwrap();
    store
        .append_one(sample("m", "v1", "latency", 10.0, 100))
        .await
        .unwrap();
    let latest = store.latest(&series).await.unwrap().unwrap();
    assert_eq!((latest.timestamp.as_millis(), latest.value), (300, 30.0));
    let many = store
        .latest_many(&[key("m", "v2", "latency"), series.clone()])
        .await
        .unwrap();
    assert_eq!(many, vec![None, Some(latest)]);
}

pub async fn catalogue_lists_models_versions_metrics_in_order(store: &dyn MetricStore) {
    store
        .append(vec![
            sample("zeta", "v1", "accuracy", 0.9, 5),
            sample("alpha", "v2", "latency", 3.0, 7),
            sample("alpha", "v1", "recall", 0.8, 1),
            sample("alpha", "v1", "accuracy", 0.8, 9),
            sample("alpha", "v1", "accuracy", 0.7, 2),
        ])
        .await
        .unwrap();
    let models: Vec<String> = store
        .models()
        .await
        .unwrap()
        .iter()
        .map(|m| m.to_string())
        .collect();
    assert_eq!(models, ["alpha", "zeta"]);
    let alpha = models_name("alpha");
    let versions: Vec<String> = store
        .versions(&alpha)
        .await
        .unwrap()
        .iter()
        .map(|v| v.to_string())
        .collect();
    assert_eq!(versions, ["v1", "v2"]);
    let v1 = modelwatch_core::Version::parse("v1").unwrap();
    assert_eq!(
        store.metrics(&alpha, &v1).await.unwrap(),
        vec![Metric::Accuracy, Metric::Recall]
    );
    let all = store.list_series(&SeriesFilter::default()).await.unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(
        (
            all[0].first_timestamp.as_millis(),
            all[0].last_timestamp.as_millis()
        ),
        (2, 9)
    );
}

fn models_name(name: &str) -> modelwatch_core::ModelName {
    modelwatch_core::ModelName::parse(name).unwrap()
}

pub async fn summary_and_buckets_are_exact(store: &dyn MetricStore) {
    let data = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
    let batch = data
        .iter()
        .enumerate()
        .map(|(i, v)| sample("m", "v1", "mse", *v, i as i64 * 1000))
        .collect();
    store.append(batch).await.unwrap();
    let series = key("m", "v1", "mse");
    let summary = store
        .summary(&series, TimeRange::all())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (summary.count, summary.mean, summary.min, summary.max),
        (8, 5.0, 2.0, 9.0)
    );
    assert!((summary.std - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
    assert_eq!(summary.p50, 4.5);
    let window = store
        .summary(&series, TimeRange::new(at(6000), at(100_000)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((window.count, window.mean), (2, 8.0));
    assert!(store
        .summary(&series, TimeRange::new(at(100_000), at(200_000)))
        .await
        .unwrap()
        .is_none());
    let buckets = store.buckets(&series, TimeRange::all(), 4).await.unwrap();
    assert_eq!(buckets.len(), 4);
    assert_eq!(
        buckets.iter().map(|b| (b.min, b.max)).collect::<Vec<_>>(),
        [(2.0, 4.0), (4.0, 4.0), (5.0, 5.0), (7.0, 9.0)]
    );
}

pub async fn custom_metrics_are_declared_and_enforced(store: &dyn MetricStore) {
    let queue = Metric::parse("queue_ms").unwrap();
    assert_eq!(
        store.definition(&queue).await.unwrap().direction,
        Direction::HigherIsBetter
    );
    store
        .define_metric(MetricDefinition {
            metric: queue.clone(),
            direction: Direction::LowerIsBetter,
            range: ValueRange::NON_NEGATIVE,
        })
        .await
        .unwrap();
    assert_eq!(
        store.definition(&queue).await.unwrap().direction,
        Direction::LowerIsBetter
    );
    assert_eq!(store.custom_metrics().await.unwrap().len(), 1);
    assert!(matches!(
        store.append_one(sample("m", "v1", "queue_ms", -2.0, 1)).await,
        Err(StoreError::Invalid(e)) if e.field == "value"
    ));
    let redefine = MetricDefinition {
        metric: Metric::Accuracy,
        direction: Direction::LowerIsBetter,
        range: ValueRange::UNBOUNDED,
    };
    assert!(matches!(
        store.define_metric(redefine).await,
        Err(StoreError::Invalid(_))
    ));

    // Each undeclared name is judged once per batch; a typo after names already judged
    // is still caught, at its own index.
    let batch = vec![
        sample("m", "v1", "queue_ms", 1.0, 2),
        sample("m", "v1", "queue_ms", 2.0, 3),
        sample("m", "v1", "acuracy", 0.9, 4),
    ];
    match store.append(batch).await {
        Err(StoreError::InvalidSample { index: 2, error }) => assert_eq!(error.field, "metric"),
        other => panic!("a misspelt metric after others was accepted: {other:?}"),
    }
    // A misspelt built-in does not silently start a custom series; declared, it may.
    match store.append_one(sample("m", "v1", "acuracy", 0.9, 1)).await {
        Err(StoreError::Invalid(e)) => {
            assert_eq!(e.field, "metric");
            assert!(
                e.message.contains("did you mean accuracy?"),
                "{}",
                e.message
            );
        }
        other => panic!("a misspelt metric was accepted: {other:?}"),
    }
    store
        .define_metric(MetricDefinition {
            metric: Metric::parse("acuracy").unwrap(),
            direction: Direction::HigherIsBetter,
            range: ValueRange::UNIT,
        })
        .await
        .unwrap();
    store
        .append_one(sample("m", "v1", "acuracy", 0.9, 1))
        .await
        .unwrap();
}

/// Enough points, in small batches and out of order, to make a backend reorganise its
/// storage (the SQLite backend compacts); every value must come back exactly once.
pub async fn many_small_batches_read_back_exactly(store: &dyn MetricStore) {
    let series = key("m", "v1", "throughput");
    let n = 3_000i64;
    for start in (0..n).step_by(10) {
        let batch = (start..start + 10)
            .rev()
            .map(|i| sample("m", "v1", "throughput", (i % 97) as f64 + 0.5, i * 60_000))
            .collect();
        store.append(batch).await.unwrap();
    }
    // Overwrite a few old points after the fact.
    let replaced = rewrite(
        store,
        vec![sample("m", "v1", "throughput", 1234.5, 60_000 * 17)],
    )
    .await;
    let points = store.range(&series, TimeRange::all()).await.unwrap();
    assert_eq!(points.len(), n as usize);
    for (i, point) in points.iter().enumerate() {
        let expected = if i == 17 && replaced {
            1234.5
        } else {
            (i as i64 % 97) as f64 + 0.5
        };
        assert_eq!(
            (point.timestamp.as_millis(), point.value),
            (i as i64 * 60_000, expected)
        );
    }
    let middle = store
        .range(
            &series,
            TimeRange::new(at(60_000 * 1000), at(60_000 * 1010)),
        )
        .await
        .unwrap();
    assert_eq!(middle.len(), 10);
}

/// A long range read a page at a time comes back exactly as in one read, in order, each
/// point once, across a gap of a year and rewritten points.
pub async fn pages_read_a_range_exactly_once_in_order(store: &dyn MetricStore) {
    let series = key("m", "v1", "latency");
    let year = 365 * 24 * 3_600_000i64;
    for batch in 0..30i64 {
        let gap = if batch >= 15 { year } else { 0 };
        let samples = (batch * 1000..(batch + 1) * 1000)
            .map(|i| sample("m", "v1", "latency", i as f64, gap + i * 1000))
            .collect();
        store.append(samples).await.unwrap();
    }
    rewrite(store, vec![sample("m", "v1", "latency", 0.5, 5_000 * 1000)]).await;
    let whole = store.range(&series, TimeRange::all()).await.unwrap();
    assert_eq!(whole.len(), 30_000);
    for range in [
        TimeRange::all(),
        TimeRange::new(at(2_500_000), at(year + 20_000_000)),
    ] {
        let mut pages = crate::Pages::new(store, &series, range).with_target(2_000);
        let mut read = Vec::new();
        let mut count = 0;
        while let Some(page) = pages.next_page().await.unwrap() {
            count += 1;
            read.extend(page);
        }
        let expected = store.range(&series, range).await.unwrap();
        assert!(count >= 3, "{count} pages");
        assert_eq!(values(&read), values(&expected));
    }
    assert_eq!(
        store
            .page_end(&series, TimeRange::new(at(0), at(1)), 10)
            .await
            .unwrap(),
        at(1)
    );
}

pub async fn empty_batch_is_a_no_op(store: &dyn MetricStore) {
    store.append(Vec::new()).await.unwrap();
    assert!(store
        .list_series(&SeriesFilter::default())
        .await
        .unwrap()
        .is_empty());
    assert!(store.models().await.unwrap().is_empty());
}

/// Retention: everything before the cutoff goes, exactly, wherever a backend keeps it
/// (for SQLite: sealed chunks, a chunk straddling the cutoff, the head), and nothing at or
/// after it.
pub async fn samples_before_a_cutoff_are_deleted_exactly(store: &dyn MetricStore) {
    let second = 1_000i64;
    // 16 batches of 100: the SQLite backend compacts them into one sealed chunk of
    // 1,600 points, which the cutoff at point 1,000.5 straddles; the next 14 batches
    // stay in its head.
    for start in (0..3_000i64).step_by(100) {
        let batch = (start..start + 100)
            .map(|i| sample("m", "v1", "accuracy", (i % 100) as f64 / 100.0, i * second))
            .collect();
        store.append(batch).await.unwrap();
    }
    // A timestamp written twice (once in a chunk, once in the head) is one sample.
    rewrite(
        store,
        vec![sample("m", "v1", "accuracy", 0.99, 500 * second)],
    )
    .await;
    store
        .append(vec![sample("m", "v2", "accuracy", 0.5, 5 * second)])
        .await
        .unwrap();
    // After the 32nd batch (a second compaction for SQLite), so in its head: old and
    // recent points of one series in one batch.
    store
        .append(vec![
            sample("m", "v1", "latency", 10.0, 10 * second),
            sample("m", "v1", "latency", 20.0, 2_000 * second),
        ])
        .await
        .unwrap();
    store
        .append(vec![sample("m", "v3", "accuracy", 0.7, 2_500 * second)])
        .await
        .unwrap();

    let cutoff = at(1_000 * second + 500);
    let Some(removed) = prune(store, cutoff).await else {
        // Nothing goes: every series keeps its oldest samples.
        let count = |version, metric| {
            let series = key("m", version, metric);
            async move { store.count(&series, TimeRange::all()).await.unwrap() }
        };
        assert_eq!(count("v1", "accuracy").await, 3_000);
        assert_eq!(count("v2", "accuracy").await, 1);
        assert_eq!(count("v1", "latency").await, 2);
        return;
    };
    // accuracy: points 0..=1000; latency: one; v2: its only point.
    assert_eq!(removed, 1_001 + 1 + 1);

    let accuracy = store
        .range(&key("m", "v1", "accuracy"), TimeRange::all())
        .await
        .unwrap();
    let expected: Vec<(i64, f64)> = (1_001..3_000i64)
        .map(|i| (i * second, (i % 100) as f64 / 100.0))
        .collect();
    assert_eq!(values(&accuracy), expected);
    assert_eq!(
        values(
            &store
                .range(&key("m", "v1", "latency"), TimeRange::all())
                .await
                .unwrap()
        ),
        vec![(2_000 * second, 20.0)]
    );
    assert!(store
        .range(&key("m", "v2", "accuracy"), TimeRange::all())
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.latest(&key("m", "v2", "accuracy")).await.unwrap(),
        None
    );
    let listed: Vec<(String, i64, i64)> = store
        .list_series(&SeriesFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|s| {
            (
                format!("{}/{}", s.key.version, s.key.metric),
                s.first_timestamp.as_millis(),
                s.last_timestamp.as_millis(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        vec![
            ("v1/accuracy".into(), 1_001 * second, 2_999 * second),
            ("v1/latency".into(), 2_000 * second, 2_000 * second),
            ("v3/accuracy".into(), 2_500 * second, 2_500 * second),
        ]
    );

    // Nothing is left before the cutoff: a second prune removes nothing.
    assert_eq!(store.delete_samples_before(cutoff).await.unwrap(), 0);
    // Pruning does not hide the past: a sample written before the cutoff afterwards
    // (a backfill) is stored and read like any other, and later writes still win.
    let at_1500 = if rewrite(
        store,
        vec![
            sample("m", "v1", "accuracy", 0.25, 7 * second),
            sample("m", "v1", "accuracy", 0.75, 1_500 * second),
        ],
    )
    .await
    {
        0.75
    } else {
        store
            .append(vec![sample("m", "v1", "accuracy", 0.25, 7 * second)])
            .await
            .unwrap();
        0.0
    };
    let accuracy = store
        .range(
            &key("m", "v1", "accuracy"),
            TimeRange::new(at(0), at(1_501 * second)),
        )
        .await
        .unwrap();
    assert_eq!(accuracy.len(), 1 + 500);
    assert_eq!(values(&accuracy)[0], (7 * second, 0.25));
    assert_eq!(values(&accuracy)[500], (1_500 * second, at_1500));
}

/// Several servers may prune one database at once: between them every sample is
/// removed, and counted, exactly once.
pub async fn concurrent_prunes_remove_and_count_each_sample_once(store: &dyn MetricStore) {
    for metric in ["accuracy", "precision", "recall"] {
        for start in (0..2_000i64).step_by(500) {
            let batch = (start..start + 500)
                .map(|i| sample("m", "v1", metric, 0.5, i * 1_000))
                .collect();
            store.append(batch).await.unwrap();
        }
    }
    let cutoff = at(1_500 * 1_000);
    let (first, second) = tokio::join!(prune(store, cutoff), prune(store, cutoff));
    let (Some(first), Some(second)) = (first, second) else {
        for metric in ["accuracy", "precision", "recall"] {
            let series = key("m", "v1", metric);
            assert_eq!(store.count(&series, TimeRange::all()).await.unwrap(), 2_000);
        }
        return;
    };
    assert_eq!(first + second, 3 * 1_500);
    for metric in ["accuracy", "precision", "recall"] {
        let points = store
            .range(&key("m", "v1", metric), TimeRange::all())
            .await
            .unwrap();
        assert_eq!(points.len(), 500, "{metric}");
        assert_eq!(points[0].timestamp, cutoff);
    }
}

pub async fn deleting_before_the_earliest_sample_changes_nothing(store: &dyn MetricStore) {
    store
        .append(vec![
            sample("m", "v1", "accuracy", 0.5, 1_000),
            sample("m", "v1", "accuracy", 0.6, 2_000),
        ])
        .await
        .unwrap();
    assert_eq!(store.delete_samples_before(at(1_000)).await.unwrap(), 0);
    assert_eq!(store.delete_samples_before(at(0)).await.unwrap(), 0);
    assert_eq!(
        values(
            &store
                .range(&key("m", "v1", "accuracy"), TimeRange::all())
                .await
                .unwrap()
        ),
        vec![(1_000, 0.5), (2_000, 0.6)]
    );
}

/// Instantiates every case of the suite for one backend; `$make` is an async expression
/// giving a fresh, empty [`Fixture`].
const SMALL_LIMITS: crate::SeriesLimits = crate::SeriesLimits {
    new_per_batch: 3,
    per_model: 4,
    total: 6,
};

/// A batch that would pass a limit is refused whole, naming the limit; samples of series
/// that exist always go in.
pub async fn series_limits_refuse_a_batch_whole(store: &dyn MetricStore) {
    use crate::SeriesLimit;
    let batch = |model: &str, metrics: &[&str]| -> Vec<Sample> {
        metrics
            .iter()
            .map(|m| sample(model, "v1", &format!("custom_{m}"), 0.5, 1_000))
            .collect()
    };
    for m in ["a", "b", "c", "d", "e", "f", "g"] {
        store
            .define_metric(MetricDefinition {
                metric: Metric::parse(&format!("custom_{m}")).unwrap(),
                direction: Direction::HigherIsBetter,
                range: ValueRange::default(),
            })
            .await
            .unwrap();
    }
    let refused = |result: Result<(), StoreError>, limit: SeriesLimit| match result {
        Err(StoreError::TooManySeries(exceeded)) => {
            assert_eq!(exceeded.limit, limit, "{exceeded}");
            assert!(
                exceeded.to_string().contains(limit.config_key()),
                "{exceeded}"
            );
        }
        other => panic!("expected {limit:?} refused, got {other:?}"),
    };
    refused(
        store.append(batch("m1", &["a", "b", "c", "d"])).await,
        SeriesLimit::NewPerBatch,
    );
    assert!(store.models().await.unwrap().is_empty(), "nothing written");
    store.append(batch("m1", &["a", "b", "c"])).await.unwrap();
    // Existing series take any number of samples; one more new one is the model's 4th.
    let mut more = batch("m1", &["a", "b", "c", "d"]);
    more.extend(batch("m1", &["a", "b"]));
    store.append(more).await.unwrap();
    refused(
        store.append(batch("m1", &["e"])).await,
        SeriesLimit::PerModel,
    );
    store.append(batch("m2", &["a", "b"])).await.unwrap();
    refused(store.append(batch("m3", &["a"])).await, SeriesLimit::Total);
    let series = store.list_series(&SeriesFilter::default()).await.unwrap();
    assert_eq!(series.len(), 6);
    assert_eq!(
        store
            .range(&key("m1", "v1", "custom_d"), TimeRange::all())
            .await
            .unwrap()
            .len(),
        1
    );
}

pub async fn a_write_counts_its_samples_as_new_replaced_or_unchanged(store: &dyn MetricStore) {
    let counts = |new, replaced, unchanged| WriteCounts {
        new,
        replaced,
        unchanged,
    };
    let first = vec![
        sample("fraud", "v1", "accuracy", 0.9, 1_000),
        sample("fraud", "v1", "accuracy", 0.8, 2_000),
        sample("fraud", "v1", "latency", 40.0, 1_000),
        sample("fraud", "v2", "accuracy", 0.9, 1_000),
    ];
    assert_eq!(
        store.append_counted(first.clone()).await.unwrap(),
        counts(4, 0, 0)
    );
    assert_eq!(store.append_counted(first).await.unwrap(), counts(0, 0, 4));
    // A changed value, a new timestamp written twice in the batch (the second write
    // replaces the first, as append keeps the last), an unchanged point, and a point
    // outside the stored span.
    let next = vec![
        sample("fraud", "v1", "accuracy", 0.5, 1_000),
        sample("fraud", "v1", "accuracy", 0.7, 3_000),
        sample("fraud", "v1", "latency", 40.0, 1_000),
        sample("fraud", "v1", "accuracy", 0.6, 3_000),
        sample("fraud", "v2", "accuracy", 0.9, 500),
    ];
    let points = || async {
        values(
            &store
                .range(&key("fraud", "v1", "accuracy"), TimeRange::all())
                .await
                .unwrap(),
        )
    };
    if store.capabilities().replaces_samples {
        assert_eq!(store.append_counted(next).await.unwrap(), counts(2, 2, 1));
        assert_eq!(
            points().await,
            vec![(1_000, 0.5), (2_000, 0.8), (3_000, 0.6)]
        );
    } else {
        // Judged alike; written, refused whole for its replacements.
        assert_eq!(store.classify(&next).await.unwrap(), counts(2, 2, 1));
        assert!(!rewrite(store, next).await);
        assert_eq!(points().await, vec![(1_000, 0.9), (2_000, 0.8)]);
    }
    // Judging alone writes nothing.
    let judged = store
        .classify(&[sample("fraud", "v3", "accuracy", 0.9, 1_000)])
        .await
        .unwrap();
    assert_eq!(judged, counts(1, 0, 0));
    assert!(store
        .range(&key("fraud", "v3", "accuracy"), TimeRange::all())
        .await
        .unwrap()
        .is_empty());
}

fn windows(found: &[crate::SeriesWindow]) -> Vec<(String, u64, f64, f64, f64, i64, f64)> {
    found
        .iter()
        .map(|w| {
            (
                w.key.to_string(),
                w.stats.count,
                w.stats.sum,
                w.stats.min,
                w.stats.max,
                w.stats.last_timestamp.as_millis(),
                w.stats.last,
            )
        })
        .collect()
}

fn range(start: i64, end: i64) -> TimeRange {
    TimeRange::new(at(start), at(end))
}

pub async fn aggregate_series_reduces_each_matching_series_window(store: &dyn MetricStore) {
    store
        .append(vec![
            sample("a", "v1", "accuracy", 0.5, 10),
            sample("a", "v1", "accuracy", 0.25, 20),
            sample("a", "v1", "accuracy", 0.75, 30),
            sample("a", "v1", "accuracy", 1.0, 40),
            sample("a", "v1", "latency", 8.0, 15),
            sample("a", "v2", "accuracy", 0.5, 25),
            sample("b", "v1", "accuracy", 0.125, 35),
            on("eu", sample("a", "v1", "accuracy", 0.0, 20)),
            on("eu", sample("a", "v1", "accuracy", 0.5, 30)),
        ])
        .await
        .unwrap();
    let every = SeriesFilter {
        dataset: DatasetScope::Each,
        ..SeriesFilter::default()
    };
    // [20, 40): the sample at 40 is outside, so are those at 10 and 15.
    let found = store.aggregate_series(&every, range(20, 40)).await.unwrap();
    let listed: Vec<SeriesKey> = store
        .list_series(&every)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.key)
        .filter(|k| k.metric != Metric::Latency)
        .collect();
    assert_eq!(
        found.iter().map(|w| w.key.clone()).collect::<Vec<_>>(),
        listed,
        "every series with samples in the window, in listing order"
    );
    let a = found
        .iter()
        .find(|w| w.key == key("a", "v1", "accuracy"))
        .unwrap();
    assert_eq!(
        (a.stats.count, a.stats.sum, a.stats.min, a.stats.max),
        (2, 1.0, 0.25, 0.75)
    );
    assert_eq!(
        (a.stats.last_timestamp.as_millis(), a.stats.last),
        (30, 0.75)
    );
    assert_eq!(a.stats.mean(), 0.5);
    let eu = found
        .iter()
        .find(|w| w.key == key_on("eu", "a", "v1", "accuracy"))
        .unwrap();
    assert_eq!((eu.stats.count, eu.stats.sum, eu.stats.last), (2, 0.5, 0.5));

    // Filters on model, version, metric and dataset.
    let filtered =
        |model: Option<&str>, version: Option<&str>, metric: Option<&str>, dataset| SeriesFilter {
            model: model.map(|m| modelwatch_core::ModelName::parse(m).unwrap()),
            version: version.map(|v| modelwatch_core::Version::parse(v).unwrap()),
            metric: metric.map(|m| Metric::parse(m).unwrap()),
            dataset,
        };
    let all = range(0, 100);
    let keys = |found: Vec<crate::SeriesWindow>| -> Vec<String> {
        found.into_iter().map(|w| w.key.to_string()).collect()
    };
    let default_only = DatasetScope::One(None);
    let by_model = store
        .aggregate_series(&filtered(Some("b"), None, None, DatasetScope::Each), all)
        .await
        .unwrap();
    assert_eq!(keys(by_model), vec![key("b", "v1", "accuracy").to_string()]);
    let by_version = store
        .aggregate_series(
            &filtered(Some("a"), Some("v1"), None, default_only.clone()),
            all,
        )
        .await
        .unwrap();
    assert_eq!(
        windows(&by_version),
        vec![
            (
                key("a", "v1", "accuracy").to_string(),
                4,
                2.5,
                0.25,
                1.0,
                40,
                1.0
            ),
            (
                key("a", "v1", "latency").to_string(),
                1,
                8.0,
                8.0,
                8.0,
                15,
                8.0
            ),
        ]
    );
    let by_metric = store
        .aggregate_series(
            &filtered(None, None, Some("latency"), DatasetScope::Each),
            all,
        )
        .await
        .unwrap();
    assert_eq!(keys(by_metric), vec![key("a", "v1", "latency").to_string()]);
    let eu_only = DatasetScope::One(Some(Dataset::parse("eu").unwrap()));
    let by_dataset = store
        .aggregate_series(&filtered(None, None, None, eu_only), all)
        .await
        .unwrap();
    assert_eq!(
        windows(&by_dataset),
        vec![(
            key_on("eu", "a", "v1", "accuracy").to_string(),
            2,
            0.5,
            0.0,
            0.5,
            30,
            0.5
        )]
    );
    let unknown_dataset = DatasetScope::One(Some(Dataset::parse("nowhere").unwrap()));
    assert!(store
        .aggregate_series(&filtered(None, None, None, unknown_dataset), all)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .aggregate_series(&filtered(Some("zzz"), None, None, DatasetScope::Each), all)
        .await
        .unwrap()
        .is_empty());

    // Empty windows: no time at all, or a time without samples.
    assert!(store
        .aggregate_series(&every, range(30, 30))
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .aggregate_series(&every, range(41, 1_000))
        .await
        .unwrap()
        .is_empty());
    let one = store.aggregate_series(&every, range(40, 41)).await.unwrap();
    assert_eq!(
        windows(&one),
        vec![(
            key("a", "v1", "accuracy").to_string(),
            1,
            1.0,
            1.0,
            1.0,
            40,
            1.0
        )]
    );
}

pub async fn aggregate_series_counts_an_overwritten_sample_once(store: &dyn MetricStore) {
    store
        .append(vec![
            sample("m", "v1", "accuracy", 0.5, 10),
            sample("m", "v1", "accuracy", 0.5, 20),
            sample("m", "v1", "accuracy", 0.5, 30),
        ])
        .await
        .unwrap();
    let replaced = rewrite(
        store,
        vec![
            sample("m", "v1", "accuracy", 0.25, 20),
            sample("m", "v1", "accuracy", 1.0, 30),
        ],
    )
    .await;
    rewrite(store, vec![sample("m", "v1", "accuracy", 0.0, 20)]).await;
    let found = store
        .aggregate_series(&SeriesFilter::default(), range(0, 100))
        .await
        .unwrap();
    let (min, max, last) = if replaced {
        (0.0, 1.0, 1.0)
    } else {
        (0.5, 0.5, 0.5)
    };
    assert_eq!(
        windows(&found),
        vec![(
            key("m", "v1", "accuracy").to_string(),
            3,
            1.5,
            min,
            max,
            30,
            last
        )]
    );
}

pub async fn aggregate_series_agrees_with_reading_each_series(store: &dyn MetricStore) {
    // Enough batches and points that backends with chunks and a head hold both, with
    // some samples rewritten in later batches.
    for batch in 0..24i64 {
        let mut samples = Vec::new();
        for series in 0..12 {
            for i in 0..150i64 {
                let t = batch * 150 + i;
                let value = ((t * 7 + series) % 100) as f64;
                samples.push(sample(&format!("m{series:02}"), "v1", "latency", value, t));
            }
            if batch % 5 == 4 {
                // Rewrite an earlier stretch of this series (with its own values where
                // a backend does not replace samples).
                for t in (batch - 3) * 150..(batch - 3) * 150 + 40 {
                    let value = if store.capabilities().replaces_samples {
                        1.0
                    } else {
                        ((t * 7 + series) % 100) as f64
                    };
                    samples.push(sample(&format!("m{series:02}"), "v1", "latency", value, t));
                }
            }
        }
        store.append(samples).await.unwrap();
    }
    for window in [
        range(0, 3_600),
        range(100, 1_000),
        range(1_234, 3_100),
        range(3_000, 9_999),
    ] {
        let found = store
            .aggregate_series(&SeriesFilter::default(), window)
            .await
            .unwrap();
        assert_eq!(found.len(), 12);
        for got in found {
            let points = store.range(&got.key, window).await.unwrap();
            let want = modelwatch_core::WindowStats::of_points(&points).unwrap();
            assert_eq!(
                (got.stats.count, got.stats.min, got.stats.max),
                (want.count, want.min, want.max),
                "{} in {window:?}",
                got.key
            );
            assert_eq!(
                (got.stats.last_timestamp, got.stats.last),
                (want.last_timestamp, want.last)
            );
            assert_eq!(got.stats.sum, want.sum, "{} in {window:?}", got.key);
        }
    }
}

/// What a backend declares (its [`crate::Capabilities`]) holds: a sample at its last
/// storable time round-trips; a later one, or a metric named as the store reserves, is
/// refused naming the field, and nothing of its batch is written.
pub async fn declared_capabilities_hold(store: &dyn MetricStore) {
    let capabilities = store.capabilities();
    let last = capabilities.last_timestamp.as_millis();
    let series = key("m", "v1", "accuracy");
    store
        .append_one(sample("m", "v1", "accuracy", 0.5, last))
        .await
        .unwrap();
    let latest = store.latest(&series).await.unwrap().unwrap();
    assert_eq!((latest.timestamp.as_millis(), latest.value), (last, 0.5));
    if last < Timestamp::MAX.as_millis() {
        let batch = vec![
            sample("m", "v1", "accuracy", 0.25, 1_000),
            sample("m", "v1", "accuracy", 0.75, last + 1),
        ];
        match store.append(batch).await {
            Err(StoreError::InvalidSample { index: 1, error }) => {
                assert_eq!(error.field, "timestamp", "{error}")
            }
            other => panic!("a sample after {last} ms was not refused: {other:?}"),
        }
        assert_eq!(store.count(&series, TimeRange::all()).await.unwrap(), 1);
    }
    for name in capabilities.reserved_metrics {
        let metric = Metric::parse(name).unwrap();
        match store.append_one(sample("m", "v1", name, 0.5, 1_000)).await {
            Err(StoreError::Invalid(error)) => assert_eq!(error.field, "metric", "{error}"),
            other => panic!("a sample of the reserved metric {name} was stored: {other:?}"),
        }
        let definition = MetricDefinition {
            metric,
            direction: Direction::HigherIsBetter,
            range: ValueRange::UNBOUNDED,
        };
        assert!(matches!(
            store.define_metric(definition).await,
            Err(StoreError::Invalid(e)) if e.field == "metric"
        ));
    }
    assert!(store.custom_metrics().await.unwrap().is_empty());
}

/// Calls `$then!` with the caller's tokens followed by every case taking a store with
/// default limits and using it from one task at a time: the one list both ways of running
/// the suite share.
macro_rules! every_case {
    ($then:ident!($($before:tt)*)) => {
        $then! { $($before)*
            append_then_range_round_trips_exact_values,
            datasets_at_one_timestamp_are_separate_series,
            batch_is_all_or_nothing,
            range_is_half_open_sorted_and_isolated,
            same_timestamp_keeps_the_last_write,
            latest_is_the_greatest_timestamp,
            catalogue_lists_models_versions_metrics_in_order,
            summary_and_buckets_are_exact,
            custom_metrics_are_declared_and_enforced,
            many_small_batches_read_back_exactly,
            pages_read_a_range_exactly_once_in_order,
            empty_batch_is_a_no_op,
            samples_before_a_cutoff_are_deleted_exactly,
            deleting_before_the_earliest_sample_changes_nothing,
            a_write_counts_its_samples_as_new_replaced_or_unchanged,
            aggregate_series_reduces_each_matching_series_window,
            aggregate_series_counts_an_overwritten_sample_once,
            aggregate_series_agrees_with_reading_each_series,
            declared_capabilities_hold,
        }
    };
}

/// One test per case, each on a fresh store from `$make` (called with the series limits).
macro_rules! conformance_suite {
    ($backend:ident, $make:expr) => {
        mod $backend {
            use super::*;
            every_case!(conformance_suite!(@cases $make;));
            conformance_suite!(@cases $make; concurrent_prunes_remove_and_count_each_sample_once);

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn series_limits_refuse_a_batch_whole() {
                let fixture: Fixture = ($make)(SMALL_LIMITS).await;
                super::series_limits_refuse_a_batch_whole(&*fixture).await;
            }
        }
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let fixture: Fixture = ($make)(crate::SeriesLimits::default()).await;
                super::$case(&*fixture).await;
            }
        )*
    };
}

/// Every case one after the other, each on a store from `$make` (for a backend that
/// cannot hold one database per test).
macro_rules! conformance_in_sequence {
    ($make:expr; $($case:ident),* $(,)?) => {
        $(
            let fixture: Fixture = ($make)(crate::SeriesLimits::default()).await;
            $case(&*fixture).await;
            drop(fixture);
        )*
        let fixture: Fixture = ($make)(SMALL_LIMITS).await;
        series_limits_refuse_a_batch_whole(&*fixture).await;
    };
}

conformance_suite!(memory, |limits| async move {
    Fixture {
        store: Arc::new(crate::MemoryStore::new().with_series_limits(limits)),
        _guard: Box::new(()),
    }
});

conformance_suite!(sqlite, |limits| async move {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::SqliteStore::open(dir.path().join("conformance.db"))
        .await
        .unwrap()
        .with_series_limits(limits);
    Fixture {
        store: Arc::new(store),
        _guard: Box::new(dir),
    }
});

conformance_suite!(postgres, |limits| async move {
    let database = crate::postgres::testing::TestDatabase::create("conformance").await;
    let store = crate::PostgresStore::open(database.url())
        .await
        .unwrap()
        .with_series_limits(limits);
    Fixture {
        store: Arc::new(store),
        _guard: Box::new(database),
    }
});

conformance_suite!(influx, |limits| async move {
    let database = crate::influx::testing::TestDatabase::create("conformance");
    let store = crate::InfluxStore::open(database.location())
        .await
        .unwrap()
        .with_series_limits(limits);
    Fixture {
        store: Arc::new(store),
        _guard: Box::new(database),
    }
});

conformance_suite!(prometheus, |limits| async move {
    let server = crate::prometheus::testing::TestPrometheus::start();
    let store = crate::PrometheusStore::open(&server.location())
        .await
        .unwrap()
        .with_series_limits(limits);
    Fixture {
        store: Arc::new(store),
        _guard: Box::new(server),
    }
});

/// The PostgreSQL store on TimescaleDB: the samples table becomes a hypertable and the
/// suite holds on it. PGlite serves one database, so the cases run in sequence, each on
/// emptied tables. It is also one session that its socket server shares between
/// connections, which interleaves their statements: the case of several servers pruning
/// at once runs on real PostgreSQL only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timescaledb_hypertable_passes_the_suite() {
    let server = crate::postgres::testing::TestTimescale::start();
    let make = |limits| {
        let server = &server;
        async move {
            server.empty().await;
            let store = crate::PostgresStore::open(&server.url())
                .await
                .unwrap()
                .with_series_limits(limits);
            assert!(
                store.is_hypertable().await.unwrap(),
                "samples is not a hypertable"
            );
            Fixture {
                store: Arc::new(store),
                _guard: Box::new(()),
            }
        }
    };
    every_case!(conformance_in_sequence!(make;));
}

/// CloudWatch keeps time to the second ([`crate::Capabilities::resolution`]): the suite's
/// milliseconds are its seconds. Every time written is multiplied by 1,000 on the way in
/// and divided on the way out, so each case checks the same behaviour a second apart.
#[derive(Debug)]
struct Seconds(Arc<dyn MetricStore>);

impl Seconds {
    const FACTOR: i64 = 1_000;

    fn wide(t: Timestamp) -> Timestamp {
        Timestamp::from_millis(t.as_millis().saturating_mul(Self::FACTOR)).unwrap_or(Timestamp::MAX)
    }

    fn narrow(t: Timestamp) -> Timestamp {
        let ms = t.as_millis();
        at(ms / Self::FACTOR + i64::from(ms % Self::FACTOR != 0))
    }

    fn range(range: TimeRange) -> TimeRange {
        TimeRange::new(Self::wide(range.start), Self::wide(range.end))
    }

    fn points(points: Vec<Point>) -> Vec<Point> {
        points
            .into_iter()
            .map(|p| Point {
                timestamp: Self::narrow(p.timestamp),
                ..p
            })
            .collect()
    }
}

#[async_trait::async_trait]
impl MetricStore for Seconds {
    fn capabilities(&self) -> crate::Capabilities {
        let real = self.0.capabilities();
        crate::Capabilities {
            last_timestamp: Self::narrow(real.last_timestamp),
            resolution: real.resolution / Self::FACTOR as u32,
            ..real
        }
    }

    async fn append(&self, samples: Vec<Sample>) -> Result<(), StoreError> {
        let samples = samples
            .into_iter()
            .map(|s| Sample {
                timestamp: Self::wide(s.timestamp),
                ..s
            })
            .collect();
        self.0.append(samples).await
    }

    async fn range(&self, series: &SeriesKey, range: TimeRange) -> Result<Vec<Point>, StoreError> {
        Ok(Self::points(
            self.0.range(series, Self::range(range)).await?,
        ))
    }

    async fn latest(&self, series: &SeriesKey) -> Result<Option<Point>, StoreError> {
        Ok(self
            .0
            .latest(series)
            .await?
            .and_then(|p| Self::points(vec![p]).pop()))
    }

    async fn page_end(
        &self,
        series: &SeriesKey,
        range: TimeRange,
        target: usize,
    ) -> Result<Timestamp, StoreError> {
        let end = self.0.page_end(series, Self::range(range), target).await?;
        Ok(Self::narrow(end).min(range.end))
    }

    async fn list_series(
        &self,
        filter: &SeriesFilter,
    ) -> Result<Vec<crate::SeriesInfo>, StoreError> {
        Ok(self
            .0
            .list_series(filter)
            .await?
            .into_iter()
            .map(|s| crate::SeriesInfo {
                first_timestamp: Self::narrow(s.first_timestamp),
                last_timestamp: Self::narrow(s.last_timestamp),
                ..s
            })
            .collect())
    }

    async fn aggregate_series(
        &self,
        filter: &SeriesFilter,
        range: TimeRange,
    ) -> Result<Vec<crate::SeriesWindow>, StoreError> {
        let mut found = self.0.aggregate_series(filter, Self::range(range)).await?;
        for window in &mut found {
            window.stats.last_timestamp = Self::narrow(window.stats.last_timestamp);
        }
        Ok(found)
    }

    async fn count(&self, series: &SeriesKey, range: TimeRange) -> Result<u64, StoreError> {
        self.0.count(series, Self::range(range)).await
    }

    async fn delete_samples_before(&self, cutoff: Timestamp) -> Result<u64, StoreError> {
        self.0.delete_samples_before(Self::wide(cutoff)).await
    }

    async fn define_metric(&self, definition: MetricDefinition) -> Result<(), StoreError> {
        self.0.define_metric(definition).await
    }

    async fn custom_metrics(&self) -> Result<Vec<MetricDefinition>, StoreError> {
        self.0.custom_metrics().await
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.0.close().await
    }
}

/// The suite on CloudWatch (moto's server, one per test), through [`Seconds`]. Left
/// out: `aggregate_series_agrees_with_reading_each_series` and
/// `pages_read_a_range_exactly_once_in_order`, which write 43,200 and 30,000 points and
/// take over ten minutes on moto (its reads scan every sample of a window once per
/// period); the others cover the same reads on fewer points.
mod cloudwatch {
    use super::*;

    async fn make(limits: crate::SeriesLimits) -> Fixture {
        let server = crate::cloudwatch::testing::TestCloudWatch::start();
        let store = crate::CloudWatchStore::open_with(
            &server.location("modelwatch/conformance"),
            server.endpoint(),
            crate::cloudwatch::testing::TestCloudWatch::credentials(),
        )
        .await
        .unwrap()
        .with_series_limits(limits);
        Fixture {
            store: Arc::new(Seconds(Arc::new(store))),
            _guard: Box::new(server),
        }
    }

    conformance_suite!(@cases make;
        append_then_range_round_trips_exact_values,
        datasets_at_one_timestamp_are_separate_series,
        batch_is_all_or_nothing,
        range_is_half_open_sorted_and_isolated,
        same_timestamp_keeps_the_last_write,
        latest_is_the_greatest_timestamp,
        catalogue_lists_models_versions_metrics_in_order,
        summary_and_buckets_are_exact,
        custom_metrics_are_declared_and_enforced,
        many_small_batches_read_back_exactly,
        empty_batch_is_a_no_op,
        samples_before_a_cutoff_are_deleted_exactly,
        deleting_before_the_earliest_sample_changes_nothing,
        concurrent_prunes_remove_and_count_each_sample_once,
        a_write_counts_its_samples_as_new_replaced_or_unchanged,
        aggregate_series_reduces_each_matching_series_window,
        aggregate_series_counts_an_overwritten_sample_once,
        declared_capabilities_hold,
    );

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn series_limits_refuse_a_batch_whole() {
        let fixture: Fixture = make(SMALL_LIMITS).await;
        super::series_limits_refuse_a_batch_whole(&*fixture).await;
    }
}
