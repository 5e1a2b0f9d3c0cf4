//! `modelwatch migrate --from LOCATION --to LOCATION`: moves an installation from one
//! store to another (typically an SQLite file to PostgreSQL).
//!
//! It copies the custom metric definitions, then every series page by page in batches,
//! then the alerting state — rules, their evaluation states, alerts and their history,
//! silences, the notification outbox (with each row's delivery status, attempts and
//! lease) — and the API tokens, all with their ids. At the end it counts each series and
//! each table on both sides: the command succeeds only when every count matches.
//! Appends replace samples at existing timestamps and imported rows whose key the target
//! already has are left alone, so an interrupted migration is resumed by running the
//! same command again. Servers should be stopped meanwhile: what they change during the
//! copy may be missed.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use modelwatch_core::{Point, Sample, SeriesKey, TimeRange, Timestamp};
use modelwatch_store::{MetricStore, SeriesFilter, SeriesInfo, Stores};
use serde::Serialize;

use crate::output::{emit, Format, Table};

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Where the data is now: an SQLite file (`sqlite:PATH` or a path), `postgres://…`
    /// `influxdb://HOST:PORT/DATABASE` or `prometheus://HOST:PORT` (samples only: name its
    /// alerting state with --from-alerts-db; from Prometheus, what remote read returns).
    #[arg(long, value_name = "LOCATION")]
    pub from: String,
    /// The source's rules, alerts, silences, outbox and tokens when they are not kept
    /// with its samples (an SQLite file or `postgres://…`).
    #[arg(long, value_name = "LOCATION")]
    pub from_alerts_db: Option<String>,
    /// Where it goes: `postgres://…`, an SQLite file (created when missing) or
    /// `influxdb://HOST:PORT/DATABASE` or `prometheus://HOST:PORT` (samples only: name
    /// where the alerting state goes with --to-alerts-db).
    #[arg(long, value_name = "LOCATION")]
    pub to: String,
    /// Where the alerting state goes when the samples go to a store of samples only, or
    /// when it should live apart from them.
    #[arg(long, value_name = "LOCATION")]
    pub to_alerts_db: Option<String>,
    /// Samples per committed batch.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub batch: u32,
}

/// What was moved, and how the final check went.
#[derive(Debug, Default, Serialize)]
pub struct MigrationReport {
    pub series: u64,
    pub samples: u64,
    pub metric_definitions: u64,
    pub rules: u64,
    pub rule_states: u64,
    pub alerts: u64,
    pub alert_transitions: u64,
    pub silences: u64,
    pub notifications: u64,
    pub tokens: u64,
    /// Series whose sample count differs between source and target after the copy.
    pub mismatches: Vec<Mismatch>,
    /// Tables (rules, alerts, …, tokens) whose row count differs after the copy.
    pub table_mismatches: Vec<TableMismatch>,
}

impl MigrationReport {
    pub fn is_complete(&self) -> bool {
        self.mismatches.is_empty() && self.table_mismatches.is_empty()
    }
}

#[derive(Debug, Serialize)]
pub struct TableMismatch {
    pub table: String,
    pub source: u64,
    pub target: u64,
}

#[derive(Debug, Serialize)]
pub struct Mismatch {
    pub series: String,
    pub source: u64,
    pub target: u64,
}

