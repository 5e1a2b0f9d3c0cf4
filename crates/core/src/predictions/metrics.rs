//! A window's metrics from its joined (prediction, label) pairs, computed as
//! scikit-learn computes them, so a team's offline numbers and modelwatch's agree:
//!
//! - classification (binary; the positive class is `1`): accuracy, precision, recall and
//!   F1 from the confusion counts, the predicted class being the given class or else
//!   `score >= threshold`; AUC-ROC (`roc_auc_score`: the trapezoid under the ROC curve
//!   through every distinct score, tied scores forming one step) and AUC-PR
//!   (`average_precision_score`: `Σ (Rₙ − Rₙ₋₁) Pₙ` over distinct scores, descending),
//!   both over the pairs that have a score, in `O(n log n)` (a sort per class);
//! - regression: MAE, MSE, RMSE, R² (`r2_score`, constant truth giving 1 when predicted
//!   exactly and 0 otherwise) and MAPE (`mean_absolute_percentage_error`: a fraction,
//!   `|y − ŷ| / max(|y|, ε)`).
//!
//! Where scikit-learn would divide by zero (precision without a predicted positive, AUC
//! with one class only, R² of one pair) the metric is left out rather than given a
//! conventional 0: a series gets no point instead of a made-up one. Coverage (labelled /
//! predicted) is computed for every window with a prediction.

use crate::metric::Metric;

use super::{class_of, Labelled, Output, PredictionConfig, Task};

/// The name of the coverage series: labelled / predicted in the window.
pub const COVERAGE_METRIC: &str = "label_coverage";

/// The coverage series' metric.
pub fn coverage_metric() -> Metric {
    Metric::Custom(COVERAGE_METRIC.into())
}

/// What a window's pairs gave.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowMetrics {
    /// Predictions in the window.
    pub predicted: u64,
    /// Of them, those with a label.
    pub labelled: u64,
    /// Labelled pairs the task cannot use (a regression output in a classification
    /// model, a classification truth other than 0 or 1); they count as labelled.
    pub unusable: u64,
    /// The metrics that are defined for the window, in [`Metric::BUILT_IN`] order.
    pub values: Vec<(Metric, f64)>,
}

impl WindowMetrics {
    /// Labelled / predicted; `None` for a window without predictions.
    pub fn coverage(&self) -> Option<f64> {
        (self.predicted > 0).then(|| self.labelled as f64 / self.predicted as f64)
    }

    pub fn value(&self, metric: &Metric) -> Option<f64> {
        self.values
            .iter()
            .find(|(m, _)| m == metric)
            .map(|(_, value)| *value)
    }
}

