//! `check`, `monitor` and `compare`: degradation, health and version comparison for people
//! (coloured, readable at a glance) and programs (`--format json`).

use std::process::ExitCode;

use anstyle::{AnsiColor, Style};
use anyhow::{bail, Result};
use clap::Args;
use modelwatch_core::alerting::{Alert, AlertConfig};
use modelwatch_core::compare::{CompareOptions, Verdict};
use modelwatch_core::detection::{
    DegradationResult, DegradationStatus, DetectionOptions, Seasonality, WindowSpec,
};
use modelwatch_core::health::{HealthOptions, OverallHealth, PerformanceHistory, Trend};
use modelwatch_core::stats::format_p_value;
use modelwatch_core::{Dataset, Metric, ModelName, SeriesKey, Version};
use modelwatch_engine::analysis;
use modelwatch_engine::Engine;
use modelwatch_store::{MetricStore, SeriesFilter, SeriesInfo, Stores};

use crate::output::{count, emit, number, parse_hours, Format, Hours, Table};

/// How `check` ends, for scripts: `modelwatch check … || page-someone`.
pub const CHECK_EXIT_CODES: &str =
    "Exit status: 0 ok, 1 error (bad arguments, unknown model, version \
or metric, database), 2 degraded, 3 insufficient data (no verdict).";

#[derive(Debug, Args)]
#[command(after_help = CHECK_EXIT_CODES)]
pub struct CheckArgs {
    /// The model, as recorded.
    pub model: String,
    /// The model's version, as recorded.
    pub version: String,
    /// The metric to check (a built-in such as accuracy or latency, or a custom one).
    #[arg(long)]
    pub metric: String,
    /// The baseline: this many hours before the comparison window (1 to 8784).
    #[arg(long, default_value_t = 24, value_parser = window_hours)]
    pub baseline_hours: u32,
    /// Compare the mean of the last H hours (1 to 8784); without it, the latest value.
    #[arg(long, value_name = "H", value_parser = window_hours)]
    pub comparison_hours: Option<u32>,
    /// Take the baseline from the same hours one day or one week earlier: daily or
    /// weekly.
    #[arg(long, value_name = "daily|weekly", value_parser = parse_seasonality)]
    pub seasonal: Option<Seasonality>,
    /// The significance level of every test, between 0 and 0.5 (default: 0.01 for window
    /// tests, 0.002 for the long-run test, 0.001 for a single value). A degradation rule
    /// with the same windows and `--alpha` decides as this does.
    #[arg(long, value_parser = parse_alpha)]
    pub alpha: Option<f64>,
    /// The dataset (segment), e.g. prod or canary; `default` (the default) is the samples
    /// recorded without one. Datasets are never mixed.
    #[arg(long, value_name = "NAME|default")]
    pub dataset: Option<String>,
}

/// A `--dataset` value: a name, or `default` (the default dataset, `None`, as without
/// the option).
pub fn dataset_arg(text: Option<&str>) -> Result<Option<Dataset>> {
    Ok(text.map(Dataset::parse_optional).transpose()?.flatten())
}

fn parse_alpha(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    modelwatch_core::detection::significance_level("alpha", value).map_err(|e| e.message)
}

#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// The model, as recorded.
    pub model: String,
    /// The model's version.
    pub version: String,
    /// The range of the summaries and trends: hours (fractions too) or `all`. The
    /// degradation checks always compare the last hour with the 24 before it.
    #[arg(long, default_value = "24", value_name = "HOURS|all", value_parser = parse_hours)]
    pub hours: Hours,
    /// The dataset (segment), e.g. prod or canary; `default` (the default) is the samples
    /// recorded without one. Datasets are never mixed.
    #[arg(long, value_name = "NAME|default")]
    pub dataset: Option<String>,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    pub model: String,
    /// The champion (the version in production).
    pub version_a: String,
    /// The challenger.
    pub version_b: String,
    /// The metric to compare them on.
    #[arg(long)]
    pub metric: String,
    /// The samples of the last HOURS (fractions too), or `all`.
    #[arg(long, default_value = "24", value_name = "HOURS|all", value_parser = parse_hours)]
    pub hours: Hours,
    /// The dataset (segment), e.g. prod or canary; `default` (the default) is the samples
    /// recorded without one. Datasets are never mixed.
    #[arg(long, value_name = "NAME|default")]
    pub dataset: Option<String>,
}

