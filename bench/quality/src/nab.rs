//! The Numenta Anomaly Benchmark (NAB v1.1) and its official scorer.
//!
//! The scoring is NAB's own (`nab/sweeper.py` with `nab/runner.py`'s normalisation),
//! rule for rule:
//! - a detector gives each row an anomaly score; every row scoring at or above the
//!   threshold is a detection (modelwatch's detectors score 1 at the rows where an alert
//!   would open and 0 elsewhere, scored at threshold 0.5);
//! - the first `min(floor(0.15 · rows), 750)` rows of a file are the probation period:
//!   their detections count for nothing, and a window lying wholly inside it is not scored;
//! - inside a window, a detection at row `i` is worth `tp · σ(−(right − i + 1) / width) /
//!   σ(−1)` with `σ(y) = 2 / (1 + e^{5y}) − 1` (the scaled sigmoid; `y ≥ 3` gives −1), so the
//!   window's first row is worth exactly `tp`; a window keeps its best (earliest) detection,
//!   and a window without one costs `fn`;
//! - outside windows, a detection costs `fp · σ(|i − previous window's right| /
//!   (previous width − 1))` (σ is negative there: a detection just after a window costs
//!   almost nothing, one far after it up to the full `fp`), or `−fp` before any window;
//! - a corpus score is the sum over files, normalised as `100 · (raw − null) / (perfect −
//!   null)`, where `null` is the raw score of the detector that never fires (`−fn` per
//!   window) and `perfect = tp · windows`.
//!
//! The profiles' weights are read from NAB's `config/profiles.json`. The scorer is checked
//! against published numbers in this module's tests and in the benchmark's NAB section
//! (which reproduces the null detector's raw scores and NAB's `relativeEntropy` baseline
//! end to end).

use std::fs;
use std::path::Path;

use modelwatch_core::{Point, Timestamp};

/// A scoring profile: NAB's cost matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub name: String,
    pub tp_weight: f64,
    pub fp_weight: f64,
    pub fn_weight: f64,
}

/// NAB's profile order in every table: standard, reward low FP, reward low FN.
pub const PROFILE_NAMES: [&str; 3] = ["standard", "reward_low_FP_rate", "reward_low_FN_rate"];

/// The three profiles from `config/profiles.json`, in [`PROFILE_NAMES`] order.
pub fn profiles(root: &Path) -> Option<Vec<Profile>> {
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(root.join("config/profiles.json")).ok()?).ok()?;
    PROFILE_NAMES
        .iter()
        .map(|name| {
            let matrix = json.get(name)?.get("CostMatrix")?;
            Some(Profile {
                name: (*name).to_owned(),
                tp_weight: matrix.get("tpWeight")?.as_f64()?,
                fp_weight: matrix.get("fpWeight")?.as_f64()?,
                fn_weight: matrix.get("fnWeight")?.as_f64()?,
            })
        })
        .collect()
}

/// One labelled NAB file: its rows and its windows as inclusive row ranges.
#[derive(Debug, Clone)]
pub struct LabelledFile {
    pub points: Vec<Point>,
    pub windows: Vec<(usize, usize)>,
}

/// NAB's probation period: `min(floor(0.15 · rows), 0.15 · 5000)`.
pub fn probation(rows: usize) -> usize {
    ((0.15 * rows as f64).floor() as usize).min(750)
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

/// Every labelled file under `root`, sorted by name; `None` when the data is not there.
/// Window limits are NAB timestamps of rows; a window is the rows from its start to its
/// end, both included.
pub fn load(root: &Path) -> Option<Vec<LabelledFile>> {
    let labels: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(root.join("labels/combined_windows.json")).ok()?)
            .ok()?;
    let labels = labels.as_object()?;
    let mut names: Vec<&String> = labels.keys().collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let points = read_series(&root.join("data").join(name))?;
            let windows = labels[name.as_str()]
                .as_array()?
                .iter()
                .map(|w| {
                    let start = parse_time(w.get(0)?.as_str()?)?;
                    let end = parse_time(w.get(1)?.as_str()?)?;
                    let first = points.iter().position(|p| p.timestamp == start)?;
                    let last = points.iter().position(|p| p.timestamp == end)?;
                    (first <= last).then_some((first, last))
                })
                .collect::<Option<Vec<_>>>()?;
            Some(LabelledFile { points, windows })
        })
        .collect()
}

