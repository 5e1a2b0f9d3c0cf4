//! Event-level scores of change-point detection as the change-point literature computes
//! them: the F1 measure with a margin and the segmentation covering of van den Burg &
//! Williams (2020), "An Evaluation of Change Point Detection Algorithms" (their
//! TCPDBench's `f_measure` and `covering`), with one annotator.
//!
//! Change points are 0-based row indices where a new segment starts. As in TCPDBench, the
//! start of the series (0) is a change point of both the truth and the prediction, so a
//! series without changes and a detector that never fires score 1.

use std::collections::BTreeSet;

/// The annotated points matched by predictions within `margin`, each prediction used at
/// most once (the closest one, the smaller on ties).
fn true_positives(truth: &BTreeSet<usize>, predictions: &BTreeSet<usize>, margin: usize) -> usize {
    let mut left = predictions.clone();
    let mut matched = 0;
    for &tau in truth {
        let best = left
            .range(tau.saturating_sub(margin)..=tau + margin)
            .min_by_key(|&&x| (x.abs_diff(tau), x))
            .copied();
        if let Some(x) = best {
            left.remove(&x);
            matched += 1;
        }
    }
    matched
}

/// F1 (precision, recall) of `predictions` against `truth` with a `margin` in rows.
pub fn f_measure(truth: &[usize], predictions: &[usize], margin: usize) -> (f64, f64, f64) {
    let mut truth: BTreeSet<usize> = truth.iter().copied().collect();
    let mut predictions: BTreeSet<usize> = predictions.iter().copied().collect();
    truth.insert(0);
    predictions.insert(0);
    let precision = true_positives(&truth, &predictions, margin) as f64 / predictions.len() as f64;
    let recall = true_positives(&truth, &predictions, margin) as f64 / truth.len() as f64;
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    (f1, precision, recall)
}

/// Segment bounds `[start, end)` of a series of `rows` cut at `points`.
fn segments(points: &[usize], rows: usize) -> Vec<(usize, usize)> {
    let cuts: BTreeSet<usize> = points
        .iter()
        .copied()
        .filter(|&p| p > 0 && p < rows)
        .collect();
    let mut bounds = Vec::with_capacity(cuts.len() + 1);
    let mut start = 0;
    for cut in cuts {
        bounds.push((start, cut));
        start = cut;
    }
    bounds.push((start, rows));
    bounds
}

/// The covering of the true segmentation by the predicted one: `Σ |A| · max_B J(A, B) / T`
/// over true segments `A`, with `J` the Jaccard index.
pub fn covering(truth: &[usize], predictions: &[usize], rows: usize) -> f64 {
    let predicted = segments(predictions, rows);
    let mut total = 0.0;
    for (a_start, a_end) in segments(truth, rows) {
        let best = predicted
            .iter()
            .map(|&(b_start, b_end)| {
                let intersection = a_end.min(b_end).saturating_sub(a_start.max(b_start));
                let union = a_end.max(b_end) - a_start.min(b_start);
                intersection as f64 / union as f64
            })
            .fold(0.0, f64::max);
        total += (a_end - a_start) as f64 * best;
    }
    total / rows as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    // TCPDBench's doctests with one annotator.
    #[test]
    fn f_measure_matches_tcpdbench() {
        assert_eq!(f_measure(&[10, 20], &[10, 20], 5).0, 1.0);
        // {10} against truth {50}: P = 1/2, R = 1/2.
        assert_eq!(f_measure(&[50], &[10], 5).0, 0.5);
        assert_eq!(
            true_positives(&[1, 10, 20, 23].into(), &[3, 8, 20].into(), 5),
            3
        );
        assert_eq!(
            true_positives(&[1, 10, 20, 23].into(), &[1, 3, 5, 8, 20].into(), 5),
            3
        );
        assert_eq!(f_measure(&[], &[], 5).0, 1.0);
    }

    #[test]
    fn covering_matches_tcpdbench() {
        // cover_single([{1,2,3},{4,5},{6}], [{1,2,3},{4,5,6}]) = 0.8333 (shifted to 0-based).
        assert!((covering(&[3], &[3, 5], 6) - 0.833_333_333_333_333_4).abs() < 1e-12);
        // cover_single([{1..4},{5,6}], [{1..6}]) = 0.6667
        assert!((covering(&[], &[4], 6) - 0.666_666_666_666_666_6).abs() < 1e-12);
        // covering({1: [10, 20]}, [10, 20], 45) = 1
        assert_eq!(covering(&[10, 20], &[10, 20], 45), 1.0);
        // cover_single([{1..6}], [{1},{2},{3},{4,5,6}]) = 0.3333
        assert!((covering(&[1, 2, 3], &[], 6) - 1.0 / 3.0).abs() < 1e-12);
    }
}
