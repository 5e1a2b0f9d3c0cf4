//! Which time ranges a degradation check compares, computed from "now" alone.
//!
//! The seed's defaults: the baseline is the 24 hours before the comparison window, and the
//! current value is the latest sample, or the mean of the last `comparison_hours` when they
//! are given. Two seasonal options exist because a daily or weekly cycle looks exactly like
//! a degradation to a plain "last 24 hours" baseline:
//!
//! * `seasonal` **replaces** the baseline by the same hours one day or one week earlier
//!   (the comparison window shifted back by the period).
//! * `reference` keeps the 24-hour baseline and **adds** a guard: a degradation must also
//!   hold against the same hours one period earlier. It is on by default (weekly) and simply
//!   ignored while a series is younger than a week, so new models behave as in the seed.
//!
//! In latest-value mode there is no comparison window to shift; "the same hours" is then
//! the two hours centred on `now` one period earlier ([`LATEST_SEASONAL_HALF_WIDTH`]).

use std::time::Duration;

use crate::time::{TimeRange, Timestamp};

const HOUR: Duration = Duration::from_secs(3600);

/// Half the width of the seasonal window used in latest-value mode.
pub const LATEST_SEASONAL_HALF_WIDTH: Duration = HOUR;

/// A cycle a metric may follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Seasonality {
    Daily,
    Weekly,
}

impl Seasonality {
    pub fn period(self) -> Duration {
        match self {
            Seasonality::Daily => 24 * HOUR,
            Seasonality::Weekly => 7 * 24 * HOUR,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Seasonality::Daily => "daily",
            Seasonality::Weekly => "weekly",
        }
    }
}

/// How a check chooses its windows. `Default` is the seed's behaviour plus the weekly guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSpec {
    pub baseline_hours: u32,
    /// `None`: compare the latest value.
    pub comparison_hours: Option<u32>,
    /// Take the baseline from the same hours one period earlier instead of the hours before.
    pub seasonal: Option<Seasonality>,
    /// Also require the degradation against the same hours one period earlier, when that
    /// window has data.
    pub reference: Option<Seasonality>,
}

impl WindowSpec {
    /// The most hours a baseline or comparison window may cover: a leap year, as rules'
    /// baseline windows.
    pub const MAX_HOURS: u32 = crate::alerting::rule::MAX_BASELINE_WINDOW_HOURS;

    /// Checks the hour counts a client chose, naming the one out of range.
    pub fn validate(&self) -> Result<(), crate::ValidationError> {
        let check = |field: &str, hours: u32| {
            if (1..=Self::MAX_HOURS).contains(&hours) {
                Ok(())
            } else {
                Err(crate::ValidationError::new(
                    field,
                    format!("must be 1 to {} hours, not {hours}", Self::MAX_HOURS),
                ))
            }
        };
        check("baseline_hours", self.baseline_hours)?;
        if let Some(hours) = self.comparison_hours {
            check("comparison_hours", hours)?;
        }
        Ok(())
    }
}

impl Default for WindowSpec {
    fn default() -> Self {
        WindowSpec {
            baseline_hours: 24,
            comparison_hours: None,
            seasonal: None,
            reference: Some(Seasonality::Weekly),
        }
    }
}

/// What the current value is taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComparisonWindow {
    /// The newest point inside `search` (the caller fetches it, e.g. with a "latest" query).
    Latest { search: TimeRange },
    /// The mean of the points in the range.
    Range(TimeRange),
}

/// The ranges a caller fetches before calling [`check_degradation`](super::check_degradation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetectionWindows {
    pub baseline: TimeRange,
    pub comparison: ComparisonWindow,
    /// The seasonal guard's window, with the cycle it guards against.
    pub reference: Option<(Seasonality, TimeRange)>,
    /// Window mode: what the long-run test ([`super::long_run`]) reads, a week and 16 hours
    /// up to now. A caller that cannot afford the read leaves it out.
    pub history: Option<TimeRange>,
}

