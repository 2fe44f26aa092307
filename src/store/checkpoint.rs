//! SQLite: the webhook intake's WAL checkpoints, on a thread of their own.
//!
//! In WAL mode a commit appends the pages it changed to the WAL, and a
//! checkpoint later copies them into the database file. By default the
//! connection whose commit takes the WAL past 1,000 pages runs that
//! checkpoint inside its commit. For the intake's writer that was a
//! checkpoint every few batches, and every delivery waits on that writer:
//! the copy and its `fsync` (a tenth of the writer's time during a burst of
//! sign-ups) held up the next batch while the machine had a core to spare.
//!
//! So the intake's connection does not checkpoint (`wal_autocheckpoint=0`):
//! after each of its commits it rings this thread, which runs a PASSIVE
//! checkpoint (it never blocks the writer or a reader) at most every
//! [`EVERY`] on a connection of its own. A page changed by several batches
//! in that time is copied once. When the writer stops, the last ring is
//! followed by a checkpoint, so the WAL does not stay large; when it is
//! reset, the writer truncates it to `journal_size_limit` (`store::set_up`).
//! Every other connection keeps checkpointing as before.

use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant};

/// The least time between two checkpoints while commits keep coming.
const EVERY: Duration = Duration::from_millis(250);

/// Rings the checkpoint thread. Dropping it ends the thread (after a last
/// checkpoint, when a commit was rung since the one before).
pub struct Checkpointer {
    ring: SyncSender<()>,
}

impl Checkpointer {
    /// Start the thread for the database file at `path`; None when it cannot
    /// start (the caller then leaves SQLite's own checkpoints on).
    pub fn start(path: &Path) -> Option<Checkpointer> {
        let conn = match open(path) {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "no connection for WAL checkpoints: the intake checkpoints as it commits");
                return None;
            }
        };
        // One pending ring is enough: a checkpoint copies everything committed before it.
        let (ring, rung) = sync_channel(1);
        let started = std::thread::Builder::new()
            .name("paysync-checkpoint".into())
            .spawn(move || run(&conn, &rung));
        match started {
            Ok(_) => Some(Checkpointer { ring }),
            Err(e) => {
                tracing::warn!(error = %e, "no thread for WAL checkpoints: the intake checkpoints as it commits");
                None
            }
        }
    }

    /// A commit was made: a checkpoint follows within [`EVERY`].
    pub fn committed(&self) {
        // Full: a ring is already pending, which is all this one asks.
        let _ = self.ring.try_send(());
    }
}

fn open(path: &Path) -> rusqlite::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

fn run(conn: &rusqlite::Connection, rung: &Receiver<()>) {
    let mut last = Instant::now();
    // Each ring: wait out the rest of EVERY (rings meanwhile are folded in), then checkpoint.
    while rung.recv().is_ok() {
        if let Some(rest) = EVERY.checked_sub(last.elapsed()) {
            std::thread::sleep(rest);
        }
        // A ring pending now is answered by this checkpoint (or, when the
        // writer is gone, this is the last one).
        let _ = rung.try_recv();
        last = Instant::now();
        match checkpoint(conn) {
            Ok((busy, wal, copied)) => {
                tracing::debug!(
                    busy,
                    wal_pages = wal,
                    copied_pages = copied,
                    "WAL checkpoint"
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, "WAL checkpoint failed; the next commit retries it")
            }
        }
    }
}

/// A PASSIVE checkpoint: (could not finish, pages in the WAL, pages copied).
fn checkpoint(conn: &rusqlite::Connection) -> rusqlite::Result<(i64, i64, i64)> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })
}
