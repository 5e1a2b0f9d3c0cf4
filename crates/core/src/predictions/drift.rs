//! Drift while the labels are late: how far a window's scores have moved from a reference
//! window's, as population stability index, Kolmogorov–Smirnov statistic and
//! Jensen–Shannon distance, computed from a [`Sketch`] of each window.
//!
//! **The sketch** is a histogram with fixed, logarithmic bucket boundaries (DDSketch's
//! mapping): a value `v` falls in bucket `±(⌊ln(|v| / 10⁻⁹) / ln γ⌋ + 1)`, `γ = 1.01 / 0.99`
//! (every bucket spans 2 % of its values: 1 % relative accuracy), `|v| < 10⁻⁹` in bucket
//! 0. Boundaries depend on nothing but the value, so two sketches merge by adding counts
//! and any two windows compare bucket by bucket; a window of millions of scores in
//! `[0, 1]` holds a few hundred buckets at most. (Quantile sketch crates such as
//! `sketches-ddsketch` do not expose their buckets, which PSI and JS need; the mapping
//! is twenty lines, so it lives here, pure.)
//!
//! **The statistics**, reference `r` against current `c`:
//! - *KS*: the largest difference of the two cumulative distributions over the buckets,
//!   in `[0, 1]`. Values in distinct buckets keep their order, so on such data it equals
//!   SciPy's `ks_2samp` statistic exactly; otherwise it is that of the data rounded to
//!   its bucket.
//! - *PSI* and *JS* compare the two over [`BINS`] bins cut at the reference's deciles
//!   (each bin a run of whole buckets, closed once the reference's cumulative count
//!   reaches k/10 of it), plus a bin below and one above the reference's range, so a
//!   shift out of it is seen. PSI is `Σ (cᵢ − rᵢ) ln(cᵢ / rᵢ)` with each share floored at
//!   [`PSI_FLOOR`] (the usual reading: < 0.1 stable, 0.1–0.25 moving, > 0.25 shifted).
//!   JS is SciPy's `jensenshannon(r, c, base=2)` on the same bins: the square root of
//!   the Jensen–Shannon divergence in bits, in `[0, 1]`.
//!
//! All three are 0 for identical distributions and grow with the shift, so rules treat
//! them as *lower is better*.
//!
//! **Features** drift the same way, each against its own sketch in the reference window
//! ([`feature_drift`]), written as `drift_psi_feature_<name>`, `drift_ks_feature_<name>`
//! and `drift_js_feature_<name>` ([`feature_metric`]): the `_feature_` infix keeps them
//! apart from the score's `drift_*_score` whatever the feature is called.

use std::collections::BTreeMap;

use crate::ValidationError;

use super::features::{FeatureName, FeatureSketches};
use super::Output;

/// The metrics a window's drift is written as, in the computed dataset.
pub const PSI_METRIC: &str = "drift_psi_score";
pub const KS_METRIC: &str = "drift_ks_score";
pub const JS_METRIC: &str = "drift_js_score";

/// What a feature's drift metrics are named after, with the feature's name appended.
pub const FEATURE_METRIC_PREFIXES: [&str; 3] = [
    "drift_psi_feature_",
    "drift_ks_feature_",
    "drift_js_feature_",
];

/// The longest of [`FEATURE_METRIC_PREFIXES`]: what a feature name leaves of a metric name.
pub const FEATURE_METRIC_PREFIX_LEN: usize = 18;

/// The metric a feature's drift statistic is written as: `prefix` (one of
/// [`FEATURE_METRIC_PREFIXES`]) followed by the feature's name, e.g. `drift_psi_feature_age`.
pub fn feature_metric(prefix: &str, feature: &FeatureName) -> String {
    format!("{prefix}{feature}")
}

/// Bins of the reference's range that PSI and JS compare over (its deciles).
pub const BINS: u64 = 10;

/// The smallest share a PSI bin counts with, so an empty bin gives a large but finite
/// term instead of an infinite one.
pub const PSI_FLOOR: f64 = 1e-4;

/// The fewest predictions a window needs to be a series' reference.
pub const MIN_REFERENCE_PREDICTIONS: u64 = 100;

