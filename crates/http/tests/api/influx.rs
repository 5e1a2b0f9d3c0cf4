//! InfluxDB compatibility (issue 20, item 3) through a real server: `/ping`, `/health`,
//! `/ready`, InfluxQL on `/query` (GET and the form POST Grafana sends) over both
//! measurement shapes, the SHOW statements, `CREATE DATABASE`, errors naming what is not
//! supported, and the official Python clients (v1 `influxdb`, v2 `influxdb-client`).

use super::*;

const QUERY: &str = "/query";
const MINUTE: i64 = 60_000;

/// fraud v1 (accuracy 0.90 down by 0.01 a minute) and v2 (0.95), churn v1 (0.60), a point
/// a minute over the last 10 minutes, written in the product description's shape.
async fn app_with_points() -> TestServer {
    let app = spawn_app().await;
    let mut lines = Vec::new();
    for i in 0..10 {
        let ns = (NOW_MS - (10 - i) * MINUTE) * 1_000_000;
        for (model, version, value) in [
            ("fraud", "v1", 0.90 - 0.01 * i as f64),
            ("fraud", "v2", 0.95),
            ("churn", "v1", 0.60),
        ] {
            lines.push(format!(
                "performance_metric,model_name={model},model_version={version},metric_type=accuracy,host=a value={value} {ns}"
            ));
        }
    }
    let response = app
        .post_raw("/write?db=modelwatch", lines.join("\n").into_bytes(), &[])
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    app
}

async fn influxql(app: &TestServer, q: &str, epoch: Option<&str>) -> Reply {
    let mut query = vec![("q", q), ("db", "modelwatch")];
    if let Some(epoch) = epoch {
        query.push(("epoch", epoch));
    }
    let response = app
        .client
        .get(format!("{}{QUERY}", app.base))
        .query(&query)
        .send()
        .await
        .unwrap();
    app.reply(Method::GET, QUERY, response).await
}

fn close(value: &Value, expected: f64) -> bool {
    value.as_f64().is_some_and(|v| (v - expected).abs() < 1e-9)
}

