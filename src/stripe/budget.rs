//! The client's request budget: how many requests a second it may send now,
//! how long Stripe takes to answer, and so how many requests should be in
//! flight to use the budget (Little's law: in flight = rate × latency).
//!
//! - **Pacing.** One slot every 1/rate seconds, handed out in the order the
//!   callers came (a caller reserves the next free slot and sleeps until
//!   it; burst 1), and no second holds more sends than the rate (a window
//!   over the last sends: callers that woke late do not catch up in a
//!   burst). So the rate in use is never exceeded, however many callers
//!   wait, in any one second. Live calls (the runner's re-fetches) go first: a
//!   background call (sweep, catch-up) reserves a slot only while no live
//!   call is waiting for one.
//! - **429.** Stripe's rate limit answered: the rate in use halves (not
//!   below an eighth of the budget, [`LOWEST_SHARE`], nor [`MIN_RATE`]),
//!   once per round (a 429 to a request sent before
//!   the last cut says nothing new); it stays there for [`HOLD`] after the
//!   last cut, then climbs back linearly to the budget over [`RECOVER`].
//! - **Latency.** An average of each answered attempt's time, weighted 1/8
//!   to the newest ([`LATENCY_WEIGHT`]).
//!
//! The rate in use and the latency are shown as metrics and in the
//! inspector's health strip ([`Snapshot`]); the job runner sizes the
//! groups it runs at once by [`Budget::in_flight_wanted`].
//!
//! Why not `governor` (which the admin login's limiter uses): its quota is
//! fixed when the limiter is built, so lowering the rate after a 429 and
//! climbing back would mean replacing the limiter and losing what it
//! counted; and it has no order among waiters, so background calls could
//! not be made to let live ones go first. Both are the point here.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::Priority;

/// After a 429, the rate stays lowered this long (from the last cut)...
pub(crate) const HOLD: Duration = Duration::from_secs(60);
/// ...then climbs back to the budget over this long.
pub(crate) const RECOVER: Duration = Duration::from_secs(120);
/// The rate in use never goes below this (requests/s)...
pub(crate) const MIN_RATE: f64 = 1.0;
/// ...nor below this share of the budget (three halvings): 429s that go on
/// below it are another client's doing, and the runner's own retry backoff
/// spaces the events that keep failing.
pub(crate) const LOWEST_SHARE: f64 = 0.125;
/// The newest answer's weight in the latency average.
pub(crate) const LATENCY_WEIGHT: f64 = 0.125;
/// The latency assumed before the first answer.
pub(crate) const ASSUMED_LATENCY: Duration = Duration::from_millis(500);
/// In flight wanted = rate × (latency + [`AROUND`]) × this, plus
/// [`IN_FLIGHT_SPARE`]: answers slower than the average, and the time
/// around a request (the database turn that gives a fetch its place in the
/// order, the finish being queued), would otherwise leave slots unused.
pub(crate) const HEADROOM: f64 = 1.25;
/// A group's time around its request, besides the latency (a loaded
/// 2-core machine, docs/performance.md).
pub(crate) const AROUND: Duration = Duration::from_millis(50);
pub(crate) const IN_FLIGHT_SPARE: usize = 2;

/// The figures shown (metrics, health strip).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Snapshot {
    /// The configured budget (requests/s).
    pub budget: f64,
    /// The rate in use now (requests/s): the budget, or less after a 429.
    pub in_use: f64,
    /// Average answer time (seconds); `None` before the first answer.
    pub latency_secs: Option<f64>,
    /// Requests sent and not yet answered.
    pub in_flight: usize,
    /// Requests the budget and latency call for (see [`Budget::in_flight_wanted`]).
    pub in_flight_wanted: usize,
    /// Seconds since the last cut by a 429; `None` if none happened.
    pub since_rate_limited_secs: Option<f64>,
}

/// A 429's cut: the rate it set and when.
#[derive(Debug, Clone, Copy)]
struct Cut {
    to: f64,
    at: Instant,
}