/// The metrics of a window with `predicted` predictions, `labelled` of which have a label.
pub fn compute(config: &PredictionConfig, predicted: u64, labelled: &[Labelled]) -> WindowMetrics {
    let (values, unusable) = match config.task {
        Task::Classification => classification(config.threshold, labelled),
        Task::Regression => regression(labelled),
    };
    WindowMetrics {
        predicted,
        labelled: labelled.len() as u64,
        unusable,
        values: values.into_iter().filter(|(_, v)| v.is_finite()).collect(),
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Confusion {
    tp: u64,
    fp: u64,
    tn: u64,
    fn_: u64,
}

fn ratio(numerator: u64, denominator: u64) -> Option<f64> {
    (denominator > 0).then(|| numerator as f64 / denominator as f64)
}

fn classification(threshold: f64, pairs: &[Labelled]) -> (Vec<(Metric, f64)>, u64) {
    let mut confusion = Confusion::default();
    let mut unusable = 0;
    // Scores by class, as order keys.
    let (mut positives, mut negatives) = (Vec::new(), Vec::with_capacity(pairs.len()));
    for pair in pairs {
        let (Output::Classification { class, score }, Some(truth)) =
            (pair.output, class_of(pair.truth))
        else {
            unusable += 1;
            continue;
        };
        let Some(predicted) = class.or(score.map(|s| s >= threshold)) else {
            unusable += 1;
            continue;
        };
        match (predicted, truth) {
            (true, true) => confusion.tp += 1,
            (true, false) => confusion.fp += 1,
            (false, false) => confusion.tn += 1,
            (false, true) => confusion.fn_ += 1,
        }
        if let Some(score) = score {
            if truth {
                positives.push(order_key(score));
            } else {
                negatives.push(order_key(score));
            }
        }
    }
    let Confusion { tp, fp, tn, fn_ } = confusion;
    let mut values = Vec::new();
    let mut push = |metric, value: Option<f64>| {
        if let Some(value) = value {
            values.push((metric, value));
        }
    };
    push(Metric::Accuracy, ratio(tp + tn, tp + fp + tn + fn_));
    push(Metric::Precision, ratio(tp, tp + fp));
    push(Metric::Recall, ratio(tp, tp + fn_));
    push(Metric::F1Score, ratio(2 * tp, 2 * tp + fp + fn_));
    let (roc, pr) = ranking(positives, negatives);
    push(Metric::AucRoc, roc);
    push(Metric::AucPr, pr);
    (values, unusable)
}

/// A score as an integer of the same order (finite scores; -0.0 and 0.0 are one key):
/// integers sort several times faster than floats through a comparison closure.
fn order_key(score: f64) -> u64 {
    let bits = (score + 0.0).to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | 1 << 63
    }
}

/// AUC-ROC and average precision from the scores (as [`order_key`]s) of the positive
/// and the negative pairs; `None` without both classes (ROC) or without a positive (PR).
/// Each class is sorted apart and the two are walked together from the highest score,
/// one step per distinct score.
fn ranking(mut positives: Vec<u64>, mut negatives: Vec<u64>) -> (Option<f64>, Option<f64>) {
    if positives.is_empty() {
        return (None, None);
    }
    positives.sort_unstable();
    negatives.sort_unstable();
    let (p, n) = (positives.len(), negatives.len());
    // Twice the area under the ROC curve in counts (fp × tp units): exact in integers.
    let mut area2: u128 = 0;
    let mut precision_sum = 0.0;
    let (mut tp, mut fp) = (0usize, 0usize);
    while tp < p || fp < n {
        let next_p = (tp < p).then(|| positives[p - 1 - tp]);
        let next_n = (fp < n).then(|| negatives[n - 1 - fp]);
        let threshold = next_p.max(next_n).unwrap_or(0);
        let (last_tp, last_fp) = (tp, fp);
        while tp < p && positives[p - 1 - tp] == threshold {
            tp += 1;
        }
        while fp < n && negatives[n - 1 - fp] == threshold {
            fp += 1;
        }
        area2 += (fp - last_fp) as u128 * (tp + last_tp) as u128;
        precision_sum += (tp - last_tp) as f64 * (tp as f64 / (tp + fp) as f64);
    }
    let roc = (n > 0).then(|| area2 as f64 / (2.0 * p as f64 * n as f64));
    (roc, Some(precision_sum / p as f64))
}

fn regression(pairs: &[Labelled]) -> (Vec<(Metric, f64)>, u64) {
    let mut unusable = 0;
    let mut truths = Vec::with_capacity(pairs.len());
    let (mut absolute, mut squared, mut percentage) = (0.0, 0.0, 0.0);
    for pair in pairs {
        let Output::Regression { value } = pair.output else {
            unusable += 1;
            continue;
        };
        let error = pair.truth - value;
        absolute += error.abs();
        squared += error * error;
        percentage += error.abs() / pair.truth.abs().max(f64::EPSILON);
        truths.push(pair.truth);
    }
    if truths.is_empty() {
        return (Vec::new(), unusable);
    }
    let n = truths.len() as f64;
    let mse = squared / n;
    let mut values = vec![
        (Metric::Mae, absolute / n),
        (Metric::Mse, mse),
        (Metric::Rmse, mse.sqrt()),
    ];
    if truths.len() >= 2 {
        let mean = truths.iter().sum::<f64>() / n;
        let total: f64 = truths.iter().map(|y| (y - mean) * (y - mean)).sum();
        let r2 = match (total == 0.0, squared == 0.0) {
            (false, _) => 1.0 - squared / total,
            (true, true) => 1.0,
            (true, false) => 0.0,
        };
        values.push((Metric::R2Score, r2));
    }
    values.push((Metric::Mape, percentage / n));
    (values, unusable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::predictions::WindowLength;

    fn config(task: Task) -> PredictionConfig {
        let window = WindowLength::parse("1h").expect("1h");
        PredictionConfig::new(window, task, 0.5, 0.0).expect("config")
    }

    fn scored(score: f64, truth: f64) -> Labelled {
        Labelled {
            output: Output::Classification {
                class: None,
                score: Some(score),
            },
            truth,
        }
    }

    fn regressed(value: f64, truth: f64) -> Labelled {
        Labelled {
            output: Output::Regression { value },
            truth,
        }
    }

    fn close(a: Option<f64>, b: f64) {
        let a = a.expect("defined");
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    #[test]
    fn classification_metrics_match_hand_computed_values() {
        // y = [0, 0, 1, 1], scores = [0.1, 0.4, 0.35, 0.8] (scikit-learn's roc_auc_score
        // example): AUC 0.75; AP = 0.5·1 + 0.5·(2/3) = 0.8333…
        // At 0.5 only 0.8 is positive: tp 1, fp 0, tn 2, fn 1.
        let pairs = [
            scored(0.1, 0.0),
            scored(0.4, 0.0),
            scored(0.35, 1.0),
            scored(0.8, 1.0),
        ];
        let window = compute(&config(Task::Classification), 5, &pairs);
        close(window.value(&Metric::AucRoc), 0.75);
        close(window.value(&Metric::AucPr), 0.5 + 0.5 * 2.0 / 3.0);
        close(window.value(&Metric::Accuracy), 0.75);
        close(window.value(&Metric::Precision), 1.0);
        close(window.value(&Metric::Recall), 0.5);
        close(window.value(&Metric::F1Score), 2.0 / 3.0);
        close(window.coverage(), 0.8);
        assert_eq!(window.unusable, 0);
    }

    #[test]
    fn tied_scores_are_one_threshold() {
        // Scores [0.5, 0.5, 0.5, 0.2], truths [1, 0, 1, 0]. Thresholds 0.5 then 0.2:
        // ROC points (0,0) → (0.5, 1) → (1, 1): area 0.5·1/2 + 0.5·1 = 0.75.
        // PR: at 0.5 recall 1, precision 2/3: AP = 2/3.
        let pairs = [
            scored(0.5, 1.0),
            scored(0.5, 0.0),
            scored(0.5, 1.0),
            scored(0.2, 0.0),
        ];
        let window = compute(&config(Task::Classification), 4, &pairs);
        close(window.value(&Metric::AucRoc), 0.75);
        close(window.value(&Metric::AucPr), 2.0 / 3.0);
        // All scores tied: the diagonal.
        let flat = [scored(0.3, 1.0), scored(0.3, 0.0)];
        close(
            compute(&config(Task::Classification), 2, &flat).value(&Metric::AucRoc),
            0.5,
        );
        // -0.0 and 0.0 tie.
        let zeros = [scored(-0.0, 1.0), scored(0.0, 0.0)];
        close(
            compute(&config(Task::Classification), 2, &zeros).value(&Metric::AucRoc),
            0.5,
        );
    }

    #[test]
    fn undefined_metrics_are_left_out() {
        // One class only: no AUC; no predicted positive: no precision.
        let pairs = [scored(0.1, 0.0), scored(0.2, 0.0)];
        let window = compute(&config(Task::Classification), 2, &pairs);
        assert_eq!(window.value(&Metric::AucRoc), None);
        assert_eq!(window.value(&Metric::AucPr), None);
        assert_eq!(window.value(&Metric::Precision), None);
        assert_eq!(window.value(&Metric::Recall), None);
        assert_eq!(window.value(&Metric::F1Score), None);
        close(window.value(&Metric::Accuracy), 1.0);
        let empty = compute(&config(Task::Classification), 0, &[]);
        assert_eq!(empty.coverage(), None);
        assert!(empty.values.is_empty());
    }

    #[test]
    fn a_given_class_wins_over_the_threshold_and_bad_pairs_are_counted() {
        let pairs = [
            Labelled {
                output: Output::Classification {
                    class: Some(false),
                    score: Some(0.9),
                },
                truth: 1.0,
            },
            Labelled {
                output: Output::Classification {
                    class: Some(true),
                    score: None,
                },
                truth: 1.0,
            },
            scored(0.9, 2.0),
            regressed(1.0, 1.0),
        ];
        let window = compute(&config(Task::Classification), 4, &pairs);
        assert_eq!(window.unusable, 2);
        assert_eq!(window.labelled, 4);
        close(window.value(&Metric::Accuracy), 0.5);
        close(window.value(&Metric::Recall), 0.5);
        // One scored pair, a positive: AP 1, no ROC.
        close(window.value(&Metric::AucPr), 1.0);
        assert_eq!(window.value(&Metric::AucRoc), None);
    }

    #[test]
    fn regression_metrics_match_hand_computed_values() {
        // scikit-learn's examples: y = [3, -0.5, 2, 7], ŷ = [2.5, 0.0, 2, 8]:
        // MAE 0.5, MSE 0.375, R² 0.9486081370449679, MAPE 0.3273809523809524.
        let pairs = [
            regressed(2.5, 3.0),
            regressed(0.0, -0.5),
            regressed(2.0, 2.0),
            regressed(8.0, 7.0),
        ];
        let window = compute(&config(Task::Regression), 4, &pairs);
        close(window.value(&Metric::Mae), 0.5);
        close(window.value(&Metric::Mse), 0.375);
        close(window.value(&Metric::Rmse), 0.375_f64.sqrt());
        close(window.value(&Metric::R2Score), 0.948_608_137_044_967_9);
        close(window.value(&Metric::Mape), 0.327_380_952_380_952_4);
        // Constant truth: 1 when exact, 0 otherwise; one pair: no R².
        let exact = [regressed(1.0, 1.0), regressed(1.0, 1.0)];
        close(
            compute(&config(Task::Regression), 2, &exact).value(&Metric::R2Score),
            1.0,
        );
        let off = [regressed(1.0, 2.0), regressed(3.0, 2.0)];
        close(
            compute(&config(Task::Regression), 2, &off).value(&Metric::R2Score),
            0.0,
        );
        let one = [regressed(1.0, 2.0)];
        assert_eq!(
            compute(&config(Task::Regression), 1, &one).value(&Metric::R2Score),
            None
        );
    }

    #[test]
    fn auc_equals_the_rank_sum_form_with_ties() {
        // Deterministic pseudo-random scores; checks the walk against the rank-sum
        // (Mann–Whitney) form of AUC, which counts ties as half.
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let pairs: Vec<Labelled> = (0..20_000)
            .map(|_| {
                let truth = next() % 3 == 0;
                // Coarse scores, so there are many ties.
                let score = (next() % 100) as f64 / 100.0 + if truth { 0.1 } else { 0.0 };
                scored(score, if truth { 1.0 } else { 0.0 })
            })
            .collect();
        let window = compute(&config(Task::Classification), 20_000, &pairs);
        let mut ranked: Vec<(f64, bool)> = pairs
            .iter()
            .map(|p| match p.output {
                Output::Classification { score, .. } => (score.unwrap_or(0.0), p.truth == 1.0),
                Output::Regression { .. } => unreachable!(),
            })
            .collect();
        ranked.sort_by(|a, b| a.0.total_cmp(&b.0));
        // Average ranks over ties.
        let mut rank_sum = 0.0;
        let mut i = 0;
        while i < ranked.len() {
            let mut j = i;
            while j < ranked.len() && ranked[j].0 == ranked[i].0 {
                j += 1;
            }
            let average = (i + 1 + j) as f64 / 2.0;
            rank_sum += average * ranked[i..j].iter().filter(|r| r.1).count() as f64;
            i = j;
        }
        let p = ranked.iter().filter(|r| r.1).count() as f64;
        let n = ranked.len() as f64 - p;
        let expected = (rank_sum - p * (p + 1.0) / 2.0) / (p * n);
        close(window.value(&Metric::AucRoc), expected);
    }
}
