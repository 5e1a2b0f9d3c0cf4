//! The part of MLflow's REST API 2.0 the import reads, over HTTP: registered models,
//! their versions, a run's metric keys and each metric's full history.
//!
//! Every listing is followed through all of its pages (`next_page_token`). The wire
//! structs accept what MLflow's JSON encoder produces: int64 fields as numbers (MLflow
//! converts them) or as strings (protobuf's own JSON form), non-finite doubles as the
//! strings `"NaN"`, `"Infinity"`, `"-Infinity"`, and empty lists left out.

use std::fmt;
use std::time::Duration;

use reqwest::{StatusCode, Url};
use serde::de::{self, DeserializeOwned, Deserializer};
use serde::Deserialize;

/// Page sizes: MLflow 3 accepts at most 1,000 registered models and 25,000 metric values
/// per page (the largest, so a history comes in as few round trips as the server allows),
/// and 10,000 model versions is its own default page.
const REGISTERED_MODELS_PAGE: u32 = 1_000;
const MODEL_VERSIONS_PAGE: u32 = 10_000;
const METRIC_HISTORY_PAGE: u32 = 25_000;

/// A listing that keeps returning pages past this many is taken for a server that
/// repeats its page token, rather than looping forever.
const MAX_PAGES: usize = 100_000;

/// Why talking to the tracking server failed.
#[derive(Debug, thiserror::Error)]
pub enum MlflowError {
    #[error("{uri:?} is not the http(s) URL of an MLflow tracking server: {reason}")]
    BadUri { uri: String, reason: String },
    #[error("cannot set up an HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("cannot reach the MLflow tracking server at {uri}")]
    Unreachable {
        uri: String,
        #[source]
        source: reqwest::Error,
    },
    #[error(
        "the MLflow tracking server at {uri} answered {endpoint} with HTTP {status}{error_code}: {message}",
        error_code = .code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default()
    )]
    Api {
        uri: String,
        endpoint: &'static str,
        status: u16,
        /// MLflow's `error_code`, e.g. `RESOURCE_DOES_NOT_EXIST`.
        code: Option<String>,
        message: String,
    },
    #[error(
        "the MLflow tracking server at {uri} sent an unreadable answer to {endpoint}: {reason}"
    )]
    BadResponse {
        uri: String,
        endpoint: &'static str,
        reason: String,
    },
}

impl MlflowError {
    /// MLflow said the thing asked for does not exist (a model, a run). Only MLflow's own
    /// error code counts: a bare 404 may come from a URL that is no MLflow server at all.
    pub fn is_not_found(&self) -> bool {
        matches!(self, MlflowError::Api { code: Some(code), .. } if code == "RESOURCE_DOES_NOT_EXIST")
    }
}

/// Credentials MLflow's own clients take from `MLFLOW_TRACKING_TOKEN` or
/// `MLFLOW_TRACKING_USERNAME` / `MLFLOW_TRACKING_PASSWORD`.
#[derive(Clone, Default)]
pub enum Credentials {
    #[default]
    None,
    Bearer(String),
    Basic {
        username: String,
        password: String,
    },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print a secret, even in a debug dump.
        match self {
            Credentials::None => f.write_str("None"),
            Credentials::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Credentials::Basic { username, .. } => {
                write!(
                    f,
                    "Basic {{ username: {username:?}, password: <redacted> }}"
                )
            }
        }
    }
}

/// A client of one tracking server.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    /// The tracking URI as given (for messages).
    uri: String,
    /// `…/api/2.0/mlflow/`, ending with a slash so endpoints join under it.
    api: Url,
    credentials: Credentials,
    /// The most items asked for per page, below each endpoint's own size.
    page_cap: u32,
}

/// A registered model as listed.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RegisteredModel {
    pub name: String,
}

/// A model version: its number and the run that produced it (none for versions
/// registered from a path outside any run).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ModelVersion {
    pub name: String,
    #[serde(deserialize_with = "string_or_number")]
    pub version: String,
    #[serde(default)]
    pub run_id: Option<String>,
}

/// One logged value of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct MetricValue {
    #[serde(deserialize_with = "double")]
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    #[serde(deserialize_with = "int64")]
    pub timestamp: i64,
    #[serde(default, deserialize_with = "int64")]
    pub step: i64,
}

#[derive(Debug, Deserialize)]
struct SearchRegisteredModels {
    #[serde(default)]
    registered_models: Vec<RegisteredModel>,
    #[serde(default)]
    next_page_token: Option<String>,
}

#[derive(Debug, Deserialize)]
struct GetRegisteredModel {
    registered_model: RegisteredModel,
}

