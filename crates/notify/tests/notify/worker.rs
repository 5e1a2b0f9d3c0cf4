//! The delivery worker over an in-memory outbox that leases like the real stores: retry
//! with back-off until the receiver is back, exactly one delivery, give-up with the last
//! error, digests, rate limits, acknowledged and silenced alerts held back, a hanging
//! channel not holding up the others.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use modelwatch_core::alerting::{
    outbox, Alert, AlertId, AlertStatus, EventFacts, NotificationEvent, Silence, SilenceId,
};
use modelwatch_core::{ModelName, Timestamp};
use modelwatch_notify::{
    Delivery, NotifyConfig, Outbox, OutboxError, Outcome, RawChannel, RawNotify, Worker,
};
use modelwatch_store::alerts::{ClaimChannels, OutboxPayload};

use crate::receivers::{alert, now};
use crate::support::{Behaviour, Receiver};

#[derive(Debug, Clone)]
struct Row {
    delivery: Delivery,
    status: &'static str,
    next_attempt_at: Timestamp,
    lease_owner: Option<String>,
    last_error: Option<String>,
}

/// The outbox contract in memory: claim leases due pending rows of the channels asked
/// for; only the lease holder may finish, and a finish that records a send counts an
/// attempt.
#[derive(Debug, Default)]
struct MemoryOutbox {
    rows: Mutex<Vec<Row>>,
    alerts: Mutex<BTreeMap<String, Alert>>,
    silences: Mutex<Vec<Silence>>,
}

impl MemoryOutbox {
    /// Stores `alert` as it is now and queues a row of `event` with its facts.
    fn enqueue(&self, alert: &Alert, event: NotificationEvent, channel: &str, at: Timestamp) {
        let facts = OutboxPayload::Facts(EventFacts::of(alert));
        self.enqueue_payload(alert, event, channel, at, facts);
    }

    fn enqueue_payload(
        &self,
        alert: &Alert,
        event: NotificationEvent,
        channel: &str,
        at: Timestamp,
        payload: OutboxPayload,
    ) {
        self.alerts
            .lock()
            .unwrap()
            .insert(alert.id.to_string(), alert.clone());
        let mut rows = self.rows.lock().unwrap();
        let id = rows.len() as i64 + 1;
        rows.push(Row {
            delivery: Delivery {
                id,
                alert_id: alert.id.clone(),
                channel: channel.into(),
                event,
                payload,
                dedup_key: format!("{}:{}:{channel}", alert.id, event.as_str()),
                attempts: 0,
                created_at: at,
                lease_until: None,
            },
            status: "pending",
            next_attempt_at: at,
            lease_owner: None,
            last_error: None,
        });
    }

    fn statuses(&self) -> Vec<(&'static str, u32, Option<String>)> {
        self.rows
            .lock()
            .unwrap()
            .iter()
            .map(|r| (r.status, r.delivery.attempts, r.last_error.clone()))
            .collect()
    }

    fn next_attempt(&self, id: i64) -> Timestamp {
        self.rows.lock().unwrap()[id as usize - 1].next_attempt_at
    }
}

#[async_trait]
impl Outbox for MemoryOutbox {
    async fn claim(
        &self,
        owner: &str,
        now: Timestamp,
        lease: Duration,
        channels: ClaimChannels<'_>,
        limit: usize,
    ) -> Result<Vec<Delivery>, OutboxError> {
        let mut rows = self.rows.lock().unwrap();
        let mut claimed = Vec::new();
        for row in rows.iter_mut() {
            let free = row.delivery.lease_until.is_none_or(|until| until <= now);
            if claimed.len() < limit
                && row.status == "pending"
                && row.next_attempt_at <= now
                && free
                && channels.matches(&row.delivery.channel)
            {
                row.delivery.lease_until = Some(now.saturating_add(lease));
                row.lease_owner = Some(owner.into());
                claimed.push(row.delivery.clone());
            }
        }
        Ok(claimed)
    }