/// The windows for a check at `now`.
pub fn detection_windows(now: Timestamp, spec: &WindowSpec) -> DetectionWindows {
    let baseline_length = HOUR * spec.baseline_hours;
    // The span the current value stands for, which seasonal windows shift back.
    let (comparison, current_span) = match spec.comparison_hours {
        Some(hours) => {
            let range = TimeRange::ending_at(now, HOUR * hours);
            (ComparisonWindow::Range(range), range)
        }
        None => (
            ComparisonWindow::Latest {
                search: TimeRange::ending_at(now, baseline_length),
            },
            TimeRange::new(
                now.saturating_sub(LATEST_SEASONAL_HALF_WIDTH),
                now.saturating_add(LATEST_SEASONAL_HALF_WIDTH),
            ),
        ),
    };
    let one_period_earlier = |cycle: Seasonality| {
        TimeRange::new(
            current_span.start.saturating_sub(cycle.period()),
            current_span.end.saturating_sub(cycle.period()),
        )
    };
    let baseline = match (spec.seasonal, comparison) {
        (Some(cycle), _) => one_period_earlier(cycle),
        (None, ComparisonWindow::Range(range)) => {
            TimeRange::ending_at(range.start, baseline_length)
        }
        (None, ComparisonWindow::Latest { .. }) => TimeRange::ending_at(now, baseline_length),
    };
    let reference = spec
        .reference
        .filter(|cycle| spec.seasonal != Some(*cycle))
        .map(|cycle| (cycle, one_period_earlier(cycle)));
    let history = match comparison {
        ComparisonWindow::Range(_) => Some(TimeRange::ending_at(
            now,
            Duration::from_secs(60 * super::long_run::HISTORY_MINUTES as u64),
        )),
        ComparisonWindow::Latest { .. } => None,
    };
    DetectionWindows {
        baseline,
        comparison,
        reference,
        history,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms).unwrap()
    }

    fn range(start: i64, end: i64) -> TimeRange {
        TimeRange::new(at(start), at(end))
    }

    #[test]
    fn default_is_latest_value_against_the_last_day_with_a_weekly_guard() {
        let now = 30 * 24 * H;
        let w = detection_windows(at(now), &WindowSpec::default());
        assert_eq!(w.baseline, range(now - 24 * H, now));
        assert_eq!(
            w.comparison,
            ComparisonWindow::Latest {
                search: range(now - 24 * H, now)
            }
        );
        let week = 168 * H;
        assert_eq!(
            w.reference,
            Some((Seasonality::Weekly, range(now - week - H, now - week + H)))
        );
    }

    #[test]
    fn comparison_window_pushes_the_baseline_back() {
        let now = 30 * 24 * H;
        let spec = WindowSpec {
            baseline_hours: 168,
            comparison_hours: Some(1),
            reference: None,
            ..WindowSpec::default()
        };
        let w = detection_windows(at(now), &spec);
        assert_eq!(w.comparison, ComparisonWindow::Range(range(now - H, now)));
        assert_eq!(w.baseline, range(now - 169 * H, now - H));
        assert_eq!(w.reference, None);
        assert_eq!(w.history, Some(range(now - (168 + 16) * H, now)));
    }

    #[test]
    fn seasonal_baseline_is_the_same_hours_one_period_earlier() {
        let now = 30 * 24 * H;
        let spec = WindowSpec {
            comparison_hours: Some(2),
            seasonal: Some(Seasonality::Daily),
            ..WindowSpec::default()
        };
        let w = detection_windows(at(now), &spec);
        assert_eq!(w.baseline, range(now - 26 * H, now - 24 * H));
        let weekly = Some((Seasonality::Weekly, range(now - 170 * H, now - 168 * H)));
        assert_eq!(w.reference, weekly);
        let same = WindowSpec {
            seasonal: Some(Seasonality::Weekly),
            ..spec
        };
        assert_eq!(detection_windows(at(now), &same).reference, None);
    }

    #[test]
    fn windows_saturate_at_the_epoch() {
        let w = detection_windows(at(H), &WindowSpec::default());
        assert_eq!(w.baseline, range(0, H));
        assert_eq!(w.reference, Some((Seasonality::Weekly, range(0, 0))));
    }
}
