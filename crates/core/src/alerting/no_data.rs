//! No-data rules: a series (or a whole model version) that has reported nothing for
//! longer than a limit.
//!
//! **The limit.** A rule gives a duration (`no_data_minutes`), a multiple of the series'
//! usual interval (`no_data_intervals`), or both. The usual interval is the median gap of
//! the last [`CADENCE_GAPS`] gaps between samples, kept in the rule's state
//! ([`Cadence`]) and advanced by every sample counted, so restarts, several servers and
//! backtests see the same figure. With intervals the limit is never shorter than
//! [`MIN_NO_DATA_LIMIT`] (jitter of a per-second series is not an outage), and a series
//! with fewer than [`MIN_CADENCE_GAPS`] gaps has no usual interval yet: such a rule waits.
//! With both, the silence must exceed both (the duration is a floor under the multiple).
//!
//! **Observations.** A no-data rule observes every sample (fresh: clear) and, between two
//! samples, the instant the silence reached the limit (`last sample + limit`, breaching)
//! when the next sample came later than that. Live evaluation also observes the silence
//! going on at the pass's clock once it is past the limit, even without a new sample —
//! that is the point of the rule — and again while a breach is held back (cooldown) so it
//! fires once it may. A replay over history (the backtest) observes each gap longer than
//! the limit at the instant it reached it, and the trailing one if it reached it before
//! the end of the range. The first sample after a silence clears it: no-data rules fire
//! at the first breaching observation and, by default, resolve themselves at the first
//! sample back.
//!
//! Samples are judged by their timestamps: a sample stamped before a silence already
//! counted (sent late) does not end it; the next one stamped after it does.
//!
//! **A whole version** (a rule on metric `*`). The samples of every metric of the version
//! (on one dataset) are merged into one time-ordered stream and counted as one series
//! ([`version_observations`]): the version is silent only while none of its metrics
//! reports, and its usual interval is the median gap of the merged times. The cadence
//! also keeps the [`LAST_SAMPLES`] metrics seen last, which the alert lists.

use std::time::Duration;

use super::condition::{FreshnessReading, Observation};
use super::rule::NoDataCondition;
use super::state::SeriesState;
use crate::metric::Metric;
use crate::time::Timestamp;

/// How many recent gaps between samples the usual interval is the median of.
pub const CADENCE_GAPS: usize = 32;
/// How many gaps it takes before a series has a usual interval.
pub const MIN_CADENCE_GAPS: usize = 3;
/// The shortest limit a multiple of the usual interval gives: one minute.
pub const MIN_NO_DATA_LIMIT: Duration = Duration::from_secs(60);
/// How far before its newest sample a no-data rule evaluated for the first time starts
/// counting, to learn the series' usual interval: 7 days.
pub const NO_DATA_WARM_UP: Duration = Duration::from_secs(7 * 24 * 3600);

/// How many metrics a rule on a whole version remembers as seen last.
pub const LAST_SAMPLES: usize = 5;

/// A metric of a version and the time of its newest sample counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastSample {
    pub metric: Metric,
    pub at: Timestamp,
}

/// The sampling of the watched series as counted so far: its newest sample and the most
/// recent gaps between samples (at most [`CADENCE_GAPS`], oldest first); for a rule on a
/// whole version, also the metrics seen last.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cadence {
    pub last_sample_at: Option<Timestamp>,
    pub gaps_ms: Vec<u64>,
    /// The [`LAST_SAMPLES`] metrics seen last, newest first (a rule on a whole version).
    pub last_samples: Vec<LastSample>,
}

impl Cadence {
    /// Notes that `metric` reported at `at`, for the list of metrics seen last.
    pub fn saw(&mut self, metric: &Metric, at: Timestamp) {
        match self.last_samples.iter_mut().find(|s| &s.metric == metric) {
            Some(seen) => seen.at = seen.at.max(at),
            None => self.last_samples.push(LastSample {
                metric: metric.clone(),
                at,
            }),
        }
        self.last_samples
            .sort_by(|a, b| b.at.cmp(&a.at).then_with(|| a.metric.cmp(&b.metric)));
        self.last_samples.truncate(LAST_SAMPLES);
    }

    /// Counts a sample at `at` (newer than the last one; older ones are ignored).
    pub fn record(&mut self, at: Timestamp) {
        if let Some(last) = self.last_sample_at {
            if at <= last {
                return;
            }
            if self.gaps_ms.len() >= CADENCE_GAPS {
                self.gaps_ms.remove(0);
            }
            self.gaps_ms
                .push(u64::try_from(at.millis_since(last)).unwrap_or(0));
        }
        self.last_sample_at = Some(at);
    }

