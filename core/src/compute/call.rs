//! Get-or-compute in two calls, for callers that cannot pass a closure (C,
//! the component, Python): [`Cache::get_or_lock`](crate::Cache::get_or_lock), then
//! [`Cache::set_and_unlock`](crate::Cache::set_and_unlock) (or [`Cache::release`](crate::Cache::release) to give up).
//!
//! This is the one get-or-compute: the closure forms run on it, every
//! surface exposes it under these names, and it fills the call's
//! [`CacheInfo`] and calls the hook exactly once per call, as the closure
//! form does. The I/O parts are step machines ([`crate::lock`]); this module
//! holds the call, its accounting and the hook.
//!
//! A backend failure never fails a get-or-compute: `get_or_lock` records it
//! in the info (the call bypasses the cache) and returns a [`Ticket`] that
//! stores nothing.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backend::{Command, Reply};
use crate::compute::accounting::Accounting;
use crate::config::Lifetime;
use crate::error::{Error, Result};
use crate::local::Inner;
use crate::local::flight::{Flight, Leader, Meeting, Waited};
use crate::model::info::{CacheInfo, HookEvent};
use crate::model::options::ComputeOptions;
use crate::ops::lock::{Hold, LockStats, Looked, Lookup, Store};
use crate::ops::snapshot::{Snapshot, Snapshotted};
use crate::ops::step::{Op, Step};

/// The outcome of [`Cache::get_or_lock`](crate::Cache::get_or_lock).
#[derive(Debug)]
#[must_use = "a get-or-compute is reported when it is finished"]
pub enum GetOrLock {
    /// The value was cached: decode [`Hit::value`], then call [`Hit::finish`],
    /// or [`Hit::undecodable`] if it does not decode.
    Hit(Hit),
    /// Not cached, and this caller holds the stampede lock: compute the
    /// value, then call [`Cache::set_and_unlock`](crate::Cache::set_and_unlock) (or [`Cache::release`](crate::Cache::release)).
    Locked(Ticket),
    /// Not cached and no lock held (none was asked for, waiting for another
    /// holder timed out, or the backend failed: see [`Ticket::info`]):
    /// compute the value, then call [`Cache::set_and_unlock`](crate::Cache::set_and_unlock).
    Miss(Ticket),
}

impl GetOrLock {
    /// A hit that decodes is finished (reported) and returned; anything else
    /// is the ticket to compute with (an undecodable hit overwrites).
    // The ticket moves once per call, on the way to the computation: boxing it buys nothing.
    #[allow(clippy::result_large_err)]
    #[cfg(feature = "tokio")] // the async API's get-or-compute; the sync one is two_step's
    pub(crate) fn decoded<T>(self, decode: impl Fn(&[u8]) -> Result<T>) -> Result<T, Ticket> {
        match self {
            GetOrLock::Hit(hit) => match decode(hit.value()) {
                Ok(value) => {
                    let _ = hit.finish();
                    Ok(value)
                }
                // Garbage under our key: compute, and overwrite it.
                Err(e) => Err(hit.undecodable(e)),
            },
            GetOrLock::Locked(ticket) | GetOrLock::Miss(ticket) => Err(ticket),
        }
    }
}

/// Logs why a call bypasses the cache, and records it.
fn bypass(accounting: &mut Accounting, error: Error, what: &str) {
    tracing::warn!(error = %error, "{what}");
    accounting.bypass(error);
}

/// What a [`Hit`] and a [`Ticket`] share: the call and its accounting.
pub(crate) struct Call {
    inner: Arc<Inner>,
    key: String,
    tags: Vec<String>,
    lifetime: Lifetime,
    userdata: Option<Arc<dyn Any + Send + Sync>>,
    accounting: Accounting,
}

impl Call {
    pub(crate) fn new(inner: &Arc<Inner>, options: &ComputeOptions) -> Self {
        Call {
            inner: Arc::clone(inner),
            key: options.cache_key().to_owned(),
            tags: options.tag_list().to_vec(),
            lifetime: options.entry_lifetime(),
            userdata: options.userdata().cloned(),
            accounting: Accounting::start(options),
        }
    }

    /// The near cache's copy of the entry, if it holds one now.
    pub(crate) fn near_bytes(&self) -> Option<Arc<Vec<u8>>> {
        self.inner.near_hit(&self.key, self.tags.as_slice())
    }

