//! The alerting commands: `alerts …` (rules, listing, lifecycle, summary, history,
//! backtest), `rules …` (show, update, enable, disable, delete), `silences …` and
//! `evaluate`. Each parses its arguments into the core's validated forms, calls the
//! [`Engine`], and renders the result; the wall clock is read here.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use modelwatch_core::alerting::{
    minutes_words, Alert, AlertFilter, AlertId, AlertStatus, ComparisonMode, Condition, Rule,
    RuleId, RulePatch, RuleSpec, Severity, Silence, SilenceId, SilenceSpec, Trigger,
};
use modelwatch_core::{DatasetScope, ModelName, TimeRange, Timestamp, Version};
use modelwatch_engine::Engine;
use modelwatch_http::wire;
use modelwatch_store::Stores;

use crate::config::Config;
use crate::output::{emit, number, parse_hours, Format, Hours, Table};

/// The alerting commands, flattened into the top-level command list.
#[derive(Debug, Subcommand)]
pub enum AlertingCommand {
    /// Alert rules and alerts: create-rule, list-rules, list, acknowledge, resolve, summary,
    /// history, backtest.
    #[command(subcommand)]
    Alerts(AlertsCommand),
    /// Show, update, enable, disable or delete a rule.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Mute notifications for a model (optionally a version or metric) for a while.
    #[command(subcommand)]
    Silences(SilencesCommand),
    /// Evaluate the enabled rules now: all of them, or those of one model version.
    Evaluate(EvaluateArgs),
}

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Create a threshold (--threshold X --operator OP), degradation (--degradation PCT),
    /// change-point (--change-point [--min-shift 5% --false-alarm-every 90d]) or no-data
    /// (--no-data-for 30m and/or --no-data-intervals N) rule.
    CreateRule(Box<CreateRuleArgs>),
    /// List rules.
    ListRules {
        #[arg(long)]
        model: Option<String>,
    },
    /// List alerts alive in the last hours, newest first.
    List(ListArgs),
    /// Acknowledge an alert: stops re-notification unless its severity rises.
    Acknowledge { alert_id: String, who: String },
    /// Resolve an alert.
    Resolve {
        alert_id: String,
        who: String,
        #[arg(long)]
        notes: Option<String>,
    },
    /// Counts of alerts by status and severity.
    Summary {
        #[arg(long)]
        model: Option<String>,
        /// Alerts alive in the last HOURS (fractions too), or `all` for any time.
        #[arg(long, default_value = "24", value_name = "HOURS|all", value_parser = parse_hours)]
        hours: Hours,
    },
    /// Every transition of an alert: who, when, from, to, notes.
    History { alert_id: String },
    /// Replay a rule over stored history: when it would have fired and cleared. Writes nothing.
    Backtest {
        rule_id: String,
        /// Replay on this dataset (`default` for the default one), or on each dataset
        /// separately (`*`), instead of the rule's own.
        #[arg(long, value_name = "NAME|default|*")]
        dataset: Option<String>,
        /// RFC 3339 or epoch milliseconds.
        #[arg(long)]
        from: String,
        /// RFC 3339 or epoch milliseconds. Default: now.
        #[arg(long)]
        to: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct CreateRuleArgs {
    pub model: String,
    /// The metric watched, or `*` (no-data rules only): the whole version, silent only
    /// when none of its metrics reports.
    pub metric: String,
    #[arg(long)]
    pub name: String,
    /// Threshold rule: the value to compare with.
    #[arg(long, allow_hyphen_values = true)]
    pub threshold: Option<f64>,
    /// Threshold rule: gt, lt, gte, lte or eq.
    #[arg(long)]
    pub operator: Option<String>,
    /// Threshold rule with eq: how close counts as equal.
    #[arg(long)]
    pub tolerance: Option<f64>,
    /// Degradation rule: fire when the metric is worse than its baseline by more than PCT %.
    #[arg(long, value_name = "PCT")]
    pub degradation: Option<f64>,
    /// Degradation rule: the baseline window (default 24).
    #[arg(long, value_name = "H")]
    pub baseline_hours: Option<i64>,
    /// Degradation rule: compare the mean of the last H hours (1 to 168), as `check
    /// --comparison-hours` does, observed on a cadence of a twelfth of the window.
    #[arg(long, value_name = "H")]
    pub comparison_hours: Option<i64>,
    /// Degradation rule: `auto` (the default) picks what the quality benchmark supports
    /// for the series' sampling: a 2-hour window (with the long-run test once there is a
    /// week of history) on a sample every 2 minutes or more often, a 6-hour window up to
    /// every 20 minutes, the latest value for sparser series; `latest` judges each new
    /// value on its own.
    #[arg(long, value_name = "MODE")]
    pub comparison: Option<String>,
    /// Degradation rule: take the baseline from the same hours one day or one week
    /// earlier (daily or weekly).
    #[arg(long, value_name = "CYCLE")]
    pub seasonal: Option<String>,
    /// Degradation rule: the significance level of every test, between 0 and 0.5
    /// (default: the detector's, 0.01 for window tests, 0.002 for the long-run test,
    /// 0.001 for a single value).
    #[arg(long)]
    pub alpha: Option<f64>,
    /// Change-point rule: fire once per sustained shift of the metric's level, dated to
    /// when it began (a causal CUSUM; see --min-shift and --false-alarm-every).
    #[arg(long)]
    pub change_point: bool,
    /// Change-point rule: `worse` (default: shifts in the metric's bad direction) or `both`.
    #[arg(long, value_name = "DIR")]
    pub change_direction: Option<String>,
    /// Change-point rule: the smallest shift worth knowing, `1.5sd` (in the series' noise,
    /// the default unit; default 1sd) or `5%` (of its level).
    #[arg(long, value_name = "SHIFT")]
    pub min_shift: Option<String>,
    /// Change-point rule: one false alarm on average per this many samples, or per this
    /// long with a unit (`90d`, `12h`, `2w`); default 90 days but at least 1000 samples.
    #[arg(long, value_name = "N|DURATION")]
    pub false_alarm_every: Option<String>,
    /// No-data rule: fire when the series has reported nothing for this long (`30m`,
    /// `90s`, `2h`, `1d`; a bare number is minutes). Resolves itself at the first sample
    /// back (unless --no-auto-resolve).
    #[arg(long, value_name = "DURATION")]
    pub no_data_for: Option<String>,
    /// No-data rule: fire when the series has reported nothing for N times its usual
    /// interval (the median gap of its last 32 samples; never less than a minute). With
    /// --no-data-for too, the silence must exceed both.
    #[arg(long, value_name = "N")]
    pub no_data_intervals: Option<f64>,
    /// low, medium, high or critical (default medium).
    #[arg(long)]
    pub severity: Option<String>,
    /// Only this version; default: every version, each evaluated on its own.
    #[arg(long)]
    pub version: Option<String>,
    /// The dataset whose series the rule watches (default: the default dataset, samples
    /// sent without one), or `*` for each dataset separately, each with its own state and
    /// alerts.
    #[arg(long, value_name = "NAME|default|*")]
    pub dataset: Option<String>,
    /// Minutes after a resolution during which the rule does not fire again (default 60).
    #[arg(long, value_name = "MIN")]
    pub cooldown: Option<i64>,
    /// Channels to notify, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub channels: Vec<String>,
    /// Consecutive breaching evaluations before firing (default 3).
    #[arg(long = "for", value_name = "N")]
    pub for_evaluations: Option<i64>,
    /// Consecutive clear evaluations before the condition counts as cleared (default 3).
    #[arg(long, value_name = "M")]
    pub clear_after: Option<i64>,
    /// Threshold rule: the line to cross back over to clear (hysteresis).
    #[arg(long, allow_hyphen_values = true)]
    pub clear_threshold: Option<f64>,
    /// Degradation rule: the percentage to fall back under to clear (hysteresis).
    #[arg(long)]
    pub clear_percentage: Option<f64>,
    /// Resolve alerts as `modelwatch` once the condition cleared (the default of no-data
    /// rules).
    #[arg(long, conflicts_with = "no_auto_resolve")]
    pub auto_resolve: bool,
    /// Leave alerts open for a person to resolve even after the condition cleared (the
    /// default of every rule but no-data rules).
    #[arg(long)]
    pub no_auto_resolve: bool,
    /// Create the rule disabled.
    #[arg(long)]
    pub disabled: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long)]
    pub model: Option<String>,
    #[arg(long)]
    pub version: Option<String>,
    /// active, acknowledged, resolved, suppressed, or open (not resolved yet, whatever the
    /// status: what someone on call has to look at).
    #[arg(long)]
    pub status: Option<String>,
    #[arg(long)]
    pub severity: Option<String>,
    /// Alerts alive in the last HOURS (fractions too), or `all` for any time.
    #[arg(long, default_value = "24", value_name = "HOURS|all", value_parser = parse_hours)]
    pub hours: Hours,
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Show a rule.
    Show { rule_id: String },
    /// Change a rule with a JSON patch of its fields (e.g. '{"threshold_value": 0.85}').
    Update { rule_id: String, patch: String },
    /// Enable a rule: it is evaluated again from the next pass.
    Enable { rule_id: String },
    /// Disable a rule: it is not evaluated until it is enabled again.
    Disable { rule_id: String },
    /// Delete a rule; its alerts and their history stay.
    Delete { rule_id: String },
}