    /// The median of the recent gaps, once there are [`MIN_CADENCE_GAPS`] of them.
    pub fn usual_interval(&self) -> Option<Duration> {
        if self.gaps_ms.len() < MIN_CADENCE_GAPS {
            return None;
        }
        let mut gaps = self.gaps_ms.clone();
        gaps.sort_unstable();
        let n = gaps.len();
        let median = if n % 2 == 1 {
            gaps[n / 2]
        } else {
            gaps[n / 2 - 1] / 2 + gaps[n / 2] / 2 + (gaps[n / 2 - 1] % 2 + gaps[n / 2] % 2) / 2
        };
        Some(Duration::from_millis(median))
    }
}

impl NoDataCondition {
    /// How long a silence may last, for a series whose usual interval is `usual`; `None`
    /// while a rule that needs the usual interval cannot know it yet.
    pub fn limit(&self, usual: Option<Duration>) -> Option<Duration> {
        let fixed = self
            .no_data_minutes
            .map(|minutes| Duration::from_millis((minutes * 60_000.0).round() as u64));
        let relative = match self.no_data_intervals {
            None => None,
            Some(n) => {
                let usual = usual?;
                Some(
                    Duration::from_millis((usual.as_millis() as f64 * n).round() as u64)
                        .max(MIN_NO_DATA_LIMIT),
                )
            }
        };
        match (fixed, relative) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// When a silence after `cadence`'s last sample reaches the limit.
    pub fn deadline(&self, cadence: &Cadence) -> Option<Timestamp> {
        let last = cadence.last_sample_at?;
        Some(last.saturating_add(self.limit(cadence.usual_interval())?))
    }
}

fn reading(
    condition: &NoDataCondition,
    cadence: &Cadence,
    at: Timestamp,
) -> Option<(Timestamp, Observation)> {
    let last = cadence.last_sample_at?;
    let usual = cadence.usual_interval();
    Some((
        at,
        Observation::Freshness(FreshnessReading {
            at,
            last_sample_at: last,
            usual_interval_ms: usual.map(|d| d.as_millis() as u64),
            limit_ms: condition.limit(usual).map(|d| d.as_millis() as u64),
            last_samples: cadence.last_samples.clone(),
        }),
    ))
}

/// Where a replay's trailing silence (after the last sample) is observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    /// More samples may follow what was read: no trailing observation.
    Open,
    /// Live evaluation at `now`: the silence as it stands now, once past the limit; a
    /// silence that reached the limit before the paging horizon (`now − horizon`) is
    /// observed at that instant instead, so it is recorded as a past breach, not paged.
    Now { now: Timestamp, horizon: Duration },
    /// A replay ending at `end` (exclusive): the instant the silence reached the limit,
    /// if that is before the end.
    Until(Timestamp),
}

/// The observations of a no-data rule over `samples` (time-ordered sample times, newer
/// than what `state` counted), starting from `state`'s cadence, then the tail.
pub fn observations(
    condition: &NoDataCondition,
    state: &SeriesState,
    samples: &[Timestamp],
    tail: Tail,
) -> Vec<(Timestamp, Observation)> {
    replay(condition, state, samples.iter().map(|&at| (at, None)), tail)
}

/// [`observations`] of a rule on a whole version: `samples` are the times of every
/// metric's samples, merged and time-ordered, each with its metric. Samples of several
/// metrics at one instant count once.
pub fn version_observations(
    condition: &NoDataCondition,
    state: &SeriesState,
    samples: &[(Timestamp, &Metric)],
    tail: Tail,
) -> Vec<(Timestamp, Observation)> {
    replay(
        condition,
        state,
        samples.iter().map(|&(at, metric)| (at, Some(metric))),
        tail,
    )
}

fn replay<'a>(
    condition: &NoDataCondition,
    state: &SeriesState,
    samples: impl IntoIterator<Item = (Timestamp, Option<&'a Metric>)>,
    tail: Tail,
) -> Vec<(Timestamp, Observation)> {
    let mut cadence = state.detail.cadence.clone().unwrap_or_default();
    let mut counted = state.last_observed_at;
    let replayed_from = counted;
    let mut found = Vec::new();
    for (at, metric) in samples {
        // Another metric at the instant just counted: one more metric seen, no new sample.
        if counted == Some(at) && counted != replayed_from {
            if let Some(metric) = metric {
                cadence.saw(metric, at);
                if let Some((_, Observation::Freshness(reading))) = found.last_mut() {
                    reading.last_samples = cadence.last_samples.clone();
                }
            }
            continue;
        }
        if counted.is_some_and(|c| at <= c) {
            continue;
        }
        if let Some(deadline) = condition.deadline(&cadence) {
            if deadline < at && counted.is_none_or(|c| c < deadline) {
                found.extend(reading(condition, &cadence, deadline));
            }
        }
        if let Some(metric) = metric {
            cadence.saw(metric, at);
        }
        cadence.record(at);
        found.extend(reading(condition, &cadence, at));
        counted = Some(at);
    }
    let tail_at = match (tail, condition.deadline(&cadence)) {
        (Tail::Now { now, horizon }, Some(deadline)) if deadline <= now => {
            Some(live_instant(deadline, now, horizon))
        }
        (Tail::Until(end), Some(deadline)) if deadline < end => Some(deadline),
        _ => None,
    };
    if let Some(at) = tail_at.filter(|at| counted.is_none_or(|c| c < *at)) {
        found.extend(reading(condition, &cadence, at));
    }
    found
}

