//! Notification delivery through the real `modelwatch` binary on a temporary SQLite file,
//! against webhook receivers started by the test: a receiver that is down, a worker
//! killed with SIGKILL mid-delivery, a receiver that hangs. Receipts are counted by the
//! `X-Modelwatch-Delivery` header, the key a receiver deduplicates on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{minutes_ago, succeeded, terminate};

// ---------------------------------------------------------------- the receiver

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Answers 200 at once.
    Answer,
    /// Reads the request and never answers.
    Hang,
    /// Holds the n-th request (1-based) unanswered until released; the test kills the
    /// sender meanwhile, and the held request is then dropped unanswered.
    HoldNth(usize),
    /// Holds the n-th request until released, then answers 200.
    HoldThenAnswer(usize),
}

#[derive(Debug, Default)]
struct State {
    /// Delivery ids of requests that arrived, in order, with the arrival time.
    arrivals: Vec<(String, Instant)>,
    /// Delivery ids the receiver acknowledged with 200: what counts as received.
    acked: Vec<String>,
    holding: bool,
    released: bool,
}

#[derive(Clone)]
struct Receiver {
    port: u16,
    state: Arc<(Mutex<State>, Condvar)>,
}

/// A port nobody listens on (for now): bound, then closed.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Receiver {
    fn start(mode: Mode) -> Receiver {
        Receiver::start_on(0, mode)
    }

    fn start_on(port: u16, mode: Mode) -> Receiver {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let receiver = Receiver {
            port: listener.local_addr().unwrap().port(),
            state: Arc::new((Mutex::new(State::default()), Condvar::new())),
        };
        let shared = receiver.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = shared.clone();
                std::thread::spawn(move || shared.serve(stream, mode));
            }
        });
        receiver
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    /// One connection; reqwest keeps connections alive, so possibly several requests.
    fn serve(&self, stream: TcpStream, mode: Mode) {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut writer = stream;
        while let Some(request) = common::read_request(&mut reader) {
            let delivery = request
                .headers
                .get("x-modelwatch-delivery")
                .cloned()
                .unwrap_or_default();
            let (lock, changed) = &*self.state;
            let nth = {
                let mut state = lock.lock().unwrap();
                state.arrivals.push((delivery.clone(), Instant::now()));
                changed.notify_all();
                state.arrivals.len()
            };
            match mode {
                Mode::Hang => {
                    std::thread::sleep(Duration::from_secs(60));
                    return;
                }
                Mode::HoldNth(n) | Mode::HoldThenAnswer(n) if n == nth => {
                    let mut state = lock.lock().unwrap();
                    state.holding = true;
                    changed.notify_all();
                    while !state.released {
                        state = changed.wait(state).unwrap();
                    }
                    if matches!(mode, Mode::HoldNth(_)) {
                        return; // dropped unanswered
                    }
                }
                _ => {}
            }
            lock.lock().unwrap().acked.push(delivery);
            changed.notify_all();
            if writer
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .is_err()
            {
                return;
            }
        }
    }

    fn acked(&self) -> Vec<String> {
        self.state.0.lock().unwrap().acked.clone()
    }

    fn arrivals(&self) -> Vec<(String, Instant)> {
        self.state.0.lock().unwrap().arrivals.clone()
    }

    /// Waits until `done` holds for the state, at most `limit`.
    fn wait_for(&self, limit: Duration, done: impl Fn(&State) -> bool) -> bool {
        common::wait_for(&self.state, limit, done)
    }

    fn release(&self) {
        let (lock, changed) = &*self.state;
        lock.lock().unwrap().released = true;
        changed.notify_all();
    }
}

/// Each delivery id acknowledged exactly once, and `expected` of them.
fn assert_each_once(acked: &[String], expected: usize) {
    let mut ids = acked.to_vec();
    ids.sort();
    let before = ids.len();
    ids.dedup();
    assert_eq!(
        before,
        ids.len(),
        "a delivery was acknowledged twice: {acked:?}"
    );
    assert_eq!(ids.len(), expected, "{acked:?}");
    assert!(ids.iter().all(|id| !id.is_empty()), "{acked:?}");
}

// ---------------------------------------------------------------- the binary

