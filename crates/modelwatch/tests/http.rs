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
        Server::spawn(command)
    }
}

struct Server {
    child: Child,
    address: String,
}

impl Server {
    /// Spawns `command` (a `serve` on port 0) and waits for the address it listens on.
    fn spawn(mut command: Command) -> Server {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        // Owned by a Server before anything can panic, so that it is reaped.
        let mut server = Server {
            child,
            address: String::new(),
        };
        server.address = listening_on(stdout);
        server
    }
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

/// One raw HTTP/1.1 request with extra header lines: (status, head, body).
fn http_raw(
    address: &str,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> (u16, String, String) {
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let response = common::exchange(address, &request, Some(Duration::from_secs(20)));
    let status: u16 = response[9..12].parse().unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (status, head.to_owned(), body.to_owned())
}

fn create_token(env: &Env, name: &str, scope: &str) -> String {
    let out = env.run(&["tokens", "create", name, "--scope", scope]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Starts `serve` and returns it with its whole start-up line.
fn serve_with_line(env: &Env, extra: &[&str]) -> (Server, String) {
    let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let mut child = env
        .command(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let address = line
        .trim()
        .strip_prefix("modelwatch listening on http://")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("{line}"))
        .to_owned();
    (Server { child, address }, line.trim().to_owned())
}

#[test]
fn auth_is_switched_explicitly_and_shown_at_start_up() {
    let env = Env::new();
    let (server, line) = serve_with_line(&env, &[]);
    assert!(line.ends_with("(auth off: no token needed)"), "{line}");
    drop(server);

    // Once tokens exist, the server does not guess: it asks to be told.
    let token = create_token(&env, "ci", "write");
    assert!(token.starts_with("mw_"));
    let listed = env.run(&["tokens", "list", "--format", "json"]);
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed[0]["name"], "ci");
    assert!(listed[0].get("hash").is_none());
    let out = env.run(&["serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--auth tokens") && stderr.contains("--auth off"),
        "{stderr}"
    );

    let (server, line) = serve_with_line(&env, &["--auth", "off"]);
    assert!(line.contains("auth off"), "{line}");
    assert_eq!(
        http(&server.address, "GET", "/api/v1/models", "", None).0,
        200
    );
    drop(server);

    std::fs::write(
        env.dir.path().join("modelwatch.toml"),
        "[server]\nauth = \"tokens\"\n",
    )
    .unwrap();
    let (server, line) = serve_with_line(&env, &[]);
    assert!(line.contains("(auth tokens: 1 active"), "{line}");
    assert_eq!(
        http(&server.address, "GET", "/api/v1/models", "", None).0,
        401
    );
    assert_eq!(
        http(&server.address, "GET", "/api/v1/models", "", Some(&token)).0,
        200
    );
}

/// Signs in with `token`; the response's session and the `Cookie:` header line to send.
fn sign_in(address: &str, token: &str) -> (Value, String) {
    let (status, head, body) = http_raw(
        address,
        "POST",
        "/api/v1/session",
        "",
        &format!(r#"{{"token": "{token}"}}"#),
    );
    assert_eq!(status, 200, "{body}");
    let cookie = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no cookie: {head}"))
        .to_owned();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(
        !cookie.contains("Max-Age") && !cookie.contains("Expires"),
        "a cookie for the browser's session only: {cookie}"
    );
    let pair = cookie.split_once(':').unwrap().1.trim();
    let pair = pair.split(';').next().unwrap();
    (
        serde_json::from_str(&body).unwrap(),
        format!("Cookie: {pair}\r\n"),
    )
}

#[test]
fn the_dashboard_signs_in_with_a_token_in_an_http_only_strict_cookie() {
    let env = Env::new();
    let (server, line) = serve_with_line(&env, &["--auth", "tokens"]);
    assert!(line.contains("no active token yet"), "{line}");
    let address = server.address.clone();
    // The page and its files are served to anyone: it is where one signs in.
    assert_eq!(http(&address, "GET", "/", "", None).0, 200);
    assert_eq!(
        http(&address, "GET", "/alerts/alert_00000001", "", None).0,
        200
    );
    assert_eq!(http(&address, "GET", "/healthz", "", None).0, 200);
    let (status, body) = http(&address, "GET", "/api/v1/session", "", None);
    assert_eq!(status, 200);
    let session: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(session["auth"], "tokens");
    assert_eq!(session["signed_in"], false);
    assert_eq!(http(&address, "GET", "/readyz", "", None).0, 200);
    for route in ["/api/v1/models", "/api/v1/events", "/metrics"] {
        assert_eq!(http(&address, "GET", route, "", None).0, 401, "{route}");
    }

    let reader = create_token(&env, "viewer", "read");
    let writer = create_token(&env, "oncall", "write");
    std::thread::sleep(Duration::from_millis(2500));
    let (status, _, _) = http_raw(
        &address,
        "POST",
        "/api/v1/session",
        "",
        r#"{"token": "mw_nope"}"#,
    );
    assert_eq!(status, 401);

    let (who, read_cookie) = sign_in(&address, &reader);
    assert_eq!(who["name"], "viewer");
    assert_eq!(who["scope"], "read");
    let sample = r#"{"model": "m", "version": "v1", "metric": "accuracy", "value": 0.9}"#;
    // Read tokens see; write tokens act.
    assert_eq!(
        http_raw(&address, "GET", "/api/v1/models", &read_cookie, "").0,
        200
    );
    assert_eq!(
        http_raw(&address, "POST", "/api/v1/metrics", &read_cookie, sample).0,
        403
    );
    let (_, write_cookie) = sign_in(&address, &writer);
    assert_eq!(
        http_raw(&address, "POST", "/api/v1/metrics", &write_cookie, sample).0,
        200
    );
    let (_, _, body) = http_raw(&address, "GET", "/api/v1/session", &write_cookie, "");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["scope"],
        "write"
    );
    // Another site's page cannot make the browser act with the cookie.
    let evil = format!("{write_cookie}Origin: https://evil.example\r\n");
    assert_eq!(
        http_raw(&address, "POST", "/api/v1/metrics", &evil, sample).0,
        403
    );
    let own = format!("{write_cookie}Origin: http://{address}\r\n");
    assert_eq!(
        http_raw(&address, "POST", "/api/v1/metrics", &own, sample).0,
        200
    );

    // The event stream, which a browser cannot give a header, works signed in.
    let mut stream = TcpStream::connect(&address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET /api/v1/events HTTP/1.1\r\nHost: {address}\r\n{read_cookie}\r\n"
    )
    .unwrap();
    let mut status_line = String::new();
    BufReader::new(stream.try_clone().unwrap())
        .read_line(&mut status_line)
        .unwrap();
    assert!(status_line.contains(" 200 "), "{status_line}");
    drop(stream);

    // Signing out makes the browser forget the cookie.
    let (status, head, _) = http_raw(&address, "DELETE", "/api/v1/session", &write_cookie, "");
    assert_eq!(status, 204);
    assert!(head.contains("Max-Age=0"), "{head}");

    // Revoking every token closes the API, as documented: auth stays on.
    assert!(env.run(&["tokens", "revoke", "1"]).status.success());
    assert!(env.run(&["tokens", "revoke", "2"]).status.success());
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        http_raw(&address, "GET", "/api/v1/models", &read_cookie, "").0,
        401
    );
    assert_eq!(
        http(&address, "GET", "/api/v1/models", "", Some(&writer)).0,
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

/// On a server whose alerting state is in the SQLite file `alerts`: a threshold rule, then
/// two samples below it `gap` apart (a store may keep one value per time unit) fire one
/// alert, seen on the event stream and in the alert list, and the file holds it.
fn two_bad_samples_fire_one_alert(server: &Server, alerts: &str, gap: Duration) {
    let (status, body) = http(
        &server.address,
        "POST",
        "/api/v1/rules",
        r#"{"name":"Low accuracy","model":"fraud","metric":"accuracy","threshold_value":0.9,"comparison_operator":"lt","for_evaluations":1}"#,
        None,
    );
    assert_eq!(status, 201, "{body}");
    let mut events = TcpStream::connect(&server.address).unwrap();
    events
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(events, "GET /api/v1/events HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut reader = BufReader::new(events);
    for value in ["0.5", "0.4"] {
        let (status, body) = http(
            &server.address,
            "POST",
            "/api/v1/metrics",
            &format!(r#"{{"model":"fraud","version":"v1","metric":"accuracy","value":{value}}}"#),
            None,
        );
        assert_eq!(status, 200, "{body}");
        std::thread::sleep(gap);
    }
    let alert = next_event(&mut reader, "alert_fired");
    assert_eq!(alert["alert"]["model"], "fraud");
    let (status, body) = http(&server.address, "GET", "/api/v1/alerts", "", None);
    assert_eq!(status, 200, "{body}");
    let listed: Value = serde_json::from_str(&body).unwrap();
    let listed = listed
        .as_array()
        .or_else(|| listed["alerts"].as_array())
        .unwrap_or_else(|| panic!("no alert list: {body}"))
        .clone();
    assert_eq!(listed.len(), 1, "one alert for the breach: {body}");
    assert!(std::path::Path::new(alerts).is_file());
}

/// `serve` with the samples in a real influxd and the alerting state in an SQLite file: a
/// bad sample written through modelwatch fires one alert, and the sample is in InfluxDB,
/// in the documented shape, for InfluxQL to read.
#[test]
fn on_influxdb_a_bad_sample_fires_one_alert_and_influxql_reads_it() {
    let env = Env::new();
    let influx = modelwatch::store::influx::testing::TestDatabase::create("serve");
    let alerts = env.dir.path().join("alerts.db");
    let alerts = alerts.to_str().unwrap();
    let server = env.serve(
        &[],
        &[
            ("MODELWATCH_DB", influx.location()),
            ("MODELWATCH_ALERTS_DB", alerts),
            ("MODELWATCH_EVAL_DEBOUNCE", "100ms"),
        ],
    );
    two_bad_samples_fire_one_alert(&server, alerts, Duration::ZERO);

    let database = influx.location().rsplit('/').next().unwrap();
    let (status, body) = http(
        modelwatch::store::influx::testing::server(),
        "GET",
        &format!(
            "/query?db={database}&q=SELECT%20%22accuracy%22%20FROM%20%22model_metrics%22%20WHERE%20%22model%22%20%3D%20%27fraud%27%20AND%20%22version%22%20%3D%20%27v1%27"
        ),
        "",
        None,
    );
    assert_eq!(status, 200, "{body}");
    // influxd answers in chunks: the JSON is the first value after the first chunk's size.
    let json = &body[body
        .find('{')
        .unwrap_or_else(|| panic!("no JSON: {body:?}"))..];
    let answer: Value = serde_json::Deserializer::from_str(json)
        .into_iter()
        .next()
        .and_then(Result::ok)
        .unwrap_or_else(|| panic!("no JSON: {body:?}"));
    let values = &answer["results"][0]["series"][0]["values"];
    assert_eq!(values.as_array().map(Vec::len), Some(2), "{body}");
    assert_eq!(values[0][1], 0.5, "{body}");
    assert_eq!(values[1][1], 0.4, "{body}");
}

/// `serve` with the samples in a real Prometheus (remote write in, the HTTP API out) and
/// the alerting state in an SQLite file: a bad sample written through modelwatch fires one
/// alert, and both samples are in Prometheus, in the documented shape, for PromQL to read.
#[test]
fn on_prometheus_a_bad_sample_fires_one_alert_and_promql_reads_it() {
    let env = Env::new();
    let prometheus = modelwatch::store::prometheus::testing::TestPrometheus::start();
    let location = prometheus.location();
    let alerts = env.dir.path().join("alerts.db");
    let alerts = alerts.to_str().unwrap();
    let server = env.serve(
        &[],
        &[
            ("MODELWATCH_DB", location.as_str()),
            ("MODELWATCH_ALERTS_DB", alerts),
            ("MODELWATCH_EVAL_DEBOUNCE", "100ms"),
        ],
    );
    // Two samples a millisecond apart at least: Prometheus keeps one value per time.
    two_bad_samples_fire_one_alert(&server, alerts, Duration::from_millis(5));

    // modelwatch_model_metric{model="fraud",version="v1",metric="accuracy",dataset="default"}[1h]
    let (status, body) = http(
        prometheus.address(),
        "GET",
        "/api/v1/query?query=modelwatch_model_metric%7Bmodel%3D%22fraud%22%2Cversion%3D%22v1%22%2Cmetric%3D%22accuracy%22%2Cdataset%3D%22default%22%7D%5B1h%5D",
        "",
        None,
    );
    assert_eq!(status, 200, "{body}");
    let json = &body[body
        .find('{')
        .unwrap_or_else(|| panic!("no JSON: {body:?}"))..];
    let answer: Value = serde_json::from_str(json.trim()).unwrap_or_else(|e| panic!("{e}: {body}"));
    let result = &answer["data"]["result"];
    assert_eq!(result.as_array().map(Vec::len), Some(1), "{body}");
    let values = &result[0]["values"];
    assert_eq!(values.as_array().map(Vec::len), Some(2), "{body}");
    assert_eq!(values[0][1], "0.5", "{body}");
    assert_eq!(values[1][1], "0.4", "{body}");
}

/// `serve` with the samples in CloudWatch (moto's CloudWatch-compatible server: the
/// Query protocol, signed with credentials from the environment) and the alerting state
/// in an SQLite file: a bad sample written through modelwatch fires one alert, and both
/// samples are in CloudWatch, in the documented shape, for `GetMetricData` to read.
#[test]
fn on_cloudwatch_a_bad_sample_fires_one_alert_and_get_metric_data_reads_it() {
    use modelwatch::store::cloudwatch::testing::TestCloudWatch;
    let env = Env::new();
    let cloudwatch = TestCloudWatch::start();
    let location = format!(
        "cloudwatch://us-east-1/ML/Models?endpoint={}",
        cloudwatch.endpoint()
    );
    let alerts = env.dir.path().join("alerts.db");
    let alerts = alerts.to_str().unwrap();
    let server = env.serve(
        &[],
        &[
            ("MODELWATCH_DB", location.as_str()),
            ("MODELWATCH_ALERTS_DB", alerts),
            ("MODELWATCH_EVAL_DEBOUNCE", "100ms"),
            ("AWS_ACCESS_KEY_ID", "AKIDMODELWATCHTEST"),
            ("AWS_SECRET_ACCESS_KEY", "modelwatch-test-secret"),
        ],
    );
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Two samples in two seconds: CloudWatch keeps time to the second.
    two_bad_samples_fire_one_alert(&server, alerts, Duration::from_millis(1_100));

    // GetMetricData of accuracy{Model=fraud, Version=v1, Dataset=default}, each second.
    let time = |s: u64| {
        modelwatch_core::Timestamp::from_millis(s as i64 * 1000)
            .unwrap()
            .to_rfc3339()
    };
    let query = format!(
        "/?Action=GetMetricData&Version=2010-08-01&StartTime={}&EndTime={}&ScanBy=TimestampAscending\
         &MetricDataQueries.member.1.Id=q\
         &MetricDataQueries.member.1.MetricStat.Metric.Namespace=ML%2FModels\
         &MetricDataQueries.member.1.MetricStat.Metric.MetricName=accuracy\
         &MetricDataQueries.member.1.MetricStat.Metric.Dimensions.member.1.Name=Model\
         &MetricDataQueries.member.1.MetricStat.Metric.Dimensions.member.1.Value=fraud\
         &MetricDataQueries.member.1.MetricStat.Metric.Dimensions.member.2.Name=Version\
         &MetricDataQueries.member.1.MetricStat.Metric.Dimensions.member.2.Value=v1\
         &MetricDataQueries.member.1.MetricStat.Metric.Dimensions.member.3.Name=Dataset\
         &MetricDataQueries.member.1.MetricStat.Metric.Dimensions.member.3.Value=default\
         &MetricDataQueries.member.1.MetricStat.Period=1\
         &MetricDataQueries.member.1.MetricStat.Stat=Average",
        time(started - 5),
        time(started + 60),
    );
    let address = cloudwatch
        .endpoint()
        .trim_start_matches("http://")
        .to_owned();
    // A form POST, as the Query protocol sends; moto routes by the signature's service
    // and checks no signature.
    let (path, form) = query.split_once('?').unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=AKIDMODELWATCHTEST/20260101/us-east-1/monitoring/aws4_request, SignedHeaders=host, Signature=0\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    );
    let response = common::exchange(&address, &request, Some(Duration::from_secs(20)));
    let status: u16 = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    assert_eq!(status, 200, "{body}");
    let values: Vec<&str> = body
        .split("<Values>")
        .nth(1)
        .and_then(|v| v.split("</Values>").next())
        .unwrap_or_else(|| panic!("no values: {body}"))
        .split("<member>")
        .skip(1)
        .filter_map(|m| m.split("</member>").next())
        .collect();
    assert_eq!(values, ["0.5", "0.4"], "{body}");
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

/// promtool (Debian's Prometheus package, installed by scripts/setup) queries modelwatch's
/// Prometheus-compatible API as it queries a Prometheus: instant and range queries,
/// labels and series (issue 20). Fails, rather than skips, when promtool is missing.
#[test]
fn promtool_queries_the_prometheus_api() {
    let env = Env::new();
    let server = env.serve(&[], &[]);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let body = format!(
        r#"{{"samples":[{{"model":"fraud","version":"v1","metric":"accuracy","value":0.91,"timestamp":{}}},
            {{"model":"fraud","version":"v1","metric":"accuracy","value":0.93,"timestamp":{}}}]}}"#,
        now_ms - 120_000,
        now_ms - 60_000
    );
    let (status, reply) = http(&server.address, "POST", "/api/v1/metrics", &body, None);
    assert_eq!(status, 200, "{reply}");
    let url = format!("http://{}", server.address);
    let promtool = |args: &[&str]| -> String {
        let output = Command::new("promtool")
            .args(args)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run promtool ({e}); run scripts/setup to install it")
            });
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "promtool {args:?}: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    };
    let out = promtool(&[
        "query",
        "instant",
        &url,
        r#"modelwatch_model_metric{model="fraud"}"#,
    ]);
    assert!(
        out.contains(r#"metric="accuracy""#) && out.contains("=> 0.93 @["),
        "{out}"
    );
    let out = promtool(&[
        "query",
        "instant",
        &url,
        "avg by (model) (min_over_time(modelwatch_model_metric[10m])) * 100",
    ]);
    assert!(out.contains(r#"{model="fraud"} => 91 @["#), "{out}");
    let start = ((now_ms - 300_000) / 1000).to_string();
    let end = (now_ms / 1000).to_string();
    let out = promtool(&[
        "query",
        "range",
        "--start",
        &start,
        "--end",
        &end,
        "--step",
        "1m",
        &url,
        r#"max_over_time(modelwatch_model_metric{model="fraud"}[10m])"#,
    ]);
    // Steps before the first sample have none, those after it 0.91, then 0.93.
    assert!(out.contains("0.91 @[") && out.contains("0.93 @["), "{out}");
    let out = promtool(&["query", "labels", &url, "model"]);
    assert_eq!(out.trim(), "fraud");
    let out = promtool(&["query", "series", "--match", r#"{version="v1"}"#, &url]);
    assert!(out.contains(r#"model="fraud""#), "{out}");
    let output = Command::new("promtool")
        .args([
            "query",
            "instant",
            &url,
            "rate(modelwatch_model_metric[5m])",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("rate() is not supported"), "{said}");
}

/// Slow-loris (issue 15: sockets that never finished their headers were held forever):
/// a client must send its headers within `header_timeout`, and connections over
/// `max_connections` are answered 503 at once; once the slow ones are dropped, the
/// server answers everybody again.
#[test]
fn connections_that_never_finish_their_headers_are_dropped_and_capped() {
    let env = Env::new();
    std::fs::write(
        env.dir.path().join("limits.toml"),
        "[server]\nmax_connections = 20\nheader_timeout = \"1s\"\n",
    )
    .unwrap();
    let server = env.serve(&[], &[("MODELWATCH_CONFIG", "limits.toml")]);
    let started = Instant::now();
    let mut slow: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut stream = TcpStream::connect(&server.address).unwrap();
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            stream
        })
        .collect();
    // Every slot held: one more is told so at once.
    std::thread::sleep(Duration::from_millis(200));
    let (status, body) = http(&server.address, "GET", "/healthz", "", None);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("max_connections"), "{body}");
    // The slow ones are closed after the header time-out, without an answer past it.
    for stream in &mut slow {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut rest = Vec::new();
        let _ = std::io::Read::read_to_end(stream, &mut rest);
        assert!(!String::from_utf8_lossy(&rest).contains("200 OK"));
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    // An idle kept-alive connection is closed too.
    let mut idle = TcpStream::connect(&server.address).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = std::io::Read::read_to_end(&mut idle, &mut answer);
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
    let (status, _) = http(&server.address, "GET", "/healthz", "", None);
    assert_eq!(status, 200);
}

/// A webhook receiver answering 200 to every request; the bodies it got.
fn receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = std::sync::Arc::clone(&got);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            while let Some(request) = common::read_request(&mut reader) {
                if let Ok(body) = serde_json::from_slice(&request.body) {
                    seen.lock().unwrap().push(body);
                }
                let mut out = stream.try_clone().unwrap();
                let _ = out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
            }
        }
    });
    (address, got)
}

/// The dashboard's channels page and rule form: what the server has, a test send to one
/// channel, rules naming only configured channels, the seed's field names when acting.
#[test]
fn channels_are_tested_from_the_api_and_rules_name_only_configured_ones() {
    let env = Env::new();
    let (hook, got) = receiver();
    std::fs::write(
        env.dir.path().join("modelwatch.toml"),
        format!(
            "[channels.ops]\nkind = \"webhook\"\nurl = \"http://{hook}/hook\"\n\
             [channels.dead]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\ntimeout = \"2s\"\n"
        ),
    )
    .unwrap();
    let server = env.serve(&[], &[]);
    let address = server.address.clone();
    let (status, body) = http(&address, "GET", "/api/v1/channels", "", None);
    assert_eq!(status, 200);
    let channels: Value = serde_json::from_str(&body).unwrap();
    let names: Vec<&str> = channels["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["dead", "ops"]);

    let (status, body) = http(&address, "POST", "/api/v1/channels/ops/test", "", None);
    assert_eq!(status, 200, "{body}");
    let outcome: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(outcome["ok"], true, "{outcome}");
    let bodies = got.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert!(bodies[0].to_string().contains("test notification"));
    let (status, body) = http(&address, "POST", "/api/v1/channels/dead/test", "", None);
    assert_eq!(status, 200);
    let outcome: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(outcome["ok"], false);
    assert!(outcome["error"].as_str().is_some(), "{outcome}");
    let (status, body) = http(&address, "POST", "/api/v1/channels/nope/test", "", None);
    assert_eq!(status, 404);
    assert!(body.contains("configured: dead, ops"), "{body}");

    let rule = |channels: &str| {
        format!(
            r#"{{"name": "low", "model": "m", "metric": "accuracy", "threshold_value": 0.9,
                "comparison_operator": "lt", "notify_channels": {channels}}}"#
        )
    };
    let (status, body) = http(
        &address,
        "POST",
        "/api/v1/rules",
        &rule(r#"["pager"]"#),
        None,
    );
    assert_eq!(status, 400);
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["error"]["field"], "notify_channels");
    assert!(body.contains("configured: dead, ops"), "{body}");
    let (status, body) = http(&address, "POST", "/api/v1/rules", &rule(r#"["ops"]"#), None);
    assert_eq!(status, 201, "{body}");
}

/// At debug level the request log shows each request's URI; a secret sent in the query
/// string (a token, InfluxDB's `p`) shows as `<redacted>`, never in plain text (issue 15,
/// point 7), in the text and the JSON log formats.
#[test]
fn a_token_in_a_query_string_is_never_logged() {
    for format in ["text", "json"] {
        let env = Env::new();
        let log = env.dir.path().join("serve.log");
        let mut child = env
            .command(&["serve", "--listen", "127.0.0.1:0"])
            .env("MODELWATCH_LOG_LEVEL", "debug")
            .env("MODELWATCH_LOG_FORMAT", format)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let server = Server {
            child,
            address: String::new(),
        };
        let address = listening_on(stdout);
        let (status, _) = http(
            &address,
            "GET",
            "/api/v1/models?token=mw_plaintext_secret_1&hours=24",
            "",
            None,
        );
        assert_eq!(status, 400);
        let (status, _) = http(
            &address,
            "POST",
            "/write?db=x&u=me&p=plaintext_secret_2",
            "model_metrics,model=m,version=v accuracy=0.5",
            None,
        );
        assert_eq!(status, 204);
        let mut server = server;
        common::terminate(&mut server.child);
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("<redacted>"), "{format}: {text}");
        assert!(text.contains("hours=24"), "{format}: {text}");
        for secret in ["mw_plaintext_secret_1", "plaintext_secret_2"] {
            assert!(!text.contains(secret), "{format}: {secret} logged:\n{text}");
        }
    }
}

/// Issue 22: `serve` killed with SIGKILL while labels are being joined, then restarted,
/// loses nothing it acknowledged. A client streams batches of labels (shuffled over three
/// hourly windows, relabels among them, a few orphans per batch) and the server is
/// killed part-way through a request, three times; after each restart, and before any
/// new event, every window's latest revision and its metric series equal a from-scratch
/// computation over the acknowledged events (plus the batch in flight, all of it or none
/// of it), and every acknowledged batch's counts (labelled, pending, duplicates) are
/// what the events before it imply.
mod killed_mid_join {
    use std::collections::BTreeMap;
    use std::ffi::OsStr;
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::path::Path;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use modelwatch::core::predictions::{
        compute, Labelled, Output, PredictionConfig, Task, WindowLength,
    };
    use serde_json::{json, Value};

    use super::{common, Server};

    const HOUR: i64 = 3_600_000;
    const WINDOWS: usize = 3;
    const PREDICTIONS: usize = 9_000;
    const LABEL_BATCH: usize = 400;
    const ORPHANS_PER_BATCH: usize = 5;

    fn serve_on(db: &OsStr, dir: &Path) -> Server {
        let mut command = common::modelwatch(db);
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .current_dir(dir)
            .env_remove("MODELWATCH_LISTEN");
        Server::spawn(command)
    }

    /// One request over a fresh connection; an error when the server is gone.
    fn request(
        address: &str,
        method: &str,
        path: &str,
        body: &str,
    ) -> std::io::Result<(u16, String)> {
        let mut stream = TcpStream::connect(address)?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes())?;
        stream.write_all(body.as_bytes())?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let Some((head, body)) = response.split_once("\r\n\r\n") else {
            return Err(std::io::Error::other(format!("no response: {response:?}")));
        };
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line: {head:?}")))?;
        Ok((status, body.to_owned()))
    }

    fn ok(address: &str, method: &str, path: &str, body: &Value) -> Value {
        let (status, text) = request(address, method, path, &body.to_string()).unwrap();
        assert_eq!(status, 200, "{method} {path}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// The test's events and what the server must hold after the batches it committed.
    struct Plan {
        base: i64,
        /// Prediction i's (time, score).
        predictions: Vec<(i64, f64)>,
        /// Batches of labels: (id, truth).
        batches: Vec<Vec<(String, f64)>>,
    }

    impl Plan {
        fn new() -> Plan {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64;
            let base = (now / HOUR - 10) * HOUR;
            let predictions = (0..PREDICTIONS)
                .map(|i| {
                    let window = (i % WINDOWS) as i64;
                    let time = base + window * HOUR + (i / WINDOWS) as i64 * 100;
                    (time, ((i * 7919) % 1000) as f64 / 1000.0)
                })
                .collect();
            let mut rng = fastrand::Rng::with_seed(22);
            let mut order: Vec<usize> = (0..PREDICTIONS).collect();
            rng.shuffle(&mut order);
            let truth = |i: usize| f64::from(u8::from((i * 7919) % 1000 > 350 + (i % 3) * 100));
            let mut labels: Vec<(String, f64)> =
                order.iter().map(|&i| (format!("p{i}"), truth(i))).collect();
            // Relabels: a sixth of the ids again, the other way (the latest label wins).
            let mut again: Vec<usize> = (0..PREDICTIONS).step_by(6).collect();
            rng.shuffle(&mut again);
            labels.extend(again.iter().map(|&i| (format!("p{i}"), 1.0 - truth(i))));
            let batches = labels
                .chunks(LABEL_BATCH)
                .enumerate()
                .map(|(b, chunk)| {
                    let mut batch = chunk.to_vec();
                    batch.extend(
                        (0..ORPHANS_PER_BATCH).map(|j| (format!("o{b}-{j}"), (j % 2) as f64)),
                    );
                    batch
                })
                .collect();
            Plan {
                base,
                predictions,
                batches,
            }
        }

        fn window_start(&self, w: usize) -> i64 {
            self.base + w as i64 * HOUR
        }

        fn prediction_body(&self, range: std::ops::Range<usize>) -> Value {
            let events: Vec<Value> = range
                .map(|i| {
                    let (time, score) = self.predictions[i];
                    json!({"id": format!("p{i}"), "model": "clf", "version": "v1", "timestamp": time, "score": score})
                })
                .collect();
            json!({ "predictions": events })
        }

        fn label_body(&self, batch: usize) -> String {
            let events: Vec<Value> = self.batches[batch]
                .iter()
                .map(|(id, truth)| json!({"id": id, "model": "clf", "label": truth}))
                .collect();
            json!({ "labels": events }).to_string()
        }
    }

    /// The labels the server holds after some batches: joined by prediction index, and
    /// the pending ones (orphans).
    #[derive(Clone, Default, PartialEq, Debug)]
    struct Held {
        joined: BTreeMap<usize, f64>,
        pending: BTreeMap<String, f64>,
    }

    impl Held {
        /// Applies a committed batch; returns its (labelled, pending, duplicates).
        fn apply(&mut self, batch: &[(String, f64)]) -> (u64, u64, u64) {
            let mut counts = (0, 0, 0);
            for (id, truth) in batch {
                if let Some(i) = id.strip_prefix('p').and_then(|i| i.parse().ok()) {
                    if self.joined.insert(i, *truth).is_some() {
                        counts.2 += 1;
                    } else {
                        counts.0 += 1;
                    }
                } else if self.pending.insert(id.clone(), *truth).is_some() {
                    counts.2 += 1;
                } else {
                    counts.1 += 1;
                }
            }
            counts
        }
    }

    fn config() -> PredictionConfig {
        PredictionConfig::new(WindowLength::HOUR, Task::Classification, 0.5, 0.3).unwrap()
    }

    /// Window w's latest revision as the server shows it: (predicted, labelled, coverage,
    /// metrics, judged).
    fn latest_revision(
        address: &str,
        plan: &Plan,
        w: usize,
    ) -> (u64, u64, f64, BTreeMap<String, f64>, bool) {
        let start = plan.window_start(w);
        let window = ok(
            address,
            "GET",
            &format!("/api/v1/models/clf/versions/v1/prediction-windows/{start}"),
            &Value::Null,
        );
        let latest = window["revisions"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone();
        let metrics = latest["metrics"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(name, value)| (name.clone(), value.as_f64().unwrap()))
            .collect();
        (
            latest["predicted"].as_u64().unwrap(),
            latest["labelled"].as_u64().unwrap(),
            latest["coverage"].as_f64().unwrap(),
            metrics,
            !window["judged"].is_null(),
        )
    }

    /// Window w computed from scratch over `held` and the predictions stored (every
    /// planned one, and the orphans' once they were logged at `orphans`).
    fn from_scratch(
        plan: &Plan,
        held: &Held,
        w: usize,
        orphans: &[(String, i64, f64, f64)],
    ) -> (u64, u64, BTreeMap<String, f64>) {
        let start = plan.window_start(w);
        let in_window = |time: i64| (start..start + HOUR).contains(&time);
        let output = |score: f64| Output::Classification {
            class: None,
            score: Some(score),
        };
        let mut predicted = 0;
        let mut labelled = Vec::new();
        for (i, &(time, score)) in plan.predictions.iter().enumerate() {
            if in_window(time) {
                predicted += 1;
                if let Some(&truth) = held.joined.get(&i) {
                    labelled.push(Labelled {
                        output: output(score),
                        truth,
                    });
                }
            }
        }
        for (_, time, score, truth) in orphans {
            if in_window(*time) {
                predicted += 1;
                labelled.push(Labelled {
                    output: output(*score),
                    truth: *truth,
                });
            }
        }
        let metrics = compute(&config(), predicted, &labelled);
        let values = metrics
            .values
            .iter()
            .map(|(metric, value)| (metric.as_str().to_owned(), *value))
            .collect();
        (metrics.predicted, metrics.labelled, values)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0) || (a.is_nan() && b.is_nan())
    }

    /// Whether every window the server shows equals the from-scratch computation over
    /// `held`, and its metric series (when judged) the latest revision; the differences.
    fn differences(
        address: &str,
        plan: &Plan,
        held: &Held,
        orphans: &[(String, i64, f64, f64)],
    ) -> Vec<String> {
        let mut wrong = Vec::new();
        for w in 0..WINDOWS {
            let (predicted, labelled, coverage, metrics, judged) =
                latest_revision(address, plan, w);
            let (want_predicted, want_labelled, want) = from_scratch(plan, held, w, orphans);
            if (predicted, labelled) != (want_predicted, want_labelled) {
                wrong.push(format!(
                    "window {w}: predicted/labelled {predicted}/{labelled}, from scratch {want_predicted}/{want_labelled}"
                ));
                continue;
            }
            if !close(coverage, labelled as f64 / predicted as f64) {
                wrong.push(format!("window {w}: coverage {coverage}"));
            }
            if metrics.keys().ne(want.keys())
                || metrics
                    .iter()
                    .zip(&want)
                    .any(|((_, a), (_, b))| !close(*a, *b))
            {
                wrong.push(format!(
                    "window {w}: metrics {metrics:?}, from scratch {want:?}"
                ));
            }
            // A judged window's series follow its revisions.
            if judged {
                for (metric, value) in std::iter::once(("label_coverage", coverage))
                    .chain(metrics.iter().map(|(m, v)| (m.as_str(), *v)))
                {
                    let start = plan.window_start(w);
                    let series = ok(
                        address,
                        "GET",
                        &format!(
                            "/api/v1/models/clf/versions/v1/metrics/{metric}?dataset=predictions&from={start}&to={}",
                            start + 1
                        ),
                        &Value::Null,
                    );
                    let points = series["points"].as_array().unwrap();
                    let shown = points.last().map(|p| p["value"].as_f64().unwrap());
                    if !shown.is_some_and(|shown| close(shown, value)) {
                        wrong.push(format!(
                            "window {w}: {metric} series {shown:?}, revision {value}"
                        ));
                    }
                }
            }
        }
        wrong
    }

    /// Which state the restarted server shows: `held` with `in_flight` applied (true),
    /// waited for up to 10 s (the evaluator's first tick recomputes what the kill left
    /// dirty), or else `held` alone (false); fails with the differences otherwise. A batch
    /// taken for lost when it was stored is caught by the next batch's counts.
    fn settled(address: &str, plan: &Plan, held: &Held, in_flight: Option<usize>) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut with = held.clone();
        if let Some(batch) = in_flight {
            with.apply(&plan.batches[batch]);
        }
        loop {
            let with_it = differences(address, plan, &with, &[]);
            if in_flight.is_some() && with_it.is_empty() {
                return true;
            }
            if in_flight.is_none() || Instant::now() >= deadline {
                let without_it = differences(address, plan, held, &[]);
                assert!(
                    without_it.is_empty(),
                    "after the restart the windows are neither the acknowledged labels' ({without_it:?}) nor with the batch in flight ({with_it:?})"
                );
                return false;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// What the streaming client saw: the batches acknowledged (with their counts) and
    /// how long the last one took.
    #[derive(Default)]
    struct Stream {
        acked: Vec<(usize, Value)>,
        last: Duration,
        stopped: Option<usize>,
    }

    fn stream_from(
        address: String,
        bodies: Vec<(usize, String)>,
        seen: Arc<Mutex<Stream>>,
    ) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            for (batch, body) in bodies {
                let started = Instant::now();
                match request(&address, "POST", "/api/v1/predictions/labels", &body) {
                    Ok((200, text)) => {
                        let mut seen = seen.lock().unwrap();
                        seen.acked
                            .push((batch, serde_json::from_str(&text).unwrap()));
                        seen.last = started.elapsed();
                    }
                    Ok((status, text)) => panic!("batch {batch}: {status} {text}"),
                    Err(_) => {
                        seen.lock().unwrap().stopped = Some(batch);
                        return;
                    }
                }
            }
        })
    }

    pub fn killed_mid_join_then_restarted_loses_nothing(db: &OsStr) {
        let dir = tempfile::tempdir().unwrap();
        let plan = Plan::new();
        let mut server = serve_on(db, dir.path());
        let set = ok(
            &server.address,
            "PUT",
            "/api/v1/models/clf/prediction-config",
            &json!({"task": "classification", "window": "1h", "threshold": 0.5, "min_coverage": 0.3}),
        );
        assert_eq!(set["min_coverage"], 0.3, "{set}");
        for from in (0..PREDICTIONS).step_by(3_000) {
            let logged = ok(
                &server.address,
                "POST",
                "/api/v1/predictions",
                &plan.prediction_body(from..(from + 3_000).min(PREDICTIONS)),
            );
            assert_eq!(logged["accepted"], 3_000, "{logged}");
        }

        let mut held = Held::default();
        let mut next = 0;
        // Killed a fifth, a half and nine tenths of the way through a request.
        for (round, fraction) in [0.2, 0.5, 0.9].into_iter().enumerate() {
            let seen = Arc::new(Mutex::new(Stream::default()));
            let bodies = (next..plan.batches.len())
                .map(|b| (b, plan.label_body(b)))
                .collect();
            let client = stream_from(server.address.clone(), bodies, Arc::clone(&seen));
            let deadline = Instant::now() + Duration::from_secs(120);
            let took = loop {
                {
                    let seen = seen.lock().unwrap();
                    if seen.acked.len() >= 2 {
                        break seen.last;
                    }
                    assert!(
                        seen.stopped.is_none(),
                        "round {round}: the stream stopped early"
                    );
                }
                assert!(
                    Instant::now() < deadline,
                    "round {round}: no batch acknowledged"
                );
                std::thread::sleep(Duration::from_millis(5));
            };
            std::thread::sleep(took.mul_f64(fraction));
            server.child.kill().unwrap(); // SIGKILL
            server.child.wait().unwrap();
            client.join().unwrap();
            let seen = std::mem::take(&mut *seen.lock().unwrap());
            for (batch, counts) in &seen.acked {
                let (labelled, pending, duplicates) = held.apply(&plan.batches[*batch]);
                assert_eq!(
                    (
                        &counts["labelled"],
                        &counts["pending"],
                        &counts["duplicates"]
                    ),
                    (&json!(labelled), &json!(pending), &json!(duplicates)),
                    "round {round}, batch {batch}: {counts}"
                );
            }
            next = seen.acked.last().map_or(next, |(b, _)| b + 1);
            let in_flight = seen.stopped.filter(|&b| b == next);
            assert!(
                next < plan.batches.len(),
                "round {round}: the stream ended before the kill"
            );

            server = serve_on(db, dir.path());
            if settled(&server.address, &plan, &held, in_flight) {
                // The batch in flight was committed before the kill: the client, not
                // told, sends it again; now every label of it is a duplicate.
                let committed = in_flight.unwrap();
                held.apply(&plan.batches[committed]);
                let again = ok(
                    &server.address,
                    "POST",
                    "/api/v1/predictions/labels",
                    &serde_json::from_str(&plan.label_body(committed)).unwrap(),
                );
                assert_eq!(
                    (&again["labelled"], &again["pending"], &again["duplicates"]),
                    (&json!(0), &json!(0), &json!(plan.batches[committed].len())),
                    "{again}"
                );
                next = committed + 1;
            }
        }

        // The rest of the labels, then the orphans' predictions: each joins its pending
        // label, kept through three kills.
        for batch in next..plan.batches.len() {
            let counts = ok(
                &server.address,
                "POST",
                "/api/v1/predictions/labels",
                &serde_json::from_str(&plan.label_body(batch)).unwrap(),
            );
            let (labelled, pending, duplicates) = held.apply(&plan.batches[batch]);
            assert_eq!(
                (
                    &counts["labelled"],
                    &counts["pending"],
                    &counts["duplicates"]
                ),
                (&json!(labelled), &json!(pending), &json!(duplicates)),
                "batch {batch}: {counts}"
            );
        }
        assert!(differences(&server.address, &plan, &held, &[]).is_empty());
        let orphans: Vec<(String, i64, f64, f64)> = held
            .pending
            .iter()
            .enumerate()
            .map(|(k, (id, truth))| {
                let time = plan.window_start(k % WINDOWS) + 55 * 60_000 + k as i64;
                (id.clone(), time, 0.25 + (k % 50) as f64 / 100.0, *truth)
            })
            .collect();
        let events: Vec<Value> = orphans
            .iter()
            .map(|(id, time, score, _)| {
                json!({"id": id, "model": "clf", "version": "v1", "timestamp": time, "score": score})
            })
            .collect();
        let logged = ok(
            &server.address,
            "POST",
            "/api/v1/predictions",
            &json!({"predictions": events}),
        );
        assert_eq!(
            (
                &logged["accepted"],
                &logged["labelled"],
                &logged["duplicates"]
            ),
            (&json!(orphans.len()), &json!(orphans.len()), &json!(0)),
            "{logged}"
        );
        let everything = differences(
            &server.address,
            &plan,
            &Held {
                pending: BTreeMap::new(),
                ..held.clone()
            },
            &orphans,
        );
        assert!(everything.is_empty(), "{everything:?}");
        // Every prediction again: all duplicates.
        let again = ok(
            &server.address,
            "POST",
            "/api/v1/predictions",
            &plan.prediction_body(0..3_000),
        );
        assert_eq!(
            (&again["accepted"], &again["duplicates"]),
            (&json!(0), &json!(3_000)),
            "{again}"
        );
        common::terminate(&mut server.child);
    }
}

use std::ffi::OsStr;

#[test]
fn serve_killed_mid_join_on_sqlite_loses_no_acknowledged_prediction_or_label() {
    let dir = tempfile::tempdir().unwrap();
    killed_mid_join::killed_mid_join_then_restarted_loses_nothing(
        dir.path().join("kill.db").as_os_str(),
    );
}

#[test]
fn serve_killed_mid_join_on_postgres_loses_no_acknowledged_prediction_or_label() {
    let (_runtime, database) = common::postgres_database("kill_join");
    killed_mid_join::killed_mid_join_then_restarted_loses_nothing(OsStr::new(database.url()));
}