#[derive(Debug, Deserialize)]
struct SearchModelVersions {
    #[serde(default)]
    model_versions: Vec<ModelVersion>,
    #[serde(default)]
    next_page_token: Option<String>,
}

#[derive(Debug, Deserialize)]
struct GetRun {
    run: Run,
}

#[derive(Debug, Deserialize)]
struct Run {
    #[serde(default)]
    data: RunData,
}

#[derive(Debug, Default, Deserialize)]
struct RunData {
    /// The latest value of each metric; only the keys are used.
    #[serde(default)]
    metrics: Vec<MetricKey>,
}

#[derive(Debug, Deserialize)]
struct MetricKey {
    key: String,
}

#[derive(Debug, Deserialize)]
struct GetMetricHistory {
    #[serde(default)]
    metrics: Vec<MetricValue>,
    #[serde(default)]
    next_page_token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error_code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

impl Client {
    /// A client of the server at `uri` (`http://host:5000`, possibly with a path prefix).
    pub fn new(uri: &str, credentials: Credentials) -> Result<Client, MlflowError> {
        let api = api_base(uri)?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // A metric history page of 25,000 values is the largest answer; a minute is
            // far more than a healthy server needs for it.
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("modelwatch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(MlflowError::Client)?;
        Ok(Client {
            http,
            uri: uri.to_owned(),
            api,
            credentials,
            page_cap: u32::MAX,
        })
    }

    /// Asks for at most `items` per page (at least 1), for a proxy that limits answer
    /// sizes; tests use it to make a small registry span several pages.
    pub fn with_page_size(mut self, items: u32) -> Self {
        self.page_cap = items.max(1);
        self
    }

    fn page(&self, endpoint_size: u32) -> String {
        endpoint_size.min(self.page_cap).to_string()
    }

    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// Every registered model (prompts excluded, as MLflow's search does by default).
    pub async fn registered_models(&self) -> Result<Vec<RegisteredModel>, MlflowError> {
        let mut models = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut query = vec![("max_results", self.page(REGISTERED_MODELS_PAGE))];
            query.extend(token.take().map(|t| ("page_token", t)));
            let page: SearchRegisteredModels = self.get("registered-models/search", &query).await?;
            models.extend(page.registered_models);
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(next) => token = Some(next),
                None => return Ok(models),
            }
        }
        Err(self.endless("registered-models/search"))
    }

    /// The registered model named `name`; `Ok(None)` when the server has none.
    pub async fn registered_model(
        &self,
        name: &str,
    ) -> Result<Option<RegisteredModel>, MlflowError> {
        let query = [("name", name.to_owned())];
        match self
            .get::<GetRegisteredModel>("registered-models/get", &query)
            .await
        {
            Ok(found) => Ok(Some(found.registered_model)),
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Every version of the registered model `name`.
    ///
    /// The filter quotes the name in single quotes; callers pass only names modelwatch
    /// accepts, which contain no quote.
    pub async fn model_versions(&self, name: &str) -> Result<Vec<ModelVersion>, MlflowError> {
        let mut versions = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut query = vec![
                ("filter", format!("name='{name}'")),
                ("max_results", self.page(MODEL_VERSIONS_PAGE)),
            ];
            query.extend(token.take().map(|t| ("page_token", t)));
            let page: SearchModelVersions = self.get("model-versions/search", &query).await?;
            versions.extend(page.model_versions);
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(next) => token = Some(next),
                None => return Ok(versions),
            }
        }
        Err(self.endless("model-versions/search"))
    }

    /// The metric keys a run has logged; `Ok(None)` when the server has no such run.
    pub async fn run_metric_keys(&self, run_id: &str) -> Result<Option<Vec<String>>, MlflowError> {
        let query = [("run_id", run_id.to_owned())];
        match self.get::<GetRun>("runs/get", &query).await {
            Ok(found) => Ok(Some(
                found.run.data.metrics.into_iter().map(|m| m.key).collect(),
            )),
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Every logged value of metric `key` of run `run_id`, in the server's order.
    pub async fn metric_history(
        &self,
        run_id: &str,
        key: &str,
    ) -> Result<Vec<MetricValue>, MlflowError> {
        let mut values = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut query = vec![
                ("run_id", run_id.to_owned()),
                ("metric_key", key.to_owned()),
                ("max_results", self.page(METRIC_HISTORY_PAGE)),
            ];
            query.extend(token.take().map(|t| ("page_token", t)));
            let page: GetMetricHistory = self.get("metrics/get-history", &query).await?;
            values.extend(page.metrics);
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(next) => token = Some(next),
                None => return Ok(values),
            }
        }
        Err(self.endless("metrics/get-history"))
    }

