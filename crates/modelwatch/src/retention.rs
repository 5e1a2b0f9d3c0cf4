//! Retention: deleting samples, finished notifications and raw predictions older than a
//! period.
//!
//! `modelwatch prune` does it once (for cron); `serve` runs [`spawn_pruner`] beside the
//! HTTP server, which prunes at start-up and then hourly with the configured
//! [`RetentionConfig`]. What goes and what never goes is the store's contract
//! ([`MetricStore::delete_samples_before`], [`AlertStore::delete_finished_notifications`]):
//! samples before the cutoff; outbox rows that finished before it; raw predictions in
//! windows that are final, whose metrics stay ([`prune_raw_predictions`]). Pending
//! notifications, alerts, their history, rules, silences and tokens are never pruned. The deletes are
//! idempotent, so several servers on one database may prune at once.
//!
//! [`MetricStore::delete_samples_before`]: modelwatch_store::MetricStore::delete_samples_before
//! [`AlertStore::delete_finished_notifications`]: modelwatch_store::AlertStore::delete_finished_notifications

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;
use modelwatch_core::Timestamp;
use modelwatch_engine::predictions::prune_raw_predictions;
use modelwatch_store::{StoreError, Stores};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{parse_retention, RetentionConfig};
use crate::output::{emit, Format, Table};

/// How often `serve` prunes after the start-up pass.
pub const PRUNE_EVERY: Duration = Duration::from_secs(3_600);

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Delete samples older than this, e.g. 90d or 720h (at least 1h).
    #[arg(long, value_name = "DURATION", value_parser = parse_retention)]
    pub samples_older_than: Option<Duration>,
    /// Delete notifications that finished (delivered, failed, skipped) longer ago than
    /// this, e.g. 30d; pending ones always stay.
    #[arg(long, value_name = "DURATION", value_parser = parse_retention)]
    pub notifications_older_than: Option<Duration>,
    /// Delete raw prediction events older than this, e.g. 30d, whose window is final
    /// (its label delay passed); their windows' metrics stay.
    #[arg(long, value_name = "DURATION", value_parser = parse_retention)]
    pub predictions_older_than: Option<Duration>,
}

/// What one kind of pruning removed.
#[derive(Debug, Serialize)]
pub struct Pruned {
    /// `samples` or `notifications`.
    pub kind: &'static str,
    /// Everything (finished) before this went.
    pub before: Timestamp,
    pub removed: u64,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Samples,
    Notifications,
    /// Raw predictions: `before` is nominal, each model keeps its non-final windows.
    Predictions(Duration),
}

/// The kinds `retention` asks to prune, each with its cutoff: everything (finished)
/// before `now − period`.
fn cutoffs(retention: RetentionConfig, now: Timestamp) -> Vec<(Kind, Timestamp)> {
    let predictions = retention
        .predictions
        .map(|keep| (Kind::Predictions(keep), Some(keep)));
    [
        (Kind::Samples, retention.samples),
        (Kind::Notifications, retention.notifications),
    ]
    .into_iter()
    .chain(predictions)
    .filter_map(|(kind, period)| period.map(|p| (kind, now.saturating_sub(p))))
    .collect()
}

async fn prune(
    stores: &Stores,
    kind: Kind,
    before: Timestamp,
    now: Timestamp,
) -> Result<Pruned, StoreError> {
    let (kind, removed) = match kind {
        Kind::Samples => (
            "samples",
            stores.metrics.delete_samples_before(before).await?,
        ),
        Kind::Notifications => (
            "notifications",
            stores.alerts.delete_finished_notifications(before).await?,
        ),
        Kind::Predictions(keep) => (
            "predictions",
            prune_raw_predictions(stores, keep, now).await?,
        ),
    };
    Ok(Pruned {
        kind,
        before,
        removed,
    })
}

/// `modelwatch prune`: one pass with the periods given, printing what went.
pub async fn prune_command(stores: &Stores, args: PruneArgs, format: Format) -> Result<ExitCode> {
    let retention = RetentionConfig {
        samples: args.samples_older_than,
        notifications: args.notifications_older_than,
        predictions: args.predictions_older_than,
    };
    let now = crate::now();
    let cutoffs = cutoffs(retention, now);
    if cutoffs.is_empty() {
        bail!(
            "nothing to prune: give --samples-older-than, --notifications-older-than \
             and/or --predictions-older-than"
        );
    }
    let mut rows = Vec::new();
    for (kind, before) in cutoffs {
        rows.push(prune(stores, kind, before, now).await?);
    }
    let mut table = Table::new(&["pruned", "before", "removed"]);
    for row in &rows {
        table.push(vec![
            row.kind.to_owned(),
            row.before.to_string(),
            row.removed.to_string(),
        ]);
    }
    emit(format, &rows, &table)?;
    Ok(ExitCode::SUCCESS)
}

/// One pass of the server's pruner: each kind on its own, failures logged, never fatal
/// (the next pass tries again).
pub async fn prune_pass(stores: &Stores, retention: RetentionConfig, now: Timestamp) {
    for (kind, before) in cutoffs(retention, now) {
        match prune(stores, kind, before, now).await {
            Ok(pruned) => tracing::info!(
                kind = pruned.kind,
                removed = pruned.removed,
                before = %before,
                "pruned"
            ),
            Err(error) => tracing::error!(?kind, %error, "cannot prune; retrying in an hour"),
        }
    }
}

/// Prunes at once, then every [`PRUNE_EVERY`], until `stop` turns true; a pass in
/// progress is abandoned then (each of its steps is committed on its own, so nothing is
/// left half done). `None` when nothing is to be pruned.
pub fn spawn_pruner(
    stores: Stores,
    retention: RetentionConfig,
    mut stop: watch::Receiver<bool>,
) -> Option<JoinHandle<()>> {
    if retention.samples.is_none()
        && retention.notifications.is_none()
        && retention.predictions.is_none()
    {
        return None;
    }
    Some(tokio::spawn(async move {
        let mut ticks = tokio::time::interval(PRUNE_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if *stop.borrow() {
                return;
            }
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stop.changed() => return,
            }
            tokio::select! {
                () = prune_pass(&stores, retention, crate::now()) => {}
                _ = stop.changed() => return,
            }
        }
    }))
}