    /// A hit served by the near cache (`bytes` from [`Call::near_bytes`]):
    /// no round trip, no lock.
    pub(crate) fn near_hit(mut self, bytes: &[u8], options: &ComputeOptions) -> GetOrLock {
        let stats = LockStats { full_hit: options.lock_wait().is_some(), ..LockStats::default() };
        self.accounting.looked_up(stats);
        self.accounting.hit(bytes.len());
        GetOrLock::Hit(Hit { value: bytes.to_vec(), storage_key: String::new(), call: self, origin: Origin::Read })
    }

    /// The lookup machine of this call.
    pub(crate) fn lookup(&self, options: &ComputeOptions) -> Result<Lookup<'_>> {
        // Checked now, as `set` checks it: not after the value is computed.
        self.lifetime.checked()?;
        let tags: Vec<&str> = self.tags.iter().map(String::as_str).collect();
        Lookup::new(&self.inner, &self.key, &tags, options.lock_wait())
    }

    /// Turns the lookup's result into the outcome of `get_or_lock`, with its
    /// guarantees: on a miss, the fail-safe value or the in-process flight
    /// (see [`Ticket::join`]).
    pub(crate) fn looked(self, looked: Result<Looked>, options: &ComputeOptions) -> Joined {
        match self.read(looked, options.lock_wait().is_some()) {
            GetOrLock::Hit(hit) => Joined::Ready(GetOrLock::Hit(hit)),
            GetOrLock::Locked(ticket) | GetOrLock::Miss(ticket) => ticket.join(options),
        }
    }

    /// What the lookup read: a hit, or the ticket to compute with.
    fn read(mut self, looked: Result<Looked>, locking: bool) -> GetOrLock {
        match looked {
            Ok(Looked::Hit(value, stats, storage_key)) => {
                self.accounting.looked_up(stats);
                self.accounting.hit(value.len());
                GetOrLock::Hit(Hit { value, storage_key, call: self, origin: Origin::Read })
            }
            Ok(Looked::Miss(hold)) => {
                self.accounting.looked_up(hold.stats);
                let locked = hold.token.is_some();
                let ticket =
                    Ticket { call: self, hold: Some(hold), overwrite: false, leader: None, flight_value: None };
                if locked { GetOrLock::Locked(ticket) } else { GetOrLock::Miss(ticket) }
            }
            Err(e) => {
                bypass(&mut self.accounting, e, "cache bypassed");
                let stats = LockStats { full_miss: locking, ..LockStats::default() };
                self.accounting.looked_up(stats);
                GetOrLock::Miss(Ticket { call: self, hold: None, overwrite: false, leader: None, flight_value: None })
            }
        }
    }

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
            .field("info", self.accounting.info())
            .finish_non_exhaustive()
    }
}

/// A cached value found by [`Cache::get_or_lock`](crate::Cache::get_or_lock).
#[derive(Debug)]
#[must_use = "a hit is reported by `finish`"]
pub struct Hit {
    value: Vec<u8>,
    /// Where the value was read (only when fail-safe is on; else empty).
    storage_key: String,
    call: Call,
    origin: Origin,
}

/// Where a [`Hit`]'s bytes came from.
#[derive(Debug)]
enum Origin {
    /// Read from the cache (Redis or the near cache).
    Read,
    /// Another caller of this process computed them while this one waited
    /// (single-flight): `error` is that call's bypass; `hold` and `overwrite`
    /// are this call's own ticket, should the bytes not decode here.
    Shared { hold: Option<Hold>, overwrite: bool, error: Option<Error>, waited: Duration },
    /// The fail-safe value, returned because the lookup failed with `error`.
    Stale { error: Error },
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

    /// Returns the cache key.
    pub fn key(&self) -> &str {
        &self.call.key
    }

    /// Returns the tags, as given.
    pub fn tags(&self) -> &[String] {
        &self.call.tags
    }

    /// Finishes the call: stops the clock, calls the cache's hook, and
    /// returns the bytes and the final info. With fail-safe on, the bytes
    /// (which decoded) are saved as the entry's last confirmed value.
    pub fn finish(self) -> (Vec<u8>, CacheInfo) {
        let mut call = self.call;
        match self.origin {
            Origin::Read => {
                if let Some(fail_safe) = &call.inner.fail_safe
                    && !self.storage_key.is_empty()
                {
                    fail_safe.save(&self.storage_key, &self.value);
                }
            }
            Origin::Shared { error, waited, .. } => {
                call.accounting.shared(self.value.len(), waited, error);
            }
            Origin::Stale { error } => call.accounting.served_stale(self.value.len(), error),
        }
        (self.value, call.report())
    }