#[derive(Debug, Subcommand)]
pub enum SilencesCommand {
    /// Silence a model (optionally one version or metric).
    Add(SilenceArgs),
    /// Silences not yet over (with --all, expired ones too).
    List {
        #[arg(long)]
        all: bool,
    },
    /// End a silence now.
    Expire { silence_id: String },
}

#[derive(Debug, Args)]
pub struct SilenceArgs {
    pub model: String,
    #[arg(long)]
    pub version: Option<String>,
    #[arg(long)]
    pub metric: Option<String>,
    /// Start (RFC 3339 or epoch ms); default now.
    #[arg(long)]
    pub from: Option<String>,
    /// End (RFC 3339 or epoch ms); or give --minutes.
    #[arg(long)]
    pub until: Option<String>,
    #[arg(long)]
    pub minutes: Option<i64>,
    /// Who silences.
    #[arg(long)]
    pub by: String,
    /// Why.
    #[arg(long)]
    pub comment: String,
}

#[derive(Debug, Args)]
pub struct EvaluateArgs {
    pub model: Option<String>,
    pub version: Option<String>,
}

/// Runs one alerting command against `stores` with the loaded configuration.
pub async fn run(
    command: AlertingCommand,
    stores: &Stores,
    config: &Config,
    format: Format,
) -> Result<ExitCode> {
    let engine = Engine::new(stores, config.alerts);
    let now = crate::now();
    match command {
        AlertingCommand::Alerts(command) => alerts(&engine, config, command, format, now).await,
        AlertingCommand::Rules(command) => rules(&engine, config, command, format, now).await,
        AlertingCommand::Silences(command) => silences(&engine, command, format, now).await,
        AlertingCommand::Evaluate(args) => evaluate(&engine, args, format, now).await,
    }
}