/// Runs the command: opens both stores, copies, checks, prints the report.
pub async fn run(args: MigrateArgs, format: Format) -> Result<ExitCode> {
    refuse_missing_sqlite_source(&args.from)?;
    if let Some(alerts) = &args.from_alerts_db {
        refuse_missing_sqlite_source(alerts)?;
    }
    if args.from == args.to {
        bail!("--from and --to name the same database");
    }
    // A migration names every location itself: no default alerts file is guessed for a
    // store of samples only, on either side.
    for (flag, location, alerts, alerts_flag) in [
        (
            "--from",
            &args.from,
            &args.from_alerts_db,
            "--from-alerts-db",
        ),
        ("--to", &args.to, &args.to_alerts_db, "--to-alerts-db"),
    ] {
        if alerts.is_none() && !modelwatch_store::Backend::of(location).is_relational() {
            bail!(
                "{flag} {} keeps only samples: name where its rules, alerts and tokens are \
                 with {alerts_flag} (an SQLite file or postgres://…)",
                shown(location)
            );
        }
    }
    let source = open_side(&args.from, args.from_alerts_db.as_deref(), "source")
        .await
        .with_context(|| format!("cannot open the source {}", shown(&args.from)))?;
    let target = match open_side(&args.to, args.to_alerts_db.as_deref(), "target").await {
        Ok(target) => target,
        Err(error) => {
            let _ = source.close().await;
            return Err(error.context(format!("cannot open the target {}", shown(&args.to))));
        }
    };
    let outcome = migrate(&source, &target, args.batch as usize, &Bar::new()).await;
    source.close().await.context("cannot close the source")?;
    target.close().await.context("cannot close the target")?;
    let report = outcome?;

    let mut table = Table::new(&["what", "copied"]);
    for (what, copied) in [
        ("series", report.series),
        ("samples", report.samples),
        ("metric definitions", report.metric_definitions),
        ("rules", report.rules),
        ("rule states", report.rule_states),
        ("alerts", report.alerts),
        ("alert transitions", report.alert_transitions),
        ("silences", report.silences),
        ("notifications", report.notifications),
        ("tokens", report.tokens),
    ] {
        table.push(vec![what.to_owned(), copied.to_string()]);
    }
    emit(format, &report, &table)?;
    if !report.is_complete() {
        for mismatch in &report.mismatches {
            note!(
                "count mismatch in {}: {} in the source, {} in the target",
                mismatch.series,
                mismatch.source,
                mismatch.target
            );
        }
        for mismatch in &report.table_mismatches {
            note!(
                "count mismatch in {}: {} in the source, {} in the target",
                mismatch.table,
                mismatch.source,
                mismatch.target
            );
        }
        return Ok(ExitCode::FAILURE);
    }
    note!(
        "migrated {} samples of {} series, {} rules, {} alerts, {} notifications and {} tokens; \
         counts checked",
        report.samples,
        report.series,
        report.rules,
        report.alerts,
        report.notifications,
        report.tokens
    );
    Ok(ExitCode::SUCCESS)
}

/// One side of the migration: its samples, and its alerting state when kept apart. The
/// target takes every series of the source, however many: limits are for what clients
/// send, not for moving an installation.
async fn open_side(metrics: &str, alerts: Option<&str>, side: &str) -> Result<Stores> {
    let limits = match side {
        "target" => modelwatch_store::SeriesLimits::UNLIMITED,
        _ => modelwatch_store::SeriesLimits::default(),
    };
    Ok(modelwatch_store::open_split(metrics, alerts, limits).await?)
}

/// `open` creates a missing SQLite file, which as a source would silently migrate nothing.
fn refuse_missing_sqlite_source(location: &str) -> Result<()> {
    if modelwatch_store::Backend::of(location) != modelwatch_store::Backend::Sqlite {
        return Ok(());
    }
    let path = Path::new(location.strip_prefix("sqlite:").unwrap_or(location));
    if !path.exists() {
        bail!("the source {} does not exist", path.display());
    }
    Ok(())
}

/// A location fit for messages: the password of a URL (`postgres://`, `influxdb://`) masked.
pub(crate) fn shown(location: &str) -> String {
    if location.contains("://") {
        modelwatch_store::postgres::Location::new(location).redacted()
    } else {
        location.to_owned()
    }
}

/// Progress as the copy goes: a bar over series on a terminal, nothing elsewhere.
pub trait MigrationProgress {
    fn started(&self, series: u64);
    fn copied(&self, samples: u64);
    fn series_done(&self);
    fn finished(&self);
}

struct Bar(Option<ProgressBar>);

impl Bar {
    fn new() -> Self {
        if !std::io::stderr().is_terminal() {
            return Bar(None);
        }
        let bar = ProgressBar::new(0);
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} {bar:40} {pos}/{len} series · {msg} ({elapsed}, eta {eta})",
        ) {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(200));
        Bar(Some(bar))
    }
}

