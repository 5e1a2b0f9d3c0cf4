//! Store benchmark: durable batch ingest and range queries, on the SQLite backend or, with
//! `MW_BENCH_DB=postgres://…`, on PostgreSQL (same workload, same figures, side by side).
//!
//! The workload is the peer benchmark's (../shared/bench/peers/gen.py): S series
//! (10 metrics per model, 6-decimal accuracy-like and 3-decimal latency-like values), N
//! samples each, one a minute, written in time order (all series for minute 0, then
//! minute 1, …) in batches of 10,000, each batch committed durably before the next.
//!
//!     cargo bench -p modelwatch-store --bench store            # S=1000, N=10000
//!     MW_SERIES=100 MW_SAMPLES=2000 cargo bench -p modelwatch-store --bench store
//!     MW_BENCH_DB=postgres://postgres@127.0.0.1:5432/test cargo bench -p modelwatch-store --bench store
//!     MW_BENCH_DB=influxdb cargo bench -p modelwatch-store --bench store   # a private influxd
//!     MW_BENCH_DB=influxdb://127.0.0.1:8086/bench cargo bench -p modelwatch-store --bench store
//!     MW_BENCH_DB=prometheus cargo bench -p modelwatch-store --bench store  # a private Prometheus
//!     MW_BENCH_DB=prometheus://127.0.0.1:9090 cargo bench -p modelwatch-store --bench store
//!
//! With PostgreSQL the URL names a database to connect to; the benchmark creates a
//! scratch database next to it and drops it at the end. Commits there are durable too
//! (the server's default `synchronous_commit = on`).
//!
//! Prints: ingest samples/s (time inside `append`, and wall time including generating
//! the samples), the CPU time ingestion took in this process and, for a PostgreSQL on this
//! machine, in its backends (samples per CPU-second do not depend on what else runs on
//! a shared machine), database bytes per sample, and the median/p99 latency of reading back
//! 10,000 points of one series, and of downsampling a 30-day per-minute series to 1,000
//! points.
//!
//! On InfluxDB it then does the same work natively — the same line protocol in the same
//! requests of 5,000 lines, the same InfluxQL over HTTP with the JSON parsed, one
//! `GROUP BY time()` statement for the 1,000 buckets — into a second database of the same
//! server, and prints modelwatch's overhead over each native figure (ingest: the time
//! inside `append` against the time spent rendering and posting the same lines).

#![allow(clippy::unwrap_used)] // a benchmark: a failure should stop it loudly

use std::time::{Duration, Instant};

use modelwatch_core::{Metric, ModelName, Sample, SeriesKey, TimeRange, Timestamp, Version};
use std::sync::Arc;

use modelwatch_store::influx::testing as influx_testing;
use modelwatch_store::postgres::testing::TestDatabase;
use modelwatch_store::prometheus::testing::TestPrometheus;
use modelwatch_store::{InfluxStore, MetricStore, PostgresStore, PrometheusStore, SqliteStore};

const START_MS: i64 = 1_704_110_400_000;
const STEP_MS: i64 = 60_000;
const BATCH: usize = 10_000;

struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
    fn gauss(&mut self) -> f64 {
        (0..12).map(|_| self.unit()).sum::<f64>() - 6.0
    }
}

const METRICS: [&str; 10] = [
    "accuracy",
    "precision",
    "recall",
    "f1",
    "auc",
    "calibration",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "queue_ms",
];

struct SeriesGen {
    key: SeriesKey,
    base: f64,
    accuracy_like: bool,
}

fn series(count: usize) -> Vec<SeriesGen> {
    let mut rng = Rng(42);
    (0..count)
        .map(|i| {
            let metric = METRICS[i % METRICS.len()];
            let key = SeriesKey::new(
                ModelName::parse(&format!("model_{:03}", i / METRICS.len())).unwrap(),
                Version::parse(&format!("v{}", 1 + (i / METRICS.len()) % 5)).unwrap(),
                Metric::parse(metric).unwrap(),
            );
            let accuracy_like = i % METRICS.len() < 6;
            let base = if accuracy_like {
                0.86 + 0.08 * rng.unit()
            } else {
                (20.0 * (0.5 + 1.5 * rng.unit())).ln()
            };
            SeriesGen {
                key,
                base,
                accuracy_like,
            }
        })
        .collect()
}