    async fn get<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        query: &[(&str, String)],
    ) -> Result<T, MlflowError> {
        let url = self
            .api
            .join(endpoint)
            .map_err(|e| self.bad_response(endpoint, e.to_string()))?;
        let mut request = self.http.get(url).query(query);
        request = match &self.credentials {
            Credentials::None => request,
            Credentials::Bearer(token) => request.bearer_auth(token),
            Credentials::Basic { username, password } => {
                request.basic_auth(username, Some(password))
            }
        };
        let response = request
            .send()
            .await
            .map_err(|source| MlflowError::Unreachable {
                uri: self.uri.clone(),
                source,
            })?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|source| MlflowError::Unreachable {
                uri: self.uri.clone(),
                source,
            })?;
        if !status.is_success() {
            return Err(self.api_error(endpoint, status, &body));
        }
        serde_json::from_slice(&body).map_err(|e| self.bad_response(endpoint, e.to_string()))
    }

    fn api_error(&self, endpoint: &'static str, status: StatusCode, body: &[u8]) -> MlflowError {
        let parsed: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
        let mut message = parsed.message.unwrap_or_else(|| {
            // Not MLflow's JSON error (a proxy's page, say): its start, on one line.
            let text = String::from_utf8_lossy(body);
            let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
            let shown = match text.char_indices().nth(200) {
                Some((cut, _)) => format!("{}…", &text[..cut]),
                None if text.is_empty() => {
                    status.canonical_reason().unwrap_or("no message").to_owned()
                }
                None => text,
            };
            if status == StatusCode::NOT_FOUND {
                format!("{shown} (is this the URL of an MLflow tracking server?)")
            } else {
                shown
            }
        });
        if status == StatusCode::UNAUTHORIZED {
            message.push_str(
                " (modelwatch sends MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and \
                 MLFLOW_TRACKING_PASSWORD, from its environment)",
            );
        }
        MlflowError::Api {
            uri: self.uri.clone(),
            endpoint,
            status: status.as_u16(),
            code: parsed.error_code,
            message,
        }
    }

    fn bad_response(&self, endpoint: &'static str, reason: String) -> MlflowError {
        MlflowError::BadResponse {
            uri: self.uri.clone(),
            endpoint,
            reason,
        }
    }

    fn endless(&self, endpoint: &'static str) -> MlflowError {
        self.bad_response(
            endpoint,
            format!("still more pages after {MAX_PAGES}; the page token does not advance"),
        )
    }
}

/// `…/api/2.0/mlflow/` under the tracking URI, which may carry a path prefix.
fn api_base(uri: &str) -> Result<Url, MlflowError> {
    let bad = |reason: &str| MlflowError::BadUri {
        uri: uri.to_owned(),
        reason: reason.to_owned(),
    };
    let mut url = Url::parse(uri.trim()).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(
            "only http:// and https:// tracking servers can be read (not local file stores or databricks profiles)",
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("it names no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("it must not carry a query or fragment"));
    }
    let path = format!("{}/api/2.0/mlflow/", url.path().trim_end_matches('/'));
    url.set_path(&path);
    Ok(url)
}

/// A double as MLflow writes it: a number, or `"NaN"` / `"Infinity"` / `"-Infinity"`.
fn double<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Wire {
        Number(f64),
        Text(String),
    }
    match Wire::deserialize(deserializer)? {
        Wire::Number(value) => Ok(value),
        Wire::Text(text) => match text.as_str() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            other => other
                .parse()
                .map_err(|_| de::Error::custom(format!("{other:?} is not a number"))),
        },
    }
}

/// An int64 as a JSON number or, as protobuf's JSON form has it, a string.
fn int64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Wire {
        Number(i64),
        Text(String),
    }
    match Wire::deserialize(deserializer)? {
        Wire::Number(value) => Ok(value),
        Wire::Text(text) => text
            .parse()
            .map_err(|_| de::Error::custom(format!("{text:?} is not an integer"))),
    }
}