/// NAB's scaled sigmoid.
pub fn scaled_sigmoid(position: f64) -> f64 {
    if position >= 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * position).exp()) - 1.0
    }
}

/// The raw score of one file and its counts (windows detected, false positives).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FileScore {
    pub raw: f64,
    pub windows: usize,
    pub detected_windows: usize,
    pub false_positives: usize,
}

/// Scores one file of `rows` rows with `windows` (inclusive row ranges, sorted) for the
/// detections `detected(row)`, as NAB's sweeper does at a fixed threshold.
pub fn score_file(
    rows: usize,
    windows: &[(usize, usize)],
    detected: impl Fn(usize) -> bool,
    profile: &Profile,
) -> FileScore {
    let probation = probation(rows);
    let max_tp = scaled_sigmoid(-1.0);
    let mut result = FileScore::default();
    // Each scored window's best detection so far, or its miss.
    let mut window_scores: Vec<Option<f64>> = Vec::new();
    let mut next_window = 0;
    let mut current: Option<(usize, usize)> = None;
    let mut previous: Option<(usize, usize)> = None;
    let mut fp_total = 0.0;
    for row in 0..rows {
        if current.is_none() && next_window < windows.len() && windows[next_window].0 == row {
            current = Some(windows[next_window]);
            window_scores.push(None);
            next_window += 1;
        }
        let scored = row >= probation;
        match current {
            Some((start, end)) => {
                let width = (end - start + 1) as f64;
                if scored {
                    let slot = window_scores.last_mut().unwrap_or_else(|| unreachable!());
                    // A window counts once any of its rows is past probation.
                    let base = slot.unwrap_or(f64::NEG_INFINITY);
                    if detected(row) {
                        let position = -((end - row + 1) as f64) / width;
                        let weighted = scaled_sigmoid(position) * profile.tp_weight / max_tp;
                        *slot = Some(base.max(weighted));
                    } else {
                        *slot = Some(base);
                    }
                }
            }
            None => {
                if scored && detected(row) {
                    let position = match previous {
                        None => 3.0,
                        Some((start, end)) => (row - end) as f64 / (end - start) as f64,
                    };
                    fp_total += scaled_sigmoid(position) * profile.fp_weight;
                    result.false_positives += 1;
                }
            }
        }
        if let Some((start, end)) = current {
            if row == end {
                previous = Some((start, end));
                current = None;
            }
        }
    }
    result.raw = fp_total;
    for slot in window_scores.into_iter().flatten() {
        result.windows += 1;
        if slot.is_finite() {
            result.detected_windows += 1;
            result.raw += slot;
        } else {
            result.raw -= profile.fn_weight;
        }
    }
    result
}

/// A corpus score: raw, normalised, and counts summed over files.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CorpusScore {
    pub raw: f64,
    pub normalised: f64,
    pub windows: usize,
    pub detected_windows: usize,
    pub false_positives: usize,
}

/// Scores the detections of every file (`detections[f]` sorted rows of `files[f]`) with
/// one profile, normalised by the null detector (scored by the same function with no
/// detections) and the perfect one (`tp` per labelled window).
pub fn score_corpus(
    files: &[LabelledFile],
    detections: &[Vec<usize>],
    profile: &Profile,
) -> CorpusScore {
    let mut score = CorpusScore::default();
    let mut null = 0.0;
    let mut labelled_windows = 0;
    for (file, rows) in files.iter().zip(detections) {
        let file_score = score_file(
            file.points.len(),
            &file.windows,
            |row| rows.binary_search(&row).is_ok(),
            profile,
        );
        null += score_file(file.points.len(), &file.windows, |_| false, profile).raw;
        labelled_windows += file.windows.len();
        score.raw += file_score.raw;
        score.windows += file_score.windows;
        score.detected_windows += file_score.detected_windows;
        score.false_positives += file_score.false_positives;
    }
    let perfect = labelled_windows as f64 * profile.tp_weight;
    score.normalised = 100.0 * (score.raw - null) / (perfect - null);
    score
}

