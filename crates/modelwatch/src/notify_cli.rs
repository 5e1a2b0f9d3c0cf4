//! `modelwatch notify`, `modelwatch channels` and `modelwatch notifications`: the
//! notification worker, the configured channels and the deliveries at the binary's edge,
//! plus [`start_worker`], which `serve` uses to run the same worker beside the HTTP
//! server.
//!
//! Channels and the delivery policy come from the configuration file (`[channels.NAME]`,
//! `[notify]`); delivery state lives in the alert store's outbox, so a pass run here and a
//! pass run by `serve` share leases and never both send a row they both see as due.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use modelwatch_core::alerting::AlertId;
use modelwatch_http::notifications::{NotificationOut, TestOut};
use modelwatch_notify::{ChannelSummary, NotifyConfig, PassReport, Sender, StoreOutbox, Worker};
use modelwatch_store::alerts::{DeliveryStatus, NotificationFilter};
use modelwatch_store::Stores;
use serde::Serialize;

use crate::config::Config;
use crate::output::{emit, Format, Table};

/// The commands this module adds to the command line.
#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Deliver due notifications: one pass with --once, else until SIGINT/SIGTERM.
    Notify(NotifyArgs),
    /// The configured notification channels.
    #[command(subcommand)]
    Channels(ChannelsCommand),
    /// Notification deliveries recorded in the outbox.
    #[command(subcommand)]
    Notifications(NotificationsCommand),
}

#[derive(Debug, Subcommand)]
pub enum NotificationsCommand {
    /// Deliveries, newest first: status, attempts, the last error of failed ones and the
    /// reason skipped ones were held back (as GET /api/v1/notifications).
    List(ListNotificationsArgs),
}

#[derive(Debug, Args)]
pub struct ListNotificationsArgs {
    /// pending, delivered, failed or skipped
    #[arg(long, value_parser = parse_delivery_status)]
    pub status: Option<DeliveryStatus>,
    /// Only deliveries to this channel.
    #[arg(long)]
    pub channel: Option<String>,
    /// Only deliveries of this alert.
    #[arg(long = "alert")]
    pub alert_id: Option<String>,
    /// At most this many, newest first.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub limit: u32,
}

fn parse_delivery_status(text: &str) -> Result<DeliveryStatus, String> {
    DeliveryStatus::parse(text)
        .ok_or_else(|| format!("{text:?} is not pending, delivered, failed or skipped"))
}

#[derive(Debug, Args)]
pub struct NotifyArgs {
    /// Run one delivery pass, print what it did and exit.
    #[arg(long)]
    pub once: bool,
}

#[derive(Debug, Subcommand)]
pub enum ChannelsCommand {
    /// Every configured channel: name, kind and target (never a secret).
    List,
    /// Send a synthetic notification to one channel and report the outcome.
    Test { name: String },
}

/// Names this process in outbox leases: two workers (a `serve` and a `notify --once`,
/// say) must never share a name, or one could finish the other's claim.
pub fn worker_owner(role: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{role}@{host}:{}", std::process::id())
}

pub async fn run(
    command: NotifyCommand,
    stores: &Stores,
    config: &Config,
    format: Format,
) -> Result<ExitCode> {
    let notify = Arc::new(config.notify.clone());
    // Without channels a pass would fail every pending row as "unknown channel", and
    // adding the channel afterwards could no longer deliver them.
    if matches!(command, NotifyCommand::Notify(_)) && notify.channels.is_empty() {
        bail!("no channels are configured: add a [channels.NAME] table to the configuration file");
    }
    match command {
        NotifyCommand::Notify(args) if args.once => once(stores, notify, format).await,
        NotifyCommand::Notify(_) => run_until_signal(stores, notify).await,
        NotifyCommand::Channels(ChannelsCommand::List) => list(&notify, format),
        NotifyCommand::Channels(ChannelsCommand::Test { name }) => {
            test(&notify, &name, format).await
        }
        NotifyCommand::Notifications(NotificationsCommand::List(args)) => {
            list_notifications(stores, args, format).await
        }
    }
}