    /// The bytes did not decode (`error`): the call becomes a miss that
    /// bypasses the cache and, once computed, overwrites those bytes.
    ///
    /// ```
    /// use rtc_core::{Cache, ComputeOptions, Error, ErrorKind, GetOrLock, Lifetime};
    /// let cache = Cache::builder().in_local_memory(true).build().unwrap();
    /// cache.set_bytes("k", b"garbage", ["t"], Lifetime::Default).unwrap();
    /// let GetOrLock::Hit(hit) = cache.get_or_lock(&ComputeOptions::key("k").tags(["t"])) else { panic!() };
    /// let ticket = hit.undecodable(Error::new(ErrorKind::Codec, "not a number"));
    /// let info = cache.set_and_unlock(ticket, Ok(b"42"));
    /// assert!(!info.hit && info.error.as_ref().map(Error::kind) == Some(ErrorKind::Codec));
    /// assert_eq!(cache.get_bytes("k", ["t"]).unwrap(), Some(b"42".to_vec()));
    /// ```
    pub fn undecodable(self, error: Error) -> Ticket {
        let mut call = self.call;
        let (hold, overwrite) = match self.origin {
            Origin::Read => {
                bypass(&mut call.accounting, error, "cached bytes do not decode");
                call.accounting.recompute();
                (None, true)
            }
            // Another codec's bytes: this caller computes alone, with its own ticket.
            Origin::Shared { hold, overwrite, .. } => (hold, overwrite),
            // The lookup failed: the ticket stores nothing, as it would have.
            Origin::Stale { .. } => (None, false),
        };
        Ticket { call, hold, overwrite, leader: None, flight_value: None }
    }
}

/// A get-or-compute waiting for its value, made by [`Cache::get_or_lock`](crate::Cache::get_or_lock) on
/// a miss (holding the stampede lock if [`Ticket::holds_lock`]), on a backend
/// failure (nothing will be stored), or by [`Hit::undecodable`].
///
/// Finish it with [`Cache::set_and_unlock`](crate::Cache::set_and_unlock), or give up with
/// [`Cache::release`](crate::Cache::release), which frees the lock at once and wakes a waiter.
/// Dropping a ticket does no I/O: a lock it holds stays until it expires
/// (the lock timeout), and waiters take over then.
#[derive(Debug)]
#[must_use = "a ticket may hold a lock: pass it to `set_and_unlock` or `release`"]
pub struct Ticket {
    call: Call,
    hold: Option<Hold>,
    overwrite: bool,
    /// The in-process flight this ticket leads: closed before the store,
    /// finished with the stored bytes after it, handed over when the ticket
    /// is released or dropped (see [`crate::local::flight`]).
    leader: Option<Leader>,
    /// The bytes being stored, kept for the followers while a flight is led.
    flight_value: Option<Vec<u8>>,
}

/// A lookup that missed, with the guarantees of get-or-compute applied.
pub(crate) enum Joined {
    /// The outcome of `get_or_lock`.
    Ready(GetOrLock),
    /// Another caller of this process computes the value: the driver waits
    /// for it (at most the duration, the lock timeout), then calls
    /// [`Ticket::followed`].
    Follow(Ticket, Arc<Flight>, Vec<u8>, Duration),
}

impl Ticket {
    /// The guarantees of get-or-compute, for every surface of the two calls:
    /// a failed lookup returns the fail-safe value if there is one (instead
    /// of computing), and with the lock, the callers of this process that
    /// must compute one key meet first, so it computes once even when Redis
    /// (and so its lock) is down: see `flight` for why following is safe.
    fn join(mut self, options: &ComputeOptions) -> Joined {
        if let Some(error) = self.lookup_error().cloned()
            && let Some(bytes) = self.fallback()
        {
            tracing::warn!(key = self.call.key, error = %error, "returning the fail-safe value");
            let origin = Origin::Stale { error };
            return Joined::Ready(GetOrLock::Hit(Hit {
                value: bytes.to_vec(),
                storage_key: String::new(),
                call: self.call,
                origin,
            }));
        }
        // A WebAssembly component runs one call at a time: no one to meet.
        let Some(wait) = options.lock_wait().filter(|_| cfg!(not(target_family = "wasm"))) else {
            return Joined::Ready(self.outcome());
        };
        match self.call.inner.flights.meet(&self.call.key, &self.call.tags, self.holds_lock()) {
            Meeting::Lead(leader) => {
                self.leader = Some(leader);
                Joined::Ready(self.outcome())
            }
            Meeting::Alone => Joined::Ready(self.outcome()),
            Meeting::Follow(flight, key) => Joined::Follow(self, flight, key, wait),
        }
    }

