//! Group commit: writers ask for durability and wait; one flusher thread fsyncs for all of them.
//!
//! A writer takes a ticket after its transaction; the flusher flushes sled and publishes the
//! highest ticket the flush covered. Writes that arrive during a flush share the next one, so
//! throughput grows with concurrency instead of paying one fsync per write.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use tokio::sync::watch;

use super::error::{Result, StorageError};

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
    loop {
        let target = {
            let mut r = shared.requested.lock().expect("flush lock");
            while r.0 <= done && !r.1 {
                r = shared.wake.wait(r).expect("flush lock");
            }
            if r.0 <= done && r.1 {
                return;
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
