//! Detection-quality benchmark: how often do the seed's plain percentage rule and
//! modelwatch's default check raise false alarms, and how reliably and quickly do they
//! detect real degradations?
//!
//! `cargo run --release -p modelwatch-quality-bench` prints markdown tables and writes them
//! to `bench/quality/RESULTS.md`. Streams come from fixed seeds, so runs are reproducible.
//! The NAB series are read from `MODELWATCH_NAB_DIR`, else from `shared/benchdata/nab`
//! beside the repository; without them that section is skipped.
//!
//! For quick comparisons: `MODELWATCH_DETECTION_OPTIONS` (JSON) overrides detection
//! options, `MODELWATCH_QUALITY_ONLY` runs only the scenarios whose name contains one of
//! its `|`-separated parts (seeds unchanged; RESULTS.md is then not written),
//! `MODELWATCH_QUALITY_NO_NAB` skips the NAB section, and `MODELWATCH_QUALITY_STREAMS` /
//! `MODELWATCH_QUALITY_SEED` run other or more streams per scenario (RESULTS.md is then not
//! written either). 400 streams measure a detection rate near 95 % with a standard error of
//! about 1 point (40 streams: about 3.5), which the goal rows need; a run takes a few
//! minutes.
//!
//! `MODELWATCH_QUALITY_CEILING=1` prints instead how far detectors of several shapes can get
//! on the latency goal rows, which led to the long-run test (see `ceiling.rs`; output in
//! `bench/quality/CEILING.md`).

mod ceiling;
mod detectors;
mod nab;
mod synthetic;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use detectors::Kind;
use synthetic::{Outcome, Scenario};

const STREAMS_PER_SCENARIO: usize = 400;
const SEED: u64 = 0x6D6F_6465_6C77_6174;

/// Streams per scenario and the seed: the committed defaults, or the overrides from the
/// environment (an unreadable override is reported and ignored).
fn sampling() -> (usize, u64) {
    fn read<T: std::str::FromStr>(name: &str, default: T) -> T {
        match std::env::var(name) {
            Ok(text) => text.trim().parse().unwrap_or_else(|_| {
                eprintln!("ignoring {name}={text:?}: not a number");
                default
            }),
            Err(_) => default,
        }
    }
    (
        read("MODELWATCH_QUALITY_STREAMS", STREAMS_PER_SCENARIO).max(1),
        read("MODELWATCH_QUALITY_SEED", SEED),
    )
}

fn nab_root() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("MODELWATCH_NAB_DIR") {
        return Some(PathBuf::from(dir));
    }
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let beside_repo = manifest.join("../../../shared/benchdata/nab");
    [beside_repo, PathBuf::from("/work/shared/benchdata/nab")]
        .into_iter()
        .find(|p| p.join("labels/combined_windows.json").is_file())
}

fn mode_label(hours: Option<u32>, scenario: &Scenario) -> String {
    match hours {
        None => "latest value".to_owned(),
        Some(h) => format!("{h} h window ({} samples)", scenario.samples_per_window()),
    }
}

fn fmt_rate(outcome: &Outcome, scenario: &Scenario) -> String {
    if scenario.has_change() {
        format!("{:.0} %", 100.0 * outcome.detection_rate())
    } else {
        "–".to_owned()
    }
}

fn fmt_delay(outcome: &Outcome) -> String {
    outcome
        .mean_delay_minutes()
        .map_or_else(|| "–".to_owned(), |d| format!("{d:.0}"))
}

fn synthetic_section(out: &mut String, (streams, seed): (usize, u64)) -> Vec<String> {
    let mut goal_notes = Vec::new();
    let _ = writeln!(out, "## Synthetic labelled streams\n");
    let _ = writeln!(
        out,
        "{streams} streams per scenario; checks every 10 min (dense, 1 sample/min) or 20 min (sparse, 1 sample/20 min) during days 8–10; baseline = 24 h before; a change starts in day 8.5–9.0 and counts as detected when a check fires within 24 h. False alarms are counted on the checks before the change (all checks when there is none).\n"
    );
    let _ = writeln!(
        out,
        "| scenario | change | mode | detector | detection rate | false alarms / 1000 checks | mean delay (min) |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    let only = std::env::var("MODELWATCH_QUALITY_ONLY").ok();
    for (index, scenario) in synthetic::scenarios().iter().enumerate() {
        if let Some(only) = &only {
            if !only.split('|').any(|part| scenario.name.contains(part)) {
                continue;
            }
        }
        for hours in [None, Some(scenario.window_hours)] {
            let outcomes = synthetic::run(scenario, hours, streams, seed ^ index as u64);
            for (kind, outcome) in scenario.kinds().iter().zip(&outcomes) {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {:.1} | {} |",
                    scenario.name,
                    scenario.change_description(),
                    mode_label(hours, scenario),
                    kind.label(),
                    fmt_rate(outcome, scenario),
                    outcome.false_alarms_per_1000(),
                    fmt_delay(outcome),
                );
            }
            let (plain, ours) = (&outcomes[0], &outcomes[1]);
            if !scenario.has_change() {
                let ratio = if ours.false_alarms == 0 {
                    if plain.false_alarms == 0 {
                        "both 0".to_owned()
                    } else {
                        "∞ (modelwatch 0)".to_owned()
                    }
                } else {
                    format!(
                        "{:.1}×",
                        plain.false_alarms_per_1000() / ours.false_alarms_per_1000()
                    )
                };
                goal_notes.push(format!(
                    "- {} / {}: plain {:.2} vs modelwatch {:.2} false alarms per 1000 checks → {} fewer (goal ≥ 10×)",
                    scenario.name,
                    mode_label(hours, scenario),
                    plain.false_alarms_per_1000(),
                    ours.false_alarms_per_1000(),
                    ratio
                ));
            } else if hours.is_some()
                && scenario.samples_per_window() >= 100
                && matches!(scenario.change, synthetic::Change::Step(p) if p >= 5.0)
            {
                goal_notes.push(format!(
                    "- {} / {}: modelwatch detects {:.1} % ({} of {}; goal ≥ 95 %)",
                    scenario.name,
                    mode_label(hours, scenario),
                    100.0 * ours.detection_rate(),
                    ours.detected,
                    ours.streams
                ));
            }
        }
        eprintln!("scenario {} done", scenario.name);
    }
    goal_notes
}

