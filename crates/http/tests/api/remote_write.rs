//! Prometheus remote write (issue 20): `POST /api/v1/write` through a real server — a
//! WriteRequest built with prost and snappy-compressed as Prometheus sends it, read back
//! through the API; the errors a Prometheus logs; the series limits; and a real
//! `prometheus` (Debian's package) shipping what it scrapes.

use super::*;
use modelwatch_http::remote_write::proto;
use prost::Message;

const WRITE: &str = "/api/v1/write";

fn series(labels: &[(&str, &str)], samples: &[(f64, i64)]) -> proto::TimeSeries {
    proto::TimeSeries {
        labels: labels
            .iter()
            .map(|(name, value)| proto::Label {
                name: (*name).into(),
                value: (*value).into(),
            })
            .collect(),
        samples: samples
            .iter()
            .map(|(value, timestamp)| proto::Sample {
                value: *value,
                timestamp: *timestamp,
            })
            .collect(),
    }
}

fn compressed(timeseries: Vec<proto::TimeSeries>) -> Vec<u8> {
    let raw = proto::WriteRequest { timeseries }.encode_to_vec();
    snap::raw::Encoder::new().compress_vec(&raw).unwrap()
}

/// The headers Prometheus's remote write 1.0 sends.
const HEADERS: [(&str, &str); 3] = [
    ("content-type", "application/x-protobuf"),
    ("content-encoding", "snappy"),
    ("x-prometheus-remote-write-version", "0.1.0"),
];

async fn points(app: &TestServer, model: &str, version: &str, metric: &str) -> Vec<(i64, f64)> {
    let path = format!(
        "/api/v1/models/{model}/versions/{version}/metrics/{metric}{}from=0&to=4102444800000",
        if metric.contains('?') { '&' } else { '?' }
    );
    let reply = app.call(Method::GET, SERIES, &path, None).await;
    if reply.status == StatusCode::NOT_FOUND {
        return Vec::new();
    }
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let at = p["timestamp"].as_str().unwrap();
            let at = Timestamp::parse(at).unwrap().as_millis();
            (at, p["value"].as_f64().unwrap())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_write_stores_its_samples_and_skips_foreign_series() {
    let app = spawn_app().await;
    let body = compressed(vec![
        series(
            &[
                ("__name__", "accuracy"),
                ("model", "fraud"),
                ("version", "v1"),
                ("job", "x"),
            ],
            &[(0.91, NOW_MS - 60_000), (0.89, NOW_MS)],
        ),
        series(
            &[
                ("__name__", "model_quality"),
                ("metric", "recall"),
                ("model", "fraud"),
                ("version", "v1"),
                ("dataset", "canary"),
            ],
            &[(0.7, NOW_MS)],
        ),
        series(&[("__name__", "up"), ("job", "x")], &[(1.0, NOW_MS)]),
    ]);
    let response = app.post_raw(WRITE, body, &HEADERS).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(response.headers()["x-modelwatch-skipped-series"], "1");
    assert_eq!(
        points(&app, "fraud", "v1", "accuracy").await,
        vec![(NOW_MS - 60_000, 0.91), (NOW_MS, 0.89)]
    );
    let reply = app
        .call(
            Method::GET,
            "/api/v1/models/{model}/versions",
            "/api/v1/models/fraud/versions",
            None,
        )
        .await;
    assert_eq!(
        reply.body["versions"][0]["metrics"],
        json!(["accuracy", "recall"]),
        "{}",
        reply.body
    );
    let stored = app
        .stores
        .metrics
        .list_series(&Default::default())
        .await
        .unwrap();
    assert_eq!(stored.len(), 2, "{stored:?}");
}

/// The errors a Prometheus logs (it logs the body, and does not retry a 4xx): 400 naming
/// the series or what the body is not, 413 over the body limit, 415 for another type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_write_errors_name_the_problem() {
    let app = spawn_app_with(Limits {
        max_body_bytes: 64 * 1024,
        ..Limits::default()
    })
    .await;
    let error = |response: reqwest::Response| async move {
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        (
            status,
            body["error"]["message"].as_str().unwrap_or("").to_owned(),
        )
    };

    let (status, message) =
        error(app.post_raw(WRITE, b"plain text".to_vec(), &HEADERS).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        message.contains("snappy") || message.contains("protobuf"),
        "{message}"
    );

    let bad = compressed(vec![series(
        &[
            ("__name__", "accuracy"),
            ("model", "fraud"),
            ("version", "v 1!"),
        ],
        &[(0.5, NOW_MS)],
    )]);
    let (status, message) = error(app.post_raw(WRITE, bad, &HEADERS).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message.contains("accuracy{"), "{message}");

    // Small compressed, over the limit decompressed: refused before decompressing.
    let zeros = proto::WriteRequest {
        timeseries: vec![series(&[("model", &"m".repeat(200_000))], &[])],
    }
    .encode_to_vec();
    let zeros = snap::raw::Encoder::new().compress_vec(&zeros).unwrap();
    assert!(zeros.len() < 64 * 1024);
    let (status, _) = error(app.post_raw(WRITE, zeros, &HEADERS).await).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    let json_type = [
        ("content-type", "application/json"),
        ("content-encoding", "snappy"),
    ];
    let ok = compressed(vec![series(
        &[
            ("__name__", "accuracy"),
            ("model", "fraud"),
            ("version", "v1"),
        ],
        &[(0.5, NOW_MS)],
    )]);
    let (status, message) = error(app.post_raw(WRITE, ok.clone(), &json_type).await).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(message.contains("application/x-protobuf"), "{message}");
    assert!(points(&app, "fraud", "v1", "accuracy").await.is_empty());

    // Snappy goes past the decompression layer only on this route.
    let response = app
        .post_raw("/api/v1/metrics", ok, &[("content-encoding", "snappy")])
        .await;
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

/// Remote write counts against the series limits as every other ingestion path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_write_is_bound_by_the_series_limits() {
    let app = spawn_app_limited(
        Limits::default(),
        modelwatch_store::SeriesLimits {
            new_per_batch: 50,
            per_model: 60,
            total: 1_000,
        },
    )
    .await;
    let names: Vec<String> = (0..51).map(|i| format!("custom_m{i}")).collect();
    let many = compressed(
        names
            .iter()
            .map(|name| {
                series(
                    &[("__name__", name), ("model", "fraud"), ("version", "v1")],
                    &[(0.5, NOW_MS)],
                )
            })
            .collect(),
    );
    let response = app.post_raw(WRITE, many, &HEADERS).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "limit_exceeded", "{body}");
    assert!(points(&app, "fraud", "v1", "custom_m0").await.is_empty());
}

