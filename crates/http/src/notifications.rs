//! Notification channels and deliveries through the API, and the delivery worker's
//! per-channel counters in `/metrics`.
//!
//! The binary runs the worker and hands this crate a [`Notifications`]: the channels'
//! summaries (which never hold a secret), the worker's counters and the alert store whose
//! outbox records every delivery. Without one, `/api/v1/channels` is an empty list and
//! `/api/v1/notifications` answers 404.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use modelwatch_core::alerting::AlertId;
use modelwatch_notify::worker::ChannelCounters;
use modelwatch_notify::{ChannelSummary, NotifyConfig, TestOutcome};
use modelwatch_store::alerts::{DeliveryStatus, Notification, NotificationFilter};
use modelwatch_store::AlertStore;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::telemetry::{DeliveryLabels, Telemetry};
use crate::AppState;

/// What the server knows of notification delivery.
#[derive(Debug)]
pub struct Notifications {
    channels: Vec<ChannelSummary>,
    counters: BTreeMap<String, Arc<ChannelCounters>>,
    alerts: Arc<dyn AlertStore>,
    /// The channels' settings, for test sends; `None`: this server cannot send tests.
    config: Option<Arc<NotifyConfig>>,
    /// Serialises copying the worker's counters into the exposition's, so two scrapes at
    /// once cannot both add the same increase.
    sync: Mutex<()>,
}

impl Notifications {
    /// `counters`: the running worker's (empty when none runs).
    pub fn new(
        channels: Vec<ChannelSummary>,
        counters: BTreeMap<String, Arc<ChannelCounters>>,
        alerts: Arc<dyn AlertStore>,
    ) -> Notifications {
        Notifications {
            channels,
            counters,
            alerts,
            config: None,
            sync: Mutex::new(()),
        }
    }

    /// The configured channels' names.
    pub fn channel_names(&self) -> Vec<String> {
        self.channels.iter().map(|c| c.name.clone()).collect()
    }

    /// Lets `POST /api/v1/channels/{name}/test` send to the configured channels.
    pub fn with_config(mut self, config: Arc<NotifyConfig>) -> Notifications {
        self.config = Some(config);
        self
    }

    fn count(&self, channel: &str) -> Counts {
        self.counters
            .get(channel)
            .map_or_else(Counts::default, |c| Counts {
                delivered: c.delivered.load(Ordering::Relaxed),
                retried: c.retried.load(Ordering::Relaxed),
                failed: c.failed.load(Ordering::Relaxed),
                skipped: c.skipped.load(Ordering::Relaxed),
            })
    }

    /// Brings `telemetry.notifications` up to the worker's counts. The worker's counters
    /// only grow, so adding the difference keeps the Prometheus counters monotonic.
    pub(crate) fn sync_telemetry(&self, telemetry: &Telemetry) {
        // A poisoned lock only means a scrape panicked mid-copy; the counts are still sound.
        let _guard = self.sync.lock().unwrap_or_else(|e| e.into_inner());
        for channel in self.counters.keys() {
            let counts = self.count(channel);
            for (outcome, value) in [
                ("delivered", counts.delivered),
                ("retried", counts.retried),
                ("failed", counts.failed),
                ("skipped", counts.skipped),
            ] {
                let counter = telemetry.notifications.get_or_create(&DeliveryLabels {
                    channel: channel.clone(),
                    outcome: outcome.into(),
                });
                let shown = counter.get();
                if value > shown {
                    counter.inc_by(value - shown);
                }
            }
        }
    }
}