struct Env {
    dir: tempfile::TempDir,
    config: PathBuf,
}

/// Fast retries and short leases, so the tests take seconds.
const NOTIFY: &str = "[notify]\ninitial_backoff = \"500ms\"\nmax_backoff = \"1s\"\n\
                      timeout = \"1s\"\nlease = \"3s\"\npoll_interval = \"200ms\"\n";

impl Env {
    fn new(channels: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("modelwatch.toml");
        std::fs::write(&config, format!("{NOTIFY}{channels}")).unwrap();
        Env { dir, config }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = common::modelwatch(self.dir.path().join("test.db"));
        command
            .args(args)
            .env("MODELWATCH_CONFIG", &self.config)
            .env_remove("MODELWATCH_LISTEN");
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args)
            .args(["--format", "json"])
            .output()
            .unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_slice(&succeeded(args, self.run(args))).unwrap()
    }

    /// `count` rules on one metric notifying `channels`, and a sample that fires them
    /// all: `count` outbox rows per channel.
    fn fire(&self, channels: &str, count: usize) -> Value {
        for i in 0..count {
            let name = format!("low accuracy {i}");
            self.json(&[
                "alerts",
                "create-rule",
                "fraud_detector",
                "accuracy",
                "--name",
                &name,
                "--threshold",
                "0.90",
                "--operator",
                "lt",
                "--severity",
                "high",
                "--for",
                "1",
                "--channels",
                channels,
            ]);
        }
        self.json(&[
            "metrics",
            "record",
            "fraud_detector",
            "v1",
            "accuracy",
            "0.80",
            "--at",
            &minutes_ago(2),
        ]);
        let fired = self.json(&["evaluate"]);
        assert_eq!(
            fired["alerts_created"].as_array().unwrap().len(),
            count,
            "{fired}"
        );
        fired
    }

    fn notify_once(&self) -> Value {
        self.json(&["notify", "--once"])
    }

    fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }
}

fn webhook(name: &str, url: &str, extra: &str) -> String {
    format!("[channels.{name}]\nkind = \"webhook\"\nurl = \"{url}\"\n{extra}")
}

// ---------------------------------------------------------------- the faults

#[test]
fn receiver_down_is_retried_and_delivered_exactly_once_when_it_comes_back() {
    let port = free_port();
    let env = Env::new(&webhook(
        "hook",
        &format!("http://127.0.0.1:{port}/hook"),
        "",
    ));
    env.fire("hook", 1);

    let down = env.notify_once();
    assert_eq!(down["claimed"], 1, "{down}");
    assert_eq!(down["retried"], 1, "{down}");
    assert_eq!(down["delivered"], 0, "{down}");
    assert_eq!(down["channels"]["hook"]["retried"], 1, "{down}");

    let receiver = Receiver::start_on(port, Mode::Answer);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut passes = Vec::new();
    while receiver.acked().is_empty() {
        assert!(Instant::now() < deadline, "never delivered: {passes:?}");
        std::thread::sleep(Duration::from_millis(300));
        passes.push(env.notify_once());
    }
    let delivered: u64 = passes
        .iter()
        .map(|p| p["delivered"].as_u64().unwrap())
        .sum();
    assert_eq!(delivered, 1, "{passes:?}");
    // Delivered rows are never claimed again.
    std::thread::sleep(Duration::from_millis(1200));
    let after = env.notify_once();
    assert_eq!(after["claimed"], 0, "{after}");
    assert_each_once(&receiver.acked(), 1);
}

#[test]
fn a_hanging_receiver_times_out_while_another_channel_is_delivered_promptly() {
    let hanging = Receiver::start(Mode::Hang);
    let healthy = Receiver::start(Mode::Answer);
    let env = Env::new(&format!(
        "{}{}",
        webhook("slow", &hanging.url(), "timeout = \"1s\"\n"),
        webhook("fast", &healthy.url(), "")
    ));
    env.fire("slow,fast", 1);

    let started = Instant::now();
    let pass = env.notify_once();
    let took = started.elapsed();
    assert_eq!(pass["claimed"], 2, "{pass}");
    assert_eq!(pass["channels"]["fast"]["delivered"], 1, "{pass}");
    assert_eq!(pass["channels"]["slow"]["retried"], 1, "{pass}");
    // The pass is bounded by the slow channel's time-out, not held by the hang.
    assert!(took < Duration::from_secs(15), "{took:?}");
    assert_each_once(&healthy.acked(), 1);
    assert!(hanging.acked().is_empty());
    // Concurrent, not after the slow channel's time-out: the healthy receiver had its
    // request before the hanging one's call could have timed out.
    let hung_at = hanging.arrivals()[0].1;
    let fast_at = healthy.arrivals()[0].1;
    assert!(
        fast_at < hung_at + Duration::from_millis(900),
        "fast channel waited for the slow one: {:?}",
        fast_at.saturating_duration_since(hung_at)
    );
}

