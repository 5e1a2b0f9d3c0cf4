//! The HTTP API against a real server on an ephemeral port with a temporary SQLite file:
//! every route, every error code, auth on and off, line protocol, gzip, server-sent
//! events, the exposition, and every response checked against the OpenAPI document: on
//! its way out of the server ([`conform`]), whichever client call receives it.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use modelwatch_core::alerting::{
    Alert, AlertFilter, AlertId, AlertTransition, Rule, RuleId, Silence, SilenceId,
};
use modelwatch_core::{ModelName, Timestamp};
use modelwatch_http::{AppState, Clock, Limits};
use modelwatch_store::alerts::{
    AlertCommit, AlertingRows, ClaimChannels, CommitOutcome, DeliveryResult, Notification,
    NotificationFilter, StoredState,
};
use modelwatch_store::{NewToken, Scope, StoreError, Stores};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

#[path = "api/import.rs"]
mod import;
#[path = "api/influx.rs"]
mod influx;
#[path = "api/predictions.rs"]
mod predictions;
#[path = "api/prometheus.rs"]
mod prometheus;
#[path = "api/remote_write.rs"]
mod remote_write;

/// Fixed "now" for the server: 2024-05-01T12:00:00Z.
const NOW_MS: i64 = 1_714_564_800_000;

struct TestServer {
    base: String,
    client: reqwest::Client,
    stores: Stores,
    openapi: Value,
    /// What [`conform`] found wrong in the responses this server sent.
    violations: Violations,
    _dir: tempfile::TempDir,
}

/// The responses a test server sent that its OpenAPI document does not allow.
#[derive(Clone, Default)]
struct Violations(Arc<std::sync::Mutex<Vec<String>>>);

/// What [`conform`] checks responses with: the document, and what it found.
#[derive(Clone)]
struct Conformance {
    openapi: Arc<Value>,
    violations: Violations,
}

impl Drop for TestServer {
    /// A test whose server sent a response outside the document fails, even when the
    /// test itself never looked at that response.
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let found = self.violations.0.lock().unwrap().clone();
        assert!(
            found.is_empty(),
            "responses outside the OpenAPI document:\n{}",
            found.join("\n")
        );
    }
}

/// Serves `router` on an ephemeral port, every response checked by [`conform`].
async fn serve_checked(router: axum::Router) -> (String, Violations) {
    let violations = Violations::default();
    let conformance = Conformance {
        openapi: Arc::new(serde_json::to_value(modelwatch_http::openapi()).unwrap()),
        violations: violations.clone(),
    };
    let router = router.layer(axum::middleware::from_fn_with_state(conformance, conform));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    (base, violations)
}

/// Checks every response of a documented operation against the document (its status
/// listed, its JSON body valid against the status' schema). A response that is not is
/// recorded and replaced by a 500 naming the violation, so the test that received it
/// fails there. Event streams are not buffered (their status is still checked).
async fn conform(
    axum::extract::State(conformance): axum::extract::State<Conformance>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let Some(route) = route_of(&conformance.openapi, &method, &path) else {
        return response; // the dashboard's assets, unknown routes, other methods
    };
    let status = response.status();
    let streamed = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"text/event-stream"));
    let (parts, body, checked) = if streamed {
        let (parts, body) = response.into_parts();
        (parts, body, Value::Null)
    } else {
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let checked = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (parts, axum::body::Body::from(bytes), checked)
    };
    let violation = if streamed {
        undocumented_status(&conformance.openapi, &method, &route, status)
    } else {
        openapi_violation(&conformance.openapi, &method, &route, status, &checked)
    };
    match violation {
        None => axum::response::Response::from_parts(parts, body),
        Some(violation) => {
            conformance
                .violations
                .0
                .lock()
                .unwrap()
                .push(violation.clone());
            let body = json!({"error": {"code": "openapi_violation", "message": violation}});
            axum::response::IntoResponse::into_response((
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(body),
            ))
        }
    }
}

/// The document's route for a request path: the templates with this method whose
/// segments match (`{name}` matches any one segment), the one with most literal
/// segments first (`/api/v1/alerts/summary` before `/api/v1/alerts/{id}`).
fn route_of(doc: &Value, method: &Method, path: &str) -> Option<String> {
    let segments: Vec<&str> = path.split('/').collect();
    let method = method.as_str().to_lowercase();
    doc["paths"]
        .as_object()?
        .iter()
        .filter(|(_, item)| item.get(&method).is_some())
        .filter_map(|(route, _)| {
            let template: Vec<&str> = route.split('/').collect();
            let matches = template.len() == segments.len()
                && template
                    .iter()
                    .zip(&segments)
                    .all(|(t, s)| t == s || (t.starts_with('{') && !s.is_empty()));
            let literal = template.iter().filter(|t| !t.starts_with('{')).count();
            matches.then(|| (literal, route.clone()))
        })
        .max()
        .map(|(_, route)| route)
}

async fn spawn_app_with(limits: Limits) -> TestServer {
    spawn(limits, false).await
}

/// A server that requires tokens (`serve --auth tokens`).
async fn spawn_app_with_auth() -> TestServer {
    spawn(Limits::default(), true).await
}

async fn spawn(limits: Limits, auth: bool) -> TestServer {
    spawn_full(limits, auth, modelwatch_store::SeriesLimits::default()).await
}

async fn spawn_app_limited(
    limits: Limits,
    series_limits: modelwatch_store::SeriesLimits,
) -> TestServer {
    spawn_full(limits, false, series_limits).await
}

async fn spawn_full(
    limits: Limits,
    auth: bool,
    series_limits: modelwatch_store::SeriesLimits,
) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let stores =
        modelwatch_store::open_with(dir.path().join("api.db").to_str().unwrap(), series_limits)
            .await
            .unwrap();
    let engine = modelwatch_engine::Engine::new(&stores, Default::default())
        .with_ids(Arc::new(modelwatch_engine::SequentialIds::default()));
    let state = AppState::new(
        Arc::clone(&stores.metrics),
        auth.then(|| Arc::clone(&stores.tokens)),
        limits,
        Clock::new(|| Timestamp::from_millis(NOW_MS).unwrap()),
        Some(engine.clone()),
    );
    tokio::spawn(modelwatch_http::evaluator::run(
        state.clone(),
        engine,
        modelwatch_http::evaluator::Schedule {
            interval: Duration::from_secs(3600),
            debounce: Duration::from_millis(50),
        },
    ));
    let (base, violations) = serve_state(state).await;
    TestServer {
        base,
        client: reqwest::Client::new(),
        stores,
        openapi: serde_json::to_value(modelwatch_http::openapi()).unwrap(),
        violations,
        _dir: dir,
    }
}

async fn spawn_app() -> TestServer {
    spawn_app_with(Limits::default()).await
}

/// A response, checked against the OpenAPI document's schema for its route and status.
struct Reply {
    status: StatusCode,
    body: Value,
}

impl TestServer {
    async fn call(&self, method: Method, route: &str, path: &str, body: Option<Value>) -> Reply {
        self.call_with(method, route, path, body, None).await
    }

