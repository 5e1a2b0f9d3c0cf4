//! The statistical tests behind detection, health trends and version comparison.
//!
//! All tests are one-sided in the *worsening* direction of a metric unless named
//! otherwise, so a p-value answers "how surprising is a change at least this bad if nothing
//! changed?". Degenerate inputs (zero variance, too few values) get a defined answer instead
//! of NaN: identical constant windows give p = 1, a constant baseline that the current
//! values leave in the bad direction gives p = 0.

use statrs::distribution::{ContinuousCDF, FisherSnedecor, Normal, StudentsT};

use crate::metric::Direction;
use crate::sample::Point;

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

/// One block of consecutive values: its mean time (ms since the epoch) and mean value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Block {
    pub time_ms: f64,
    pub mean: f64,
}

/// Like [`block_means`], with each block's mean time: blocks of `block_len` consecutive
/// points aligned to the newest, oldest first.
pub fn timed_block_means(points: &[Point], block_len: usize, out: &mut Vec<Block>) {
    out.clear();
    if block_len == 0 {
        return;
    }
    let skip = points.len() % block_len;
    out.extend(points[skip..].chunks_exact(block_len).map(|chunk| {
        let (time, sum) = chunk.iter().fold((0.0, 0.0), |(t, s), p| {
            (t + p.timestamp.as_millis() as f64, s + p.value)
        });
        Block {
            time_ms: time / block_len as f64,
            mean: sum / block_len as f64,
        }
    }));
}

/// A least-squares daily harmonic `a + b·sin θ + c·cos θ` (θ the time of day) fitted to
/// block means, and its prediction at one time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DailyFit {
    /// p-value of the F-test that the harmonic explains variation (2 and n − 3 df).
    pub p_value: f64,
    pub prediction: f64,
    /// Residual variance (n − 3 denominator).
    pub residual_variance: f64,
    /// x′(X′X)⁻¹x of the prediction point.
    pub leverage: f64,
    pub degrees_of_freedom: f64,
    pub r_squared: f64,
    /// √(b² + c²).
    pub amplitude: f64,
}

const DAY_MS: f64 = 86_400_000.0;

fn solve3(m: [[f64; 3]; 3], v: [f64; 3]) -> Option<[f64; 3]> {
    let det = |m: [[f64; 3]; 3]| {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    };
    let d = det(m);
    if d.abs() < 1e-9 * (m[0][0] * m[1][1] * m[2][2]).abs().max(f64::MIN_POSITIVE) {
        return None;
    }
    let mut x = [0.0; 3];
    for (k, xk) in x.iter_mut().enumerate() {
        let mut mk = m;
        for r in 0..3 {
            mk[r][k] = v[r];
        }
        *xk = det(mk) / d;
    }
    Some(x)
}

/// Fits the daily harmonic to `blocks` and predicts at `at_ms`. `None` when the blocks
/// cover less than 20 hours or are fewer than 8.
pub fn daily_fit(blocks: &[Block], at_ms: f64) -> Option<DailyFit> {
    let n = blocks.len();
    if n < 8 {
        return None;
    }
    let span = blocks[n - 1].time_ms - blocks[0].time_ms;
    let block_ms = span / (n - 1) as f64;
    if span + block_ms < 20.0 * 3_600_000.0 {
        return None;
    }
    let row = |t: f64| {
        let theta = std::f64::consts::TAU * (t.rem_euclid(DAY_MS)) / DAY_MS;
        [1.0, theta.sin(), theta.cos()]
    };
    let mean = blocks.iter().map(|b| b.mean).sum::<f64>() / n as f64;
    let mut xtx = [[0.0; 3]; 3];
    let mut xty = [0.0; 3];
    for b in blocks {
        let x = row(b.time_ms);
        let y = b.mean - mean;
        for r in 0..3 {
            xty[r] += x[r] * y;
            for c in 0..3 {
                xtx[r][c] += x[r] * x[c];
            }
        }
    }
    let beta = solve3(xtx, xty)?;
    let (mut rss, mut tss) = (0.0, 0.0);
    for b in blocks {
        let x = row(b.time_ms);
        let y = b.mean - mean;
        let fit = beta[0] * x[0] + beta[1] * x[1] + beta[2] * x[2];
        rss += (y - fit) * (y - fit);
        tss += y * y;
    }
    let df = (n - 3) as f64;
    let residual_variance = rss / df;
    let p_value = if rss <= 0.0 {
        if tss > 0.0 {
            0.0
        } else {
            1.0
        }
    } else {
        let f = ((tss - rss).max(0.0) / 2.0) / residual_variance;
        FisherSnedecor::new(2.0, df)
            .map(|d| d.sf(f))
            .unwrap_or(1.0)
            .clamp(0.0, 1.0)
    };
    let x = row(at_ms);
    let leverage =
        solve3(xtx, x).map_or(f64::INFINITY, |w| w[0] * x[0] + w[1] * x[1] + w[2] * x[2]);
    Some(DailyFit {
        p_value,
        prediction: mean + beta[0] * x[0] + beta[1] * x[1] + beta[2] * x[2],
        residual_variance,
        leverage,
        degrees_of_freedom: df,
        r_squared: if tss > 0.0 { 1.0 - rss / tss } else { 0.0 },
        amplitude: beta[1].hypot(beta[2]),
    })
}