/// Values closer to zero than this share bucket 0.
const MIN_MAGNITUDE: f64 = 1e-9;

/// Each bucket's upper bound over its lower: `(1 + α) / (1 − α)`, α = 1 %.
const GAMMA: f64 = 1.01 / 0.99;

/// The value of a prediction a window's sketch counts: a classification's score (its
/// class as 0 or 1 when it has no score), a regression's value.
pub fn score_of(output: &Output) -> f64 {
    match *output {
        Output::Classification {
            score: Some(score), ..
        } => score,
        Output::Classification { class, .. } => f64::from(u8::from(class == Some(true))),
        Output::Regression { value } => value,
    }
}

/// A mergeable histogram of a window's scores (see the module doc).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sketch {
    buckets: BTreeMap<i32, u64>,
    count: u64,
}

impl Sketch {
    pub const FIELD: &'static str = "sketch";

    pub fn new() -> Self {
        Sketch::default()
    }

    /// Counts `value` (a non-finite one is ignored: outputs are validated finite).
    pub fn add(&mut self, value: f64) {
        if let Some(bucket) = bucket_of(value) {
            *self.buckets.entry(bucket).or_insert(0) += 1;
            self.count += 1;
        }
    }

    /// Adds every count of `other`: the sketch of both windows' values.
    pub fn merge(&mut self, other: &Sketch) {
        for (&bucket, &count) in &other.buckets {
            *self.buckets.entry(bucket).or_insert(0) += count;
        }
        self.count += other.count;
    }

    /// Values counted.
    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Buckets holding a value.
    pub fn buckets(&self) -> usize {
        self.buckets.len()
    }

