//! Behaviour through the `modelwatch` binary, on a real temporary SQLite database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

mod common;
use common::{minutes_ago, postgres_database, succeeded};

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
        self.dir.path().join("test.db")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = common::modelwatch(self.db());
        command.args(args);
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        String::from_utf8(succeeded(args, self.run(args))).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["--format", "json"]);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    fn samples(&self, model: &str, version: &str, metric: &str) -> Vec<Value> {
        let history = self.json(&[
            "metrics", "history", model, version, "--metric", metric, "--hours", "1000000",
        ]);
        history["samples"].as_array().unwrap().clone()
    }

    fn samples_in(&self, model: &str, version: &str, metric: &str, dataset: &str) -> Vec<Value> {
        let history = self.json(&[
            "metrics",
            "history",
            model,
            version,
            "--metric",
            metric,
            "--hours",
            "1000000",
            "--dataset",
            dataset,
        ]);
        history["samples"].as_array().unwrap().clone()
    }

    fn write(&self, name: &str, content: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn record_then_history_round_trips_exact_values_across_invocations() {
    let env = Env::new();
    env.ok(&[
        "metrics",
        "record",
        "fraud_detector",
        "v2.1",
        "precision",
        "0.94",
        "--at",
        "2024-05-01T12:00:00Z",
    ]);
    env.ok(&[
        "metrics",
        "record",
        "fraud_detector",
        "v2.1",
        "precision",
        "0.912345",
        "--at",
        "1714568460000",
        "--dataset",
        "holdout",
    ]);
    // Another dataset at the very time of the default dataset's sample: both are kept.
    env.ok(&[
        "metrics",
        "record",
        "fraud_detector",
        "v2.1",
        "precision",
        "0.5",
        "--at",
        "2024-05-01T12:00:00Z",
        "--dataset",
        "canary",
    ]);
    let samples = env.samples("fraud_detector", "v2.1", "precision");
    assert_eq!(samples.len(), 1);
    assert_eq!(samples[0]["value"], 0.94);
    assert_eq!(samples[0]["timestamp"], "2024-05-01T12:00:00.000Z");
    let holdout = env.samples_in("fraud_detector", "v2.1", "precision", "holdout");
    assert_eq!(holdout.len(), 1);
    assert_eq!(holdout[0]["value"], 0.912345);
    assert_eq!(holdout[0]["timestamp"], "2024-05-01T13:01:00.000Z");
    assert_eq!(holdout[0]["dataset"], "holdout");
    let canary = env.samples_in("fraud_detector", "v2.1", "precision", "canary");
    assert_eq!(canary[0]["value"], 0.5);
    assert_eq!(
        env.samples_in("fraud_detector", "v2.1", "precision", "default"),
        samples
    );
    let history = env.json(&[
        "metrics",
        "history",
        "fraud_detector",
        "v2.1",
        "--metric",
        "precision",
        "--hours",
        "1000000",
    ]);
    assert_eq!(history["summary"]["count"], 1);
    assert_eq!(history["summary"]["max"], 0.94);
    assert_eq!(history["dataset"], "default");

    let per_metric = env.json(&[
        "metrics",
        "history",
        "fraud_detector",
        "v2.1",
        "--hours",
        "1000000",
        "--dataset",
        "holdout",
    ]);
    assert_eq!(per_metric["dataset"], "holdout");
    assert_eq!(per_metric["metrics"][0]["metric"], "precision");
    assert_eq!(per_metric["metrics"][0]["direction"], "higher_is_better");
    assert_eq!(per_metric["metrics"][0]["last_value"], 0.912345);

    let models = env.json(&["models", "list"]);
    assert_eq!(
        models[0]["datasets"],
        serde_json::json!(["default", "canary", "holdout"])
    );
    // A dataset without samples is named, with the ones there are.
    let out = env.run(&[
        "check",
        "fraud_detector",
        "v2.1",
        "--metric",
        "precision",
        "--dataset",
        "prod",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("has no samples in dataset prod (datasets: default, canary, holdout"),
        "{stderr}"
    );
}

#[test]
fn recording_without_a_time_uses_now_and_appears_in_the_default_window() {
    let env = Env::new();
    env.ok(&["metrics", "record", "m", "v1", "latency", "12.5"]);
    let history = env.json(&["metrics", "history", "m", "v1", "--metric", "latency"]);
    assert_eq!(history["samples"][0]["value"], 12.5);
}

#[test]
fn each_kind_of_bad_input_is_refused_naming_the_field_and_nothing_is_stored() {
    let env = Env::new();
    let long = "x".repeat(129);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["bad name", "v1", "accuracy", "0.9"], "model"),
        (vec!["m", "", "accuracy", "0.9"], "version"),
        (vec!["m", "v1", &long, "0.9"], "metric"),
        (vec!["m", "v1", "accuracy", "NaN"], "value"),
        (vec!["m", "v1", "accuracy", "inf"], "value"),
        (vec!["m", "v1", "accuracy", "1.2"], "value"),
        (vec!["m", "v1", "latency", "-3"], "value"),
        (vec!["m", "v1", "r2_score", "1.5"], "value"),
        (vec!["m", "v1", "accuracy", "ninety"], "value"),
        (
            vec!["m", "v1", "accuracy", "0.9", "--at", "yesterday"],
            "timestamp",
        ),
        (
            vec!["m", "v1", "accuracy", "0.9", "--dataset", "a/b"],
            "dataset",
        ),
    ];
    for (args, field) in cases {
        let mut all = vec!["metrics", "record"];
        all.extend(&args);
        let out = env.run(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(stderr.contains(&format!("{field}:")), "{args:?}: {stderr}");
    }
    assert_eq!(env.json(&["models", "list"]), serde_json::json!([]));
}

#[test]
fn declared_custom_metric_range_is_enforced() {
    let env = Env::new();
    env.ok(&[
        "metrics",
        "define",
        "queue_ms",
        "--lower-is-better",
        "--min",
        "0",
    ]);
    let out = env.run(&["metrics", "record", "m", "v1", "queue_ms", "-1"]);
    assert!(!out.status.success());
    env.ok(&["metrics", "record", "m", "v1", "queue_ms", "3"]);
    let history = env.json(&["metrics", "history", "m", "v1", "--hours", "1"]);
    assert_eq!(history["metrics"][0]["direction"], "lower_is_better");
}

#[test]
fn import_stores_good_lines_reports_bad_ones_by_line_and_fails() {
    let env = Env::new();
    let file = env.write(
        "mixed.csv",
        "model,version,metric,timestamp_ms,value\n\
         m,v1,accuracy,1000,0.91\n\
         m,v1,accuracy,2000,1.7\n\
         m,v1,accuracy,3000,0.93\n\
         m,v1,accuracy,oops,0.94\n\
         m,v1\n\
         m,v1,latency,4000,12.25\n",
    );
    let out = env.run(&["metrics", "import", path_str(&file), "--format", "json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("line 3: value:"), "{stderr}");
    assert!(stderr.contains("line 5: timestamp:"), "{stderr}");
    assert!(stderr.contains("line 6: "), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (report["imported"].as_u64(), report["rejected"].as_u64()),
        (Some(3), Some(3))
    );
    let values: Vec<f64> = env
        .samples("m", "v1", "accuracy")
        .iter()
        .map(|s| s["value"].as_f64().unwrap())
        .collect();
    assert_eq!(values, [0.91, 0.93]);
    assert_eq!(env.samples("m", "v1", "latency")[0]["value"], 12.25);
}

#[test]
fn importing_a_file_again_says_its_samples_are_unchanged_not_imported_anew() {
    let env = Env::new();
    let file = env.write(
        "week.csv",
        "model,version,metric,timestamp_ms,value\n\
         m,v1,accuracy,1000,0.91\n\
         m,v1,accuracy,2000,0.92\n\
         m,v1,latency,1000,12.5\n",
    );
    let counts = |report: &Value| {
        ["imported", "new", "replaced", "unchanged"].map(|k| report[k].as_u64().unwrap_or(u64::MAX))
    };
    let first = env.json(&["metrics", "import", path_str(&file)]);
    assert_eq!(counts(&first), [3, 3, 0, 0]);
    // The same file again: every sample is stored already, with the same value.
    let out = env.run(&["metrics", "import", path_str(&file), "--format", "table"]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for header in ["new", "replaced", "unchanged"] {
        assert!(stdout.contains(header), "{stdout}");
    }
    assert!(
        stderr.contains("all 3 samples were stored already with these values: nothing changed"),
        "{stderr}"
    );
    let again = env.json(&["metrics", "import", path_str(&file)]);
    assert_eq!(counts(&again), [3, 0, 0, 3]);
    // A corrected value, a new timestamp and an unchanged line.
    let corrected = env.write(
        "corrected.csv",
        "model,version,metric,timestamp_ms,value\n\
         m,v1,accuracy,1000,0.81\n\
         m,v1,accuracy,3000,0.93\n\
         m,v1,latency,1000,12.5\n",
    );
    let report = env.json(&["metrics", "import", path_str(&corrected)]);
    assert_eq!(counts(&report), [3, 1, 1, 1]);
    let values: Vec<f64> = env
        .samples("m", "v1", "accuracy")
        .iter()
        .map(|s| s["value"].as_f64().unwrap())
        .collect();
    assert_eq!(values, [0.81, 0.92, 0.93]);
}

#[test]
fn import_reads_json_lines_and_headerless_csv() {
    let env = Env::new();
    let jsonl = env.write(
        "in.jsonl",
        "{\"model\":\"m\",\"version\":\"v1\",\"metric\":\"mae\",\"value\":0.5,\"timestamp\":\"2024-01-01T00:00:00Z\"}\n\
         \n\
         {\"model_name\":\"m\",\"model_version\":\"v1\",\"metric_type\":\"mae\",\"metric_value\":0.25,\"timestamp\":1704067260000,\"dataset\":\"d1\"}\n",
    );
    env.ok(&["metrics", "import", path_str(&jsonl)]);
    let csv = env.write("plain.csv", "m,v1,mae,0.75,1704067320000,d2\n");
    env.ok(&["metrics", "import", path_str(&csv)]);
    let value_in = |dataset: &str| -> Vec<f64> {
        env.samples_in("m", "v1", "mae", dataset)
            .iter()
            .map(|s| s["value"].as_f64().unwrap())
            .collect()
    };
    assert_eq!(value_in("default"), [0.5]);
    assert_eq!(value_in("d1"), [0.25]);
    assert_eq!(value_in("d2"), [0.75]);
    assert_eq!(env.samples_in("m", "v1", "mae", "d2")[0]["dataset"], "d2");
    let bad = env.write("bad.jsonl", "{\"model\":\"m\"}\nnot json\n");
    let out = env.run(&["metrics", "import", path_str(&bad)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("line 1: version: missing")
            && stderr.contains("line 2: line: invalid JSON"),
        "{stderr}"
    );
}

/// JSON Lines are read by the HTTP API's rules (issue 15, point 7): a value as text, a
/// name as a number and unknown fields are refused there as they are over HTTP, named
/// the same way; and a CSV header naming a column modelwatch does not read is refused
/// before anything is stored.
#[test]
fn import_takes_json_lines_by_the_api_rules_and_refuses_unknown_csv_columns() {
    let env = Env::new();
    let lines = env.write(
        "strict.jsonl",
        "{\"model\":\"m\",\"version\":\"v1\",\"metric\":\"mae\",\"value\":\"0.5\",\"timestamp\":1000}\n\
         {\"model\":5,\"version\":\"v1\",\"metric\":\"mae\",\"value\":0.5,\"timestamp\":1000}\n\
         {\"model\":\"m\",\"version\":\"v1\",\"metric\":\"mae\",\"value\":0.5,\"timestamp\":1000,\"colour\":\"red\"}\n\
         {\"model\":\"m\",\"version\":\"v1\",\"metric\":\"\",\"value\":0.5,\"timestamp\":1000}\n\
         {\"model\":\"m\",\"version\":\"v1\",\"metric\":\"mae\",\"value\":0.5,\"timestamp\":1.5}\n\
         {\"model\":\"m\",\"version\":\"v1\",\"metric\":\"accuracy\",\"value\":1.5,\"timestamp\":1000}\n\
         {\"model\":\"m\",\"version\":\"v1\",\"metric\":\"mae\",\"value\":0.5}\n\
         {\"model\":\"m\",\"version\":\"v1\",\"metric\":\"mae\",\"value\":0.25,\"timestamp\":2000}\n",
    );
    let out = env.run(&["metrics", "import", path_str(&lines), "--format", "json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for expected in [
        "line 1: value: invalid type: string \"0.5\", expected f64",
        "line 2: model: invalid type: integer `5`, expected a string",
        "line 3: colour: unknown field",
        "line 4: metric: must not be empty",
        "line 5: timestamp: 1.5 is not a timestamp",
        "line 6: value:",
        "line 7: timestamp: missing",
    ] {
        assert!(stderr.contains(expected), "{expected}\n{stderr}");
    }
    assert!(!stderr.contains("metric: metric:"), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (report["imported"].as_u64(), report["rejected"].as_u64()),
        (Some(1), Some(7))
    );

    let csv = env.write(
        "extra.csv",
        "model,version,metric,value,timestamp,region\nm,v1,mae,0.75,3000,eu\n",
    );
    let out = env.run(&["metrics", "import", path_str(&csv)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("unknown column \"region\"") && stderr.contains("line 1"),
        "{stderr}"
    );
    let values: Vec<f64> = env
        .samples("m", "v1", "mae")
        .iter()
        .map(|s| s["value"].as_f64().unwrap())
        .collect();
    assert_eq!(values, [0.25], "nothing of the refused CSV was stored");
}

#[test]
fn listings_come_as_table_json_and_csv() {
    let env = Env::new();
    env.ok(&[
        "metrics",
        "record",
        "alpha",
        "v1",
        "recall",
        "0.8",
        "--at",
        "2024-01-01T00:00:00Z",
    ]);
    env.ok(&[
        "metrics",
        "record",
        "alpha",
        "v1",
        "accuracy",
        "0.9",
        "--at",
        "2024-01-02T00:00:00Z",
    ]);
    let json = env.json(&["models", "list"]);
    assert_eq!(
        json[0]["metrics"],
        serde_json::json!(["accuracy", "recall"])
    );
    assert_eq!(json[0]["last_timestamp"], "2024-01-02T00:00:00.000Z");
    let csv = env.ok(&["models", "list", "--format", "csv"]);
    assert_eq!(
        csv,
        "model,version,metrics,datasets,first_sample,last_sample\nalpha,v1,accuracy recall,default,2024-01-01T00:00:00.000Z,2024-01-02T00:00:00.000Z\n"
    );
    let table = env.ok(&["models", "list", "--format", "table"]);
    assert!(
        table.contains("alpha") && table.contains("accuracy recall"),
        "{table}"
    );
}

#[test]
fn prune_deletes_old_samples_keeps_recent_ones_and_prints_the_counts() {
    let env = Env::new();
    let recent = minutes_ago(5);
    for (value, at) in [
        ("0.91", "2001-01-01T00:00:00Z"),
        ("0.92", "2001-01-02T00:00:00Z"),
        ("0.93", recent.as_str()),
    ] {
        env.ok(&[
            "metrics", "record", "m", "v1", "accuracy", value, "--at", at,
        ]);
    }
    env.ok(&[
        "metrics",
        "record",
        "m",
        "v2",
        "latency",
        "12",
        "--at",
        "2001-01-01T00:00:00Z",
    ]);

    let pruned = env.json(&[
        "prune",
        "--samples-older-than",
        "30d",
        "--notifications-older-than",
        "30d",
    ]);
    assert_eq!(pruned[0]["kind"], "samples");
    assert_eq!(pruned[0]["removed"], 3);
    assert_eq!(pruned[1]["kind"], "notifications");
    assert_eq!(pruned[1]["removed"], 0);
    let kept = env.samples("m", "v1", "accuracy");
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0]["value"], 0.93);
    assert!(env.samples("m", "v2", "latency").is_empty());

    // Idempotent, and the table names what went.
    let table = env.ok(&["prune", "--samples-older-than", "30d", "--format", "table"]);
    assert!(table.contains("samples"), "{table}");
    assert!(table.contains(" 0 "), "{table}");
    assert_eq!(env.samples("m", "v1", "accuracy").len(), 1);
}

#[test]
fn prune_refuses_a_missing_or_too_short_period() {
    let env = Env::new();
    env.ok(&["metrics", "record", "m", "v1", "accuracy", "0.9"]);
    let out = env.run(&["prune"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to prune"));
    // A bare number is seconds: almost certainly not what was meant.
    let out = env.run(&["prune", "--samples-older-than", "90"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--samples-older-than"), "{stderr}");
    assert!(stderr.contains("1h minimum"), "{stderr}");
    assert_eq!(env.samples("m", "v1", "accuracy").len(), 1);
}

#[test]
fn newer_database_is_refused_with_a_clear_message() {
    let env = Env::new();
    env.ok(&["metrics", "record", "m", "v1", "accuracy", "0.9"]);
    bump_schema_version(&env.db());
    let out = env.run(&["models", "list"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("upgrade modelwatch"));
}

/// Sets the schema version far ahead using the sqlite3 file format directly: the
/// user_version is the big-endian u32 at byte offset 60 of the header.
fn bump_schema_version(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[60..64].copy_from_slice(&999u32.to_be_bytes());
    std::fs::write(path, bytes).unwrap();
}

/// kill -9 in the middle of a long import: every batch the importer reported as committed
/// is in the database, exactly, and what is stored is a prefix of the file.
#[test]
fn kill_during_import_loses_no_reported_batch() {
    let env = Env::new();
    let path = env.dir.path().join("big.csv");
    {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        for i in 0..2_000_000u64 {
            writeln!(
                file,
                "m,v1,accuracy,0.{:06},{}",
                i % 1_000_000,
                1_704_067_200_000 + i * 1000
            )
            .unwrap();
        }
    }
    let mut child = env
        .command(&["metrics", "import", path_str(&path), "--verbose"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut reported = 0u64;
    for line in stderr.lines() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("committed through line ") {
            reported = rest.split_whitespace().next().unwrap().parse().unwrap();
            if reported >= 50_000 {
                break;
            }
        }
    }
    assert!(
        reported >= 50_000,
        "the import never reported enough commits"
    );
    child.kill().unwrap();
    child.wait().unwrap();

    let samples = env.samples("m", "v1", "accuracy");
    assert!(
        samples.len() as u64 >= reported,
        "{} stored < {reported} reported",
        samples.len()
    );
    assert!(samples.len() < 2_000_000, "the import was not interrupted");
    assert_eq!(samples.len() % 10_000, 0, "a batch was half-written");
    for (i, sample) in samples.iter().enumerate().step_by(997) {
        let expected: f64 = format!("0.{:06}", i % 1_000_000).parse().unwrap();
        assert_eq!(sample["value"].as_f64().unwrap(), expected);
    }
}

#[test]
fn postgres_location_works_for_every_command() {
    let env = Env::new();
    let (_runtime, database) = postgres_database("cli");
    let pg = |args: &[&str]| {
        let mut all = vec!["--db", database.url()];
        all.extend(args);
        env.ok(&all)
    };
    pg(&[
        "metrics",
        "define",
        "queue_ms",
        "--lower-is-better",
        "--min",
        "0",
    ]);
    pg(&[
        "metrics",
        "record",
        "m",
        "v1",
        "queue_ms",
        "4.5",
        "--at",
        "1000",
        "--dataset",
        "canary",
    ]);
    let out = pg(&[
        "metrics",
        "history",
        "m",
        "v1",
        "--metric",
        "queue_ms",
        "--hours",
        "1000000",
        "--dataset",
        "canary",
        "--format",
        "json",
    ]);
    let history: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(history["samples"][0]["value"], 4.5);
    assert_eq!(history["samples"][0]["dataset"], "canary");
    let refused = env
        .command(&[
            "--db",
            database.url(),
            "metrics",
            "record",
            "m",
            "v1",
            "queue_ms",
            "-1",
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
}

/// Samples in a real influxd (started by the store's test support; the test fails when
/// influxd is missing), alerting state in an SQLite file beside the configuration file.
#[test]
fn influxdb_keeps_the_samples_and_a_file_beside_the_configuration_the_rest() {
    let env = Env::new();
    let influx = modelwatch::store::influx::testing::TestDatabase::create("cli");
    let config = env.write("modelwatch.toml", "[alerts]\nenable_alerts = true\n");
    let run = |args: &[&str]| {
        let mut all = vec!["--db", influx.location()];
        all.extend(args);
        let mut command = env.command(&all);
        command.env("MODELWATCH_CONFIG", &config);
        String::from_utf8(succeeded(&all, command.output().unwrap())).unwrap()
    };
    run(&[
        "metrics",
        "define",
        "queue_ms",
        "--lower-is-better",
        "--min",
        "0",
    ]);
    run(&[
        "metrics",
        "record",
        "m",
        "v1",
        "queue_ms",
        "4.5",
        "--at",
        "1000",
        "--dataset",
        "canary",
    ]);
    let out = run(&[
        "metrics",
        "history",
        "m",
        "v1",
        "--metric",
        "queue_ms",
        "--hours",
        "1000000",
        "--dataset",
        "canary",
        "--format",
        "json",
    ]);
    let history: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(history["samples"][0]["value"], 4.5);
    assert_eq!(history["samples"][0]["dataset"], "canary");
    run(&["tokens", "create", "ci"]);
    assert!(env.dir.path().join("modelwatch-alerts.db").is_file());
    assert!(!env.db().exists(), "nothing went to the default database");
    // The same alerting state through --alerts-db, named explicitly.
    let alerts = env.dir.path().join("modelwatch-alerts.db");
    let listed = run(&[
        "--alerts-db",
        path_str(&alerts),
        "tokens",
        "list",
        "--format",
        "json",
    ]);
    assert!(listed.contains("\"ci\""), "{listed}");
}

/// `count` samples of model `fraud`, one a minute, sample i of metric `metrics[i % n]`
/// and version `v{1 + i % n}`, every `holdout_every`th in dataset `holdout`; `queue_ms`
/// defined as a custom metric first.
fn import_fraud_samples(env: &Env, count: i64, metrics: &[&str], holdout_every: i64) {
    env.ok(&[
        "metrics",
        "define",
        "queue_ms",
        "--lower-is-better",
        "--min",
        "0",
    ]);
    let n = metrics.len() as i64;
    let mut csv = String::from("model,version,metric,value,timestamp,dataset\n");
    for i in 0..count {
        let dataset = if i % holdout_every == 0 {
            "holdout"
        } else {
            ""
        };
        csv.push_str(&format!(
            "fraud,v{},{},{},{},{dataset}\n",
            1 + i % n,
            metrics[(i % n) as usize],
            (i % 100) as f64 / 100.0,
            1_700_000_000_000 + i * 60_000
        ));
    }
    env.ok(&[
        "metrics",
        "import",
        path_str(&env.write("samples.csv", &csv)),
    ]);
}

#[test]
fn migrate_refuses_a_typed_db_it_would_ignore_but_not_the_environment_s() {
    let env = Env::new();
    let dir = tempfile::tempdir().unwrap();
    let from = dir.path().join("from.db");
    let to = dir.path().join("to.db");
    let (from, to) = (from.to_str().unwrap(), to.to_str().unwrap());
    env.ok(&[
        "--db", from, "metrics", "record", "m", "v1", "accuracy", "0.9",
    ]);
    for flag in ["--db", "--alerts-db"] {
        let out = env.run(&[flag, "elsewhere.db", "migrate", "--from", from, "--to", to]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{flag}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "migrate does not use {flag}: name the source with --from"
            )),
            "{stderr}"
        );
        assert!(!std::path::Path::new(to).exists(), "nothing was migrated");
    }
    // MODELWATCH_DB names the installation for every command; migrate goes on without it.
    let args = ["migrate", "--from", from, "--to", to, "--format", "json"];
    let out = env
        .command(&args)
        .env("MODELWATCH_DB", dir.path().join("other.db"))
        .output()
        .unwrap();
    succeeded(&args, out);
}

#[test]
fn migrate_moves_a_populated_sqlite_file_to_postgres_with_counts_checked() {
    let env = Env::new();
    import_fraud_samples(&env, 25_000, &["accuracy", "latency", "queue_ms"], 1000);

    // The alerting state and tokens of a running installation: rules firing on fresh
    // samples, one alert acknowledged and one resolved (history, follow-up
    // notifications), a silence, tokens one of which is revoked.
    let channels = env.write(
        "channels.toml",
        "[channels.ops]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\n[channels.pager]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\n",
    );
    for (name, threshold) in [("low", "0.9"), ("very low", "0.6")] {
        env.json(&[
            "--config",
            path_str(&channels),
            "alerts",
            "create-rule",
            "fraud",
            "accuracy",
            "--name",
            name,
            "--threshold",
            threshold,
            "--operator",
            "lt",
            "--severity",
            "high",
            "--for",
            "1",
            "--channels",
            "ops,pager",
        ]);
    }
    let two_minutes_ago = minutes_ago(2);
    env.ok(&[
        "metrics",
        "record",
        "fraud",
        "v1",
        "accuracy",
        "0.5",
        "--at",
        &two_minutes_ago,
    ]);
    let fired = env.json(&["evaluate"]);
    let alerts: Vec<String> = fired["alerts_created"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(alerts.len(), 2, "{fired}");
    env.json(&["alerts", "acknowledge", &alerts[0], "ana"]);
    env.json(&[
        "alerts",
        "resolve",
        &alerts[1],
        "bo",
        "--notes",
        "retrained",
    ]);
    env.json(&[
        "silences",
        "add",
        "fraud",
        "--minutes",
        "60",
        "--by",
        "ana",
        "--comment",
        "retraining",
    ]);
    env.ok(&["tokens", "create", "ci", "--scope", "write"]);
    env.ok(&["tokens", "create", "grafana"]);
    env.ok(&["tokens", "revoke", "1"]);
    // One delivery pass: the firing notifications of the acknowledged and the resolved
    // alert are held back (skipped, finished now); the follow-ups wait for receivers
    // that are not there.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let channels: String = ["ops", "pager"]
        .iter()
        .map(|name| {
            format!(
                "[channels.{name}]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{closed_port}/{name}\"\n"
            )
        })
        .collect();
    let config = env.write("modelwatch.toml", &channels);
    let pass = env.json(&["--config", path_str(&config), "notify", "--once"]);
    assert_eq!(
        (&pass["skipped"], &pass["retried"]),
        (&4.into(), &4.into()),
        "{pass}"
    );
    let (_runtime, database) = postgres_database("migrate");

    let source = format!("sqlite:{}", path_str(&env.db()));
    let out = env.run(&[
        "migrate",
        "--from",
        &source,
        "--to",
        database.url(),
        "--format",
        "json",
    ]);
    assert!(
        out.status.success(),
        "migrate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["samples"], 25_001);
    // Three series of the default dataset and the holdout samples' three.
    assert_eq!(report["series"], 6);
    assert_eq!(report["metric_definitions"], 1);
    assert_eq!(report["mismatches"].as_array().unwrap().len(), 0);
    // Firing for two channels, then one acknowledgement and one resolution each.
    let copied = [
        ("rules", 2),
        ("rule_states", 2),
        ("alerts", 2),
        ("alert_transitions", 4),
        ("silences", 1),
        ("notifications", 8),
        ("tokens", 2),
    ];
    for (table, count) in copied {
        assert_eq!(report[table], count, "{table}: {report}");
    }
    assert_eq!(report["table_mismatches"].as_array().unwrap().len(), 0);

    // Alerting reads the same from both databases.
    let read = |db: &str, args: &[&str]| {
        let mut all = vec!["--db", db];
        all.extend(args);
        all.extend(["--format", "json"]);
        serde_json::from_str::<Value>(&env.ok(&all)).unwrap()
    };
    for args in [
        &["alerts", "list-rules"][..],
        &["alerts", "list", "--hours", "1000"],
        &["alerts", "history", &alerts[0]],
        &["alerts", "history", &alerts[1]],
        &["silences", "list", "--all"],
        &["tokens", "list"],
        &["notifications", "list"],
    ] {
        assert_eq!(read(&source, args), read(database.url(), args), "{args:?}");
    }
    // Finishing times came across (retention ages rows by them).
    let skipped = read(
        database.url(),
        &["notifications", "list", "--status", "skipped"],
    );
    let skipped = skipped.as_array().unwrap();
    assert_eq!(skipped.len(), 4, "{skipped:?}");
    assert!(
        skipped.iter().all(|n| n["finished_at"].is_string()),
        "{skipped:?}"
    );
    // Ids carry on after the copied ones.
    let created = env.ok(&["--db", database.url(), "tokens", "create", "later"]);
    let listed = read(database.url(), &["tokens", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 3, "{created}");
    assert_eq!(listed[2]["id"], 3, "{listed}");

    // Running it again copies nothing twice and still checks out.
    let again = env.run(&[
        "migrate",
        "--from",
        &source,
        "--to",
        database.url(),
        "--format",
        "json",
    ]);
    let report: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert!(
        !again.status.success(),
        "the extra token is a mismatch: {report}"
    );
    let mismatches = report["table_mismatches"].as_array().unwrap();
    assert_eq!(mismatches.len(), 1, "{report}");
    assert_eq!(mismatches[0]["table"], "tokens");
    assert_eq!(
        (
            mismatches[0]["source"].as_u64(),
            mismatches[0]["target"].as_u64()
        ),
        (Some(2), Some(3))
    );

    // The same listing and the same exact values from both databases.
    let listing = |db: &str| {
        let out = env.ok(&["--db", db, "models", "list", "--format", "json"]);
        serde_json::from_str::<Value>(&out).unwrap()
    };
    assert_eq!(listing(&source), listing(database.url()));
    let history = |db: &str, version: &str, metric: &str| {
        let out = env.ok(&[
            "--db", db, "metrics", "history", "fraud", version, "--metric", metric, "--hours",
            "1000000", "--format", "json",
        ]);
        serde_json::from_str::<Value>(&out).unwrap()["samples"].clone()
    };
    assert_eq!(
        history(&source, "v1", "accuracy"),
        history(database.url(), "v1", "accuracy")
    );
    assert_eq!(
        history(&source, "v3", "queue_ms"),
        history(database.url(), "v3", "queue_ms")
    );

    // A missing source is refused rather than created empty.
    let missing = env.run(&[
        "migrate",
        "--from",
        "sqlite:/nonexistent/x.db",
        "--to",
        database.url(),
    ]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("does not exist"));
}

/// SQLite → InfluxDB (samples) + an SQLite file (alerting state) → SQLite again: every
/// sample, definition and rule arrives, counted on both sides, each way.
#[test]
fn migrate_moves_samples_into_influxdb_and_back_with_counts_checked() {
    let env = Env::new();
    import_fraud_samples(&env, 6_000, &["accuracy", "queue_ms"], 500);
    env.json(&[
        "alerts",
        "create-rule",
        "fraud",
        "accuracy",
        "--name",
        "low",
        "--threshold",
        "0.5",
        "--operator",
        "lt",
    ]);
    let influx = modelwatch::store::influx::testing::TestDatabase::create("migrate");
    let source = format!("sqlite:{}", path_str(&env.db()));

    let refused = env.run(&["migrate", "--from", &source, "--to", influx.location()]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--to-alerts-db"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    let alerts = env.dir.path().join("influx-alerts.db");
    let back = env.dir.path().join("back.db");
    let migrate = |args: &[&str]| {
        let mut all = vec!["migrate"];
        all.extend(args);
        all.extend(["--format", "json"]);
        let out = env.run(&all);
        assert!(
            out.status.success(),
            "migrate {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let there = migrate(&[
        "--from",
        &source,
        "--to",
        influx.location(),
        "--to-alerts-db",
        path_str(&alerts),
    ]);
    let back_location = format!("sqlite:{}", path_str(&back));
    let again = migrate(&[
        "--from",
        influx.location(),
        "--from-alerts-db",
        path_str(&alerts),
        "--to",
        &back_location,
    ]);
    for report in [&there, &again] {
        assert_eq!(report["samples"], 6_000, "{report}");
        // v1 accuracy and v2 queue_ms, and v1 accuracy on holdout (every 500th sample).
        assert_eq!(report["series"], 3, "{report}");
        assert_eq!(report["metric_definitions"], 1, "{report}");
        assert_eq!(report["rules"], 1, "{report}");
        assert_eq!(
            report["mismatches"].as_array().unwrap().len(),
            0,
            "{report}"
        );
        assert_eq!(
            report["table_mismatches"].as_array().unwrap().len(),
            0,
            "{report}"
        );
    }
    let history = |db: &str, version: &str, metric: &str, dataset: &str| {
        let out = env.ok(&[
            "--db",
            db,
            "metrics",
            "history",
            "fraud",
            version,
            "--metric",
            metric,
            "--hours",
            "1000000",
            "--dataset",
            dataset,
            "--format",
            "json",
        ]);
        serde_json::from_str::<Value>(&out).unwrap()["samples"].clone()
    };
    for (version, metric, dataset) in [
        ("v1", "accuracy", "default"),
        ("v2", "queue_ms", "default"),
        ("v1", "accuracy", "holdout"),
    ] {
        let before = history(&source, version, metric, dataset);
        assert!(before.as_array().is_some_and(|s| !s.is_empty()));
        assert_eq!(before, history(&back_location, version, metric, dataset));
    }
    let rules = |db: &str| {
        let out = env.ok(&["--db", db, "alerts", "list-rules", "--format", "json"]);
        serde_json::from_str::<Value>(&out).unwrap()
    };
    assert_eq!(rules(&source), rules(&back_location));
}

/// SQLite → Prometheus (samples) + an SQLite file (alerting state) → SQLite again: every
/// sample, definition and rule arrives, counted on both sides, each way (Prometheus's
/// remote write in, remote read and PromQL out).
#[test]
fn migrate_moves_samples_into_prometheus_and_back_with_counts_checked() {
    let env = Env::new();
    import_fraud_samples(&env, 6_000, &["accuracy", "queue_ms"], 500);
    env.json(&[
        "alerts",
        "create-rule",
        "fraud",
        "accuracy",
        "--name",
        "low",
        "--threshold",
        "0.5",
        "--operator",
        "lt",
    ]);
    let prometheus = modelwatch::store::prometheus::testing::TestPrometheus::start();
    let location = prometheus.location();
    let source = format!("sqlite:{}", path_str(&env.db()));

    let refused = env.run(&["migrate", "--from", &source, "--to", &location]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--to-alerts-db"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    let alerts = env.dir.path().join("prometheus-alerts.db");
    let back = env.dir.path().join("back.db");
    let migrate = |args: &[&str]| {
        let mut all = vec!["migrate"];
        all.extend(args);
        all.extend(["--format", "json"]);
        let out = env.run(&all);
        assert!(
            out.status.success(),
            "migrate {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let there = migrate(&[
        "--from",
        &source,
        "--to",
        &location,
        "--to-alerts-db",
        path_str(&alerts),
    ]);
    let back_location = format!("sqlite:{}", path_str(&back));
    let again = migrate(&[
        "--from",
        &location,
        "--from-alerts-db",
        path_str(&alerts),
        "--to",
        &back_location,
    ]);
    for report in [&there, &again] {
        assert_eq!(report["samples"], 6_000, "{report}");
        assert_eq!(report["series"], 3, "{report}");
        assert_eq!(report["metric_definitions"], 1, "{report}");
        assert_eq!(report["rules"], 1, "{report}");
        assert_eq!(
            report["mismatches"].as_array().unwrap().len(),
            0,
            "{report}"
        );
        assert_eq!(
            report["table_mismatches"].as_array().unwrap().len(),
            0,
            "{report}"
        );
    }
    let history = |db: &str, version: &str, metric: &str, dataset: &str| {
        let out = env.ok(&[
            "--db",
            db,
            "metrics",
            "history",
            "fraud",
            version,
            "--metric",
            metric,
            "--hours",
            "1000000",
            "--dataset",
            dataset,
            "--format",
            "json",
        ]);
        serde_json::from_str::<Value>(&out).unwrap()["samples"].clone()
    };
    for (version, metric, dataset) in [
        ("v1", "accuracy", "default"),
        ("v2", "queue_ms", "default"),
        ("v1", "accuracy", "holdout"),
    ] {
        let before = history(&source, version, metric, dataset);
        assert!(before.as_array().is_some_and(|s| !s.is_empty()));
        assert_eq!(before, history(&back_location, version, metric, dataset));
    }
}

fn demo_env() -> Env {
    let env = Env::new();
    env.ok(&["demo", "--format", "json"]);
    env
}

#[test]
fn check_calls_the_demo_drop_degraded_and_explains_it_in_both_formats() {
    let env = demo_env();
    let args = [
        "check",
        "fraud_detector",
        "v2.1",
        "--metric",
        "accuracy",
        "--comparison-hours",
        "1",
    ];
    let (result, code) = check_json(&env, &args[1..]);
    assert_eq!(code, Some(2), "degraded");
    for field in [
        "model",
        "version",
        "metric",
        "current_value",
        "baseline_value",
        "absolute_change",
        "percentage_change",
        "degradation_percentage",
        "is_degraded",
        "severity",
        "recommendation",
        "baseline_samples",
        "comparison_samples",
        "p_value",
        "method",
        "status",
    ] {
        assert!(result.get(field).is_some(), "missing {field}: {result}");
    }
    assert_eq!(result["status"], "degraded");
    assert_eq!(result["is_degraded"], true);
    assert_eq!(result["severity"], "high");
    assert_eq!(result["comparison_samples"], 12);
    let table = env.run(&[&args[..], &["--format", "table"]].concat());
    assert_eq!(table.status.code(), Some(2));
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(table.contains("degraded") && table.contains("→"), "{table}");

    let healthy = env.json(&["check", "fraud_detector", "v2.0", "--metric", "accuracy"]);
    assert_eq!(healthy["status"], "ok");
    assert_eq!(healthy["is_degraded"], false);
    // The daily traffic cycle raises latency in the evening: not a degradation.
    let seasonal = env.json(&[
        "check",
        "recommender",
        "v3.0",
        "--metric",
        "latency",
        "--comparison-hours",
        "1",
    ]);
    assert_eq!(seasonal["is_degraded"], false);
}

/// `check`'s JSON and its exit status (0 ok, 2 degraded, 3 insufficient data).
fn check_json(env: &Env, args: &[&str]) -> (Value, Option<i32>) {
    let mut all = vec!["check"];
    all.extend_from_slice(args);
    all.extend(["--format", "json"]);
    let out = env.run(&all);
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{all:?}: {}", String::from_utf8_lossy(&out.stderr)));
    (json, out.status.code())
}

#[test]
fn check_with_too_little_data_gives_no_verdict() {
    let env = Env::new();
    env.ok(&["metrics", "record", "m", "v1", "accuracy", "0.9"]);
    let (result, code) = check_json(&env, &["m", "v1", "--metric", "accuracy"]);
    assert_eq!(code, Some(3), "insufficient data");
    assert_eq!(result["status"], "insufficient_data");
    assert_eq!(result["is_degraded"], false);
    assert_eq!(result["p_value"], Value::Null);
    let out = env.run(&[
        "check",
        "m",
        "v1",
        "--metric",
        "accuracy",
        "--seasonal",
        "monthly",
    ]);
    assert!(!out.status.success());
}

#[test]
fn monitor_shows_health_trends_and_degradations() {
    let env = demo_env();
    let monitor = env.json(&["monitor", "fraud_detector", "v2.1"]);
    let history = &monitor["history"];
    assert_eq!(history["metric_summaries"].as_array().unwrap().len(), 4);
    assert!(
        ["fair", "poor", "good"].contains(&history["overall_health"].as_str().unwrap()),
        "{history}"
    );
    assert_eq!(history["health_trend"], "degrading");
    assert!(history["health_reasons"][0]
        .as_str()
        .unwrap()
        .contains("degraded against its baseline"));
    assert!(history["health_formula"].as_str().is_some());
    let degraded: Vec<&str> = monitor["degradations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["is_degraded"] == true)
        .map(|d| d["metric"].as_str().unwrap())
        .collect();
    assert_eq!(degraded, ["accuracy", "precision"]);
    let table = env.ok(&["monitor", "fraud_detector", "v2.1", "--format", "table"]);
    assert!(
        table.contains("health") && table.contains("degrading") && table.contains("degraded"),
        "{table}"
    );
}

#[test]
fn compare_names_the_better_version_with_an_interval() {
    let env = demo_env();
    let result = env.json(&[
        "compare",
        "fraud_detector",
        "v2.0",
        "v2.1",
        "--metric",
        "accuracy",
        "--hours",
        "1",
    ]);
    assert_eq!(result["verdict"], "champion_better");
    let ci = &result["confidence_interval"];
    assert!(ci["lower"].as_f64().unwrap() < ci["upper"].as_f64().unwrap());
    assert!(ci["upper"].as_f64().unwrap() < 0.0);
    let table = env.ok(&[
        "compare",
        "fraud_detector",
        "v2.0",
        "v2.1",
        "--metric",
        "accuracy",
        "--format",
        "table",
    ]);
    assert!(table.contains("verdict"), "{table}");
    let csv = env.ok(&[
        "compare",
        "fraud_detector",
        "v2.0",
        "v2.1",
        "--metric",
        "accuracy",
        "--format",
        "csv",
    ]);
    assert!(csv.starts_with("metric,champion,challenger"), "{csv}");
}

#[test]
fn monitor_lists_the_versions_open_alerts() {
    let env = demo_env();
    env.ok(&[
        "alerts",
        "create-rule",
        "fraud_detector",
        "accuracy",
        "--name",
        "Low accuracy",
        "--threshold",
        "0.9",
        "--operator",
        "lt",
        "--severity",
        "high",
        "--version",
        "v2.1",
        "--for",
        "1",
    ]);
    env.ok(&["evaluate", "fraud_detector", "v2.1"]);
    let monitor = env.json(&["monitor", "fraud_detector", "v2.1"]);
    let alerts = monitor["open_alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{monitor}");
    assert_eq!(alerts[0]["rule_name"], "Low accuracy");
    assert_eq!(alerts[0]["status"], "active");
    let other = env.json(&["monitor", "fraud_detector", "v2.0"]);
    assert_eq!(other["open_alerts"], serde_json::json!([]));
    let table = env.ok(&["monitor", "fraud_detector", "v2.1", "--format", "table"]);
    assert!(
        table.contains("open alerts") && table.contains("Low accuracy"),
        "{table}"
    );
}

/// Runs `args` with standard output a pipe whose reader has already gone (`| head -c0`).
fn into_closed_pipe(env: &Env, args: &[&str]) -> Output {
    let mut child = env
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    child.wait_with_output().unwrap()
}

fn assert_no_panic(args: &[&str], out: &Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(101), "{args:?} panicked: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
}

#[test]
fn a_token_whose_secret_cannot_be_printed_is_never_created() {
    let env = Env::new();
    let args = ["tokens", "create", "ci", "--scope", "read"];
    let out = into_closed_pipe(&env, &args);
    assert_no_panic(&args, &out);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no token was created"), "{stderr}");
    assert_eq!(env.json(&["tokens", "list"]), serde_json::json!([]));

    // `| head -c1`: the reader takes a byte and leaves. The whole secret went into the
    // pipe before the token was stored, so the token exists and nothing panicked.
    let mut child = env
        .command(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 1];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_no_panic(&args, &out);
    assert!(out.status.success());
    assert_eq!(&first, b"m");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("shown only this once"), "{stderr}");
    assert_eq!(env.json(&["tokens", "list"])[0]["name"], "ci");
}

#[test]
fn no_command_panics_when_its_reader_goes_away() {
    let env = demo_env();
    for args in [
        &["models", "list", "--format", "table"][..],
        &["models", "list", "--format", "json"],
        &["models", "list", "--format", "csv"],
        &[
            "metrics",
            "history",
            "fraud_detector",
            "v2.1",
            "--format",
            "table",
        ],
        &[
            "check",
            "fraud_detector",
            "v2.1",
            "--metric",
            "accuracy",
            "--format",
            "table",
        ],
        &["monitor", "fraud_detector", "v2.1", "--format", "table"],
        &["alerts", "list", "--format", "table"],
        &["tokens", "list", "--format", "table"],
        &["--help"],
    ] {
        let out = into_closed_pipe(&env, args);
        assert_no_panic(args, &out);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `MODELWATCH_DB=/path/to/precious.db scripts/demo` once replaced that database with
/// demo data. The script runs here as written, with a stand-in `cargo` (the build is this
/// test's binary) and a target directory of its own.
#[test]
fn the_demo_script_leaves_the_users_database_alone_and_prints_its_real_address() {
    use std::os::unix::fs::PermissionsExt;

    let env = Env::new();
    env.ok(&["metrics", "record", "precious", "v1", "accuracy", "0.9"]);
    let bin = env.dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::fs::write(bin.join("cargo"), "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(bin.join("cargo"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let target = env.dir.path().join("target");
    std::fs::create_dir_all(target.join("release")).unwrap();
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_modelwatch"),
        target.join("release/modelwatch"),
    )
    .unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut demo = Command::new(repo.join("scripts/demo"))
        .args(["--listen", "127.0.0.1:0"])
        .env(
            "PATH",
            format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
        )
        .env("CARGO_TARGET_DIR", &target)
        .env("MODELWATCH_DB", env.db())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(demo.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let address = first
        .strip_prefix("modelwatch listening on http://")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("{first}"))
        .to_owned();
    assert!(first.ends_with("(auth off: no token needed)"), "{first}");
    assert!(
        !address.ends_with(":7878"),
        "port 0 was asked for: {address}"
    );
    let hint = lines.next().unwrap().unwrap();
    assert!(
        hint.contains(&format!("http://{address}/")) && !hint.contains("7878"),
        "the hint names the real address: {hint}"
    );
    let response = common::exchange(
        &address,
        &format!("GET /api/v1/models HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"),
        Some(std::time::Duration::from_secs(10)),
    );
    let (status, body) = common::status_and_body(&response);
    assert_eq!(status, 200);
    assert!(
        body.contains("fraud_detector") && !body.contains("precious"),
        "{body}"
    );
    common::terminate(&mut demo);
    let mut stderr = String::new();
    std::io::Read::read_to_string(demo.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("leaves that database alone"), "{stderr}");

    // The user's database holds what it held, and no demo data.
    let models = env.json(&["models", "list"]);
    assert_eq!(models.as_array().unwrap().len(), 1, "{models}");
    assert_eq!(models[0]["model"], "precious");
    assert!(target.join("demo/modelwatch-demo.db").exists());
}

/// `./modelwatch.toml` is read by every command, not only by `serve`.
#[test]
fn every_command_reads_modelwatch_toml_in_the_working_directory() {
    let env = Env::new();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/modelwatch.toml"),
        env.dir.path().join("modelwatch.toml"),
    )
    .unwrap();
    let here = |args: &[&str]| {
        let out = env
            .command(args)
            .current_dir(env.dir.path())
            .output()
            .unwrap();
        String::from_utf8(succeeded(args, out)).unwrap()
    };
    let channels: Value =
        serde_json::from_str(&here(&["channels", "list", "--format", "json"])).unwrap();
    assert_eq!(channels[0]["name"], "ops", "{channels}");
    let pass: Value =
        serde_json::from_str(&here(&["notify", "--once", "--format", "json"])).unwrap();
    assert_eq!(pass["claimed"], 0, "{pass}");

    // A named file that is missing is an error stating its cause once.
    let out = env.run(&["--config", "/nonexistent/m.toml", "models", "list"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/m.toml"), "{stderr}");
    assert_eq!(stderr.matches("No such file").count(), 1, "{stderr}");
}

/// `--format id` prints only ids, for `rule=$(modelwatch … --format id)` in scripts.
#[test]
fn format_id_prints_only_the_ids() {
    let env = Env::new();
    let rule = env.ok(&[
        "alerts",
        "create-rule",
        "m",
        "accuracy",
        "--name",
        "Low",
        "--threshold",
        "0.9",
        "--operator",
        "lt",
        "--format",
        "id",
    ]);
    let rule = rule.trim();
    assert!(
        rule.starts_with("rule_") && !rule.contains(char::is_whitespace),
        "{rule}"
    );
    assert_eq!(
        env.ok(&["alerts", "list-rules", "--format", "id"]).trim(),
        rule
    );
    let shown = env.json(&["rules", "show", rule]);
    assert_eq!(shown["id"], rule);
    let out = env.run(&["models", "list", "--format", "id"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no ids"));
}

/// A misspelt name is an error naming what exists, never "insufficient data" with exit 0.
#[test]
fn check_on_an_unknown_model_version_or_metric_is_an_error_naming_what_exists() {
    let env = demo_env();
    for (args, expected) in [
        (
            ["fraud_detecter", "v2.1", "accuracy"],
            "no model named fraud_detecter has samples (models: churn_regressor, fraud_detector, recommender)",
        ),
        (
            ["fraud_detector", "v9", "accuracy"],
            "fraud_detector has no version v9 (versions: v2.0, v2.1)",
        ),
        (
            ["fraud_detector", "v2.1", "acuracy"],
            "fraud_detector v2.1 has no metric acuracy; did you mean accuracy?",
        ),
    ] {
        let out = env.run(&["check", args[0], args[1], "--metric", args[2]]);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let out = env.run(&["monitor", "fraud_detecter", "v2.1"]);
    assert_eq!(out.status.code(), Some(1));
    // A bad argument is an error (1), never mistaken for a verdict (2, 3).
    let out = env.run(&["check", "fraud_detector", "v2.1", "--metrc", "accuracy"]);
    assert_eq!(out.status.code(), Some(1));
    let help = env.ok(&["check", "--help"]);
    assert!(
        help.contains("2 degraded") && help.contains("3 insufficient data"),
        "{help}"
    );
    assert!(help.contains("daily|weekly"), "{help}");
}

#[test]
fn a_misspelt_built_in_metric_is_refused_with_a_hint() {
    let env = Env::new();
    let out = env.run(&["metrics", "record", "m", "v1", "acuracy", "0.9"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("did you mean accuracy?") && stderr.contains("metrics define acuracy"),
        "{stderr}"
    );
    let file = env.write("typo.csv", "model,version,metric,value,timestamp\nm,v1,precison,0.9,1714564800000\nm,v1,precision,0.9,1714564800000\n");
    let out = env.run(&["metrics", "import", path_str(&file)]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 2: metric") && stderr.contains("did you mean precision?"),
        "{stderr}"
    );
    // Declared, the name is a custom metric of its own.
    env.ok(&["metrics", "define", "acuracy", "--min", "0", "--max", "1"]);
    env.ok(&["metrics", "record", "m", "v1", "acuracy", "0.9"]);
}

#[test]
fn a_rule_naming_a_channel_that_is_not_configured_is_refused() {
    let env = Env::new();
    let rule = |extra: &[&str]| {
        let mut args = vec![
            "alerts",
            "create-rule",
            "m",
            "accuracy",
            "--name",
            "Low",
            "--threshold",
            "0.9",
            "--operator",
            "lt",
            "--channels",
            "ops",
        ];
        args.extend_from_slice(extra);
        env.run(&args)
    };
    let out = rule(&[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no channels are configured") && stderr.contains("[channels.ops]"),
        "{stderr}"
    );
    let config = env.write(
        "m.toml",
        "[channels.team]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\n[channels.pager]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\n",
    );
    let out = rule(&["--config", path_str(&config)]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(r#"no channel named "ops" (configured: pager, team)"#),
        "{stderr}"
    );
    assert_eq!(env.json(&["alerts", "list-rules"]), serde_json::json!([]));
}

/// Hours and window sizes out of range are refused naming the option, never a panic
/// (issue 15: `--hours 1e300` could not be converted to a duration).
#[test]
fn out_of_range_hours_are_refused_naming_the_option() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    for args in [
        &["metrics", "history", "fraud", "v1", "--hours", "1e300"][..],
        &["monitor", "fraud", "v1", "--hours", "1e300"],
        &[
            "compare",
            "fraud",
            "v1",
            "v2",
            "--metric",
            "accuracy",
            "--hours=-5",
        ],
        &[
            "check",
            "fraud",
            "v1",
            "--metric",
            "accuracy",
            "--baseline-hours",
            "4294967295",
        ],
        &[
            "check",
            "fraud",
            "v1",
            "--metric",
            "accuracy",
            "--comparison-hours",
            "0",
        ],
    ] {
        let out = common::modelwatch(&db).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        // A usage error's exit code, not a panic's (101).
        assert!(
            matches!(out.status.code(), Some(1 | 2)),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        let option = args.iter().rev().find(|a| a.starts_with("--")).unwrap();
        let option = option.split('=').next().unwrap();
        assert!(stderr.contains(option), "{args:?}: {stderr}");
    }
}

/// Ids are copied from tables: at 80 and 120 columns no line is wider than the terminal
/// and every id is whole on its row (messages are cut instead).
#[test]
fn ids_never_wrap_in_80_and_120_column_tables() {
    let env = demo_env();
    let config = env.write(
        "c.toml",
        "[channels.ops]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\n",
    );
    env.ok(&[
        "--config",
        path_str(&config),
        "alerts",
        "create-rule",
        "fraud_detector",
        "accuracy",
        "--name",
        "A long rule name that says a great deal about what it watches",
        "--threshold",
        "0.9",
        "--operator",
        "lt",
        "--for",
        "1",
        "--channels",
        "ops",
    ]);
    env.ok(&["evaluate"]);
    env.ok(&[
        "silences",
        "add",
        "fraud_detector",
        "--minutes",
        "60",
        "--by",
        "ana",
        "--comment",
        "retraining the model with last month's labels, back tomorrow",
    ]);
    let alert_ids: Vec<String> = env
        .ok(&["alerts", "list", "--format", "id"])
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(!alert_ids.is_empty());
    for width in ["80", "120"] {
        for args in [
            &["alerts", "list"][..],
            &["alerts", "list-rules"],
            &["silences", "list"],
            &["monitor", "fraud_detector", "v2.1"],
            &["metrics", "history", "fraud_detector", "v2.1"],
            &["models", "list"],
            &["notifications", "list"],
        ] {
            let mut all = args.to_vec();
            all.extend(["--format", "table"]);
            let out = env.command(&all).env("COLUMNS", width).output().unwrap();
            let text = String::from_utf8(succeeded(&all, out)).unwrap();
            let limit: usize = width.parse().unwrap();
            // The tables' lines (prose around them wraps as the terminal wraps it).
            for line in text.lines().filter(|l| l.starts_with(['┌', '│', '╞', '└'])) {
                assert!(
                    line.chars().count() <= limit,
                    "{args:?} at {width} columns: {} wide:\n{text}",
                    line.chars().count()
                );
            }
            if args[0] == "alerts" && args[1] == "list" {
                for id in &alert_ids {
                    assert!(
                        text.lines().any(|l| l.contains(id.as_str())),
                        "{id} whole at {width} columns:\n{text}"
                    );
                }
            }
        }
    }
}

/// `monitor` shows one analysis: a degraded check makes the metric's trend degrading
/// (the 11 % crash is seen), the header agrees with the rows, and a version with open
/// alerts is not "excellent".
#[test]
fn monitor_shows_one_analysis_that_agrees_with_itself() {
    let env = demo_env();
    let config = env.write(
        "c.toml",
        "[channels.ops]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\n",
    );
    let monitor = env.json(&["monitor", "fraud_detector", "v2.1"]);
    let history = &monitor["history"];
    for degradation in monitor["degradations"].as_array().unwrap() {
        let metric = degradation["metric"].as_str().unwrap();
        let summary = history["metric_summaries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["metric"] == metric)
            .unwrap();
        if degradation["is_degraded"] == true {
            assert_eq!(summary["trend"], "degrading", "{metric}: {monitor}");
        }
    }
    // Two open alerts on the healthy champion: its grade is no longer excellent.
    let before = env.json(&["monitor", "fraud_detector", "v2.0"]);
    assert_eq!(before["history"]["overall_health"], "excellent", "{before}");
    for (metric, threshold) in [("accuracy", "0.99"), ("precision", "0.99")] {
        env.ok(&[
            "--config",
            path_str(&config),
            "alerts",
            "create-rule",
            "fraud_detector",
            metric,
            "--name",
            &format!("{metric} watch"),
            "--threshold",
            threshold,
            "--operator",
            "lt",
            "--for",
            "1",
            "--severity",
            "high",
            "--version",
            "v2.0",
        ]);
    }
    env.ok(&["evaluate", "fraud_detector", "v2.0"]);
    let after = env.json(&["monitor", "fraud_detector", "v2.0"]);
    assert_eq!(after["open_alerts"].as_array().unwrap().len(), 2, "{after}");
    assert_eq!(after["history"]["overall_health"], "fair", "{after}");
    assert!(after["history"]["health_reasons"][0]
        .as_str()
        .unwrap()
        .starts_with("2 open alerts (worst: high"));
    let table = env.ok(&["monitor", "fraud_detector", "v2.0", "--format", "table"]);
    assert!(table.contains("health fair"), "{table}");
    assert!(!table.contains("1 samples"), "{table}");
    // `--hours` takes fractions and all, as everywhere.
    env.ok(&["monitor", "fraud_detector", "v2.0", "--hours", "0.5"]);
    env.ok(&["monitor", "fraud_detector", "v2.0", "--hours", "all"]);
    env.ok(&[
        "metrics",
        "history",
        "fraud_detector",
        "v2.0",
        "--hours",
        "all",
    ]);
    env.ok(&["alerts", "summary", "--hours", "1.5"]);
    let bad = env.run(&["monitor", "fraud_detector", "v2.0", "--hours", "soon"]);
    assert_eq!(bad.status.code(), Some(1));
}

/// The CLI's messages echo a bad input only in part (issue 15: a 10 MB field was printed
/// to stderr whole).
#[test]
fn messages_cut_the_input_they_echo() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let file = dir.path().join("big.jsonl");
    let huge = "x".repeat(10 * 1024 * 1024);
    std::fs::write(
        &file,
        format!(
            "{{\"model\":\"{huge}\",\"version\":\"v1\",\"metric\":\"accuracy\",\"value\":0.5,\"timestamp\":1000}}\n"
        ),
    )
    .unwrap();
    let out = common::modelwatch(&db)
        .args(["metrics", "import", file.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.len() < 8_000, "{} bytes on stderr", stderr.len());
    assert!(stderr.contains("model"), "{stderr}");
    let out = common::modelwatch(&db)
        .args([
            "metrics",
            "record",
            &huge[..100_000],
            "v1",
            "accuracy",
            "0.5",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        out.stderr.len() < 8_000,
        "{} bytes on stderr",
        out.stderr.len()
    );
}

#[test]
fn logged_predictions_and_labels_become_window_metrics_revised_as_labels_arrive() {
    let env = Env::new();
    let shown = env.json(&["predictions", "config", "clf"]);
    assert_eq!(shown["window"], "1h");
    assert_eq!(shown["configured"], false);
    let set = env.json(&[
        "predictions",
        "config",
        "clf",
        "--window",
        "1h",
        "--task",
        "classification",
        "--threshold",
        "0.5",
    ]);
    assert_eq!(set["task"], "classification");
    assert_eq!(set["configured"], true);

    // A label before its prediction waits for it; one whose prediction never comes too.
    let early = env.write("early.csv", "id,model,label\np1,clf,1\nnever,clf,0\n");
    let pending = env.json(&["labels", "log", path_str(&early)]);
    assert_eq!(
        (pending["pending"].as_u64(), pending["labelled"].as_u64()),
        (Some(2), Some(0))
    );

    let predictions = env.write(
        "predictions.jsonl",
        "{\"id\":\"p1\",\"model\":\"clf\",\"version\":\"v1\",\"timestamp\":\"2026-01-01T10:05:00Z\",\"score\":0.9}\n\
         {\"id\":\"p2\",\"model\":\"clf\",\"version\":\"v1\",\"timestamp\":\"2026-01-01T10:10:00Z\",\"score\":0.2}\n\
         {\"id\":\"p3\",\"model\":\"clf\",\"version\":\"v1\",\"timestamp\":\"2026-01-01T10:15:00Z\",\"class\":true}\n\
         {\"id\":\"p1\",\"model\":\"clf\",\"version\":\"v1\",\"timestamp\":\"2026-01-01T10:20:00Z\",\"score\":0.1}\n",
    );
    let logged = env.json(&["predictions", "log", path_str(&predictions)]);
    let counts = |v: &Value, keys: &[&str]| -> Vec<u64> {
        keys.iter().map(|k| v[*k].as_u64().unwrap()).collect()
    };
    assert_eq!(
        counts(
            &logged,
            &["accepted", "duplicates", "labelled", "windows_recomputed"]
        ),
        [3, 1, 1, 1]
    );
    let value = |metric: &str| {
        let samples = env.samples_in("clf", "v1", metric, "predictions");
        assert_eq!(
            samples.len(),
            1,
            "{metric}: one point per window, revised in place"
        );
        assert!(samples[0]["timestamp"]
            .as_str()
            .unwrap()
            .starts_with("2026-01-01T10:00:00"));
        samples[0]["value"].as_f64().unwrap()
    };
    assert_eq!(
        (value("label_coverage"), value("accuracy")),
        (1.0 / 3.0, 1.0)
    );

    // p2 right (0.2 < 0.5), p3 wrong: the window is recomputed from every label so far.
    let late = env.write("late.csv", "id,model,label\np2,clf,0\np3,clf,false\n");
    let joined = env.json(&["labels", "log", path_str(&late)]);
    assert_eq!(
        counts(&joined, &["labelled", "pending", "duplicates"]),
        [2, 0, 0]
    );
    assert_eq!(
        (value("label_coverage"), value("accuracy")),
        (1.0, 2.0 / 3.0)
    );
    // The window's revisions: one per recomputation, with its coverage; judged (minimum
    // coverage 0) as soon as it was computed, the window having closed.
    let window = env.json(&["predictions", "window", "clf", "v1", "2026-01-01T10:30:00Z"]);
    let revisions: Vec<(u64, f64)> = window["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["revision"].as_u64().unwrap(),
                r["coverage"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(revisions, [(1, 1.0 / 3.0), (2, 1.0)]);
    assert_eq!(
        (&window["judged"]["revision"], &window["judged"]["by"]),
        (&serde_json::json!(1), &serde_json::json!("coverage"))
    );
    assert_eq!(window["revisions"][1]["metrics"]["accuracy"], 2.0 / 3.0);
    let table = env.ok(&[
        "predictions",
        "window",
        "clf",
        "v1",
        "2026-01-01T10:30:00Z",
        "--format",
        "table",
    ]);
    assert!(table.contains("coverage at"), "{table}");
    let none = env.run(&["predictions", "window", "clf", "v1", "2026-01-02T10:30:00Z"]);
    assert_eq!(none.status.code(), Some(1));
    let delay = env.json(&["predictions", "config", "clf", "--max-label-delay", "2d"]);
    assert_eq!(delay["max_label_delay"], "2d");

    // A bad line is named with its field, and nothing of the file is stored.
    let bad = env.write(
        "bad.csv",
        "id,model,version,timestamp,score\n\
         q1,clf,v1,2026-01-01T11:00:00Z,0.5\n\
         q2,clf,v1,2026-01-01T11:00:00Z,\n",
    );
    let out = env.run(&["predictions", "log", path_str(&bad)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("line 3: class:"), "{stderr}");
    let again = env.write("again.jsonl", "{\"id\":\"q1\",\"model\":\"clf\",\"version\":\"v1\",\"timestamp\":\"2026-01-01T11:00:00Z\",\"score\":0.5}\n");
    let logged = env.json(&["predictions", "log", path_str(&again)]);
    assert_eq!(counts(&logged, &["accepted", "duplicates"]), [1, 0]);
}

#[test]
fn features_in_csv_columns_and_json_lines_drift_per_feature() {
    let env = Env::new();
    // 10:00 is the reference (100 predictions); 11:00 has the same scores and ages but
    // amounts far above. Some rows leave `age` out (an empty cell).
    let mut csv = String::from("id,model,version,timestamp,score,feature.amount,feature.age\n");
    for hour in [10, 11] {
        for n in 0..100 {
            let amount = if hour == 10 {
                10 + n % 20
            } else {
                900 + n % 20
            };
            let age = if n % 10 == 0 {
                String::new()
            } else {
                (20 + n % 30).to_string()
            };
            csv.push_str(&format!(
                "{hour}-{n},drf,v1,2026-01-01T{hour}:{:02}:00Z,{},{amount},{age}\n",
                n % 60,
                0.05 + f64::from(n % 10) / 10.0
            ));
        }
    }
    let file = env.write("featured.csv", &csv);
    let logged = env.json(&["predictions", "log", path_str(&file)]);
    assert_eq!(logged["accepted"], 200);
    let values = |metric: &str| -> Vec<f64> {
        env.samples_in("drf", "v1", metric, "predictions")
            .iter()
            .map(|s| s["value"].as_f64().unwrap())
            .collect()
    };
    assert_eq!(values("drift_ks_feature_amount"), [0.0, 1.0]);
    // The reference holds 90 ages, fewer than the 100 a feature's reference needs.
    assert_eq!(values("drift_ks_feature_age"), Vec::<f64>::new());
    assert_eq!(values("drift_ks_score"), [0.0, 0.0]);

    // JSON Lines give them as an object; late ones join their window's sketch.
    let late = env.write(
        "late.jsonl",
        &(0..100)
            .map(|n| {
                format!(
                    "{{\"id\":\"late-{n}\",\"model\":\"drf\",\"version\":\"v1\",\"timestamp\":\"2026-01-01T11:30:00Z\",\"score\":{},\"features\":{{\"amount\":{}}}}}\n",
                    0.05 + f64::from(n % 10) / 10.0,
                    10 + n % 20
                )
            })
            .collect::<String>(),
    );
    env.json(&["predictions", "log", path_str(&late)]);
    assert_eq!(values("drift_ks_feature_amount"), [0.0, 0.5]);

    // A bad feature is named with its line and field, and nothing of the file is stored.
    for (name, text, field) in [
        (
            "bad.csv",
            "id,model,version,timestamp,score,feature.amount\n\
             b1,drf,v1,2026-01-01T12:00:00Z,0.5,3\n\
             b2,drf,v1,2026-01-01T12:00:00Z,0.5,lots\n",
            "line 3: features.amount:",
        ),
        (
            "bad.jsonl",
            "{\"id\":\"b1\",\"model\":\"drf\",\"version\":\"v1\",\"timestamp\":1,\"score\":0.5,\"features\":{\"a b\":1}}\n",
            "line 1: features: feature name",
        ),
        (
            "twice.csv",
            "id,model,version,timestamp,score,feature.amount,feature.amount\nb1,drf,v1,1,0.5,1,2\n",
            "line 1: features: column",
        ),
    ] {
        let bad = env.write(name, text);
        let out = env.run(&["predictions", "log", path_str(&bad)]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(field), "{name}: {stderr}");
    }
    let again = env.write(
        "again.csv",
        "id,model,version,timestamp,score\nb1,drf,v1,2026-01-01T12:00:00Z,0.5\n",
    );
    assert_eq!(
        env.json(&["predictions", "log", path_str(&again)])["accepted"],
        1
    );
    // Labels have no features: the column is an unknown field.
    let labels = env.write("labels.csv", "id,model,label,feature.amount\nb1,drf,1,2\n");
    let out = env.run(&["labels", "log", path_str(&labels)]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn pruned_raw_predictions_leave_their_windows_metrics_final() {
    let env = Env::new();
    let predictions = env.write(
        "predictions.jsonl",
        "{\"id\":\"p1\",\"model\":\"clf\",\"version\":\"v1\",\"timestamp\":\"2026-01-01T10:05:00Z\",\"score\":0.9}\n\
         {\"id\":\"p2\",\"model\":\"clf\",\"version\":\"v1\",\"timestamp\":\"2026-01-01T10:10:00Z\",\"score\":0.2}\n",
    );
    env.json(&["predictions", "log", path_str(&predictions)]);
    let labels = env.write("labels.csv", "id,model,label\np1,clf,1\np2,clf,1\n");
    env.json(&["labels", "log", path_str(&labels)]);
    let accuracy = || {
        let samples = env.samples_in("clf", "v1", "accuracy", "predictions");
        assert_eq!(samples.len(), 1, "{samples:?}");
        samples[0]["value"].as_f64().unwrap()
    };
    assert_eq!(accuracy(), 0.5);

    let pruned = env.json(&["prune", "--predictions-older-than", "30d"]);
    assert_eq!(pruned[0]["kind"], "predictions", "{pruned}");
    assert_eq!(pruned[0]["removed"], 2, "{pruned}");
    // The window's metric stays; a late prediction for it is refused, not folded into
    // a recomputation from what is left of the window.
    let late = env.write(
        "late.jsonl",
        "{\"id\":\"p3\",\"model\":\"clf\",\"version\":\"v1\",\"timestamp\":\"2026-01-01T10:30:00Z\",\"score\":0.9}\n",
    );
    let refused = env.json(&["predictions", "log", path_str(&late)]);
    assert_eq!(
        (
            &refused["too_old"],
            &refused["accepted"],
            &refused["windows_recomputed"]
        ),
        (
            &serde_json::json!(1),
            &serde_json::json!(0),
            &serde_json::json!(0)
        ),
        "{refused}"
    );
    assert_eq!(accuracy(), 0.5);
    let window = env.json(&["predictions", "window", "clf", "v1", "2026-01-01T10:30:00Z"]);
    assert_eq!(window["revisions"].as_array().unwrap().len(), 2, "{window}");
}
