//! The statistical tests behind detection, health trends and version comparison.
//!
//! All tests are one-sided in the *worsening* direction of a metric unless named
//! otherwise, so a p-value answers "how surprising is a change at least this bad if nothing
//! changed?". Degenerate inputs (zero variance, too few values) get a defined answer instead
//! of NaN: identical constant windows give p = 1, a constant baseline that the current
//! values leave in the bad direction gives p = 0.

use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

use crate::metric::Direction;

/// Count, mean and sample variance (n − 1 denominator) of a set of values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Moments {
    pub count: usize,
    pub mean: f64,
    /// Sample variance; 0 for a single value.
    pub variance: f64,
}

impl Moments {
    /// Welford's single pass; `None` for no values.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Moments> {
        let (mut count, mut mean, mut m2) = (0usize, 0.0f64, 0.0f64);
        for value in values {
            count += 1;
            let delta = value - mean;
            mean += delta / count as f64;
            m2 += delta * (value - mean);
        }
        match count {
            0 => None,
            1 => Some(Moments {
                count,
                mean,
                variance: 0.0,
            }),
            _ => Some(Moments {
                count,
                mean,
                variance: (m2 / (count - 1) as f64).max(0.0),
            }),
        }
    }

    pub fn std(&self) -> f64 {
        self.variance.sqrt()
    }
}

/// Degrees of freedom above which Student's t is replaced by the normal distribution.
const LARGE_DF: f64 = 1e5;

/// The outcome of a one-sided test: the statistic, its degrees of freedom and the p-value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TestOutcome {
    pub statistic: f64,
    pub degrees_of_freedom: f64,
    pub p_value: f64,
}

/// P(T ≥ t) for Student's t with `df` degrees of freedom; the normal tail when `df` is
/// not a usable number.
pub fn student_t_upper_tail(t: f64, df: f64) -> f64 {
    if t.is_nan() {
        return 1.0;
    }
    if t.is_infinite() {
        return if t > 0.0 { 0.0 } else { 1.0 };
    }
    let tail = if df.is_finite() && df > 0.0 && df < LARGE_DF {
        StudentsT::new(0.0, 1.0, df)
            .map(|d| d.sf(t))
            .unwrap_or_else(|_| normal_upper_tail(t))
    } else {
        normal_upper_tail(t)
    };
    tail.clamp(0.0, 1.0)
}

/// The `q`-quantile of Student's t (normal when `df` is unusable).
pub fn student_t_quantile(q: f64, df: f64) -> f64 {
    let q = q.clamp(1e-12, 1.0 - 1e-12);
    // statrs's numeric inversion does not terminate for huge df; the normal is within 1e-5
    // of Student's t there.
    if df.is_finite() && df > 0.0 && df < LARGE_DF {
        if let Ok(d) = StudentsT::new(0.0, 1.0, df) {
            return d.inverse_cdf(q);
        }
    }
    Normal::standard().inverse_cdf(q)
}

/// P(Z ≥ z) for the standard normal.
pub fn normal_upper_tail(z: f64) -> f64 {
    Normal::standard().sf(z)
}

/// p-value for a statistic whose standard error is zero: certain when the difference is
/// in the bad direction, impossible otherwise.
fn degenerate(worsening: f64) -> TestOutcome {
    TestOutcome {
        statistic: if worsening > 0.0 {
            f64::MAX
        } else if worsening < 0.0 {
            f64::MIN
        } else {
            0.0
        },
        degrees_of_freedom: 0.0,
        p_value: if worsening > 0.0 { 0.0 } else { 1.0 },
    }
}

/// Welch's unequal-variance t-test that `current` is worse than `baseline`. Both need at
/// least two values; `None` otherwise.
pub fn welch_worsening(
    direction: Direction,
    baseline: Moments,
    current: Moments,
) -> Option<TestOutcome> {
    if baseline.count < 2 || current.count < 2 {
        return None;
    }
    let worsening = direction.worsening(baseline.mean, current.mean);
    let vb = baseline.variance / baseline.count as f64;
    let vc = current.variance / current.count as f64;
    let se2 = vb + vc;
    if se2 <= 0.0 || !se2.is_finite() {
        return Some(degenerate(worsening));
    }
    let df =
        se2 * se2 / (vb * vb / (baseline.count - 1) as f64 + vc * vc / (current.count - 1) as f64);
    let t = worsening / se2.sqrt();
    Some(TestOutcome {
        statistic: t,
        degrees_of_freedom: df,
        p_value: student_t_upper_tail(t, df),
    })
}

