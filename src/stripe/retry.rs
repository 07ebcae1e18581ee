//! When the Stripe client tries a request again (as Stripe's SDKs do):
//! `Stripe-Should-Retry` overrides everything; otherwise 409, 429, ≥500,
//! connection errors and time-outs are retried, with backoff 0.5 s doubling
//! to 5 s and jitter; a `Retry-After` header is honoured (up to a minute).

use std::time::Duration;

pub(crate) const INITIAL: Duration = Duration::from_millis(500);
pub(crate) const MAX: Duration = Duration::from_secs(5);
/// The longest `Retry-After` we wait for inside one call; longer hints go
/// back to the job runner, which reschedules the event.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// `status`: None for a connection error or time-out. `retries_done`: how
/// many retries already happened. `jitter` in [0, 1]. Returns how long to
/// wait before the next try, or None to stop.
pub(crate) fn retry_delay(
    status: Option<u16>,
    should_retry: Option<bool>,
    retry_after: Option<Duration>,
    retries_done: u32,
    max_retries: u32,
    jitter: f64,
) -> Option<Duration> {
    if retries_done >= max_retries {
        return None;
    }
    let retryable = match should_retry {
        Some(decided) => decided,
        None => match status {
            None => true,
            Some(409 | 429) => true,
            Some(s) => s >= 500,
        },
    };
    if !retryable {
        return None;
    }
    let backoff = INITIAL
        .saturating_mul(1u32 << retries_done.min(16))
        .min(MAX);
    let backoff = backoff
        .mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
        .max(INITIAL);
    Some(match retry_after {
        Some(hint) if hint <= MAX_RETRY_AFTER => backoff.max(hint),
        Some(_) => return None,
        None => backoff,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_retry_header_wins() {
        assert_eq!(retry_delay(Some(500), Some(false), None, 0, 2, 1.0), None);
        assert!(retry_delay(Some(400), Some(true), None, 0, 2, 1.0).is_some());
    }

    #[test]
    fn retryable_statuses_and_errors() {
        for status in [None, Some(409), Some(429), Some(500), Some(503)] {
            assert!(
                retry_delay(status, None, None, 0, 2, 1.0).is_some(),
                "{status:?}"
            );
        }
        for status in [Some(400), Some(401), Some(402), Some(403), Some(404)] {
            assert_eq!(
                retry_delay(status, None, None, 0, 2, 1.0),
                None,
                "{status:?}"
            );
        }
    }

    #[test]
    fn backoff_doubles_to_five_seconds_and_stops_at_the_budget() {
        assert_eq!(
            retry_delay(None, None, None, 0, 9, 1.0),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            retry_delay(None, None, None, 1, 9, 1.0),
            Some(Duration::from_secs(1))
        );
        assert_eq!(retry_delay(None, None, None, 6, 9, 1.0), Some(MAX));
        assert_eq!(retry_delay(None, None, None, 2, 2, 1.0), None);
        let jittered = retry_delay(None, None, None, 3, 9, 0.0).expect("retry");
        assert!(jittered >= Duration::from_secs(2) && jittered <= Duration::from_secs(4));
    }

    #[test]
    fn retry_after_is_honoured_up_to_a_minute() {
        assert_eq!(
            retry_delay(Some(429), None, Some(Duration::from_secs(3)), 0, 2, 1.0),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            retry_delay(Some(429), None, Some(Duration::from_secs(600)), 0, 2, 1.0),
            None
        );
    }
}
