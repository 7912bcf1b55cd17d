//! Idle connections kept for reuse, sharded by thread.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

/// How many idle connections each shard keeps.
const MAX_IDLE_PER_SHARD: usize = 8;
/// Threads are spread over this many shards, so they rarely contend on one lock.
const SHARDS: usize = 16;

thread_local! {
    /// This thread's shard, assigned round-robin on first use.
    static SHARD: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS
    };
}

/// Idle connections. Checking out never blocks on a connection in use: a
/// caller that finds its shard empty opens a new connection.
///
/// Hand-written rather than r2d2: r2d2 waits out its whole checkout timeout
/// when Redis refuses connections, while a cache must bypass at once when
/// Redis is down.
pub(super) struct Pool<C> {
    shards: [Mutex<Vec<C>>; SHARDS],
}

impl<C> Pool<C> {
    pub(super) fn new() -> Self {
        Pool { shards: std::array::from_fn(|_| Mutex::new(Vec::new())) }
    }

    fn shard(&self) -> &Mutex<Vec<C>> {
        &self.shards[SHARD.with(|s| *s)]
    }

    /// Takes an idle connection of this thread's shard, if any.
    pub(super) fn take(&self) -> Option<C> {
        self.shard().lock().unwrap_or_else(PoisonError::into_inner).pop()
    }

    /// Returns a healthy connection for reuse.
    pub(super) fn put(&self, conn: C) {
        let mut idle = self.shard().lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE_PER_SHARD {
            idle.push(conn);
        }
    }

    /// Forgets every idle connection: after one was found dropped (Redis
    /// restarted), the others are most likely dead too.
    pub(super) fn clear(&self) {
        for shard in &self.shards {
            shard.lock().unwrap_or_else(PoisonError::into_inner).clear();
        }
    }
}
