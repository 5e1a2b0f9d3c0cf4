//! Evaluation speed: 10,000 enabled threshold rules over 10,000 series, each holding one
//! week of per-minute history, on the SQLite store (durable, `synchronous = FULL`).
//!
//! Prints the time of passes of `evaluate_all`:
//! - `first`: every rule is evaluated for the first time and counts the last day of its
//!   series (a pass is bounded, see `modelwatch_engine::evaluation`);
//! - `catch-up`: the passes after it until every sample is counted (how many, how long);
//! - `idle`: no new sample anywhere, nothing to write (an evaluator ticking between
//!   measurements);
//! - `next minute`: one new sample per series, as in steady per-minute operation;
//! - `next 10 minutes`: ten such minutes (`MODELWATCH_BENCH_STEADY`), averaged (window rules observe on a 10-minute
//!   cadence spread over the series, so a tenth of them works each minute); the pass
//!   alone, then with the appends of the minute's samples and those alone.
//!
//! `MODELWATCH_BENCH_SERIES` and `MODELWATCH_BENCH_MINUTES` shrink the workload;
//! `MODELWATCH_BENCH_STEADY` sets how many minutes the last figure averages (10; with 0
//! and 20 under `valgrind --tool=callgrind`, the difference of the instruction counts is
//! the cost of 20 steady passes whatever the machine's load);
//! `MODELWATCH_BENCH_RULES=degradation` makes every rule a degradation rule created as a
//! user would (`--degradation 5`: `comparison: auto`, here a 2-hour window with the
//! long-run test), `=latest` one comparing each new value with the 24 h before it
//! (`comparison: latest`), `=change_point` a change-point rule (its detector, kept in the
//! rule's state, counts every sample; the first passes learn each series from its history),
//! instead of a threshold.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Instant;

use modelwatch_core::alerting::{AlertConfig, RuleSpec};
use modelwatch_core::{Metric, ModelName, Sample, Timestamp, Version};
use modelwatch_engine::Engine;
use modelwatch_store::{SqliteStore, Stores};

const T0: i64 = 1_700_000_000_000;
const MINUTE: i64 = 60_000;
const VERSIONS_PER_MODEL: usize = 10;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn series_name(i: usize) -> (ModelName, Version) {
    (
        ModelName::parse(&format!("model_{:04}", i / VERSIONS_PER_MODEL)).unwrap(),
        Version::parse(&format!("v{}", i % VERSIONS_PER_MODEL)).unwrap(),
    )
}

/// A healthy accuracy around 0.95; one series in a hundred degrades below 0.9.
fn value(series: usize, minute: usize) -> f64 {
    let wiggle = ((series * 31 + minute * 17) % 100) as f64 / 10_000.0;
    if series.is_multiple_of(100) && minute % 1440 > 1200 {
        0.85 + wiggle
    } else {
        0.95 + wiggle
    }
}

fn samples(series: std::ops::Range<usize>, minutes: std::ops::Range<usize>) -> Vec<Sample> {
    let accuracy = Metric::parse("accuracy").unwrap();
    let mut batch = Vec::with_capacity(series.len() * minutes.len());
    for s in series {
        let (model, version) = series_name(s);
        for m in minutes.clone() {
            batch.push(Sample {
                model: model.clone(),
                version: version.clone(),
                metric: accuracy.clone(),
                value: value(s, m),
                timestamp: Timestamp::from_millis(T0 + m as i64 * MINUTE).unwrap(),
                dataset: None,
            });
        }
    }
    batch
}