/// A window's hours, in the range the analysis takes.
fn window_hours(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(hours) if (1..=WindowSpec::MAX_HOURS).contains(&hours) => Ok(hours),
        _ => Err(format!(
            "must be a whole number of hours from 1 to {}",
            WindowSpec::MAX_HOURS
        )),
    }
}

fn parse_seasonality(text: &str) -> Result<Seasonality, String> {
    match text {
        "daily" => Ok(Seasonality::Daily),
        "weekly" => Ok(Seasonality::Weekly),
        other => Err(format!("{other:?} is not daily or weekly")),
    }
}

const RED: Style = AnsiColor::Red.on_default().bold();
const GREEN: Style = AnsiColor::Green.on_default().bold();
const YELLOW: Style = AnsiColor::Yellow.on_default().bold();
const DIM: Style = Style::new().dimmed();

fn optional(value: Option<f64>) -> String {
    value.map(number).unwrap_or_else(|| "–".into())
}

fn p_value(value: Option<f64>) -> String {
    value.map_or_else(|| "–".into(), format_p_value)
}

fn percent(value: Option<f64>) -> String {
    value
        .map(|v| format!("{v:+.2} %"))
        .unwrap_or_else(|| "–".into())
}

fn status_style(status: DegradationStatus) -> (Style, &'static str) {
    match status {
        // Spelt as in JSON (`--format json`) and the API.
        DegradationStatus::Degraded => (RED, "degraded"),
        DegradationStatus::Ok => (GREEN, "ok"),
        DegradationStatus::InsufficientData => (YELLOW, "insufficient_data"),
    }
}

fn severity_name(result: &DegradationResult) -> String {
    result.severity.as_str().to_owned()
}

fn degradation_row(result: &DegradationResult) -> Vec<String> {
    let (_, status) = status_style(result.status);
    vec![
        result.metric.to_string(),
        status.to_owned(),
        severity_name(result),
        optional(result.current_value),
        optional(result.baseline_value),
        percent(result.percentage_change),
        p_value(result.p_value),
        result.recommendation.clone(),
    ]
}

/// What a narrow terminal leaves out of the degradation table first.
const DEGRADATION_OPTIONAL: [&str; 3] = ["severity", "baseline", "p_value"];

const DEGRADATION_HEADERS: [&str; 8] = [
    "metric",
    "status",
    "severity",
    "current",
    "baseline",
    "change",
    "p_value",
    "recommendation",
];

fn print_degradation(result: &DegradationResult) -> std::io::Result<()> {
    let (style, status) = status_style(result.status);
    outln!(
        "{} {} {}: {style}{status}{style:#} (severity {})",
        result.model,
        result.version,
        result.metric,
        severity_name(result)
    )?;
    outln!(
        "  current {} ({} samples) · baseline {} ({} samples)",
        optional(result.current_value),
        result.comparison_samples,
        optional(result.baseline_value),
        result.baseline_samples
    )?;
    outln!(
        "  change {} · degradation {} · p = {} {DIM}({}){DIM:#}",
        percent(result.percentage_change),
        percent(result.degradation_percentage).trim_start_matches('+'),
        p_value(result.p_value),
        result.method
    )?;
    if let Some(started) = result.change_started_at {
        outln!("  change started around {started}")?;
    }
    outln!("  → {}", result.recommendation)
}

