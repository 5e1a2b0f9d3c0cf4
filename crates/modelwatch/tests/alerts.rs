//! The seed's alerting flows through the real `modelwatch` binary: rules, evaluation,
//! lifecycle, summary, silences, configuration, backtest. Every test runs twice, on a
//! temporary SQLite file and on a fresh PostgreSQL database (which must be reachable).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Output;

use modelwatch::store::postgres::testing::TestDatabase;
use serde_json::Value;

mod common;
use common::{minutes_ago, postgres_database, succeeded};

#[derive(Debug, Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

/// Channels for rules to name; nothing listens there (nothing here delivers).
const CHANNELS: &str = "[channels.ops]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/ops\"\n\
                        [channels.pager]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/pager\"\n";

struct Env {
    dir: tempfile::TempDir,
    config: Option<PathBuf>,
    /// The database's location, as `MODELWATCH_DB` takes it.
    db: String,
    /// The PostgreSQL database, dropped (on its runtime) with the test.
    _postgres: Option<(TestDatabase, tokio::runtime::Runtime)>,
}

impl Env {
    /// With the channels the rules name and no other setting.
    fn new(backend: Backend) -> Self {
        Env::with_config(backend, "")
    }

    fn without_config(backend: Backend) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (db, postgres) = match backend {
            Backend::Sqlite => (dir.path().join("test.db").display().to_string(), None),
            Backend::Postgres => {
                let (runtime, database) = postgres_database("cli_alerts");
                (database.url().to_owned(), Some((database, runtime)))
            }
        };
        Env {
            dir,
            config: None,
            db,
            _postgres: postgres,
        }
    }

    /// With a configuration file: `toml` and the channels the rules name (ops, pager).
    fn with_config(backend: Backend, toml: &str) -> Self {
        let mut env = Env::without_config(backend);
        let path = env.dir.path().join("modelwatch.toml");
        std::fs::write(&path, format!("{toml}\n{CHANNELS}")).unwrap();
        env.config = Some(path);
        env
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut command = common::modelwatch(&self.db);
        command.args(args).args(["--format", "json"]);
        if let Some(config) = &self.config {
            command.env("MODELWATCH_CONFIG", config);
        }
        command.output().unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_slice(&succeeded(args, self.run(args))).unwrap()
    }

    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "{args:?} should have failed");
        String::from_utf8(out.stderr).unwrap()
    }

    fn record(&self, version: &str, value: f64, minutes_before_now: i64) {
        self.json(&[
            "metrics",
            "record",
            "fraud_detector",
            version,
            "accuracy",
            &value.to_string(),
            "--at",
            &minutes_ago(minutes_before_now),
        ]);
    }

    fn create_rule(&self, extra: &[&str]) -> String {
        let mut args = vec![
            "alerts",
            "create-rule",
            "fraud_detector",
            "accuracy",
            "--name",
            "Low Accuracy",
            "--threshold",
            "0.90",
            "--operator",
            "lt",
            "--severity",
            "high",
            "--channels",
            "ops,pager",
        ];
        args.extend_from_slice(extra);
        self.json(&args)["id"].as_str().unwrap().to_owned()
    }
}