/// The prediction test of a value against a fitted expectation: t = worsening / (s ·
/// √(1 + leverage)) with the fit's degrees of freedom.
pub fn fitted_prediction_worsening(
    direction: Direction,
    fit: &DailyFit,
    value: f64,
) -> TestOutcome {
    let worsening = direction.worsening(fit.prediction, value);
    let scale = (fit.residual_variance * (1.0 + fit.leverage)).sqrt();
    if scale <= 0.0 || !scale.is_finite() {
        return degenerate(worsening);
    }
    let t = worsening / scale;
    TestOutcome {
        statistic: t,
        degrees_of_freedom: fit.degrees_of_freedom,
        p_value: student_t_upper_tail(t, fit.degrees_of_freedom),
    }
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
    fn daily_fit_is_exact_on_a_sampled_harmonic() {
        // 12 block means two hours apart, 10 + 2·sin θ + (−1)^k · 0.1: the alternating part
        // is orthogonal to 1, sin and cos over a full day, so the fit recovers the
        // harmonic exactly and leaves residuals ±0.1: RSS = 0.12, variance 0.12 / 9.
        // X′X = diag(12, 6, 6), so the leverage of any time is 1/12 + 1/6 = 0.25.
        let hour = 3_600_000.0;
        let blocks: Vec<Block> = (0..12)
            .map(|k| {
                let theta = std::f64::consts::TAU * k as f64 / 12.0;
                Block {
                    time_ms: 2.0 * hour * k as f64,
                    mean: 10.0 + 2.0 * theta.sin() + if k % 2 == 0 { 0.1 } else { -0.1 },
                }
            })
            .collect();
        let fit = daily_fit(&blocks, 30.0 * hour).unwrap();
        // 30 h is 06:00: θ = π/2.
        assert!((fit.prediction - 12.0).abs() < 1e-9, "{}", fit.prediction);
        assert!((fit.residual_variance - 0.12 / 9.0).abs() < 1e-12);
        assert!((fit.leverage - 0.25).abs() < 1e-12);
        assert!((fit.amplitude - 2.0).abs() < 1e-9);
        assert_eq!(fit.degrees_of_freedom, 9.0);
        // TSS = 12 · (2² / 2) + 0.12 = 24.12.
        assert!((fit.r_squared - (1.0 - 0.12 / 24.12)).abs() < 1e-12);
        // F = (24 / 2) / (0.12 / 9) = 900 on (2, 9) df: P(F ≥ f) = (1 + 2f/9)^(−9/2).
        let p = (1.0f64 + 2.0 * 900.0 / 9.0).powf(-4.5);
        assert!(
            (fit.p_value / p - 1.0).abs() < 1e-6,
            "{} vs {p}",
            fit.p_value
        );
        // Fewer than 20 hours covered: no fit.
        assert!(daily_fit(&blocks[..9], 30.0 * hour).is_none());

        let test = fitted_prediction_worsening(Direction::HigherIsBetter, &fit, 11.0);
        let expected = 1.0 / (0.12 / 9.0 * 1.25f64).sqrt();
        assert!((test.statistic - expected).abs() < 1e-9);
    }

    #[test]
    fn timed_block_means_carry_their_mean_time() {
        let points: Vec<Point> = (0..5)
            .map(|i| Point {
                timestamp: crate::time::Timestamp::from_millis(1000 * i).unwrap(),
                value: i as f64,
                dataset: None,
            })
            .collect();
        let mut out = Vec::new();
        timed_block_means(&points, 2, &mut out);
        let expected = vec![
            Block {
                time_ms: 1500.0,
                mean: 1.5,
            },
            Block {
                time_ms: 3500.0,
                mean: 3.5,
            },
        ];
        assert_eq!(out, expected);
    }

    #[test]
    fn block_means_align_to_the_newest_value() {
        let mut out = Vec::new();
        block_means([1.0, 2.0, 3.0, 4.0, 5.0].into_iter(), 2, &mut out);
        assert_eq!(out, vec![2.5, 4.5]);
    }
}
