//! Labelled synthetic metric streams and the per-scenario runner.
//!
//! A stream is 10 days of samples. Its value is `level · (1 + season + change + slow) +
//! noise`: `slow` is an AR(1) wander with a two-hour correlation time (real metrics drift
//! with traffic mix), `noise` is white per-sample noise, latency streams add rare spikes.
//! Checks run every `check_every` minutes during days 8–10; a change (when the scenario
//! has one) starts at a random time in day 8.5–9.0, so there is a week of history before
//! every check and a full day after every change. A check before the change that fires is
//! a false alarm; a change counts as detected when a check fires within 24 hours after it,
//! and the delay is measured to the first such check.

use modelwatch_core::{Metric, MetricDefinition, Point, Timestamp};

use crate::detectors::{Kind, Runner};

const MINUTE_MS: i64 = 60_000;
const DAY_MIN: i64 = 24 * 60;
const STREAM_DAYS: i64 = 10;
const CHECKS_FROM_DAY: i64 = 8;

/// SplitMix64: tiny, fast and good enough for benchmark noise; fixed seeds make every run
/// print the same table.
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal by Box–Muller.
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(f64::MIN_POSITIVE);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Change {
    None,
    /// A sudden worsening by this many percent.
    Step(f64),
    /// A linear worsening reaching this many percent after `hours`.
    Drift {
        percentage: f64,
        hours: f64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Accuracy around 0.9: higher is better.
    Accuracy,
    /// Latency around 120 ms: lower is better, with spikes.
    Latency,
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: &'static str,
    pub family: Family,
    /// Minutes between samples.
    pub interval: i64,
    /// Comparison window of the window-mode checks, hours.
    pub window_hours: u32,
    pub white_percentage: f64,
    pub slow_percentage: f64,
    /// Amplitude of a daily sine, percent.
    pub daily_percentage: f64,
    /// How much worse the weekend is, percent.
    pub weekend_percentage: f64,
    pub change: Change,
}

impl Scenario {
    fn base(name: &'static str, family: Family) -> Scenario {
        let (white, slow) = match family {
            Family::Accuracy => (2.0, 0.7),
            Family::Latency => (10.0, 2.0),
        };
        Scenario {
            name,
            family,
            interval: 1,
            window_hours: 2,
            white_percentage: white,
            slow_percentage: slow,
            daily_percentage: 0.0,
            weekend_percentage: 0.0,
            change: Change::None,
        }
    }

    fn sparse(mut self) -> Scenario {
        self.interval = 20;
        self.window_hours = 6;
        self
    }

    fn daily(mut self, amplitude: f64) -> Scenario {
        self.daily_percentage = amplitude;
        self
    }

    fn weekend(mut self, dip: f64) -> Scenario {
        self.weekend_percentage = dip;
        self
    }

    fn change(mut self, change: Change) -> Scenario {
        self.change = change;
        self
    }

    pub fn samples_per_window(&self) -> i64 {
        i64::from(self.window_hours) * 60 / self.interval
    }

    pub fn definition(&self) -> MetricDefinition {
        match self.family {
            Family::Accuracy => Metric::Accuracy.default_definition(),
            Family::Latency => Metric::Latency.default_definition(),
        }
    }

    /// The detectors run on this scenario: the daily-baseline option only where there is
    /// a daily cycle.
    pub fn kinds(&self) -> Vec<Kind> {
        Kind::ALL
            .into_iter()
            .filter(|k| *k != Kind::ModelwatchDailyBaseline || self.daily_percentage > 0.0)
            .collect()
    }

    pub fn has_change(&self) -> bool {
        self.change != Change::None
    }

    pub fn change_description(&self) -> String {
        match self.change {
            Change::None => "none".to_owned(),
            Change::Step(p) => format!("step {p} %"),
            Change::Drift { percentage, hours } => format!("drift {percentage} % over {hours} h"),
        }
    }

    /// One stream and its change time (minutes since the start).
    pub fn generate(&self, rng: &mut Rng) -> (Vec<Point>, Option<i64>) {
        let change_at = self
            .has_change()
            .then(|| (8.5 * DAY_MIN as f64 + rng.uniform() * 0.5 * DAY_MIN as f64) as i64);
        let (level, sign) = match self.family {
            Family::Accuracy => (0.9, -1.0),
            Family::Latency => (120.0, 1.0),
        };
        let phi = (-(self.interval as f64) / 120.0).exp();
        let innovation = self.slow_percentage / 100.0 * (1.0 - phi * phi).sqrt();
        let mut slow = rng.normal() * self.slow_percentage / 100.0;
        let mut points = Vec::with_capacity((STREAM_DAYS * DAY_MIN / self.interval) as usize);
        // Day 0 is a Thursday: days 2 and 3 (and 9, 10) are the weekend, so checks on days
        // 8–10 cross a Friday → Saturday boundary whose previous week is in the history.
        let phase = rng.uniform() * std::f64::consts::TAU;
        let mut minute = 0;
        while minute < STREAM_DAYS * DAY_MIN {
            let day = minute / DAY_MIN;
            let season = self.daily_percentage / 100.0
                * (std::f64::consts::TAU * (minute % DAY_MIN) as f64 / DAY_MIN as f64 + phase)
                    .sin()
                + if matches!(day % 7, 2 | 3) {
                    self.weekend_percentage / 100.0
                } else {
                    0.0
                };
            let change = match (self.change, change_at) {
                (Change::Step(p), Some(at)) if minute >= at => p / 100.0,
                (Change::Drift { percentage, hours }, Some(at)) if minute >= at => {
                    percentage / 100.0 * ((minute - at) as f64 / (hours * 60.0)).min(1.0)
                }
                _ => 0.0,
            };
            slow = phi * slow + innovation * rng.normal();
            let mut value = level
                * (1.0
                    + sign * (season + change)
                    + slow
                    + self.white_percentage / 100.0 * rng.normal());
            if self.family == Family::Latency && rng.uniform() < 0.01 {
                value *= 1.5 + 1.5 * rng.uniform();
            }
            let value = match self.family {
                Family::Accuracy => value.clamp(0.0, 1.0),
                Family::Latency => value.max(0.0),
            };
            if let Ok(timestamp) = Timestamp::from_millis(minute * MINUTE_MS) {
                points.push(Point {
                    timestamp,
                    value,
                    dataset: None,
                });
            }
            minute += self.interval;
        }
        (points, change_at)
    }
}

/// The scenarios of the benchmark.
pub fn scenarios() -> Vec<Scenario> {
    use Family::*;
    vec![
        Scenario::base("noise, accuracy, dense", Accuracy),
        Scenario::base("noise, accuracy, sparse", Accuracy).sparse(),
        Scenario::base("noise, latency, dense", Latency),
        Scenario::base("noise, latency, sparse", Latency).sparse(),
        Scenario::base("daily season, accuracy, dense", Accuracy).daily(6.0),
        Scenario::base("daily season, latency, dense", Latency).daily(20.0),
        Scenario::base("weekly season, accuracy, dense", Accuracy).weekend(8.0),
        Scenario::base("weekly season, latency, sparse", Latency)
            .sparse()
            .weekend(25.0),
        Scenario::base("step 2 %, accuracy, dense", Accuracy).change(Change::Step(2.0)),
        Scenario::base("step 5 %, accuracy, dense", Accuracy).change(Change::Step(5.0)),
        Scenario::base("step 10 %, accuracy, dense", Accuracy).change(Change::Step(10.0)),
        Scenario::base("step 30 %, accuracy, dense", Accuracy).change(Change::Step(30.0)),
        Scenario::base("step 5 %, accuracy, sparse", Accuracy)
            .sparse()
            .change(Change::Step(5.0)),
        Scenario::base("step 10 %, accuracy, sparse", Accuracy)
            .sparse()
            .change(Change::Step(10.0)),
        Scenario::base("step 5 %, latency, dense", Latency).change(Change::Step(5.0)),
        Scenario::base("step 10 %, latency, dense", Latency).change(Change::Step(10.0)),
        Scenario::base("step 20 %, latency, sparse", Latency)
            .sparse()
            .change(Change::Step(20.0)),
        Scenario::base("drift 10 % in 24 h, accuracy, dense", Accuracy).change(Change::Drift {
            percentage: 10.0,
            hours: 24.0,
        }),
        Scenario::base("drift 20 % in 6 h, latency, dense", Latency).change(Change::Drift {
            percentage: 20.0,
            hours: 6.0,
        }),
        Scenario::base("step 10 % + daily season, accuracy", Accuracy)
            .daily(6.0)
            .change(Change::Step(10.0)),
        Scenario::base("step 10 % + weekly season, accuracy", Accuracy)
            .weekend(8.0)
            .change(Change::Step(10.0)),
    ]
}

/// What one detector did on one scenario in one mode.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub streams: usize,
    pub checks: u64,
    pub false_alarms: u64,
    pub detected: usize,
    pub delay_minutes_sum: i64,
}