/// Fails unless `model` (and `version`, and `metric`, in `dataset`) has samples, naming
/// what exists: a misspelt name is an error, not "insufficient data".
pub async fn ensure_recorded(
    store: &dyn MetricStore,
    model: &ModelName,
    version: Option<&Version>,
    metric: Option<&Metric>,
    dataset: Option<&Dataset>,
) -> Result<()> {
    let all = store.list_series(&SeriesFilter::default()).await?;
    let listing = |names: Vec<String>| -> String {
        let mut names = names;
        names.dedup();
        let shown: Vec<String> = names.iter().take(12).cloned().collect();
        let more = names.len().saturating_sub(shown.len());
        if shown.is_empty() {
            "none recorded yet".into()
        } else if more > 0 {
            format!("{} and {more} more", shown.join(", "))
        } else {
            shown.join(", ")
        }
    };
    let of_model: Vec<_> = all.iter().filter(|s| s.key.model == *model).collect();
    if of_model.is_empty() {
        bail!(
            "no model named {model} has samples (models: {})",
            listing(all.iter().map(|s| s.key.model.to_string()).collect())
        );
    }
    let Some(version) = version else {
        return Ok(());
    };
    let of_version: Vec<_> = of_model
        .iter()
        .filter(|s| s.key.version == *version)
        .collect();
    if of_version.is_empty() {
        bail!(
            "{model} has no version {version} (versions: {})",
            listing(of_model.iter().map(|s| s.key.version.to_string()).collect())
        );
    }
    let of_metric: Vec<_> = of_version
        .iter()
        .filter(|s| metric.is_none_or(|m| s.key.metric == *m))
        .collect();
    let in_dataset = |found: &[&&&SeriesInfo]| -> Result<()> {
        if found.iter().any(|s| s.key.dataset.as_ref() == dataset) {
            return Ok(());
        }
        let what = match metric {
            Some(metric) => format!("{model} {version} {metric}"),
            None => format!("{model} {version}"),
        };
        let mut names: Vec<Option<&Dataset>> =
            found.iter().map(|s| s.key.dataset.as_ref()).collect();
        names.sort();
        bail!(
            "{what} has no samples in dataset {} (datasets: {}; choose one with --dataset)",
            Dataset::name_of(dataset),
            listing(
                names
                    .into_iter()
                    .map(|d| Dataset::name_of(d).to_owned())
                    .collect()
            )
        )
    };
    let Some(metric) = metric else {
        return in_dataset(&of_metric);
    };
    if of_metric.is_empty() {
        let hint = match Metric::likely_misspelling_of(metric.as_str()) {
            Some(meant) => format!("; did you mean {meant}?"),
            None => String::new(),
        };
        bail!(
            "{model} {version} has no metric {metric}{hint} (metrics: {})",
            listing(
                of_version
                    .iter()
                    .map(|s| s.key.metric.to_string())
                    .collect()
            )
        );
    }
    in_dataset(&of_metric)
}

/// `check`'s exit status for a verdict (see [`CHECK_EXIT_CODES`]).
pub fn check_exit_code(status: DegradationStatus) -> ExitCode {
    match status {
        DegradationStatus::Ok => ExitCode::SUCCESS,
        DegradationStatus::Degraded => ExitCode::from(2),
        DegradationStatus::InsufficientData => ExitCode::from(3),
    }
}

pub async fn check(store: &dyn MetricStore, args: CheckArgs, format: Format) -> Result<ExitCode> {
    let key = SeriesKey::parse(&args.model, &args.version, &args.metric)?
        .with_dataset(dataset_arg(args.dataset.as_deref())?);
    ensure_recorded(
        store,
        &key.model,
        Some(&key.version),
        Some(&key.metric),
        key.dataset.as_ref(),
    )
    .await?;
    let spec = WindowSpec {
        baseline_hours: args.baseline_hours,
        comparison_hours: args.comparison_hours,
        seasonal: args.seasonal,
        ..WindowSpec::default()
    };
    let options = DetectionOptions::default();
    let options = args
        .alpha
        .map_or(options, |alpha| options.with_alpha(alpha));
    let result = analysis::check_degradation(store, &key, &spec, &options, crate::now()).await?;
    if format == Format::Table {
        if let Some(dataset) = &key.dataset {
            outln!("dataset {dataset}")?;
        }
        print_degradation(&result)?;
    } else {
        let mut table = Table::new(&DEGRADATION_HEADERS).optional(&DEGRADATION_OPTIONAL);
        table.push(degradation_row(&result));
        emit(
            format,
            &modelwatch_http::wire::DegradationResult::from(&result),
            &table,
        )?;
    }
    Ok(check_exit_code(result.status))
}

