//! `modelwatch serve` and `modelwatch tokens`: wiring the HTTP server at the binary's edge.
//!
//! Reads the configuration (file, environment, flags), starts logging, opens the store,
//! optionally fills it with the demo, starts the notification worker (when channels are
//! configured) and the pruner (`retention.rs`), serves [`modelwatch_http::router`] and, on SIGINT or SIGTERM, stops
//! accepting, lets in-flight requests and notification sends finish, ends event streams
//! and closes the store, which commits whatever writes are still queued.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use modelwatch_core::Timestamp;
use modelwatch_http::{AppState, Clock, Limits};
use modelwatch_store::{NewToken, Scope, SeriesFilter, Stores};
use serde::Serialize;
use tracing_subscriber::EnvFilter;

use crate::config::{self, AuthMode, Config, LogFormat, Overrides};
use crate::output::{emit, Format, Table};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (default 127.0.0.1:7878; port 0 picks a free port).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<String>,
    /// Log level or tracing filter, e.g. `debug` or `info,tower_http=debug`.
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Whether the API and the dashboard require a token: `off` or `tokens` (default: the
    /// configuration's `[server] auth`, else `off`; a database with tokens must say).
    #[arg(long, value_name = "MODE", value_parser = ["off", "tokens"])]
    pub auth: Option<String>,
    /// Fill an empty store with a week of demo data, rules and alerts first.
    #[arg(long)]
    pub demo: bool,
    /// Delete samples older than this (e.g. 90d), at start-up and hourly; `forever`
    /// (the default) keeps them all.
    #[arg(long, value_name = "DURATION")]
    pub sample_retention: Option<String>,
    /// Delete notifications that finished (delivered, failed, skipped) longer ago than
    /// this (default 30d; `forever` keeps them).
    #[arg(long, value_name = "DURATION")]
    pub notification_retention: Option<String>,
    /// Delete raw prediction events older than this (e.g. 30d) once their window is
    /// final (its label delay passed), at start-up and hourly; `forever` (the default)
    /// keeps them. Their windows' metrics stay.
    #[arg(long, value_name = "DURATION")]
    pub prediction_retention: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create an API token; it is printed once and only its hash is stored.
    Create {
        /// A name to recognise it by (who or what uses it).
        name: String,
        /// read, or write (which includes read).
        #[arg(long, default_value = "read")]
        scope: String,
    },
    /// Every token (never the token itself).
    List,
    /// Revoke a token by id; the server stops accepting it within seconds.
    Revoke { id: i64 },
}