impl MigrationProgress for Bar {
    fn started(&self, series: u64) {
        if let Some(bar) = &self.0 {
            bar.set_length(series);
        }
    }
    fn copied(&self, samples: u64) {
        if let Some(bar) = &self.0 {
            bar.set_message(format!("{samples} samples"));
        }
    }
    fn series_done(&self) {
        if let Some(bar) = &self.0 {
            bar.inc(1);
        }
    }
    fn finished(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

/// Points read per page are kept between these bounds by resizing the time window, so
/// memory stays bounded however dense a series is.
const PAGE_TARGET: usize = 50_000;
const FIRST_WINDOW_MS: i64 = 24 * 3600 * 1000;

/// Copies everything `source` holds into `target` and checks the counts.
pub async fn migrate(
    source: &Stores,
    target: &Stores,
    batch: usize,
    progress: &dyn MigrationProgress,
) -> Result<MigrationReport> {
    let mut report = migrate_samples(&*source.metrics, &*target.metrics, batch, progress).await?;
    migrate_alerting(source, target, &mut report).await?;
    Ok(report)
}

/// Alerting rows and tokens: one import each (they are few next to samples), then the
/// row counts of every table compared.
async fn migrate_alerting(
    source: &Stores,
    target: &Stores,
    report: &mut MigrationReport,
) -> Result<()> {
    let rows = source
        .alerts
        .export_alerting()
        .await
        .context("cannot read the alerting state")?;
    let tokens = source
        .tokens
        .list_tokens()
        .await
        .context("cannot read the API tokens")?;
    let copied = rows.counts();
    let count = |rows: usize| rows as u64;
    report.rules = count(rows.rules.len());
    report.rule_states = count(rows.states.len());
    report.alerts = count(rows.alerts.len());
    report.alert_transitions = count(rows.transitions.len());
    report.silences = count(rows.silences.len());
    report.notifications = count(rows.notifications.len());
    report.tokens = count(tokens.len());
    target
        .alerts
        .import_alerting(rows)
        .await
        .context("cannot copy the alerting state")?;
    target
        .tokens
        .import_tokens(tokens)
        .await
        .context("cannot copy the API tokens")?;
    let stored = target.alerts.export_alerting().await?.counts();
    let stored_tokens = target.tokens.list_tokens().await?.len() as u64;
    let mut compare = copied.to_vec();
    compare.push(("tokens", report.tokens));
    let mut found = stored.to_vec();
    found.push(("tokens", stored_tokens));
    for ((table, source), (_, target)) in compare.into_iter().zip(found) {
        if source != target {
            report.table_mismatches.push(TableMismatch {
                table: table.to_owned(),
                source,
                target,
            });
        }
    }
    Ok(())
}

/// Metric definitions and samples, with every series counted on both sides.
async fn migrate_samples(
    source: &dyn MetricStore,
    target: &dyn MetricStore,
    batch: usize,
    progress: &dyn MigrationProgress,
) -> Result<MigrationReport> {
    let mut report = MigrationReport::default();
    // Definitions first: the target validates custom metrics' samples against them.
    for definition in source.custom_metrics().await? {
        target
            .define_metric(definition)
            .await
            .context("cannot copy a metric definition")?;
        report.metric_definitions += 1;
    }
    let all = source.list_series(&SeriesFilter::default()).await?;
    progress.started(all.len() as u64);
    let mut copied_per_series = Vec::with_capacity(all.len());
    for series in &all {
        let copied = copy_series(source, target, series, batch, &mut report, progress)
            .await
            .with_context(|| format!("while copying {}", series.key))?;
        copied_per_series.push(copied);
        report.series += 1;
        progress.series_done();
    }
    progress.finished();
    for (series, copied) in all.iter().zip(copied_per_series) {
        let stored = target.count(&series.key, TimeRange::all()).await?;
        if stored != copied {
            report.mismatches.push(Mismatch {
                series: series.key.to_string(),
                source: copied,
                target: stored,
            });
        }
    }
    Ok(report)
}

async fn copy_series(
    source: &dyn MetricStore,
    target: &dyn MetricStore,
    series: &SeriesInfo,
    batch: usize,
    report: &mut MigrationReport,
    progress: &dyn MigrationProgress,
) -> Result<u64> {
    let end =
        Timestamp::from_millis(series.last_timestamp.as_millis() + 1).unwrap_or(Timestamp::MAX);
    let mut start = series.first_timestamp;
    let mut window = FIRST_WINDOW_MS;
    let mut copied = 0u64;
    while start < end {
        let page_end = Timestamp::from_millis(start.as_millis().saturating_add(window))
            .unwrap_or(Timestamp::MAX)
            .min(end);
        let points = source
            .range(&series.key, TimeRange::new(start, page_end))
            .await?;
        for chunk in points.chunks(batch) {
            target.append(samples(&series.key, chunk)).await?;
            copied += chunk.len() as u64;
            report.samples += chunk.len() as u64;
            progress.copied(report.samples);
        }
        window = next_window(window, points.len());
        start = page_end;
    }
    Ok(copied)
}

/// Grows a sparse window and shrinks a dense one toward [`PAGE_TARGET`] points.
fn next_window(window: i64, points: usize) -> i64 {
    if points > PAGE_TARGET {
        (window / 2).max(1)
    } else if points < PAGE_TARGET / 4 {
        window.saturating_mul(2)
    } else {
        window
    }
}

fn samples(key: &SeriesKey, points: &[Point]) -> Vec<Sample> {
    points
        .iter()
        .map(|point| Sample {
            model: key.model.clone(),
            version: key.version.clone(),
            metric: key.metric.clone(),
            value: point.value,
            timestamp: point.timestamp,
            dataset: key.dataset.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use modelwatch_core::{Dataset, Direction, Metric, MetricDefinition, ValueRange};
    use modelwatch_store::MemoryStore;

    struct Silent;
    impl MigrationProgress for Silent {
        fn started(&self, _: u64) {}
        fn copied(&self, _: u64) {}
        fn series_done(&self) {}
        fn finished(&self) {}
    }

    fn sample(metric: &str, ms: i64, value: f64) -> Sample {
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

    #[tokio::test]
    async fn everything_is_copied_and_counted_even_across_many_pages() {
        let source = MemoryStore::new();
        let target = MemoryStore::new();
        source
            .define_metric(MetricDefinition {
                metric: Metric::parse("queue_ms").unwrap(),
                direction: Direction::LowerIsBetter,
                range: ValueRange::NON_NEGATIVE,
            })
            .await
            .unwrap();
        // Dense (one a second: the window shrinks) then sparse (one a week: it grows).
        let mut batch: Vec<Sample> = (0..120_000)
            .map(|i| sample("latency", i * 1000, i as f64))
            .collect();
        batch.extend((0..50).map(|i| sample("queue_ms", i * 7 * 86_400_000, 1.0)));
        let mut tagged = sample("accuracy", 5, 0.5);
        tagged.dataset = Some(Dataset::parse("holdout").unwrap());
        batch.push(tagged);
        source.append(batch).await.unwrap();

        let report = migrate_samples(&source, &target, 7_000, &Silent)
            .await
            .unwrap();
        assert_eq!(
            (report.series, report.samples, report.metric_definitions),
            (3, 120_051, 1)
        );
        assert!(report.mismatches.is_empty());
        let key = SeriesKey::parse("m", "v1", "latency").unwrap();
        assert_eq!(
            source.range(&key, TimeRange::all()).await.unwrap(),
            target.range(&key, TimeRange::all()).await.unwrap()
        );
        let accuracy = SeriesKey::parse("m", "v1", "accuracy")
            .unwrap()
            .with_dataset(Some(Dataset::parse("holdout").unwrap()));
        let copied = target.latest(&accuracy).await.unwrap().unwrap();
        assert_eq!(copied.dataset.unwrap().as_str(), "holdout");
        assert_eq!(target.custom_metrics().await.unwrap().len(), 1);

        // Running it again changes nothing and still checks out.
        let again = migrate_samples(&source, &target, 7_000, &Silent)
            .await
            .unwrap();
        assert!(again.mismatches.is_empty());
    }

    #[tokio::test]
    async fn extra_samples_in_the_target_are_reported() {
        let source = MemoryStore::new();
        let target = MemoryStore::new();
        source
            .append(vec![sample("latency", 1, 1.0)])
            .await
            .unwrap();
        target
            .append(vec![sample("latency", 2, 1.0)])
            .await
            .unwrap();
        let report = migrate_samples(&source, &target, 10, &Silent)
            .await
            .unwrap();
        assert_eq!(report.mismatches.len(), 1);
        assert_eq!(
            (report.mismatches[0].source, report.mismatches[0].target),
            (1, 2)
        );
    }
}