fn value(series: &SeriesGen, rng: &mut Rng) -> f64 {
    if series.accuracy_like {
        let v = (series.base + 0.004 * rng.gauss()).clamp(0.0, 1.0);
        (v * 1e6).round() / 1e6
    } else {
        let v = (series.base + 0.25 * rng.gauss()).exp();
        (v * 1e3).round() / 1e3
    }
}

/// CPU time this process has used (user + system), from /proc (Linux; USER_HZ = 100).
/// On a shared 2-core machine wall time depends on what else runs; CPU time does not.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let s: usize = std::env::var("MW_SERIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let n: usize = std::env::var("MW_SAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bench.db");
        let postgres = match std::env::var("MW_BENCH_DB") {
            Ok(url) if url.starts_with("postgres") => Some(TestDatabase::create_on(&url, "bench").await),
            _ => None,
        };
        let influx = match std::env::var("MW_BENCH_DB") {
            Ok(location) if location == "influxdb" => {
                Some(influx_testing::TestDatabase::create("bench").location().to_owned())
            }
            Ok(location) if location.starts_with("influxdb://") => Some(location),
            _ => None,
        };
        // A private Prometheus lives as long as the benchmark (its guard).
        let (prometheus, _private) = match std::env::var("MW_BENCH_DB") {
            Ok(location) if location == "prometheus" => {
                let server = TestPrometheus::start();
                (Some(server.location()), Some(server))
            }
            Ok(location) if location.starts_with("prometheus://") => (Some(location), None),
            _ => (None, None),
        };
        let store: Arc<dyn MetricStore> = match (&postgres, &influx, &prometheus) {
            (Some(database), _, _) => Arc::new(PostgresStore::open(database.url()).await.unwrap()),
            (None, Some(location), _) => Arc::new(InfluxStore::open(location).await.unwrap()),
            (None, None, Some(location)) => Arc::new(PrometheusStore::open(location).await.unwrap()),
            (None, None, None) => Arc::new(SqliteStore::open(&path).await.unwrap()),
        };
        let backend = match (&postgres, &influx, &prometheus) {
            (Some(_), _, _) => "postgresql",
            (None, Some(_), _) => "influxdb",
            (None, None, Some(_)) => "prometheus",
            (None, None, None) => "sqlite",
        };
        let all = series(s);
        let mut rng = Rng(7);
        let total = s * n;
        let mut in_append = Duration::ZERO;
        let server_before = match &postgres {
            Some(database) => server_cpu(database.url()).await,
            None => None,
        };
        let wall = Instant::now();
        let cpu_before = cpu_time();
        let mut batch: Vec<Sample> = Vec::with_capacity(BATCH);
        let mut written = 0usize;
        for minute in 0..n {
            let timestamp = Timestamp::from_millis(START_MS + minute as i64 * STEP_MS).unwrap();
            for gen in &all {
                batch.push(Sample {
                    model: gen.key.model.clone(),
                    version: gen.key.version.clone(),
                    metric: gen.key.metric.clone(),
                    value: value(gen, &mut rng),
                    timestamp,
                    dataset: None,
                });
                if batch.len() == BATCH {
                    written += batch.len();
                    let started = Instant::now();
                    store.append(std::mem::replace(&mut batch, Vec::with_capacity(BATCH))).await.unwrap();
                    in_append += started.elapsed();
                }
            }
        }
        if !batch.is_empty() {
            written += batch.len();
            let started = Instant::now();
            store.append(batch).await.unwrap();
            in_append += started.elapsed();
        }
        let wall = wall.elapsed();
        let cpu = cpu_before.zip(cpu_time()).map(|(before, after)| after - before);
        assert_eq!(written, total);
        println!("backend: {backend}");
        println!("workload: {s} series x {n} samples = {total} samples, batches of {BATCH}, durable commits");
        println!(
            "ingest: {:.0} samples/s inside append ({:.2} s), {:.0} samples/s wall including sample generation ({:.2} s)",
            total as f64 / in_append.as_secs_f64(),
            in_append.as_secs_f64(),
            total as f64 / wall.as_secs_f64(),
            wall.as_secs_f64()
        );
        if let Some(cpu) = cpu {
            println!(
                "ingest CPU: {:.2} s of CPU for the whole process, including generation = {:.0} samples per CPU-second",
                cpu.as_secs_f64(),
                total as f64 / cpu.as_secs_f64()
            );
        }
        let server_after = match &postgres {
            Some(database) => server_cpu(database.url()).await,
            None => None,
        };
        if let (Some(before), Some(after)) = (server_before, server_after) {
            let server = after.saturating_sub(before);
            println!(
                "ingest server CPU: {:.2} s in this database's PostgreSQL backends = {:.0} samples per server CPU-second",
                server.as_secs_f64(),
                total as f64 / server.as_secs_f64()
            );
        }

        // Range query: 10,000 points of one series among all.
        let key = &all[0].key;
        let points = n.min(10_000) as i64;
        let range = TimeRange::new(
            Timestamp::from_millis(START_MS).unwrap(),
            Timestamp::from_millis(START_MS + points * STEP_MS).unwrap(),
        );
        assert_eq!(store.range(key, range).await.unwrap().len(), points as usize);
        let mut times = Vec::new();
        for i in 0..200 {
            let key = &all[(i * 37) % all.len()].key;
            let started = Instant::now();
            let got = store.range(key, range).await.unwrap();
            times.push(started.elapsed());
            assert_eq!(got.len(), points as usize);
        }
        times.sort();
        let range_median = percentile(&times, 0.5);
        println!(
            "range query of {points} points (one series of {s}): median {:.3} ms, p99 {:.3} ms",
            range_median.as_secs_f64() * 1e3,
            percentile(&times, 0.99).as_secs_f64() * 1e3
        );

        let store = match &postgres {
            _ if influx.is_some() => {
                println!("disk: not measured for InfluxDB (its TSM files compact in the background)");
                store
            }
            _ if prometheus.is_some() => {
                println!("disk: not measured for Prometheus (its head and WAL compact into blocks in the background)");
                store
            }
            Some(database) => {
                let bytes = postgres_bytes(database.url()).await;
                println!("disk: {bytes} bytes for {total} samples = {:.2} bytes/sample (tables + indexes)", bytes as f64 / total as f64);
                store
            }
            None => {
                store.close().await.unwrap();
                let bytes: u64 = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
                println!("disk: {bytes} bytes for {total} samples = {:.2} bytes/sample (file + WAL after close)", bytes as f64 / total as f64);
                Arc::new(SqliteStore::open(&path).await.unwrap())
            }
        };

        // A 30-day per-minute series downsampled to 1,000 points.
        let month = 30 * 24 * 60;
        let long = SeriesKey::parse("long_model", "v1", "latency").unwrap();
        for start in (0..month).step_by(BATCH) {
            let batch = (start..(start + BATCH).min(month))
                .map(|i| Sample {
                    model: long.model.clone(),
                    version: long.version.clone(),
                    metric: long.metric.clone(),
                    value: (value(&all[6], &mut rng) * 1e3).round() / 1e3,
                    timestamp: Timestamp::from_millis(START_MS + i as i64 * STEP_MS).unwrap(),
                    dataset: None,
                })
                .collect();
            store.append(batch).await.unwrap();
        }
        let mut times = Vec::new();
        for _ in 0..100 {
            let started = Instant::now();
            let buckets = store.buckets(&long, TimeRange::all(), 1000).await.unwrap();
            times.push(started.elapsed());
            assert!(buckets.len() <= 1000 && buckets.len() > 900);
        }
        times.sort();
        let buckets_median = percentile(&times, 0.5);
        println!(
            "30-day per-minute series ({month} points) downsampled to 1,000 buckets: median {:.3} ms, p99 {:.3} ms",
            buckets_median.as_secs_f64() * 1e3,
            percentile(&times, 0.99).as_secs_f64() * 1e3
        );
        if let Some(location) = &influx {
            let native = native_influx(location, &all, n, range).await;
            let overhead = |ours: Duration, theirs: Duration| {
                100.0 * (ours.as_secs_f64() / theirs.as_secs_f64() - 1.0)
            };
            println!(
                "native InfluxDB, same work: ingest {:.0} samples/s ({:.2} s rendering and posting line protocol), range median {:.3} ms, buckets median {:.3} ms",
                total as f64 / native.ingest.as_secs_f64(),
                native.ingest.as_secs_f64(),
                native.range.as_secs_f64() * 1e3,
                native.buckets.as_secs_f64() * 1e3
            );
            println!(
                "modelwatch's overhead over native InfluxDB: ingest {:+.1} %, range {:+.1} %, buckets {:+.1} %",
                overhead(in_append, native.ingest),
                overhead(range_median, native.range),
                overhead(buckets_median, native.buckets)
            );
        }
        store.close().await.unwrap();
        drop(store);
        drop(postgres);
    });
}

