//! Get-or-compute (the reference's `decorator`): read, or compute once and store.

use std::any::Any;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::compute::call::{Call, GetOrLock, Hit, Joined, Ticket};
use crate::compute::flow::{Lookup, TwoStep, computation_failed};
use crate::config::Lifetime;
use crate::error::Error;
use crate::error::Result;
use crate::local::flight::Flights;
use crate::model::codec::{Cbor, Codec};
use crate::model::info::CacheInfo;
use crate::model::info::FunctionId;
use crate::model::options::{ComputeOptions, DEFAULT_LOCK_TIMEOUT};
use crate::model::tags::Tags;
use crate::sync::cache::Cache;
use crate::sync::drive;

impl<C: Codec> Cache<C> {
    /// Returns the cached value for `options`, or computes it with `compute`,
    /// stores it, and returns it. A backend failure never fails the call: the
    /// value is computed, and the error is reported to the hook.
    ///
    /// ```
    /// use rtc_core::{Cache, ComputeOptions};
    /// let cache = Cache::builder().in_local_memory(true).build().unwrap();
    /// let opts = ComputeOptions::key("answer").tags(["math"]).lock(true);
    /// assert_eq!(cache.get_or_compute(&opts, || 42u32), 42);
    /// assert_eq!(cache.get_or_compute(&opts, || -> u32 { unreachable!("cached") }), 42);
    /// ```
    pub fn get_or_compute<T, F>(&self, options: &ComputeOptions, compute: F) -> T
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> T,
    {
        let result: Result<T, Infallible> = self.try_get_or_compute(options, || Ok(compute()));
        match result {
            Ok(value) => value,
        }
    }

    /// Like [`Cache::get_or_compute`] for a fallible computation: an `Err`
    /// from `compute` is returned as is, nothing is stored, and the lock is
    /// released at once so a waiter can try. (A `compute` that panics
    /// leaves the lock to expire after the lock timeout.)
    pub fn try_get_or_compute<T, E, F>(&self, options: &ComputeOptions, compute: F) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Result<T, E>,
    {
        self.get_or_compute_with(&self.codec, options, compute)
    }

    /// Like [`Cache::try_get_or_compute`] with a codec for this call only.
    pub fn get_or_compute_with<D, T, E, F>(&self, codec: &D, options: &ComputeOptions, compute: F) -> Result<T, E>
    where
        D: Codec,
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Result<T, E>,
    {
        self.run(options, |bytes| codec.decode(bytes), compute, |value| codec.encode(value))
    }

    /// Get-or-compute on raw bytes, with no codec (the C library's form).
    pub fn get_or_compute_bytes<E, F>(&self, options: &ComputeOptions, compute: F) -> Result<Vec<u8>, E>
    where
        F: FnOnce() -> Result<Vec<u8>, E>,
    {
        self.run(options, |bytes| Ok(bytes.to_vec()), compute, |value| Ok(value.clone()))
    }

    /// How many get-or-compute calls with the lock wait, now, for another
    /// caller of this cache in this process that computes the same key
    /// (single-flight followers). For monitoring and tests.
    pub fn single_flight_waiters(&self) -> usize {
        self.inner.flights.waiters()
    }

    /// Get-or-compute on [`Cache::get_or_lock`] and [`Cache::set_and_unlock`],
    /// which do the accounting and call the hook; the control flow is
    /// [`crate::compute::flow::get_or_compute`], shared with the wasmtime host.
    fn run<T, E>(
        &self,
        options: &ComputeOptions,
        decode: impl Fn(&[u8]) -> Result<T>,
        compute: impl FnOnce() -> Result<T, E>,
        encode: impl Fn(&T) -> Result<Vec<u8>>,
    ) -> Result<T, E> {
        crate::compute::flow::get_or_compute(self, options, decode, compute, encode)
    }

