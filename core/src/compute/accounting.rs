//! The measurements of one get-or-compute, taken as it goes: what a
//! [`CacheInfo`] reports to the hook.

use std::time::Instant;

use crate::error::Error;
use crate::model::info::CacheInfo;
use crate::model::options::ComputeOptions;
use crate::ops::lock::LockStats;

/// The measurements of one get-or-compute, taken as it goes.
///
/// [`crate::Hit`] and [`crate::Ticket`] fill one in; it is public for adapters
/// that relay a get-or-compute done elsewhere and must report a failure that
/// side never saw (the wasmtime host, when the component traps).
///
/// ```
/// use rtc_core::adapter::Accounting;
/// use rtc_core::{ComputeOptions, Error, ErrorKind, LockStats};
/// let mut call = Accounting::start(&ComputeOptions::key("k"));
/// call.bypass(Error::new(ErrorKind::BackendUnavailable, "no instance"));
/// call.looked_up(LockStats::default()); // the computation starts
/// call.computed(Ok(3)); // it encoded to 3 bytes
/// let info = call.finish();
/// assert!(!info.hit && info.serialized_size == 3 && info.error.is_some());
/// assert!(info.elapsed >= info.decorated_elapsed);
/// ```
#[derive(Debug, Clone)]
pub struct Accounting {
    info: CacheInfo,
    started: Instant,
    computing: Instant,
}

impl Accounting {
    /// Starts the clock of a get-or-compute with `options` (whose function,
    /// arguments and method flag the info carries).
    pub fn start(options: &ComputeOptions) -> Self {
        let now = Instant::now();
        let info = CacheInfo {
            function: options.function_id().clone(),
            arguments: options.arguments().to_vec(),
            method: options.is_method(),
            ..CacheInfo::default()
        };
        Accounting { info, started: now, computing: now }
    }

    /// Records how the lock behaved; the lookup is over, so the clock of the
    /// computation starts now.
    pub fn looked_up(&mut self, stats: LockStats) {
        self.info.lock_waiting_ms = stats.waiting_ms;
        self.info.lock_full_hit = stats.full_hit;
        self.info.lock_full_miss = stats.full_miss;
        self.computing = Instant::now();
    }

    /// Records the error that makes this call bypass the cache (a later one
    /// replaces an earlier one).
    pub fn bypass(&mut self, error: Error) {
        self.info.error = Some(error);
    }

    /// Records the computed value: the size of its encoding, or the error
    /// encoding it. Stops the clock of the computation.
    pub fn computed(&mut self, encoded: Result<usize, Error>) {
        self.info.decorated_elapsed = self.computing.elapsed();
        match encoded {
            Ok(size) => self.info.serialized_size = size,
            Err(e) => self.bypass(e),
        }
    }

    /// Returns the info so far (`elapsed` is set by [`Accounting::finish`]).
    pub fn info(&self) -> &CacheInfo {
        &self.info
    }

    /// Stops the clock and returns the info.
    pub fn finish(mut self) -> CacheInfo {
        self.info.elapsed = self.started.elapsed();
        self.info
    }

    /// Records a value another caller of this process computed while this
    /// one waited `waited` (a single-flight follower): a hit, as for a
    /// caller woken by the stampede lock, with the wait added, carrying the
    /// leader's `error` (its store bypassed the cache) unless the call
    /// already carries its own: a bypass is never silent.
    pub fn shared(&mut self, size: usize, waited: std::time::Duration, error: Option<Error>) {
        let waited_ms = u64::try_from(waited.as_millis()).unwrap_or(u64::MAX);
        self.info.lock_waiting_ms = self.info.lock_waiting_ms.saturating_add(waited_ms);
        self.info.lock_full_hit = false;
        self.info.lock_full_miss = false;
        self.hit(size);
        if self.info.error.is_none()
            && let Some(e) = error
        {
            self.bypass(e);
        }
    }

    /// Records a fail-safe value of `size` bytes returned because of
    /// `error` (unless the call already carries its own): a stale hit.
    pub fn served_stale(&mut self, size: usize, error: Error) {
        self.hit(size);
        self.info.stale = true;
        if self.info.error.is_none() {
            self.bypass(error);
        }
    }

    pub(crate) fn hit(&mut self, size: usize) {
        self.info.hit = true;
        self.info.serialized_size = size;
    }
}

impl Accounting {
    /// Restarts the clock of the computation (a hit whose bytes do not decode
    /// becomes a miss that computes).
    pub(crate) fn recompute(&mut self) {
        self.info.hit = false;
        self.computing = Instant::now();
    }
}