fn nab_section(out: &mut String) {
    let _ = writeln!(
        out,
        "\n## NAB (Numenta Anomaly Benchmark v1.1), simplified scoring\n"
    );
    let Some(root) = nab_root() else {
        let _ = writeln!(out, "NAB data not found (set MODELWATCH_NAB_DIR); skipped.");
        return;
    };
    let _ = writeln!(
        out,
        "58 series replayed causally, both directions checked, a detection is the onset of a flagged run. Simplified: every detection outside a window costs the full FP weight (NAB discounts those right after a window). Normalised: never firing = 0, perfect = 100. Published best: standard 74.9, low FP 67.0, low FN 80.4.\n"
    );
    let _ = writeln!(
        out,
        "| detector | mode | standard | reward low FP | reward low FN | windows detected | false positives |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    for hours in [None, Some(1)] {
        for kind in [Kind::Plain, Kind::Modelwatch] {
            match nab::evaluate(&root, kind, hours) {
                Some(scores) => {
                    let mode = hours
                        .map_or_else(|| "latest value".to_owned(), |h| format!("{h} h window"));
                    let _ = writeln!(
                        out,
                        "| {} | {} | {:.1} | {:.1} | {:.1} | {}/{} | {} |",
                        kind.label(),
                        mode,
                        scores[0].normalised,
                        scores[1].normalised,
                        scores[2].normalised,
                        scores[0].detected_windows,
                        scores[0].windows,
                        scores[0].false_positives
                    );
                }
                None => {
                    let _ = writeln!(
                        out,
                        "| {} | NAB files unreadable under {} | | | | | |",
                        kind.label(),
                        root.display()
                    );
                }
            }
            eprintln!("nab {} {:?} done", kind.label(), hours);
        }
    }
}

fn main() -> ExitCode {
    let started = Instant::now();
    let mut out = String::from("# modelwatch detection-quality benchmark\n\nGenerated by `cargo run --release -p modelwatch-quality-bench`. (a) the seed's plain rule: degraded when the latest value (or the comparison window's mean) is more than 5 % worse than the baseline mean. (b) modelwatch's default: `check_degradation` with `DetectionOptions::default()` and `WindowSpec::default()` (weekly guard on), same windows; in window mode it also gets the 7 days 16 hours of history, so on the dense (1 sample/min) streams the long-run test decides (`crates/core/src/detection/long_run.rs`). (c) on streams with a daily cycle, also modelwatch with the `seasonal: daily` option (baseline = the same hours one day earlier).\n\n");
    let sampling = sampling();
    if std::env::var_os("MODELWATCH_QUALITY_CEILING").is_some() {
        print!("{}", ceiling::report(sampling.0, sampling.1));
        return ExitCode::SUCCESS;
    }
    let goals = synthetic_section(&mut out, sampling);
    let _ = writeln!(out, "\n### Goals\n");
    for goal in goals {
        let _ = writeln!(out, "{goal}");
    }
    let partial = std::env::var_os("MODELWATCH_QUALITY_ONLY").is_some()
        || sampling != (STREAMS_PER_SCENARIO, SEED);
    if std::env::var_os("MODELWATCH_QUALITY_NO_NAB").is_none() {
        nab_section(&mut out);
    }
    let _ = writeln!(out, "\nRun time: {:.1} s.", started.elapsed().as_secs_f64());
    print!("{out}");
    if partial {
        return ExitCode::SUCCESS;
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("RESULTS.md");
    match std::fs::write(&path, &out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("could not write {}: {error}", path.display());
            ExitCode::FAILURE
        }
    }
}
