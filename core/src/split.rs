//! Get-or-compute in two calls, with its accounting: [`Cache::begin`], then
//! [`Hit::finish`] or [`Pending::finish`].
//!
//! This is the one place that fills a get-or-compute's [`CacheInfo`] and
//! calls the hook. Core's closure-based [`Cache::get_or_compute`] runs on it,
//! and so does the WebAssembly component (its `get-or-lock` is `begin`, its
//! `set-and-unlock` is `finish`), so every surface reports the same numbers.
//!
//! A backend failure never fails a get-or-compute: `begin` records it in the
//! info (the call bypasses the cache) and returns a [`Pending`] that stores
//! nothing.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Instant;

use crate::cache::{Cache, Inner};
use crate::codec::{Cbor, Codec};
use crate::compute::ComputeOptions;
use crate::config::Lifetime;
use crate::error::Error;
use crate::info::{CacheInfo, HookEvent};
use crate::lock::{GetOrLock, LockStats, Ticket};

/// The outcome of [`Cache::begin`].
#[derive(Debug)]
#[must_use = "a get-or-compute is reported when it is finished"]
pub enum Begin {
    /// The value was cached: decode [`Hit::value`], then call [`Hit::finish`],
    /// or [`Hit::undecodable`] if it does not decode.
    Hit(Hit),
    /// Not cached (or the backend failed): compute the value, then call
    /// [`Pending::finish`]; dropping it gives up.
    Pending(Pending),
}

/// The measurements of one get-or-compute, taken as it goes.
///
/// [`Hit`] and [`Pending`] fill one in; it is public for adapters that relay
/// a get-or-compute done elsewhere and must report a failure that side never
/// saw (the wasmtime host, when the component traps).
///
/// ```
/// use rtc_core::{Accounting, ComputeOptions, Error, ErrorKind, LockStats};
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

    fn hit(&mut self, size: usize) {
        self.info.hit = true;
        self.info.serialized_size = size;
    }
}

/// Logs why a call bypasses the cache, and records it.
fn bypass(accounting: &mut Accounting, error: Error, what: &str) {
    tracing::warn!(error = %error, "{what}");
    accounting.bypass(error);
}

/// What a [`Hit`] and a [`Pending`] share: the call and its accounting.
struct Call {
    inner: Arc<Inner>,
    key: String,
    tags: Vec<String>,
    lifetime: Lifetime,
    userdata: Option<Arc<dyn Any + Send + Sync>>,
    accounting: Accounting,
}

impl Call {
    /// Stops the clock and calls the cache's hook (a panicking hook is logged).
    fn report(self) -> CacheInfo {
        let info = self.accounting.finish();
        if let Some(hook) = &self.inner.hook {
            let event = HookEvent::new(&self.key, &self.tags, &info, self.userdata.as_deref());
            if catch_unwind(AssertUnwindSafe(|| hook(&event))).is_err() {
                tracing::warn!(key = self.key, "the cache hook panicked; ignored");
            }
        }
        info
    }
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("key", &self.key)
            .field("tags", &self.tags)
            .field("info", &self.accounting.info)
            .finish_non_exhaustive()
    }
}

/// A cached value found by [`Cache::begin`].
#[derive(Debug)]
#[must_use = "a hit is reported by `finish`"]
pub struct Hit {
    value: Vec<u8>,
    call: Call,
}

impl Hit {
    /// Returns the cached bytes.
    pub fn value(&self) -> &[u8] {
        &self.value
    }

    /// Returns the info so far (a hit, with its size and lock statistics).
    pub fn info(&self) -> &CacheInfo {
        self.call.accounting.info()
    }

    /// Finishes the call: stops the clock, calls the cache's hook, and
    /// returns the bytes and the final info.
    pub fn finish(self) -> (Vec<u8>, CacheInfo) {
        (self.value, self.call.report())
    }

    /// The bytes did not decode (`error`): the call becomes a miss that
    /// bypasses the cache and, once computed, overwrites those bytes.
    ///
    /// ```
    /// use rtc_core::{Begin, Cache, ComputeOptions, Error, ErrorKind, Lifetime};
    /// let cache = Cache::builder().in_local_memory(true).build().unwrap();
    /// cache.set_bytes("k", b"garbage", ["t"], Lifetime::Default).unwrap();
    /// let Begin::Hit(hit) = cache.begin(&ComputeOptions::key("k").tags(["t"])) else { panic!() };
    /// let pending = hit.undecodable(Error::new(ErrorKind::Codec, "not a number"));
    /// let info = pending.finish(Ok(b"42"));
    /// assert!(!info.hit && info.error.as_ref().map(Error::kind) == Some(ErrorKind::Codec));
    /// assert_eq!(cache.get_bytes("k", ["t"]).unwrap(), Some(b"42".to_vec()));
    /// ```
    pub fn undecodable(self, error: Error) -> Pending {
        let mut call = self.call;
        call.accounting.info.hit = false;
        bypass(&mut call.accounting, error, "cached bytes do not decode");
        call.accounting.computing = Instant::now();
        Pending { call, ticket: None, overwrite: true }
    }
}