#[derive(Debug)]
struct State {
    /// The next free slot.
    next_slot: Instant,
    /// When the last requests were let go (at most the budget's worth).
    sent: VecDeque<Instant>,
    cut: Option<Cut>,
    latency_secs: Option<f64>,
}

#[derive(Debug)]
pub(crate) struct Budget {
    budget: f64,
    state: Mutex<State>,
    live_waiting: AtomicUsize,
    in_flight: AtomicUsize,
}

/// Counts itself in an [`AtomicUsize`] while it lives (also when the future
/// holding it is dropped).
pub(super) struct Counted<'a>(&'a AtomicUsize);

impl<'a> Counted<'a> {
    fn new(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Counted(counter)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Budget {
    /// A budget of `requests_per_sec` (at least [`MIN_RATE`]).
    pub(crate) fn new(requests_per_sec: u32) -> Budget {
        Budget {
            budget: f64::from(requests_per_sec).max(MIN_RATE),
            state: Mutex::new(State {
                next_slot: Instant::now(),
                sent: VecDeque::new(),
                cut: None,
                latency_secs: None,
            }),
            live_waiting: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The rate in use at `now` (requests/s).
    pub(crate) fn rate_at(&self, now: Instant) -> f64 {
        rate(self.budget, self.state().cut, now)
    }

    /// Reserves the next slot at the rate in use; returns when it is.
    fn reserve(&self, now: Instant) -> Instant {
        let mut state = self.state();
        let rate = rate(self.budget, state.cut, now);
        let slot = state.next_slot.max(now);
        state.next_slot = slot + Duration::from_secs_f64(1.0 / rate);
        slot
    }

    /// Lets the request go at `now` if the second before it holds fewer
    /// sends than the rate in use; else returns when it may.
    fn send_at(&self, now: Instant) -> Result<(), Instant> {
        let mut state = self.state();
        let per_second = per_second(rate(self.budget, state.cut, now));
        if state.sent.len() >= per_second {
            let first_in_window = state.sent[state.sent.len() - per_second];
            let free_at = first_in_window + WINDOW;
            if now < free_at {
                return Err(free_at);
            }
        }
        state.sent.push_back(now);
        let keep = per_second_cap(self.budget);
        while state.sent.len() > keep {
            state.sent.pop_front();
        }
        Ok(())
    }

    /// Waits for this caller's slot (live calls first).
    pub(super) async fn turn(&self, priority: Priority) {
        let _waiting = match priority {
            Priority::Live => Some(Counted::new(&self.live_waiting)),
            Priority::Background => {
                while self.live_waiting.load(Ordering::SeqCst) > 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                None
            }
        };
        let slot = self.reserve(Instant::now());
        tokio::time::sleep_until(slot.into()).await;
        while let Err(earliest) = self.send_at(Instant::now()) {
            tokio::time::sleep_until(earliest.into()).await;
        }
    }

    /// Counts a request in flight while the guard lives.
    pub(super) fn sending(&self) -> Counted<'_> {
        Counted::new(&self.in_flight)
    }

    /// Stripe answered 429 to a request sent at `sent`: halves the rate in
    /// use, unless a cut came after that request was sent. Returns whether
    /// it cut.
    pub(crate) fn rate_limited(&self, sent: Instant, now: Instant) -> bool {
        let mut state = self.state();
        if state.cut.is_some_and(|cut| sent < cut.at) {
            return false;
        }
        let floor = (self.budget * LOWEST_SHARE).max(MIN_RATE);
        let to = (rate(self.budget, state.cut, now) / 2.0).max(floor);
        state.cut = Some(Cut { to, at: now });
        // Slots reserved at the old rate stay; the next one waits a full
        // interval of the new rate.
        state.next_slot = state.next_slot.max(now + Duration::from_secs_f64(1.0 / to));
        true
    }

    /// An attempt was answered (or timed out) after `took`.
    pub(crate) fn answered(&self, took: Duration) {
        let mut state = self.state();
        let took = took.as_secs_f64();
        state.latency_secs = Some(match state.latency_secs {
            None => took,
            Some(avg) => avg + LATENCY_WEIGHT * (took - avg),
        });
    }

    /// Requests that should be in flight to use the rate in use at the
    /// latency seen (Little's law, with [`HEADROOM`] and
    /// [`IN_FLIGHT_SPARE`]).
    pub(crate) fn in_flight_wanted(&self, now: Instant) -> usize {
        let state = self.state();
        let rate = rate(self.budget, state.cut, now);
        in_flight_for(rate, state.latency_secs)
    }

    pub(crate) fn snapshot(&self, now: Instant) -> Snapshot {
        let state = self.state();
        let in_use = rate(self.budget, state.cut, now);
        Snapshot {
            budget: self.budget,
            in_use,
            latency_secs: state.latency_secs,
            in_flight: self.in_flight.load(Ordering::SeqCst),
            in_flight_wanted: in_flight_for(in_use, state.latency_secs),
            since_rate_limited_secs: state
                .cut
                .map(|cut| now.saturating_duration_since(cut.at).as_secs_f64()),
        }
    }
}

/// The window no more than the rate's worth of sends may fall in.
const WINDOW: Duration = Duration::from_secs(1);

/// Sends a window may hold at `rate` (whole requests, at least one).
fn per_second(rate: f64) -> usize {
    (rate.floor() as usize).max(1)
}

/// The sends kept: a window's worth at the full budget (bounded, for the
/// benches' budgets of 100,000/s).
fn per_second_cap(budget: f64) -> usize {
    per_second(budget.min(1e6))
}

fn in_flight_for(rate: f64, latency_secs: Option<f64>) -> usize {
    let latency = latency_secs.unwrap_or(ASSUMED_LATENCY.as_secs_f64());
    let wanted = (rate * (latency + AROUND.as_secs_f64()) * HEADROOM).ceil();
    // Bounded: a rate of 100,000/s (benches) must not overflow.
    (wanted.clamp(0.0, 1e6) as usize).saturating_add(IN_FLIGHT_SPARE)
}

/// The rate in use at `now`: the budget, or after a cut the cut's rate for
/// [`HOLD`], then a straight line back to the budget over [`RECOVER`].
fn rate(budget: f64, cut: Option<Cut>, now: Instant) -> f64 {
    let Some(cut) = cut else {
        return budget;
    };
    let since = now.saturating_duration_since(cut.at);
    let Some(recovering) = since.checked_sub(HOLD) else {
        return cut.to;
    };
    let part = (recovering.as_secs_f64() / RECOVER.as_secs_f64()).min(1.0);
    cut.to + (budget - cut.to) * part
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_429_halves_the_rate_once_per_round_holds_then_recovers() {
        let budget = Budget::new(80);
        let t0 = Instant::now();
        assert_eq!(budget.rate_at(t0), 80.0);
        let sent = t0;
        let t1 = t0 + Duration::from_millis(300);
        assert!(budget.rate_limited(sent, t1));
        assert_eq!(budget.rate_at(t1), 40.0);
        // Other requests of the same round answered 429 too: no second cut.
        assert!(!budget.rate_limited(sent + Duration::from_millis(10), t1));
        assert_eq!(budget.rate_at(t1), 40.0);
        // A request sent after the cut and limited again: halved again.
        let t2 = t1 + Duration::from_millis(500);
        assert!(budget.rate_limited(t1 + Duration::from_millis(1), t2));
        assert_eq!(budget.rate_at(t2), 20.0);
        // Held for a minute after the last cut...
        assert_eq!(budget.rate_at(t2 + HOLD), 20.0);
        // ...then halfway back after half the recovery...
        let half = budget.rate_at(t2 + HOLD + RECOVER / 2);
        assert!((half - 50.0).abs() < 1e-9, "{half}");
        // ...and the whole budget after it.
        assert_eq!(budget.rate_at(t2 + HOLD + RECOVER), 80.0);
        assert_eq!(budget.rate_at(t2 + HOLD + RECOVER * 3), 80.0);
    }

    #[test]
    fn the_rate_never_goes_below_an_eighth_of_the_budget_nor_one_a_second() {
        for (configured, lowest) in [(80, 10.0), (4, MIN_RATE)] {
            let budget = Budget::new(configured);
            let mut now = Instant::now();
            for _ in 0..10 {
                let sent = now;
                now += Duration::from_millis(100);
                budget.rate_limited(sent, now);
            }
            assert_eq!(budget.rate_at(now), lowest, "{configured}");
        }
    }

    #[test]
    fn slots_are_spaced_by_the_rate_in_use() {
        let budget = Budget::new(10);
        let now = Instant::now();
        let slots: Vec<Instant> = (0..5).map(|_| budget.reserve(now)).collect();
        for pair in slots.windows(2) {
            assert_eq!(pair[1] - pair[0], Duration::from_millis(100));
        }
        // After a 429 the next slot waits a full interval of the new rate.
        let later = slots[4] + Duration::from_millis(100);
        budget.rate_limited(now, later);
        let next = budget.reserve(later);
        assert!(
            next >= later + Duration::from_millis(200),
            "{:?}",
            next - later
        );
    }

    #[test]
    fn late_callers_do_not_put_more_than_the_rate_in_one_second() {
        let budget = Budget::new(3);
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        // Slots at 0, 333 and 667 ms; the first caller woke 200 ms late.
        assert_eq!(budget.send_at(ms(200)), Ok(()));
        assert_eq!(budget.send_at(ms(333)), Ok(()));
        assert_eq!(budget.send_at(ms(667)), Ok(()));
        // The slot of 1,000 ms would make four in the second from 200 ms.
        assert_eq!(budget.send_at(ms(1000)), Err(ms(1200)));
        assert_eq!(budget.send_at(ms(1200)), Ok(()));
        // After a 429 (3 → 1.5/s): one a second.
        budget.rate_limited(ms(1200), ms(1300));
        assert_eq!(budget.send_at(ms(1400)), Err(ms(2200)));
    }

    #[tokio::test]
    async fn a_background_call_waits_while_a_live_one_does() {
        let budget = std::sync::Arc::new(Budget::new(10));
        let order = std::sync::Arc::new(Mutex::new(Vec::new()));
        let call = |priority: Priority, name: &'static str| {
            let (budget, order) = (budget.clone(), order.clone());
            tokio::spawn(async move {
                budget.turn(priority).await;
                order
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(name);
            })
        };
        // Three live calls queue (100 ms apart); a background call that
        // comes meanwhile goes after all of them.
        let live: Vec<_> = (0..3).map(|_| call(Priority::Live, "live")).collect();
        tokio::task::yield_now().await;
        let background = call(Priority::Background, "background");
        for task in live {
            task.await.unwrap_or_default();
        }
        background.await.unwrap_or_default();
        let order = order.lock().unwrap_or_else(PoisonError::into_inner).clone();
        assert_eq!(order, ["live", "live", "live", "background"]);
    }

    #[test]
    fn in_flight_follows_rate_times_latency() {
        let budget = Budget::new(80);
        let now = Instant::now();
        // Before any answer: the assumed latency (80/s × 0.55 s × 1.25).
        assert_eq!(budget.in_flight_wanted(now), 55 + IN_FLIGHT_SPARE);
        budget.answered(Duration::from_millis(250));
        // 80/s × (0.25 s + 0.05 s) × 1.25 = 30.
        assert_eq!(budget.in_flight_wanted(now), 30 + IN_FLIGHT_SPARE);
        // The average moves 1/8 of the way to a new answer.
        budget.answered(Duration::from_millis(1250));
        let latency = budget.snapshot(now).latency_secs.unwrap_or_default();
        assert!((latency - 0.375).abs() < 1e-9, "{latency}");
        // A 429 halves what is wanted with the rate.
        budget.rate_limited(now, now);
        assert_eq!(
            budget.in_flight_wanted(now),
            (40.0_f64 * (0.375 + 0.05) * HEADROOM).ceil() as usize + IN_FLIGHT_SPARE
        );
        let huge = Budget::new(u32::MAX);
        assert!(huge.in_flight_wanted(now) >= 1_000_000);
    }
}
