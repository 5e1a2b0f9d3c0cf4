//! `modelwatch mlflow import`: the metrics of models registered in an MLflow tracking
//! server, imported as modelwatch series.
//!
//! For each registered model (all, or those named) and each of its versions, the run that
//! produced the version is looked up, and every metric the run logged is read with its
//! full history (see [`mapping`] for how names and values map). What modelwatch refuses —
//! a name outside its character set, a NaN, a version without a run — is reported per
//! item with the reason while everything else is imported. Before writing, each series is
//! compared with what the store holds, so only new or changed samples are written and a
//! re-run writes nothing.
//!
//! [`client`] speaks the REST API; [`mapping`] is pure; [`import`] joins them and the
//! store.

pub mod client;
pub mod mapping;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use modelwatch_core::{Direction, Metric, MetricDefinition, SeriesKey, TimeRange, ValueRange};
use modelwatch_store::{MetricStore, StoreError};
use serde::Serialize;

pub use client::{Client, Credentials, MlflowError};
pub use mapping::{infer_direction, Skipped};

use crate::output::{emit, Format, Table};

/// Samples per committed batch, as the file importer.
const BATCH_SIZE: usize = crate::import::BATCH_SIZE;

#[derive(Debug, Subcommand)]
pub enum MlflowCommand {
    /// Import the metrics of registered model versions (the metrics, with their full
    /// history, of the run each version was made from). Re-running imports only what
    /// changed.
    Import(ImportArgs),
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The tracking server, e.g. http://127.0.0.1:5000. A token in MLFLOW_TRACKING_TOKEN,
    /// or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, are sent as MLflow's
    /// clients send them.
    #[arg(long, env = "MLFLOW_TRACKING_URI", value_name = "URL")]
    pub tracking_uri: String,
    /// Import only this registered model (repeatable). Default: every registered model.
    #[arg(long = "model", value_name = "NAME")]
    pub models: Vec<String>,
}

/// Why an import stopped: the server (unreachable, or an answer that makes no sense) or
/// the store. Items modelwatch refuses do not stop it; they are [`Skipped`].
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Mlflow(#[from] MlflowError),
    #[error("cannot store the imported samples")]
    Store(#[from] StoreError),
}

/// What an import did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    pub tracking_uri: String,
    /// Registered models of which something was imported or checked.
    pub models: u64,
    pub versions: u64,
    /// Series (model, version, metric) imported.
    pub metrics: u64,
    /// Samples written that the store did not have.
    pub samples_new: u64,
    /// Samples written over a stored one with another value.
    pub samples_updated: u64,
    /// Samples the store held already, exactly; not written again.
    pub samples_unchanged: u64,
    /// Custom metrics imported that have no declaration and whose name does not say their
    /// direction, so modelwatch takes them as higher-is-better with any value;
    /// `modelwatch metrics define` declares them.
    pub undeclared_custom_metrics: BTreeSet<Metric>,
    /// Custom metrics without a declaration whose direction the name gave (`val_loss`:
    /// lower is better), declared so by this import (any value allowed); `modelwatch
    /// metrics define` overrides.
    pub inferred_directions: BTreeMap<Metric, InferredDirection>,
    pub skipped: Vec<Skipped>,
}

/// A custom metric's direction as the import inferred it from the name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InferredDirection {
    #[serde(serialize_with = "direction_name")]
    pub direction: Direction,
    pub reason: String,
}

/// A direction by the name the API gives it (`higher_is_better`, `lower_is_better`).
fn direction_name<S: serde::Serializer>(direction: &Direction, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(direction.as_str())
}