/// A get-or-compute waiting for its value: made by [`Cache::begin`] on a
/// miss (holding core's [`Ticket`], and so the stampede lock if one was
/// taken), on a backend failure (no ticket: nothing will be stored), or by
/// [`Hit::undecodable`].
///
/// Dropping it gives up: the lock is released (waiters wake up), nothing is
/// stored and the hook is not called.
#[derive(Debug)]
#[must_use = "a pending get-or-compute holds a lock until it is finished or dropped"]
pub struct Pending {
    call: Call,
    ticket: Option<Ticket>,
    overwrite: bool,
}

impl Pending {
    /// Returns the ticket: `None` when the call bypasses the cache (the
    /// backend failed, see the info's `error`) or overwrites undecodable bytes.
    pub fn ticket(&self) -> Option<&Ticket> {
        self.ticket.as_ref()
    }

    /// Returns the info so far.
    pub fn info(&self) -> &CacheInfo {
        self.call.accounting.info()
    }

    /// Returns the cache key.
    pub fn key(&self) -> &str {
        &self.call.key
    }

    /// Returns the entry's tags.
    pub fn tags(&self) -> &[String] {
        &self.call.tags
    }

    /// Replaces the lifetime the value will be stored for (from the options
    /// by default), for callers that learn it after `begin`.
    pub fn set_lifetime(&mut self, lifetime: Lifetime) {
        self.call.lifetime = lifetime;
    }