    /// Ends the wait of a [`Joined::Follow`]: the leader's value as a hit
    /// (reported as shared), or this ticket, leading the flight if the
    /// leader gave up, or alone if the wait timed out.
    pub(crate) fn followed(mut self, waited: Waited) -> GetOrLock {
        match waited {
            Waited::Value(bytes, error, waited) => {
                let origin = Origin::Shared { hold: self.hold, overwrite: self.overwrite, error, waited };
                GetOrLock::Hit(Hit { value: bytes.to_vec(), storage_key: String::new(), call: self.call, origin })
            }
            Waited::Lead(leader) => {
                self.leader = Some(leader);
                self.outcome()
            }
            Waited::TimedOut => self.outcome(),
        }
    }

    fn outcome(self) -> GetOrLock {
        if self.holds_lock() { GetOrLock::Locked(self) } else { GetOrLock::Miss(self) }
    }

    /// Returns true when this ticket holds the stampede lock.
    pub fn holds_lock(&self) -> bool {
        self.hold.as_ref().is_some_and(|h| h.token.is_some())
    }

    /// Returns how the lock behaved while this ticket was obtained.
    pub fn stats(&self) -> LockStats {
        self.hold.as_ref().map(|h| h.stats).unwrap_or_default()
    }

    /// Returns the storage key the value will be written to; `None` when
    /// nothing will be stored under a snapshot (the backend failed, or the
    /// ticket overwrites undecodable bytes under the current one).
    pub fn storage_key(&self) -> Option<&str> {
        self.hold.as_ref().and_then(|h| h.keys.as_ref()).map(|k| k.storage.as_str())
    }

    /// Returns the info so far.
    pub fn info(&self) -> &CacheInfo {
        self.call.accounting.info()
    }

    /// Ends a ticket (holding no lock) whose value another caller of this
    /// process computed while this one waited: reports a hit of `size`
    /// bytes carrying `error` (the other call's bypass) unless it has its own.
    /// Ends a ticket with a fail-safe value of `size` bytes, returned because
    /// of `error` (a failed lookup keeps its own): a stale hit. The caller
    /// has released the lock.
    pub(crate) fn served_stale(mut self, size: usize, error: Error) -> CacheInfo {
        self.call.accounting.served_stale(size, error);
        self.call.report()
    }

    /// The error of a lookup that failed (the cache is bypassed), if it did.
    pub(crate) fn lookup_error(&self) -> Option<&Error> {
        self.call.accounting.info().error.as_ref()
    }

    /// The fail-safe value for this ticket's entry (see `fail_safe`).
    pub(crate) fn fallback(&self) -> Option<std::sync::Arc<Vec<u8>>> {
        let fail_safe = self.call.inner.fail_safe.as_ref()?;
        let tags: Vec<&str> = self.call.tags.iter().map(String::as_str).collect();
        fail_safe.recall(&self.call.inner.memo.remembered_storage_key(
            &self.call.inner.layout,
            &self.call.key,
            &tags,
        )?)
    }

