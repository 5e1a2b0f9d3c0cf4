//! The delivery decisions, pure and with the clock and the randomness passed in:
//! exponential back-off with jitter, the per-channel rate limit, and how a batch of due
//! notifications for one channel becomes messages (single ones, or one digest).

use std::collections::VecDeque;
use std::time::Duration;

use modelwatch_core::Timestamp;

use crate::config::DeliveryPolicy;
use crate::error::DeliveryError;

/// How a claim ends for the outbox: the store's own type, so what the worker decides is
/// what the store records (`Failed` is a real failure: refused, or retries exhausted;
/// `Skipped` held back on purpose; only a result that says a send was made counts an
/// attempt).
pub use modelwatch_store::alerts::DeliveryResult as Outcome;

/// The delay before retry number `attempt` (1 = the first retry): `initial · 2^(attempt-1)`
/// capped at `max`, of which the upper half is scaled by `jitter` ∈ [0, 1) ("equal
/// jitter"), so a burst of failures does not come back as a burst while the delay still
/// grows.
pub fn backoff(policy: &DeliveryPolicy, attempt: u32, jitter: f64) -> Duration {
    let exponent = attempt.saturating_sub(1).min(30);
    let base = policy
        .initial_backoff
        .saturating_mul(1u32 << exponent)
        .min(policy.max_backoff);
    let half = base / 2;
    half + half.mul_f64(jitter.clamp(0.0, 1.0))
}

/// What to record after send number `attempts` (this one included) failed with `error`.
pub fn after_failure(
    policy: &DeliveryPolicy,
    attempts: u32,
    error: &DeliveryError,
    now: Timestamp,
    jitter: f64,
) -> Outcome {
    let error_text = error.to_string();
    let sent = error.was_sent();
    if !error.is_retryable() {
        return Outcome::Failed {
            error: format!("{error_text} (not retried)"),
            sent,
        };
    }
    if attempts >= policy.max_attempts {
        return Outcome::Failed {
            error: format!("{error_text} (gave up after {attempts} attempts)"),
            sent,
        };
    }
    Outcome::Retry {
        error: error_text,
        retry_at: now.saturating_add(backoff(policy, attempts, jitter)),
        sent,
    }
}

/// A sliding one-minute window of messages sent to one channel.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    per_minute: u32,
    sent: VecDeque<Timestamp>,
}

const WINDOW: Duration = Duration::from_secs(60);

impl RateLimiter {
    pub fn new(per_minute: u32) -> Self {
        RateLimiter {
            per_minute: per_minute.max(1),
            sent: VecDeque::new(),
        }
    }

    fn forget(&mut self, now: Timestamp) {
        while let Some(&oldest) = self.sent.front() {
            if oldest.saturating_add(WINDOW) <= now {
                self.sent.pop_front();
            } else {
                break;
            }
        }
    }

    /// Messages that may go out at `now`.
    pub fn available(&mut self, now: Timestamp) -> u32 {
        self.forget(now);
        let used = u32::try_from(self.sent.len()).unwrap_or(u32::MAX);
        self.per_minute.saturating_sub(used)
    }

    pub fn record(&mut self, now: Timestamp) {
        self.sent.push_back(now);
    }

    /// When the next message may go out.
    pub fn next_free(&mut self, now: Timestamp) -> Timestamp {
        if self.available(now) > 0 {
            return now;
        }
        self.sent
            .front()
            .map(|oldest| oldest.saturating_add(WINDOW))
            .unwrap_or(now)
    }
}

/// How one channel's due notifications (by index) go out.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Each inner list is one message: one element is a single notification, several a
    /// digest.
    pub messages: Vec<Vec<usize>>,
    /// Held back by the rate limit; retried when the window frees up.
    pub deferred: Vec<usize>,
}

