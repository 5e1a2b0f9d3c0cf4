//! The delivery worker under faults (issue 15): a backlog of 1,200 rows in a real SQLite
//! outbox, a short lease, and a real HTTP receiver that refuses the first tries of every
//! notification, sleeps past the time-out on some, answers slowly, and is killed and
//! restarted mid-run. In the end every notification is delivered, none failed, and no
//! row was counted more attempts than its receiver could have seen.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use modelwatch_core::alerting::{outbox, NotificationEvent};
use modelwatch_notify::{NotifyConfig, Outbox, RawChannel, RawNotify, StoreOutbox, Worker};
use modelwatch_store::alerts::{
    AlertCommit, AlertWriteGuarded, DeliveryStatus, NotificationFilter,
};
use modelwatch_store::{AlertStore, SqliteStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::receivers::{alert, now};

const ALERTS: u32 = 300;
const CHANNELS: [&str; 4] = ["hook0", "hook1", "hook2", "hook3"];
/// Requests of each notification answered 500 before anything else.
const FAIL_FIRST: u32 = 2;
/// Every this many notifications, the request after the failures hangs past the
/// worker's time-out.
const SLOW_EVERY: u32 = 20;
const MAX_ATTEMPTS: u32 = 8;

/// What the receiver has seen of one notification (by `X-Modelwatch-Delivery`).
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    requests: u32,
    answered_ok: u32,
}

/// A webhook receiver whose answers follow a script per notification, and that can be
/// killed (listener and every connection dropped) and restarted on its port.
struct FaultyReceiver {
    port: u16,
    seen: Arc<Mutex<HashMap<String, Seen>>>,
    tasks: Mutex<JoinSet<()>>,
}

impl FaultyReceiver {
    async fn start() -> Arc<FaultyReceiver> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let receiver = Arc::new(FaultyReceiver {
            port: listener.local_addr().unwrap().port(),
            seen: Arc::default(),
            tasks: Mutex::new(JoinSet::new()),
        });
        receiver.listen(listener);
        receiver
    }

    fn listen(&self, listener: TcpListener) {
        let seen = Arc::clone(&self.seen);
        self.tasks.lock().unwrap().spawn(async move {
            let mut connections = JoinSet::new();
            // Connections live in this task's set: aborting the task drops them all,
            // as a killed process would.
            while let Ok((stream, _)) = listener.accept().await {
                connections.spawn(serve(stream, Arc::clone(&seen)));
                while connections.try_join_next().is_some() {}
            }
        });
    }

    /// Drops the listener and every open connection.
    async fn kill(&self) {
        let mut tasks = std::mem::take(&mut *self.tasks.lock().unwrap());
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }

    async fn restart(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        self.listen(listener);
    }

    fn seen(&self) -> HashMap<String, Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn requests(&self) -> u32 {
        self.seen.lock().unwrap().values().map(|s| s.requests).sum()
    }
}

async fn serve(mut stream: TcpStream, seen: Arc<Mutex<HashMap<String, Seen>>>) {
    while let Some(key) = read_delivery_key(&mut stream).await {
        let n = {
            let mut seen = seen.lock().unwrap();
            let entry = seen.entry(key.clone()).or_default();
            entry.requests += 1;
            entry.requests
        };
        let slow = key_number(&key).is_multiple_of(SLOW_EVERY);
        let status = if n <= FAIL_FIRST {
            500
        } else if n == FAIL_FIRST + 1 && slow {
            // Past the worker's time-out; then gone without an answer.
            tokio::time::sleep(Duration::from_millis(1200)).await;
            return;
        } else {
            200
        };
        // A slow receiver: every answer takes a little while.
        tokio::time::sleep(Duration::from_millis(2)).await;
        let answer = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n");
        if stream.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
        if status == 200 {
            seen.lock().unwrap().get_mut(&key).unwrap().answered_ok += 1;
        }
    }
}

/// The alert number in a delivery key (`alert_<hex>:…`).
fn key_number(key: &str) -> u32 {
    let hex = key
        .strip_prefix("alert_")
        .and_then(|rest| rest.split(':').next())
        .unwrap_or("0");
    u32::from_str_radix(hex, 16).unwrap_or(0)
}

