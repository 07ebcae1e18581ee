//! SQLite's one writer, taken in turn inside the process.
//!
//! SQLite lets one connection write at a time; a connection that finds the
//! lock taken sleeps in SQLite's busy handler, in steps of 1, 2, 5, 10, 15,
//! 20, 25 … 100 ms, and tries again. With the intake, the runner's finishes
//! and claims and the forwarder's claims and finishes all writing, an intake
//! commit could sleep through several steps while the lock was free most of
//! the time, and the intake's tail latency grew tenfold as soon as
//! forwarding ran. The gate queues the writers of one
//! pool before `BEGIN IMMEDIATE` instead, so a writer starts as soon as the
//! previous one is done, and it gives the intake's commits the next turn:
//! an HTTP request is waiting behind each of those. Background writers still
//! get every [`MAX_INTAKE_STREAK`]-th turn while they wait, so a busy intake
//! slows them but never stops them.
//!
//! Every write of the daemon while it serves is a
//! [`super::write_transaction`] and passes the gate: the intake's commits,
//! the runner's claims, finishes, releases and pruning, the forwarder's
//! claims, finishes and pauses, the reconcile writes, admin and CLI
//! operations (replay, discard, redelivery, pause and resume of a
//! destination) and the inspector's sessions; the relaxed ones
//! ([`super::relaxed_transaction`]) too, and the checkpoint thread's pass
//! that starts the WAL over (`checkpoint.rs`). Outside it are only the
//! connection's own set-up (`PRAGMA`s), migrations (before serving) and
//! `VACUUM INTO` of a backup (a read of this database); those, and any
//! other process writing to the file, meet SQLite's busy handler.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use diesel::sqlite::SqliteConnection;

use super::writer::Writer;

/// Whose write it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// The intake's commit: an HTTP request waits for it.
    Intake,
    /// Everything else: the runner, the forwarder, admin, pruning.
    Background,
}

/// Most intake turns in a row while a background writer waits.
pub(super) const MAX_INTAKE_STREAK: u32 = 4;

#[derive(Debug, Default)]
struct State {
    held: bool,
    intake_waiting: usize,
    background_waiting: usize,
    intake_streak: u32,
}

impl State {
    fn may_enter(&self, lane: Lane) -> bool {
        if self.held {
            return false;
        }
        let intake_first = self.intake_streak < MAX_INTAKE_STREAK;
        match lane {
            Lane::Intake => self.background_waiting == 0 || intake_first,
            Lane::Background => self.intake_waiting == 0 || !intake_first,
        }
    }

    fn waiting(&mut self, lane: Lane) -> &mut usize {
        match lane {
            Lane::Intake => &mut self.intake_waiting,
            Lane::Background => &mut self.background_waiting,
        }
    }
}

/// The turn of one pool's writers (one per SQLite pool; Postgres has none).
#[derive(Debug)]
pub struct WriteGate {
    state: Mutex<State>,
    changed: Condvar,
    /// The longest wait for a turn: the pool's busy timeout.
    timeout: Duration,
    /// Turns given so far.
    turns: AtomicU64,
    /// The connection the turns write on (none: the writer's own).
    writer: Option<Writer>,
}

/// The gate stayed shut for the whole wait (the same limit as SQLite's busy
/// timeout, so a stuck writer fails here as it would have there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("database is locked: no turn to write within {0:?}")]
pub struct Busy(pub Duration);

impl WriteGate {
    pub fn new(timeout: Duration) -> Self {
        WriteGate {
            state: Mutex::default(),
            changed: Condvar::new(),
            timeout,
            turns: AtomicU64::new(0),
            writer: None,
        }
    }

    /// A gate whose turns all write on `writer`'s one connection.
    pub fn with_writer(timeout: Duration, writer: Writer) -> Self {
        WriteGate {
            writer: Some(writer),
            ..WriteGate::new(timeout)
        }
    }

    /// Runs a turn's writes `f` on the gate's writer connection, or on
    /// `own` when the gate has none. Call it holding a [`Turn`].
    pub fn write<T, E>(
        &self,
        own: &mut SqliteConnection,
        f: impl FnOnce(&mut SqliteConnection) -> Result<T, E>,
    ) -> Result<T, E> {
        match &self.writer {
            Some(writer) => writer.write(own, f),
            None => f(own),
        }
    }