/// Three deliveries; the receiver holds the second unanswered while the worker process
/// is killed with SIGKILL. After a restart every delivery is acknowledged exactly once:
/// the first was recorded before the second was sent, the held one is sent again once
/// its lease runs out, the third was never sent.
fn killed_mid_delivery_then_restarted(args: &[&str], check: impl FnOnce(&mut Child)) {
    let receiver = Receiver::start(Mode::HoldNth(2));
    let env = Env::new(&webhook("hook", &receiver.url(), ""));
    env.fire("hook", 3);

    let mut first = env.spawn(args);
    assert!(
        receiver.wait_for(Duration::from_secs(30), |s| s.holding),
        "the second delivery never arrived: {:?}",
        receiver.arrivals()
    );
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    receiver.release();
    assert_eq!(receiver.acked().len(), 1);

    let mut second = env.spawn(args);
    let all = receiver.wait_for(Duration::from_secs(30), |s| s.acked.len() >= 3);
    // Room for a duplicate to show up, should there be one.
    std::thread::sleep(Duration::from_millis(1500));
    if all {
        check(&mut second);
    }
    terminate(&mut second);
    assert!(all, "not all delivered: {:?}", receiver.acked());
    assert_each_once(&receiver.acked(), 3);
    // The held one arrived twice but was acknowledged once: at-least-once, deduplicable.
    assert_eq!(receiver.arrivals().len(), 4, "{:?}", receiver.arrivals());
    assert_eq!(env.notify_once()["claimed"], 0);
}

#[test]
fn notify_loop_killed_with_sigkill_delivers_everything_once_after_restart() {
    killed_mid_delivery_then_restarted(&["notify"], |_| {});
}

/// The address `serve` printed on its first stdout line.
/// The pipe stays open: the child keeps its stdout.
fn listening_on(child: &mut Child) -> String {
    common::listening_on(child.stdout.as_mut().unwrap())
}

/// A GET with the standard library: status and body.
fn get(address: &str, path: &str) -> (u16, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    let response = common::exchange(address, &request, None);
    let (status, body) = common::status_and_body(&response);
    (status, body.to_owned())
}

#[test]
fn serve_killed_with_sigkill_delivers_everything_once_after_restart_and_shows_it() {
    killed_mid_delivery_then_restarted(&["serve", "--listen", "127.0.0.1:0"], |server| {
        let address = listening_on(server);
        let (status, body) = get(&address, "/api/v1/notifications?status=delivered");
        assert_eq!(status, 200, "{body}");
        let listed: Value = serde_json::from_str(&body).unwrap();
        let rows = listed["notifications"].as_array().unwrap();
        assert_eq!(rows.len(), 3, "{body}");
        // An attempt is a recorded send: the killed server's send of the second
        // delivery, never recorded, does not count, and a claim alone is no attempt.
        let attempts: Vec<u64> = rows
            .iter()
            .map(|r| r["attempts"].as_u64().unwrap())
            .collect();
        assert_eq!(attempts, [1, 1, 1], "{body}");

        let (status, body) = get(&address, "/api/v1/channels");
        assert_eq!(status, 200, "{body}");
        let channels: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(channels["channels"][0]["name"], "hook", "{body}");
        // This server delivered the two left after the restart.
        assert_eq!(channels["channels"][0]["delivered"], 2, "{body}");

        let (status, body) = get(&address, "/metrics");
        assert_eq!(status, 200);
        assert!(
            body.contains(
                "modelwatch_notification_deliveries_total{channel=\"hook\",outcome=\"delivered\"} 2"
            ),
            "{body}"
        );
        let (_, document) = get(&address, "/api/openapi.json");
        assert!(document.contains("/api/v1/channels"));
        assert!(document.contains("/api/v1/notifications"));
    });
}

