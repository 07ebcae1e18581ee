//! SQLite's WAL checkpoints, off the writers' path.
//!
//! By default SQLite checkpoints when a COMMIT leaves the WAL longer than
//! 1,000 pages: the committing connection copies the WAL into the database
//! file and fsyncs it before its COMMIT returns — while that writer still
//! holds its turn at the [`WriteGate`], so the intake's next commit waited
//! for it (the forwarder's and the runner's writes make the WAL grow several
//! times faster than the intake alone). Pooled connections turn that off
//! ([`POOLED_CONNECTION`]); one thread per store checkpoints instead, on its
//! own connection, every [`INTERVAL`]. A PASSIVE checkpoint runs beside the
//! writers, not in their way.
//!
//! SQLite starts the WAL over (rather than appending) only after a
//! checkpoint that reached its end, and one that runs while writers go on
//! rarely does: under steady writes the file would grow without end (and
//! every commit would extend it, a slower fsync than rewriting in place).
//! So when the WAL is longer than [`RESTART_FRAMES`], the thread takes one
//! background turn at the gate and checkpoints again: only the frames
//! written during the first pass are left to copy, no writer comes in
//! between, and the next writer starts the WAL from its beginning
//! (`journal_size_limit` then trims the file).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use diesel::sql_types::Integer;
use diesel::sqlite::SqliteConnection;
use diesel::{QueryableByName, RunQueryDsl};

use super::gate::{Lane, WriteGate};

/// Set on every pooled SQLite connection: no checkpoint inside a COMMIT;
/// a WAL that was started over is trimmed to 64 MiB.
pub(super) const POOLED_CONNECTION: &str =
    "PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = 67108864";

/// How often the checkpoint thread copies the WAL into the database. Each
/// pass ends with an fsync of the database file, which the intake's WAL
/// fsyncs wait behind on the same disk: many small ones hurt its commits
/// less than fewer large ones (docs/performance.md, "Intake latency while
/// forwarding"). A pass with nothing new to copy writes
/// nothing.
pub(super) const INTERVAL: Duration = Duration::from_millis(20);

/// WAL length in frames (pages) beyond which a pass is repeated with a
/// turn at the gate, so that the WAL starts over (16 MiB with 4 KiB pages).
pub(super) const RESTART_FRAMES: i32 = 4096;

/// What the checkpoint thread has done (tests read it).
#[derive(Debug, Default)]
pub struct Stats {
    passes: AtomicU64,
    gated: AtomicU64,
    failures: AtomicU64,
}

impl Stats {
    /// Checkpoints run (a gated second pass counts too).
    pub fn passes(&self) -> u64 {
        self.passes.load(Ordering::Relaxed)
    }

    /// Passes that took a turn at the gate to reach the WAL's end.
    pub fn gated(&self) -> u64 {
        self.gated.load(Ordering::Relaxed)
    }

    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}

/// The running thread; it ends when the last clone of the store (and so
/// this handle) is dropped.
#[derive(Debug)]
pub(super) struct Checkpointer {
    stats: Arc<Stats>,
    _stop: mpsc::Sender<()>,
}

impl Checkpointer {
    /// Starts the thread on `conn`, a connection of the store whose writers
    /// pass `gate`.
    pub(super) fn start(
        conn: SqliteConnection,
        gate: Arc<WriteGate>,
    ) -> std::io::Result<Checkpointer> {
        let (stop, stopped) = mpsc::channel();
        let stats = Arc::new(Stats::default());
        let thread_stats = Arc::clone(&stats);
        std::thread::Builder::new()
            .name("sqlite-checkpoint".to_owned())
            .spawn(move || run(conn, &gate, &stopped, &thread_stats))?;
        Ok(Checkpointer { stats, _stop: stop })
    }

    pub(super) fn stats(&self) -> &Stats {
        &self.stats
    }
}

#[derive(QueryableByName, Debug, Clone, Copy)]
struct Pass {
    /// Frames in the WAL.
    #[diesel(sql_type = Integer)]
    log: i32,
    /// Frames of it copied into the database file.
    #[diesel(sql_type = Integer)]
    checkpointed: i32,
}

impl Pass {
    fn left(&self) -> i32 {
        self.log - self.checkpointed
    }
}

#[derive(Debug, thiserror::Error)]
enum Failed {
    #[error("{0}")]
    Sql(#[from] diesel::result::Error),
    #[error("{0}")]
    Busy(#[from] super::gate::Busy),
}

fn run(mut conn: SqliteConnection, gate: &WriteGate, stopped: &mpsc::Receiver<()>, stats: &Stats) {
    let mut failing = false;
    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
        match checkpoint(&mut conn, gate, stats) {
            Ok(pass) => {
                if failing {
                    tracing::info!(
                        frames_left = pass.left(),
                        "SQLite WAL checkpoints work again"
                    );
                    failing = false;
                }
            }
            Err(e) => {
                stats.failures.fetch_add(1, Ordering::Relaxed);
                if !failing {
                    tracing::warn!(
                        error = %e,
                        "SQLite WAL checkpoint failed; trying again every {INTERVAL:?} (the WAL file grows meanwhile)"
                    );
                    failing = true;
                }
            }
        }
    }
}

fn checkpoint(
    conn: &mut SqliteConnection,
    gate: &WriteGate,
    stats: &Stats,
) -> Result<Pass, Failed> {
    let pass = passive(conn, stats)?;
    // Reaching the end is not enough: the WAL starts over only when a writer
    // begins while nothing in it is left to copy, and writers come in
    // between passes. Inside a turn at the gate none does.
    if pass.log <= RESTART_FRAMES {
        return Ok(pass);
    }
    let _turn = gate.enter(Lane::Background)?;
    stats.gated.fetch_add(1, Ordering::Relaxed);
    passive(conn, stats)
}

fn passive(conn: &mut SqliteConnection, stats: &Stats) -> Result<Pass, Failed> {
    let pass: Pass = diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)").get_result(conn)?;
    stats.passes.fetch_add(1, Ordering::Relaxed);
    Ok(pass)
}
