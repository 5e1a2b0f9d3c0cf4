//! The Numenta Anomaly Benchmark as a second test bed, with a simplified NAB scoring.
//!
//! Each series is replayed causally: at every row the detector sees only the rows up to
//! it. NAB anomalies go both ways, so each detector is run for both directions and flags a
//! row when either direction is degraded; a *detection* is the onset of a flagged run (an
//! alert firing), not every flagged row.
//!
//! Scoring follows NAB's description with these simplifications: a true positive scores
//! `tp_weight · (2 / (1 + e^{5y}) − 1)` with `y` the row's relative position in its window
//! (−1 at the start, 0 at the end), only the first detection in a window counts; a missed
//! window costs `fn_weight`; **every** detection outside a window costs the full
//! `fp_weight` (NAB scales false positives soon after a window down by the same sigmoid;
//! we do not, which can only lower our score); rows of the probation period (the first
//! 15 % of a file, at most 750 rows) are not scored. Scores are summed over all files and
//! normalised so that never firing scores 0 and firing at the start of every window 100.

use std::fs;
use std::path::Path;

use modelwatch_core::{Direction, Metric, MetricDefinition, Point, Timestamp, ValueRange};

use crate::detectors::{Kind, Runner};

#[derive(Debug, Clone, Copy)]
pub struct Profile {
    pub fp_weight: f64,
    pub fn_weight: f64,
}

pub const PROFILES: [Profile; 3] = [
    Profile {
        fp_weight: 0.11,
        fn_weight: 1.0,
    },
    Profile {
        fp_weight: 0.22,
        fn_weight: 1.0,
    },
    Profile {
        fp_weight: 0.11,
        fn_weight: 2.0,
    },
];

/// One series with its windows as row ranges and the detections of one detector.
#[derive(Debug)]
struct FileRun {
    probation: usize,
    windows: Vec<(usize, usize)>,
    detections: Vec<usize>,
}

#[derive(Debug, Clone, Default)]
pub struct NabScore {
    pub normalised: f64,
    pub detected_windows: usize,
    pub windows: usize,
    pub false_positives: usize,
}

fn parse_time(text: &str) -> Option<Timestamp> {
    let text = text.trim();
    let date_time = text.get(..19)?;
    Timestamp::parse(&format!("{}Z", date_time.replacen(' ', "T", 1))).ok()
}

fn read_series(path: &Path) -> Option<Vec<Point>> {
    let text = fs::read_to_string(path).ok()?;
    let mut points = Vec::new();
    for line in text.lines().skip(1) {
        let (time, value) = line.split_once(',')?;
        points.push(Point {
            timestamp: parse_time(time)?,
            value: value.trim().parse().ok()?,
            dataset: None,
        });
    }
    Some(points)
}

fn scaled_sigmoid(y: f64) -> f64 {
    2.0 / (1.0 + (5.0 * y).exp()) - 1.0
}

/// Runs one detector in one mode over every labelled file under `root`; `None` when the
/// data is not there.
pub fn evaluate(root: &Path, kind: Kind, comparison_hours: Option<u32>) -> Option<Vec<NabScore>> {
    let labels: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(root.join("labels/combined_windows.json")).ok()?)
            .ok()?;
    let labels = labels.as_object()?;
    let definitions = [Direction::HigherIsBetter, Direction::LowerIsBetter].map(|direction| {
        MetricDefinition::custom(
            Metric::Custom("nab_value".to_owned()),
            direction,
            ValueRange::UNBOUNDED,
        )
    });
    let [Ok(higher), Ok(lower)] = definitions else {
        return None;
    };
    let mut runner = Runner::new(comparison_hours);
    let mut runs = Vec::new();
    let mut names: Vec<&String> = labels.keys().collect();
    names.sort();
    for name in names {
        let points = read_series(&root.join("data").join(name))?;
        let windows: Vec<(usize, usize)> = labels[name.as_str()]
            .as_array()?
            .iter()
            .filter_map(|w| {
                let start = parse_time(w.get(0)?.as_str()?)?;
                let end = parse_time(w.get(1)?.as_str()?)?;
                let first = points.partition_point(|p| p.timestamp < start);
                let last = points
                    .partition_point(|p| p.timestamp <= end)
                    .checked_sub(1)?;
                (first <= last).then_some((first, last))
            })
            .collect();
        let probation = ((points.len() as f64 * 0.15) as usize).min(750);
        let mut detections = Vec::new();
        let mut was_flagged = false;
        for (row, point) in points.iter().enumerate() {
            let now =
                Timestamp::from_millis(point.timestamp.as_millis() + 1).unwrap_or(Timestamp::MAX);
            let seen = &points[..=row];
            let flagged = runner.degraded(kind, &higher, seen, now)
                || runner.degraded(kind, &lower, seen, now);
            if flagged && !was_flagged && row >= probation {
                detections.push(row);
            }
            was_flagged = flagged;
        }
        runs.push(FileRun {
            probation,
            windows,
            detections,
        });
    }
    Some(
        PROFILES
            .iter()
            .map(|profile| score(&runs, *profile))
            .collect(),
    )
}

fn score(runs: &[FileRun], profile: Profile) -> NabScore {
    let (mut raw, mut perfect, mut null) = (0.0, 0.0, 0.0);
    let mut result = NabScore::default();
    for run in runs {
        let windows: Vec<(usize, usize)> = run
            .windows
            .iter()
            .copied()
            .filter(|&(_, end)| end >= run.probation)
            .collect();
        for &(start, end) in &windows {
            let length = (end - start + 1) as f64;
            result.windows += 1;
            null -= profile.fn_weight;
            perfect += scaled_sigmoid(-1.0);
            match run.detections.iter().find(|&&d| d >= start && d <= end) {
                Some(&row) => {
                    raw += scaled_sigmoid((row as f64 - end as f64) / length);
                    result.detected_windows += 1;
                }
                None => raw -= profile.fn_weight,
            }
        }
        for &row in &run.detections {
            if !windows
                .iter()
                .any(|&(start, end)| row >= start && row <= end)
            {
                raw -= profile.fp_weight;
                result.false_positives += 1;
            }
        }
    }
    result.normalised = if perfect > null {
        100.0 * (raw - null) / (perfect - null)
    } else {
        0.0
    };
    result
}