    /// Finishes the call with the computed value's bytes, or the error
    /// encoding it: stores them under the ticket's snapshot and releases the
    /// lock (or overwrites undecodable bytes, or stores nothing when the call
    /// bypasses the cache), then stops the clock, calls the cache's hook and
    /// returns the final info. A failed store is recorded in the info's
    /// `error`, never returned.
    ///
    /// `decorated_elapsed` runs from the return of `begin` (or of
    /// `undecodable`) to this call.
    pub fn finish(self, value: Result<impl AsRef<[u8]>, Error>) -> CacheInfo {
        let Pending { mut call, ticket, overwrite } = self;
        match value {
            Ok(bytes) => {
                let bytes = bytes.as_ref();
                call.accounting.computed(Ok(bytes.len()));
                let stored = match ticket {
                    Some(ticket) => ticket_cache(&call.inner).set_and_unlock(ticket, bytes, call.lifetime),
                    None if overwrite => ticket_cache(&call.inner).set_bytes(&call.key, bytes, &call.tags, call.lifetime),
                    None => Ok(()),
                };
                if let Err(e) = stored {
                    bypass(&mut call.accounting, e, "cannot store the computed value");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot encode the computed value");
                drop(ticket); // releases the lock
                call.accounting.computed(Err(e));
            }
        }
        call.report()
    }

    /// Gives up like dropping, but returns the info so far with `elapsed`
    /// measured now (the component reports a failed lookup with it). Does
    /// not call the hook.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rtc_core::{Begin, Cache, ComputeOptions};
    /// let cache = Cache::builder().in_local_memory(true).build().unwrap();
    /// let options = ComputeOptions::key("k").lock(true).lock_timeout(Duration::from_secs(5));
    /// let Begin::Pending(pending) = cache.begin(&options) else { panic!("a cold key") };
    /// assert!(pending.ticket().is_some_and(|t| t.holds_lock()));
    /// let info = pending.abandon(); // the lock is free again
    /// let Begin::Pending(again) = cache.begin(&options) else { panic!() };
    /// assert!(info.lock_full_miss && again.ticket().is_some_and(|t| t.holds_lock()));
    /// ```
    pub fn abandon(self) -> CacheInfo {
        drop(self.ticket);
        self.call.accounting.finish()
    }
}

/// A cache over the shared state, for the writes a [`Pending`] makes (they
/// are raw bytes: the codec plays no part).
fn ticket_cache(inner: &Arc<Inner>) -> Cache<Cbor> {
    Cache { inner: Arc::clone(inner), codec: Cbor }
}

impl<C: Codec> Cache<C> {
    /// The first half of get-or-compute: reads the entry of `options`, and on
    /// a miss takes the stampede lock if the options ask for it (see
    /// [`Cache::get_or_lock`]). A backend failure is recorded in the info
    /// and gives a [`Pending`] that stores nothing.
    ///
    /// Finish a hit with [`Hit::finish`] (or [`Hit::undecodable`]), and a
    /// pending call with [`Pending::finish`]: each calls the hook once.
    ///
    /// ```
    /// use rtc_core::{Begin, Cache, ComputeOptions};
    /// let cache = Cache::builder().in_local_memory(true).build().unwrap();
    /// let options = ComputeOptions::key("answer").tags(["math"]).lock(true);
    /// let Begin::Pending(pending) = cache.begin(&options) else { panic!("a cold key") };
    /// let info = pending.finish(Ok(b"42"));
    /// assert!(!info.hit && info.lock_full_miss && info.serialized_size == 2);
    /// let Begin::Hit(hit) = cache.begin(&options) else { panic!("stored") };
    /// let (value, info) = hit.finish();
    /// assert!(value == b"42" && info.hit && info.lock_full_hit);
    /// ```
    pub fn begin(&self, options: &ComputeOptions) -> Begin {
        let mut accounting = Accounting::start(options);
        let looked = self.get_or_lock(options.cache_key(), options.tag_list(), options.lock_wait());
        let call = |accounting| Call {
            inner: Arc::clone(&self.inner),
            key: options.cache_key().to_owned(),
            tags: options.tag_list().to_vec(),
            lifetime: options.entry_lifetime(),
            userdata: options.userdata().cloned(),
            accounting,
        };
        let ticket = match looked {
            Ok(GetOrLock::Hit(value, stats)) => {
                accounting.looked_up(stats);
                accounting.hit(value.len());
                return Begin::Hit(Hit { value, call: call(accounting) });
            }
            Ok(GetOrLock::Locked(ticket) | GetOrLock::Miss(ticket)) => {
                accounting.looked_up(ticket.stats());
                Some(ticket)
            }
            Err(e) => {
                bypass(&mut accounting, e, "cache bypassed");
                accounting.looked_up(LockStats::default());
                None
            }
        };
        Begin::Pending(Pending { call: call(accounting), ticket, overwrite: false })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::backend::{Backend, Command, Reply};
    use crate::error::{ErrorKind, Result};

    struct Down;

    impl Backend for Down {
        fn execute(&self, _: &[Command]) -> Result<Vec<Reply>> {
            Err(Error::new(ErrorKind::BackendUnavailable, "down"))
        }
    }

    fn counting(backend: Option<Arc<dyn Backend>>) -> (Cache, Arc<Mutex<Vec<CacheInfo>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let hook_seen = Arc::clone(&seen);
        let mut builder = Cache::builder().in_local_memory(true).hook(move |e| {
            hook_seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(e.info.clone())
        });
        if let Some(backend) = backend {
            builder = builder.backend(backend);
        }
        (builder.build().expect("cache"), seen)
    }

    #[test]
    fn a_backend_failure_is_a_pending_call_that_stores_nothing() {
        let (cache, seen) = counting(Some(Arc::new(Down)));
        let Begin::Pending(pending) = cache.begin(&ComputeOptions::key("k").lock(true)) else { panic!("no hit") };
        assert!(pending.ticket().is_none());
        assert_eq!(pending.info().error.as_ref().map(Error::kind), Some(ErrorKind::BackendUnavailable));
        let info = pending.finish(Ok(b"v"));
        assert_eq!((info.serialized_size, info.error.map(|e| e.kind())), (1, Some(ErrorKind::BackendUnavailable)));
        assert_eq!(seen.lock().expect("seen").len(), 1, "finish calls the hook once");
    }

    #[test]
    fn dropping_or_abandoning_releases_the_lock_and_calls_no_hook() {
        let (cache, seen) = counting(None);
        let options = ComputeOptions::key("k").lock(true).lock_timeout(Duration::from_secs(5));
        for _ in 0..2 {
            let Begin::Pending(pending) = cache.begin(&options) else { panic!("cold") };
            assert!(pending.ticket().is_some_and(Ticket::holds_lock), "the previous lock was released");
            drop(pending);
        }
        let Begin::Pending(pending) = cache.begin(&options) else { panic!("cold") };
        let _ = pending.abandon();
        assert!(seen.lock().expect("seen").is_empty());
    }

    #[test]
    fn an_encode_failure_is_reported_and_stores_nothing() {
        let (cache, seen) = counting(None);
        let options = ComputeOptions::key("k").tags(["t"]);
        let Begin::Pending(pending) = cache.begin(&options) else { panic!("cold") };
        let info = pending.finish(Err::<&[u8], _>(Error::new(ErrorKind::Codec, "no")));
        assert_eq!(info.error.map(|e| e.kind()), Some(ErrorKind::Codec));
        assert_eq!(cache.get_bytes("k", ["t"]).expect("get"), None);
        assert_eq!(seen.lock().expect("seen").len(), 1);
    }
}