    /// The sketch as text: `bucket:count` pairs by bucket, joined by `,`.
    pub fn encode(&self) -> String {
        self.buckets
            .iter()
            .map(|(bucket, count)| format!("{bucket}:{count}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Reads [`Self::encode`]'s text back; refused (field `sketch`) unless every pair is
    /// a bucket and a positive count, each bucket once.
    pub fn decode(text: &str) -> Result<Self, ValidationError> {
        let mut sketch = Sketch::new();
        for pair in text.split(',').filter(|pair| !pair.is_empty()) {
            let bad = || ValidationError::new(Self::FIELD, format!("{pair:?} is not bucket:count"));
            let (bucket, count) = pair.split_once(':').ok_or_else(bad)?;
            let bucket: i32 = bucket.parse().map_err(|_| bad())?;
            let count: u64 = count.parse().map_err(|_| bad())?;
            if count == 0 || sketch.buckets.insert(bucket, count).is_some() {
                return Err(bad());
            }
            sketch.count = sketch.count.checked_add(count).ok_or_else(bad)?;
        }
        Ok(sketch)
    }
}

impl FromIterator<f64> for Sketch {
    fn from_iter<I: IntoIterator<Item = f64>>(values: I) -> Self {
        let mut sketch = Sketch::new();
        for value in values {
            sketch.add(value);
        }
        sketch
    }
}

/// The bucket of `value`; `None` when it is not finite.
fn bucket_of(value: f64) -> Option<i32> {
    if !value.is_finite() {
        return None;
    }
    let magnitude = value.abs();
    if magnitude < MIN_MAGNITUDE {
        return Some(0);
    }
    // At most ln(1.8e308 / 1e-9) / ln(γ) ≈ 36,000: far inside i32.
    let index = ((magnitude.ln() - MIN_MAGNITUDE.ln()) / GAMMA.ln()).floor() as i32;
    let index = index.saturating_add(1);
    Some(if value < 0.0 { -index } else { index })
}

/// A window's drift from the reference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Drift {
    pub psi: f64,
    pub ks: f64,
    pub js: f64,
}

impl Drift {
    /// The metrics' names, each with what it measures.
    pub const NAMES: [(&'static str, &'static str); 3] = [
        (PSI_METRIC, "population stability index"),
        (KS_METRIC, "Kolmogorov-Smirnov statistic"),
        (JS_METRIC, "Jensen-Shannon distance"),
    ];

    /// The three as (metric name, value), in the order written.
    pub fn values(&self) -> [(&'static str, f64); 3] {
        [
            (PSI_METRIC, self.psi),
            (KS_METRIC, self.ks),
            (JS_METRIC, self.js),
        ]
    }

    /// The three as a feature's (metric name, value), in the order written.
    pub fn feature_values(&self, feature: &FeatureName) -> [(String, f64); 3] {
        let [psi, ks, js] = FEATURE_METRIC_PREFIXES;
        [
            (feature_metric(psi, feature), self.psi),
            (feature_metric(ks, feature), self.ks),
            (feature_metric(js, feature), self.js),
        ]
    }
}

/// Each feature's drift from its sketch in the reference window, by name: the features
/// both windows sketched whose reference holds at least [`MIN_REFERENCE_PREDICTIONS`]
/// values (a feature rarely sent in the reference has none).
pub fn feature_drift(
    reference: &FeatureSketches,
    current: &FeatureSketches,
) -> Vec<(FeatureName, Drift)> {
    current
        .iter()
        .filter_map(|(name, sketch)| {
            let reference = reference
                .get(name)
                .filter(|r| r.count() >= MIN_REFERENCE_PREDICTIONS)?;
            drift(reference, sketch).map(|drift| (name.clone(), drift))
        })
        .collect()
}

/// How far `current` is from `reference`; `None` when either is empty.
pub fn drift(reference: &Sketch, current: &Sketch) -> Option<Drift> {
    if reference.is_empty() || current.is_empty() {
        return None;
    }
    let lowest = reference.buckets.keys().next().copied()?;
    let edges = decile_edges(reference);
    let r = shares(&binned(reference, lowest, &edges), reference.count);
    let c = shares(&binned(current, lowest, &edges), current.count);
    Some(Drift {
        psi: psi(&r, &c),
        ks: ks(reference, current),
        js: js(&r, &c),
    })
}

/// The upper (inclusive) bucket of each decile bin of the reference, the last being its
/// highest bucket.
fn decile_edges(reference: &Sketch) -> Vec<i32> {
    let total = u128::from(reference.count);
    let mut edges = Vec::new();
    let mut cumulative: u128 = 0;
    let mut next: u128 = 1;
    for (&bucket, &count) in &reference.buckets {
        cumulative += u128::from(count);
        let mut reached = false;
        while next <= u128::from(BINS) && cumulative * u128::from(BINS) >= total * next {
            reached = true;
            next += 1;
        }
        if reached {
            edges.push(bucket);
        }
    }
    edges
}

/// Counts per bin: below the reference's lowest bucket (`lowest`), each decile bin of
/// `edges`, above its highest bucket.
fn binned(sketch: &Sketch, lowest: i32, edges: &[i32]) -> Vec<u64> {
    let mut bins = vec![0; edges.len() + 2];
    for (&bucket, &count) in &sketch.buckets {
        let bin = if bucket < lowest {
            0
        } else {
            edges.partition_point(|&edge| edge < bucket) + 1
        };
        bins[bin] += count;
    }
    bins
}

fn shares(counts: &[u64], total: u64) -> Vec<f64> {
    counts
        .iter()
        .map(|&count| count as f64 / total as f64)
        .collect()
}

fn psi(reference: &[f64], current: &[f64]) -> f64 {
    reference
        .iter()
        .zip(current)
        .map(|(&r, &c)| {
            let (r, c) = (r.max(PSI_FLOOR), c.max(PSI_FLOOR));
            (c - r) * (c / r).ln()
        })
        .sum()
}

/// SciPy's `jensenshannon(p, q, base=2)`.
fn js(p: &[f64], q: &[f64]) -> f64 {
    let relative_entropy = |x: f64, m: f64| if x > 0.0 { x * (x / m).ln() } else { 0.0 };
    let divergence: f64 = p
        .iter()
        .zip(q)
        .map(|(&p, &q)| {
            let m = (p + q) / 2.0;
            relative_entropy(p, m) + relative_entropy(q, m)
        })
        .sum();
    (divergence / std::f64::consts::LN_2 / 2.0).max(0.0).sqrt()
}

/// The largest difference of the cumulative distributions, bucket by bucket.
fn ks(reference: &Sketch, current: &Sketch) -> f64 {
    let mut buckets: Vec<i32> = reference
        .buckets
        .keys()
        .chain(current.buckets.keys())
        .copied()
        .collect();
    buckets.sort_unstable();
    buckets.dedup();
    let (mut r, mut c, mut largest) = (0u64, 0u64, 0.0f64);
    for bucket in buckets {
        r += reference.buckets.get(&bucket).copied().unwrap_or(0);
        c += current.buckets.get(&bucket).copied().unwrap_or(0);
        let difference =
            (r as f64 / reference.count as f64 - c as f64 / current.count as f64).abs();
        largest = largest.max(difference);
    }
    largest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sketch(values: &[(f64, usize)]) -> Sketch {
        values
            .iter()
            .flat_map(|&(value, times)| std::iter::repeat_n(value, times))
            .collect()
    }

    fn close(ours: f64, expected: f64) {
        assert!((ours - expected).abs() < 1e-12, "{ours} != {expected}");
    }

    #[test]
    fn buckets_keep_the_order_of_values_and_span_two_percent() {
        let values = [
            -5.0, -0.3, -1e-12, 0.0, 1e-12, 0.1, 0.2, 0.5, 0.51, 1.0, 1e300,
        ];
        let buckets: Vec<i32> = values.iter().filter_map(|&v| bucket_of(v)).collect();
        assert!(
            buckets.windows(2).all(|pair| pair[0] <= pair[1]),
            "{buckets:?}"
        );
        assert_eq!(bucket_of(0.0), Some(0));
        assert_eq!(bucket_of(-1e-12), Some(0));
        assert_eq!(bucket_of(f64::NAN), None);
        assert_ne!(bucket_of(0.5), bucket_of(0.52));
        assert_eq!(bucket_of(0.5), bucket_of(0.501));
        assert_eq!(bucket_of(-0.5), bucket_of(0.5).map(|b| -b));
    }

    #[test]
    fn sketches_merge_by_adding_counts_and_read_back_from_their_text() {
        let mut a = sketch(&[(0.1, 3), (0.5, 2)]);
        let b = sketch(&[(0.5, 1), (-2.0, 4)]);
        a.merge(&b);
        assert_eq!(a, sketch(&[(0.1, 3), (0.5, 3), (-2.0, 4)]));
        assert_eq!(a.count(), 10);
        assert_eq!(a.buckets(), 3);
        assert_eq!(Sketch::decode(&a.encode()).expect("decodes"), a);
        assert_eq!(Sketch::decode("").expect("empty"), Sketch::new());
        for bad in [
            "1",
            "1:0",
            "x:1",
            "1:1,1:2",
            "1:-1",
            "1:18446744073709551615,2:1",
        ] {
            assert_eq!(Sketch::decode(bad).unwrap_err().field, "sketch", "{bad}");
        }
    }

    #[test]
    fn a_window_like_its_reference_has_no_drift() {
        let reference = sketch(&[(0.1, 30), (0.4, 50), (0.9, 20)]);
        let same_shape = sketch(&[(0.1, 3), (0.4, 5), (0.9, 2)]);
        let drift = drift(&reference, &same_shape).expect("drift");
        assert_eq!((drift.psi, drift.ks, drift.js), (0.0, 0.0, 0.0));
        assert_eq!(super::drift(&reference, &Sketch::new()), None);
        assert_eq!(super::drift(&Sketch::new(), &reference), None);
    }

    #[test]
    fn a_moved_share_gives_the_exact_statistics() {
        // Two deciles' worth of buckets: bins [.., 1], (1, 2], plus the empty outer bins.
        let reference = sketch(&[(1.0, 50), (2.0, 50)]);
        let current = sketch(&[(1.0, 25), (2.0, 75)]);
        let drift = drift(&reference, &current).expect("drift");
        // (0.25 − 0.5) ln(0.25/0.5) + (0.75 − 0.5) ln(0.75/0.5) = 0.25 ln 3
        close(drift.psi, 0.25 * 3f64.ln());
        close(drift.ks, 0.25);
        let kl = |p: [f64; 2], m: [f64; 2]| -> f64 {
            p.iter().zip(m).map(|(p, m)| p * (p / m).log2()).sum()
        };
        let m = [0.375, 0.625];
        close(
            drift.js,
            ((kl([0.5, 0.5], m) + kl([0.25, 0.75], m)) / 2.0).sqrt(),
        );
    }

    #[test]
    fn a_shift_out_of_the_reference_range_is_the_largest_drift() {
        let reference = sketch(&[(1.0, 100)]);
        let current = sketch(&[(5.0, 100)]);
        let drift = drift(&reference, &current).expect("drift");
        close(drift.ks, 1.0);
        close(drift.js, 1.0);
        // (ε − 1) ln ε + (1 − ε) ln(1 / ε)
        close(drift.psi, 2.0 * (1.0 - PSI_FLOOR) * (1.0 / PSI_FLOOR).ln());
        let below = sketch(&[(0.2, 100)]);
        close(super::drift(&reference, &below).expect("drift").js, 1.0);
    }

    #[test]
    fn deciles_cut_the_reference_into_ten_equal_bins() {
        // Five per cent apart: a bucket each.
        let reference: Sketch = (1..=100).map(|n| 1.05f64.powi(n)).collect();
        let edges = decile_edges(&reference);
        assert_eq!(edges.len(), 10);
        assert_eq!(edges.last().copied(), bucket_of(1.05f64.powi(100)));
        let lowest = bucket_of(1.05).expect("bucket");
        let counts = binned(&reference, lowest, &edges);
        assert_eq!(counts, [0, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 0]);
        let heavy = sketch(&[(1.0, 95), (2.0, 5)]);
        assert_eq!(
            decile_edges(&heavy),
            [bucket_of(1.0).expect("b"), bucket_of(2.0).expect("b")]
        );
    }

    #[test]
    fn each_feature_drifts_against_its_own_reference_under_a_name_of_its_own() {
        let name = |n: &str| FeatureName::parse(n).expect("name");
        let features = |pairs: &[(&str, Sketch)]| -> FeatureSketches {
            pairs.iter().map(|(n, s)| (name(n), s.clone())).collect()
        };
        let reference = features(&[
            ("age", sketch(&[(30.0, 50), (40.0, 50)])),
            ("amount", sketch(&[(10.0, 100)])),
            ("rare", sketch(&[(1.0, 5)])),
        ]);
        let current = features(&[
            ("age", sketch(&[(30.0, 5), (40.0, 5)])),
            ("amount", sketch(&[(50.0, 10)])),
            ("rare", sketch(&[(9.0, 10)])),
            ("new", sketch(&[(1.0, 10)])),
        ]);
        let drifts = feature_drift(&reference, &current);
        let names: Vec<&str> = drifts.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["age", "amount"]);
        assert_eq!(drifts[0].1.psi, 0.0);
        close(drifts[1].1.ks, 1.0);
        let metrics: Vec<String> = drifts[1]
            .1
            .feature_values(&name("amount"))
            .into_iter()
            .map(|(metric, _)| metric)
            .collect();
        assert_eq!(
            metrics,
            [
                "drift_psi_feature_amount",
                "drift_ks_feature_amount",
                "drift_js_feature_amount"
            ]
        );
        // A feature called `score` does not take the score's series.
        let score = drift(&sketch(&[(1.0, 1)]), &sketch(&[(1.0, 1)])).expect("drift");
        for (metric, _) in score.feature_values(&name("score")) {
            assert!(!Drift::NAMES.iter().any(|(n, _)| *n == metric), "{metric}");
        }
        assert_eq!(
            FEATURE_METRIC_PREFIX_LEN,
            FEATURE_METRIC_PREFIXES
                .map(str::len)
                .into_iter()
                .max()
                .unwrap_or(0)
        );
    }

    #[test]
    fn scores_are_the_score_else_the_class_else_the_value() {
        let scored = Output::classification(Some(false), Some(0.7)).expect("output");
        assert_eq!(score_of(&scored), 0.7);
        let classed = Output::classification(Some(true), None).expect("output");
        assert_eq!(score_of(&classed), 1.0);
        assert_eq!(score_of(&Output::regression(-3.5).expect("output")), -3.5);
    }
}