#[tokio::test]
async fn ping_health_and_ready_answer_as_influxdb_does() {
    let app = spawn_app_with_auth().await;
    // No token needed, as InfluxDB's own.
    let response = app
        .client
        .get(format!("{}/ping", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(response.headers()["x-influxdb-version"]
        .to_str()
        .unwrap()
        .starts_with("1."));
    let health = app.call(Method::GET, "/health", "/health", None).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body["name"], "influxdb");
    assert_eq!(health.body["status"], "pass");
    let ready = app.call(Method::GET, "/ready", "/ready", None).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.body["status"], "ready");
    // /query is not public.
    let reply = influxql(&app, "SHOW DATABASES", None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn selects_bucket_the_narrow_shape_by_time_and_tag() {
    let app = app_with_points().await;
    let reply = influxql(
        &app,
        "SELECT mean(\"value\") FROM \"performance_metric\" WHERE \"model_name\" = 'fraud' \
         AND \"metric_type\" = 'accuracy' AND time >= now() - 10m and time < now() \
         GROUP BY time(5m), \"model_version\" fill(null)",
        Some("ms"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let result = &reply.body["results"][0];
    assert_eq!(result["statement_id"], 0);
    let series = result["series"].as_array().unwrap();
    assert_eq!(series.len(), 2, "{result}");
    assert_eq!(series[0]["name"], "performance_metric");
    assert_eq!(series[0]["tags"], json!({"model_version": "v1"}));
    assert_eq!(series[0]["columns"], json!(["time", "mean"]));
    let rows = series[0]["values"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0][0], json!(NOW_MS - 10 * MINUTE));
    assert!(close(&rows[0][1], 0.88), "{rows:?}");
    assert_eq!(rows[1][0], json!(NOW_MS - 5 * MINUTE));
    assert!(close(&rows[1][1], 0.83), "{rows:?}");
    assert_eq!(series[1]["tags"], json!({"model_version": "v2"}));
    assert!(close(&series[1]["values"][0][1], 0.95));

    // An empty bucket is null with fill(null), left out with fill(none), a number with fill(0).
    let q = |fill: &str| {
        format!(
            "SELECT last(\"value\") FROM \"performance_metric\" WHERE \"model_name\" = 'churn' \
             AND time >= {}ms AND time <= {}ms GROUP BY time(5m) fill({fill})",
            NOW_MS - 15 * MINUTE,
            NOW_MS - MINUTE
        )
    };
    let reply = influxql(&app, &q("null"), Some("ms")).await;
    let rows = &reply.body["results"][0]["series"][0]["values"];
    assert_eq!(
        rows,
        &json!([
            [NOW_MS - 15 * MINUTE, null],
            [NOW_MS - 10 * MINUTE, 0.6],
            [NOW_MS - 5 * MINUTE, 0.6]
        ]),
        "{}",
        reply.body
    );
    assert!(reply.body["results"][0]["series"][0].get("tags").is_none());
    let reply = influxql(&app, &q("none"), Some("ms")).await;
    assert_eq!(
        reply.body["results"][0]["series"][0]["values"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let reply = influxql(&app, &q("0"), Some("ms")).await;
    assert_eq!(
        reply.body["results"][0]["series"][0]["values"][0][1],
        json!(0.0)
    );
}

#[tokio::test]
async fn the_wide_shape_reads_the_same_series_as_fields_and_a_post_form_is_a_query() {
    let app = app_with_points().await;
    // Grafana's POST: the query in the form, db and epoch in the query string.
    let q = format!(
        "SELECT count(\"accuracy\"), max(\"accuracy\") FROM \"autogen\".\"model_metrics\" WHERE \
         time >= {}ms and time <= {}ms GROUP BY time(10m) fill(none); \
         SELECT \"accuracy\" FROM \"model_metrics\" WHERE \"model\" =~ /^ch/ AND time >= now() - 2m \
         GROUP BY *",
        NOW_MS - 10 * MINUTE,
        NOW_MS
    );
    let response = app
        .client
        .post(format!("{}{QUERY}?db=modelwatch&epoch=ms", app.base))
        .form(&[("q", q.as_str())])
        .send()
        .await
        .unwrap();
    let reply = app.reply(Method::POST, QUERY, response).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let first = &reply.body["results"][0]["series"][0];
    assert_eq!(first["name"], "model_metrics");
    assert_eq!(first["columns"], json!(["time", "count", "max"]));
    assert_eq!(first["values"], json!([[NOW_MS - 10 * MINUTE, 30, 0.95]]));
    let second = &reply.body["results"][1];
    assert_eq!(second["statement_id"], 1);
    assert_eq!(
        second["series"][0]["tags"],
        json!({"dataset": "default", "model": "churn", "version": "v1"})
    );
    assert_eq!(
        second["series"][0]["values"],
        json!([[NOW_MS - 2 * MINUTE, 0.6], [NOW_MS - MINUTE, 0.6]])
    );
    // Without epoch, times are RFC 3339.
    let reply = influxql(
        &app,
        "SELECT max(\"accuracy\") FROM \"model_metrics\" WHERE time >= '2024-05-01T11:00:00Z'",
        None,
    )
    .await;
    assert_eq!(
        reply.body["results"][0]["series"][0]["values"],
        json!([["2024-05-01T11:00:00Z", 0.95]])
    );
}

#[tokio::test]
async fn show_statements_list_measurements_tags_and_fields_and_create_database_is_accepted() {
    let app = app_with_points().await;
    let reply = influxql(
        &app,
        "SHOW MEASUREMENTS LIMIT 10; \
         SHOW TAG KEYS FROM \"performance_metric\"; \
         SHOW TAG VALUES FROM \"performance_metric\" WITH KEY = \"model_version\" WHERE \"model_name\" = 'fraud'; \
         SHOW FIELD KEYS FROM \"model_metrics\"; \
         SHOW DATABASES; \
         CREATE DATABASE \"telegraf\"; \
         SHOW TAG VALUES WITH KEY IN (\"model\", \"model_name\")",
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let results = reply.body["results"].as_array().unwrap();
    let values = |i: usize| results[i]["series"][0]["values"].clone();
    assert_eq!(
        values(0),
        json!([["model_metrics"], ["performance_metric"]])
    );
    assert_eq!(
        values(1),
        json!([
            ["dataset"],
            ["metric_type"],
            ["model_name"],
            ["model_version"]
        ])
    );
    assert_eq!(
        values(2),
        json!([["model_version", "v1"], ["model_version", "v2"]])
    );
    assert_eq!(values(3), json!([["accuracy", "float"]]));
    assert_eq!(values(4), json!([["modelwatch"]]));
    assert_eq!(results[5], json!({"statement_id": 5}));
    // Each measurement's own tag: model in the wide shape, model_name in the narrow one.
    assert_eq!(
        results[6]["series"][0]["values"],
        json!([["model", "churn"], ["model", "fraud"]])
    );
    assert_eq!(results[6]["series"][1]["name"], "performance_metric");
}

#[tokio::test]
async fn what_is_not_supported_is_a_400_naming_it() {
    let app = app_with_points().await;
    for (q, says) in [
        (
            "SELECT percentile(\"value\", 95) FROM \"performance_metric\"",
            "function percentile() is not supported",
        ),
        (
            "SELECT mean(\"value\") FROM \"performance_metric\" GROUP BY time(1m)",
            "require a WHERE time clause with a lower limit",
        ),
        (
            "SELECT mean(\"value\") FROM \"performance_metric\" WHERE \"value\" > 0.5",
            "conditions on field values",
        ),
        (
            "DROP DATABASE \"modelwatch\"",
            "DROP statements are not supported",
        ),
    ] {
        let reply = influxql(&app, q, None).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{q}");
        let message = reply.body["error"].as_str().unwrap();
        assert!(message.contains(says), "{q}: {message}");
    }
    let reply = app.call(Method::GET, QUERY, QUERY, None).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.body["error"].as_str().unwrap().contains("\"q\""));
    let reply = influxql(&app, "SHOW DATABASES", Some("fortnight")).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    // Too many buckets is the statement's error; the other statements still answer.
    let reply = influxql(
        &app,
        "SELECT mean(\"value\") FROM \"performance_metric\" WHERE time >= now() - 3650d \
         GROUP BY time(1s); SHOW DATABASES",
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body["results"][0]["error"]
        .as_str()
        .unwrap()
        .contains("buckets"));
    assert!(reply.body["results"][1]["series"].is_array());
}

fn influx_python() -> std::path::PathBuf {
    let python = std::env::var_os("MODELWATCH_TEST_INFLUX_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/influx-venv/bin/python")
        });
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup (it installs influxdb and influxdb-client into \
         target/influx-venv) or set MODELWATCH_TEST_INFLUX_PYTHON",
        python.display()
    );
    python
}

/// Runs `python ARGS…` on a blocking thread (the server answers on the test's runtime
/// meanwhile) and fails the test, with its output, unless it succeeds.
async fn run_python(args: Vec<String>) -> String {
    let python = influx_python();
    let output =
        tokio::task::spawn_blocking(move || std::process::Command::new(python).args(args).output())
            .await
            .unwrap()
            .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The README's snippet for the Python clients runs as written (at this server's address).
#[tokio::test]
async fn the_readme_s_influx_client_snippet_runs() {
    let readme = include_str!("../../../../README.md");
    let section = readme
        .split("### Grafana, Prometheus, Telegraf and the Influx clients")
        .nth(1)
        .unwrap();
    let code = section
        .split("```python\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .unwrap();
    let app = spawn_app().await;
    let address = app.base.trim_start_matches("http://");
    let port = address.rsplit_once(':').unwrap().1;
    let code = code.replace("localhost:7878", address).replace(
        "host=\"localhost\", port=7878",
        &format!("host=\"127.0.0.1\", port={port}"),
    );
    let stdout = run_python(vec!["-c".into(), code]).await;
    assert!(stdout.contains("'last': 0.94"), "{stdout}");
    assert!(stdout.contains("pass ready"), "{stdout}");
    let reply = influxql(
        &app,
        "SELECT \"value\" FROM \"performance_metric\" WHERE \"metric_type\" = 'latency'",
        Some("ms"),
    )
    .await;
    assert_eq!(
        reply.body["results"][0]["series"][0]["values"],
        json!([[NOW_MS, 41.0]])
    );
}

/// The official Python clients: v1 pings, creates a database, writes and queries; v2
/// pings, checks health and readiness, writes the product description's shape and
/// queries in Flux.
#[tokio::test]
async fn the_official_python_clients_ping_write_and_query() {
    let app = spawn_app().await;
    let address = app.base.trim_start_matches("http://").to_owned();
    let (host, port) = address.rsplit_once(':').unwrap();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/influx_clients.py");
    let stdout = run_python(vec![
        script.display().to_string(),
        host.to_owned(),
        port.to_owned(),
        NOW_MS.to_string(),
    ])
    .await;
    assert!(stdout.contains("OK"), "{stdout}");
}