/// A real Prometheus (Debian's `prometheus` package, scripts/setup installs it) scrapes a
/// target exposing three model series and ships them with `remote_write`: the three
/// arrive with the exposed values, Prometheus's own series (`up`, ...) are skipped.
/// Fails when `prometheus` is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_remote_writes_what_it_scrapes() {
    let app = spawn_app().await;
    let exposition = "# TYPE accuracy gauge\n\
        accuracy{model=\"fraud\",version=\"v1\"} 0.91\n\
        accuracy{model=\"fraud\",version=\"v2\",dataset=\"canary\"} 0.93\n\
        # TYPE model_quality gauge\n\
        model_quality{model=\"churn\",version=\"v7\",metric=\"recall\"} 0.55\n\
        # TYPE unrelated gauge\n\
        unrelated{job_kind=\"batch\"} 3\n";
    let target = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || async move {
            ([("content-type", "text/plain; version=0.0.4")], exposition)
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target_address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, target).await });

    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "global:\n  scrape_interval: 1s\n\
         scrape_configs:\n  - job_name: models\n    static_configs:\n      - targets: ['{target_address}']\n\
         remote_write:\n  - url: {}{WRITE}\n    queue_config:\n      batch_send_deadline: 500ms\n",
        app.base
    );
    std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
    let mut prometheus = std::process::Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg("--web.listen-address=127.0.0.1:0")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
        .spawn()
        .map(Killed)
        .expect("the prometheus binary (Debian package `prometheus`, scripts/setup installs it)");

    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while app
        .stores
        .metrics
        .list_series(&Default::default())
        .await
        .unwrap()
        .len()
        < 3
    {
        if let Some(status) = prometheus.0.try_wait().unwrap() {
            panic!("prometheus exited: {status}");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no remote write from prometheus within 60 s; its log:\n{}",
            std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let v1 = points(&app, "fraud", "v1", "accuracy").await;
    let v2 = points(&app, "fraud", "v2", "accuracy?dataset=canary").await;
    let churn = points(&app, "churn", "v7", "recall").await;
    assert!(
        !v1.is_empty() && v1.iter().all(|(_, value)| *value == 0.91),
        "{v1:?}"
    );
    assert!(
        !v2.is_empty() && v2.iter().all(|(_, value)| *value == 0.93),
        "{v2:?}"
    );
    assert!(
        !churn.is_empty() && churn.iter().all(|(_, value)| *value == 0.55),
        "{churn:?}"
    );
    let stored = app
        .stores
        .metrics
        .list_series(&Default::default())
        .await
        .unwrap();
    assert_eq!(stored.len(), 3, "{stored:?}");
}

/// A child process killed when the test ends, passed or not.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