/// Plans `due` notifications of one channel with `available` messages left in its rate
/// window. A channel that `digests` folds them into one message when there are at least
/// `digest_after` (0: never by count) or when there are more than the window allows —
/// one message listing everything beats dropping or delaying most of it. Other channels
/// send one message each, up to the limit, and defer the rest.
pub fn plan(due: usize, available: u32, digests: bool, digest_after: usize) -> Plan {
    let available = usize::try_from(available).unwrap_or(usize::MAX);
    if due == 0 {
        return Plan::default();
    }
    if available == 0 {
        return Plan {
            messages: Vec::new(),
            deferred: (0..due).collect(),
        };
    }
    let by_count = digest_after > 0 && due >= digest_after.max(2);
    if digests && (by_count || due > available) {
        return Plan {
            messages: vec![(0..due).collect()],
            deferred: Vec::new(),
        };
    }
    let sent = due.min(available);
    Plan {
        messages: (0..sent).map(|i| vec![i]).collect(),
        deferred: (sent..due).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_millis(1_700_000_000_000 + seconds * 1000).expect("time")
    }

    fn policy() -> DeliveryPolicy {
        DeliveryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(60),
            ..DeliveryPolicy::default()
        }
    }

    #[test]
    fn backoff_doubles_is_capped_and_jitter_stays_in_the_upper_half() {
        let p = policy();
        assert_eq!(backoff(&p, 1, 0.0), Duration::from_secs(5));
        assert_eq!(backoff(&p, 1, 0.999), Duration::from_secs_f64(9.995));
        assert_eq!(backoff(&p, 2, 0.0), Duration::from_secs(10));
        assert_eq!(backoff(&p, 3, 0.0), Duration::from_secs(20));
        assert_eq!(backoff(&p, 4, 0.0), Duration::from_secs(30));
        assert_eq!(backoff(&p, 40, 1.0), Duration::from_secs(60));
    }

    #[test]
    fn retryable_errors_retry_until_the_limit_then_fail_with_the_last_error() {
        let p = policy();
        let down = DeliveryError::Connect("connection refused".into());
        assert_eq!(
            after_failure(&p, 1, &down, at(0), 0.0),
            Outcome::Retry {
                error: "cannot reach the receiver: connection refused".into(),
                retry_at: at(5),
                sent: true,
            }
        );
        let Outcome::Failed { error, sent: true } = after_failure(&p, 4, &down, at(0), 0.0) else {
            panic!("fails at the limit")
        };
        assert!(error.contains("connection refused") && error.contains("4 attempts"));
        let refused = DeliveryError::status(400, "invalid_payload");
        assert!(matches!(
            after_failure(&p, 1, &refused, at(0), 0.0),
            Outcome::Failed { .. }
        ));
    }

    #[test]
    fn rate_limiter_frees_a_slot_a_minute_after_each_send() {
        let mut limiter = RateLimiter::new(2);
        assert_eq!(limiter.available(at(0)), 2);
        limiter.record(at(0));
        limiter.record(at(10));
        assert_eq!(limiter.available(at(30)), 0);
        assert_eq!(limiter.next_free(at(30)), at(60));
        assert_eq!(limiter.available(at(60)), 1);
        assert_eq!(limiter.available(at(70)), 2);
    }

    #[test]
    fn many_due_together_become_one_digest() {
        assert_eq!(
            plan(5, 30, true, 3),
            Plan {
                messages: vec![vec![0, 1, 2, 3, 4]],
                deferred: vec![]
            }
        );
        assert_eq!(plan(2, 30, true, 3).messages, vec![vec![0], vec![1]]);
    }

    #[test]
    fn over_the_rate_limit_digests_or_defers() {
        assert_eq!(plan(2, 1, true, 0).messages, vec![vec![0, 1]]);
        assert_eq!(
            plan(3, 2, false, 3),
            Plan {
                messages: vec![vec![0], vec![1]],
                deferred: vec![2]
            }
        );
        assert_eq!(plan(3, 0, true, 3).deferred, vec![0, 1, 2]);
        assert_eq!(plan(0, 5, true, 3), Plan::default());
    }
}