/// Whether JSON output is one object or a list (a listing stays a list even of one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    One,
    List,
}

fn parse_time(field: &str, text: &str) -> Result<Timestamp> {
    Timestamp::parse(text).with_context(|| format!("--{field}: {text:?}"))
}

fn optional_model(text: Option<&str>) -> Result<Option<ModelName>> {
    Ok(text.map(ModelName::parse).transpose()?)
}

/// Refuses channels the configuration does not have: a rule naming one would leave its
/// notifications pending forever.
pub fn check_channels(config: &Config, channels: &[String]) -> Result<()> {
    let known: Vec<&str> = config.notify.channels.keys().map(|k| k.as_str()).collect();
    for channel in channels {
        if known.contains(&channel.as_str()) {
            continue;
        }
        if known.is_empty() {
            bail!(
                "--channels: no channel named {channel:?}: no channels are configured \
                 (add a [channels.{channel}] table to modelwatch.toml; see examples/modelwatch.toml)"
            );
        }
        bail!(
            "--channels: no channel named {channel:?} (configured: {})",
            known.join(", ")
        );
    }
    Ok(())
}

async fn alerts(
    engine: &Engine,
    config: &Config,
    command: AlertsCommand,
    format: Format,
    now: Timestamp,
) -> Result<ExitCode> {
    match command {
        AlertsCommand::CreateRule(args) => {
            check_channels(config, &args.channels)?;
            let rule = engine.create_rule(rule_spec(*args)?, now).await?;
            print_rules(&[rule], Shape::One, format)?;
        }
        AlertsCommand::ListRules { model } => {
            let model = optional_model(model.as_deref())?;
            let rules = engine.list_rules(model.as_ref()).await?;
            print_rules(&rules, Shape::List, format)?;
            if rules.is_empty() && format == Format::Table {
                outln!("no rules yet: try `modelwatch alerts create-rule MODEL METRIC --name N --threshold X --operator lt`")?;
            }
        }
        AlertsCommand::List(args) => {
            let open_only = args.status.as_deref() == Some("open");
            let filter = AlertFilter {
                model: optional_model(args.model.as_deref())?,
                version: args.version.as_deref().map(Version::parse).transpose()?,
                rule_id: None,
                status: args
                    .status
                    .as_deref()
                    .filter(|_| !open_only)
                    .map(|text| {
                        AlertStatus::parse(text).map_err(|_| {
                            anyhow::anyhow!(
                                "--status: {text:?} is not active, acknowledged, resolved, suppressed or open"
                            )
                        })
                    })
                    .transpose()?,
                severity: args.severity.as_deref().map(Severity::parse).transpose()?,
                window: args
                    .hours
                    .0
                    .map(|hours| modelwatch_core::alerting::last_hours(hours, now)),
            };
            let mut alerts = engine.list_alerts(&filter).await?;
            if open_only {
                alerts.retain(Alert::is_open);
            }
            emit(format, &wire_alerts(&alerts), &alerts_table(&alerts))?;
        }
        AlertsCommand::Acknowledge { alert_id, who } => {
            let alert = engine
                .acknowledge(&AlertId::parse(&alert_id)?, &who, now)
                .await?;
            emit(
                format,
                &wire::Alert::from(&alert),
                &alerts_table(std::slice::from_ref(&alert)),
            )?;
        }
        AlertsCommand::Resolve {
            alert_id,
            who,
            notes,
        } => {
            let alert = engine
                .resolve(&AlertId::parse(&alert_id)?, &who, notes.as_deref(), now)
                .await?;
            emit(
                format,
                &wire::Alert::from(&alert),
                &alerts_table(std::slice::from_ref(&alert)),
            )?;
        }
        AlertsCommand::Summary { model, hours } => {
            let model = optional_model(model.as_deref())?;
            let summary = engine.summary(model.as_ref(), hours.0, now).await?;
            let mut table = Table::new(&[
                "total",
                "active",
                "acknowledged",
                "resolved",
                "suppressed",
                "critical",
                "high",
                "medium",
                "low",
            ]);
            table.push(
                [
                    summary.total_count,
                    summary.active_count,
                    summary.acknowledged_count,
                    summary.resolved_count,
                    summary.suppressed_count,
                    summary.critical_count,
                    summary.high_count,
                    summary.medium_count,
                    summary.low_count,
                ]
                .iter()
                .map(ToString::to_string)
                .collect(),
            );
            emit(format, &wire::AlertSummary::from(&summary), &table)?;
        }
        AlertsCommand::History { alert_id } => {
            let history = engine.history(&AlertId::parse(&alert_id)?).await?;
            let mut table = Table::new(&["at", "by", "from", "to", "notes"]);
            for t in &history {
                table.push(vec![
                    t.at.to_string(),
                    t.by.clone(),
                    t.from.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
                    t.to.to_string(),
                    t.notes.clone().unwrap_or_default(),
                ]);
            }
            let history: Vec<wire::AlertTransition> = history.iter().map(Into::into).collect();
            emit(format, &history, &table)?;
        }
        AlertsCommand::Backtest {
            rule_id,
            dataset,
            from,
            to,
        } => {
            let from = parse_time("from", &from)?;
            let to = match to {
                Some(to) => parse_time("to", &to)?,
                None => now,
            };
            if to <= from {
                bail!("--to ({to}) must be after --from ({from})");
            }
            let rule_id = RuleId::parse(&rule_id)?;
            let range = TimeRange::new(from, to);
            let report = match dataset {
                None => engine.backtest(&rule_id, range).await?,
                Some(text) => {
                    let scope = DatasetScope::parse_scope(&text)?;
                    engine.backtest_on(&rule_id, range, scope).await?
                }
            };
            let series = |v: &modelwatch_engine::VersionBacktest| match &v.dataset {
                None => v.version.to_string(),
                Some(dataset) => format!("{} [{dataset}]", v.version),
            };
            let mut table = Table::new(&["version", "at", "alert", "event", "value"]);
            for version in &report.versions {
                for event in &version.events {
                    table.push(vec![
                        series(version),
                        event.at.to_string(),
                        event.alert_number.to_string(),
                        event.kind.as_str().to_owned(),
                        event.value.map(number).unwrap_or_default(),
                    ]);
                }
            }
            emit(format, &wire::BacktestReport::from(&report), &table)?;
            if format == Format::Table {
                for version in &report.versions {
                    outln!(
                        "{}: {} samples replayed, would have fired {} alert(s)",
                        series(version),
                        version.samples,
                        version.alerts
                    )?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `--min-shift`: `5%` → (Some(5), None), `1.5sd` or `1.5` → (None, Some(1.5)).
fn min_shift(text: &str) -> Result<(Option<f64>, Option<f64>)> {
    let text = text.trim();
    let (number, percent) = match text.strip_suffix('%') {
        Some(number) => (number, true),
        None => (text.strip_suffix("sd").unwrap_or(text), false),
    };
    let value: f64 = number.trim().parse().map_err(|_| {
        anyhow::anyhow!(
            "--min-shift {text:?}: give a number of noise sd (1.5sd) or a percentage (5%)"
        )
    })?;
    Ok(if percent {
        (Some(value), None)
    } else {
        (None, Some(value))
    })
}

/// `--false-alarm-every`: a number of samples, or a duration in hours, days or weeks.
fn false_alarm_every(text: &str) -> Result<(Option<i64>, Option<f64>)> {
    let text = text.trim();
    if let Ok(samples) = text.parse::<i64>() {
        return Ok((Some(samples), None));
    }
    let hours_per_unit = [("h", 1.0), ("d", 24.0), ("w", 168.0)];
    for (unit, hours) in hours_per_unit {
        if let Some(number) = text.strip_suffix(unit) {
            if let Ok(value) = number.trim().parse::<f64>() {
                return Ok((None, Some(value * hours)));
            }
        }
    }
    Err(anyhow::anyhow!(
        "--false-alarm-every {text:?}: give a number of samples (10000) or a duration (90d, 12h, 2w)"
    ))
}

/// `--no-data-for`: a duration in seconds, minutes, hours or days, in minutes; a bare
/// number is minutes.
fn no_data_for(text: &str) -> Result<f64> {
    let text = text.trim();
    if let Ok(minutes) = text.parse::<f64>() {
        return Ok(minutes);
    }
    let minutes_per_unit = [
        ("min", 1.0),
        ("s", 1.0 / 60.0),
        ("m", 1.0),
        ("h", 60.0),
        ("d", 1440.0),
    ];
    for (unit, minutes) in minutes_per_unit {
        if let Some(number) = text.strip_suffix(unit) {
            if let Ok(value) = number.trim().parse::<f64>() {
                return Ok(value * minutes);
            }
        }
    }
    Err(anyhow::anyhow!(
        "--no-data-for {text:?}: give a duration (30m, 90s, 2h, 1d) or a number of minutes"
    ))
}

fn rule_spec(args: CreateRuleArgs) -> Result<RuleSpec> {
    let no_data_minutes = args.no_data_for.as_deref().map(no_data_for).transpose()?;
    let (min_shift_percentage, min_shift_sd) = match &args.min_shift {
        Some(text) => min_shift(text)?,
        None => (None, None),
    };
    let (false_alarm_interval_samples, false_alarm_interval_hours) = match &args.false_alarm_every {
        Some(text) => false_alarm_every(text)?,
        None => (None, None),
    };
    Ok(RuleSpec {
        name: args.name,
        model: args.model,
        version: args.version,
        metric: args.metric,
        dataset: args.dataset,
        severity: args.severity,
        enabled: Some(!args.disabled),
        cooldown_minutes: args.cooldown,
        notify_channels: Some(args.channels),
        threshold_value: args.threshold,
        comparison_operator: args.operator,
        tolerance: args.tolerance,
        clear_threshold: args.clear_threshold,
        max_degradation_percentage: args.degradation,
        baseline_window_hours: args.baseline_hours,
        clear_percentage: args.clear_percentage,
        comparison: args.comparison,
        comparison_hours: args.comparison_hours,
        seasonal: args.seasonal,
        alpha: args.alpha,
        condition_type: args.change_point.then(|| "change_point".to_owned()),
        change_direction: args.change_direction,
        min_shift_percentage,
        min_shift_sd,
        false_alarm_interval_samples,
        false_alarm_interval_hours,
        no_data_minutes,
        no_data_intervals: args.no_data_intervals,
        for_evaluations: args.for_evaluations,
        clear_after_evaluations: args.clear_after,
        auto_resolve: match (args.auto_resolve, args.no_auto_resolve) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        },
    })
}

fn condition_text(rule: &Rule) -> String {
    match &rule.condition {
        Condition::Threshold {
            comparison_operator,
            threshold_value,
            ..
        } => format!("{comparison_operator} {threshold_value}"),
        Condition::Degradation {
            max_degradation_percentage,
            baseline_window_hours,
            comparison,
            comparison_hours,
            seasonal,
            alpha,
            ..
        } => {
            let compared = match (comparison, comparison_hours) {
                (ComparisonMode::Window, Some(hours)) => format!("{hours}h mean"),
                (mode, _) => mode.as_str().to_owned(),
            };
            let baseline = match seasonal {
                Some(cycle) => format!("same hours {}", cycle.as_str()),
                None => format!("{baseline_window_hours}h"),
            };
            let level = alpha.map(|a| format!(", alpha {a}")).unwrap_or_default();
            format!("degraded > {max_degradation_percentage}% ({compared} vs {baseline}{level})")
        }
        Condition::ChangePoint(condition) => {
            let shift = match (condition.min_shift_percentage, condition.min_shift_sd) {
                (Some(p), _) => format!("{p}%"),
                (None, Some(sd)) => format!("{sd}sd"),
                (None, None) => "1sd".to_owned(),
            };
            let every = match (
                condition.false_alarm_interval_samples,
                condition.false_alarm_interval_hours,
            ) {
                (Some(n), _) => format!("{n} samples"),
                (None, Some(hours)) => format!("{hours}h"),
                (None, None) => "90 days (≥ 1000 samples)".to_owned(),
            };
            format!(
                "change point ≥ {shift} ({}), 1 false alarm / {every}",
                condition.change_direction.as_str()
            )
        }
        Condition::NoData(condition) => {
            let limits: Vec<String> = [
                condition.no_data_minutes.map(minutes_words),
                condition
                    .no_data_intervals
                    .map(|n| format!("{n}× usual interval")),
            ]
            .into_iter()
            .flatten()
            .collect();
            format!("no data for {}", limits.join(" and "))
        }
    }
}

fn print_rules(rules: &[Rule], shape: Shape, format: Format) -> Result<()> {
    let mut table = Table::new(&[
        "id",
        "name",
        "model",
        "version",
        "dataset",
        "metric",
        "condition",
        "severity",
        "enabled",
        "cooldown_min",
        "channels",
    ])
    .optional(&[
        "cooldown_min",
        "channels",
        "enabled",
        "dataset",
        "version",
        "severity",
    ]);
    for rule in rules {
        table.push(vec![
            rule.id.to_string(),
            rule.name.clone(),
            rule.model.to_string(),
            rule.version
                .as_ref()
                .map_or_else(|| "all".to_owned(), ToString::to_string),
            match &rule.dataset {
                DatasetScope::Each => "each".to_owned(),
                scope => scope.as_text().to_owned(),
            },
            rule.metric.to_string(),
            condition_text(rule),
            rule.severity.to_string(),
            rule.enabled.to_string(),
            rule.cooldown_minutes.to_string(),
            rule.notify_channels.join(","),
        ]);
    }
    match (shape, rules) {
        (Shape::One, [rule]) => emit(format, &wire::Rule::from(rule), &table),
        _ => {
            let rules: Vec<wire::Rule> = rules.iter().map(Into::into).collect();
            emit(format, &rules, &table)
        }
    }
}

/// Alerts in their JSON form: the HTTP API's.
fn wire_alerts(alerts: &[Alert]) -> Vec<wire::Alert> {
    alerts.iter().map(Into::into).collect()
}

/// Alerts as table rows; `monitor` shows open alerts with it (see [`open_alerts`]).
pub fn alerts_table(alerts: &[Alert]) -> Table {
    let mut table = Table::new(&[
        "id",
        "status",
        "severity",
        "model",
        "version",
        "metric",
        "value",
        "first_seen",
        "last_seen",
        "message",
    ])
    .optional(&[
        "last_seen",
        "value",
        "version",
        "metric",
        "first_seen",
        "severity",
    ]);
    for alert in alerts {
        table.push(vec![
            alert.id.to_string(),
            alert.status.to_string(),
            alert.severity.to_string(),
            alert.model.to_string(),
            match &alert.dataset {
                None => alert.version.to_string(),
                Some(dataset) => format!("{} [{dataset}]", alert.version),
            },
            alert.metric.to_string(),
            alert_value(alert),
            alert.first_seen.to_string(),
            alert.last_seen.to_string(),
            alert.message.clone(),
        ]);
    }
    table
}

/// An alert's value in its rule kind's unit, as the dashboard shows it: a threshold
/// alert's is the metric's value, a degradation alert's the percentage by which the metric
/// is worse than its baseline, a change-point alert's the shift in noise sd.
fn alert_value(alert: &Alert) -> String {
    match alert.trigger {
        Trigger::Threshold { .. } => number(alert.value),
        Trigger::Degradation { .. } => format!("{:.2} % worse", alert.value),
        Trigger::ChangePoint { .. } => format!("{:+.2} sd", alert.value),
        Trigger::NoData { .. } => format!("silent {}", minutes_words(alert.value)),
    }
}

/// The open alerts of a model (of one version when given), newest first, for `monitor`.
pub async fn open_alerts(
    stores: &Stores,
    model: &ModelName,
    version: Option<&Version>,
) -> Result<Vec<Alert>> {
    let mut alerts = stores.alerts.open_alerts(Some(model)).await?;
    alerts.retain(|a| version.is_none_or(|v| *v == a.version));
    Ok(alerts)
}

async fn rules(
    engine: &Engine,
    config: &Config,
    command: RulesCommand,
    format: Format,
    now: Timestamp,
) -> Result<ExitCode> {
    let rule = match command {
        RulesCommand::Show { rule_id } => engine.rule(&RuleId::parse(&rule_id)?).await?,
        RulesCommand::Update { rule_id, patch } => {
            // The API's request type, so the CLI takes exactly the fields PATCH does.
            let patch = RulePatch::from(
                serde_json::from_str::<wire::RulePatchRequest>(&patch)
                    .context("the patch must be a JSON object of rule fields")?,
            );
            if let Some(channels) = &patch.notify_channels {
                check_channels(config, channels)?;
            }
            engine
                .update_rule(&RuleId::parse(&rule_id)?, patch, now)
                .await?
        }
        RulesCommand::Enable { rule_id } => {
            engine
                .set_rule_enabled(&RuleId::parse(&rule_id)?, true, now)
                .await?
        }
        RulesCommand::Disable { rule_id } => {
            engine
                .set_rule_enabled(&RuleId::parse(&rule_id)?, false, now)
                .await?
        }
        RulesCommand::Delete { rule_id } => {
            let id = RuleId::parse(&rule_id)?;
            engine.delete_rule(&id).await?;
            note!("deleted rule {id}; its alerts and their history are kept");
            return Ok(ExitCode::SUCCESS);
        }
    };
    print_rules(&[rule], Shape::One, format)?;
    Ok(ExitCode::SUCCESS)
}

fn print_silences(silences: &[Silence], shape: Shape, format: Format) -> Result<()> {
    let mut table = Table::new(&[
        "id",
        "model",
        "version",
        "metric",
        "starts_at",
        "ends_at",
        "by",
        "comment",
    ])
    .optional(&["starts_at", "metric", "version", "by"]);
    for s in silences {
        table.push(vec![
            s.id.to_string(),
            s.model.to_string(),
            s.version
                .as_ref()
                .map_or_else(|| "all".into(), ToString::to_string),
            s.metric
                .as_ref()
                .map_or_else(|| "all".into(), ToString::to_string),
            s.starts_at.to_string(),
            s.ends_at.to_string(),
            s.created_by.clone(),
            s.comment.clone(),
        ]);
    }
    match (shape, silences) {
        (Shape::One, [silence]) => emit(format, &wire::Silence::from(silence), &table),
        _ => {
            let silences: Vec<wire::Silence> = silences.iter().map(Into::into).collect();
            emit(format, &silences, &table)
        }
    }
}

async fn silences(
    engine: &Engine,
    command: SilencesCommand,
    format: Format,
    now: Timestamp,
) -> Result<ExitCode> {
    match command {
        SilencesCommand::Add(args) => {
            let spec = SilenceSpec {
                model: args.model,
                version: args.version,
                metric: args.metric,
                starts_at: args
                    .from
                    .as_deref()
                    .map(|t| parse_time("from", t))
                    .transpose()?,
                ends_at: args
                    .until
                    .as_deref()
                    .map(|t| parse_time("until", t))
                    .transpose()?,
                duration_minutes: args.minutes,
                created_by: args.by,
                comment: args.comment,
            };
            let silence = engine.add_silence(spec, now).await?;
            print_silences(&[silence], Shape::One, format)?;
        }
        SilencesCommand::List { all } => {
            let silences = engine.list_silences(all, now).await?;
            print_silences(&silences, Shape::List, format)?;
        }
        SilencesCommand::Expire { silence_id } => {
            let silence = engine
                .expire_silence(&SilenceId::parse(&silence_id)?, now)
                .await?;
            print_silences(&[silence], Shape::One, format)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn evaluate(
    engine: &Engine,
    args: EvaluateArgs,
    format: Format,
    now: Timestamp,
) -> Result<ExitCode> {
    let scope = match (args.model, args.version) {
        (Some(model), Some(version)) => {
            Some((ModelName::parse(&model)?, Version::parse(&version)?))
        }
        (None, None) => None,
        _ => bail!("give both a model and a version, or neither to evaluate every rule"),
    };
    // Due prediction windows judged first, then bounded passes until all is counted.
    let (report, _) = engine
        .judge_and_evaluate(scope.as_ref().map(|(m, v)| (m, v)), now)
        .await?;
    emit(
        format,
        &wire::EvaluationReport::from(&report),
        &alerts_table(&report.alerts_created),
    )?;
    if format == Format::Table {
        let counted: usize = report.evaluations.iter().map(|e| e.counted).sum();
        let pairs: std::collections::HashSet<_> = report
            .evaluations
            .iter()
            .map(|e| (&e.rule_id, &e.version))
            .collect();
        outln!(
            "evaluated {} rule × version pair(s), {counted} new sample(s) counted; {} alert(s) created",
            pairs.len(),
            report.alerts_created.len()
        )?;
        if !report.past_breaches.is_empty() {
            outln!(
                "{} past breach(es) recorded, not paged: they would have fired more than {} hours ago",
                report.past_breaches.len(),
                modelwatch_core::alerting::PAGING_HORIZON.as_secs() / 3600
            )?;
        }
        if !report.contended.is_empty() {
            outln!(
                "{} rule × version pair(s) kept losing races with another evaluator; run again",
                report.contended.len()
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(trigger: serde_json::Value, value: f64) -> Alert {
        modelwatch_store::alerts::records::deserialize_alert(serde_json::json!({
            "id": "alert_0000002a", "rule_id": "rule_0000002a", "rule_name": "r",
            "model": "m", "version": "v1", "metric": "accuracy", "severity": "high",
            "status": "active", "message": "r fired", "value": value, "worst_value": value,
            "trigger": trigger, "first_seen": 1_000, "last_seen": 1_000,
            "occurrences": 1, "notified": true,
        }))
        .unwrap()
    }

    #[test]
    fn an_alerts_value_is_listed_in_its_rule_kinds_unit() {
        let threshold = alert(
            serde_json::json!({"condition_type": "threshold", "comparison_operator": "lt", "threshold_value": 0.9}),
            0.8725,
        );
        let degradation = alert(
            serde_json::json!({"condition_type": "degradation", "max_degradation_percentage": 5.0,
                "degradation_percentage": 11.534, "current_value": 0.83, "baseline_value": 0.94}),
            11.534,
        );
        let change_point = alert(
            serde_json::json!({"condition_type": "change_point", "change_direction": "worse",
                "change_started_at": 500, "level_before": 0.94, "level_after": 0.83, "shift": -0.11,
                "shift_percentage": -11.7, "shift_sd": -4.25, "noise_sd": 0.026}),
            -4.25,
        );
        let table = alerts_table(&[threshold, degradation, change_point]);
        let column = table.headers.iter().position(|h| *h == "value").unwrap();
        let shown: Vec<&str> = table.rows.iter().map(|r| r[column].as_str()).collect();
        assert_eq!(shown, ["0.8725", "11.53 % worse", "-4.25 sd"]);
    }
}