/// NAB's `relativeEntropy` baseline detector (Wang et al. 2011, as NAB implements it in
/// `nab/detectors/relative_entropy/relative_entropy_detector.py`): its rows scoring 1.
/// Reproducing its published scores checks this scorer end to end.
pub fn relative_entropy_detections(points: &[Point]) -> Vec<usize> {
    const BINS: usize = 5;
    const WINDOW: usize = 52;
    // scipy.stats.chi2.isf(0.01, 4)
    const T: f64 = 13.276_704_135_987_622;
    let values: Vec<f64> = points.iter().map(|p| p.value).collect();
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let step = (max - min) / BINS as f64;
    let mut detections = Vec::new();
    if step == 0.0 {
        return detections;
    }
    let mut hypotheses: Vec<[f64; BINS]> = Vec::new();
    let mut counts: Vec<u32> = Vec::new();
    for row in 0..values.len() {
        if row + 1 < WINDOW {
            continue;
        }
        let mut histogram = [0.0; BINS];
        for &value in &values[row + 1 - WINDOW..=row] {
            let bin = ((value - min) / step).ceil();
            // numpy.histogram over [0, 5] with 5 bins: the last bin is closed.
            let index = (bin.max(0.0) as usize).min(BINS - 1);
            histogram[index] += 1.0;
        }
        let total: f64 = histogram.iter().sum();
        let p_hat = histogram.map(|c| c / total);
        if hypotheses.is_empty() {
            hypotheses.push(p_hat);
            counts.push(1);
            continue;
        }
        let mut best: Option<usize> = None;
        let mut min_entropy = f64::INFINITY;
        for (index, p) in hypotheses.iter().enumerate() {
            let entropy = 2.0 * WINDOW as f64 * relative_entropy(&p_hat, p);
            if entropy < T && entropy < min_entropy {
                min_entropy = entropy;
                best = Some(index);
            }
        }
        match best {
            Some(index) => {
                counts[index] += 1;
                if counts[index] <= 1 {
                    detections.push(row);
                }
            }
            None => {
                detections.push(row);
                hypotheses.push(p_hat);
                counts.push(1);
            }
        }
    }
    detections
}

