//! `modelwatch mlflow import` against a real MLflow tracking server (the `mlflow` package
//! that `scripts/setup` installs into `target/mlflow-venv`; `MODELWATCH_TEST_MLFLOW_PYTHON`
//! names another Python that has it). The server is populated through MLflow's REST API,
//! then the real binary imports into a temporary SQLite file and `metrics history` reads
//! back exact values and timestamps. A missing MLflow fails the test, never skips it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod common;

/// How long a cold `mlflow server` may take to answer on a busy two-core machine (it
/// creates its database schema first).
const START_LIMIT: Duration = Duration::from_secs(180);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn mlflow_python() -> PathBuf {
    let python = std::env::var_os("MODELWATCH_TEST_MLFLOW_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/mlflow-venv/bin/python"));
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup (it installs mlflow into target/mlflow-venv) or set \
         MODELWATCH_TEST_MLFLOW_PYTHON to a Python that has mlflow",
        python.display()
    );
    python
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The password of the `admin` user of a server started with basic auth.
const ADMIN_PASSWORD: &str = "test-Admin-pass-1";

/// A tracking server on a fresh SQLite database in its own directory. Its process group
/// (the CLI and the uvicorn worker it starts) is killed on drop, so a failing test leaves
/// nothing running.
struct MlflowServer {
    child: Child,
    dir: tempfile::TempDir,
    url: String,
    http: reqwest::Client,
    runtime: tokio::runtime::Runtime,
    /// Whether the server runs MLflow's basic-auth app (then every call logs in as admin).
    basic_auth: bool,
}

impl MlflowServer {
    fn start() -> Self {
        Self::start_with(false)
    }

    fn start_with_basic_auth() -> Self {
        Self::start_with(true)
    }