    async fn finish(
        &self,
        id: i64,
        owner: &str,
        outcome: Outcome,
        _now: Timestamp,
    ) -> Result<bool, OutboxError> {
        let mut rows = self.rows.lock().unwrap();
        let row = &mut rows[id as usize - 1];
        if row.lease_owner.as_deref() != Some(owner) {
            return Ok(false);
        }
        row.lease_owner = None;
        row.delivery.lease_until = None;
        if outcome.sent() {
            row.delivery.attempts += 1;
        }
        match outcome {
            Outcome::Delivered => row.status = "delivered",
            Outcome::Retry {
                error, retry_at, ..
            } => {
                row.last_error = Some(error);
                row.next_attempt_at = retry_at;
            }
            Outcome::Released => {}
            Outcome::Failed { error, .. } => {
                row.status = "failed";
                row.last_error = Some(error);
            }
            Outcome::Skipped { reason } => {
                row.status = "skipped";
                row.last_error = Some(reason);
            }
        }
        Ok(true)
    }

    async fn alert(&self, id: &AlertId) -> Result<Option<Alert>, OutboxError> {
        Ok(self.alerts.lock().unwrap().get(id.as_str()).cloned())
    }

    async fn silences(&self, _now: Timestamp) -> Result<Vec<Silence>, OutboxError> {
        Ok(self.silences.lock().unwrap().clone())
    }
}

fn config(channels: &[(&str, String)], notify: &str) -> Arc<NotifyConfig> {
    let channels = channels
        .iter()
        .map(|(name, text)| {
            (
                name.to_string(),
                toml::from_str::<RawChannel>(text).unwrap(),
            )
        })
        .collect();
    let notify: RawNotify = toml::from_str(notify).unwrap();
    Arc::new(NotifyConfig::from_raw(notify, channels).unwrap())
}

fn webhook(receiver: &Receiver, extra: &str) -> String {
    format!(
        "kind = \"webhook\"\nurl = \"{}\"\n{extra}",
        receiver.url("/")
    )
}

/// Stores `alert` with a firing row for channel `hook`, as an evaluation does.
async fn fire(store: &dyn modelwatch_store::AlertStore, alert: &Alert, at: Timestamp) {
    let commit = modelwatch_store::alerts::AlertCommit {
        alert: Some(modelwatch_store::alerts::AlertWriteGuarded::insert(
            alert.clone(),
        )),
        notifications: outbox::entries(&["hook".into()], alert, NotificationEvent::Firing, at),
        ..Default::default()
    };
    store.commit(vec![commit]).await.unwrap();
}

/// An empty outbox and a worker with one webhook channel, `hook`, to `receiver`.
fn hook_worker(receiver: &Receiver) -> (Arc<MemoryOutbox>, Arc<Worker>) {
    let outbox = Arc::new(MemoryOutbox::default());
    let w = worker(&outbox, config(&[("hook", webhook(receiver, ""))], ""));
    (outbox, w)
}

fn worker(outbox: &Arc<MemoryOutbox>, config: Arc<NotifyConfig>) -> Arc<Worker> {
    let outbox: Arc<dyn Outbox> = outbox.clone();
    Arc::new(
        Worker::new(outbox, config, "test-worker")
            .unwrap()
            .with_jitter(|| 0.0),
    )
}

