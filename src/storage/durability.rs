//! Group commit: writers ask for durability and wait; one flusher thread fsyncs for all of them.
//!
//! A writer takes a ticket after its transaction; the flusher flushes sled and publishes the
//! highest ticket the flush covered. Writes that arrive during a flush share the next one, so
//! throughput grows with concurrency instead of paying one fsync per write.
//!
//! Under concurrent writes a flush also waits a little for company. Each flush costs far more
//! CPU than its fsync: sled hands the write to its IO thread pool, which wakes every idle pool
//! thread in turn (about 20 context switches per flush on the 2-core machine, a quarter of its
//! CPU at 2,800 creates/s with 16 clients, when a flush served 1.5 writes). So when the last
//! flush served several writers, the next one waits until as many have asked (at most
//! [`GROUP_MAX`]) or [`GROUP_WAIT`] has passed. A lone writer never waits: the flush before it
//! served one.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::watch;

use super::error::{Result, StorageError};

/// The most writers a flush waits for.
const GROUP_MAX: u64 = 8;

/// The longest a flush waits for more writers. 16 clients creating customers: 2,820 creates/s
/// without waiting, 2,960 waiting up to 2 ms, 3,030 up to 3 ms (BENCHMARKS.md, eleventh session).
const GROUP_WAIT: Duration = Duration::from_millis(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Flushed {
    upto: u64,
    ok: bool,
}

struct Shared {
    requested: Mutex<(u64, bool)>, // (highest ticket, stop)
    wake: Condvar,
    flushed: watch::Sender<Flushed>,
}

/// The flusher of one sled database.
pub(crate) struct GroupCommit {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl GroupCommit {
    /// Starts the flusher thread.
    pub(crate) fn start(db: sled::Db) -> GroupCommit {
        let (tx, _) = watch::channel(Flushed { upto: 0, ok: true });
        let shared = Arc::new(Shared {
            requested: Mutex::new((0, false)),
            wake: Condvar::new(),
            flushed: tx,
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("kindred-flush".into())
            .spawn(move || flusher(db, s))
            .expect("spawning the flusher thread");
        GroupCommit {
            shared,
            thread: Some(thread),
        }
    }

    /// Waits until everything written before the call is on disk.
    pub(crate) async fn durable(&self) -> Result<()> {
        let ticket = {
            let mut r = self.shared.requested.lock().expect("flush lock");
            r.0 += 1;
            r.0
        };
        self.shared.wake.notify_one();
        let mut rx = self.shared.flushed.subscribe();
        let state = *rx
            .wait_for(|f| f.upto >= ticket)
            .await
            .map_err(|_| StorageError::Corrupt {
                what: "flusher",
                detail: "flusher stopped".into(),
            })?;
        if state.ok {
            Ok(())
        } else {
            Err(StorageError::Corrupt {
                what: "flush",
                detail: "fsync failed, see the log".into(),
            })
        }
    }
}

fn flusher(db: sled::Db, shared: Arc<Shared>) {
    let mut done = 0u64;
    // How many writers the last flush served.
    let mut served = 1u64;
    loop {
        let target = {
            let mut r = shared.requested.lock().expect("flush lock");
            while r.0 <= done && !r.1 {
                r = shared.wake.wait(r).expect("flush lock");
            }
            if r.0 <= done && r.1 {
                return;
            }
            if served > 1 {
                let want = done + served.min(GROUP_MAX);
                r = shared
                    .wake
                    .wait_timeout_while(r, GROUP_WAIT, |r| r.0 < want && !r.1)
                    .expect("flush lock")
                    .0;
            }
            r.0
        };
        let ok = match db.flush() {
            Ok(_) => true,
            Err(e) => {
                tracing::error!(error = %e, "store flush failed");
                false
            }
        };
        served = target - done;
        done = target;
        shared.flushed.send_replace(Flushed { upto: target, ok });
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        self.shared.requested.lock().expect("flush lock").1 = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn temp_db() -> (tempfile::TempDir, sled::Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        (dir, db)
    }

    #[tokio::test]
    async fn concurrent_writers_and_a_lone_writer_after_them_are_served() {
        let (_d, db) = temp_db();
        let gc = GroupCommit::start(db.clone());
        for round in 0..5u8 {
            let waits: Vec<_> = (0..16u8)
                .map(|i| {
                    db.insert([round, i], &[1]).unwrap();
                    gc.durable()
                })
                .collect();
            for w in futures::future::join_all(waits).await {
                w.unwrap();
            }
        }
        // The flushes before served several writers, so this one waits for company that never
        // comes, up to the bound.
        db.insert(b"lone", &[1]).unwrap();
        tokio::time::timeout(Duration::from_secs(5), gc.durable())
            .await
            .expect("a lone writer is served")
            .unwrap();
        assert!(gc.shared.flushed.borrow().upto >= 81);
    }

    #[tokio::test]
    async fn stopping_ends_a_flusher_that_waits_for_company() {
        let (_d, db) = temp_db();
        let gc = GroupCommit::start(db.clone());
        let waits: Vec<_> = (0..8).map(|_| gc.durable()).collect();
        for w in futures::future::join_all(waits).await {
            w.unwrap();
        }
        // A ticket the flusher waits for company for (when its last flush served several), then
        // the stop.
        {
            let mut r = gc.shared.requested.lock().unwrap();
            r.0 += 1;
        }
        gc.shared.wake.notify_one();
        let joined = std::thread::spawn(move || drop(gc));
        let started = Instant::now();
        while !joined.is_finished() {
            assert!(started.elapsed() < Duration::from_secs(5), "the flusher did not stop");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
