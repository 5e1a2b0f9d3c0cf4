//! The three queries of the peer benchmark (../shared/bench/peers) against a modelwatch
//! SQLite database that `modelwatch metrics import` filled with gen.py's data.csv:
//! (a) one series (model_000/accuracy) over the whole span at full resolution,
//! (b) the same series averaged in 1 h buckets, (c) every series averaged over the last hour
//! (one `aggregate_series` read, and one read per series for comparison).
//! Each runs 3 times; the median is printed. In-process (no HTTP, no JSON), unlike the
//! peers' figures, which include their HTTP API: see bench/peers-modelwatch/README.md.
//!
//!     MW_PEERS_DB=/tmp/mw.db cargo bench -p modelwatch-store --bench peers
#![allow(clippy::unwrap_used)] // a benchmark: a failure should stop it loudly

use std::time::{Duration, Instant};

use modelwatch_core::{Metric, ModelName, TimeRange, Timestamp};
use modelwatch_store::{MetricStore, SeriesFilter, SqliteStore};

fn median(mut times: Vec<Duration>) -> f64 {
    times.sort();
    times[times.len() / 2].as_secs_f64() * 1e3
}

fn main() {
    let Ok(path) = std::env::var("MW_PEERS_DB") else {
        eprintln!("set MW_PEERS_DB to a database filled by bench/peers-modelwatch/run.sh");
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let store = SqliteStore::open(&path).await.unwrap();
        let all = store.list_series(&SeriesFilter::default()).await.unwrap();
        let model = ModelName::parse("model_000").unwrap();
        let one = all
            .iter()
            .find(|s| s.key.model == model && s.key.metric == Metric::Accuracy)
            .unwrap();
        let whole = TimeRange::new(
            one.first_timestamp,
            Timestamp::from_millis(one.last_timestamp.as_millis() + 1).unwrap(),
        );
        let hours = (whole.length_millis() / 3_600_000 + 1) as usize;

        // (c)'s window is Prometheus's `[1h]` at the last time: (end - 1 h, end].
        let end = all.iter().map(|s| s.last_timestamp).max().unwrap();
        let last_hour = TimeRange::new(
            Timestamp::from_millis(end.as_millis() - 3_600_000 + 1).unwrap(),
            Timestamp::from_millis(end.as_millis() + 1).unwrap(),
        );
        let (mut a, mut b, mut c, mut c_each) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut points, mut buckets, mut series, mut series_each) = (0, 0, 0, 0);
        for _ in 0..3 {
            let started = Instant::now();
            points = store.range(&one.key, whole).await.unwrap().len();
            a.push(started.elapsed());

            let started = Instant::now();
            buckets = store.buckets(&one.key, whole, hours).await.unwrap().len();
            b.push(started.elapsed());

            let started = Instant::now();
            let windows = store
                .aggregate_series(&SeriesFilter::default(), last_hour)
                .await
                .unwrap();
            series = windows.iter().filter(|w| w.stats.mean().is_finite()).count();
            c.push(started.elapsed());

            // The same answer read one series at a time (how (c) was read before
            // `aggregate_series`), for comparison.
            let started = Instant::now();
            series_each = 0;
            for info in &all {
                if store.summary(&info.key, last_hour).await.unwrap().is_some() {
                    series_each += 1;
                }
            }
            c_each.push(started.elapsed());
        }
        println!(
            "(a) one series raw, whole span: {:.1} ms ({points} points)",
            median(a)
        );
        println!(
            "(b) one series, 1 h buckets: {:.1} ms ({buckets} buckets)",
            median(b)
        );
        println!(
            "(c) all series, last 1 h mean: {:.1} ms ({series} series, one aggregate_series read)",
            median(c)
        );
        println!(
            "(c, per series) all series, last 1 h summary: {:.1} ms ({series_each} series, one read each)",
            median(c_each)
        );
        store.close().await.unwrap();
    });
}