#[test]
fn serve_lists_failed_deliveries_with_their_last_error_and_never_a_secret() {
    let down = free_port();
    let env = Env::new("");
    // One attempt only: the first refusal fails it for good.
    std::fs::write(
        &env.config,
        format!(
            "[notify]\nmax_attempts = 1\ntimeout = \"1s\"\nlease = \"3s\"\npoll_interval = \"200ms\"\n{}",
            webhook(
                "hook",
                &format!("http://127.0.0.1:{down}/hook"),
                "secret = \"hmac-key-123\"\n"
            )
        ),
    )
    .unwrap();
    env.fire("hook", 1);
    let mut server = env.spawn(&["serve", "--listen", "127.0.0.1:0"]);
    let address = listening_on(&mut server);
    let deadline = Instant::now() + Duration::from_secs(30);
    let failed = loop {
        let (status, body) = get(&address, "/api/v1/notifications?status=failed");
        assert_eq!(status, 200, "{body}");
        let listed: Value = serde_json::from_str(&body).unwrap();
        if let Some(row) = listed["notifications"].as_array().unwrap().first() {
            break row.clone();
        }
        assert!(Instant::now() < deadline, "never failed: {body}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(failed["channel"], "hook");
    assert!(
        failed["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("cannot reach"),
        "{failed}"
    );
    let (_, channels) = get(&address, "/api/v1/channels");
    assert!(!channels.contains("hmac-key-123"), "{channels}");
    assert!(channels.contains("(signed)"), "{channels}");
    let (status, _) = get(&address, "/api/v1/notifications?status=lost");
    assert_eq!(status, 400);
    terminate(&mut server);
}

#[test]
fn channels_list_hides_secrets_and_test_reports_the_outcome() {
    let receiver = Receiver::start(Mode::Answer);
    let down = free_port();
    let env = Env::new(&format!(
        "{}{}[channels.team]\nkind = \"slack\"\nurl = \"https://hooks.slack.com/services/T000/B000/XXXXSECRET\"\n",
        webhook("hook", &receiver.url(), "secret = \"hmac-key-123\"\n"),
        webhook("gone", &format!("http://127.0.0.1:{down}/x"), "")
    ));
    let listed = env.json(&["channels", "list"]);
    let text = listed.to_string();
    assert!(
        !text.contains("XXXXSECRET") && !text.contains("hmac-key-123"),
        "{text}"
    );
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["gone", "hook", "team"]);
    assert_eq!(listed[1]["kind"], "webhook");
    assert_eq!(listed[1]["target"], format!("{} (signed)", receiver.url()));

    let ok = env.json(&["channels", "test", "hook"]);
    assert_eq!(ok["ok"], true, "{ok}");
    assert_eq!(receiver.acked().len(), 1);

    let out = env.run(&["channels", "test", "gone"]);
    assert!(!out.status.success());
    let failed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(failed["ok"], false, "{failed}");
    assert_eq!(failed["retryable"], true, "{failed}");

    let out = env.run(&["channels", "test", "nope"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("gone, hook, team"));

    // Delivering without channels would fail every row as "unknown channel": refused.
    std::fs::write(&env.config, "").unwrap();
    let out = env.run(&["notify", "--once"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no channels are configured"));

    // A bad channel table is refused with the key named.
    std::fs::write(&env.config, "[channels.x]\nkind = \"webhook\"\n").unwrap();
    let out = env.run(&["channels", "list"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("channels.x.url"));
}

#[test]
fn serve_stopped_with_sigterm_finishes_the_send_in_flight_and_records_it() {
    let receiver = Receiver::start(Mode::HoldThenAnswer(1));
    let env = Env::new(&webhook("hook", &receiver.url(), ""));
    env.fire("hook", 1);
    let mut server = env.spawn(&["serve", "--listen", "127.0.0.1:0"]);
    assert!(
        receiver.wait_for(Duration::from_secs(30), |s| s.holding),
        "the delivery never arrived"
    );
    let status = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // The server is stopping while the receiver still holds the request; it answers
    // well within the channel's 1 s time-out.
    std::thread::sleep(Duration::from_millis(300));
    receiver.release();
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(status) = server.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit}");
    assert_each_once(&receiver.acked(), 1);
    // Recorded as delivered before the store closed: nothing left to claim once the
    // 3 s lease an unrecorded send would have left behind has run out.
    std::thread::sleep(Duration::from_millis(3500));
    assert_eq!(env.notify_once()["claimed"], 0);
    assert_each_once(&receiver.acked(), 1);
}

#[test]
fn a_notification_held_back_is_skipped_not_failed_in_the_api_and_metrics() {
    let receiver = Receiver::start(Mode::Answer);
    let env = Env::new(&webhook("hook", &receiver.url(), ""));
    let fired = env.fire("hook", 1);
    let id = fired["alerts_created"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Acknowledged before any worker ran: the firing row is held back, the follow-up
    // is not (the alert was notified, so its acknowledgement goes out).
    env.json(&["alerts", "acknowledge", &id, "alice"]);
    let mut server = env.spawn(&["serve", "--listen", "127.0.0.1:0"]);
    let address = listening_on(&mut server);
    let deadline = Instant::now() + Duration::from_secs(30);
    let skipped = loop {
        let (status, body) = get(&address, "/api/v1/notifications?status=skipped");
        assert_eq!(status, 200, "{body}");
        let listed: Value = serde_json::from_str(&body).unwrap();
        if let Some(row) = listed["notifications"].as_array().unwrap().first() {
            break row.clone();
        }
        assert!(Instant::now() < deadline, "never skipped: {body}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(skipped["event"], "firing", "{skipped}");
    assert_eq!(skipped["status"], "skipped", "{skipped}");
    assert_eq!(
        skipped["last_error"], "alert was acknowledged by alice before delivery",
        "{skipped}"
    );
    assert!(skipped["finished_at"].is_string(), "{skipped}");
    assert!(
        receiver.wait_for(Duration::from_secs(30), |s| s.acked.len() == 1),
        "the acknowledgement was not delivered"
    );
    // The receiver sees the request before the worker has its answer and records the
    // delivery, so the counters are waited for rather than read once.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = get(&address, "/api/v1/channels");
        let channels: Value = serde_json::from_str(&body).unwrap();
        let hook = &channels["channels"][0];
        let counts = (&hook["delivered"], &hook["skipped"], &hook["failed"]);
        if counts == (&Value::from(1), &Value::from(1), &Value::from(0)) {
            break;
        }
        assert!(
            Instant::now() < deadline && hook["delivered"] == 0,
            "{body}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, body) = get(&address, "/api/v1/notifications?status=failed");
    let failed: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(failed["notifications"], serde_json::json!([]), "{body}");
    let (_, metrics) = get(&address, "/metrics");
    for line in [
        "modelwatch_notification_deliveries_total{channel=\"hook\",outcome=\"skipped\"} 1",
        "modelwatch_notification_deliveries_total{channel=\"hook\",outcome=\"failed\"} 0",
    ] {
        assert!(metrics.contains(line), "{line} missing in {metrics}");
    }
    terminate(&mut server);
}

/// A row that cannot be rendered is failed with the reason, shown by `notifications list`
/// and the API, and nothing is sent in its stead.
#[test]
fn a_notification_that_cannot_be_rendered_is_failed_with_the_reason() {
    let receiver = Receiver::start(Mode::Answer);
    let env = Env::new(&webhook("hook", &receiver.url(), ""));
    env.fire("hook", 1);
    let damaged = rusqlite::Connection::open(env.dir.path().join("test.db"))
        .unwrap()
        .execute(
            "UPDATE notification_outbox SET payload = '{\"facts\": {}}'",
            [],
        )
        .unwrap();
    assert_eq!(damaged, 1);
    let pass = env.notify_once();
    assert_eq!(
        (&pass["failed"], &pass["delivered"]),
        (&1.into(), &0.into())
    );
    let failed = env.json(&["notifications", "list", "--status", "failed"]);
    let [row] = failed.as_array().unwrap().as_slice() else {
        panic!("{failed}")
    };
    assert_eq!(row["attempts"], 0, "{row}");
    let error = row["last_error"].as_str().unwrap();
    assert!(
        error.starts_with("cannot render: payload's facts: missing field `status`"),
        "{error}"
    );
    assert!(receiver.acked().is_empty());
}

#[test]
fn notifications_list_shows_deliveries_by_status_and_channel_newest_first() {
    let receiver = Receiver::start(Mode::Answer);
    let down = free_port();
    let env = Env::new(&format!(
        "{}{}",
        webhook("hook", &receiver.url(), ""),
        webhook("gone", &format!("http://127.0.0.1:{down}/x"), "")
    ));
    env.fire("hook,gone", 2);
    let pending = env.json(&["notifications", "list", "--status", "pending"]);
    assert_eq!(pending.as_array().unwrap().len(), 4, "{pending}");

    let pass = env.notify_once();
    assert_eq!(
        (&pass["delivered"], &pass["retried"]),
        (&2.into(), &2.into())
    );

    let delivered = env.json(&["notifications", "list", "--status", "delivered"]);
    let delivered = delivered.as_array().unwrap();
    assert_eq!(delivered.len(), 2, "{delivered:?}");
    for row in delivered {
        assert_eq!(row["channel"], "hook", "{row}");
        assert_eq!(row["event"], "firing", "{row}");
        assert!(row["delivered_at"].is_string(), "{row}");
        assert_eq!(row["finished_at"], row["delivered_at"], "{row}");
    }
    let gone = env.json(&["notifications", "list", "--channel", "gone"]);
    let gone = gone.as_array().unwrap();
    assert_eq!(gone.len(), 2, "{gone:?}");
    for row in gone {
        assert_eq!(
            (&row["status"], &row["attempts"], &row["finished_at"]),
            (&"pending".into(), &1.into(), &Value::Null)
        );
        assert!(
            row["last_error"].as_str().unwrap().contains("cannot reach"),
            "{row}"
        );
    }
    // Newest first, as the API lists them, with the API's fields.
    let all = env.json(&["notifications", "list"]);
    let ids: Vec<i64> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!((ids.len(), &ids), (4, &sorted));
    let newest = env.json(&["notifications", "list", "--limit", "1"]);
    assert_eq!(newest[0]["id"], ids[0], "{newest}");
    let mut fields: Vec<&str> = newest[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "alert_id",
            "attempts",
            "channel",
            "created_at",
            "dedup_key",
            "delivered_at",
            "event",
            "finished_at",
            "id",
            "last_error",
            "next_attempt_at",
            "status"
        ]
    );

    let table = env
        .command(&[
            "--format",
            "table",
            "notifications",
            "list",
            "--channel",
            "hook",
        ])
        .output()
        .unwrap();
    assert!(table.status.success());
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("delivered") && text.contains("hook"),
        "{text}"
    );
    assert!(!text.contains("gone"), "{text}");

    let out = env.run(&["notifications", "list", "--status", "lost"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("pending, delivered, failed or skipped"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Polls `GET path` on the server until `done` accepts its JSON, at most 30 s.
fn api_until(address: &str, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = get(address, path);
        assert_eq!(status, 200, "{body}");
        let value: Value = serde_json::from_str(&body).unwrap();
        if done(&value) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn channel_counts<'a>(channels: &'a Value, name: &str) -> &'a Value {
    channels["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no channel {name} in {channels}"))
}

#[test]
fn serve_retries_a_receiver_that_is_down_and_delivers_once_when_it_comes_back() {
    let port = free_port();
    let env = Env::new(&webhook(
        "hook",
        &format!("http://127.0.0.1:{port}/hook"),
        "",
    ));
    env.fire("hook", 1);
    let mut server = env.spawn(&["serve", "--listen", "127.0.0.1:0"]);
    let address = listening_on(&mut server);

    // Down: the server's worker tries, fails to connect, and keeps the row pending.
    let listed = api_until(&address, "/api/v1/notifications", "a failed attempt", |v| {
        v["notifications"][0]["attempts"].as_u64() >= Some(2)
    });
    let row = &listed["notifications"][0];
    assert_eq!(row["status"], "pending", "{row}");
    assert!(
        row["last_error"].as_str().unwrap().contains("cannot reach"),
        "{row}"
    );

    let receiver = Receiver::start_on(port, Mode::Answer);
    assert!(
        receiver.wait_for(Duration::from_secs(30), |s| !s.acked.is_empty()),
        "never delivered after the receiver came back"
    );
    let listed = api_until(&address, "/api/v1/notifications", "delivered", |v| {
        v["notifications"][0]["status"] == "delivered"
    });
    let attempts = listed["notifications"][0]["attempts"].as_u64().unwrap();
    assert!(attempts >= 3, "{listed}");
    // Room for a duplicate to show up, should there be one: several poll intervals and
    // more than the longest back-off.
    std::thread::sleep(Duration::from_millis(1500));
    assert_each_once(&receiver.acked(), 1);
    assert_eq!(receiver.arrivals().len(), 1, "{:?}", receiver.arrivals());
    let (_, body) = get(&address, "/api/v1/channels");
    let channels: Value = serde_json::from_str(&body).unwrap();
    let hook = channel_counts(&channels, "hook");
    assert_eq!(
        (&hook["delivered"], &hook["failed"]),
        (&1.into(), &0.into()),
        "{body}"
    );
    assert_eq!(hook["retried"].as_u64(), Some(attempts - 1), "{body}");
    terminate(&mut server);
    assert_eq!(env.notify_once()["claimed"], 0);
    assert_each_once(&receiver.acked(), 1);
}

#[test]
fn serve_times_out_a_hanging_receiver_while_another_channel_delivers_promptly() {
    let hanging = Receiver::start(Mode::Hang);
    let healthy = Receiver::start(Mode::Answer);
    let env = Env::new(&format!(
        "{}{}",
        webhook("slow", &hanging.url(), "timeout = \"1s\"\n"),
        webhook("fast", &healthy.url(), "")
    ));
    env.fire("slow,fast", 1);
    let mut server = env.spawn(&["serve", "--listen", "127.0.0.1:0"]);
    let address = listening_on(&mut server);

    assert!(
        healthy.wait_for(Duration::from_secs(30), |s| s.acked.len() == 1),
        "the healthy channel was not delivered"
    );
    assert!(
        hanging.wait_for(Duration::from_secs(30), |s| !s.arrivals.is_empty()),
        "the hanging receiver never got its request"
    );
    // Concurrent: the healthy receiver had its request before the hanging call could
    // have timed out.
    let hung_at = hanging.arrivals()[0].1;
    let fast_at = healthy.arrivals()[0].1;
    assert!(
        fast_at < hung_at + Duration::from_millis(900),
        "fast channel waited for the slow one: {:?}",
        fast_at.saturating_duration_since(hung_at)
    );

    // The hanging call times out, is recorded as a retry, and is tried again; the
    // server stays responsive meanwhile.
    let slow = api_until(
        &address,
        "/api/v1/notifications?channel=slow",
        "a timed-out attempt",
        |v| {
            v["notifications"][0]["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("no answer within 1s"))
        },
    );
    assert_eq!(slow["notifications"][0]["status"], "pending", "{slow}");
    assert!(
        hanging.wait_for(Duration::from_secs(30), |s| s.arrivals.len() >= 2),
        "the timed-out delivery was not tried again"
    );
    let (_, body) = get(&address, "/api/v1/channels");
    let channels: Value = serde_json::from_str(&body).unwrap();
    let fast = channel_counts(&channels, "fast");
    assert_eq!(
        (&fast["delivered"], &fast["retried"]),
        (&1.into(), &0.into()),
        "{body}"
    );
    assert!(
        channel_counts(&channels, "slow")["retried"].as_u64() >= Some(1),
        "{body}"
    );
    let (_, body) = get(&address, "/api/v1/notifications?channel=fast");
    let listed: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(listed["notifications"][0]["status"], "delivered", "{body}");
    assert_eq!(listed["notifications"][0]["attempts"], 1, "{body}");
    // SIGTERM waits for the hanging send only as long as its time-out.
    let stopping = Instant::now();
    terminate(&mut server);
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "{:?}",
        stopping.elapsed()
    );
    assert!(hanging.acked().is_empty());
    assert_each_once(&healthy.acked(), 1);
}