    pub(crate) fn shared(mut self, size: usize, error: Option<Error>, waited: std::time::Duration) -> CacheInfo {
        self.call.accounting.shared(size, waited, error);
        self.call.report()
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
    /// by default), for callers that learn it after `get_or_lock`.
    pub fn set_lifetime(&mut self, lifetime: Lifetime) {
        self.call.lifetime = lifetime;
    }

    /// Records the computed value (its size, or the error encoding it) and
    /// returns the machine that stores it and releases the lock, with the
    /// error refusing the value (too big, a bad lifetime), if any: already
    /// recorded, and this call's own failure.
    pub(crate) fn finishing(
        &mut self,
        inner: &Arc<Inner>,
        value: Result<&[u8], Error>,
    ) -> Result<(Finishing<'_>, Option<Error>)> {
        if !self.belongs_to(inner) {
            return Err(Error::invalid("this ticket belongs to another cache"));
        }
        let value = match value {
            Ok(value) => value,
            Err(e) => {
                tracing::warn!(error = %e, "cannot encode the computed value");
                self.call.accounting.computed(Err(e));
                return Ok((self.releasing(), None));
            }
        };
        self.call.accounting.computed(Ok(value.len()));
        if let Some(leader) = &mut self.leader {
            // Before the store: a caller arriving after it reads for itself.
            leader.close();
            self.flight_value = Some(value.to_vec());
        }
        let access = match self.call.inner.set_access(value, self.call.lifetime) {
            Ok(access) => access,
            Err(e) => {
                self.call.accounting.bypass(e.clone());
                return Ok((self.releasing(), Some(e)));
            }
        };
        let finishing = match &self.hold {
            Some(hold) => Finishing::Store(Store::new(hold, access)),
            None if self.overwrite => {
                let tags: Vec<&str> = self.call.tags.iter().map(String::as_str).collect();
                Finishing::Overwrite(Snapshot::new(&self.call.inner, &self.call.key, &tags, access))
            }
            None => Finishing::Store(Store::release(&Hold { keys: None, token: None, stats: LockStats::default() })),
        };
        Ok((finishing, None))
    }

    /// The machine that releases the lock, storing nothing.
    pub(crate) fn releasing(&self) -> Finishing<'_> {
        let none = Hold { keys: None, token: None, stats: LockStats::default() };
        Finishing::Store(Store::release(self.hold.as_ref().unwrap_or(&none)))
    }

    /// Records how the store went, then reports the call to the hook.
    pub(crate) fn report(mut self, stored: Result<()>) -> CacheInfo {
        if let Err(e) = stored {
            bypass(&mut self.call.accounting, e, "cannot store the computed value");
        }
        let (leader, shared) = (self.leader.take(), self.flight_value.take());
        let info = self.call.report();
        // The followers get what was stored, and this call's error; with no
        // value (it did not encode) the flight is handed over.
        if let Some(leader) = leader {
            leader.finish(shared.map(|bytes| (bytes, info.error.clone())));
        }
        info
    }

    /// True when this ticket was made by the cache whose state is `inner`.
    pub(crate) fn belongs_to(&self, inner: &Arc<Inner>) -> bool {
        Arc::ptr_eq(inner, &self.call.inner)
    }

    /// Ends a released ticket: reports it only if the call bypassed the
    /// cache (so a failed lookup is never silent); returns the info so far.
    pub(crate) fn released(self) -> CacheInfo {
        if self.info().error.is_some() { self.call.report() } else { self.call.accounting.finish() }
    }
}

/// The store (or overwrite, or release) that finishes a ticket.
pub(crate) enum Finishing<'a> {
    /// Store under the lookup's snapshot and/or release the lock.
    Store(Store),
    /// Overwrite undecodable bytes under the current snapshot.
    Overwrite(Snapshot<'a>),
}

impl Op for Finishing<'_> {
    type Output = ();

    fn start(&mut self, now: Instant) -> Result<Step<()>> {
        match self {
            Finishing::Store(store) => store.start(now),
            Finishing::Overwrite(snapshot) => Ok(done(snapshot.start(now)?)),
        }
    }

    fn resume(&mut self, sent: Vec<Command>, replies: Vec<Reply>, now: Instant) -> Result<Step<()>> {
        match self {
            Finishing::Store(store) => store.resume(sent, replies, now),
            Finishing::Overwrite(snapshot) => Ok(done(snapshot.resume(sent, replies, now)?)),
        }
    }
}

