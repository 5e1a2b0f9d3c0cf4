//! When a window computed from predictions is **judged**: when its metrics become samples
//! that detection and alert rules read.
//!
//! Labels arrive late and partially, so a window's first values rest on whichever labels
//! came first (often the fast, biased ones). A window is judged once it has closed and
//! either its label coverage reached the model's `min_coverage` or `max_label_delay` has
//! passed since its end; until then its values are provisional revisions, kept but shown
//! to no rule. Windows of a series are judged **in order**: a window waits for the
//! windows before it, because rules read a series forward and would skip a point written
//! behind the last one they counted. The wait is bounded, since every earlier window is
//! judged by its own `max_label_delay` at the latest.

use crate::time::{TimeRange, Timestamp};

use super::PredictionConfig;

/// Why a window was judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JudgedBy {
    /// Its coverage reached the model's minimum.
    Coverage,
    /// The model's maximum label delay passed since the window's end.
    LabelDelay,
}

impl JudgedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            JudgedBy::Coverage => "coverage",
            JudgedBy::LabelDelay => "label_delay",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "coverage" => Some(JudgedBy::Coverage),
            "label_delay" => Some(JudgedBy::LabelDelay),
            _ => None,
        }
    }
}

/// Whether `window`, with label `coverage`, is judged at `now`; `None` while it waits
/// (still open, or short of coverage within the label delay).
pub fn judge(
    config: &PredictionConfig,
    window: TimeRange,
    coverage: f64,
    now: Timestamp,
) -> Option<JudgedBy> {
    if now < window.end {
        return None;
    }
    if coverage >= config.min_coverage {
        return Some(JudgedBy::Coverage);
    }
    if now
        >= window
            .end
            .saturating_add(config.max_label_delay.as_duration())
    {
        return Some(JudgedBy::LabelDelay);
    }
    None
}

/// The windows of one series still waiting, oldest first, as (window, coverage): how
/// many of the first are judged at `now`, and why each. Judging stops at the first window
/// that still waits (see the module doc).
pub fn judge_in_order(
    config: &PredictionConfig,
    waiting: impl IntoIterator<Item = (TimeRange, f64)>,
    now: Timestamp,
) -> Vec<JudgedBy> {
    waiting
        .into_iter()
        .map_while(|(window, coverage)| judge(config, window, coverage, now))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::predictions::{LabelDelay, Task, WindowLength};

    const HOUR: i64 = 3_600_000;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms).expect("valid")
    }

    fn hour(n: i64) -> TimeRange {
        TimeRange::new(at(n * HOUR), at((n + 1) * HOUR))
    }

    fn config() -> PredictionConfig {
        PredictionConfig::new(WindowLength::HOUR, Task::Classification, 0.5, 0.8)
            .expect("config")
            .with_max_label_delay(LabelDelay::parse("6h").expect("6h"))
    }

    #[test]
    fn an_open_window_is_never_judged_even_fully_labelled() {
        assert_eq!(judge(&config(), hour(10), 1.0, at(10 * HOUR + 1)), None);
        assert_eq!(
            judge(&config(), hour(10), 1.0, at(11 * HOUR)),
            Some(JudgedBy::Coverage)
        );
    }

    #[test]
    fn a_closed_window_waits_for_coverage_until_the_label_delay_has_passed() {
        let config = config();
        assert_eq!(judge(&config, hour(10), 0.79, at(12 * HOUR)), None);
        assert_eq!(
            judge(&config, hour(10), 0.8, at(12 * HOUR)),
            Some(JudgedBy::Coverage)
        );
        assert_eq!(judge(&config, hour(10), 0.1, at(17 * HOUR - 1)), None);
        assert_eq!(
            judge(&config, hour(10), 0.1, at(17 * HOUR)),
            Some(JudgedBy::LabelDelay)
        );
        assert_eq!(
            judge(&config, hour(10), 0.0, at(17 * HOUR)),
            Some(JudgedBy::LabelDelay)
        );
    }

    #[test]
    fn windows_are_judged_in_order_a_covered_one_waiting_for_an_earlier_one() {
        let config = config();
        let waiting = [(hour(10), 0.5), (hour(11), 0.9), (hour(12), 0.9)];
        assert_eq!(judge_in_order(&config, waiting, at(14 * HOUR)), []);
        assert_eq!(
            judge_in_order(&config, waiting, at(17 * HOUR)),
            [JudgedBy::LabelDelay, JudgedBy::Coverage, JudgedBy::Coverage]
        );
        let waiting = [(hour(10), 0.9), (hour(11), 0.2), (hour(12), 0.9)];
        assert_eq!(
            judge_in_order(&config, waiting, at(14 * HOUR)),
            [JudgedBy::Coverage]
        );
    }
}