#[derive(Debug)]
struct Monitor {
    history: PerformanceHistory,
    degradations: Vec<DegradationResult>,
    open_alerts: Vec<Alert>,
}

fn trend_text(trend: Trend) -> (Style, &'static str) {
    match trend {
        Trend::Improving => (GREEN, "improving"),
        Trend::Stable => (Style::new(), "stable"),
        Trend::Degrading => (RED, "degrading"),
    }
}

pub async fn monitor(stores: &Stores, args: MonitorArgs, format: Format) -> Result<ExitCode> {
    let store = &*stores.metrics;
    let model = ModelName::parse(&args.model)?;
    let version = Version::parse(&args.version)?;
    let dataset = dataset_arg(args.dataset.as_deref())?;
    ensure_recorded(store, &model, Some(&version), None, dataset.as_ref()).await?;
    let now = crate::now();
    let engine = Engine::new(stores, AlertConfig::default());
    // One analysis: the same the dashboard's model page and GET …/analysis show.
    let analysis = analysis::analyse_version(
        store,
        &model,
        &version,
        dataset.as_ref(),
        args.hours.window(now),
        engine.open_alerts(Some(&model)).await?,
        &HealthOptions::default(),
    )
    .await?;
    let analysis::VersionAnalysis {
        history,
        degradations,
        open_alerts,
    } = analysis;
    // "trend" is the analysis's (a degraded check makes it degrading); "fitted change"
    // is the robust line's change over the range, whichever way the trend went.
    let mut table = Table::new(&[
        "metric",
        "current",
        "mean",
        "min",
        "max",
        "std",
        "samples",
        "trend",
        "fitted change",
        "open alerts",
    ])
    .optional(&["std", "min", "max", "mean", "fitted change", "samples"]);
    for m in &history.metric_summaries {
        table.push(vec![
            m.metric.to_string(),
            optional(m.current_value),
            optional(m.mean),
            optional(m.min),
            optional(m.max),
            optional(m.std),
            m.count.to_string(),
            trend_text(m.trend).1.to_owned(),
            percent(m.change_percentage),
            m.open_alerts.to_string(),
        ]);
    }
    let monitor = Monitor {
        history,
        degradations,
        open_alerts,
    };
    if format != Format::Table {
        // The JSON of GET …/analysis.
        let wire = modelwatch_http::wire::VersionAnalysis {
            history: (&monitor.history).into(),
            degradations: monitor.degradations.iter().map(Into::into).collect(),
            open_alerts: monitor.open_alerts.iter().map(Into::into).collect(),
        };
        emit(format, &wire, &table)?;
        return Ok(ExitCode::SUCCESS);
    }
    let health_style = match monitor.history.overall_health {
        OverallHealth::Excellent | OverallHealth::Good => GREEN,
        OverallHealth::Fair => YELLOW,
        OverallHealth::Poor => RED,
        OverallHealth::Unknown => DIM,
    };
    let health = monitor.history.overall_health.as_str();
    let (trend_style, trend) = trend_text(monitor.history.health_trend);
    let on = match &dataset {
        Some(dataset) => format!(" (dataset {dataset})"),
        None => String::new(),
    };
    outln!(
        "{model} {version}{on} — health {health_style}{}{health_style:#}, trend {trend_style}{trend}{trend_style:#}, \
         {} in {}",
        health,
        count(monitor.history.total_snapshots, "sample"),
        args.hours.describe()
    )?;
    for reason in &monitor.history.health_reasons {
        outln!("  · {reason}")?;
    }
    emit(Format::Table, &(), &table)?;
    let mut degraded = Table::new(&DEGRADATION_HEADERS).optional(&DEGRADATION_OPTIONAL);
    for result in &monitor.degradations {
        degraded.push(degradation_row(result));
    }
    outln!("degradation (last hour against the 24 h before):")?;
    emit(Format::Table, &(), &degraded)?;
    if monitor.open_alerts.is_empty() {
        outln!("no open alerts")?;
    } else {
        let mut alerts = Table::new(&[
            "id",
            "severity",
            "status",
            "metric",
            "rule",
            "first_seen",
            "message",
        ])
        .optional(&["first_seen", "rule", "status"]);
        for alert in &monitor.open_alerts {
            alerts.push(vec![
                alert.id.to_string(),
                alert.severity.as_str().to_owned(),
                alert.status.as_str().to_owned(),
                alert.metric.to_string(),
                alert.rule_name.clone(),
                alert.first_seen.to_string(),
                alert.message.clone(),
            ]);
        }
        outln!("open alerts:")?;
        emit(Format::Table, &(), &alerts)?;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn compare(
    store: &dyn MetricStore,
    args: CompareArgs,
    format: Format,
) -> Result<ExitCode> {
    let model = ModelName::parse(&args.model)?;
    let champion = Version::parse(&args.version_a)?;
    let challenger = Version::parse(&args.version_b)?;
    let metric = Metric::parse(&args.metric)?;
    let dataset = dataset_arg(args.dataset.as_deref())?;
    for version in [&champion, &challenger] {
        ensure_recorded(
            store,
            &model,
            Some(version),
            Some(&metric),
            dataset.as_ref(),
        )
        .await?;
    }
    let range = args.hours.window(crate::now());
    let matchup = analysis::Matchup {
        model: &model,
        champion: &champion,
        challenger: &challenger,
        metric: &metric,
        dataset: dataset.as_ref(),
    };
    let result = analysis::compare(store, matchup, range, &CompareOptions::default()).await?;
    let interval = result
        .confidence_interval
        .map(|ci| {
            format!(
                "[{}, {}] at {:.0} %",
                number(ci.lower),
                number(ci.upper),
                ci.level * 100.0
            )
        })
        .unwrap_or_else(|| "–".into());
    let verdict = result.verdict.as_str().to_owned();
    if format != Format::Table {
        let mut table = Table::new(&[
            "metric",
            "champion",
            "challenger",
            "champion_mean",
            "challenger_mean",
            "difference",
            "p_value",
            "verdict",
        ]);
        table.push(vec![
            result.metric.to_string(),
            result.champion.to_string(),
            result.challenger.to_string(),
            optional(result.champion_mean),
            optional(result.challenger_mean),
            optional(result.difference),
            p_value(result.p_value),
            verdict,
        ]);
        emit(
            format,
            &modelwatch_http::wire::VersionComparison::from(&result),
            &table,
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let style = match result.verdict {
        Verdict::ChallengerBetter => GREEN,
        Verdict::ChampionBetter => RED,
        Verdict::NoSignificantDifference => Style::new(),
        Verdict::InsufficientData => YELLOW,
    };
    outln!(
        "{model} {metric}: {champion} (champion) vs {challenger} (challenger), {}",
        args.hours.describe()
    )?;
    outln!(
        "  means {} ({} samples) vs {} ({} samples)",
        optional(result.champion_mean),
        result.champion_samples,
        optional(result.challenger_mean),
        result.challenger_samples
    )?;
    outln!(
        "  difference {} ({}), CI {interval}, p = {}",
        optional(result.difference),
        percent(result.difference_percentage),
        p_value(result.p_value)
    )?;
    outln!("  verdict: {style}{verdict}{style:#} — {}", result.summary)?;
    Ok(ExitCode::SUCCESS)
}