    /// How many turns the gate has given (tests: whether a write passed it).
    pub fn turns(&self) -> u64 {
        self.turns.load(Ordering::Relaxed)
    }

    /// Waits for this lane's turn (at most the gate's timeout); the turn ends
    /// when the returned guard is dropped.
    pub fn enter(&self, lane: Lane) -> Result<Turn<'_>, Busy> {
        let timeout = self.timeout;
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        *state.waiting(lane) += 1;
        while !state.may_enter(lane) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                *state.waiting(lane) -= 1;
                // A waiter fewer may let the other lane in.
                self.changed.notify_all();
                return Err(Busy(timeout));
            }
            state = match self.changed.wait_timeout(state, left) {
                Ok((state, _)) => state,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        *state.waiting(lane) -= 1;
        state.held = true;
        self.turns.fetch_add(1, Ordering::Relaxed);
        state.intake_streak = match lane {
            Lane::Intake => state.intake_streak.saturating_add(1),
            Lane::Background => 0,
        };
        Ok(Turn {
            gate: self,
            lane,
            since: Instant::now(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is a few counters, consistent after every statement: a
        // panic elsewhere while holding the lock leaves it usable.
        match self.state.lock() {
            Ok(state) => state,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// One writer's turn; the next writer goes when it is dropped.
#[derive(Debug)]
pub struct Turn<'a> {
    gate: &'a WriteGate,
    lane: Lane,
    since: Instant,
}

/// A turn held longer is logged (debug): every other writer waited for it.
pub(super) const SLOW_TURN: Duration = Duration::from_millis(20);

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.gate.lock().held = false;
        self.gate.changed.notify_all();
        let held = self.since.elapsed();
        if held >= SLOW_TURN {
            tracing::debug!(
                lane = ?self.lane,
                held_ms = held.as_millis(),
                "slow SQLite write turn: every other writer waited"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::sync::Arc;

    const LONG: Duration = Duration::from_secs(30);

    /// Waits until `n` writers of `lane` are queued at the gate.
    fn until_waiting(gate: &WriteGate, lane: Lane, n: usize) {
        let deadline = Instant::now() + LONG;
        while *gate.lock().waiting(lane) < n {
            assert!(
                Instant::now() < deadline,
                "{n} {lane:?} writers never queued"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn one_writer_at_a_time_and_a_timeout_says_busy() {
        let gate = WriteGate::new(Duration::from_millis(20));
        let turn = gate.enter(Lane::Background).unwrap();
        assert_eq!(
            gate.enter(Lane::Intake).err(),
            Some(Busy(Duration::from_millis(20)))
        );
        assert_eq!(
            gate.lock().intake_waiting,
            0,
            "a writer that gave up is not counted"
        );
        drop(turn);
        assert!(gate.enter(Lane::Intake).is_ok());
    }

    /// With background writers and an intake commit all queued, the intake
    /// goes next; after MAX_INTAKE_STREAK intake turns in a row a waiting
    /// background writer goes before the next intake commit.
    #[test]
    fn the_intake_goes_first_but_background_writers_are_not_starved() {
        let gate = Arc::new(WriteGate::new(LONG));
        let first = gate.enter(Lane::Background).unwrap();
        let (order_tx, order) = mpsc::channel();
        let spawn = |lane: Lane, name: String| {
            let (gate, order_tx) = (Arc::clone(&gate), order_tx.clone());
            std::thread::spawn(move || {
                let _turn = gate.enter(lane).unwrap();
                order_tx.send(name).unwrap();
            })
        };
        let background = spawn(Lane::Background, "background".to_owned());
        until_waiting(&gate, Lane::Background, 1);
        let intakes: Vec<_> = (0..MAX_INTAKE_STREAK + 2)
            .map(|n| {
                let handle = spawn(Lane::Intake, format!("intake {n}"));
                until_waiting(&gate, Lane::Intake, n as usize + 1);
                handle
            })
            .collect();
        drop(first);
        background.join().unwrap();
        for handle in intakes {
            handle.join().unwrap();
        }
        let order: Vec<String> = order.try_iter().collect();
        let at = order.iter().position(|n| n == "background").unwrap();
        assert_eq!(
            at, MAX_INTAKE_STREAK as usize,
            "the background writer goes after {MAX_INTAKE_STREAK} intake turns: {order:?}"
        );
        assert!(
            order[..at].iter().all(|n| n.starts_with("intake")),
            "{order:?}"
        );
    }
}