fn main() {
    let series = env_usize("MODELWATCH_BENCH_SERIES", 10_000);
    let minutes = env_usize("MODELWATCH_BENCH_MINUTES", 7 * 24 * 60);
    let steady = env_usize("MODELWATCH_BENCH_STEADY", 10);
    let kind = std::env::var("MODELWATCH_BENCH_RULES").unwrap_or_else(|_| "threshold".into());
    let degradation = kind == "degradation" || kind == "latest";
    let latest = kind == "latest";
    let change_point = kind == "change_point";
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let stores = Stores::of(Arc::new(
            SqliteStore::open(dir.path().join("bench.db")).await.unwrap(),
        ));
        let engine = Engine::new(
            &stores,
            AlertConfig {
                max_alerts_per_hour: 1_000_000,
                max_alerts_per_model_per_hour: 1_000_000,
                ..AlertConfig::default()
            },
        );

        let started = Instant::now();
        let per_batch = (200_000 / minutes.max(1)).max(1);
        let mut start = 0;
        while start < series {
            let end = (start + per_batch).min(series);
            stores
                .metrics
                .append(samples(start..end, 0..minutes))
                .await
                .unwrap();
            start = end;
        }
        let total = series * minutes;
        println!(
            "workload: {series} series x {minutes} per-minute samples = {total} samples, loaded in {:.1} s",
            started.elapsed().as_secs_f64()
        );

        let started = Instant::now();
        let mut tasks = Vec::with_capacity(series);
        for s in 0..series {
            let engine = engine.clone();
            let (model, version) = series_name(s);
            tasks.push(tokio::spawn(async move {
                let condition = if change_point {
                    RuleSpec {
                        condition_type: Some("change_point".into()),
                        ..RuleSpec::default()
                    }
                } else if degradation {
                    RuleSpec {
                        max_degradation_percentage: Some(5.0),
                        comparison: latest.then(|| "latest".to_owned()),
                        ..RuleSpec::default()
                    }
                } else {
                    RuleSpec {
                        threshold_value: Some(0.9),
                        comparison_operator: Some("lt".into()),
                        ..RuleSpec::default()
                    }
                };
                let spec = RuleSpec {
                    name: format!("low accuracy {s}"),
                    model: model.to_string(),
                    version: Some(version.to_string()),
                    metric: "accuracy".into(),
                    severity: Some("high".into()),
                    notify_channels: Some(vec!["ops".into()]),
                    for_evaluations: Some(1),
                    ..condition
                };
                engine
                    .create_rule(spec, Timestamp::from_millis(T0).unwrap())
                    .await
                    .unwrap();
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        println!(
            "rules: {series} enabled {} rules created in {:.1} s",
            kind,
            started.elapsed().as_secs_f64()
        );

        let minute = |m: usize| Timestamp::from_millis(T0 + m as i64 * MINUTE).unwrap();
        let pass = |label: &'static str, now: Timestamp| {
            let engine = engine.clone();
            async move {
                let started = Instant::now();
                let report = engine.evaluate_all(now).await.unwrap();
                println!(
                    "evaluate_all ({label}): {:.3} s for {} rule x version evaluations ({} samples counted), {} alerts created, {} conflicts{}",
                    started.elapsed().as_secs_f64(),
                    report.evaluations.len(),
                    report.evaluations.iter().map(|e| e.counted).sum::<usize>(),
                    report.alerts_created.len(),
                    report.conflicts,
                    if report.backlog { ", more to count" } else { "" }
                );
                report.backlog
            }
        };
        // Where an idle pass goes: the bulk reads it is made of.
        let started = Instant::now();
        let rules = stores.alerts.list_rules(None).await.unwrap();
        let t_rules = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let listed = stores
            .metrics
            .list_series(&modelwatch_store::SeriesFilter::default())
            .await
            .unwrap();
        let t_series = started.elapsed().as_secs_f64();
        let keys: Vec<_> = listed.into_iter().map(|s| s.key).collect();
        let started = Instant::now();
        stores.metrics.latest_many(&keys).await.unwrap();
        let t_latest = started.elapsed().as_secs_f64();
        println!(
            "reads: list_rules {t_rules:.3} s ({} rules), list_series {t_series:.3} s, latest_many {t_latest:.3} s",
            rules.len()
        );
        let backlog = pass("first", minute(minutes)).await;
        if backlog {
            let started = Instant::now();
            let mut passes = 0;
            loop {
                passes += 1;
                let report = engine.evaluate_all(minute(minutes)).await.unwrap();
                if !report.backlog {
                    break;
                }
            }
            println!(
                "evaluate_all (catch-up): {passes} more passes, {:.3} s",
                started.elapsed().as_secs_f64()
            );
        }
        pass("idle", minute(minutes)).await;
        stores
            .metrics
            .append(samples(0..series, minutes..minutes + 1))
            .await
            .unwrap();
        pass("next minute", minute(minutes + 1)).await;
        let started = Instant::now();
        let mut appending = 0.0;
        for m in minutes + 1..minutes + 1 + steady {
            let append = Instant::now();
            stores
                .metrics
                .append(samples(0..series, m..m + 1))
                .await
                .unwrap();
            appending += append.elapsed().as_secs_f64();
            engine.evaluate_all(minute(m)).await.unwrap();
        }
        let per_pass = started.elapsed().as_secs_f64() / steady.max(1) as f64;
        let appends = appending / steady.max(1) as f64;
        println!(
            "evaluate_all (next {steady} minutes): {:.3} s per pass on average ({per_pass:.3} s with the minute's {series} appends, {appends:.3} s)",
            per_pass - appends
        );
        let states = stores.alerts.states(None).await.unwrap();
        let bytes: usize = states
            .iter()
            .map(|s| modelwatch_store::alerts::records::detail_to_json(&s.state.detail).unwrap().len())
            .sum();
        println!(
            "states: {} bytes of detail per rule state on average",
            bytes / states.len().max(1)
        );
        stores.close().await.unwrap();
    });
}
