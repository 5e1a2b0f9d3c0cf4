//! `modelwatch serve` end to end: the real binary on an ephemeral loopback port with a
//! temporary SQLite file, driven over plain HTTP/1.1 — start-up and configuration errors,
//! tokens made by the CLI, an alert fired by a bad sample reaching the event stream, a
//! real Prometheus scraping `/metrics`, and a graceful SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::listening_on;

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("serve.db")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = common::modelwatch(self.db());
        command
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("MODELWATCH_LISTEN");
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Starts `serve` on port 0 and returns it with its address.
    fn serve(&self, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let mut command = self.command(&args);
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let address = listening_on(child.stdout.take().unwrap());
        Server { child, address }
    }
}

struct Server {
    child: Child,
    address: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        common::reap(&mut self.child);
    }
}

/// One HTTP/1.1 request over a fresh connection: (status, body).
fn http(address: &str, method: &str, path: &str, body: &str, token: Option<&str>) -> (u16, String) {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let response = common::exchange(address, &request, Some(Duration::from_secs(20)));
    let status: u16 = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn bad_configuration_stops_start_up_naming_the_key() {
    let env = Env::new();
    std::fs::write(
        env.dir.path().join("bad.toml"),
        "[server]\nmax_body_bytes = 10\n",
    )
    .unwrap();
    let out = env.run(&["--config", "bad.toml", "serve"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("server.max_body_bytes"), "{stderr}");

    let out = env
        .command(&["serve"])
        .env("MODELWATCH_LISTEN", "nowhere")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.listen"));
}

#[test]
fn tokens_from_the_cli_guard_the_server() {
    let env = Env::new();
    let out = env.run(&["tokens", "create", "ci", "--scope", "write"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("mw_"));
    let listed = env.run(&["tokens", "list", "--format", "json"]);
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed[0]["name"], "ci");
    assert!(listed[0].get("hash").is_none());

    let server = env.serve(&[], &[]);
    assert_eq!(http(&server.address, "GET", "/healthz", "", None).0, 200);
    assert_eq!(
        http(&server.address, "GET", "/api/v1/models", "", None).0,
        401
    );
    assert_eq!(
        http(&server.address, "GET", "/api/v1/models", "", Some(&token)).0,
        200
    );

    assert!(env.run(&["tokens", "revoke", "1"]).status.success());
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        http(&server.address, "GET", "/api/v1/models", "", Some(&token)).0,
        401
    );
}

#[test]
fn a_bad_sample_fires_an_alert_and_a_good_one_resolves_it_on_the_event_stream() {
    let env = Env::new();
    let out = env.run(&[
        "alerts",
        "create-rule",
        "fraud",
        "accuracy",
        "--name",
        "Low accuracy",
        "--threshold",
        "0.9",
        "--operator",
        "lt",
        "--for",
        "1",
        "--clear-after",
        "1",
        "--auto-resolve",
        "--severity",
        "high",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let server = env.serve(&[], &[("MODELWATCH_EVAL_DEBOUNCE", "100ms")]);

    let mut events = TcpStream::connect(&server.address).unwrap();
    events
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(events, "GET /api/v1/events HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut reader = BufReader::new(events);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.contains("200"), "{line}");

    let (status, body) = http(
        &server.address,
        "POST",
        "/api/v1/metrics",
        r#"{"model":"fraud","version":"v1","metric":"accuracy","value":0.5}"#,
        None,
    );
    assert_eq!(status, 200, "{body}");
    let alert = next_event(&mut reader, "alert_fired");
    assert_eq!(alert["change"], "fired");
    assert_eq!(alert["alert"]["model"], "fraud");
    assert_eq!(alert["alert"]["severity"], "high");

    // A healthy sample clears the rule; auto-resolve publishes the change.
    let (status, body) = http(
        &server.address,
        "POST",
        "/api/v1/metrics",
        r#"{"model":"fraud","version":"v1","metric":"accuracy","value":0.99}"#,
        None,
    );
    assert_eq!(status, 200, "{body}");
    let change = next_event(&mut reader, "alert_changed");
    assert_eq!(change["change"], "resolved");
    assert_eq!(change["alert"]["id"], alert["alert"]["id"]);
    assert_eq!(change["alert"]["status"], "resolved");
    assert_eq!(change["alert"]["resolved_by"], "modelwatch");
}

/// The data of the next `name` event on an open event stream, within 5 s.
fn next_event(reader: &mut BufReader<TcpStream>, name: &str) -> Value {
    let started = Instant::now();
    let mut seen = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => panic!("no {name} event within 5 s; saw:\n{seen}"),
            Ok(_) => {}
        }
        seen.push_str(&line);
        if line.starts_with(&format!("event: {name}")) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "too slow; saw:\n{seen}"
        );
    }
    // Chunked transfer: the data line may follow a chunk-size line.
    while !line.starts_with("data: ") {
        line.clear();
        reader.read_line(&mut line).unwrap();
    }
    serde_json::from_str(line.trim_start_matches("data: ").trim()).unwrap()
}

#[test]
fn demo_shows_alerts_in_every_state() {
    let env = Env::new();
    let server = env.serve(&["--demo"], &[]);
    let (status, body) = http(&server.address, "GET", "/api/v1/alerts?hours=168", "", None);
    assert_eq!(status, 200, "{body}");
    let page: Value = serde_json::from_str(&body).unwrap();
    let mut states: Vec<&str> = page["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_str().unwrap())
        .collect();
    states.sort_unstable();
    states.dedup();
    assert_eq!(states, ["acknowledged", "active", "resolved", "suppressed"]);
    // Its past incident, three days back, is listed only by a window reaching it.
    let ids = |query: &str| -> Vec<String> {
        let (status, body) = http(
            &server.address,
            "GET",
            &format!("/api/v1/alerts?{query}"),
            "",
            None,
        );
        assert_eq!(status, 200, "{body}");
        let page: Value = serde_json::from_str(&body).unwrap();
        page["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let week = ids("hours=168");
    let day = ids("hours=24");
    let past: Vec<&String> = week.iter().filter(|id| !day.contains(id)).collect();
    assert_eq!(
        past.len(),
        1,
        "one alert older than a day: {week:?} vs {day:?}"
    );
    assert!(ids("hours=all").contains(past[0]));
    let (_, body) = http(&server.address, "GET", "/api/v1/models", "", None);
    assert!(
        body.contains("fraud_detector") && body.contains("recommender"),
        "{body}"
    );
}

/// `serve` prunes at start-up with the configured sample retention: samples older than
/// it go, recent ones and the series stay.
#[test]
fn serve_prunes_samples_older_than_the_retention_at_start_up() {
    let env = Env::new();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let recent = (now_ms - 60_000).to_string();
    for (value, at) in [
        ("0.91", "2001-01-01T00:00:00Z"),
        ("0.92", "2001-01-02T00:00:00Z"),
        ("0.93", recent.as_str()),
    ] {
        let out = env.run(&[
            "metrics", "record", "m", "v1", "accuracy", value, "--at", at,
        ]);
        assert!(out.status.success(), "{out:?}");
    }
    let values = || -> Vec<f64> {
        let out = env.run(&[
            "metrics", "history", "m", "v1", "--metric", "accuracy", "--hours", "1000000",
            "--format", "json",
        ]);
        let history: Value = serde_json::from_slice(&out.stdout).unwrap();
        history["samples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["value"].as_f64().unwrap())
            .collect()
    };
    assert_eq!(values(), [0.91, 0.92, 0.93]);

    std::fs::write(
        env.dir.path().join("retention.toml"),
        "[retention]\nsamples = \"30d\"\n",
    )
    .unwrap();
    let mut server = env.serve(&[], &[("MODELWATCH_CONFIG", "retention.toml")]);
    // The start-up pass runs beside the server; wait for it.
    let started = Instant::now();
    while values() != [0.93] {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "old samples still there: {:?}",
            values()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    common::terminate(&mut server.child);
}

#[test]
fn sigterm_finishes_requests_and_commits() {
    let env = Env::new();
    let mut server = env.serve(&[], &[]);
    let (status, _) = http(
        &server.address,
        "POST",
        "/api/v1/metrics",
        r#"{"samples":[{"model":"m","version":"v","metric":"accuracy","value":0.5,"timestamp":1000}]}"#,
        None,
    );
    assert_eq!(status, 200);
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let started = Instant::now();
    let code = loop {
        if let Some(code) = server.child.try_wait().unwrap() {
            break code;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "did not stop within 10 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(code.success(), "{code:?}");
    let out = env.run(&["models", "list", "--format", "json"]);
    let models: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(models[0]["model"], "m");
}

/// A real Prometheus (Debian's package, installed by scripts/setup) scrapes `/metrics`.
/// Fails, rather than skips, when prometheus is missing.
#[test]
fn prometheus_scrapes_the_model_gauges() {
    let env = Env::new();
    let server = env.serve(&[], &[]);
    let (status, _) = http(
        &server.address,
        "POST",
        "/api/v1/metrics",
        r#"{"model":"fraud","version":"v1","metric":"accuracy","value":0.93}"#,
        None,
    );
    assert_eq!(status, 200);

    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let config = env.dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: modelwatch\n    static_configs:\n      - targets: ['{}']\n",
            server.address
        ),
    )
    .unwrap();
    let prometheus = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!(
            "--storage.tsdb.path={}",
            env.dir.path().join("tsdb").display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let mut prometheus = match prometheus {
        Ok(child) => child,
        Err(error) => panic!("cannot start prometheus ({error}); run scripts/setup to install it"),
    };
    let address = format!("127.0.0.1:{port}");
    let started = Instant::now();
    let mut last = String::new();
    let found = loop {
        if started.elapsed() > Duration::from_secs(60) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(500));
        if TcpStream::connect(&address).is_err() {
            continue;
        }
        let (_, body) = http(
            &address,
            "GET",
            "/api/v1/query?query=modelwatch_model_metric",
            "",
            None,
        );
        last = body;
        if last.contains("\"metric\":\"accuracy\"") && last.contains("0.93") {
            break true;
        }
    };
    let _ = prometheus.kill();
    let _ = prometheus.wait();
    assert!(
        found,
        "prometheus did not ingest modelwatch_model_metric: {last}"
    );
}