/// `scipy.stats.entropy(p, q)`: both normalised, `Σ p ln(p / q)`, infinite where `q` is 0
/// and `p` is not.
fn relative_entropy(p: &[f64], q: &[f64]) -> f64 {
    let (sp, sq): (f64, f64) = (p.iter().sum(), q.iter().sum());
    p.iter()
        .zip(q)
        .map(|(&p, &q)| {
            let (p, q) = (p / sp, q / sq);
            if p == 0.0 {
                0.0
            } else if q == 0.0 {
                f64::INFINITY
            } else {
                p * (p / q).ln()
            }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standard() -> Profile {
        Profile {
            name: "standard".into(),
            tp_weight: 1.0,
            fp_weight: 0.11,
            fn_weight: 1.0,
        }
    }

    #[test]
    fn the_sigmoid_matches_nab() {
        assert!((scaled_sigmoid(-1.0) - 0.986_614_298_151_430_3).abs() < 1e-15);
        assert!((scaled_sigmoid(-0.5) - 0.848_283_639_957_512_9).abs() < 1e-15);
        assert_eq!(scaled_sigmoid(0.0), 0.0);
        assert_eq!(scaled_sigmoid(3.0), -1.0);
    }

    #[test]
    fn windows_keep_their_earliest_detection_and_misses_cost_fn() {
        // 1000 rows: probation 150. Window 300..=399 (width 100), window 600..=699.
        let windows = [(300, 399), (600, 699)];
        let profile = standard();
        let first_row = score_file(1000, &windows, |r| r == 300 || r == 350, &profile);
        assert!((first_row.raw - (1.0 - 1.0)).abs() < 1e-12, "{first_row:?}");
        assert_eq!(first_row.detected_windows, 1);
        // The last row of a window: position −1/100.
        let last = score_file(1000, &windows, |r| r == 399, &profile);
        let expected = scaled_sigmoid(-0.01) / scaled_sigmoid(-1.0) - 1.0;
        assert!((last.raw - expected).abs() < 1e-12);
        let none = score_file(1000, &windows, |_| false, &profile);
        assert_eq!(none.raw, -2.0);
    }

    #[test]
    fn false_positives_are_discounted_after_a_window_and_ignored_in_probation() {
        let windows = [(300, 399)];
        let profile = standard();
        // Before any window: the full fp weight; inside probation: nothing.
        let before = score_file(1000, &windows, |r| r == 200 || r == 100, &profile);
        assert!((before.raw - (-0.11 - 1.0)).abs() < 1e-12);
        assert_eq!(before.false_positives, 1);
        // Just after the window: position 1/99.
        let after = score_file(1000, &windows, |r| r == 400, &profile);
        let expected = scaled_sigmoid(1.0 / 99.0) * 0.11 - 1.0;
        assert!((after.raw - expected).abs() < 1e-12);
        // Far after: −fp.
        let far = score_file(1000, &windows, |r| r == 999, &profile);
        assert!((far.raw - (-0.11 - 1.0)).abs() < 1e-12);
    }

    #[test]
    fn a_window_inside_probation_is_not_scored() {
        let profile = standard();
        let score = score_file(1000, &[(10, 20)], |_| false, &profile);
        assert_eq!((score.raw, score.windows), (0.0, 0));
    }
}

/// NAB's `random` baseline: `random.uniform(0, 1)` per row from CPython's Mersenne Twister
/// seeded with 42 at the start of every file (`RandomDetector.initialize`). Its rows at or
/// above `threshold` are its detections.
pub fn random_detections(rows: usize, threshold: f64) -> Vec<usize> {
    let mut twister = MersenneTwister::seeded(42);
    (0..rows)
        .filter(|_| twister.random() >= threshold)
        .collect()
}

/// MT19937 as CPython seeds it from an integer (`init_by_array` of its 32-bit words) and
/// draws `random.random()` (53 bits from two outputs).
struct MersenneTwister {
    state: [u32; 624],
    index: usize,
}

impl MersenneTwister {
    fn seeded(seed: u32) -> MersenneTwister {
        let mut state = [0u32; 624];
        state[0] = 19_650_218;
        for i in 1..624 {
            state[i] = 1_812_433_253u32
                .wrapping_mul(state[i - 1] ^ (state[i - 1] >> 30))
                .wrapping_add(i as u32);
        }
        let key = [seed];
        let (mut i, mut j) = (1usize, 0usize);
        for _ in 0..624.max(key.len()) {
            state[i] = (state[i] ^ (state[i - 1] ^ (state[i - 1] >> 30)).wrapping_mul(1_664_525))
                .wrapping_add(key[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= 624 {
                state[0] = state[623];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..623 {
            state[i] = (state[i]
                ^ (state[i - 1] ^ (state[i - 1] >> 30)).wrapping_mul(1_566_083_941))
            .wrapping_sub(i as u32);
            i += 1;
            if i >= 624 {
                state[0] = state[623];
                i = 1;
            }
        }
        state[0] = 0x8000_0000;
        MersenneTwister { state, index: 624 }
    }

    fn next_u32(&mut self) -> u32 {
        if self.index >= 624 {
            for k in 0..624 {
                let y = (self.state[k] & 0x8000_0000) | (self.state[(k + 1) % 624] & 0x7FFF_FFFF);
                let mut next = self.state[(k + 397) % 624] ^ (y >> 1);
                if y & 1 != 0 {
                    next ^= 0x9908_B0DF;
                }
                self.state[k] = next;
            }
            self.index = 0;
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9D2C_5680;
        y ^= (y << 15) & 0xEFC6_0000;
        y ^ (y >> 18)
    }

    fn random(&mut self) -> f64 {
        let a = f64::from(self.next_u32() >> 5);
        let b = f64::from(self.next_u32() >> 6);
        (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
    }
}

#[cfg(test)]
mod twister_tests {
    #[test]
    fn matches_cpython_random_seed_42() {
        // python3 -c "import random; random.seed(42); print([random.random() for _ in range(3)])"
        let mut twister = super::MersenneTwister::seeded(42);
        let expected = [
            0.639_426_798_457_883_7,
            0.025_010_755_222_666_936,
            0.275_029_318_369_119_26,
        ];
        for value in expected {
            assert_eq!(twister.random(), value);
        }
    }
}