    fn start_with(basic_auth: bool) -> Self {
        let python = mlflow_python();
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let artifacts = dir.path().join("artifacts");
        let mut command = Command::new(python);
        if basic_auth {
            // Its user database lands in the working directory (the temporary one).
            command
                .args(["-m", "mlflow", "server", "--app-name", "basic-auth"])
                .env("MLFLOW_AUTH_ADMIN_PASSWORD", ADMIN_PASSWORD)
                .env("MLFLOW_FLASK_SERVER_SECRET_KEY", "modelwatch-test");
        } else {
            command.args(["-m", "mlflow", "server"]);
        }
        let child = command
            .arg("--backend-store-uri")
            .arg(format!(
                "sqlite:///{}",
                dir.path().join("mlflow.db").display()
            ))
            .arg("--default-artifact-root")
            .arg(format!("file://{}", artifacts.display()))
            .args([
                "--no-serve-artifacts",
                "--host",
                "127.0.0.1",
                "--workers",
                "1",
            ])
            .args(["--port", &port.to_string()])
            // The background job runner (a pool of huey consumers for GenAI jobs) is of
            // no use here and would take the two cores for seconds.
            .env("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
            .env_remove("MLFLOW_TRACKING_URI")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut server = MlflowServer {
            child,
            dir,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            runtime,
            basic_auth,
        };
        server.wait_until_it_answers();
        server
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn wait_until_it_answers(&mut self) {
        let started = Instant::now();
        let health = format!("{}/health", self.url);
        loop {
            let answer = self.runtime.block_on(async {
                self.http
                    .get(&health)
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
            });
            if answer.is_ok_and(|r| r.status().is_success()) {
                eprintln!("mlflow server answered after {:?}", started.elapsed());
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("mlflow server exited with {status}:\n{}", self.log());
            }
            assert!(
                started.elapsed() < START_LIMIT,
                "mlflow server did not answer within {START_LIMIT:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// POSTs `body` to a REST endpoint (`runs/create`, …) and returns the answer, which
    /// must be a success.
    fn call(&self, endpoint: &str, body: Value) -> Value {
        let url = format!("{}/api/2.0/mlflow/{endpoint}", self.url);
        let (status, text) = self.runtime.block_on(async {
            let response = self
                .authed(self.http.post(&url))
                .json(&body)
                .send()
                .await
                .unwrap();
            (response.status(), response.text().await.unwrap())
        });
        assert!(status.is_success(), "{endpoint} {body}: {status} {text}");
        serde_json::from_str(&text).unwrap()
    }

    fn authed(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if self.basic_auth {
            request.basic_auth("admin", Some(ADMIN_PASSWORD))
        } else {
            request
        }
    }

    fn create_run(&self, experiment_id: &str) -> String {
        let run = self.call(
            "runs/create",
            json!({"experiment_id": experiment_id, "start_time": 1_767_225_600_000i64}),
        );
        run["run"]["info"]["run_id"].as_str().unwrap().to_owned()
    }

    /// Logs `(key, value, timestamp, step)` values to a run.
    fn log_metrics(&self, run_id: &str, values: &[(&str, Value, i64, i64)]) {
        let metrics: Vec<Value> = values
            .iter()
            .map(|(key, value, timestamp, step)| {
                json!({"key": key, "value": value, "timestamp": timestamp, "step": step})
            })
            .collect();
        self.call(
            "runs/log-batch",
            json!({"run_id": run_id, "metrics": metrics}),
        );
    }

    /// Registers `model` (if new) and a version of it made from `run_id` (or from a bucket,
    /// without a run).
    fn register(&self, model: &str, run_id: Option<&str>) {
        let exists = self.runtime.block_on(async {
            self.authed(
                self.http
                    .get(format!("{}/api/2.0/mlflow/registered-models/get", self.url)),
            )
            .query(&[("name", model)])
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
        });
        if !exists {
            self.call("registered-models/create", json!({"name": model}));
        }
        let body = match run_id {
            Some(run_id) => {
                json!({"name": model, "source": format!("runs:/{run_id}/model"), "run_id": run_id})
            }
            // MLflow refuses local paths outside a run's artifacts; a bucket is fine.
            None => json!({"name": model, "source": format!("s3://models/{model}")}),
        };
        self.call("model-versions/create", body);
    }
}

impl Drop for MlflowServer {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// The modelwatch binary on one temporary SQLite file.
struct Modelwatch {
    dir: tempfile::TempDir,
}

impl Modelwatch {
    fn new() -> Self {
        Modelwatch {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn command(&self) -> Command {
        let mut command = common::modelwatch(self.dir.path().join("modelwatch.db"));
        for name in [
            "MLFLOW_TRACKING_URI",
            "MLFLOW_TRACKING_TOKEN",
            "MLFLOW_TRACKING_USERNAME",
            "MLFLOW_TRACKING_PASSWORD",
        ] {
            command.env_remove(name);
        }
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().unwrap()
    }

    /// `mlflow import` with `--format json`: its exit success, report and stderr.
    fn import(&self, tracking_uri: &str, models: &[&str]) -> (bool, Value, String) {
        let mut args = vec!["mlflow", "import", "--tracking-uri", tracking_uri];
        for model in models {
            args.extend(["--model", model]);
        }
        args.extend(["--format", "json"]);
        let out = self.run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let report = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: no JSON report ({e}); stderr: {stderr}"));
        (out.status.success(), report, stderr)
    }

    /// `(timestamp ms, value)` of every stored sample of a series.
    fn history(&self, model: &str, version: &str, metric: &str) -> Vec<(i64, f64)> {
        let args = [
            "metrics", "history", model, version, "--metric", metric, "--hours", "1000000",
            "--format", "json",
        ];
        let out = common::succeeded(&args, self.run(&args));
        let history: Value = serde_json::from_slice(&out).unwrap();
        history["samples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|sample| {
                let at = sample["timestamp"].as_str().unwrap();
                let millis = millis_of(at);
                (millis, sample["value"].as_f64().unwrap())
            })
            .collect()
    }
}

/// Milliseconds of an RFC 3339 UTC timestamp as modelwatch prints it
/// (`2026-01-01T00:00:00.000Z`), through the library's own parser.
fn millis_of(text: &str) -> i64 {
    modelwatch::core::Timestamp::parse(text)
        .unwrap()
        .as_millis()
}

fn counts(report: &Value) -> [u64; 6] {
    [
        "models",
        "versions",
        "metrics",
        "samples_new",
        "samples_updated",
        "samples_unchanged",
    ]
    .map(|field| {
        report[field]
            .as_u64()
            .unwrap_or_else(|| panic!("{field}: {report}"))
    })
}

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

#[test]
fn registered_versions_import_with_exact_history_once_and_refused_items_are_reported() {
    let mlflow = MlflowServer::start();
    let experiment = mlflow.call("experiments/create", json!({"name": "churn-training"}));
    let experiment_id = experiment["experiment_id"].as_str().unwrap();

    // churn 1: a built-in and a custom metric, several steps each.
    let run_1 = mlflow.create_run(experiment_id);
    mlflow.log_metrics(
        &run_1,
        &[
            ("accuracy", json!(0.81), T0, 0),
            ("accuracy", json!(0.875), T0 + 60_000, 1),
            ("accuracy", json!(0.9125), T0 + 120_000, 2),
            ("val_loss", json!(0.53), T0, 0),
            ("val_loss", json!(0.41), T0 + 60_000, 1),
            ("val_loss", json!(0.3725), T0 + 120_000, 2),
        ],
    );
    mlflow.register("churn", Some(&run_1));
    // churn 2: another run.
    let run_2 = mlflow.create_run(experiment_id);
    mlflow.log_metrics(
        &run_2,
        &[
            ("accuracy", json!(0.93), T0 + 3_600_000, 0),
            ("rmse", json!(12.5), T0 + 3_600_000, 0),
        ],
    );
    mlflow.register("churn", Some(&run_2));

    let modelwatch = Modelwatch::new();
    let (ok, report, stderr) = modelwatch.import(&mlflow.url, &["churn"]);
    assert!(ok, "{report} {stderr}");
    assert_eq!(counts(&report), [1, 2, 4, 8, 0, 0], "{report}");
    assert_eq!(report["skipped"], json!([]));
    // The name says which way is better: declared lower-is-better, and said so.
    assert_eq!(report["undeclared_custom_metrics"], json!([]));
    assert_eq!(
        report["inferred_directions"],
        json!({"val_loss": {"direction": "lower_is_better", "reason": "\"loss\" in its name"}})
    );
    assert!(
        stderr.contains("val_loss: lower is better (inferred from \"loss\" in its name"),
        "{stderr}"
    );

    // Version = MLflow's number, metric = the key, timestamps and values exact.
    assert_eq!(
        modelwatch.history("churn", "1", "accuracy"),
        [(T0, 0.81), (T0 + 60_000, 0.875), (T0 + 120_000, 0.9125)]
    );
    assert_eq!(
        modelwatch.history("churn", "1", "val_loss"),
        [(T0, 0.53), (T0 + 60_000, 0.41), (T0 + 120_000, 0.3725)]
    );
    assert_eq!(
        modelwatch.history("churn", "2", "accuracy"),
        [(T0 + 3_600_000, 0.93)]
    );
    assert_eq!(
        modelwatch.history("churn", "2", "rmse"),
        [(T0 + 3_600_000, 12.5)]
    );

    // Again: everything is already there, nothing is written.
    let (ok, report, stderr) = modelwatch.import(&mlflow.url, &["churn"]);
    assert!(ok, "{report} {stderr}");
    assert_eq!(counts(&report), [1, 2, 4, 0, 0, 8], "{report}");
    assert_eq!(modelwatch.history("churn", "1", "accuracy").len(), 3);

    // A step logged later is the one new sample of the next import.
    mlflow.log_metrics(&run_1, &[("accuracy", json!(0.9375), T0 + 180_000, 3)]);
    let (ok, report, _) = modelwatch.import(&mlflow.url, &["churn"]);
    assert!(ok);
    assert_eq!(counts(&report), [1, 2, 4, 1, 0, 8], "{report}");
    assert_eq!(
        modelwatch.history("churn", "1", "accuracy").last(),
        Some(&(T0 + 180_000, 0.9375))
    );

    // What modelwatch refuses is reported item by item; the rest still imports.
    let run_3 = mlflow.create_run(experiment_id);
    mlflow.log_metrics(
        &run_3,
        &[
            ("precision", json!(0.7), T0, 0),
            ("precision", json!("NaN"), T0 + 1_000, 1),
            ("precision", json!(0.72), T0 + 2_000, 2),
            // Two steps in one millisecond: the later step is kept.
            ("recall", json!(0.5), T0, 0),
            ("recall", json!(0.55), T0, 1),
            ("val/loss", json!(0.3), T0, 0),
        ],
    );
    mlflow.register("fraud", Some(&run_3));
    mlflow.register("fraud", None);
    mlflow.register("churn model", Some(&run_3));

    let (ok, report, stderr) = modelwatch.import(&mlflow.url, &[]);
    assert!(!ok, "skipped items make the exit status non-zero: {report}");
    // churn (4 series, already stored) and fraud 1 (precision, recall).
    assert_eq!(counts(&report), [2, 3, 6, 3, 0, 9], "{report}");
    let skipped: Vec<(String, String)> = report["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            let path = [&item["model"], &item["version"], &item["metric"]]
                .iter()
                .filter_map(|part| part.as_str())
                .collect::<Vec<_>>()
                .join("/");
            (path, item["reason"].as_str().unwrap().to_owned())
        })
        .collect();
    let reason = |path: &str| -> &str {
        &skipped
            .iter()
            .find(|(p, _)| p == path)
            .unwrap_or_else(|| panic!("{path} not skipped: {skipped:?}"))
            .1
    };
    assert_eq!(skipped.len(), 5, "{skipped:?}");
    assert!(reason("churn model").starts_with("modelwatch refuses this model name"));
    assert!(reason("fraud/1/val/loss").starts_with("modelwatch refuses this metric name"));
    assert_eq!(
        reason("fraud/1/precision"),
        "1 of 3 values refused, the first because: NaN is not a measurement"
    );
    assert!(reason("fraud/1/recall").starts_with("1 of 2 values share their timestamp"));
    assert!(
        reason("fraud/2").contains("outside a run"),
        "{}",
        reason("fraud/2")
    );
    assert!(
        stderr.contains("skipped churn model: modelwatch refuses"),
        "{stderr}"
    );
    assert!(stderr.contains("5 item(s) skipped"), "{stderr}");
    assert_eq!(
        modelwatch.history("fraud", "1", "precision"),
        [(T0, 0.7), (T0 + 2_000, 0.72)]
    );
    assert_eq!(modelwatch.history("fraud", "1", "recall"), [(T0, 0.55)]);

    // Named models: one the server lacks is reported, the other imported.
    let (ok, report, _) = modelwatch.import(&mlflow.url, &["fraud", "ghost"]);
    assert!(!ok);
    assert_eq!(report["skipped"][0]["model"], "ghost");
    assert_eq!(
        report["skipped"][0]["reason"],
        "the tracking server has no registered model of this name"
    );
    assert_eq!(report["samples_unchanged"], 3, "{report}");

    // Every listing is followed through its pages: with one item per page (3 registered
    // models, 2 versions of churn, 4 values of churn 1's accuracy…) the library imports
    // exactly what the binary did.
    mlflow.runtime.block_on(async {
        let stores = modelwatch::store::open("memory").await.unwrap();
        let client =
            modelwatch::mlflow::Client::new(&mlflow.url, modelwatch::mlflow::Credentials::None)
                .unwrap()
                .with_page_size(1);
        let report = modelwatch::mlflow::import(&client, &*stores.metrics, &[])
            .await
            .unwrap();
        let report = serde_json::to_value(&report).unwrap();
        assert_eq!(counts(&report), [2, 3, 6, 12, 0, 0], "{report}");
        assert_eq!(report["skipped"].as_array().unwrap().len(), 5, "{report}");
        let key = modelwatch::core::SeriesKey::parse("churn", "1", "accuracy").unwrap();
        let points: Vec<(i64, f64)> = stores
            .metrics
            .range(&key, modelwatch::core::TimeRange::all())
            .await
            .unwrap()
            .iter()
            .map(|p| (p.timestamp.as_millis(), p.value))
            .collect();
        assert_eq!(points, modelwatch.history("churn", "1", "accuracy"));
    });
}

#[test]
fn an_unreachable_tracking_server_is_a_clear_error_naming_it() {
    let port = free_port(); // bound and released: nothing listens there
    let uri = format!("http://127.0.0.1:{port}");
    let modelwatch = Modelwatch::new();
    let out = modelwatch.run(&["mlflow", "import", "--tracking-uri", &uri]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "error: cannot reach the MLflow tracking server at {uri}: "
        )),
        "{stderr}"
    );

    let out = modelwatch.run(&["mlflow", "import", "--tracking-uri", "file:///tmp/mlruns"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .contains("\"file:///tmp/mlruns\" is not the http(s) URL of an MLflow tracking server"),
        "{stderr}"
    );
}

#[test]
fn basic_auth_credentials_come_from_mlflows_own_environment_variables() {
    let mlflow = MlflowServer::start_with_basic_auth();
    let experiment = mlflow.call("experiments/create", json!({"name": "guarded"}));
    let run = mlflow.create_run(experiment["experiment_id"].as_str().unwrap());
    mlflow.log_metrics(&run, &[("auc_roc", json!(0.88), T0, 0)]);
    mlflow.register("guarded", Some(&run));
    let modelwatch = Modelwatch::new();
    let args = [
        "mlflow",
        "import",
        "--tracking-uri",
        &mlflow.url,
        "--format",
        "json",
    ];

    let out = modelwatch.command().args(args).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("answered registered-models/search with HTTP 401")
            && stderr.contains("MLFLOW_TRACKING_USERNAME"),
        "{stderr}"
    );

    let out = modelwatch
        .command()
        .args(args)
        .env("MLFLOW_TRACKING_USERNAME", "admin")
        .env("MLFLOW_TRACKING_PASSWORD", ADMIN_PASSWORD)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&common::succeeded(&args, out)).unwrap();
    assert_eq!(counts(&report), [1, 1, 1, 1, 0, 0], "{report}");
    assert_eq!(modelwatch.history("guarded", "1", "auc_roc"), [(T0, 0.88)]);
}