/// A string field that some servers may send as a number (a version).
fn string_or_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Wire {
        Text(String),
        Number(i64),
    }
    Ok(match Wire::deserialize(deserializer)? {
        Wire::Text(text) => text,
        Wire::Number(number) => number.to_string(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_api_lives_under_the_tracking_uri_with_or_without_a_prefix() {
        for (uri, expect) in [
            (
                "http://127.0.0.1:5000",
                "http://127.0.0.1:5000/api/2.0/mlflow/",
            ),
            (
                "http://127.0.0.1:5000/",
                "http://127.0.0.1:5000/api/2.0/mlflow/",
            ),
            (
                "https://ml.example.com/mlflow/",
                "https://ml.example.com/mlflow/api/2.0/mlflow/",
            ),
        ] {
            let base = api_base(uri).unwrap();
            assert_eq!(base.as_str(), expect, "{uri}");
            assert_eq!(
                base.join("metrics/get-history").unwrap().path(),
                format!("{}metrics/get-history", base.path())
            );
        }
    }

    #[test]
    fn uris_that_are_no_http_server_are_refused_with_the_reason() {
        for uri in [
            "file:///tmp/mlruns",
            "databricks",
            "",
            "http://",
            "http://h/?x=1",
        ] {
            match api_base(uri) {
                Err(MlflowError::BadUri { uri: shown, .. }) => assert_eq!(shown, uri),
                other => panic!("{uri}: {other:?}"),
            }
        }
    }

    #[test]
    fn metric_values_read_numbers_int64_strings_and_non_finite_doubles() {
        let page: GetMetricHistory = serde_json::from_str(
            r#"{"metrics": [
                {"key": "loss", "value": 0.25, "timestamp": 1700000000000, "step": 3},
                {"key": "loss", "value": "NaN", "timestamp": "1700000000001"},
                {"key": "loss", "value": "-Infinity", "timestamp": 5, "step": "7"}
            ], "next_page_token": "abc"}"#,
        )
        .unwrap();
        assert_eq!(
            page.metrics[0],
            MetricValue {
                value: 0.25,
                timestamp: 1_700_000_000_000,
                step: 3
            }
        );
        assert!(page.metrics[1].value.is_nan());
        assert_eq!(page.metrics[1].timestamp, 1_700_000_000_001);
        assert_eq!(page.metrics[1].step, 0, "a missing step is step 0");
        assert_eq!(page.metrics[2].value, f64::NEG_INFINITY);
        assert_eq!(page.metrics[2].step, 7);
        assert_eq!(page.next_page_token.as_deref(), Some("abc"));
    }

    #[test]
    fn empty_answers_leave_their_lists_out() {
        let page: GetMetricHistory = serde_json::from_str("{}").unwrap();
        assert!(page.metrics.is_empty() && page.next_page_token.is_none());
        let page: SearchModelVersions = serde_json::from_str("{}").unwrap();
        assert!(page.model_versions.is_empty());
        let run: GetRun = serde_json::from_str(r#"{"run": {"info": {}}}"#).unwrap();
        assert!(run.run.data.metrics.is_empty());
    }

    #[test]
    fn model_versions_keep_their_number_as_text_and_may_lack_a_run() {
        let page: SearchModelVersions = serde_json::from_str(
            r#"{"model_versions": [
                {"name": "churn", "version": "3", "run_id": "abc", "status": "READY"},
                {"name": "churn", "version": 4, "source": "s3://x"}
            ]}"#,
        )
        .unwrap();
        assert_eq!(page.model_versions[0].version, "3");
        assert_eq!(page.model_versions[0].run_id.as_deref(), Some("abc"));
        assert_eq!(page.model_versions[1].version, "4");
        assert_eq!(page.model_versions[1].run_id, None);
    }

    #[test]
    fn an_mlflow_error_body_gives_code_and_message() {
        let client = Client::new("http://127.0.0.1:1", Credentials::None).unwrap();
        let error = client.api_error(
            "runs/get",
            StatusCode::NOT_FOUND,
            br#"{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Run 'x' not found"}"#,
        );
        assert!(error.is_not_found());
        assert_eq!(
            error.to_string(),
            "the MLflow tracking server at http://127.0.0.1:1 answered runs/get with HTTP 404 \
             (RESOURCE_DOES_NOT_EXIST): Run 'x' not found"
        );
        let error = client.api_error("runs/get", StatusCode::NOT_FOUND, b"<html>\n nope\n</html>");
        assert!(
            !error.is_not_found(),
            "a 404 without MLflow's code may be no MLflow at all"
        );
        assert!(
            error.to_string().ends_with(
                "HTTP 404: <html> nope </html> (is this the URL of an MLflow tracking server?)"
            ),
            "{error}"
        );
        let error = client.api_error("runs/get", StatusCode::BAD_GATEWAY, b"");
        assert!(
            error.to_string().ends_with("HTTP 502: Bad Gateway"),
            "{error}"
        );
    }

    #[test]
    fn credentials_never_show_their_secret() {
        let shown = format!(
            "{:?} {:?}",
            Credentials::Bearer("s3cret".into()),
            Credentials::Basic {
                username: "ana".into(),
                password: "s3cret".into()
            }
        );
        assert!(
            !shown.contains("s3cret") && shown.contains("ana"),
            "{shown}"
        );
    }
}