fn done(step: Step<Snapshotted>) -> Step<()> {
    match step {
        Step::Send(commands) => Step::Send(commands),
        Step::Done(_) => Step::Done(()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use crate::sync::Cache;
    use std::time::Duration;

    use super::*;
    use crate::backend::{Backend, Command};
    use crate::error::ErrorKind;

    struct Down;

    impl Backend for Down {
        fn execute(&self, _: &[Command]) -> Result<Vec<Reply>> {
            Err(Error::new(ErrorKind::BackendUnavailable, "down"))
        }
    }

    fn counting(backend: Option<Arc<dyn Backend>>) -> (Cache, Arc<Mutex<Vec<CacheInfo>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let hook_seen = Arc::clone(&seen);
        let mut builder = Cache::builder()
            .in_local_memory(true)
            .hook(move |e| hook_seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(e.info.clone()));
        if let Some(backend) = backend {
            builder = builder.backend(backend);
        }
        (builder.build().expect("cache"), seen)
    }

    #[test]
    fn a_backend_failure_is_a_ticket_that_stores_nothing() {
        let (cache, seen) = counting(Some(Arc::new(Down)));
        let GetOrLock::Miss(ticket) = cache.get_or_lock(&ComputeOptions::key("k").lock(true)) else { panic!("no hit") };
        assert!(!ticket.holds_lock() && ticket.storage_key().is_none());
        assert_eq!(ticket.info().error.as_ref().map(Error::kind), Some(ErrorKind::BackendUnavailable));
        let info = cache.set_and_unlock(ticket, Ok(b"v"));
        assert_eq!((info.serialized_size, info.error.map(|e| e.kind())), (1, Some(ErrorKind::BackendUnavailable)));
        assert_eq!(seen.lock().expect("seen").len(), 1, "set_and_unlock calls the hook once");
    }

    #[test]
    fn releasing_frees_the_lock_and_calls_no_hook() {
        let (cache, seen) = counting(None);
        let options = ComputeOptions::key("k").lock(true).lock_timeout(Duration::from_secs(5));
        for _ in 0..2 {
            let GetOrLock::Locked(ticket) = cache.get_or_lock(&options) else {
                panic!("the previous lock was released")
            };
            let _ = cache.release(ticket);
        }
        assert!(seen.lock().expect("seen").is_empty());
    }

    #[test]
    fn a_dropped_ticket_keeps_its_lock_until_it_expires() {
        let (cache, _) = counting(None);
        let options = ComputeOptions::key("k").lock(true).lock_timeout(Duration::from_millis(300));
        let GetOrLock::Locked(ticket) = cache.get_or_lock(&options) else { panic!("cold") };
        drop(ticket); // no I/O: the lock stays
        let started = Instant::now();
        let GetOrLock::Locked(ticket) = cache.get_or_lock(&options) else {
            panic!("the lock expired, so this caller takes it")
        };
        assert!(
            ticket.stats().waiting_ms > 0 && started.elapsed() >= Duration::from_millis(250),
            "waited for the expiry"
        );
        let _ = cache.release(ticket);
    }

    #[test]
    fn a_bad_lifetime_is_refused_before_the_computation() {
        let (cache, _) = counting(None);
        let options = ComputeOptions::key("k").lifetime(Lifetime::Seconds(u64::MAX)).lock(true);
        let GetOrLock::Miss(ticket) = cache.get_or_lock(&options) else { panic!("refused: no lock is taken") };
        assert_eq!(ticket.info().error.as_ref().map(Error::kind), Some(ErrorKind::InvalidArgument));
        assert!(!ticket.holds_lock() && ticket.storage_key().is_none());
        let _ = cache.release(ticket);
    }

    #[test]
    fn an_encode_failure_is_reported_and_stores_nothing() {
        let (cache, seen) = counting(None);
        let options = ComputeOptions::key("k").tags(["t"]);
        let GetOrLock::Miss(ticket) = cache.get_or_lock(&options) else { panic!("cold") };
        let info = cache.set_and_unlock(ticket, Err::<&[u8], _>(Error::new(ErrorKind::Codec, "no")));
        assert_eq!(info.error.map(|e| e.kind()), Some(ErrorKind::Codec));
        assert_eq!(cache.get_bytes("k", ["t"]).expect("get"), None);
        assert_eq!(seen.lock().expect("seen").len(), 1);
    }

    #[test]
    fn a_ticket_from_another_cache_stores_nothing_there() {
        let (a, _) = counting(None);
        let (b, _) = counting(None);
        let GetOrLock::Miss(ticket) = a.get_or_lock(&ComputeOptions::key("k")) else { panic!("cold") };
        let info = b.set_and_unlock(ticket, Ok(b"v"));
        assert_eq!(info.error.map(|e| e.kind()), Some(ErrorKind::InvalidArgument));
        assert_eq!(
            (a.get_bytes("k", crate::NO_TAGS).expect("a"), b.get_bytes("k", crate::NO_TAGS).expect("b")),
            (None, None)
        );
    }

    #[test]
    fn an_oversized_value_is_refused_at_once_and_releases_the_lock() {
        let cache = Cache::builder().in_local_memory(true).max_value_size(1usize).build().expect("cache");
        let options = ComputeOptions::key("k").lock(true);
        let GetOrLock::Locked(ticket) = cache.get_or_lock(&options) else { panic!("cold") };
        let info = cache.set_and_unlock(ticket, Ok(b"too big"));
        assert_eq!(info.error.map(|e| e.kind()), Some(ErrorKind::InvalidArgument));
        assert!(matches!(cache.get_or_lock(&options), GetOrLock::Locked(_)), "the lock was released");
    }
}