    /// Returns a cached version of `function`: calling it with arguments
    /// returns the cached result for those arguments, or computes it.
    ///
    /// ```
    /// use rtc_core::{Cache, function_id};
    /// let cache = Cache::builder().in_local_memory(true).build().unwrap();
    /// let square = cache
    ///     .decorate(function_id!("square"), |n: &u64| n * n)
    ///     .tags_fn(|n: &u64| vec![format!("n:{n}")])
    ///     .lock(true);
    /// assert_eq!(square.call(&7), 49);
    /// assert_eq!(square.call(&7), 49); // a hit
    /// ```
    pub fn decorate<A, T, F>(&self, function: FunctionId, f: F) -> Decorated<A, T, F, C>
    where
        C: Clone,
        A: Serialize,
        T: Serialize + DeserializeOwned,
        F: Fn(&A) -> T,
    {
        Decorated {
            cache: self.clone(),
            function,
            f,
            tags: TagSource::Static(Vec::new()),
            lifetime: Lifetime::Default,
            lock: false,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            hook_userdata: None,
            _types: std::marker::PhantomData,
        }
    }
}

type TagsFn<A> = Arc<dyn Fn(&A) -> Vec<String> + Send + Sync>;

enum TagSource<A> {
    Static(Vec<String>),
    Computed(TagsFn<A>),
}

/// A function whose results are cached, made by [`Cache::decorate`].
pub struct Decorated<A, T, F, C = Cbor> {
    cache: Cache<C>,
    function: FunctionId,
    f: F,
    tags: TagSource<A>,
    lifetime: Lifetime,
    lock: bool,
    lock_timeout: Duration,
    hook_userdata: Option<Arc<dyn Any + Send + Sync>>,
    _types: std::marker::PhantomData<fn(&A) -> T>,
}

impl<A, T, F, C> Decorated<A, T, F, C>
where
    C: Codec,
    A: Serialize,
    T: Serialize + DeserializeOwned,
    F: Fn(&A) -> T,
{
    /// Sets static tags.
    pub fn tags(mut self, tags: impl Tags) -> Self {
        self.tags = TagSource::Static(tags.tag_names().into_iter().map(str::to_owned).collect());
        self
    }

    /// Computes the tags from each call's arguments.
    pub fn tags_fn(mut self, tags: impl Fn(&A) -> Vec<String> + Send + Sync + 'static) -> Self {
        self.tags = TagSource::Computed(Arc::new(tags));
        self
    }

    /// Sets the entry lifetime.
    pub fn lifetime(mut self, lifetime: Lifetime) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// Turns the stampede lock on.
    pub fn lock(mut self, lock: bool) -> Self {
        self.lock = lock;
        self
    }

    /// Sets the lock timeout.
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// Sets data handed to the hook.
    pub fn hook_userdata(mut self, userdata: Arc<dyn Any + Send + Sync>) -> Self {
        self.hook_userdata = Some(userdata);
        self
    }

    /// Returns the cached result for `args`, or computes, stores and returns it.
    /// Arguments that cannot be encoded bypass the cache (logged).
    pub fn call(&self, args: &A) -> T {
        let options = match ComputeOptions::call(self.function.clone(), args) {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, "arguments do not encode; cache bypassed");
                return (self.f)(args);
            }
        };
        let tags = match &self.tags {
            TagSource::Static(t) => t.clone(),
            TagSource::Computed(f) => f(args),
        };
        let mut options = options.tags(tags).lifetime(self.lifetime).lock(self.lock).lock_timeout(self.lock_timeout);
        options.hook_userdata.clone_from(&self.hook_userdata);
        self.cache.get_or_compute(&options, || (self.f)(args))
    }
}