fn init_logging(config: &Config) {
    let filter =
        EnvFilter::try_new(&config.server.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only for a person at a terminal: a log file or a journal gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    // A second init (tests in one process) is harmless: the first subscriber stays.
    let _ = match config.server.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Runs the server until SIGINT or SIGTERM.
/// `config_file`: the global `--config` (default: modelwatch.toml in the working
/// directory, if any).
pub async fn serve(
    args: ServeArgs,
    db_flag: Option<String>,
    alerts_db_flag: Option<String>,
    config_file: Option<PathBuf>,
) -> Result<ExitCode> {
    let flags = Overrides {
        listen: args.listen.clone(),
        db: db_flag,
        alerts_db: alerts_db_flag,
        log_level: args.log_level.clone(),
        sample_retention: args.sample_retention.clone(),
        notification_retention: args.notification_retention.clone(),
        prediction_retention: args.prediction_retention.clone(),
        auth: args.auth.clone(),
    };
    let config = config::load(
        config_file.as_deref(),
        |key| std::env::var(key).ok(),
        &flags,
    )?;
    init_logging(&config);
    let stores = crate::cli::open_stores(&config).await?;
    if args.demo {
        fill_demo(&stores, config.alerts).await?;
    }
    let (auth, auth_note) = decide_auth(&stores, config.server.auth).await?;
    let engine = modelwatch_engine::Engine::new(&stores, config.alerts);
    let state = AppState::new(
        Arc::clone(&stores.metrics),
        (auth == AuthMode::Tokens).then(|| Arc::clone(&stores.tokens)),
        Limits {
            max_body_bytes: config.server.max_body_bytes,
            request_timeout: config.server.request_timeout,
            reads: config.server.reads,
            metrics_series: config.limits.metrics_series,
        },
        Clock::new(crate::now),
        Some(engine.clone()),
    );
    state.set_remote_write_mapping(config.remote_write.clone());
    state.set_influx_mapping(config.influx.clone());
    let shutdown = crate::shutdown::signal();
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let address = listener.local_addr()?;
    let (location, alerts_location) = config.store.locations()?;
    let alerts_location = alerts_location.as_deref().map(crate::migrate::shown);
    tracing::info!(
        %address,
        db = %crate::migrate::shown(&location),
        alerts_db = alerts_location.as_deref().unwrap_or("(with the samples)"),
        auth = %auth_note,
        "modelwatch listening"
    );
    // On stdout, for people and for scripts that asked for port 0 (the address is the
    // first word after "on"). The server runs on when nobody reads its standard output.
    let _ = outln!("modelwatch listening on http://{address} ({auth_note})");
    if args.demo {
        let _ = outln!(
            "demo: open http://{address}/ in a browser, or try: curl -s 'http://{address}/api/v1/alerts?hours=168'"
        );
    }
    let evaluator = tokio::spawn(modelwatch_http::evaluator::run(
        state.clone(),
        engine,
        modelwatch_http::evaluator::Schedule {
            interval: config.evaluation.interval,
            debounce: config.evaluation.debounce,
        },
    ));
    // The delivery worker beside the server; the same signal stops both.
    let notify = Arc::new(config.notify.clone());
    let (stop_worker, worker_stopped) = tokio::sync::watch::channel(false);
    let pruner =
        crate::retention::spawn_pruner(stores.clone(), config.retention, worker_stopped.clone());
    let worker = crate::notify_cli::start_worker(&stores, &notify, worker_stopped)?;
    state.set_notifications(
        modelwatch_http::Notifications::new(
            crate::notify_cli::summaries(&notify),
            worker
                .as_ref()
                .map(|(w, _)| w.counters().clone())
                .unwrap_or_default(),
            Arc::clone(&stores.alerts),
        )
        .with_config(Arc::clone(&notify)),
    );
    let app = modelwatch_http::router(state.clone());
    let shutdown_state = state.clone();
    modelwatch_http::server::serve(listener, app, config.server.connections, async move {
        shutdown.await;
        tracing::info!("shutting down: finishing in-flight requests and notifications");
        shutdown_state.begin_shutdown();
        stop_worker.send_replace(true);
    })
    .await;
    // The evaluator stops at the shutdown signal; a pass in progress finishes first.
    if let Err(error) = evaluator.await {
        tracing::warn!(%error, "the evaluator stopped abnormally");
    }
    // In-flight sends finish (each bounded by its channel's time-out) so their outcomes
    // are recorded before the store closes.
    if let Some((_, task)) = worker {
        if let Err(error) = task.await {
            tracing::warn!(%error, "the notification worker stopped abnormally");
        }
    }
    if let Some(task) = pruner {
        if let Err(error) = task.await {
            tracing::warn!(%error, "the pruner stopped abnormally");
        }
    }
    stores
        .close()
        .await
        .context("cannot close the database cleanly")?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// The authentication the server runs with, and how the start-up line says it. Never
/// inferred from the tokens: a database that has tokens (even revoked ones) must be told
/// whether to require them, so an upgrade from the days when a token switched auth on
/// cannot silently open an API that was closed.
async fn decide_auth(stores: &Stores, configured: Option<AuthMode>) -> Result<(AuthMode, String)> {
    let tokens = stores
        .tokens
        .list_tokens()
        .await
        .context("cannot read the API tokens")?;
    let active = tokens.iter().filter(|t| t.is_active()).count();
    let mode = match configured {
        Some(mode) => mode,
        None if !tokens.is_empty() => anyhow::bail!(
            "this database has API tokens ({active} active): say whether the server requires them, \
             with `serve --auth tokens` (or [server] auth = \"tokens\", MODELWATCH_AUTH=tokens) or `--auth off`"
        ),
        None => AuthMode::Off,
    };
    let note = match (mode, active) {
        (AuthMode::Off, _) => "auth off: no token needed".to_owned(),
        (AuthMode::Tokens, 0) => "auth tokens: no active token yet; create one with `modelwatch tokens create NAME --scope write`".to_owned(),
        (AuthMode::Tokens, n) => format!("auth tokens: {n} active; the dashboard asks for one"),
    };
    if mode == AuthMode::Tokens && active == 0 {
        tracing::warn!("auth is on and no token is active: only /healthz and the dashboard's sign-in page answer");
    }
    Ok((mode, note))
}

/// Fills an empty store with the demo: a week of metrics, rules, a silence, alerts in every
/// state (active, acknowledged, resolved, suppressed) and one from three days ago. Leaves a
/// store with data alone.
async fn fill_demo(stores: &Stores, alerts: modelwatch_core::alerting::AlertConfig) -> Result<()> {
    use modelwatch_core::alerting::{RuleSpec, SilenceSpec};

    let existing = stores.metrics.list_series(&SeriesFilter::default()).await?;
    if !existing.is_empty() {
        tracing::info!(
            series = existing.len(),
            "the store has data; --demo adds nothing"
        );
        return Ok(());
    }
    let now = crate::now();
    let samples = crate::demo::samples(now);
    let count = samples.len();
    // A past incident: three days ago the churn model's MAE rule fired, and the on-call
    // resolved it an hour later. Recorded as it happened (the samples up to then written
    // first, the model evaluated at that time), so the demo has an alert older than a
    // day, which only the dashboard's longer time filters show.
    let incident = now.saturating_sub(std::time::Duration::from_secs(3 * 24 * 3600));
    let (before, after): (Vec<_>, Vec<_>) =
        samples.into_iter().partition(|s| s.timestamp <= incident);
    stores.metrics.append(before).await?;

    let engine = modelwatch_engine::Engine::new(stores, alerts);
    let threshold = |name: &str,
                     model: &str,
                     version: Option<&str>,
                     metric: &str,
                     operator: &str,
                     value: f64,
                     severity: &str| RuleSpec {
        name: name.into(),
        model: model.into(),
        version: version.map(Into::into),
        metric: metric.into(),
        severity: Some(severity.into()),
        threshold_value: Some(value),
        comparison_operator: Some(operator.into()),
        for_evaluations: Some(1),
        ..RuleSpec::default()
    };
    // The demo data's bad deploy (fraud_detector v2.1, two hours ago) and error-rate spike
    // (recommender) breach these; the latency rule stays quiet.
    let rules = [
        threshold(
            "Fraud accuracy below 90%",
            "fraud_detector",
            Some("v2.1"),
            "accuracy",
            "lt",
            0.90,
            "high",
        ),
        threshold(
            "Fraud precision below 88%",
            "fraud_detector",
            Some("v2.1"),
            "precision",
            "lt",
            0.88,
            "medium",
        ),
        threshold(
            "Recommender errors above 1.8%",
            "recommender",
            None,
            "error_rate",
            "gt",
            0.018,
            "critical",
        ),
        threshold(
            "Churn MAE above 3.0",
            "churn_regressor",
            None,
            "mae",
            "gt",
            3.0,
            "low",
        ),
        threshold(
            "Recommender latency above 250 ms",
            "recommender",
            None,
            "latency",
            "gt",
            250.0,
            "medium",
        ),
        RuleSpec {
            name: "Fraud accuracy degraded 5%".into(),
            model: "fraud_detector".into(),
            metric: "accuracy".into(),
            severity: Some("high".into()),
            max_degradation_percentage: Some(5.0),
            // The last hour's mean, all of it after the bad deploy (`auto` would take six
            // hours on this five-minute data, two of them bad: under 5 % worse).
            comparison_hours: Some(1),
            // Fires at once (the default waits for three), so the demo shows a
            // degradation alert with its significance test.
            for_evaluations: Some(1),
            ..RuleSpec::default()
        },
    ];
    for rule in rules {
        engine.create_rule(rule, incident).await?;
    }
    let churn = (
        modelwatch_core::ModelName::parse("churn_regressor")?,
        modelwatch_core::Version::parse("v1.5")?,
    );
    let past = engine
        .evaluate_until_counted(Some((&churn.0, &churn.1)), incident)
        .await?;
    for alert in &past.alerts_created {
        engine
            .resolve(
                &alert.id,
                "demo-oncall",
                Some("expected until the retraining; silenced while it runs"),
                incident.saturating_add(std::time::Duration::from_secs(3600)),
            )
            .await?;
    }
    stores.metrics.append(after).await?;
    // Planned retraining of the churn model: its alert is suppressed.
    engine
        .add_silence(
            SilenceSpec {
                model: "churn_regressor".into(),
                duration_minutes: Some(24 * 60),
                created_by: "demo".into(),
                comment: "retraining in progress".into(),
                ..SilenceSpec::default()
            },
            now,
        )
        .await?;
    let mut report = engine.evaluate_until_counted(None, now).await?;
    // One more rule, evaluated while alerting is switched off: its alert is recorded as
    // suppressed, so the demo shows that state too.
    engine
        .create_rule(
            threshold(
                "Churn RMSE above 4.0",
                "churn_regressor",
                None,
                "rmse",
                "gt",
                4.0,
                "medium",
            ),
            now,
        )
        .await?;
    let switched_off = modelwatch_core::alerting::AlertConfig {
        enable_alerts: false,
        ..alerts
    };
    let quiet = modelwatch_engine::Engine::new(stores, switched_off);
    report.alerts_created.extend(
        quiet
            .evaluate_until_counted(None, now)
            .await?
            .alerts_created,
    );
    for alert in &report.alerts_created {
        let outcome = match alert.metric.as_str() {
            "precision" => engine
                .acknowledge(&alert.id, "demo-oncall", now)
                .await
                .map(drop),
            "error_rate" => engine
                .resolve(
                    &alert.id,
                    "demo-oncall",
                    Some("rolled back the bad feature flag"),
                    now,
                )
                .await
                .map(drop),
            _ => Ok(()),
        };
        if let Err(error) = outcome {
            tracing::warn!(%error, alert = %alert.id, "demo: cannot change the alert");
        }
    }
    tracing::info!(
        samples = count,
        alerts = report.alerts_created.len() + past.alerts_created.len(),
        "recorded the demo: a week of metrics, rules, a silence, alerts and a past incident"
    );
    Ok(())
}

/// Writes the secret and its newline to standard output and flushes it.
fn print_secret(secret: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{secret}")?;
    out.flush()
}

#[derive(Debug, Serialize)]
struct TokenRow {
    id: i64,
    name: String,
    scope: String,
    created_at: Timestamp,
    revoked_at: Option<Timestamp>,
}

pub async fn tokens(stores: &Stores, command: TokensCommand, format: Format) -> Result<ExitCode> {
    match command {
        TokensCommand::Create { name, scope } => {
            let scope = Scope::parse(&scope)?;
            modelwatch_store::tokens::check_token_name(&name)?;
            let (secret, hash) =
                modelwatch_http::generate_token().context("no randomness for the token")?;
            // The secret is printed before the token exists: a token whose secret could
            // not be shown (`| head -c0`, a closed pipe) is never created.
            print_secret(&secret).map_err(|error| {
                anyhow::anyhow!("cannot print the token ({error}); no token was created")
            })?;
            let info = stores
                .tokens
                .create_token(NewToken {
                    name,
                    scope,
                    hash,
                    created_at: crate::now(),
                })
                .await
                .context("the token printed above was not stored and does not work")?;
            note!(
                "created token {} ({}, {} scope); it was printed above and is shown only this once",
                info.id,
                info.name,
                info.scope
            );
            Ok(ExitCode::SUCCESS)
        }
        TokensCommand::List => {
            let rows: Vec<TokenRow> = stores
                .tokens
                .list_tokens()
                .await?
                .into_iter()
                .map(|t| TokenRow {
                    id: t.id,
                    name: t.name,
                    scope: t.scope.to_string(),
                    created_at: t.created_at,
                    revoked_at: t.revoked_at,
                })
                .collect();
            let mut table = Table::new(&["id", "name", "scope", "created", "revoked"]);
            for row in &rows {
                table.push(vec![
                    row.id.to_string(),
                    row.name.clone(),
                    row.scope.clone(),
                    row.created_at.to_string(),
                    row.revoked_at.map(|t| t.to_string()).unwrap_or_default(),
                ]);
            }
            emit(format, &rows, &table)?;
            Ok(ExitCode::SUCCESS)
        }
        TokensCommand::Revoke { id } => {
            if stores.tokens.revoke_token(id, crate::now()).await? {
                note!("revoked token {id}");
                Ok(ExitCode::SUCCESS)
            } else {
                anyhow::bail!("no active token with id {id}")
            }
        }
    }
}