    async fn call_with(
        &self,
        method: Method,
        route: &str,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> Reply {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        self.reply(method, route, response).await
    }

    async fn reply(&self, method: Method, route: &str, response: reqwest::Response) -> Reply {
        let status = response.status();
        let text = response.text().await.unwrap();
        let body: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        check_against_openapi(&self.openapi, &method, route, status, &body);
        Reply { status, body }
    }

    async fn post_raw(
        &self,
        path: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self.client.post(format!("{}{path}", self.base)).body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }
}

/// Validates a JSON body against the schema the document gives for (route, method,
/// status). Every status a route answers must be documented.
fn check_against_openapi(
    doc: &Value,
    method: &Method,
    route: &str,
    status: StatusCode,
    body: &Value,
) {
    if let Some(violation) = openapi_violation(doc, method, route, status, body) {
        panic!("{violation}");
    }
}

/// Why the document does not allow this operation to answer `status`, if it does not.
fn undocumented_status(
    doc: &Value,
    method: &Method,
    route: &str,
    status: StatusCode,
) -> Option<String> {
    let operation = &doc["paths"][route][method.as_str().to_lowercase()];
    if !operation.is_object() {
        return Some(format!("{method} {route} is not in the OpenAPI document"));
    }
    if !operation["responses"][status.as_str()].is_object() {
        return Some(format!(
            "{method} {route} answered {status}, which the document does not list"
        ));
    }
    None
}

/// Why `body` is not a response the document allows for (route, method, status), if
/// it is not.
fn openapi_violation(
    doc: &Value,
    method: &Method,
    route: &str,
    status: StatusCode,
    body: &Value,
) -> Option<String> {
    if let Some(undocumented) = undocumented_status(doc, method, route, status) {
        return Some(undocumented);
    }
    let operation = &doc["paths"][route][method.as_str().to_lowercase()];
    let response = &operation["responses"][status.as_str()];
    // Not JSON (204, text): nothing more to check.
    let schema = response["content"]["application/json"].get("schema")?;
    // Validate inside the whole document so that #/components/schemas/… refs resolve.
    let mut root = doc.clone();
    root["x-under-test"] = schema.clone();
    root["$ref"] = json!("#/x-under-test");
    let validator = jsonschema::validator_for(&root).unwrap();
    validator.validate(body).err().map(|error| {
        format!("{method} {route} {status}: body does not match its schema: {error}\n{body:#}")
    })
}

fn sample(metric: &str, value: f64, ms: i64) -> Value {
    json!({"model": "fraud", "version": "v1", "metric": metric, "value": value, "timestamp": ms})
}

const METRICS: &str = "/api/v1/metrics";
const SERIES: &str = "/api/v1/models/{model}/versions/{version}/metrics/{metric}";
const ANALYSIS: &str = "/api/v1/models/{model}/versions/{version}/analysis";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_go_in_and_come_back_out() {
    let app = spawn_app().await;
    let reply = app
        .call(
            Method::POST,
            METRICS,
            METRICS,
            Some(sample("accuracy", 0.9, NOW_MS - 1000)),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["accepted"], 1);

    let batch: Vec<Value> = (0..100)
        .map(|i| sample("latency", 40.0 + i as f64, NOW_MS - 100_000 + i * 1000))
        .collect();
    let reply = app
        .call(
            Method::POST,
            METRICS,
            METRICS,
            Some(json!({"samples": batch})),
        )
        .await;
    assert_eq!(reply.body["accepted"], 100);

    // The seed's field names work too, and a missing timestamp is "now".
    let reply = app
        .call(Method::POST, METRICS, METRICS, Some(json!({"model_name": "churn", "model_version": "v3", "metric_type": "auc_roc", "metric_value": 0.8})))
        .await;
    assert_eq!(reply.status, StatusCode::OK);

    let reply = app
        .call(Method::GET, "/api/v1/models", "/api/v1/models", None)
        .await;
    let models: Vec<&str> = reply.body["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["model"].as_str().unwrap())
        .collect();
    assert_eq!(models, ["churn", "fraud"]);

    let route = "/api/v1/models/{model}/versions";
    let reply = app
        .call(Method::GET, route, "/api/v1/models/fraud/versions", None)
        .await;
    assert_eq!(reply.body["versions"][0]["version"], "v1");
    assert_eq!(
        reply.body["versions"][0]["metrics"],
        json!(["accuracy", "latency"])
    );

    let reply = app
        .call(
            Method::GET,
            SERIES,
            "/api/v1/models/churn/versions/v3/metrics/auc_roc",
            None,
        )
        .await;
    assert_eq!(
        reply.body["points"][0]["timestamp"],
        "2024-05-01T12:00:00.000Z"
    );

    // Raw points when few, buckets keeping the extremes when over max_points.
    let path = "/api/v1/models/fraud/versions/v1/metrics/latency?from=0";
    let reply = app.call(Method::GET, SERIES, path, None).await;
    assert_eq!(reply.body["count"], 100);
    assert_eq!(reply.body["downsampled"], false);
    assert_eq!(reply.body["points"].as_array().unwrap().len(), 100);
    assert_eq!(reply.body["direction"], "lower_is_better");

    let reply = app
        .call(Method::GET, SERIES, &format!("{path}&max_points=10"), None)
        .await;
    assert_eq!(reply.body["downsampled"], true);
    let buckets = reply.body["buckets"].as_array().unwrap();
    assert!(buckets.len() <= 10 && !buckets.is_empty());
    let max = buckets
        .iter()
        .map(|b| b["max"].as_f64().unwrap())
        .fold(f64::MIN, f64::max);
    let min = buckets
        .iter()
        .map(|b| b["min"].as_f64().unwrap())
        .fold(f64::MAX, f64::min);
    assert_eq!((min, max), (40.0, 139.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_400_naming_the_field() {
    let app = spawn_app().await;
    let reply = app
        .call(
            Method::POST,
            METRICS,
            METRICS,
            Some(json!({"model": "m", "version": "v", "metric": "accuracy", "value": 1.5})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.body["error"]["code"], "bad_request");
    assert_eq!(reply.body["error"]["field"], "value");

    let batch = json!({"samples": [sample("accuracy", 0.5, 1), {"model": "m", "version": "v", "metric": "accuracy"}]});
    let reply = app.call(Method::POST, METRICS, METRICS, Some(batch)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.body["error"]["field"], "samples[1].value");

    // A batch is atomic: the good first sample was not stored either.
    let reply = app
        .call(Method::GET, "/api/v1/models", "/api/v1/models", None)
        .await;
    assert_eq!(reply.body["models"], json!([]));

    let batch = json!({"samples": [sample("accuracy", 0.5, 1), sample("accuracy", 7.0, 2)]});
    let reply = app.call(Method::POST, METRICS, METRICS, Some(batch)).await;
    assert_eq!(reply.body["error"]["field"], "samples[1].value");

    let reply = app
        .call(Method::POST, METRICS, METRICS, Some(json!("nonsense")))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);

    app.call(
        Method::POST,
        METRICS,
        METRICS,
        Some(sample("accuracy", 0.5, 1)),
    )
    .await;
    for (path, field) in [
        (
            "/api/v1/models/fraud/versions/v1/metrics/accuracy?max_points=0",
            "max_points",
        ),
        (
            "/api/v1/models/fraud/versions/v1/metrics/accuracy?from=yesterday",
            "from",
        ),
        (
            "/api/v1/models/fr%20aud/versions/v1/metrics/accuracy",
            "model",
        ),
    ] {
        let reply = app.call(Method::GET, SERIES, path, None).await;
        assert_eq!(reply.body["error"]["field"], field, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_things_are_404() {
    let app = spawn_app().await;
    let reply = app
        .call(
            Method::GET,
            "/api/v1/models/{model}/versions",
            "/api/v1/models/nope/versions",
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.body["error"]["code"], "not_found");
    let reply = app
        .call(
            Method::GET,
            SERIES,
            "/api/v1/models/nope/versions/v1/metrics/accuracy",
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let response = app
        .client
        .get(format!("{}/api/v1/nothing", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_are_413_even_when_gzipped() {
    let app = spawn_app_with(Limits {
        max_body_bytes: 4096,
        ..Limits::default()
    })
    .await;
    let batch: Vec<Value> = (0..200).map(|i| sample("accuracy", 0.5, i)).collect();
    let body = serde_json::to_vec(&json!({"samples": batch})).unwrap();
    assert!(body.len() > 4096);
    let response = app
        .post_raw(
            METRICS,
            body.clone(),
            &[("content-type", "application/json")],
        )
        .await;
    let reply = app.reply(Method::POST, METRICS, response).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.body["error"]["code"], "payload_too_large");

    // Compressed it is small, but the limit applies to what it inflates to.
    let zipped = gzip(&body);
    assert!(zipped.len() < 4096);
    let response = app
        .post_raw(METRICS, zipped, &[("content-encoding", "gzip")])
        .await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_bodies_are_accepted_on_every_write_path() {
    let app = spawn_app().await;
    let body = serde_json::to_vec(
        &json!({"samples": [sample("accuracy", 0.5, 1), sample("accuracy", 0.6, 2)]}),
    )
    .unwrap();
    let response = app
        .post_raw(
            METRICS,
            gzip(&body),
            &[
                ("content-encoding", "gzip"),
                ("content-type", "application/json"),
            ],
        )
        .await;
    let reply = app.reply(Method::POST, METRICS, response).await;
    assert_eq!(reply.body["accepted"], 2);

    let lines = b"model_metrics,model=fraud,version=v1 recall=0.7 3000000\n".to_vec();
    let response = app
        .post_raw("/write", gzip(&lines), &[("content-encoding", "gzip")])
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let lines = b"model_metrics,model=fraud,version=v1 f1_score=0.7 4\n".to_vec();
    let response = app
        .post_raw(
            "/api/v2/write?precision=ms&org=o&bucket=b",
            gzip(&lines),
            &[("content-encoding", "gzip")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
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
        json!(["accuracy", "f1_score", "recall"])
    );

    let response = app
        .post_raw(
            METRICS,
            b"not gzip at all".to_vec(),
            &[("content-encoding", "gzip")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn line_protocol_maps_tags_and_fields_and_names_bad_lines() {
    let app = spawn_app().await;
    let body = "model_metrics,model=fraud,version=v2,dataset=canary,host=box accuracy=0.91,latency=42i 1714564800000000000\n\
                model_metrics,model=fraud,version=v2 accuracy=0.92 1714564860000000000\n";
    let response = app
        .post_raw("/write?db=x", body.as_bytes().to_vec(), &[])
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let reply = app
        .call(
            Method::GET,
            SERIES,
            "/api/v1/models/fraud/versions/v2/metrics/accuracy?from=0",
            None,
        )
        .await;
    assert_eq!(reply.body["points"][0]["value"], 0.92);
    assert_eq!(reply.body["dataset"], "default");
    assert_eq!(
        reply.body["points"][0]["timestamp"],
        "2024-05-01T12:01:00.000Z"
    );
    let canary = app
        .call(
            Method::GET,
            SERIES,
            "/api/v1/models/fraud/versions/v2/metrics/accuracy?from=0&dataset=canary",
            None,
        )
        .await;
    assert_eq!(canary.body["points"][0]["value"], 0.91);
    assert_eq!(canary.body["points"][0]["dataset"], "canary");
    assert_eq!(canary.body["dataset"], "canary");
    let models = app
        .call(Method::GET, "/api/v1/models", "/api/v1/models", None)
        .await;
    assert_eq!(
        models.body["models"][0]["datasets"],
        serde_json::json!(["default", "canary"])
    );
    let analysis = app
        .call(
            Method::GET,
            ANALYSIS,
            "/api/v1/models/fraud/versions/v2/analysis?dataset=canary&hours=all",
            None,
        )
        .await;
    assert_eq!(analysis.status, StatusCode::OK);
    assert_eq!(analysis.body["history"]["total_snapshots"], 2);
    let absent = app
        .call(
            Method::GET,
            "/api/v1/models/{model}/versions/{version}/degradation",
            "/api/v1/models/fraud/versions/v2/degradation?dataset=prod",
            None,
        )
        .await;
    assert_eq!(absent.status, StatusCode::NOT_FOUND);
    assert!(absent.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("in dataset prod"));
    let bad = app
        .call(
            Method::GET,
            ANALYSIS,
            "/api/v1/models/fraud/versions/v2/analysis?dataset=a/b",
            None,
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.body["error"]["field"], "dataset");

    let body = "model_metrics,model=fraud,version=v2 accuracy=0.5\nmodel_metrics,model=fraud accuracy=0.5\n";
    let response = app
        .post_raw("/api/v2/write", body.as_bytes().to_vec(), &[])
        .await;
    let reply = app.reply(Method::POST, "/api/v2/write", response).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.body["error"]["field"], "line 2: tag version");
    let response = app
        .post_raw("/write?precision=fortnights", b"x".to_vec(), &[])
        .await;
    let reply = app.reply(Method::POST, "/write", response).await;
    assert_eq!(reply.body["error"]["field"], "precision");
    // Out of range for the metric: the store's check names the sample.
    let response = app
        .post_raw(
            "/write",
            b"model_metrics,model=m,version=v accuracy=3".to_vec(),
            &[],
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

async fn add_token(app: &TestServer, scope: Scope) -> String {
    let (secret, hash) = modelwatch_http::generate_token().unwrap();
    app.stores
        .tokens
        .create_token(NewToken {
            name: format!("{scope}-token"),
            scope,
            hash,
            created_at: Timestamp::from_millis(NOW_MS).unwrap(),
        })
        .await
        .unwrap();
    secret
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tokens_every_route_but_healthz_needs_one() {
    // Auth off: no token needed, even once tokens exist.
    let open = spawn_app().await;
    add_token(&open, Scope::Write).await;
    let reply = open
        .call(Method::GET, "/api/v1/models", "/api/v1/models", None)
        .await;
    assert_eq!(reply.status, StatusCode::OK);

    // Auth on: every route needs a token, even before one exists.
    let app = spawn_app_with_auth().await;
    let reply = app
        .call(Method::GET, "/api/v1/models", "/api/v1/models", None)
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);

    let reader = add_token(&app, Scope::Read).await;
    let writer = add_token(&app, Scope::Write).await;
    // The server reloads tokens at most every 2 s.
    tokio::time::sleep(modelwatch_http::auth::RELOAD_EVERY + Duration::from_millis(200)).await;

    let reply = app
        .call(Method::GET, "/api/v1/models", "/api/v1/models", None)
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.body["error"]["code"], "unauthorized");
    let reply = app
        .call_with(
            Method::GET,
            "/api/v1/models",
            "/api/v1/models",
            None,
            Some("mw_wrong"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let reply = app
        .call_with(
            Method::GET,
            "/api/v1/models",
            "/api/v1/models",
            None,
            Some(&reader),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = app
        .call_with(
            Method::POST,
            METRICS,
            METRICS,
            Some(sample("accuracy", 0.5, 1)),
            Some(&reader),
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.body["error"]["code"], "forbidden");
    let reply = app
        .call_with(
            Method::POST,
            METRICS,
            METRICS,
            Some(sample("accuracy", 0.5, 1)),
            Some(&writer),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    // Influx clients send `Token …`.
    let response = app
        .post_raw(
            "/api/v2/write",
            b"model_metrics,model=m,version=v accuracy=0.5".to_vec(),
            &[("authorization", &format!("Token {writer}"))],
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    let reply = app.call(Method::GET, "/healthz", "/healthz", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = app.call(Method::GET, "/readyz", "/readyz", None).await;
    assert_eq!(reply.status, StatusCode::OK, "probes need no token");
    for route in ["/metrics", "/api/openapi.json", "/api/v1/events"] {
        let response = app
            .client
            .get(format!("{}{route}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{route}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_openapi_and_exposition() {
    let app = spawn_app().await;
    let reply = app.call(Method::GET, "/healthz", "/healthz", None).await;
    assert_eq!(reply.body["status"], "ok");
    let reply = app.call(Method::GET, "/readyz", "/readyz", None).await;
    assert_eq!(reply.body["status"], "ready");

    let served: Value = app
        .client
        .get(format!("{}/api/openapi.json", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(served, app.openapi);
    assert!(served["openapi"].as_str().unwrap().starts_with("3."));

    app.call(
        Method::POST,
        METRICS,
        METRICS,
        Some(sample("accuracy", 0.93, 1)),
    )
    .await;
    app.call(
        Method::POST,
        METRICS,
        METRICS,
        Some(sample("accuracy", 2.0, 2)),
    )
    .await;
    let response = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = response.text().await.unwrap();
    assert!(
        text.contains(
            "modelwatch_model_metric{model=\"fraud\",version=\"v1\",metric=\"accuracy\"} 0.93"
        ),
        "{text}"
    );
    // When the series last reported: `time() - …` is how long it has been silent.
    assert!(
        text.contains(
            "modelwatch_series_last_sample_timestamp_seconds{model=\"fraud\",version=\"v1\",metric=\"accuracy\"} 0.001"
        ),
        "{text}"
    );
    assert!(
        text.contains("modelwatch_samples_ingested_total 1"),
        "{text}"
    );
    assert!(
        text.contains("modelwatch_samples_rejected_total{format=\"json\"} 1"),
        "{text}"
    );
}

/// `/metrics` shows each exported version's health score and grade, its open alerts by
/// severity, and each metric's latest degradation check (issue 20, item 4).
#[tokio::test]
async fn the_exposition_grades_versions_and_counts_their_open_alerts() {
    let app = spawn_app().await;
    // fraud v1: accuracy 0.95 every 10 minutes for a day, then 0.70 over the last hour.
    // The check compares [now - 1h, now) with the 24 hours before it, so the sample at
    // exactly now - 1h is the comparison window's first (0.70 here) and the one at now is
    // outside it.
    let samples: Vec<Value> = (1..=150)
        .map(|i| {
            let at = NOW_MS - 25 * HOUR + i * 10 * 60_000;
            let value = if at >= NOW_MS - HOUR { 0.70 } else { 0.95 };
            json!({"model": "fraud", "version": "v1", "metric": "accuracy", "value": value, "timestamp": at})
        })
        .collect();
    let reply = app
        .call(
            Method::POST,
            METRICS,
            METRICS,
            Some(json!({"samples": samples})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    import_alerts(
        &app,
        vec![
            stored_alert(1, "v1", 5 * 60_000, "high", true),
            stored_alert(2, "v1", 6 * 60_000, "high", true),
            stored_alert(3, "v1", 7 * 60_000, "low", false),
        ],
    )
    .await;
    let text = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing from {text}"))
            .to_owned()
    };
    let score: f64 = line("modelwatch_version_health_score{model=\"fraud\",version=\"v1\"}")
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(score < 75.0, "a degraded version scores low: {score}");
    // An open high alert caps the grade at fair.
    assert!(
        line("modelwatch_version_health_grade{model=\"fraud\",version=\"v1\",grade=")
            .ends_with(" 1"),
        "{text}"
    );
    assert!(!text.contains("grade=\"excellent\""), "{text}");
    assert_eq!(
        line("modelwatch_version_open_alerts{model=\"fraud\",version=\"v1\",severity=\"high\"}"),
        "modelwatch_version_open_alerts{model=\"fraud\",version=\"v1\",severity=\"high\"} 2"
    );
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("modelwatch_version_open_alerts") && l.contains("\"low\"")),
        "a resolved alert is not open: {text}"
    );
    assert_eq!(
        line("modelwatch_metric_degraded{model=\"fraud\",version=\"v1\",metric=\"accuracy\"}"),
        "modelwatch_metric_degraded{model=\"fraud\",version=\"v1\",metric=\"accuracy\"} 1"
    );
    let percent: f64 = line(
        "modelwatch_metric_degradation_percent{model=\"fraud\",version=\"v1\",metric=\"accuracy\"}",
    )
    .rsplit(' ')
    .next()
    .unwrap()
    .parse()
    .unwrap();
    assert!(
        (percent - 26.3).abs() < 0.1,
        "(0.95 - 0.70) / 0.95: {percent}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_says_something_at_once() {
    // Browsers (Firefox) report the stream open only once bytes arrive; the first
    // keep-alive is 15 s away.
    let app = spawn_app().await;
    let response = app
        .client
        .get(format!("{}/api/v1/events", app.base))
        .send()
        .await
        .unwrap();
    let mut stream = response.bytes_stream();
    let first = tokio::time::timeout(Duration::from_secs(2), stream.next()).await;
    let chunk = first
        .expect("bytes within 2 s")
        .expect("a chunk")
        .expect("no error");
    assert_eq!(String::from_utf8_lossy(&chunk), "retry: 3000\n\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_coalesced_samples() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(format!("{}/api/v1/events", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut stream = response.bytes_stream();
    let batch: Vec<Value> = (0..50)
        .map(|i| sample("accuracy", 0.5 + i as f64 / 100.0, i))
        .collect();
    app.call(
        Method::POST,
        METRICS,
        METRICS,
        Some(json!({"samples": batch})),
    )
    .await;
    let mut text = String::new();
    let found = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(chunk) = stream.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            if text.contains("\n\n") && text.contains("event: samples") {
                return;
            }
        }
    })
    .await;
    assert!(found.is_ok(), "no samples event within 5 s: {text:?}");
    let data = text.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
    let update: Value = serde_json::from_str(data).unwrap();
    assert_eq!(update["count"], 50);
    assert_eq!(update["last_value"], 0.99);
    assert_eq!(
        (update["min"].as_f64(), update["max"].as_f64()),
        (Some(0.5), Some(0.99))
    );
}

const RULES: &str = "/api/v1/rules";
const RULE: &str = "/api/v1/rules/{id}";
const ALERT: &str = "/api/v1/alerts/{id}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_alerts_and_silences_through_their_lifecycle() {
    let app = spawn_app().await;
    let rule = json!({"name": "Low accuracy", "model_name": "fraud", "metric_type": "accuracy",
        "threshold_value": 0.9, "comparison_operator": "lt", "severity": "high", "for_evaluations": 1});
    let reply = app.call(Method::POST, RULES, RULES, Some(rule)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let id = reply.body["id"].as_str().unwrap().to_owned();
    let reply = app
        .call(Method::GET, RULE, &format!("/api/v1/rules/{id}"), None)
        .await;
    assert_eq!(reply.body["name"], "Low accuracy");
    let reply = app
        .call(
            Method::PATCH,
            RULE,
            &format!("/api/v1/rules/{id}"),
            Some(json!({"cooldown_minutes": 5})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let reply = app
        .call(
            Method::PATCH,
            RULE,
            &format!("/api/v1/rules/{id}"),
            Some(json!({"cooldown_minutes": -5})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let reply = app
        .call(Method::GET, RULES, "/api/v1/rules?model=fraud", None)
        .await;
    assert_eq!(reply.body["rules"].as_array().unwrap().len(), 1);
    let reply = app
        .call(Method::POST, RULES, RULES, Some(json!({"name": "x"})))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let reply = app
        .call(Method::GET, RULE, "/api/v1/rules/rule_00000999", None)
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);

    // A bad sample fires the alert within the debounce.
    app.call(
        Method::POST,
        METRICS,
        METRICS,
        Some(sample("accuracy", 0.5, NOW_MS - 1000)),
    )
    .await;
    let mut alerts = Value::Null;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        alerts = app
            .call(
                Method::GET,
                "/api/v1/alerts",
                "/api/v1/alerts?model=fraud&status=active",
                None,
            )
            .await
            .body;
        if alerts["total"] == 1 {
            break;
        }
    }
    assert_eq!(alerts["total"], 1, "{alerts}");
    let alert_id = alerts["alerts"][0]["id"].as_str().unwrap().to_owned();
    let reply = app
        .call(
            Method::GET,
            ALERT,
            &format!("/api/v1/alerts/{alert_id}"),
            None,
        )
        .await;
    assert_eq!(reply.body["severity"], "high");
    let reply = app
        .call(
            Method::GET,
            "/api/v1/alerts/summary",
            "/api/v1/alerts/summary",
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);

    let route = "/api/v1/alerts/{id}/acknowledge";
    let path = format!("/api/v1/alerts/{alert_id}/acknowledge");
    // The seed's field names work as well as `by` and `notes`.
    let reply = app
        .call(
            Method::POST,
            route,
            &path,
            Some(json!({"acknowledged_by": "ana"})),
        )
        .await;
    assert_eq!(reply.body["status"], "acknowledged", "{}", reply.body);
    assert_eq!(reply.body["acknowledged_by"], "ana");
    let reply = app
        .call(Method::POST, route, &path, Some(json!({"by": "ana"})))
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reply.body["error"]["code"], "conflict");
    let reply = app.call(Method::POST, route, &path, Some(json!({}))).await;
    assert_eq!(reply.body["error"]["field"], "by");
    let route = "/api/v1/alerts/{id}/resolve";
    let reply = app
        .call(
            Method::POST,
            route,
            &format!("/api/v1/alerts/{alert_id}/resolve"),
            Some(json!({"resolved_by": "ana", "resolution_notes": "retrained"})),
        )
        .await;
    assert_eq!(reply.body["status"], "resolved", "{}", reply.body);
    assert_eq!(reply.body["resolved_by"], "ana");
    assert_eq!(reply.body["resolution_notes"], "retrained");
    let reply = app
        .call(
            Method::GET,
            "/api/v1/alerts/{id}/history",
            &format!("/api/v1/alerts/{alert_id}/history"),
            None,
        )
        .await;
    assert!(reply.body["history"].as_array().unwrap().len() >= 2);
    let reply = app
        .call(Method::GET, ALERT, "/api/v1/alerts/alert_00000999", None)
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = app
        .call(
            Method::GET,
            "/api/v1/alerts",
            "/api/v1/alerts?severity=urgent",
            None,
        )
        .await;
    assert_eq!(reply.body["error"]["field"], "severity");

    let reply = app
        .call(
            Method::POST,
            "/api/v1/rules/{id}/backtest",
            &format!("/api/v1/rules/{id}/backtest?from=0"),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);

    // The same rule, unsaved: replayed the same, and no rule is added.
    let unsaved = json!({"name": "Low accuracy", "model_name": "fraud", "metric_type": "accuracy",
        "threshold_value": 0.9, "comparison_operator": "lt", "severity": "high", "for_evaluations": 1});
    let preview = app
        .call(
            Method::POST,
            "/api/v1/rules/backtest",
            "/api/v1/rules/backtest?from=0",
            Some(unsaved),
        )
        .await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.body);
    assert_eq!(preview.body["versions"], reply.body["versions"]);
    let rules = app.call(Method::GET, RULES, RULES, None).await;
    assert_eq!(rules.body["rules"].as_array().unwrap().len(), 1);
    let invalid = app
        .call(
            Method::POST,
            "/api/v1/rules/backtest",
            "/api/v1/rules/backtest",
            Some(json!({"name": "x", "model": "fraud", "metric": "accuracy", "threshold_value": 0.9, "comparison_operator": "about"})),
        )
        .await;
    assert_eq!(invalid.status, StatusCode::BAD_REQUEST, "{}", invalid.body);

    let silences = "/api/v1/silences";
    let reply = app.call(Method::POST, silences, silences, Some(json!({"model": "fraud", "duration_minutes": 60, "created_by": "ana", "comment": "retraining"}))).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let silence_id = reply.body["id"].as_str().unwrap().to_owned();
    let reply = app.call(Method::GET, silences, silences, None).await;
    assert_eq!(reply.body["silences"].as_array().unwrap().len(), 1);
    let reply = app
        .call(
            Method::DELETE,
            "/api/v1/silences/{id}",
            &format!("/api/v1/silences/{silence_id}"),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);

    let reply = app
        .call(Method::DELETE, RULE, &format!("/api/v1/rules/{id}"), None)
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let reply = app
        .call(Method::DELETE, RULE, &format!("/api/v1/rules/{id}"), None)
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_point_rules_are_created_refused_naming_the_field_and_backtested() {
    let app = spawn_app().await;
    let rule = json!({"name": "Accuracy shift", "model": "fraud", "metric": "accuracy",
        "condition_type": "change_point", "min_shift_percentage": 2.0,
        "false_alarm_interval_samples": 5000});
    let reply = app.call(Method::POST, RULES, RULES, Some(rule)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["condition_type"], "change_point");
    assert_eq!(reply.body["change_direction"], "worse");
    assert_eq!(reply.body["min_shift_percentage"], 2.0);
    assert_eq!(reply.body["for_evaluations"], 1);
    let id = reply.body["id"].as_str().unwrap().to_owned();
    for (body, field) in [
        (
            json!({"name": "x", "model": "fraud", "metric": "accuracy", "condition_type": "change_point", "min_shift_sd": 0}),
            "min_shift_sd",
        ),
        (
            json!({"name": "x", "model": "fraud", "metric": "accuracy", "change_direction": "up"}),
            "change_direction",
        ),
        (
            json!({"name": "x", "model": "fraud", "metric": "accuracy", "min_shift_sd": 1, "for_evaluations": 2}),
            "for_evaluations",
        ),
    ] {
        let reply = app.call(Method::POST, RULES, RULES, Some(body)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
        assert_eq!(reply.body["error"]["field"], field, "{}", reply.body);
    }
    // Two hours a minute apart, 3 points lower from minute 90; the backtest dates the
    // shift at its first sample.
    let start = NOW_MS - 3 * 3_600_000;
    let batch: Vec<Value> = (0..120)
        .map(|i| {
            let wiggle = [0.004, -0.003, 0.001, -0.002, 0.0, 0.003, -0.004][i % 7];
            let value = if i >= 90 { 0.87 } else { 0.90 } + wiggle;
            sample("accuracy", value, start + i as i64 * 60_000)
        })
        .collect();
    let reply = app
        .call(
            Method::POST,
            METRICS,
            METRICS,
            Some(json!({"samples": batch})),
        )
        .await;
    assert_eq!(reply.body["accepted"], 120, "{}", reply.body);
    let reply = app
        .call(
            Method::POST,
            "/api/v1/rules/{id}/backtest",
            &format!("/api/v1/rules/{id}/backtest?from=0"),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let events = reply.body["versions"][0]["events"]
        .as_array()
        .unwrap()
        .clone();
    // With shifts of 2 % worth knowing, the drop's first sample (3 % below a level that
    // never moved 0.5 %) is alone as much evidence as a whole shift: it pages as an
    // outlier, and the shift it starts is folded into that alert a few samples on.
    assert_eq!(events.len(), 2, "{}", reply.body);
    assert_eq!(events[0]["event"], "fired", "{}", reply.body);
    assert_eq!(events[1]["event"], "shifted", "{}", reply.body);
    let began = Timestamp::from_millis(start + 90 * 60_000).unwrap();
    for event in &events {
        assert_eq!(
            event["change_started_at"],
            began.to_rfc3339(),
            "{}",
            reply.body
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_versions_listing_marks_a_version_that_stopped_reporting_stale() {
    let app = spawn_app().await;
    // v1 reported every minute and stopped 100 minutes ago; v2 reported a minute ago;
    // v3 has two samples, too few for a usual interval, the last an hour ago.
    let mut batch: Vec<Value> = Vec::new();
    for i in 0..20 {
        for (version, end) in [("v1", 100), ("v2", 1)] {
            let at = NOW_MS - (end + 19 - i) * 60_000;
            batch.push(json!({"model": "fraud", "version": version, "metric": "accuracy", "value": 0.9, "timestamp": at}));
        }
    }
    for minutes in [120, 60] {
        batch.push(json!({"model": "fraud", "version": "v3", "metric": "accuracy", "value": 0.9, "timestamp": NOW_MS - minutes * 60_000}));
    }
    let reply = app
        .call(
            Method::POST,
            METRICS,
            METRICS,
            Some(json!({"samples": batch})),
        )
        .await;
    assert_eq!(reply.body["accepted"], 42, "{}", reply.body);
    let reply = app
        .call(
            Method::GET,
            "/api/v1/models/{model}/versions",
            "/api/v1/models/fraud/versions",
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let seen: Vec<(&str, bool, Option<f64>)> = reply.body["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_str().unwrap(),
                v["stale"].as_bool().unwrap(),
                v["usual_interval_seconds"].as_f64(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("v1", true, Some(60.0)),
            ("v2", false, Some(60.0)),
            ("v3", false, None)
        ],
        "{}",
        reply.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_data_rules_are_created_refused_naming_the_field_and_backtested() {
    let app = spawn_app().await;
    let rule = json!({"name": "Fraud silent", "model": "fraud", "version": "v1",
        "metric": "accuracy", "condition_type": "no_data", "no_data_minutes": 30});
    let reply = app.call(Method::POST, RULES, RULES, Some(rule)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["condition_type"], "no_data");
    assert_eq!(reply.body["no_data_minutes"], 30.0);
    assert_eq!(reply.body["for_evaluations"], 1);
    assert_eq!(reply.body["auto_resolve"], true);
    let id = reply.body["id"].as_str().unwrap().to_owned();
    for (body, field) in [
        (
            json!({"name": "x", "model": "fraud", "metric": "accuracy", "condition_type": "no_data"}),
            "no_data_minutes",
        ),
        (
            json!({"name": "x", "model": "fraud", "metric": "accuracy", "no_data_intervals": 0}),
            "no_data_intervals",
        ),
        (
            json!({"name": "x", "model": "fraud", "metric": "accuracy", "no_data_minutes": 5, "for_evaluations": 2}),
            "for_evaluations",
        ),
    ] {
        let reply = app.call(Method::POST, RULES, RULES, Some(body)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
        assert_eq!(reply.body["error"]["field"], field, "{}", reply.body);
    }
    // An hour a minute apart, then nothing for 45 minutes, then 15 more minutes: the
    // backtest fires 30 minutes after the last sample before the gap and resolves at
    // the first one after it.
    let start = NOW_MS - 3 * 3_600_000;
    let minutes: Vec<i64> = (0..60).chain(105..120).collect();
    let batch: Vec<Value> = minutes
        .iter()
        .map(|m| sample("accuracy", 0.9, start + m * 60_000))
        .collect();
    let reply = app
        .call(
            Method::POST,
            METRICS,
            METRICS,
            Some(json!({"samples": batch})),
        )
        .await;
    assert_eq!(reply.body["accepted"], 75, "{}", reply.body);
    let reply = app
        .call(
            Method::POST,
            "/api/v1/rules/{id}/backtest",
            &format!(
                "/api/v1/rules/{id}/backtest?from={start}&to={}",
                start + 120 * 60_000
            ),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let events = reply.body["versions"][0]["events"].as_array().unwrap();
    let minute = |event: &Value| {
        let at = Timestamp::parse(event["at"].as_str().unwrap()).unwrap();
        (at.as_millis() - start) / 60_000
    };
    let seen: Vec<(i64, &str)> = events
        .iter()
        .map(|e| (minute(e), e["event"].as_str().unwrap()))
        .collect();
    assert_eq!(
        seen,
        [(89, "fired"), (105, "auto_resolved")],
        "{}",
        reply.body
    );
}

/// A no-data rule on `*` watches the whole version: refused for any other kind of rule
/// (naming `metric`), backtested over the merged samples of every metric, and its alert
/// names the version and the metrics seen last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_data_rules_on_every_metric_watch_the_whole_version() {
    const EVALUATE: &str = "/api/v1/models/{model}/versions/{version}/evaluate";
    let app = spawn_app().await;
    for body in [
        json!({"name": "x", "model": "fraud", "metric": "*", "threshold_value": 0.9, "comparison_operator": "lt"}),
        json!({"name": "x", "model": "fraud", "metric": "*", "max_degradation_percentage": 5}),
        json!({"name": "x", "model": "fraud", "metric": "*", "condition_type": "change_point"}),
    ] {
        let reply = app.call(Method::POST, RULES, RULES, Some(body)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
        assert_eq!(reply.body["error"]["field"], "metric", "{}", reply.body);
    }
    let rule = json!({"name": "Fraud silent", "model": "fraud", "metric": "*",
        "no_data_minutes": 30});
    let reply = app.call(Method::POST, RULES, RULES, Some(rule)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["metric"], "*");
    assert_eq!(reply.body["condition_type"], "no_data");
    let id = reply.body["id"].as_str().unwrap().to_owned();
    // A switch to a threshold keeping `*` is refused too.
    let patch = json!({"threshold_value": 0.9, "comparison_operator": "lt"});
    let path = format!("/api/v1/rules/{id}");
    let reply = app.call(Method::PATCH, RULE, &path, Some(patch)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    assert_eq!(reply.body["error"]["field"], "metric", "{}", reply.body);
    // Accuracy stopped 60 minutes before the server's clock, latency 40: the version is
    // silent for 40.
    let ago = |minutes: i64| NOW_MS - minutes * 60_000;
    let mut batch: Vec<Value> = (60..=120)
        .map(|m| sample("accuracy", 0.9, ago(m)))
        .collect();
    batch.extend((40..=120).map(|m| sample("latency", 120.0, ago(m))));
    let reply = app
        .call(
            Method::POST,
            METRICS,
            METRICS,
            Some(json!({"samples": batch})),
        )
        .await;
    assert_eq!(reply.body["accepted"], 142, "{}", reply.body);
    // The backtest replays the merged samples: it fires 30 minutes after the last one.
    let reply = app
        .call(
            Method::POST,
            "/api/v1/rules/{id}/backtest",
            &format!(
                "/api/v1/rules/{id}/backtest?from={}&to={}",
                ago(180),
                ago(0)
            ),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let versions = reply.body["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 1, "{}", reply.body);
    let events = versions[0]["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{}", reply.body);
    assert_eq!(events[0]["event"], "fired");
    let fired = Timestamp::parse(events[0]["at"].as_str().unwrap()).unwrap();
    assert_eq!(fired.as_millis(), ago(40) + 30 * 60_000);
    let path = "/api/v1/models/fraud/versions/v1/evaluate";
    let reply = app.call(Method::POST, EVALUATE, path, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let alerts = app
        .call(Method::GET, ALERTS, "/api/v1/alerts?model=fraud", None)
        .await;
    assert_eq!(alerts.body["total"], 1, "{}", alerts.body);
    let alert = &alerts.body["alerts"][0];
    assert_eq!(alert["metric"], "*", "{alert}");
    let seen = alert["trigger"]["last_samples"].as_array().unwrap();
    assert_eq!(seen[0]["metric"], "latency", "{alert}");
    assert_eq!(seen[1]["metric"], "accuracy", "{alert}");
    let message = alert["message"].as_str().unwrap();
    assert!(message.contains("fraud/v1 (every metric)"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluate_runs_a_version_s_rules_now_and_then_finds_nothing_new() {
    const EVALUATE: &str = "/api/v1/models/{model}/versions/{version}/evaluate";
    let app = spawn_app().await;
    let rule = json!({"name": "Low accuracy", "model_name": "fraud", "metric_type": "accuracy",
        "threshold_value": 0.9, "comparison_operator": "lt", "for_evaluations": 1});
    let reply = app.call(Method::POST, RULES, RULES, Some(rule)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let sample = json!({"model": "fraud", "version": "v1", "metric": "accuracy", "value": 0.5});
    let reply = app.call(Method::POST, METRICS, METRICS, Some(sample)).await;
    assert!(reply.status.is_success(), "{}", reply.body);
    let path = "/api/v1/models/fraud/versions/v1/evaluate";
    let first = app.call(Method::POST, EVALUATE, path, None).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    // The server's own evaluation (debounced after the sample) may have been first.
    let created = first.body["alerts_created"].as_array().unwrap().len();
    assert!(created <= 1, "{}", first.body);
    let again = app.call(Method::POST, EVALUATE, path, None).await;
    assert_eq!(again.body["alerts_created"], json!([]), "{}", again.body);
    let alerts = app
        .call(Method::GET, ALERTS, "/api/v1/alerts?model=fraud", None)
        .await;
    assert_eq!(alerts.body["total"], 1, "{}", alerts.body);
    let bad = "/api/v1/models/fraud/versions/v%201/evaluate";
    let bad = app.call(Method::POST, EVALUATE, bad, None).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
}

/// A rule for one dataset and a rule for each dataset: only the dataset that degraded
/// alerts, its alert names it, and the backtest takes a dataset too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_watch_one_dataset_or_each_and_alert_only_for_the_degraded_one() {
    const EVALUATE: &str = "/api/v1/models/{model}/versions/{version}/evaluate";
    let app = spawn_app().await;
    let rule = |name: &str, dataset: Option<&str>| {
        let mut rule = json!({"name": name, "model": "fraud", "metric": "accuracy",
            "threshold_value": 0.9, "comparison_operator": "lt", "for_evaluations": 1});
        if let Some(dataset) = dataset {
            rule["dataset"] = json!(dataset);
        }
        rule
    };
    let mut ids = Vec::new();
    for (name, dataset, stored) in [
        ("each", Some("*"), "*"),
        ("canary", Some("canary"), "canary"),
        ("prod", Some("prod"), "prod"),
        ("default", None, "default"),
    ] {
        let reply = app
            .call(Method::POST, RULES, RULES, Some(rule(name, dataset)))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        assert_eq!(reply.body["dataset"], stored);
        ids.push(reply.body["id"].as_str().unwrap().to_owned());
    }
    let bad = app
        .call(Method::POST, RULES, RULES, Some(rule("bad", Some("a b"))))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    assert_eq!(bad.body["error"]["field"], "dataset", "{}", bad.body);
    for (value, dataset) in [(0.95, None), (0.5, Some("canary")), (0.97, Some("prod"))] {
        let mut sample = json!({"model": "fraud", "version": "v1", "metric": "accuracy",
            "value": value, "timestamp": 1_714_564_800_000_i64});
        if let Some(dataset) = dataset {
            sample["dataset"] = json!(dataset);
        }
        let reply = app.call(Method::POST, METRICS, METRICS, Some(sample)).await;
        assert!(reply.status.is_success(), "{}", reply.body);
    }
    let path = "/api/v1/models/fraud/versions/v1/evaluate";
    let reply = app.call(Method::POST, EVALUATE, path, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let alerts = app
        .call(
            Method::GET,
            ALERTS,
            "/api/v1/alerts?model=fraud&hours=all",
            None,
        )
        .await;
    let mut fired: Vec<(String, String)> = alerts.body["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            assert!(
                a["message"].as_str().unwrap().contains("on dataset canary"),
                "{a}"
            );
            (
                a["rule_id"].as_str().unwrap().to_owned(),
                a["dataset"].as_str().unwrap_or("default").to_owned(),
            )
        })
        .collect();
    fired.sort();
    assert_eq!(
        fired,
        [
            (ids[0].clone(), "canary".to_owned()),
            (ids[1].clone(), "canary".to_owned())
        ]
    );
    // Moved to each dataset, the prod rule replays prod and the others apart.
    let rule_path = format!("/api/v1/rules/{}", ids[2]);
    let reply = app
        .call(
            Method::PATCH,
            "/api/v1/rules/{id}",
            &rule_path,
            Some(json!({"dataset": "*"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["dataset"], "*");
    let backtest = |query: &str| {
        format!(
            "/api/v1/rules/{}/backtest?from=1714564000000&to=1714565000000{query}",
            ids[3]
        )
    };
    const BACKTEST: &str = "/api/v1/rules/{id}/backtest";
    let own = app.call(Method::POST, BACKTEST, &backtest(""), None).await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.body);
    assert_eq!(own.body["versions"].as_array().unwrap().len(), 1);
    assert_eq!(own.body["versions"][0]["alerts"], 0);
    let each = app
        .call(Method::POST, BACKTEST, &backtest("&dataset=*"), None)
        .await;
    assert_eq!(each.status, StatusCode::OK, "{}", each.body);
    let replayed: Vec<(Value, Value)> = each.body["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["dataset"].clone(), v["alerts"].clone()))
        .collect();
    assert_eq!(
        replayed,
        [
            (Value::Null, json!(0)),
            (json!("canary"), json!(1)),
            (json!("prod"), json!(0))
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_degradation_and_compare() {
    let app = spawn_app().await;
    let mut samples = Vec::new();
    for i in 0..48 {
        let t = NOW_MS - (48 - i) * 1_800_000;
        samples.push(json!({"model": "fraud", "version": "v1", "metric": "accuracy", "value": 0.95 - (i as f64) * 0.002, "timestamp": t}));
        samples.push(json!({"model": "fraud", "version": "v2", "metric": "accuracy", "value": 0.96, "timestamp": t}));
    }
    app.call(
        Method::POST,
        METRICS,
        METRICS,
        Some(json!({"samples": samples})),
    )
    .await;
    let route = "/api/v1/models/{model}/versions/{version}/history";
    let reply = app
        .call(
            Method::GET,
            route,
            "/api/v1/models/fraud/versions/v1/history?hours=24",
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let reply = app
        .call(
            Method::GET,
            route,
            "/api/v1/models/fraud/versions/v1/history?hours=-1",
            None,
        )
        .await;
    assert_eq!(reply.body["error"]["field"], "hours");
    let route = "/api/v1/models/{model}/versions/{version}/degradation";
    let reply = app.call(Method::GET, route, "/api/v1/models/fraud/versions/v1/degradation?metric=accuracy&baseline_hours=12&comparison_hours=6", None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["results"].as_array().unwrap().len(), 1);
    let reply = app
        .call(
            Method::GET,
            route,
            "/api/v1/models/fraud/versions/v9/degradation?metric=accuracy",
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);
    let route = "/api/v1/models/{model}/compare";
    let reply = app
        .call(
            Method::GET,
            route,
            "/api/v1/models/fraud/compare?a=v1&b=v2&metric=accuracy",
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let reply = app
        .call(
            Method::GET,
            route,
            "/api/v1/models/fraud/compare?a=v1&metric=accuracy",
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
}

/// Without a notification worker (the binary's tests cover one): no channels, and the
/// delivery listing says the server does not deliver, both as documented.
#[tokio::test]
async fn channels_and_notifications_without_a_worker() {
    let app = spawn_app().await;
    let reply = app
        .call(Method::GET, "/api/v1/channels", "/api/v1/channels", None)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, json!({"channels": []}));
    let reply = app
        .call(
            Method::GET,
            "/api/v1/notifications",
            "/api/v1/notifications?status=failed",
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

/// Where `schema` (and the schemas inside it) leaves a value unconstrained: an object
/// with no properties or a schema with no type at all (utoipa's `Object`, a `Value`).
fn bare_schemas(schema: &Value, at: &str, found: &mut Vec<String>) {
    let Some(fields) = schema.as_object() else {
        return;
    };
    if fields.contains_key("$ref") {
        return;
    }
    let types: Vec<&str> = match fields.get("type") {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let shaped = [
        "properties",
        "additionalProperties",
        "oneOf",
        "allOf",
        "anyOf",
        "enum",
    ]
    .iter()
    .any(|key| fields.contains_key(*key));
    if !shaped && (types.is_empty() || types.contains(&"object")) {
        found.push(at.to_owned());
    }
    for (name, property) in fields
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        bare_schemas(property, &format!("{at}.{name}"), found);
    }
    for key in ["oneOf", "allOf", "anyOf"] {
        for (i, member) in fields
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            bare_schemas(member, &format!("{at}.{key}[{i}]"), found);
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(inner) = fields.get(key) {
            bare_schemas(inner, &format!("{at}.{key}"), found);
        }
    }
}

/// Every JSON body of the API has a complete schema (issue 18): no bare `object`, no
/// untyped value, in the responses, the request bodies and every component they use.
#[test]
fn openapi_has_no_bare_object() {
    let doc = serde_json::to_value(modelwatch_http::openapi()).unwrap();
    let mut found = Vec::new();
    for (route, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for (status, response) in operation["responses"].as_object().unwrap() {
                if let Some(schema) = response["content"]["application/json"].get("schema") {
                    let at = format!("{method} {route} {status}");
                    // The document itself: OpenAPI's schema, not repeated.
                    let at = at.replace("get /api/openapi.json 200", "document");
                    bare_schemas(schema, &at, &mut found);
                }
            }
            if let Some(schema) =
                operation["requestBody"]["content"]["application/json"].get("schema")
            {
                bare_schemas(schema, &format!("{method} {route} request"), &mut found);
            }
        }
    }
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        bare_schemas(schema, name, &mut found);
    }
    found.retain(|at| !at.starts_with("document."));
    assert!(found.is_empty(), "bare schemas left: {found:#?}");
}

#[test]
fn openapi_lists_every_route_with_its_methods() {
    let doc = serde_json::to_value(modelwatch_http::openapi()).unwrap();
    let expected: &[(&str, &str)] = &[
        ("/api/v1/metrics", "post"),
        ("/api/v1/models", "get"),
        ("/api/v1/models/{model}/versions", "get"),
        (SERIES, "get"),
        ("/api/v1/predictions", "post"),
        ("/api/v1/predictions/labels", "post"),
        ("/api/v1/models/{model}/prediction-config", "get"),
        ("/api/v1/models/{model}/prediction-config", "put"),
        (
            "/api/v1/models/{model}/versions/{version}/prediction-windows/{start}",
            "get",
        ),
        ("/api/v1/events", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
        ("/write", "post"),
        ("/api/v2/write", "post"),
        ("/api/openapi.json", "get"),
        ("/api/v1/models/{model}/versions/{version}/history", "get"),
        ("/api/v1/models/{model}/versions/{version}/analysis", "get"),
        (
            "/api/v1/models/{model}/versions/{version}/degradation",
            "get",
        ),
        ("/api/v1/models/{model}/compare", "get"),
        ("/api/v1/models/{model}/versions/{version}/evaluate", "post"),
        ("/api/v1/rules", "get"),
        ("/api/v1/rules", "post"),
        ("/api/v1/rules/{id}", "get"),
        ("/api/v1/rules/{id}", "patch"),
        ("/api/v1/rules/{id}", "delete"),
        ("/api/v1/rules/{id}/backtest", "post"),
        ("/api/v1/rules/backtest", "post"),
        ("/api/v1/alerts", "get"),
        ("/api/v1/alerts/summary", "get"),
        ("/api/v1/alerts/{id}", "get"),
        ("/api/v1/alerts/{id}/acknowledge", "post"),
        ("/api/v1/alerts/{id}/resolve", "post"),
        ("/api/v1/alerts/{id}/history", "get"),
        ("/api/v1/silences", "get"),
        ("/api/v1/silences", "post"),
        ("/api/v1/silences/{id}", "delete"),
        ("/api/v1/channels", "get"),
        ("/api/v1/channels/{name}/test", "post"),
        ("/api/v1/notifications", "get"),
        ("/api/v1/session", "get"),
        ("/api/v1/session", "post"),
        ("/api/v1/session", "delete"),
        ("/api/v1/query", "get"),
        ("/api/v1/query", "post"),
        ("/api/v1/query_range", "get"),
        ("/api/v1/query_range", "post"),
        ("/api/v1/series", "get"),
        ("/api/v1/series", "post"),
        ("/api/v1/labels", "get"),
        ("/api/v1/labels", "post"),
        ("/api/v1/label/{name}/values", "get"),
        ("/api/v1/status/buildinfo", "get"),
        ("/api/v1/series/aggregate", "get"),
        ("/api/v1/write", "post"),
        ("/api/v1/import", "post"),
        ("/ping", "get"),
        ("/health", "get"),
        ("/ready", "get"),
        ("/query", "get"),
        ("/query", "post"),
        ("/api/v2/query", "post"),
    ];
    for (path, method) in expected {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing"
        );
    }
    let documented: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum();
    assert_eq!(
        documented,
        expected.len(),
        "a route is documented but not listed here"
    );
}

/// The alert listing's and summary's parameters as the document gives them: the cursor,
/// the page's `next_cursor`, and `hours` as a number or `all` on both routes.
#[test]
fn openapi_documents_alert_cursors_and_hours() {
    let doc = serde_json::to_value(modelwatch_http::openapi()).unwrap();
    let parameter = |path: &str, name: &str| -> Value {
        doc["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("GET {path} does not document {name}"))
            .clone()
    };
    let names = |path: &str| -> Vec<String> {
        doc["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        names("/api/v1/alerts"),
        ["model", "version", "status", "severity", "hours", "limit", "cursor", "offset"]
    );
    assert_eq!(names("/api/v1/alerts/summary"), ["model", "hours"]);
    for path in ["/api/v1/alerts", "/api/v1/alerts/summary"] {
        let hours = parameter(path, "hours");
        assert_eq!(
            hours["schema"]["pattern"], "^([0-9]*[.]?[0-9]+|all)$",
            "{path}"
        );
    }
    let cursor = parameter("/api/v1/alerts", "cursor");
    assert!(cursor["description"]
        .as_str()
        .unwrap()
        .contains("next_cursor"));
    let page = &doc["components"]["schemas"]["AlertPage"]["properties"];
    assert!(page["next_cursor"]["description"]
        .as_str()
        .unwrap()
        .contains("cursor"));
}

/// A real SQLite store whose range reads take `delay`: the fault that makes a request
/// outlive the server's per-request time-out.
#[derive(Debug)]
struct SlowReads {
    inner: Arc<dyn modelwatch_store::MetricStore>,
    delay: Duration,
    /// Range reads started.
    reads: std::sync::atomic::AtomicUsize,
}

impl SlowReads {
    fn over(inner: &Arc<dyn modelwatch_store::MetricStore>, delay: Duration) -> Arc<SlowReads> {
        Arc::new(SlowReads {
            inner: Arc::clone(inner),
            delay,
            reads: Default::default(),
        })
    }

    fn reads(&self) -> usize {
        self.reads.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl modelwatch_store::MetricStore for SlowReads {
    async fn append(
        &self,
        samples: Vec<modelwatch_core::Sample>,
    ) -> Result<(), modelwatch_store::StoreError> {
        self.inner.append(samples).await
    }
    async fn range(
        &self,
        series: &modelwatch_core::SeriesKey,
        range: modelwatch_core::TimeRange,
    ) -> Result<Vec<modelwatch_core::Point>, modelwatch_store::StoreError> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        self.inner.range(series, range).await
    }
    /// Pages of one point: a long read is many slow reads.
    async fn page_end(
        &self,
        series: &modelwatch_core::SeriesKey,
        range: modelwatch_core::TimeRange,
        _target: usize,
    ) -> Result<Timestamp, modelwatch_store::StoreError> {
        self.inner.page_end(series, range, 1).await
    }
    async fn latest(
        &self,
        series: &modelwatch_core::SeriesKey,
    ) -> Result<Option<modelwatch_core::Point>, modelwatch_store::StoreError> {
        self.inner.latest(series).await
    }
    async fn list_series(
        &self,
        filter: &modelwatch_store::SeriesFilter,
    ) -> Result<Vec<modelwatch_store::SeriesInfo>, modelwatch_store::StoreError> {
        self.inner.list_series(filter).await
    }
    async fn delete_samples_before(
        &self,
        cutoff: Timestamp,
    ) -> Result<u64, modelwatch_store::StoreError> {
        self.inner.delete_samples_before(cutoff).await
    }
    async fn define_metric(
        &self,
        definition: modelwatch_core::MetricDefinition,
    ) -> Result<(), modelwatch_store::StoreError> {
        self.inner.define_metric(definition).await
    }
    async fn custom_metrics(
        &self,
    ) -> Result<Vec<modelwatch_core::MetricDefinition>, modelwatch_store::StoreError> {
        self.inner.custom_metrics().await
    }
}

/// Serves the whole application on an ephemeral port, every response checked against the
/// document ([`conform`]).
async fn serve_state(state: AppState) -> (String, Violations) {
    serve_checked(modelwatch_http::router(state)).await
}

/// A store whose every range read takes `delay`, read a point at a time (the memory
/// store's pages are exact), holding ten accuracy samples of fraud v1 in the last minutes.
async fn slow_app(delay: Duration, limits: Limits) -> (String, Arc<SlowReads>) {
    let stores = modelwatch_store::open("memory").await.unwrap();
    let samples: Vec<modelwatch_core::Sample> = (0..10)
        .map(|i| {
            serde_json::from_value::<modelwatch_http::wire::SampleInput>(sample(
                "accuracy",
                0.9,
                NOW_MS - 600_000 + i * 1000,
            ))
            .unwrap()
            .into_sample(Timestamp::from_millis(NOW_MS).unwrap())
        })
        .collect();
    stores.metrics.append(samples).await.unwrap();
    let slow = SlowReads::over(&stores.metrics, delay);
    let store: Arc<dyn modelwatch_store::MetricStore> = slow.clone();
    let state = AppState::new(
        store,
        None,
        limits,
        Clock::new(|| Timestamp::from_millis(NOW_MS).unwrap()),
        None,
    );
    (serve_state(state).await.0, slow)
}

const SLOW_SERIES: &str = "/api/v1/models/fraud/versions/v1/metrics/accuracy";

/// A read over its time-out is answered 503 with Retry-After, and stops reading: the
/// pages after the time-out are never read (issue 15: after a 503 the work went on).
#[tokio::test]
async fn a_request_over_the_time_out_gets_503_stops_reading_and_the_server_keeps_serving() {
    let (base, slow) = slow_app(
        Duration::from_millis(100),
        Limits {
            request_timeout: Duration::from_millis(350),
            ..Limits::default()
        },
    )
    .await;
    let client = reqwest::Client::new();
    let started = std::time::Instant::now();
    let slow_read = client
        .get(format!("{base}{SLOW_SERIES}"))
        .send()
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(slow_read.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(slow_read.headers()["retry-after"], "1");
    let body: Value = slow_read.json().await.unwrap();
    assert_eq!(body["error"]["code"], "timeout", "{body}");
    assert!(
        waited >= Duration::from_millis(350) && waited < Duration::from_secs(2),
        "answered after {waited:?}"
    );
    let read = slow.reads();
    assert!((2..=5).contains(&read), "{read} pages before the time-out");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(slow.reads(), read, "reading went on after the 503");
    // The time-out ended that request only: the next ones are served.
    let models = client
        .get(format!("{base}/api/v1/models"))
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), StatusCode::OK);
    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

/// Expensive reads beyond those running and waiting are answered 429 with Retry-After at
/// once; a client that gives up stops its read; the turns come back.
#[tokio::test]
async fn expensive_reads_beyond_the_limits_are_429_and_a_client_that_gives_up_stops_its_read() {
    let (base, slow) = slow_app(
        Duration::from_millis(50),
        Limits {
            reads: modelwatch_http::admission::ReadLimits {
                concurrent: 1,
                queued: 1,
            },
            ..Limits::default()
        },
    )
    .await;
    let client = reqwest::Client::new();
    let get = || client.get(format!("{base}{SLOW_SERIES}")).send();
    let (running, waiting) = (tokio::spawn(get()), tokio::spawn(get()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refused = get().await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers()["retry-after"], "1");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_requests", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_expensive_reads"),
        "{body}"
    );
    for answer in [running, waiting] {
        let answer = answer.await.unwrap().unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["count"], 10, "{body}");
    }
    // A client that gives up: its read stops at the next page.
    let before = slow.reads();
    let gave_up = tokio::time::timeout(Duration::from_millis(180), get()).await;
    assert!(gave_up.is_err());
    tokio::time::sleep(Duration::from_millis(150)).await;
    let stopped_at = slow.reads();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        slow.reads(),
        stopped_at,
        "reading went on for a client gone"
    );
    assert!(stopped_at - before < 10, "{} pages", stopped_at - before);
    let again = get().await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
}

/// An alert of rule_00000001 on fraud `version` that fired `ago_ms` before now, at
/// `severity`; resolved 30 s after it fired unless `open`.
fn stored_alert(n: u32, version: &str, ago_ms: i64, severity: &str, open: bool) -> Value {
    let fired = NOW_MS - ago_ms;
    let mut alert = json!({"id": format!("alert_{n:08x}"), "rule_id": "rule_00000001",
        "rule_name": "Low accuracy", "model": "fraud", "version": version, "metric": "accuracy",
        "severity": severity, "status": if open { "active" } else { "resolved" }, "message": "m",
        "value": 0.5, "worst_value": 0.5,
        "trigger": {"condition_type": "threshold", "comparison_operator": "lt", "threshold_value": 0.9},
        "first_seen": fired, "last_seen": fired, "occurrences": 1, "notified": false});
    if !open {
        alert["resolved_by"] = json!("ana");
        alert["resolved_at"] = json!(fired + 30_000);
    }
    alert
}

const ALERTS: &str = "/api/v1/alerts";
const HOUR: i64 = 3_600_000;

/// Stores `alerts` (from [`stored_alert`]) as a migration stores them, so their times
/// can be in the past.
async fn import_alerts(app: &TestServer, alerts: Vec<Value>) {
    let rows = modelwatch_store::alerts::AlertingRows {
        alerts: alerts
            .into_iter()
            .map(|a| modelwatch_store::alerts::records::deserialize_alert(a).unwrap())
            .collect(),
        ..Default::default()
    };
    app.stores.alerts.import_alerting(rows).await.unwrap();
}

/// 150 alerts, one an hour back from now, every other one still open (open alerts are
/// alive now, so every window has them), severities in turn; and one of v2 three weeks
/// ago.
async fn import_151_alerts(app: &TestServer) {
    let severities = ["low", "medium", "high", "critical"];
    let mut alerts: Vec<Value> = (0..150u32)
        .map(|i| {
            let severity = severities[i as usize % 4];
            stored_alert(
                i + 1,
                "v1",
                i64::from(i) * HOUR + 60_000,
                severity,
                i % 2 == 0,
            )
        })
        .collect();
    alerts.push(stored_alert(1000, "v2", 21 * 24 * HOUR, "critical", false));
    import_alerts(app, alerts).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_listing_reaches_any_time_and_counts_every_page() {
    let app = spawn_app().await;
    import_151_alerts(&app).await;
    let get = |query: &'static str| {
        let app = &app;
        async move {
            app.call(Method::GET, ALERTS, &format!("{ALERTS}{query}"), None)
                .await
        }
    };

    // Any time: all 151, over two pages, counted by severity over both.
    let first = get("?hours=all").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.body["total"], 151);
    assert_eq!(first.body["alerts"].as_array().unwrap().len(), 100);
    assert_eq!(first.body["next_offset"], 100);
    assert_eq!(
        first.body["by_severity"],
        json!({"low": 38, "medium": 38, "high": 37, "critical": 38})
    );
    let second = get("?hours=all&offset=100").await;
    assert_eq!(second.body["alerts"].as_array().unwrap().len(), 51);
    assert_eq!(second.body["next_offset"], Value::Null);
    assert_eq!(second.body["by_severity"], first.body["by_severity"]);
    assert_eq!(second.body["alerts"][50]["id"], "alert_000003e8");

    // The default window is the last 24 hours: the 75 open alerts and the 12 resolved in
    // it (fired 1, 3, …, 23 hours ago). Seven days reach back to the 84 resolved hours.
    assert_eq!(get("").await.body["total"], 75 + 12);
    assert_eq!(get("?hours=24").await.body["total"], 75 + 12);
    assert_eq!(get("?hours=168").await.body["total"], 150);
    // Open: not resolved, whatever the window.
    let open = get("?status=open&hours=all&limit=1000").await;
    assert_eq!(open.body["total"], 75);
    assert!(open.body["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["status"] == "active"));
    assert_eq!(
        open.body["by_severity"],
        json!({"low": 38, "medium": 0, "high": 37, "critical": 0})
    );
    // One version's alerts.
    let v2 = get("?version=v2&hours=all").await;
    assert_eq!(v2.body["total"], 1);
    assert_eq!(v2.body["by_severity"]["critical"], 1);

    // Bad input is named: a bad `hours`, and a parameter the route does not take (the
    // dashboard once sent `from`, which was silently ignored).
    // Fractions of an hour, as everywhere `hours` is taken.
    assert_eq!(get("?hours=1.5").await.status, StatusCode::OK);
    for query in [
        "?hours=0",
        "?hours=-3",
        "?hours=ever",
        "?hours=1e3",
        "?hours=inf",
    ] {
        let reply = get(query).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(
            reply.body["error"]["field"], "hours",
            "{query}: {}",
            reply.body
        );
    }
    let reply = get("?from=1714000000000").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.body["error"]["field"], "from", "{}", reply.body);
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`hours`"),
        "the message lists what the route takes: {}",
        reply.body
    );
    let reply = get("?status=closed").await;
    assert_eq!(reply.body["error"]["field"], "status");
}

/// The ids of a listing page's alerts.
fn page_ids(page: &Value) -> Vec<String> {
    page["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursor_paging_lists_every_alert_once_while_alerts_fire() {
    let app = spawn_app().await;
    import_151_alerts(&app).await;
    let get = |query: String| {
        let app = &app;
        async move {
            let reply = app
                .call(Method::GET, ALERTS, &format!("{ALERTS}{query}"), None)
                .await;
            assert_eq!(reply.status, StatusCode::OK, "{query}: {}", reply.body);
            reply
        }
    };
    let before: Vec<String> = page_ids(&get("?hours=all&limit=1000".into()).await.body);
    assert_eq!(before.len(), 151);

    // Offset paging under churn: an alert fired between two pages shifts the second page
    // by one, so the first page's last alert comes again.
    let first = get("?hours=all&limit=40".into()).await;
    import_alerts(&app, vec![stored_alert(2000, "v1", 1000, "high", true)]).await;
    let second = get("?hours=all&limit=40&offset=40".into()).await;
    assert_eq!(page_ids(&second.body)[0], page_ids(&first.body)[39]);

    // Cursor paging under the same churn: a newer alert fired mid-walk belongs before the
    // pages already read and is not listed; an older one (an import, a late evaluation)
    // belongs after them and is listed once. Every alert there at the start is listed
    // exactly once, in the listing's order.
    let mut walked: Vec<String> = Vec::new();
    let mut query = "?hours=all&limit=40".to_owned();
    let mut pages = 0;
    loop {
        let page = get(query.clone()).await;
        assert_eq!(page.body["offset"], walked.len() + usize::from(pages > 0));
        walked.extend(page_ids(&page.body));
        pages += 1;
        if pages == 1 {
            import_alerts(
                &app,
                vec![
                    stored_alert(2001, "v1", 500, "low", true),
                    stored_alert(2002, "v1", 30 * 24 * HOUR, "low", false),
                ],
            )
            .await;
        }
        // The counts are over every match, whichever page.
        assert_eq!(page.body["total"], if pages == 1 { 152 } else { 154 });
        match page.body["next_cursor"].as_str() {
            Some(cursor) => {
                assert_eq!(page.body["next_offset"], walked.len() + pages.min(2) - 1);
                query = format!("?hours=all&limit=40&cursor={cursor}");
            }
            None => {
                assert_eq!(page.body["next_offset"], Value::Null);
                break;
            }
        }
    }
    assert_eq!(pages, 4);
    let mut expected: Vec<String> = vec!["alert_000007d0".into()];
    expected.extend(before);
    expected.push("alert_000007d2".into());
    assert_eq!(walked, expected, "every alert once, newest first");

    // A cursor past the last alert: an empty last page, still counting every match.
    let last = get("?hours=all&cursor=0.alert_ffffffff".into()).await;
    assert_eq!(last.body["alerts"], json!([]));
    assert_eq!(last.body["total"], 154);
    assert_eq!(last.body["next_cursor"], Value::Null);
    // Filters apply after a cursor as on the first page.
    let cursor = format!("{}.alert_00000001", NOW_MS - 60_000);
    let open = get(format!("?status=open&hours=all&limit=1000&cursor={cursor}")).await;
    assert_eq!(open.body["total"], 77);
    assert_eq!(open.body["alerts"].as_array().unwrap().len(), 74);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_cursor_or_a_cursor_with_an_offset_is_a_400_naming_it() {
    let app = spawn_app().await;
    import_151_alerts(&app).await;
    let first = app
        .call(Method::GET, ALERTS, "/api/v1/alerts?hours=all", None)
        .await;
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    let mut cases = vec![(format!("cursor={cursor}&offset=100"), "offset")];
    for bad in [
        "",
        "abc",
        "1714561200000",
        "1714561200000.",
        ".alert_00000001",
        "-1.alert_00000001",
        "99999999999999999999.alert_00000001",
        "1714561200000.rule_00000001",
        "1714561200000.alert_XYZ",
        "1714561200000.alert_00000001.5",
    ] {
        cases.push((format!("cursor={bad}"), "cursor"));
    }
    for (query, field) in cases {
        let reply = app
            .call(Method::GET, ALERTS, &format!("{ALERTS}?{query}"), None)
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(
            reply.body["error"]["field"], field,
            "{query}: {}",
            reply.body
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_summary_reaches_any_time() {
    let app = spawn_app().await;
    import_151_alerts(&app).await;
    const SUMMARY: &str = "/api/v1/alerts/summary";
    let get = |query: &'static str| {
        let app = &app;
        async move {
            app.call(Method::GET, SUMMARY, &format!("{SUMMARY}{query}"), None)
                .await
        }
    };
    // As the listing counts them: 75 open and 12 resolved in the last 24 hours, all 151
    // at any time.
    assert_eq!(get("").await.body["total_count"], 75 + 12);
    let all = get("?hours=all").await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.body);
    assert_eq!(all.body["total_count"], 151);
    assert_eq!(all.body["resolved_count"], 76);
    assert_eq!(all.body["critical_count"], 38);
    assert_eq!(get("?hours=168&model=fraud").await.body["total_count"], 150);
    assert_eq!(get("?hours=0.5").await.status, StatusCode::OK);
    for query in ["?hours=0", "?hours=ever", "?hours=1e3", "?hours=-3"] {
        let reply = get(query).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(
            reply.body["error"]["field"], "hours",
            "{query}: {}",
            reply.body
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listing_names_an_unknown_query_parameter() {
    let app = spawn_app().await;
    for (route, path) in [
        (RULES, "/api/v1/rules?modle=fraud"),
        ("/api/v1/silences", "/api/v1/silences?expired=true"),
        ("/api/v1/notifications", "/api/v1/notifications?modle=x"),
        (
            SERIES,
            "/api/v1/models/fraud/versions/v1/metrics/accuracy?since=0",
        ),
        // Routes that take no parameter at all (issue 15, point 7).
        ("/api/v1/models", "/api/v1/models?model=fraud"),
        (
            "/api/v1/models/{model}/versions",
            "/api/v1/models/fraud/versions?version=v1",
        ),
        ("/api/v1/channels", "/api/v1/channels?kind=webhook"),
        ("/api/v1/events", "/api/v1/events?since=0"),
        ("/metrics", "/metrics?name=x"),
        ("/readyz", "/readyz?verbose=1"),
        ("/healthz", "/healthz?verbose=1"),
    ] {
        let reply = app.call(Method::GET, route, path, None).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{path}: {}",
            reply.body
        );
        let field = path.split_once('?').unwrap().1.split('=').next().unwrap();
        assert_eq!(
            reply.body["error"]["field"], field,
            "{path}: {}",
            reply.body
        );
    }
    // A write too, before its body is read; the InfluxDB routes alone take any.
    let reply = app
        .call(
            Method::POST,
            METRICS,
            "/api/v1/metrics?dry_run=1",
            Some(sample("accuracy", 0.5, 1)),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    assert_eq!(reply.body["error"]["field"], "dry_run");
    assert_eq!(
        reply.body["error"]["message"],
        "dry_run: unknown parameter: this route takes none"
    );
    let reply = app
        .call(Method::GET, "/api/v1/models", "/api/v1/models", None)
        .await;
    assert_eq!(reply.body["models"], json!([]), "nothing was stored");
    let response = app
        .post_raw(
            "/write?db=x&rp=autogen&u=me&p=secret&consistency=one",
            b"model_metrics,model=m,version=v accuracy=0.5".to_vec(),
            &[],
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
}

/// Answers made by the framework rather than a handler (a method a route does not take,
/// a body encoding it cannot read) carry the JSON error body too (issue 15, point 7).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_not_allowed_and_unsupported_media_type_have_the_json_error_body() {
    let app = spawn_app().await;
    let response = app
        .client
        .delete(format!("{}/api/v1/models", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let allow = response.headers()["allow"].to_str().unwrap().to_owned();
    assert!(allow.contains("GET"), "{allow}");
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("does not take DELETE"),
        "{body}"
    );

    for encoding in ["br", "deflate", "compress"] {
        let response = app
            .post_raw(
                METRICS,
                b"\x00\x01garbage".to_vec(),
                &[
                    ("content-type", "application/json"),
                    ("content-encoding", encoding),
                ],
            )
            .await;
        assert_eq!(
            response.status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{encoding}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unsupported_media_type", "{body}");
        assert!(
            !body["error"]["message"].as_str().unwrap().is_empty(),
            "{body}"
        );
    }

    // A rule's body that is not JSON at all: 415 from the JSON extractor, with the body.
    let response = app
        .post_raw(RULES, b"{}".to_vec(), &[("content-type", "text/plain")])
        .await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert!(status.is_client_error(), "{status}");
    assert!(body["error"]["code"].is_string(), "{body}");
}

/// Line protocol: integers that do not fit are errors, a metric twice on a line is an
/// error, and a value the store refuses is named by its line and field, not a sample
/// index (issue 15, point 7).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn line_protocol_errors_name_the_line_and_field() {
    let app = spawn_app().await;
    for (body, field, says) in [
        (
            "model_metrics,model=m,version=v latency=99999999999999999999999i",
            "line 1: field latency",
            "64-bit signed integer",
        ),
        (
            "model_metrics,model=m,version=v throughput=-5u",
            "line 1: field throughput",
            "64-bit unsigned integer",
        ),
        (
            "model_metrics,model=m,version=v accuracy=0.9,accuracy=0.8",
            "line 1: field accuracy",
            "twice",
        ),
        (
            "# comment\nmodel_metrics,model=m,version=v accuracy=0.5\n\
             model_metrics,model=m,version=v latency=3i,accuracy=3",
            "line 3: field accuracy",
            "",
        ),
    ] {
        let response = app.post_raw("/write", body.as_bytes().to_vec(), &[]).await;
        let reply = app.reply(Method::POST, "/write", response).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(reply.body["error"]["field"], field, "{}", reply.body);
        let message = reply.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{message}");
        assert!(!message.contains("samples["), "{message}");
    }
    let reply = app
        .call(Method::GET, "/api/v1/models", "/api/v1/models", None)
        .await;
    assert_eq!(reply.body["models"], json!([]), "nothing was stored");
}

/// Timestamps that are neither RFC 3339 text nor integer milliseconds, and empty names,
/// get one clear message each (issue 15, point 7: "untagged enum Wire", and
/// "metric: metric: must not be empty").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_timestamps_and_empty_names_get_one_clear_message() {
    let app = spawn_app().await;
    for timestamp in ["1e20", "1.5", "true", "[1]", "18446744073709551616"] {
        let body = format!(
            r#"{{"model":"m","version":"v","metric":"accuracy","value":0.5,"timestamp":{timestamp}}}"#
        );
        let response = app
            .post_raw(
                METRICS,
                body.into_bytes(),
                &[("content-type", "application/json")],
            )
            .await;
        let reply = app.reply(Method::POST, METRICS, response).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{timestamp}");
        assert_eq!(reply.body["error"]["field"], "timestamp", "{}", reply.body);
        let message = reply.body["error"]["message"].as_str().unwrap();
        assert!(!message.contains("untagged"), "{message}");
        assert!(
            message.contains("RFC 3339") || message.contains("not a number"),
            "{message}"
        );
    }

    let reply = app
        .call(
            Method::POST,
            METRICS,
            METRICS,
            Some(json!({"model": "m", "version": "v", "metric": "", "value": 0.5})),
        )
        .await;
    assert_eq!(reply.body["error"]["field"], "metric");
    assert_eq!(reply.body["error"]["message"], "metric: must not be empty");
    let reply = app
        .call(
            Method::POST,
            METRICS,
            METRICS,
            Some(json!({"samples": [sample("accuracy", 0.5, 1), {"model_name": "", "version": "v", "metric": "accuracy", "value": 0.5}]})),
        )
        .await;
    assert_eq!(reply.body["error"]["field"], "samples[1].model_name");
    assert_eq!(
        reply.body["error"]["message"],
        "samples[1].model_name: must not be empty"
    );
    // Through the JSON extractor of the other routes too.
    let reply = app
        .call(
            Method::POST,
            RULES,
            RULES,
            Some(
                json!({"name": "r", "model": "", "version": "v1", "metric": "accuracy",
                        "condition_type": "threshold", "comparison_operator": "lt",
                        "threshold_value": 0.9, "severity": "high"}),
            ),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    let message = reply.body["error"]["message"].as_str().unwrap();
    assert_eq!(message.matches("model").count(), 1, "{message}");
    assert!(message.contains("must not be empty"), "{message}");
}

/// Every query parameter of every GET route in the OpenAPI document, with hostile values:
/// no answer is a server error or a dropped connection, and a number out of range is a
/// 400 naming its parameter (issue 15: `hours=1e300` panicked).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_query_parameter_value_breaks_a_route() {
    let app = spawn_app().await;
    let reply = app
        .call(
            Method::POST,
            METRICS,
            METRICS,
            Some(sample("accuracy", 0.9, NOW_MS - 60_000)),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let hostile = [
        "1e300",
        "-1e300",
        "-1",
        "0",
        "99999999999999999999999",
        "4294967296",
        "NaN",
        "inf",
        "1.5",
        "",
        "%00",
    ];
    let paths = app.openapi["paths"].as_object().unwrap().clone();
    for (route, operations) in &paths {
        let Some(get) = operations.get("get") else {
            continue;
        };
        if route.contains("events") {
            continue; // a stream: answered at once, never ends
        }
        let path = route
            .replace("{model}", "fraud")
            .replace("{version}", "v1")
            .replace("{metric}", "accuracy")
            .replace(['{', '}'], "");
        let parameters = get["parameters"].as_array().cloned().unwrap_or_default();
        let query: Vec<&Value> = parameters.iter().filter(|p| p["in"] == "query").collect();
        // Required parameters get a good value (the versions to compare: v1 and v1).
        let required = |except: &str| {
            query
                .iter()
                .filter(|p| p["required"] == true && p["name"] != except)
                .map(|p| format!("{}=v1&", p["name"].as_str().unwrap()))
                .collect::<String>()
        };
        for parameter in &query {
            let name = parameter["name"].as_str().unwrap();
            let numeric = matches!(
                parameter["schema"]["type"].as_str(),
                Some("integer" | "number")
            );
            for value in hostile {
                let url = format!("{path}?{}{name}={value}", required(name));
                let reply = app.call(Method::GET, route, &url, None).await;
                assert!(
                    reply.status.is_success() || reply.status.is_client_error(),
                    "{url}: {} {}",
                    reply.status,
                    reply.body
                );
                if numeric && ["1e300", "-1", "99999999999999999999999"].contains(&value) {
                    assert_eq!(
                        reply.status,
                        StatusCode::BAD_REQUEST,
                        "{url}: {}",
                        reply.body
                    );
                    assert_eq!(reply.body["error"]["field"], name, "{url}: {}", reply.body);
                }
            }
        }
    }
}

/// The document of `POST /api/v1/rules` names exactly the fields the endpoint takes: each
/// of `RuleSpec`'s fields, and no field (a name with `_`) it would refuse.
#[tokio::test]
async fn the_rule_documentation_names_only_fields_the_endpoint_accepts() {
    let doc = serde_json::to_value(modelwatch_http::openapi()).unwrap();
    let description = doc["paths"]["/api/v1/rules"]["post"]["requestBody"]["description"]
        .as_str()
        .unwrap()
        .to_owned();
    let spec = serde_json::to_value(modelwatch_core::alerting::RuleSpec::default()).unwrap();
    let fields: Vec<&String> = spec.as_object().unwrap().keys().collect();
    let aliases = ["rule_name", "model_name", "model_version", "metric_type"];
    for field in &fields {
        assert!(
            description.contains(field.as_str()),
            "{field} undocumented: {description}"
        );
    }
    let named: Vec<&str> = description
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.contains('_'))
        .collect();
    let app = spawn_app().await;
    for word in named {
        assert!(
            fields.iter().any(|f| f.as_str() == word) || aliases.contains(&word),
            "documented but refused: {word}"
        );
    }
    // Every documented field together (the seed's names where there are two) is one
    // valid rule.
    let reply = app
        .call(
            Method::POST,
            "/api/v1/rules",
            "/api/v1/rules",
            Some(json!({
                "rule_name": "doc", "model_name": "m", "model_version": "v1",
                "metric_type": "accuracy", "severity": "high", "enabled": true,
                "cooldown_minutes": 5, "notify_channels": [], "for_evaluations": 2,
                "clear_after_evaluations": 2, "auto_resolve": true,
                "threshold_value": 0.9, "comparison_operator": "lt", "clear_threshold": 0.92,
            })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
}

/// Cardinality (issue 15: one line-protocol line with 400,000 fields made 400,000 series
/// and a 36 MB exposition): a write past a series limit is refused whole, 422 naming the
/// limit's configuration key, and `/metrics` shows at most `metrics_series` series.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_limits_refuse_writes_and_bound_the_exposition() {
    let app = spawn_app_limited(
        Limits {
            metrics_series: 3,
            ..Limits::default()
        },
        modelwatch_store::SeriesLimits {
            new_per_batch: 50,
            per_model: 60,
            total: 1_000,
        },
    )
    .await;
    let fields: Vec<String> = (0..400).map(|i| format!("custom_f{i}=0.5")).collect();
    let line = format!(
        "model_metrics,model=fraud,version=v1 {} 1714564800000000000",
        fields.join(",")
    );
    let response = app.post_raw("/write", line.into_bytes(), &[]).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "limit_exceeded", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("400 new series") && message.contains("limits.new_series_per_request"),
        "{message}"
    );
    // Within the batch limit, up to the model's.
    for start in [0, 40] {
        let batch: Vec<Value> = (start..start + 40)
            .map(|i| {
                json!({"model": "fraud", "version": "v1", "metric": format!("custom_m{i}"),
                            "value": 0.5, "timestamp": NOW_MS})
            })
            .collect();
        let reply = app
            .call(
                Method::POST,
                METRICS,
                METRICS,
                Some(json!({"samples": batch})),
            )
            .await;
        if start == 0 {
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        } else {
            assert_eq!(
                reply.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{}",
                reply.body
            );
            let message = reply.body["error"]["message"].as_str().unwrap();
            assert!(message.contains("limits.series_per_model"), "{message}");
        }
    }
    let models = app
        .call(Method::GET, "/api/v1/models", "/api/v1/models", None)
        .await;
    assert_eq!(models.status, StatusCode::OK);
    let exposition = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    let text = exposition.text().await.unwrap();
    let gauges = text
        .lines()
        .filter(|l| l.starts_with("modelwatch_model_metric{"))
        .count();
    assert_eq!(gauges, 3, "{text}");
    assert!(text.contains("modelwatch_series 40"), "{text}");
    assert!(
        text.contains("modelwatch_model_metric_omitted_series 37"),
        "{text}"
    );
}

/// Error bodies echo what the client sent only in part (issue 15: a 5 MB unknown JSON key
/// gave a 15 MB error body): the start and the end, and how much was left out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_bodies_cut_the_input_they_echo() {
    let app = spawn_app().await;
    let key = "k".repeat(5 * 1024 * 1024);
    let body =
        format!(r#"{{"model":"fraud","version":"v1","metric":"accuracy","value":0.5,"{key}":1}}"#);
    let response = app
        .post_raw(
            METRICS,
            body.into_bytes(),
            &[("content-type", "application/json")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let text = response.text().await.unwrap();
    assert!(text.len() < 4_000, "{} bytes", text.len());
    let body: Value = serde_json::from_str(&text).unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("characters left out"), "{message}");
    let name = "m".repeat(6_000);
    let reply = app
        .call(
            Method::GET,
            SERIES,
            &format!("/api/v1/models/{name}/versions/v1/metrics/accuracy"),
            None,
        )
        .await;
    assert!(reply.status.is_client_error(), "{}", reply.status);
    assert!(reply.body.to_string().len() < 4_000);
}

/// The SQLite store, except that a rule's update first loses it to a concurrent delete:
/// a DELETE landing between a PATCH's read and its write.
#[derive(Debug)]
struct DeletedDuringUpdate {
    inner: Arc<dyn modelwatch_store::alerts::AlertStore>,
}

#[async_trait::async_trait]
impl modelwatch_store::alerts::AlertStore for DeletedDuringUpdate {
    async fn insert_rule(&self, rule: Rule) -> Result<(), StoreError> {
        self.inner.insert_rule(rule).await
    }
    async fn update_rule(&self, rule: Rule) -> Result<(), StoreError> {
        assert!(self.inner.delete_rule(&rule.id).await?);
        self.inner.update_rule(rule).await
    }
    async fn delete_rule(&self, id: &RuleId) -> Result<bool, StoreError> {
        self.inner.delete_rule(id).await
    }
    async fn rule(&self, id: &RuleId) -> Result<Option<Rule>, StoreError> {
        self.inner.rule(id).await
    }
    async fn list_rules(&self, model: Option<&ModelName>) -> Result<Vec<Rule>, StoreError> {
        self.inner.list_rules(model).await
    }
    async fn states(&self, model: Option<&ModelName>) -> Result<Vec<StoredState>, StoreError> {
        self.inner.states(model).await
    }
    async fn commit(&self, commits: Vec<AlertCommit>) -> Result<Vec<CommitOutcome>, StoreError> {
        self.inner.commit(commits).await
    }
    async fn alert(&self, id: &AlertId) -> Result<Option<Alert>, StoreError> {
        self.inner.alert(id).await
    }
    async fn alerts_by_id(&self, ids: &[AlertId]) -> Result<Vec<Alert>, StoreError> {
        self.inner.alerts_by_id(ids).await
    }
    async fn list_alerts(&self, filter: &AlertFilter) -> Result<Vec<Alert>, StoreError> {
        self.inner.list_alerts(filter).await
    }
    async fn open_alerts(&self, model: Option<&ModelName>) -> Result<Vec<Alert>, StoreError> {
        self.inner.open_alerts(model).await
    }
    async fn history(&self, id: &AlertId) -> Result<Vec<AlertTransition>, StoreError> {
        self.inner.history(id).await
    }
    async fn notified_since(
        &self,
        since: Timestamp,
    ) -> Result<Vec<(ModelName, Timestamp)>, StoreError> {
        self.inner.notified_since(since).await
    }
    async fn insert_silence(&self, silence: Silence) -> Result<(), StoreError> {
        self.inner.insert_silence(silence).await
    }
    async fn update_silence(&self, silence: Silence) -> Result<(), StoreError> {
        self.inner.update_silence(silence).await
    }
    async fn silence(&self, id: &SilenceId) -> Result<Option<Silence>, StoreError> {
        self.inner.silence(id).await
    }
    async fn list_silences(
        &self,
        ends_after: Option<Timestamp>,
    ) -> Result<Vec<Silence>, StoreError> {
        self.inner.list_silences(ends_after).await
    }
    async fn claim_notifications(
        &self,
        owner: &str,
        now: Timestamp,
        lease: Duration,
        channels: ClaimChannels<'_>,
        limit: usize,
    ) -> Result<Vec<Notification>, StoreError> {
        self.inner
            .claim_notifications(owner, now, lease, channels, limit)
            .await
    }
    async fn finish_notification(
        &self,
        id: i64,
        owner: &str,
        result: DeliveryResult,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.inner.finish_notification(id, owner, result, now).await
    }
    async fn list_notifications(
        &self,
        filter: &NotificationFilter,
    ) -> Result<Vec<Notification>, StoreError> {
        self.inner.list_notifications(filter).await
    }
    async fn recent_notifications(
        &self,
        filter: &NotificationFilter,
        limit: usize,
    ) -> Result<Vec<Notification>, StoreError> {
        self.inner.recent_notifications(filter, limit).await
    }
    async fn delete_finished_notifications(&self, cutoff: Timestamp) -> Result<u64, StoreError> {
        self.inner.delete_finished_notifications(cutoff).await
    }
    async fn import_alerting(&self, rows: AlertingRows) -> Result<(), StoreError> {
        self.inner.import_alerting(rows).await
    }
}

/// A PATCH that loses its rule to a DELETE between reading and writing it is a conflict
/// (409 naming the rule), not an internal error; the rule stays deleted, and a PATCH
/// after the DELETE is an unknown id (404). Issue 18: this was a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_racing_a_delete_is_409_and_a_patch_after_it_404() {
    let dir = tempfile::tempdir().unwrap();
    let stores = modelwatch_store::open(dir.path().join("race.db").to_str().unwrap())
        .await
        .unwrap();
    let racing = Stores {
        alerts: Arc::new(DeletedDuringUpdate {
            inner: Arc::clone(&stores.alerts),
        }),
        ..stores.clone()
    };
    let engine = modelwatch_engine::Engine::new(&racing, Default::default())
        .with_ids(Arc::new(modelwatch_engine::SequentialIds::default()));
    let state = AppState::new(
        Arc::clone(&stores.metrics),
        None,
        Limits::default(),
        Clock::new(|| Timestamp::from_millis(NOW_MS).unwrap()),
        Some(engine),
    );
    let (base, violations) = serve_state(state).await;
    let app = TestServer {
        base,
        client: reqwest::Client::new(),
        stores,
        openapi: serde_json::to_value(modelwatch_http::openapi()).unwrap(),
        violations,
        _dir: dir,
    };
    let rule = json!({"name": "Low accuracy", "model": "fraud", "metric": "accuracy",
        "threshold_value": 0.9, "comparison_operator": "lt"});
    let reply = app.call(Method::POST, RULES, RULES, Some(rule)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let path = format!("/api/v1/rules/{}", reply.body["id"].as_str().unwrap());

    let patch = json!({"cooldown_minutes": 5});
    let reply = app
        .call(Method::PATCH, RULE, &path, Some(patch.clone()))
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.body);
    assert_eq!(reply.body["error"]["code"], "conflict");
    let message = reply.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("rule_") && message.contains("deleted"),
        "{message}"
    );
    assert!(app.stores.alerts.list_rules(None).await.unwrap().is_empty());

    let reply = app.call(Method::PATCH, RULE, &path, Some(patch)).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);
}