/// The same store call and JSON shape as `GET /api/v1/notifications`.
async fn list_notifications(
    stores: &Stores,
    args: ListNotificationsArgs,
    format: Format,
) -> Result<ExitCode> {
    let filter = NotificationFilter {
        alert_id: args.alert_id.as_deref().map(AlertId::parse).transpose()?,
        status: args.status,
        channel: args.channel,
    };
    let limit = usize::try_from(args.limit).unwrap_or(usize::MAX);
    let rows: Vec<NotificationOut> = stores
        .alerts
        .recent_notifications(&filter, limit)
        .await
        .context("cannot read the notification outbox")?
        .into_iter()
        .map(NotificationOut::from)
        .collect();
    let mut table = Table::new(&[
        "id", "created", "channel", "event", "alert", "status", "attempts", "when", "error",
    ])
    .optional(&["created", "attempts", "event", "when"]);
    for n in &rows {
        // Pending: when it is next tried; otherwise when it finished (went out, failed
        // for good or was held back).
        let when = match &n.finished_at {
            None => format!("next {}", n.next_attempt_at),
            Some(finished) => finished.clone(),
        };
        table.push(vec![
            n.id.to_string(),
            n.created_at.clone(),
            n.channel.clone(),
            n.event.clone(),
            n.alert_id.clone(),
            n.status.clone(),
            n.attempts.to_string(),
            when,
            n.last_error.clone().unwrap_or_default(),
        ]);
    }
    emit(format, &rows, &table)?;
    if rows.is_empty() && format == Format::Table {
        outln!("no notifications match")?;
    }
    Ok(ExitCode::SUCCESS)
}

fn worker(stores: &Stores, notify: Arc<NotifyConfig>, role: &str) -> Result<Arc<Worker>> {
    let outbox = Arc::new(StoreOutbox::new(Arc::clone(&stores.alerts)));
    let worker = Worker::new(outbox, notify, worker_owner(role))
        .context("cannot start the notification worker")?;
    Ok(Arc::new(worker))
}

/// Per-channel counts of one run, as `notify --once` prints them.
#[derive(Debug, Default, Serialize)]
struct ChannelCounts {
    delivered: u64,
    retried: u64,
    failed: u64,
    skipped: u64,
}

#[derive(Debug, Serialize)]
struct PassOutput {
    claimed: usize,
    delivered: usize,
    retried: usize,
    failed: usize,
    skipped: usize,
    /// Messages sent (a digest of several notifications is one).
    messages: usize,
    channels: BTreeMap<String, ChannelCounts>,
}

fn counts(worker: &Worker) -> BTreeMap<String, ChannelCounts> {
    worker
        .counters()
        .iter()
        .map(|(name, c)| {
            let counts = ChannelCounts {
                delivered: c.delivered.load(Ordering::Relaxed),
                retried: c.retried.load(Ordering::Relaxed),
                failed: c.failed.load(Ordering::Relaxed),
                skipped: c.skipped.load(Ordering::Relaxed),
            };
            (name.clone(), counts)
        })
        .collect()
}

async fn once(stores: &Stores, notify: Arc<NotifyConfig>, format: Format) -> Result<ExitCode> {
    let worker = worker(stores, notify, "notify-once")?;
    let report: PassReport = worker
        .run_once(crate::now())
        .await
        .context("the notification pass could not read the outbox")?;
    let output = PassOutput {
        claimed: report.claimed,
        delivered: report.delivered,
        retried: report.retried,
        failed: report.failed,
        skipped: report.skipped,
        messages: report.messages,
        // Only channels this pass touched: an idle channel is noise here.
        channels: counts(&worker)
            .into_iter()
            .filter(|(_, c)| c.delivered + c.retried + c.failed + c.skipped > 0)
            .collect(),
    };
    let mut table = Table::new(&["channel", "delivered", "retried", "failed", "skipped"]);
    for (name, c) in &output.channels {
        table.push(vec![
            name.clone(),
            c.delivered.to_string(),
            c.retried.to_string(),
            c.failed.to_string(),
            c.skipped.to_string(),
        ]);
    }
    table.push(vec![
        "(all)".into(),
        output.delivered.to_string(),
        output.retried.to_string(),
        output.failed.to_string(),
        output.skipped.to_string(),
    ]);
    emit(format, &output, &table)?;
    Ok(ExitCode::SUCCESS)
}