/// The prediction-interval test that one new value is worse than what the reference values
/// let us expect: t = worsening / (s · √(1 + 1/n)) with n − 1 degrees of freedom. Needs at
/// least two reference values.
pub fn prediction_worsening(
    direction: Direction,
    reference: Moments,
    value: f64,
) -> Option<TestOutcome> {
    if reference.count < 2 {
        return None;
    }
    let worsening = direction.worsening(reference.mean, value);
    let scale = reference.std() * (1.0 + 1.0 / reference.count as f64).sqrt();
    if scale <= 0.0 || !scale.is_finite() {
        return Some(degenerate(worsening));
    }
    let df = (reference.count - 1) as f64;
    let t = worsening / scale;
    Some(TestOutcome {
        statistic: t,
        degrees_of_freedom: df,
        p_value: student_t_upper_tail(t, df),
    })
}

/// Means of consecutive blocks of `block_len` values, aligned to the newest value (an
/// incomplete block at the oldest end is dropped). Written into `out` so a caller can reuse
/// the buffer.
pub fn block_means(
    values: impl DoubleEndedIterator<Item = f64>,
    block_len: usize,
    out: &mut Vec<f64>,
) {
    out.clear();
    if block_len == 0 {
        return;
    }
    let (mut sum, mut filled) = (0.0, 0usize);
    for value in values.rev() {
        sum += value;
        filled += 1;
        if filled == block_len {
            out.push(sum / block_len as f64);
            sum = 0.0;
            filled = 0;
        }
    }
    out.reverse();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moments(values: &[f64]) -> Moments {
        Moments::of(values.iter().copied()).unwrap()
    }

    #[test]
    fn t_tail_matches_closed_forms() {
        // df = 1 is the Cauchy distribution, df = 2 has P(T ≥ t) = ½ − t / (2√(t² + 2)).
        let t: f64 = 1.5;
        let cauchy = 0.5 - t.atan() / std::f64::consts::PI;
        assert!((student_t_upper_tail(t, 1.0) - cauchy).abs() < 1e-12);
        let two = 0.5 - t / (2.0 * (t * t + 2.0).sqrt());
        assert!((student_t_upper_tail(t, 2.0) - two).abs() < 1e-12);
        assert!((student_t_quantile(0.975, 1e9) - 1.959964).abs() < 1e-5);
        assert!((student_t_quantile(0.975, 4.0) - 2.776445).abs() < 1e-5);
        assert!((student_t_quantile(0.975, 5000.0) - 1.960439).abs() < 1e-5);
    }

    #[test]
    fn welch_is_direction_aware_and_exact_on_a_fixture() {
        // Baseline 1, 2, 3 (mean 2, var 1); current 4, 5, 6 (mean 5, var 1):
        // se = √(1/3 + 1/3), t = 3 / √(2/3), df = (2/3)² / (2 · (1/3)² / 2) = 4.
        let b = moments(&[1.0, 2.0, 3.0]);
        let c = moments(&[4.0, 5.0, 6.0]);
        let lower = welch_worsening(Direction::LowerIsBetter, b, c).unwrap();
        assert!((lower.statistic - 3.0 / (2.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((lower.degrees_of_freedom - 4.0).abs() < 1e-12);
        // df = 4: P(T ≥ t) = ½ − (3/8) · u · (1 − u² / 12), u = t / √(1 + t²/4).
        let u = lower.statistic / (1.0 + lower.statistic.powi(2) / 4.0).sqrt();
        let p = 0.5 - 0.375 * u * (1.0 - u * u / 12.0);
        assert!(
            (lower.p_value - p).abs() < 1e-12,
            "{} vs {p}",
            lower.p_value
        );
        let higher = welch_worsening(Direction::HigherIsBetter, b, c).unwrap();
        assert!((higher.p_value - (1.0 - lower.p_value)).abs() < 1e-12);
    }

    #[test]
    fn constant_windows_have_defined_p_values() {
        let same = moments(&[1.0, 1.0, 1.0]);
        let worse = moments(&[0.5, 0.5, 0.5]);
        let dir = Direction::HigherIsBetter;
        assert_eq!(welch_worsening(dir, same, same).unwrap().p_value, 1.0);
        assert_eq!(welch_worsening(dir, same, worse).unwrap().p_value, 0.0);
        assert_eq!(prediction_worsening(dir, same, 0.9).unwrap().p_value, 0.0);
        assert!(welch_worsening(dir, moments(&[1.0]), same).is_none());
    }

    #[test]
    fn block_means_align_to_the_newest_value() {
        let mut out = Vec::new();
        block_means([1.0, 2.0, 3.0, 4.0, 5.0].into_iter(), 2, &mut out);
        assert_eq!(out, vec![2.5, 4.5]);
    }
}