fn create_rule_stores_the_seed_fields_and_refuses_invalid_rules(backend: Backend) {
    let env = Env::new(backend);
    let id = env.create_rule(&["--cooldown", "30"]);
    assert!(id.starts_with("rule_"));
    let rules = env.json(&["alerts", "list-rules", "--model", "fraud_detector"]);
    let rule = &rules[0];
    assert_eq!(rule["id"], id.as_str());
    assert_eq!(rule["name"], "Low Accuracy");
    assert_eq!(rule["model"], "fraud_detector");
    assert_eq!(rule["metric"], "accuracy");
    assert_eq!(rule["condition_type"], "threshold");
    assert_eq!(rule["comparison_operator"], "lt");
    assert_eq!(rule["threshold_value"], 0.9);
    assert_eq!(rule["severity"], "high");
    assert_eq!(rule["cooldown_minutes"], 30);
    assert_eq!(rule["enabled"], true);
    assert_eq!(rule["notify_channels"], serde_json::json!(["ops", "pager"]));

    let degradation = env.json(&[
        "alerts",
        "create-rule",
        "fraud_detector",
        "accuracy",
        "--name",
        "Drop",
        "--degradation",
        "5",
        "--severity",
        "critical",
        "--version",
        "v2",
    ]);
    assert_eq!(degradation["condition_type"], "degradation");
    assert_eq!(degradation["baseline_window_hours"], 24);
    assert_eq!(degradation["version"], "v2");
    assert_eq!(degradation["cooldown_minutes"], 60);

    let error = env.fails(&[
        "alerts",
        "create-rule",
        "fraud_detector",
        "accuracy",
        "--name",
        "x",
        "--threshold",
        "0.9",
    ]);
    assert!(error.contains("comparison_operator"), "{error}");
    let error = env.fails(&[
        "alerts",
        "create-rule",
        "fraud_detector",
        "accuracy",
        "--name",
        "x",
        "--threshold",
        "0.9",
        "--operator",
        "lt",
        "--degradation",
        "5",
    ]);
    assert!(error.contains("not both"), "{error}");
    assert_eq!(
        env.json(&["alerts", "list-rules"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

fn seed_flow_fires_acknowledges_resolves_and_keeps_history(backend: Backend) {
    let env = Env::new(backend);
    env.create_rule(&["--for", "2"]);
    env.record("v2.1", 0.85, 3);
    let first = env.json(&["evaluate"]);
    assert!(first["alerts_created"].as_array().unwrap().is_empty());
    env.record("v2.1", 0.84, 2);
    let fired = env.json(&["evaluate", "fraud_detector", "v2.1"]);
    let alert = &fired["alerts_created"][0];
    let id = alert["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("alert_") && id.len() == 14, "{id}");
    assert_eq!(alert["status"], "active");
    assert_eq!(alert["severity"], "high");

    // Evaluating again without new samples creates nothing.
    assert!(env.json(&["evaluate"])["alerts_created"]
        .as_array()
        .unwrap()
        .is_empty());

    let listed = env.json(&[
        "alerts",
        "list",
        "--model",
        "fraud_detector",
        "--status",
        "active",
    ]);
    assert_eq!(listed.as_array().unwrap().len(), 1);

    let acked = env.json(&["alerts", "acknowledge", &id, "ana"]);
    assert_eq!(acked["status"], "acknowledged");
    assert_eq!(acked["acknowledged_by"], "ana");
    // Acknowledged is still open: someone on call has to look at it.
    let open = env.json(&["alerts", "list", "--status", "open", "--hours", "all"]);
    assert_eq!(open.as_array().unwrap().len(), 1);
    let error = env.fails(&["alerts", "list", "--status", "gone"]);
    assert!(
        error.contains("--status") && error.contains("or open"),
        "{error}"
    );
    for bad in ["0", "1e3", "forever"] {
        let error = env.fails(&["alerts", "summary", "--hours", bad]);
        assert!(
            error.contains("--hours") && error.contains("nor all"),
            "{error}"
        );
    }
    let error = env.fails(&["alerts", "acknowledge", &id, "bo"]);
    assert!(error.contains("already acknowledged (by ana"), "{error}");

    let resolved = env.json(&["alerts", "resolve", &id, "bo", "--notes", "retrained"]);
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["resolution_notes"], "retrained");
    let error = env.fails(&["alerts", "resolve", &id, "bo"]);
    assert!(error.contains("already resolved"), "{error}");
    let error = env.fails(&["alerts", "resolve", "alert_12", "bo"]);
    assert!(error.contains("alert_id"), "{error}");
    let error = env.fails(&["alerts", "acknowledge", "alert_00000000", "bo"]);
    assert!(error.contains("no alert has id alert_00000000"), "{error}");

    let history = env.json(&["alerts", "history", &id]);
    let steps: Vec<(Value, Value, Value)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["by"].clone(), t["from"].clone(), t["to"].clone()))
        .collect();
    assert_eq!(
        steps,
        vec![
            ("modelwatch".into(), Value::Null, "active".into()),
            ("ana".into(), "active".into(), "acknowledged".into()),
            ("bo".into(), "acknowledged".into(), "resolved".into()),
        ]
    );
    let summary = env.json(&["alerts", "summary"]);
    assert_eq!(summary["total_count"], 1);
    assert_eq!(summary["resolved_count"], 1);
    assert_eq!(summary["high_count"], 1);
    assert_eq!(env.json(&["alerts", "summary", "--hours", "all"]), summary);
    assert!(env
        .json(&["alerts", "list", "--status", "open"])
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(
        env.json(&["alerts", "list", "--hours", "all"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

fn rate_limit_from_the_config_file_suppresses_and_counts(backend: Backend) {
    let env = Env::with_config(backend, "[alerts]\nmax_alerts_per_hour = 1\n");
    env.create_rule(&["--for", "1"]);
    env.record("v1", 0.5, 2);
    env.record("v2", 0.5, 2);
    let report = env.json(&["evaluate"]);
    let statuses: Vec<&str> = report["alerts_created"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["active", "suppressed"]);
    let summary = env.json(&["alerts", "summary", "--model", "fraud_detector"]);
    assert_eq!(summary["active_count"], 1);
    assert_eq!(summary["suppressed_count"], 1);

    let bad = Env::with_config(backend, "[alerts]\nmax_alerts = 1\n");
    let error = bad.fails(&["alerts", "list"]);
    assert!(
        error.contains("is invalid") && error.contains("max_alerts"),
        "{error}"
    );
}

fn silences_mute_then_expire(backend: Backend) {
    let env = Env::new(backend);
    env.create_rule(&["--for", "1"]);
    let silence = env.json(&[
        "silences",
        "add",
        "fraud_detector",
        "--version",
        "v1",
        "--minutes",
        "60",
        "--by",
        "ana",
        "--comment",
        "retraining",
    ]);
    let silence_id = silence["id"].as_str().unwrap().to_owned();
    assert_eq!(silence["created_by"], "ana");
    assert_eq!(env.json(&["silences", "list"]).as_array().unwrap().len(), 1);

    env.record("v1", 0.5, 2);
    let report = env.json(&["evaluate"]);
    let alert = &report["alerts_created"][0];
    assert_eq!(alert["status"], "active");
    assert_eq!(alert["notified"], false);
    assert_eq!(alert["hold_reason"]["reason"], "silenced");
    assert_eq!(alert["hold_reason"]["silence_id"], silence_id.as_str());

    env.json(&["silences", "expire", &silence_id]);
    assert!(env
        .json(&["silences", "list"])
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(
        env.json(&["silences", "list", "--all"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let error = env.fails(&[
        "silences",
        "add",
        "fraud_detector",
        "--by",
        "ana",
        "--comment",
        "x",
    ]);
    assert!(error.contains("ends_at"), "{error}");
}

fn rules_are_shown_updated_disabled_enabled_and_deleted(backend: Backend) {
    let env = Env::new(backend);
    let id = env.create_rule(&["--for", "1"]);
    assert_eq!(env.json(&["rules", "show", &id])["name"], "Low Accuracy");
    let updated = env.json(&["rules", "update", &id, r#"{"threshold_value": 0.8}"#]);
    assert_eq!(updated["threshold_value"], 0.8);
    let error = env.fails(&["rules", "update", &id, r#"{"cooldown_minutes": -5}"#]);
    assert!(error.contains("cooldown_minutes"), "{error}");
    // The fields of the API's PATCH: the seed's names too, and nothing else.
    let renamed = env.json(&["rules", "update", &id, r#"{"rule_name": "Accuracy"}"#]);
    assert_eq!(renamed["name"], "Accuracy");
    let error = env.fails(&["rules", "update", &id, r#"{"threshold": 0.8}"#]);
    assert!(error.contains("threshold"), "{error}");
    assert_eq!(env.json(&["rules", "disable", &id])["enabled"], false);
    env.record("v1", 0.5, 2);
    assert!(env.json(&["evaluate"])["evaluations"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(env.json(&["rules", "enable", &id])["enabled"], true);
    assert_eq!(
        env.json(&["evaluate"])["alerts_created"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let out = env.run(&["rules", "delete", &id]);
    assert!(out.status.success());
    let error = env.fails(&["rules", "show", &id]);
    assert!(error.contains(&format!("no rule has id {id}")), "{error}");
    assert_eq!(env.json(&["alerts", "list"]).as_array().unwrap().len(), 1);
}

fn backtest_reports_when_the_rule_would_have_fired_without_creating_alerts(backend: Backend) {
    let env = Env::new(backend);
    let id = env.create_rule(&["--for", "2", "--auto-resolve", "--clear-after", "2"]);
    for (minute, value) in [
        (20, 0.95),
        (19, 0.85),
        (18, 0.85),
        (17, 0.84),
        (16, 0.95),
        (15, 0.95),
        (14, 0.95),
    ] {
        env.record("v1", value, minute);
    }
    let report = env.json(&["alerts", "backtest", &id, "--from", &minutes_ago(60)]);
    let events = report["versions"][0]["events"].as_array().unwrap();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["fired", "auto_resolved"]);
    assert_eq!(report["versions"][0]["samples"], 7);
    assert!(env.json(&["alerts", "list"]).as_array().unwrap().is_empty());
    let error = env.fails(&[
        "alerts",
        "backtest",
        &id,
        "--from",
        &minutes_ago(1),
        "--to",
        &minutes_ago(2),
    ]);
    assert!(error.contains("must be after"), "{error}");
}

/// `--dataset canary` watches the canary alone, `--dataset '*'` each dataset apart: a drop
/// of the canary alerts for the canary only, and the backtest takes a dataset too.
fn rules_per_dataset_alert_only_for_the_dataset_that_degraded(backend: Backend) {
    let env = Env::new(backend);
    let each = env.create_rule(&["--for", "1", "--dataset", "*"]);
    let canary = env.create_rule(&["--for", "1", "--dataset", "canary"]);
    let default = env.create_rule(&["--for", "1"]);
    let rule = env.json(&["rules", "show", &each]);
    assert_eq!(rule["dataset"], "*");
    assert_eq!(env.json(&["rules", "show", &default])["dataset"], "default");
    let error = env.fails(&[
        "alerts",
        "create-rule",
        "fraud_detector",
        "accuracy",
        "--name",
        "bad",
        "--threshold",
        "0.9",
        "--operator",
        "lt",
        "--dataset",
        "can ary",
    ]);
    assert!(error.contains("dataset"), "{error}");
    for (value, dataset) in [(0.95, "default"), (0.80, "canary"), (0.97, "prod")] {
        env.json(&[
            "metrics",
            "record",
            "fraud_detector",
            "v1",
            "accuracy",
            &value.to_string(),
            "--at",
            &minutes_ago(2),
            "--dataset",
            dataset,
        ]);
    }
    env.json(&["evaluate"]);
    let alerts = env.json(&["alerts", "list", "--hours", "all"]);
    let mut fired: Vec<(String, String)> = alerts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["rule_id"].as_str().unwrap().to_owned(),
                a["dataset"].as_str().unwrap_or("default").to_owned(),
            )
        })
        .collect();
    fired.sort();
    let mut expected = vec![
        (each.clone(), "canary".to_owned()),
        (canary.clone(), "canary".to_owned()),
    ];
    expected.sort();
    assert_eq!(fired, expected);
    let report = env.json(&["alerts", "backtest", &each, "--from", &minutes_ago(60)]);
    let replayed: Vec<(Value, Value)> = report["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["dataset"].clone(), v["alerts"].clone()))
        .collect();
    assert_eq!(
        replayed,
        [
            (Value::Null, 0.into()),
            ("canary".into(), 1.into()),
            ("prod".into(), 0.into())
        ]
    );
    let on_canary = env.json(&[
        "alerts",
        "backtest",
        &default,
        "--from",
        &minutes_ago(60),
        "--dataset",
        "canary",
    ]);
    assert_eq!(on_canary["versions"][0]["dataset"], "canary");
    assert_eq!(on_canary["versions"][0]["alerts"], 1);
    let moved = env.json(&["rules", "update", &default, r#"{"dataset": "prod"}"#]);
    assert_eq!(moved["dataset"], "prod");
}

fn change_point_rules_are_created_listed_evaluated_and_backtested(backend: Backend) {
    let env = Env::new(backend);
    // Refusals name the flag's field.
    let error = env.fails(&[
        "alerts",
        "create-rule",
        "fraud_detector",
        "accuracy",
        "--name",
        "shift",
        "--change-point",
        "--min-shift",
        "5%",
        "--for",
        "3",
    ]);
    assert!(error.contains("for_evaluations"), "{error}");
    let error = env.fails(&[
        "alerts",
        "create-rule",
        "fraud_detector",
        "accuracy",
        "--name",
        "shift",
        "--change-point",
        "--min-shift",
        "a lot",
    ]);
    assert!(error.contains("--min-shift"), "{error}");
    let rule = env.json(&[
        "alerts",
        "create-rule",
        "fraud_detector",
        "accuracy",
        "--name",
        "shift",
        "--change-point",
        "--min-shift",
        "1.5sd",
        "--false-alarm-every",
        "90d",
        "--channels",
        "ops",
    ]);
    assert_eq!(rule["condition_type"], "change_point");
    assert_eq!(rule["change_direction"], "worse");
    assert_eq!(rule["min_shift_sd"], 1.5);
    assert_eq!(rule["false_alarm_interval_hours"], 2160.0);
    assert_eq!(rule["for_evaluations"], 1);
    let id = rule["id"].as_str().unwrap().to_owned();
    let rules = env.json(&["alerts", "list-rules"]);
    assert_eq!(rules.as_array().unwrap().len(), 1);
    // Four hours of accuracy at one sample a minute, 3 points lower for the last hour.
    let csv = env.dir.path().join("samples.csv");
    let mut text = String::from("model,version,metric,value,timestamp\n");
    let mut shift_began = String::new();
    for minute in (1..=240).rev() {
        let wiggle = [0.004, -0.003, 0.001, -0.002, 0.0, 0.003, -0.004][minute as usize % 7];
        let value = if minute <= 60 { 0.87 } else { 0.90 } + wiggle;
        let at = minutes_ago(minute);
        if minute == 60 {
            shift_began = events_time(&at);
        }
        text.push_str(&format!("fraud_detector,v1,accuracy,{value},{at}\n"));
    }
    std::fs::write(&csv, text).unwrap();
    env.json(&["metrics", "import", csv.to_str().unwrap()]);
    let report = env.json(&["alerts", "backtest", &id, "--from", &minutes_ago(300)]);
    let events = report["versions"][0]["events"].as_array().unwrap();
    assert_eq!(events[0]["event"], "fired", "{events:#?}");
    // The shift began at the first sample of the last hour. If that sample alone pages
    // (an outlier: 3 points below a level that never moved half a point), the shift it
    // starts is folded into its alert, not paged again.
    assert!(events.len() <= 2, "{events:#?}");
    for event in &events[1..] {
        assert_eq!(event["event"], "shifted", "{events:#?}");
    }
    for event in events {
        assert_eq!(event["change_started_at"], shift_began.as_str());
    }
    // Live evaluation counts the imported samples and fires now, as the backtest says.
    env.json(&["evaluate"]);
    let alerts = env.json(&["alerts", "list"]);
    let alert = &alerts.as_array().unwrap()[0];
    assert_eq!(alert["trigger"]["condition_type"], "change_point");
    assert_eq!(
        alert["trigger"]["change_started_at"],
        events[0]["change_started_at"]
    );
    assert!(
        alert["message"].as_str().unwrap().contains("shifted down"),
        "{alert}"
    );
}

fn no_data_rules_are_created_listed_evaluated_and_backtested(backend: Backend) {
    let env = Env::new(backend);
    let error = env.fails(&[
        "alerts",
        "create-rule",
        "fraud_detector",
        "accuracy",
        "--name",
        "silent",
        "--no-data-for",
        "a while",
    ]);
    assert!(error.contains("--no-data-for"), "{error}");
    let error = env.fails(&[
        "alerts",
        "create-rule",
        "fraud_detector",
        "accuracy",
        "--name",
        "silent",
        "--no-data-intervals",
        "0.5",
    ]);
    assert!(error.contains("no_data_intervals"), "{error}");
    let rule = env.json(&[
        "alerts",
        "create-rule",
        "fraud_detector",
        "accuracy",
        "--name",
        "silent",
        "--no-data-for",
        "30m",
        "--channels",
        "ops",
    ]);
    assert_eq!(rule["condition_type"], "no_data");
    assert_eq!(rule["no_data_minutes"], 30.0);
    assert_eq!(rule["auto_resolve"], true);
    let intervals = env.json(&[
        "alerts",
        "create-rule",
        "fraud_detector",
        "accuracy",
        "--name",
        "silent for five",
        "--no-data-intervals",
        "5",
        "--no-auto-resolve",
    ]);
    assert_eq!(intervals["no_data_intervals"], 5.0);
    assert_eq!(intervals["auto_resolve"], false);
    let id = rule["id"].as_str().unwrap().to_owned();
    let rules = env.json(&["alerts", "list-rules"]);
    assert_eq!(rules.as_array().unwrap().len(), 2);
    // Two hours of accuracy a minute apart that stopped 50 minutes ago.
    let csv = env.dir.path().join("samples.csv");
    let mut text = String::from("model,version,metric,value,timestamp\n");
    for minute in (50..=170).rev() {
        text.push_str(&format!(
            "fraud_detector,v1,accuracy,0.9,{}\n",
            minutes_ago(minute)
        ));
    }
    std::fs::write(&csv, text).unwrap();
    env.json(&["metrics", "import", csv.to_str().unwrap()]);
    let report = env.json(&["alerts", "backtest", &id, "--from", &minutes_ago(300)]);
    let events = report["versions"][0]["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["event"], "fired");
    // Live evaluation fires now for the silence going on.
    env.json(&["evaluate"]);
    let alerts = env.json(&["alerts", "list"]);
    let alerts = alerts.as_array().unwrap();
    assert_eq!(alerts.len(), 2, "{alerts:#?}");
    for alert in alerts {
        assert_eq!(alert["trigger"]["condition_type"], "no_data");
        let message = alert["message"].as_str().unwrap();
        // 50 minutes, or 51 on a slow machine.
        assert!(message.contains("no data for 5"), "{message}");
    }
    let five = alerts
        .iter()
        .find(|a| a["rule_name"] == "silent for five")
        .unwrap();
    assert!(
        five["message"]
            .as_str()
            .unwrap()
            .contains("(usual interval 1 min)"),
        "{five}"
    );
}

fn no_data_rules_on_every_metric_watch_the_whole_version(backend: Backend) {
    let env = Env::new(backend);
    // `*` is for no-data rules only.
    let error = env.fails(&[
        "alerts",
        "create-rule",
        "fraud_detector",
        "*",
        "--name",
        "any",
        "--threshold",
        "0.9",
        "--operator",
        "lt",
    ]);
    assert!(error.contains("metric"), "{error}");
    assert!(error.contains("no-data"), "{error}");
    let create = |name: &str, limit: &str| {
        env.json(&[
            "alerts",
            "create-rule",
            "fraud_detector",
            "*",
            "--name",
            name,
            "--no-data-for",
            limit,
        ])
    };
    let rule = create("version silent", "30m");
    assert_eq!(rule["metric"], "*");
    assert_eq!(rule["condition_type"], "no_data");
    create("version silent long", "45m");
    // Accuracy stopped 50 minutes ago, latency 40: the version has been silent for 40.
    let csv = env.dir.path().join("samples.csv");
    let mut text = String::from("model,version,metric,value,timestamp\n");
    for minute in (50..=170).rev() {
        text.push_str(&format!(
            "fraud_detector,v1,accuracy,0.9,{}\n",
            minutes_ago(minute)
        ));
    }
    for minute in (40..=170).rev() {
        text.push_str(&format!(
            "fraud_detector,v1,latency,120,{}\n",
            minutes_ago(minute)
        ));
    }
    std::fs::write(&csv, text).unwrap();
    env.json(&["metrics", "import", csv.to_str().unwrap()]);
    let id = rule["id"].as_str().unwrap().to_owned();
    let report = env.json(&["alerts", "backtest", &id, "--from", &minutes_ago(300)]);
    let versions = report["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 1, "{report:#}");
    let events = versions[0]["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["event"], "fired");
    // Live: the 30-minute rule fires for the version; the 45-minute one does not,
    // although accuracy alone has been silent for 50 minutes.
    env.json(&["evaluate"]);
    let alerts = env.json(&["alerts", "list"]);
    let alerts = alerts.as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let alert = &alerts[0];
    assert_eq!(alert["rule_name"], "version silent");
    assert_eq!(alert["metric"], "*");
    assert_eq!(alert["trigger"]["condition_type"], "no_data");
    let seen = alert["trigger"]["last_samples"].as_array().unwrap();
    assert_eq!(seen.len(), 2, "{alert:#}");
    assert_eq!(seen[0]["metric"], "latency");
    assert_eq!(seen[1]["metric"], "accuracy");
    let message = alert["message"].as_str().unwrap();
    assert!(
        message.contains("fraud_detector/v1 (every metric)"),
        "{message}"
    );
    assert!(message.contains("no data for 4"), "{message}");
}

/// A millisecond timestamp as the JSON output writes times (RFC 3339).
fn events_time(millis: &str) -> String {
    let millis: i64 = millis.parse().unwrap();
    modelwatch::core::Timestamp::from_millis(millis)
        .unwrap()
        .to_rfc3339()
}

/// One `#[test]` per case and backend.
macro_rules! on_every_backend {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $case() { super::$case(super::Backend::Sqlite) })*
        }
        mod postgres {
            $(#[test] fn $case() { super::$case(super::Backend::Postgres) })*
        }
    };
}

on_every_backend!(
    create_rule_stores_the_seed_fields_and_refuses_invalid_rules,
    seed_flow_fires_acknowledges_resolves_and_keeps_history,
    rate_limit_from_the_config_file_suppresses_and_counts,
    silences_mute_then_expire,
    rules_are_shown_updated_disabled_enabled_and_deleted,
    backtest_reports_when_the_rule_would_have_fired_without_creating_alerts,
    rules_per_dataset_alert_only_for_the_dataset_that_degraded,
    change_point_rules_are_created_listed_evaluated_and_backtested,
    no_data_rules_are_created_listed_evaluated_and_backtested,
    no_data_rules_on_every_metric_watch_the_whole_version,
);