/// Where live evaluation observes a silence that reached the limit at `deadline`: now,
/// unless that was before the paging horizon — a version that stopped reporting long ago
/// (a retired one, when a rule for every version is created) is recorded, not paged.
fn live_instant(deadline: Timestamp, now: Timestamp, horizon: Duration) -> Timestamp {
    if deadline < now.saturating_sub(horizon) {
        deadline
    } else {
        now
    }
}

/// The observation live evaluation makes at `now` of a silence going on after the samples
/// `state` counted, when one is due: the silence has reached the limit and either was not
/// counted yet, or it breached without an open alert (held by a cooldown, or resolved
/// by a person while still silent), so it may fire now. A silence recorded as a past
/// breach (it reached the limit before the paging horizon) is not looked at again until
/// data returns.
pub fn silence_due(
    condition: &NoDataCondition,
    state: &SeriesState,
    alert_open: bool,
    now: Timestamp,
    horizon: Duration,
) -> Option<(Timestamp, Observation)> {
    let cadence = state.detail.cadence.as_ref()?;
    let deadline = condition.deadline(cadence)?;
    if deadline > now || state.last_observed_at.is_some_and(|c| c >= now) {
        return None;
    }
    let uncounted = state.last_observed_at.is_none_or(|c| c < deadline);
    let held =
        state.consecutive_breaches > 0 && !alert_open && state.detail.open_past_breach().is_none();
    if !(uncounted || held) {
        return None;
    }
    let at = if uncounted {
        live_instant(deadline, now, horizon)
    } else {
        now
    };
    reading(condition, cadence, at)
}

/// Where a no-data rule evaluated for the first time starts counting a series whose
/// newest sample is at `last_sample`: [`NO_DATA_WARM_UP`] before it, so the usual
/// interval is known, or one paging horizon before `now` if that is earlier.
pub fn first_counted(last_sample: Timestamp, now: Timestamp, horizon: Duration) -> Timestamp {
    last_sample
        .saturating_sub(NO_DATA_WARM_UP)
        .min(now.saturating_sub(horizon))
}

/// A version (or series) is *stale* on the overview when it has sent nothing for longer
/// than [`STALE_INTERVALS`] usual intervals, and never before [`STALE_FLOOR`]; without a
/// usual interval (fewer than four samples), after [`STALE_WITHOUT_INTERVAL`].
pub const STALE_INTERVALS: u32 = 5;
pub const STALE_FLOOR: Duration = Duration::from_secs(10 * 60);
pub const STALE_WITHOUT_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// The usual interval of a series from its newest samples' times (time-ordered): the
/// median of the last [`CADENCE_GAPS`] gaps, as a no-data rule measures it.
pub fn usual_interval_of(times: &[Timestamp]) -> Option<Duration> {
    let mut cadence = Cadence::default();
    for &at in &times[times.len().saturating_sub(CADENCE_GAPS + 1)..] {
        cadence.record(at);
    }
    cadence.usual_interval()
}

/// How long a series last sampled at `last`, usually every `usual`, may stay silent
/// before the overview calls it stale (see [`STALE_INTERVALS`]).
pub fn stale_after(usual: Option<Duration>) -> Duration {
    match usual {
        Some(usual) => (usual * STALE_INTERVALS).max(STALE_FLOOR),
        None => STALE_WITHOUT_INTERVAL,
    }
}

/// Whether a series last sampled at `last` is stale at `now`.
pub fn is_stale(last: Timestamp, usual: Option<Duration>, now: Timestamp) -> bool {
    now.millis_since(last) > i64::try_from(stale_after(usual).as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: i64) -> Timestamp {
        Timestamp::from_millis(1_700_000_000_000 + minute * 60_000)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_usual_interval_is_the_median_of_the_recent_gaps_and_outages_barely_move_it() {
        let mut times: Vec<Timestamp> = (0..40).map(at).collect();
        assert_eq!(usual_interval_of(&times), Some(Duration::from_secs(60)));
        // A few long gaps among 32 are outvoted.
        times.extend([at(100), at(200), at(201), at(202)]);
        assert_eq!(usual_interval_of(&times), Some(Duration::from_secs(60)));
        assert_eq!(usual_interval_of(&times[..3]), None);
    }

    #[test]
    fn stale_means_five_usual_intervals_and_never_under_ten_minutes() {
        let minute = Some(Duration::from_secs(60));
        assert!(!is_stale(at(0), minute, at(10)));
        assert!(is_stale(at(0), minute, at(11)));
        let hourly = Some(Duration::from_secs(3600));
        assert!(!is_stale(at(0), hourly, at(300)));
        assert!(is_stale(at(0), hourly, at(301)));
        assert!(!is_stale(at(0), None, at(24 * 60)));
        assert!(is_stale(at(0), None, at(24 * 60 + 1)));
    }
}