/// CPU time used so far by the PostgreSQL backends serving `url`'s database (the server
/// must run on this machine; `None` otherwise). Ingestion costs the server at least as
/// much as the client; on two shared cores both decide the rate.
async fn server_cpu(url: &str) -> Option<Duration> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .ok()?;
    tokio::spawn(connection);
    let rows = client
        .query(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .ok()?;
    let mut total = Duration::ZERO;
    for row in rows {
        let pid: i32 = row.get(0);
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let after_name = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        total += Duration::from_millis(ticks * 10);
    }
    Some(total)
}

/// Bytes the samples and series take in PostgreSQL, indexes and TOAST included.
async fn postgres_bytes(url: &str) -> i64 {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute("VACUUM ANALYZE samples")
        .await
        .unwrap();
    client
        .query_one(
            "SELECT pg_total_relation_size('samples') + pg_total_relation_size('series')",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

struct NativeFigures {
    ingest: Duration,
    range: Duration,
    buckets: Duration,
}

/// The benchmark's work done straight against InfluxDB's HTTP API, in a second database
/// of the server at `location`: the same samples (same generator and seed) as line
/// protocol in requests of 5,000 lines, the same range statement, and the 30-day series'
/// 1,000 buckets as one `GROUP BY time()` statement.
async fn native_influx(
    location: &str,
    all: &[SeriesGen],
    n: usize,
    range: TimeRange,
) -> NativeFigures {
    let rest = location.trim_start_matches("influxdb://");
    let (host, database) = rest.split_once('/').unwrap();
    let base = format!("http://{}", host.rsplit('@').next().unwrap());
    let database = format!("{database}_native");
    let client = reqwest::Client::new();
    let query = |q: String| {
        let request = client
            .post(format!("{base}/query"))
            .query(&[("db", database.as_str()), ("epoch", "ms")])
            .form(&[("q", q)]);
        async move {
            let body = request.send().await.unwrap().bytes().await.unwrap();
            serde_json::from_slice::<serde_json::Value>(&body).unwrap()
        }
    };
    query(format!("CREATE DATABASE \"{database}\"")).await;
    let write = |body: String| {
        let request = client
            .post(format!("{base}/write"))
            .query(&[("db", database.as_str()), ("precision", "ms")])
            .body(body);
        async move {
            let response = request.send().await.unwrap();
            assert!(
                response.status().is_success(),
                "{:?}",
                response.text().await
            );
        }
    };
    let line = |key: &SeriesKey, value: f64, ms: i64, out: &mut String| {
        use std::fmt::Write as _;
        let _ = writeln!(
            out,
            "model_metrics,model={},version={} {}={value} {ms}",
            key.model, key.version, key.metric
        );
    };
    let mut rng = Rng(7);
    // Rendering the lines counts, as it does inside modelwatch's append; making the values
    // does not (the generator's time is outside append there too).
    let mut rendering = Duration::ZERO;
    let mut posting = Duration::ZERO;
    let (mut body, mut lines) = (String::with_capacity(5_000 * 96), 0);
    for minute in 0..n {
        let ms = START_MS + minute as i64 * STEP_MS;
        for gen in all {
            let v = value(gen, &mut rng);
            let started = Instant::now();
            line(&gen.key, v, ms, &mut body);
            rendering += started.elapsed();
            lines += 1;
            if lines == 5_000 {
                let started = Instant::now();
                write(std::mem::take(&mut body)).await;
                posting += started.elapsed();
                lines = 0;
            }
        }
    }
    if !body.is_empty() {
        let started = Instant::now();
        write(std::mem::take(&mut body)).await;
        posting += started.elapsed();
    }
    let ingest = rendering + posting;

    let statement = |key: &SeriesKey, what: &str, tail: &str| {
        format!(
            "SELECT {what} FROM \"model_metrics\" WHERE \"model\" = '{}' AND \"version\" = '{}' \
             AND \"dataset\" = '' AND time >= {}ms AND time < {}ms{tail}",
            key.model,
            key.version,
            range.start.as_millis(),
            range.end.as_millis()
        )
    };
    let mut times = Vec::new();
    for i in 0..200 {
        let key = &all[(i * 37) % all.len()].key;
        let q = statement(key, &format!("\"{}\"", key.metric), "");
        let started = Instant::now();
        let answer = query(q).await;
        times.push(started.elapsed());
        let rows = answer["results"][0]["series"][0]["values"]
            .as_array()
            .map_or(0, Vec::len);
        assert_eq!(rows as i64, range.end.millis_since(range.start) / STEP_MS);
    }
    times.sort();
    let range_median = percentile(&times, 0.5);

    let month = 30 * 24 * 60;
    let long = SeriesKey::parse("long_model", "v1", "latency").unwrap();
    for start in (0..month).step_by(5_000) {
        let mut body = String::with_capacity(5_000 * 64);
        for i in start..(start + 5_000).min(month) {
            let v = (value(&all[6], &mut rng) * 1e3).round() / 1e3;
            line(&long, v, START_MS + i as i64 * STEP_MS, &mut body);
        }
        write(body).await;
    }
    let width = (month as i64 * STEP_MS + 999) / 1000;
    let month_range = TimeRange::new(
        Timestamp::from_millis(START_MS).unwrap(),
        Timestamp::from_millis(START_MS + month as i64 * STEP_MS).unwrap(),
    );
    let mut times = Vec::new();
    for _ in 0..100 {
        let q = format!(
            "SELECT count(\"latency\"), mean(\"latency\"), min(\"latency\"), max(\"latency\"), \
             first(\"latency\"), last(\"latency\") FROM \"model_metrics\" WHERE \"model\" = 'long_model' \
             AND \"version\" = 'v1' AND \"dataset\" = '' AND time >= {}ms AND time < {}ms \
             GROUP BY time({width}ms, {}ms) fill(none)",
            month_range.start.as_millis(),
            month_range.end.as_millis(),
            START_MS.rem_euclid(width)
        );
        let started = Instant::now();
        let answer = query(q).await;
        times.push(started.elapsed());
        let buckets = answer["results"][0]["series"][0]["values"]
            .as_array()
            .map_or(0, Vec::len);
        assert!(buckets <= 1000 && buckets > 900, "{buckets}");
    }
    times.sort();
    query(format!("DROP DATABASE \"{database}\"")).await;
    NativeFigures {
        ingest,
        range: range_median,
        buckets: percentile(&times, 0.5),
    }
}