/// Imports the registered models named in `wanted` (every one when empty) from the server
/// behind `client` into `store`.
pub async fn import(
    client: &Client,
    store: &dyn MetricStore,
    wanted: &[String],
) -> Result<ImportReport, ImportError> {
    let mut report = ImportReport {
        tracking_uri: client.uri().to_owned(),
        ..ImportReport::default()
    };
    let mut declared: HashMap<Metric, MetricDefinition> = store
        .custom_metrics()
        .await?
        .into_iter()
        .map(|d| (d.metric.clone(), d))
        .collect();

    let names: Vec<String> = if wanted.is_empty() {
        client
            .registered_models()
            .await?
            .into_iter()
            .map(|m| m.name)
            .collect()
    } else {
        let mut found = Vec::new();
        let mut seen = BTreeSet::new();
        for name in wanted.iter().filter(|n| seen.insert(n.as_str())) {
            // A name modelwatch refuses is reported without asking the server.
            if mapping::model_name(name).is_ok() && client.registered_model(name).await?.is_none() {
                report.skipped.push(Skipped::model(
                    name,
                    "the tracking server has no registered model of this name",
                ));
                continue;
            }
            found.push(name.clone());
        }
        found
    };

    for name in &names {
        let model = match mapping::model_name(name) {
            Ok(model) => model,
            Err(reason) => {
                report.skipped.push(Skipped::model(name, reason));
                continue;
            }
        };
        report.models += 1;
        let mut versions = client.model_versions(name).await?;
        // Numerically, so reports read 1, 2, 10 rather than 1, 10, 2.
        versions.sort_by_cached_key(|v| (v.version.parse::<u64>().ok(), v.version.clone()));
        for listed in versions {
            let number = listed.version.as_str();
            let version = match mapping::version_name(number) {
                Ok(version) => version,
                Err(reason) => {
                    report.skipped.push(Skipped::version(name, number, reason));
                    continue;
                }
            };
            let Some(run_id) = listed.run_id.as_deref().filter(|id| !id.is_empty()) else {
                report.skipped.push(Skipped::version(
                    name,
                    number,
                    "the version was registered from outside a run, so it has no run metrics",
                ));
                continue;
            };
            let Some(keys) = client.run_metric_keys(run_id).await? else {
                report.skipped.push(Skipped::version(
                    name,
                    number,
                    format!("its run {run_id} is not on the tracking server (deleted?)"),
                ));
                continue;
            };
            report.versions += 1;
            let mut to_write = Vec::new();
            for key in keys {
                let metric = match mapping::metric_name(&key) {
                    Ok(metric) => metric,
                    Err(reason) => {
                        report
                            .skipped
                            .push(Skipped::metric(name, number, &key, reason));
                        continue;
                    }
                };
                let definition = match declared.get(&metric) {
                    Some(declared) => declared.clone(),
                    None if metric.is_custom() => match mapping::infer_direction(metric.as_str()) {
                        Some((direction, reason)) => {
                            let definition = MetricDefinition::custom(
                                metric.clone(),
                                direction,
                                ValueRange::default(),
                            )
                            .map_err(StoreError::Invalid)?;
                            store.define_metric(definition.clone()).await?;
                            declared.insert(metric.clone(), definition.clone());
                            report
                                .inferred_directions
                                .insert(metric.clone(), InferredDirection { direction, reason });
                            definition
                        }
                        None => {
                            report.undeclared_custom_metrics.insert(metric.clone());
                            metric.default_definition()
                        }
                    },
                    None => metric.default_definition(),
                };
                let history = client.metric_history(run_id, &key).await?;
                let series = SeriesKey::new(model.clone(), version.clone(), metric);
                let mapped = mapping::map_history(&series, &definition, &history);
                report.skipped.extend(mapped.skipped);
                let stored = store.range(&series, TimeRange::all()).await?;
                let changes = mapping::changes(mapped.samples, &stored);
                report.metrics += 1;
                report.samples_new += changes.new;
                report.samples_updated += changes.updated;
                report.samples_unchanged += changes.unchanged;
                to_write.extend(changes.to_write);
                if to_write.len() >= BATCH_SIZE {
                    store.append(std::mem::take(&mut to_write)).await?;
                }
            }
            if !to_write.is_empty() {
                store.append(to_write).await?;
            }
        }
    }
    Ok(report)
}

/// `modelwatch mlflow …`.
pub async fn run(
    command: MlflowCommand,
    store: &dyn MetricStore,
    format: Format,
) -> Result<ExitCode> {
    let MlflowCommand::Import(args) = command;
    let client = Client::new(&args.tracking_uri, credentials_from_env())?;
    let report = import(&client, store, &args.models).await?;

    let mut table = Table::new(&["what", "count"]);
    for (what, count) in [
        ("models", report.models),
        ("versions", report.versions),
        ("metrics", report.metrics),
        ("samples stored (new)", report.samples_new),
        ("samples stored (updated)", report.samples_updated),
        ("samples already stored", report.samples_unchanged),
        ("skipped", report.skipped.len() as u64),
    ] {
        table.push(vec![what.to_owned(), count.to_string()]);
    }
    emit(format, &report, &table)?;
    for (metric, inferred) in &report.inferred_directions {
        note!(
            "{metric}: {} (inferred from {}; `modelwatch metrics define {metric}` overrides)",
            inferred.direction.as_str().replace('_', " "),
            inferred.reason
        );
    }
    if !report.undeclared_custom_metrics.is_empty() {
        let names: Vec<&str> = report
            .undeclared_custom_metrics
            .iter()
            .map(Metric::as_str)
            .collect();
        note!(
            "custom metrics taken as higher-is-better with any value: {} \
             (declare them with `modelwatch metrics define NAME [--lower-is-better] [--min X] [--max Y]`)",
            names.join(", ")
        );
    }
    for skipped in &report.skipped {
        note!("skipped {}: {}", skipped.path(), skipped.reason);
    }
    if !report.skipped.is_empty() {
        note!(
            "{} item(s) skipped; everything else was imported",
            report.skipped.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The credentials MLflow's own clients read from the environment; a token wins.
fn credentials_from_env() -> Credentials {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let Some(token) = var("MLFLOW_TRACKING_TOKEN") {
        return Credentials::Bearer(token);
    }
    match (
        var("MLFLOW_TRACKING_USERNAME"),
        var("MLFLOW_TRACKING_PASSWORD"),
    ) {
        (Some(username), Some(password)) => Credentials::Basic { username, password },
        _ => Credentials::None,
    }
}