#[tokio::test]
async fn receiver_down_is_retried_and_delivered_exactly_once_after_it_comes_back() {
    let port = crate::support::free_port();
    let outbox = Arc::new(MemoryOutbox::default());
    let config = config(
        &[(
            "hook",
            format!("kind = \"webhook\"\nurl = \"http://127.0.0.1:{port}/\"\n"),
        )],
        "initial_backoff = \"10s\"\nmax_backoff = \"1m\"\n",
    );
    let w = worker(&outbox, config);
    let t0 = now();
    outbox.enqueue(&alert(1, t0), NotificationEvent::Firing, "hook", t0);

    let report = w.run_once(t0).await.unwrap();
    assert_eq!((report.claimed, report.retried), (1, 1));
    // First retry after 10 s · ½ (jitter 0 → the lower bound of "equal jitter").
    assert_eq!(
        outbox.next_attempt(1),
        t0.saturating_add(Duration::from_secs(5))
    );
    let (_, attempts, error) = outbox.statuses().remove(0);
    assert_eq!(attempts, 1);
    assert!(error.unwrap().contains("cannot reach the receiver"));

    // Not due yet: nothing is claimed.
    assert_eq!(
        w.run_once(t0.saturating_add(Duration::from_secs(4)))
            .await
            .unwrap()
            .claimed,
        0
    );

    let receiver = Receiver::start_on(port, Behaviour::Status(200)).await;
    let report = w
        .run_once(t0.saturating_add(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(report.delivered, 1);
    assert_eq!(outbox.statuses()[0].0, "delivered");
    // Delivered rows are never claimed again.
    assert_eq!(
        w.run_once(t0.saturating_add(Duration::from_secs(3600)))
            .await
            .unwrap()
            .claimed,
        0
    );
    assert_eq!(receiver.requests().len(), 1);
}

#[tokio::test]
async fn gives_up_after_max_attempts_with_the_last_error() {
    let receiver = Receiver::start(Behaviour::Status(503)).await;
    let outbox = Arc::new(MemoryOutbox::default());
    let w = worker(
        &outbox,
        config(
            &[("hook", webhook(&receiver, ""))],
            "max_attempts = 3\ninitial_backoff = \"1s\"\n",
        ),
    );
    let mut t = now();
    outbox.enqueue(&alert(2, t), NotificationEvent::Firing, "hook", t);
    for _ in 0..3 {
        w.run_once(t).await.unwrap();
        t = t.saturating_add(Duration::from_secs(3600));
    }
    let (status, attempts, error) = outbox.statuses().remove(0);
    assert_eq!((status, attempts), ("failed", 3));
    let error = error.unwrap();
    assert!(
        error.contains("HTTP 503") && error.contains("gave up after 3 attempts"),
        "{error}"
    );
    assert_eq!(receiver.requests().len(), 3);
    assert_eq!(
        w.counters()["hook"]
            .failed
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn a_refused_payload_is_failed_at_once() {
    let receiver = Receiver::start(Behaviour::Status(400)).await;
    let (outbox, w) = hook_worker(&receiver);
    let t = now();
    outbox.enqueue(&alert(3, t), NotificationEvent::Firing, "hook", t);
    w.run_once(t).await.unwrap();
    let (status, attempts, error) = outbox.statuses().remove(0);
    assert_eq!((status, attempts), ("failed", 1));
    assert!(error.unwrap().contains("not retried"));
}

#[tokio::test]
async fn acknowledged_alert_is_not_renotified_but_its_follow_up_is_sent() {
    let receiver = Receiver::start(Behaviour::Status(200)).await;
    let (outbox, w) = hook_worker(&receiver);
    let t = now();
    let mut a = alert(4, t);
    outbox.enqueue(&a, NotificationEvent::Firing, "hook", t);
    // Acknowledged before the worker got to the firing row.
    a.status = AlertStatus::Acknowledged;
    a.acknowledged_by = Some("alice".into());
    outbox.enqueue(&a, NotificationEvent::Acknowledged, "hook", t);
    let report = w.run_once(t).await.unwrap();
    assert_eq!((report.skipped, report.delivered), (1, 1));
    let statuses = outbox.statuses();
    assert_eq!(statuses[0].0, "skipped");
    assert!(statuses[0]
        .2
        .as_deref()
        .unwrap()
        .starts_with("alert was acknowledged by alice"));
    assert_eq!(report.failed, 0);
    let [request] = receiver.requests().try_into().unwrap();
    assert_eq!(request.json()["event"], "acknowledged");
}

#[tokio::test]
async fn silenced_alert_is_not_notified() {
    let receiver = Receiver::start(Behaviour::Status(200)).await;
    let (outbox, w) = hook_worker(&receiver);
    let t = now();
    let a = alert(5, t);
    let silence = Silence {
        id: SilenceId::parse("silence_00c0ffee").unwrap(),
        model: ModelName::parse("fraud_detector").unwrap(),
        version: None,
        metric: None,
        starts_at: t.saturating_sub(Duration::from_secs(60)),
        ends_at: t.saturating_add(Duration::from_secs(3600)),
        created_by: "alice".into(),
        comment: "retraining".into(),
        created_at: t,
    };
    outbox.silences.lock().unwrap().push(silence);
    outbox.enqueue(&a, NotificationEvent::Firing, "hook", t);
    let report = w.run_once(t).await.unwrap();
    assert_eq!((report.skipped, report.failed), (1, 0));
    assert_eq!(outbox.statuses()[0].0, "skipped");
    assert!(outbox.statuses()[0]
        .2
        .as_deref()
        .unwrap()
        .contains("muted by silence_00c0ffee"));
    assert!(receiver.requests().is_empty());
}

#[tokio::test]
async fn many_alerts_firing_together_become_one_slack_digest() {
    let receiver = Receiver::start(Behaviour::Status(200)).await;
    let outbox = Arc::new(MemoryOutbox::default());
    let w = worker(
        &outbox,
        config(
            &[(
                "team",
                format!(
                    "kind = \"slack\"\nurl = \"{}\"\ndigest_after = 3\n",
                    receiver.url("/")
                ),
            )],
            "",
        ),
    );
    let t = now();
    for id in 10..16 {
        outbox.enqueue(&alert(id, t), NotificationEvent::Firing, "team", t);
    }
    let report = w.run_once(t).await.unwrap();
    assert_eq!((report.delivered, report.messages), (6, 1));
    let [request] = receiver.requests().try_into().unwrap();
    assert!(request.json().to_string().contains("6 alerts firing"));
}

#[tokio::test]
async fn rate_limit_defers_what_the_minute_cannot_take() {
    let receiver = Receiver::start(Behaviour::Status(200)).await;
    let outbox = Arc::new(MemoryOutbox::default());
    let w = worker(
        &outbox,
        config(&[("hook", webhook(&receiver, "max_per_minute = 2\n"))], ""),
    );
    let t = now();
    for id in 20..23 {
        outbox.enqueue(&alert(id, t), NotificationEvent::Firing, "hook", t);
    }
    let report = w.run_once(t).await.unwrap();
    assert_eq!((report.delivered, report.retried), (2, 1));
    assert_eq!(
        outbox.next_attempt(3),
        t.saturating_add(Duration::from_secs(60))
    );
    assert!(outbox.statuses()[2]
        .2
        .as_deref()
        .unwrap()
        .contains("rate limited"));
    let report = w
        .run_once(t.saturating_add(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(report.delivered, 1);
    assert_eq!(receiver.requests().len(), 3);
}

#[tokio::test]
async fn a_hanging_channel_does_not_hold_up_the_others() {
    let hanging = Receiver::start(Behaviour::Hang).await;
    let healthy = Receiver::start(Behaviour::Status(200)).await;
    let outbox = Arc::new(MemoryOutbox::default());
    let config = config(
        &[
            ("slow", webhook(&hanging, "timeout = \"2s\"\n")),
            ("fast", webhook(&healthy, "")),
        ],
        "",
    );
    let w = worker(&outbox, config);
    let t = now();
    let a = alert(30, t);
    outbox.enqueue(&a, NotificationEvent::Firing, "slow", t);
    outbox.enqueue(&a, NotificationEvent::Firing, "fast", t);
    let started = Instant::now();
    let pass = tokio::spawn({
        let w = Arc::clone(&w);
        async move { w.run_once(t).await.unwrap() }
    });
    crate::support::eventually("the healthy channel", Duration::from_secs(1), || {
        (healthy.requests().len() == 1).then_some(())
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(1));
    let report = pass.await.unwrap();
    assert_eq!((report.delivered, report.retried), (1, 1));
    let statuses = outbox.statuses();
    assert!(
        statuses[0]
            .2
            .as_deref()
            .unwrap()
            .contains("no answer within 2s"),
        "{statuses:?}"
    );
}

/// Sends within a channel are serialised and each may take its whole time-out: a worker
/// leases only what it can send before the lease ends (issue 15: leasing 200 rows it could
/// not send, it counted an attempt on each, and failed rows after one real request).
#[tokio::test]
async fn a_worker_leases_only_what_it_can_send_within_the_lease() {
    let hanging = Receiver::start(Behaviour::Hang).await;
    let outbox = Arc::new(MemoryOutbox::default());
    let w = worker(
        &outbox,
        config(
            &[("slow", webhook(&hanging, ""))],
            "timeout = \"1s\"\nlease = \"3s\"\ninitial_backoff = \"1m\"\n",
        ),
    );
    let t = now();
    for n in 0..5 {
        outbox.enqueue(&alert(60 + n, t), NotificationEvent::Firing, "slow", t);
    }
    let report = w.run_once(t).await.unwrap();
    // Each send may take its whole 1 s time-out: two end by 2.2 s, before the 3 s lease
    // less the margin; a third might not, so its row is not even leased.
    assert_eq!((report.claimed, report.retried), (2, 2), "{report:?}");
    let statuses = outbox.statuses();
    assert!(
        statuses[..2]
            .iter()
            .all(|(_, a, e)| *a == 1 && e.as_deref().unwrap().contains("no answer")),
        "{statuses:?}"
    );
    assert!(statuses[2..]
        .iter()
        .all(|(s, a, e)| *s == "pending" && *a == 0 && e.is_none()));
    // Free for any worker at once (the two that timed out wait for their retry).
    let free = outbox
        .claim("other", t, Duration::from_secs(3), ClaimChannels::ANY, 10)
        .await
        .unwrap();
    assert_eq!(free.len(), 3);
}

/// A channel that digests leases many rows for one message; when they go one by one
/// (no digest by count, room in the rate window), no send starts that could outlast its
/// lease, and the rows left over are given back unsent, claimable again at once, with
/// no attempt counted.
#[tokio::test]
async fn rows_that_cannot_be_sent_before_their_lease_ends_are_given_back_unsent() {
    let hanging = Receiver::start(Behaviour::Hang).await;
    let outbox = Arc::new(MemoryOutbox::default());
    let w = worker(
        &outbox,
        config(
            &[(
                "team",
                format!(
                    "kind = \"slack\"\nurl = \"{}\"\ndigest_after = 0\n",
                    hanging.url("/")
                ),
            )],
            "timeout = \"1s\"\nlease = \"3s\"\ninitial_backoff = \"1m\"\n",
        ),
    );
    let t = now();
    for n in 0..5 {
        outbox.enqueue(&alert(70 + n, t), NotificationEvent::Firing, "team", t);
    }
    let report = w.run_once(t).await.unwrap();
    assert_eq!(
        (report.claimed, report.retried, report.released),
        (5, 2, 3),
        "{report:?}"
    );
    let statuses = outbox.statuses();
    assert!(statuses[2..]
        .iter()
        .all(|(s, a, e)| *s == "pending" && *a == 0 && e.is_none()));
    let free = outbox
        .claim("other", t, Duration::from_secs(3), ClaimChannels::ANY, 10)
        .await
        .unwrap();
    assert_eq!(free.len(), 3);
}

#[tokio::test]
async fn a_channel_nobody_configured_fails_with_its_name() {
    let outbox = Arc::new(MemoryOutbox::default());
    let w = worker(&outbox, config(&[], ""));
    let t = now();
    outbox.enqueue(&alert(40, t), NotificationEvent::Firing, "pagerduty", t);
    w.run_once(t).await.unwrap();
    let (status, _, error) = outbox.statuses().remove(0);
    assert_eq!(status, "failed");
    assert!(error.unwrap().contains("no channel named \"pagerduty\""));
}

#[tokio::test]
async fn the_worker_delivers_rows_of_the_real_store_once() {
    use modelwatch_store::alerts::NotificationFilter;
    use modelwatch_store::AlertStore;

    let receiver = Receiver::start(Behaviour::Status(200)).await;
    let store = Arc::new(modelwatch_store::MemoryStore::new());
    let t = now();
    let a = alert(50, t);
    fire(store.as_ref(), &a, t).await;
    let outbox: Arc<dyn Outbox> = Arc::new(modelwatch_notify::StoreOutbox::new(store.clone()));
    let w = Arc::new(
        Worker::new(
            outbox,
            config(&[("hook", webhook(&receiver, ""))], ""),
            "w1",
        )
        .unwrap(),
    );
    assert_eq!(w.run_once(t).await.unwrap().delivered, 1);
    assert_eq!(
        w.run_once(t.saturating_add(Duration::from_secs(600)))
            .await
            .unwrap()
            .claimed,
        0
    );
    let rows = store
        .list_notifications(&NotificationFilter::default())
        .await
        .unwrap();
    assert_eq!(
        rows[0].status,
        modelwatch_store::alerts::DeliveryStatus::Delivered
    );
    assert_eq!(receiver.requests().len(), 1);
    assert_eq!(
        receiver.requests()[0].json()["alert"]["id"],
        "alert_00000032"
    );
}

/// A follow-up says what happened at its event, however the alert changed before the
/// worker got to it: an acknowledgement delivered after the alert was resolved still
/// shows an acknowledged alert, with the values it had then.
#[tokio::test]
async fn a_follow_up_renders_the_alert_as_it_stood_at_its_event() {
    let receiver = Receiver::start(Behaviour::Status(200)).await;
    let (outbox, w) = hook_worker(&receiver);
    let t = now();
    let mut a = alert(60, t);
    a.status = AlertStatus::Acknowledged;
    a.acknowledged_by = Some("alice".into());
    a.acknowledged_at = Some(t);
    let at_event = a.clone();
    outbox.enqueue(&a, NotificationEvent::Acknowledged, "hook", t);
    // Updated and resolved before delivery: the store holds the alert as it is now.
    a.value = 12.5;
    a.occurrences = 4;
    a.status = AlertStatus::Resolved;
    a.resolved_by = Some("bob".into());
    a.resolved_at = Some(t);
    outbox.alerts.lock().unwrap().insert(a.id.to_string(), a);
    assert_eq!(w.run_once(t).await.unwrap().delivered, 1);
    let [request] = receiver.requests().try_into().unwrap();
    let body = request.json();
    assert_eq!(body["event"], "acknowledged");
    assert_eq!(body["alert"], stored_json(&at_event));
}

/// A row whose payload cannot be read is not sent with other content: it fails at once,
/// with the reason, and nothing reaches the receiver.
#[tokio::test]
async fn a_row_that_cannot_be_rendered_is_failed_with_the_reason() {
    let receiver = Receiver::start(Behaviour::Status(200)).await;
    let (outbox, w) = hook_worker(&receiver);
    let t = now();
    let a = alert(61, t);
    let unreadable = OutboxPayload::Unreadable {
        text: "{}".into(),
        error: "payload holds neither facts nor an alert: missing field `id`".into(),
    };
    outbox.enqueue_payload(&a, NotificationEvent::Firing, "hook", t, unreadable);
    let mut other = alert(62, t);
    other.id = AlertId::from_u32(63);
    let snapshot = OutboxPayload::Snapshot(Box::new(other));
    outbox.enqueue_payload(&a, NotificationEvent::Firing, "hook", t, snapshot);
    let report = w.run_once(t).await.unwrap();
    assert_eq!((report.failed, report.delivered), (2, 0));
    let statuses = outbox.statuses();
    assert_eq!(
        statuses,
        [
            (
                "failed",
                0,
                Some(
                    "cannot render: payload holds neither facts nor an alert: missing field `id`"
                        .into()
                )
            ),
            (
                "failed",
                0,
                Some(
                    "cannot render: the row's alert snapshot is of alert_0000003f, not alert_0000003d"
                        .into()
                )
            ),
        ]
    );
    assert!(receiver.requests().is_empty());
}

/// A row written before facts (`{"event", "channel", "alert"}`, inserted as the previous
/// version wrote it) still delivers, from the snapshot it carries, and its body is the
/// one a row written now sends for the same alert.
#[tokio::test]
async fn a_row_of_the_previous_format_delivers_the_same_body() {
    use modelwatch_store::alerts::NotificationFilter;
    use modelwatch_store::AlertStore;

    let receiver = Receiver::start(Behaviour::Status(200)).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    let store = Arc::new(modelwatch_store::SqliteStore::open(&path).await.unwrap());
    let t = now();
    let a = alert(64, t);
    fire(store.as_ref(), &a, t).await;
    let old = serde_json::json!({"event": "firing", "channel": "hook", "alert": stored_json(&a)})
        .to_string();
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute(
            "INSERT INTO notification_outbox (alert_id, channel, event, severity, payload,
                 dedup_key, next_attempt_ms, created_ms)
             VALUES (?1, 'hook', 'firing', 'high', ?2, 'old-row', ?3, ?3)",
            rusqlite::params![a.id.as_str(), old, t.as_millis()],
        )
        .unwrap();
    let outbox: Arc<dyn Outbox> = Arc::new(modelwatch_notify::StoreOutbox::new(store.clone()));
    let w = Arc::new(
        Worker::new(
            outbox,
            config(&[("hook", webhook(&receiver, ""))], ""),
            "w1",
        )
        .unwrap(),
    );
    assert_eq!(w.run_once(t).await.unwrap().delivered, 2);
    let rows = store
        .list_notifications(&NotificationFilter::default())
        .await
        .unwrap();
    assert!(rows
        .iter()
        .all(|n| n.status == modelwatch_store::alerts::DeliveryStatus::Delivered));
    let mut bodies: Vec<serde_json::Value> = receiver
        .requests()
        .iter()
        .map(|r| {
            let mut body = r.json();
            body.as_object_mut().unwrap().remove("dedup_key");
            body
        })
        .collect();
    assert_eq!(bodies.len(), 2);
    let second = bodies.pop().unwrap();
    assert_eq!(bodies[0], second);
    assert_eq!(second["alert"], stored_json(&a));
}

/// An alert as the store writes it (and the webhook's body carries it).
fn stored_json(alert: &Alert) -> serde_json::Value {
    modelwatch_store::alerts::records::serialize_alert(alert, serde_json::value::Serializer)
        .unwrap()
}