impl Outcome {
    pub fn false_alarms_per_1000(&self) -> f64 {
        if self.checks == 0 {
            0.0
        } else {
            1000.0 * self.false_alarms as f64 / self.checks as f64
        }
    }

    pub fn detection_rate(&self) -> f64 {
        if self.streams == 0 {
            0.0
        } else {
            self.detected as f64 / self.streams as f64
        }
    }

    pub fn mean_delay_minutes(&self) -> Option<f64> {
        (self.detected > 0).then(|| self.delay_minutes_sum as f64 / self.detected as f64)
    }
}

/// Runs both detectors on `streams` streams of a scenario; `comparison_hours` `None` is the
/// seed's latest-value mode. Returns outcomes in the order of [`Scenario::kinds`].
pub fn run(
    scenario: &Scenario,
    comparison_hours: Option<u32>,
    streams: usize,
    seed: u64,
) -> Vec<Outcome> {
    let definition = scenario.definition();
    let mut runner = Runner::new(comparison_hours);
    let kinds = scenario.kinds();
    let mut outcomes = vec![Outcome::default(); kinds.len()];
    let check_every = scenario.interval.max(10);
    for stream in 0..streams {
        let mut rng = Rng::new(seed ^ (stream as u64).wrapping_mul(0xA24B_AED4_963E_E407));
        let (points, change_at) = scenario.generate(&mut rng);
        for (kind, outcome) in kinds.iter().zip(outcomes.iter_mut()) {
            outcome.streams += 1;
            let mut minute = CHECKS_FROM_DAY * DAY_MIN;
            while minute < STREAM_DAYS * DAY_MIN {
                let horizon_passed = change_at.is_some_and(|at| minute >= at + DAY_MIN);
                if horizon_passed {
                    break;
                }
                // "now" is just after the newest sample, so the sample at `minute` is seen.
                let now = Timestamp::from_millis(minute * MINUTE_MS + 1).unwrap_or(Timestamp::MAX);
                let fired = runner.degraded(*kind, &definition, &points, now);
                match change_at {
                    Some(at) if minute >= at => {
                        if fired {
                            outcome.detected += 1;
                            outcome.delay_minutes_sum += minute - at;
                            break;
                        }
                    }
                    _ => {
                        outcome.checks += 1;
                        outcome.false_alarms += u64::from(fired);
                    }
                }
                minute += check_every;
            }
        }
    }
    outcomes
}