/// A channel's delivery counts since the worker started.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    delivered: u64,
    retried: u64,
    failed: u64,
    skipped: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelOut {
    pub name: String,
    /// slack, pagerduty, email, webhook or alertmanager
    pub kind: String,
    /// Where messages go, credentials left out.
    pub target: String,
    pub timeout_ms: u64,
    pub max_per_minute: u32,
    /// 0: never a digest.
    pub digest_after: usize,
    /// Since the server started.
    pub delivered: u64,
    pub retried: u64,
    /// Real failures: refused, or retries exhausted.
    pub failed: u64,
    /// Held back because the alert was acknowledged, resolved or silenced first.
    pub skipped: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelsResponse {
    pub channels: Vec<ChannelOut>,
}

/// The configured notification channels (never a secret) with their delivery counts.
#[utoipa::path(
    get,
    path = "/api/v1/channels",
    tag = "notifications",
    responses((status = 200, body = ChannelsResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub async fn list_channels(State(state): State<AppState>) -> Json<ChannelsResponse> {
    let channels = state
        .notifications()
        .map(|n| {
            n.channels
                .iter()
                .map(|c| {
                    let counts = n.count(&c.name);
                    ChannelOut {
                        name: c.name.clone(),
                        kind: c.kind.clone(),
                        target: c.target.clone(),
                        timeout_ms: c.timeout_ms,
                        max_per_minute: c.max_per_minute,
                        digest_after: c.digest_after,
                        delivered: counts.delivered,
                        retried: counts.retried,
                        failed: counts.failed,
                        skipped: counts.skipped,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    Json(ChannelsResponse { channels })
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NotificationsQuery {
    /// pending, delivered, failed or skipped
    pub status: Option<String>,
    pub alert_id: Option<String>,
    /// Only deliveries to this channel.
    pub channel: Option<String>,
    /// At most this many, newest first (default 100, at most 1000).
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationOut {
    pub id: i64,
    pub alert_id: String,
    pub channel: String,
    /// firing, acknowledged or resolved
    pub event: String,
    /// pending, delivered, failed (a real failure) or skipped (held back because the
    /// alert was acknowledged, resolved or silenced before sending)
    pub status: String,
    /// Sends made so far (a send whose sender died before recording it is not counted).
    pub attempts: u32,
    /// Sent to receivers as `X-Modelwatch-Delivery` (webhooks) or the incident key.
    pub dedup_key: String,
    pub created_at: String,
    /// When a pending delivery is next tried.
    pub next_attempt_at: String,
    pub delivered_at: Option<String>,
    /// When it reached its final state (delivered, failed or skipped); null while
    /// pending. Retention deletes rows by this time.
    pub finished_at: Option<String>,
    /// Why the last attempt failed (a failed delivery's final error); for a skipped
    /// delivery, why it was held back.
    pub last_error: Option<String>,
}

impl From<Notification> for NotificationOut {
    fn from(n: Notification) -> Self {
        NotificationOut {
            id: n.id,
            alert_id: n.alert_id.to_string(),
            channel: n.channel,
            event: n.event.as_str().into(),
            status: n.status.as_str().into(),
            attempts: n.attempts,
            dedup_key: n.dedup_key,
            created_at: n.created_at.to_rfc3339(),
            next_attempt_at: n.next_attempt_at.to_rfc3339(),
            delivered_at: n.delivered_at.map(|t| t.to_rfc3339()),
            finished_at: n.finished_at.map(|t| t.to_rfc3339()),
            last_error: n.last_error,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationsResponse {
    pub notifications: Vec<NotificationOut>,
}

/// Notification deliveries, newest first: failed ones carry their last error, skipped
/// ones why they were held back.
#[utoipa::path(
    get,
    path = "/api/v1/notifications",
    tag = "notifications",
    params(NotificationsQuery),
    responses(
        (status = 200, body = NotificationsResponse),
        (status = 400, body = ErrorBody),
        (status = 404, description = "This server does not deliver notifications", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    )
)]
pub async fn list_notifications(
    State(state): State<AppState>,
    query: Result<Query<NotificationsQuery>, QueryRejection>,
) -> ApiResult<Json<NotificationsResponse>> {
    let Query(query) = query?;
    let notifications = state
        .notifications()
        .ok_or_else(|| ApiError::NotFound("this server does not deliver notifications".into()))?;
    let status = match query.status.as_deref() {
        None => None,
        Some(text) => Some(DeliveryStatus::parse(text).ok_or_else(|| {
            ApiError::bad_request(
                "status",
                format!("{text:?} is not pending, delivered, failed or skipped"),
            )
        })?),
    };
    let alert_id = query.alert_id.as_deref().map(AlertId::parse).transpose()?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit", "must be 1 to 1000"));
    }
    let filter = NotificationFilter {
        alert_id,
        status,
        channel: query.channel,
    };
    let rows = notifications
        .alerts
        .recent_notifications(&filter, limit)
        .await?;
    Ok(Json(NotificationsResponse {
        notifications: rows.into_iter().map(NotificationOut::from).collect(),
    }))
}

/// What a test send did: `ok`, or the `error` (and whether the worker would retry it).
#[derive(Debug, Serialize, ToSchema)]
pub struct TestOut {
    pub channel: String,
    pub kind: String,
    pub target: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub elapsed_ms: u64,
}

impl From<TestOutcome> for TestOut {
    fn from(o: TestOutcome) -> Self {
        TestOut {
            channel: o.channel,
            kind: o.kind,
            target: o.target,
            ok: o.ok,
            retryable: o.retryable,
            error: o.error,
            elapsed_ms: o.elapsed_ms,
        }
    }
}

/// Sends a synthetic, clearly labelled low-severity notification to one channel now, as
/// `modelwatch channels test NAME` does, and says how it went (200 either way; `ok`
/// false with the error when the channel refused or did not answer). Nothing is written
/// to the outbox.
#[utoipa::path(
    post,
    path = "/api/v1/channels/{name}/test",
    tag = "notifications",
    params(("name" = String, Path, description = "A configured channel", example = "ops")),
    responses(
        (status = 200, body = TestOut),
        (status = 404, description = "No such channel", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    )
)]
pub async fn test_channel(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<TestOut>> {
    let config = state
        .notifications()
        .and_then(|n| n.config.clone())
        .ok_or_else(|| ApiError::NotFound("this server has no channels to test".into()))?;
    let channel = config.channel(&name).ok_or_else(|| {
        let known: Vec<String> = config.channels.keys().map(ToString::to_string).collect();
        ApiError::NotFound(format!(
            "no channel named {name:?} (configured: {})",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        ))
    })?;
    let sender = modelwatch_notify::Sender::new()
        .map_err(|e| ApiError::Internal(format!("cannot build the notification client: {e}")))?;
    let outcome =
        modelwatch_notify::send_test(&sender, channel, &config.dashboard_url, state.now()).await;
    Ok(Json(outcome.into()))
}
