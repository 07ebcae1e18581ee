//! When to try a failed event again: exponential backoff with jitter, and a
//! retry-after hint (e.g. Stripe's 429) that is honoured as a floor.

use std::time::Duration;

/// `attempt` is the number of the attempt that just failed (1 = the first).
///
/// The delay is `base × 2^(attempt-1)`, capped at `max`, with "equal jitter"
/// (half fixed, half random) so that a burst of failures spreads out; a
/// `retry_after` hint raises the delay to at least that long.
pub(crate) fn retry_delay(
    attempt: u32,
    base: Duration,
    max: Duration,
    retry_after: Option<Duration>,
    jitter: f64,
) -> Duration {
    let exp = attempt.saturating_sub(1).min(32);
    let full = base.saturating_mul(1u32 << exp.min(31)).min(max);
    let half = full / 2;
    let jittered = half + half.mul_f64(jitter.clamp(0.0, 1.0));
    match retry_after {
        Some(hint) => jittered.max(hint.min(max)),
        None => jittered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_secs(2);
    const MAX: Duration = Duration::from_secs(3600);

    #[test]
    fn doubles_then_caps() {
        assert_eq!(retry_delay(1, BASE, MAX, None, 1.0), Duration::from_secs(2));
        assert_eq!(retry_delay(2, BASE, MAX, None, 1.0), Duration::from_secs(4));
        assert_eq!(
            retry_delay(5, BASE, MAX, None, 1.0),
            Duration::from_secs(32)
        );
        assert_eq!(retry_delay(40, BASE, MAX, None, 1.0), MAX);
    }

    #[test]
    fn jitter_stays_within_half_and_full() {
        for j in [0.0, 0.3, 0.99] {
            let d = retry_delay(3, BASE, MAX, None, j);
            assert!(
                d >= Duration::from_secs(4) && d <= Duration::from_secs(8),
                "{d:?}"
            );
        }
    }

    #[test]
    fn retry_after_is_a_floor_but_never_beyond_the_cap() {
        let hint = Some(Duration::from_secs(30));
        assert_eq!(
            retry_delay(1, BASE, MAX, hint, 0.0),
            Duration::from_secs(30)
        );
        assert_eq!(retry_delay(12, BASE, MAX, hint, 1.0), MAX);
        let huge = Some(Duration::from_secs(10 * 3600));
        assert_eq!(retry_delay(1, BASE, MAX, huge, 0.0), MAX);
    }
}