impl<C: Codec> Cache<C> {
    /// The first half of get-or-compute: reads the entry of `options`, and on
    /// a miss takes the stampede lock if the options ask for it (waiting up
    /// to the lock timeout for another holder). A backend failure is recorded
    /// in the info and gives a [`Ticket`] that stores nothing.
    ///
    /// Finish a hit with [`Hit::finish`] (or [`Hit::undecodable`]), and a
    /// ticket with [`Cache::set_and_unlock`]: each calls the hook once.
    ///
    /// ```
    /// use rtc_core::{Cache, ComputeOptions, GetOrLock};
    /// let cache = Cache::builder().in_local_memory(true).build().unwrap();
    /// let options = ComputeOptions::key("answer").tags(["math"]).lock(true);
    /// let GetOrLock::Locked(ticket) = cache.get_or_lock(&options) else { panic!("a cold key") };
    /// let info = cache.set_and_unlock(ticket, Ok(b"42"));
    /// assert!(!info.hit && info.lock_full_miss && info.serialized_size == 2);
    /// let GetOrLock::Hit(hit) = cache.get_or_lock(&options) else { panic!("stored") };
    /// let (value, info) = hit.finish();
    /// assert!(value == b"42" && info.hit && info.lock_full_hit);
    /// ```
    pub fn get_or_lock(&self, options: &ComputeOptions) -> GetOrLock {
        let call = Call::new(&self.inner, options);
        if let Some(bytes) = call.near_bytes() {
            return call.near_hit(&bytes, options);
        }
        let looked = call.lookup(options).and_then(|op| drive(&*self.backend, op));
        match call.looked(looked, options) {
            Joined::Ready(outcome) => outcome,
            Joined::Follow(ticket, flight, key, wait) => ticket.followed(self.inner.flights.wait(&flight, &key, wait)),
        }
    }

    /// The second half of get-or-compute: stores the computed value's bytes
    /// (or records the error encoding it) under the ticket's snapshot,
    /// releases the lock and wakes the waiters in one round trip, then calls
    /// the hook and returns the final info. A failed store is recorded in the
    /// info's `error`, never returned; so is a value over `max_value_size`
    /// or a ticket from another cache (nothing is stored).
    ///
    /// If a tag was invalidated since `get_or_lock`, the value lands where no
    /// reader looks, as it is stale.
    pub fn set_and_unlock(&self, ticket: Ticket, value: Result<impl AsRef<[u8]>, Error>) -> CacheInfo {
        self.store(ticket, value).0
    }

    /// [`Cache::set_and_unlock`], also returning this call's own failure:
    /// the store's error, or the refusal of the value or of the ticket (not
    /// an error the ticket carried from before, such as undecodable bytes).
    pub(crate) fn store(
        &self,
        mut ticket: Ticket,
        value: Result<impl AsRef<[u8]>, Error>,
    ) -> (CacheInfo, Option<Error>) {
        let value = value.as_ref().map(|v| v.as_ref()).map_err(Clone::clone);
        let saving = self.inner.fail_safe.as_ref().zip(ticket.storage_key().map(str::to_owned));
        let (stored, failure) = match ticket.finishing(&self.inner, value.clone()) {
            Ok((op, refused)) => {
                let stored = drive(&*self.backend, op);
                let failure = stored.as_ref().err().cloned().or(refused);
                (stored, failure)
            }
            Err(e) => (Err(e.clone()), Some(e)),
        };
        let info = ticket.report(stored);
        // Stored under the ticket's snapshot: the entry's current value now.
        if let (Some((fail_safe, key)), Ok(bytes), None) = (saving, value, &info.error) {
            fail_safe.save(&key, bytes);
        }
        (info, failure)
    }

    /// Finishes a ticket with a fail-safe value (see `fail_safe`): releases
    /// its lock, reports a stale hit carrying `error`.
    pub(crate) fn serve_stale(&self, ticket: Ticket, size: usize, error: Error) -> CacheInfo {
        if ticket.holds_lock()
            && let Err(e) = drive(&*self.backend, ticket.releasing())
        {
            tracing::warn!(error = %e, "cannot release a stampede lock; it expires after lock_timeout");
        }
        ticket.served_stale(size, error)
    }

    /// Ends a ticket whose computation failed, as [`Cache::get_or_compute`]
    /// ends one: with the fail-safe value of its entry when fail-safe has
    /// one (see `Config::fail_safe`), returned with its lock released and
    /// reported as a stale hit; otherwise released as [`Cache::release`]
    /// does, returning `None`. For callers of the two-step API whose
    /// computation can fail (the asyncio decorator, C loops).
    ///
    /// ```
    /// use std::time::Duration;
    /// use rtc_core::{Cache, ComputeOptions, GetOrLock};
    /// let cache = Cache::builder().in_local_memory(true).build().unwrap();
    /// let options = ComputeOptions::key("k").lock(true);
    /// let GetOrLock::Locked(ticket) = cache.get_or_lock(&options) else { panic!("a cold key") };
    /// let (value, info) = cache.fail_and_unlock(ticket); // fail-safe is off: nothing to serve
    /// assert!(value.is_none() && !info.hit);
    /// ```
    pub fn fail_and_unlock(&self, ticket: Ticket) -> (Option<Vec<u8>>, CacheInfo) {
        match ticket.fallback().filter(|_| ticket.belongs_to(&self.inner)) {
            Some(bytes) => {
                tracing::warn!(error = %computation_failed(), "returning the fail-safe value");
                (Some(bytes.to_vec()), self.serve_stale(ticket, bytes.len(), computation_failed()))
            }
            None => (None, self.release(ticket)),
        }
    }