/// Reads one whole request and returns its `X-Modelwatch-Delivery`.
async fn read_delivery_key(stream: &mut TcpStream) -> Option<String> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
    let header = |name: &str| {
        head.split("\r\n").find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    let length: usize = header("content-length")?.parse().ok()?;
    let key = header("x-modelwatch-delivery")?;
    let mut body = buffer.len() - head_end - 4;
    while body < length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body += n;
    }
    Some(key)
}

fn config(port: u16) -> Arc<NotifyConfig> {
    let notify: RawNotify = toml::from_str(&format!(
        "timeout = \"500ms\"\nlease = \"2s\"\npoll_interval = \"50ms\"\n\
         initial_backoff = \"100ms\"\nmax_backoff = \"400ms\"\nmax_attempts = {MAX_ATTEMPTS}\n"
    ))
    .unwrap();
    let channels = CHANNELS
        .iter()
        .map(|name| {
            let text = format!(
                "kind = \"webhook\"\nurl = \"http://127.0.0.1:{port}/{name}\"\n\
                 max_per_minute = 1000000\n"
            );
            (
                name.to_string(),
                toml::from_str::<RawChannel>(&text).unwrap(),
            )
        })
        .collect();
    Arc::new(NotifyConfig::from_raw(notify, channels).unwrap())
}

/// `ALERTS` alerts, each with a firing notification on every channel.
async fn backlog(store: &dyn AlertStore) {
    let t = now();
    let commits = (1..=ALERTS)
        .map(|id| {
            let a = alert(id, t);
            let channels: Vec<String> = CHANNELS.iter().map(|c| c.to_string()).collect();
            let notifications = outbox::entries(&channels, &a, NotificationEvent::Firing, t);
            AlertCommit {
                alert: Some(AlertWriteGuarded::insert(a)),
                notifications,
                ..AlertCommit::default()
            }
        })
        .collect();
    store.commit(commits).await.unwrap();
}

async fn pending(store: &dyn AlertStore) -> usize {
    let filter = NotificationFilter {
        status: Some(DeliveryStatus::Pending),
        ..NotificationFilter::default()
    };
    store.list_notifications(&filter).await.unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_through_failing_slow_and_killed_receivers_is_all_delivered_none_failed_early() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(dir.path().join("outbox.db"))
            .await
            .unwrap(),
    );
    backlog(&*store).await;
    let total = ALERTS as usize * CHANNELS.len();
    assert_eq!(pending(&*store).await, total);

    let receiver = FaultyReceiver::start().await;
    let outbox: Arc<dyn Outbox> = Arc::new(StoreOutbox::new(store.clone()));
    let worker = Arc::new(Worker::new(outbox, config(receiver.port), "w1").unwrap());
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(Arc::clone(&worker).run(now, shutdown));

    // Killed a third of the way through, back 300 ms later.
    let started = Instant::now();
    let third = total as u32 * (FAIL_FIRST + 1) / 3;
    while receiver.requests() < third {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "stuck before the kill"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    receiver.kill().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    receiver.restart().await;

    while pending(&*store).await > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "{} still pending after 3 minutes",
            pending(&*store).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.send(true).unwrap();
    running.await.unwrap();
    let took = started.elapsed();

    let rows = store
        .list_notifications(&NotificationFilter::default())
        .await
        .unwrap();
    let seen = receiver.seen();
    let failed: Vec<_> = rows
        .iter()
        .filter(|n| n.status != DeliveryStatus::Delivered)
        .collect();
    assert!(failed.is_empty(), "not delivered: {failed:#?}");
    for row in &rows {
        let at_receiver = seen.get(&row.dedup_key).copied().unwrap_or_default();
        // Delivered at least once, after the scripted failures.
        assert!(at_receiver.answered_ok >= 1, "{row:?}: {at_receiver:?}");
        assert!(
            at_receiver.requests > FAIL_FIRST,
            "{row:?}: {at_receiver:?}"
        );
        // Every counted attempt was a send; sends refused while the receiver was down
        // count too, so the store may count at most those more than the receiver saw.
        assert!(
            row.attempts <= MAX_ATTEMPTS && row.attempts > FAIL_FIRST,
            "{row:?}: {at_receiver:?}"
        );
    }
    let requests: u32 = seen.values().map(|s| s.requests).sum();
    let attempts: u32 = rows.iter().map(|n| n.attempts).sum();
    eprintln!(
        "{total} notifications: {requests} requests at the receiver, {attempts} attempts recorded, {:.1} s",
        took.as_secs_f64()
    );
}