/// The worker loop outside `serve`: polls until SIGINT/SIGTERM, then lets in-flight sends
/// finish so their outcomes are recorded.
async fn run_until_signal(stores: &Stores, notify: Arc<NotifyConfig>) -> Result<ExitCode> {
    let worker = worker(stores, notify, "notify")?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(Arc::clone(&worker).run(crate::now, stopped));
    note!("modelwatch notify: delivering; stop with Ctrl-C");
    crate::shutdown::signal().await;
    stop.send_replace(true);
    task.await.context("the notification worker panicked")?;
    for (name, c) in counts(&worker) {
        note!(
            "{name}: {} delivered, {} retried, {} failed, {} skipped",
            c.delivered,
            c.retried,
            c.failed,
            c.skipped
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The worker `serve` runs beside the HTTP server, or `None` when no channel is
/// configured: without channels every pending row would be failed as "unknown channel",
/// and adding the channel later could no longer deliver it.
pub fn start_worker(
    stores: &Stores,
    notify: &Arc<NotifyConfig>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<Option<(Arc<Worker>, tokio::task::JoinHandle<()>)>> {
    if notify.channels.is_empty() {
        return Ok(None);
    }
    let worker = worker(stores, Arc::clone(notify), "serve")?;
    let task = tokio::spawn(Arc::clone(&worker).run(crate::now, shutdown));
    Ok(Some((worker, task)))
}

pub fn summaries(notify: &NotifyConfig) -> Vec<ChannelSummary> {
    notify.channels.values().map(|c| c.summary()).collect()
}

fn list(notify: &NotifyConfig, format: Format) -> Result<ExitCode> {
    let rows = summaries(notify);
    let mut table = Table::new(&[
        "name",
        "kind",
        "target",
        "timeout",
        "per minute",
        "digest after",
    ]);
    for c in &rows {
        table.push(vec![
            c.name.clone(),
            c.kind.clone(),
            c.target.clone(),
            format!("{}ms", c.timeout_ms),
            c.max_per_minute.to_string(),
            c.digest_after.to_string(),
        ]);
    }
    emit(format, &rows, &table)?;
    if rows.is_empty() && format == Format::Table {
        outln!("no channels configured: add a [channels.NAME] table to the configuration file")?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn test(notify: &NotifyConfig, name: &str, format: Format) -> Result<ExitCode> {
    let Some(channel) = notify.channel(name) else {
        let known: Vec<String> = notify.channels.keys().map(ToString::to_string).collect();
        if known.is_empty() {
            bail!("no channel named {name:?}: no channels are configured");
        }
        bail!(
            "no channel named {name:?} (configured: {})",
            known.join(", ")
        );
    };
    let sender = Sender::new().context("cannot build the notification client")?;
    let outcome =
        modelwatch_notify::send_test(&sender, channel, &notify.dashboard_url, crate::now()).await;
    let mut table = Table::new(&["channel", "kind", "target", "outcome", "elapsed"]);
    table.push(vec![
        outcome.channel.clone(),
        outcome.kind.clone(),
        outcome.target.clone(),
        outcome.error.clone().unwrap_or_else(|| "delivered".into()),
        format!("{}ms", outcome.elapsed_ms),
    ]);
    let ok = outcome.ok;
    // The JSON of POST /api/v1/channels/{name}/test.
    emit(format, &TestOut::from(outcome), &table)?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