    /// Gives up a ticket: releases its lock at once (a waiter wakes up and
    /// computes), stores nothing, and returns the info so far. The hook is
    /// called only when the call bypassed the cache (the info holds the
    /// error), so a failed lookup is never silent.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rtc_core::{Cache, ComputeOptions, GetOrLock};
    /// let cache = Cache::builder().in_local_memory(true).build().unwrap();
    /// let options = ComputeOptions::key("k").lock(true).lock_timeout(Duration::from_secs(5));
    /// let GetOrLock::Locked(ticket) = cache.get_or_lock(&options) else { panic!("a cold key") };
    /// let info = cache.release(ticket); // the lock is free again
    /// assert!(info.lock_full_miss && matches!(cache.get_or_lock(&options), GetOrLock::Locked(_)));
    /// ```
    pub fn release(&self, ticket: Ticket) -> CacheInfo {
        if ticket.belongs_to(&self.inner)
            && let Err(e) = drive(&*self.backend, ticket.releasing())
        {
            tracing::warn!(error = %e, "cannot release a stampede lock; it expires after lock_timeout");
        }
        ticket.released()
    }
}

impl<C: Codec> TwoStep for Cache<C> {
    type Hit = Hit;
    type Ticket = Ticket;

    fn lookup(&self, options: &ComputeOptions) -> Lookup<Hit, Ticket> {
        match self.get_or_lock(options) {
            GetOrLock::Hit(hit) => Lookup::Hit(hit),
            GetOrLock::Locked(ticket) | GetOrLock::Miss(ticket) => Lookup::Compute(ticket),
        }
    }

    fn value(hit: &Hit) -> &[u8] {
        hit.value()
    }

    fn finish_hit(&self, _: &ComputeOptions, hit: Hit) {
        let _ = hit.finish();
    }

    fn undecodable(&self, _: &ComputeOptions, hit: Hit, error: Error) -> Ticket {
        hit.undecodable(error)
    }

    fn store(&self, _: &ComputeOptions, ticket: Ticket, value: Result<Vec<u8>>) -> Option<Error> {
        self.set_and_unlock(ticket, value).error
    }

    fn give_up(&self, _: &ComputeOptions, ticket: Ticket) {
        let _ = self.release(ticket);
    }

    // `get_or_lock` meets this process's other callers itself (so the two
    // calls have single-flight on every surface): the flow must not again.
    fn flights(&self) -> Option<&Flights> {
        None
    }

    fn holds_lock(ticket: &Ticket) -> bool {
        ticket.holds_lock()
    }

    fn shared(&self, _: &ComputeOptions, ticket: Ticket, size: usize, error: Option<Error>, waited: Duration) {
        let _ = ticket.shared(size, error, waited);
    }

    fn fallback(&self, ticket: &Ticket) -> Option<Arc<Vec<u8>>> {
        ticket.fallback()
    }

    fn serve_stale(&self, _: &ComputeOptions, ticket: Ticket, size: usize, error: Error) {
        let _ = Cache::serve_stale(self, ticket, size, error);
    }
}

/// [`Cache::set_and_unlock`], with this call's own failure beside the info
/// (the store's error, or the refusal of the value or the ticket), for the
/// component, whose `set-and-unlock` returns it as its error while a codec
/// error the ticket carried from its lookup stays in the info only.
pub fn set_and_unlock_outcome<C: Codec>(
    cache: &Cache<C>,
    ticket: Ticket,
    value: Result<impl AsRef<[u8]>, Error>,
) -> (CacheInfo, Option<Error>) {
    cache.store(ticket, value)
}
