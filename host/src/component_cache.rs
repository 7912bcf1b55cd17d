//! [`ComponentCache`]: core's cache API, served by the rtc component.

use std::any::Any;
use std::convert::Infallible;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rtc_core::adapter::{Accounting, Flights, HostBackend, Lookup, TwoStep};
use rtc_core::{
    Backend, CacheInfo, Cbor, Codec, ComputeOptions, Config, DisabledBackend, Error, ErrorKind, Hook, HookEvent,
    Lifetime, LockStats, MemoryBackend, Result, Tags, Target,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use wasmtime::Store;
use wasmtime::component::ResourceAny;

use crate::bindings::Rtc;
use crate::bindings::exports::rtc::cache::cache as wit;
use crate::convert::{
    from_wit_error, from_wit_stats, lock_timeout_ms, to_wit_config, to_wit_function, to_wit_lifetime,
};
use crate::runtime::ComponentRuntime;

use crate::state::{Held, HostState, Imports, panic_message};

/// Core's cache API (`rtc_core::Cache`), run by the rtc WebAssembly component
/// in wasmtime: the same operations, the same arguments, the same errors, and
/// the same keys in Redis, so code written for one runs on the other and both
/// can share a Redis.
///
/// Cheap to clone and usable from many threads: each call checks an
/// instance of the component out of a pool (one `Store` per concurrent
/// caller, created from the runtime's `InstancePre` on demand), and puts it
/// back afterwards. An instance that trapped (a bug, or memory exhausted) is
/// discarded and the call returns an [`ErrorKind::Other`] error; the next
/// call gets a fresh instance. A [`Ticket`] keeps its instance until it is
/// used or dropped.
///
/// ```no_run
/// use rtc_core::{Config, Lifetime};
/// use rtc_host::ComponentCache;
///
/// let config = Config::default().namespace("docs").in_local_memory(true);
/// let cache = ComponentCache::new(rtc_host::default_component_path(), config)?;
/// cache.set("user:1", &"Ada", ["users"], Lifetime::Default)?;
/// assert_eq!(cache.get::<String>("user:1", ["users"])?, Some("Ada".to_string()));
/// cache.invalidate("users")?;
/// assert_eq!(cache.get::<String>("user:1", ["users"])?, None);
/// # Ok::<(), rtc_core::Error>(())
/// ```
#[derive(Clone)]
pub struct ComponentCache {
    pool: Arc<Pool>,
}

impl std::fmt::Debug for ComponentCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComponentCache")
            .field("namespace", &self.pool.config.namespace)
            .field("runtime", &self.pool.runtime)
            .finish_non_exhaustive()
    }
}

/// Builds a [`ComponentCache`].
///
/// ```no_run
/// use std::sync::Arc;
/// use rtc_core::{Config, MemoryBackend};
/// use rtc_host::{ComponentCache, ComponentRuntime};
///
/// let runtime = ComponentRuntime::shared(rtc_host::default_component_path())?;
/// let cache = ComponentCache::builder(runtime)
///     .config(Config::default().namespace("shop"))
///     .backend(Arc::new(MemoryBackend::new()))
///     .hook(|event| eprintln!("{} hit={}", event.key, event.info.hit))
///     .build()?;
/// # Ok::<(), rtc_core::Error>(())
/// ```
#[must_use]
pub struct ComponentCacheBuilder {
    runtime: Arc<ComponentRuntime>,
    config: Config,
    backend: Option<Arc<dyn Backend>>,
    hook: Option<Hook>,
    max_instances: usize,
    max_memory: Option<usize>,
    guest_memory: bool,
}

impl ComponentCacheBuilder {
    /// Replaces the configuration (default: [`Config::default`]).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Serves the component's Redis import with `backend`, instead of the
    /// one the configuration names (Redis, or memory with `in_local_memory`).
    pub fn backend(mut self, backend: Arc<dyn Backend>) -> Self {
        self.backend = Some(backend);
        self
    }

    /// Sets the hook called after each get-or-compute with the component's
    /// report (and its `hook_userdata`).
    pub fn hook(mut self, hook: impl Fn(&HookEvent<'_>) + Send + Sync + 'static) -> Self {
        self.hook = Some(Arc::new(hook));
        self
    }

    /// Sets the most instances this cache keeps alive at once (default 16):
    /// a caller finding all of them busy waits for one.
    pub fn max_instances(mut self, n: usize) -> Self {
        self.max_instances = n.max(1);
        self
    }

    /// Caps each instance's linear memory at `bytes` (default and upper
    /// bound: the runtime's [`crate::RuntimeOptions::max_memory`]). Growing past it
    /// traps the instance, and the call fails.
    pub fn max_memory(mut self, bytes: usize) -> Self {
        self.max_memory = Some(bytes);
        self
    }

    /// Keeps the entries inside the component (the WIT `in-local-memory`)
    /// rather than in a host backend. The store is private to one instance,
    /// so this limits the cache to one instance: concurrent callers take
    /// turns, and a caller holding a [`Ticket`] must use or drop it before
    /// calling the cache again.
    pub fn guest_memory(mut self, on: bool) -> Self {
        self.guest_memory = on;
        self
    }

    /// Builds the cache and creates its first instance (so a component that
    /// does not work fails here, not at the first call).
    ///
    /// Fails with [`ErrorKind::InvalidArgument`] for an unusable Redis
    /// address, or with the error of the first instantiation.
    pub fn build(self) -> Result<ComponentCache> {
        let config = self.config;
        // The precedence is core's (`Config::target`), as for the native engine; guest
        // memory means the host serves no Redis at all.
        let native =
            !self.guest_memory && self.backend.is_none() && matches!(config.target(), Target::Cluster | Target::Redis);
        let backend: Arc<dyn Backend> = match (config.target(), self.backend) {
            _ if self.guest_memory => Arc::new(DisabledBackend),
            (Target::Disabled, _) => Arc::new(DisabledBackend),
            (_, Some(backend)) => backend,
            (Target::Memory, None) => Arc::new(MemoryBackend::new()),
            (Target::Cluster | Target::Redis, None) => rtc_core::native_backend(&config)?,
        };
        // The near cache and the fail-safe values live here, in the host, below
        // the component: core's HostBackend answers and learns from its Redis batches.
        let host = if self.guest_memory {
            // The host sees no batches: nothing to keep below the component.
            None
        } else {
            HostBackend::wrap(&config, Arc::clone(&backend), native)?
        };
        let backend: Arc<dyn Backend> = match &host {
            Some(host) => Arc::clone(host) as Arc<dyn Backend>,
            None => backend,
        };
        let runtime_memory = self.runtime.options().max_memory;
        let pool = Arc::new(Pool {
            wit_config: to_wit_config(&config, self.guest_memory),
            config,
            imports: Arc::new(Imports { backend, hook: self.hook }),
            max_memory: self.max_memory.map_or(runtime_memory, |m| m.min(runtime_memory)),
            max_instances: if self.guest_memory { 1 } else { self.max_instances },
            runtime: self.runtime,
            slots: Mutex::new(Slots { idle: Vec::new(), live: 0, waiting: 0 }),
            freed: Condvar::new(),
            flights: Flights::default(),
            host,
        });
        let first = pool.acquire()?;
        pool.release(first, true);
        Ok(ComponentCache { pool })
    }
}

/// The outcome of [`ComponentCache::get_or_lock`], shaped as core's `GetOrLock`.
#[derive(Debug)]
pub enum GetOrLock {
    /// The value was cached: decode [`Hit::value`], then call [`Hit::finish`],
    /// or [`Hit::undecodable`] if it does not decode.
    Hit(Hit),
    /// Not cached, and this caller holds the lock: compute the value, then
    /// call [`ComponentCache::set_and_unlock`] (or drop the ticket to give up).
    Locked(Ticket),
    /// Not cached, and no lock is held (none was asked for, or the wait for
    /// another holder timed out): compute the value; `set_and_unlock` still
    /// stores it under the snapshot.
    Miss(Ticket),
}

/// A cached value found by [`ComponentCache::get_or_lock`], shaped as core's
/// `Hit`: the component reports it when it is finished, so a hit whose bytes
/// do not decode is reported as the computation it turns into, as natively.
///
/// It holds the component instance that made it until it is finished (or
/// dropped, which reports nothing).
#[must_use = "a hit is reported by `finish`"]
pub struct Hit {
    value: Vec<u8>,
    stats: LockStats,
    pool: Arc<Pool>,
    slot: Option<Slot>,
    found: Option<ResourceAny>,
    hook: CallHook,
    lifetime: Lifetime,
}

impl std::fmt::Debug for Hit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hit").field("len", &self.value.len()).field("stats", &self.stats).finish_non_exhaustive()
    }
}

impl Hit {
    /// Returns the cached bytes.
    pub fn value(&self) -> &[u8] {
        &self.value
    }

    /// Returns how the lock behaved.
    pub fn stats(&self) -> LockStats {
        self.stats
    }

    /// Finishes the call: the component reports the hit to the hook. Returns
    /// the bytes.
    pub fn finish(mut self) -> Vec<u8> {
        if let (Some(mut slot), Some(found)) = (self.slot.take(), self.found.take()) {
            self.hook.enter(&mut slot.store);
            let finished = guarded(|| {
                slot.rtc.rtc_cache_cache().found().call_finish(&mut slot.store, found)?;
                Ok(Ok::<_, crate::bindings::rtc::cache::types::Error>(()))
            });
            CallHook::leave(&mut slot.store);
            let healthy = finished.as_ref().map_or_else(|f| !f.trapped, |()| true);
            self.pool.release(slot, healthy);
        }
        std::mem::take(&mut self.value)
    }

    /// The bytes did not decode (`error`): the call becomes a computation
    /// whose [`ComponentCache::set_and_unlock`] overwrites them and reports
    /// the call, with `error`. Fails only when the instance trapped.
    pub fn undecodable(mut self, error: &Error) -> Result<Ticket> {
        let (Some(mut slot), Some(found)) = (self.slot.take(), self.found.take()) else {
            return Err(Error::new(ErrorKind::Other, "this hit was already used"));
        };
        let reason = error.to_string();
        let made = guarded(|| {
            let handle = slot.rtc.rtc_cache_cache().found().call_undecodable(&mut slot.store, found, &reason)?;
            let storage_key = slot.rtc.rtc_cache_cache().ticket().call_storage_key(&mut slot.store, handle)?;
            Ok(Ok::<_, crate::bindings::rtc::cache::types::Error>((handle, storage_key)))
        });
        match made {
            Ok((handle, storage_key)) => Ok(Ticket {
                pool: Arc::clone(&self.pool),
                slot: Some(slot),
                handle: Some(handle),
                holds_lock: false,
                stats: LockStats::default(),
                storage_key,
                lifetime: self.lifetime,
                hook: std::mem::take(&mut self.hook),
            }),
            Err(failure) => {
                self.pool.release(slot, !failure.trapped);
                Err(failure.error)
            }
        }
    }
}

impl Drop for Hit {
    fn drop(&mut self) {
        let (Some(mut slot), Some(found)) = (self.slot.take(), self.found.take()) else {
            return;
        };
        // Reports nothing, as core's `Hit` dropped unfinished.
        let dropped = catch_unwind(AssertUnwindSafe(|| found.resource_drop(&mut slot.store)));
        self.pool.release(slot, matches!(dropped, Ok(Ok(()))));
    }
}

/// The right to store one computed value under the tag snapshot taken by
/// [`ComponentCache::get_or_lock`], and the stampede lock if
/// [`Ticket::holds_lock`], shaped as core's `Ticket`.
///
/// It holds the component instance that made it. Dropping it without
/// storing releases its lock (and wakes waiters) and returns the instance.
#[must_use = "a ticket holds a lock until it is used or dropped"]
pub struct Ticket {
    pool: Arc<Pool>,
    slot: Option<Slot>,
    handle: Option<ResourceAny>,
    holds_lock: bool,
    stats: LockStats,
    storage_key: String,
    lifetime: Lifetime,
    hook: CallHook,
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket")
            .field("holds_lock", &self.holds_lock)
            .field("stats", &self.stats)
            .field("storage_key", &self.storage_key)
            .finish_non_exhaustive()
    }
}

impl Ticket {
    /// Returns true when this ticket holds the stampede lock.
    pub fn holds_lock(&self) -> bool {
        self.holds_lock
    }

    /// Returns how the lock behaved while this ticket was obtained.
    pub fn stats(&self) -> LockStats {
        self.stats
    }

    /// Returns the storage key the value will be written to.
    pub fn storage_key(&self) -> &str {
        &self.storage_key
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let (Some(mut slot), Some(handle)) = (self.slot.take(), self.handle.take()) else {
            return;
        };
        // The guest's destructor releases the lock through `redis.execute`.
        let dropped = catch_unwind(AssertUnwindSafe(|| handle.resource_drop(&mut slot.store)));
        let healthy = match dropped {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::warn!(error = %format!("{e:#}"), "dropping a ticket trapped; the instance is discarded");
                false
            }
            Err(panic) => {
                tracing::warn!(panic = panic_message(&*panic), "dropping a ticket panicked; the instance is discarded");
                false
            }
        };
        self.pool.release(slot, healthy);
    }
}

impl ComponentCache {
    /// Builds a cache on the component at `path` (compiled once per process
    /// and path, see [`ComponentRuntime::shared`]) for `config`: Redis as the
    /// configuration names it, or the in-process memory backend when
    /// `in_local_memory` is set (shared by all the cache's instances).
    ///
    /// Fails with [`ErrorKind::InvalidArgument`] when the component is
    /// missing (the message tells how to build it) or the Redis address is
    /// unusable.
    pub fn new(path: impl AsRef<Path>, config: Config) -> Result<Self> {
        ComponentCache::builder(ComponentRuntime::shared(path)?).config(config).build()
    }

    /// Returns a builder for a cache on `runtime`.
    pub fn builder(runtime: Arc<ComponentRuntime>) -> ComponentCacheBuilder {
        ComponentCacheBuilder {
            runtime,
            config: Config::default(),
            backend: None,
            hook: None,
            max_instances: 16,
            max_memory: None,
            guest_memory: false,
        }
    }

    /// Returns the configuration this cache was built from.
    pub fn config(&self) -> &Config {
        &self.pool.config
    }

    /// Returns the runtime this cache runs on.
    pub fn runtime(&self) -> &Arc<ComponentRuntime> {
        &self.pool.runtime
    }

    /// Stores `value` (encoded as CBOR) under `key` and `tags`.
    pub fn set<T: Serialize + ?Sized>(&self, key: &str, value: &T, tags: impl Tags, lifetime: Lifetime) -> Result<()> {
        self.set_bytes(key, &Cbor.encode(value)?, tags, lifetime)
    }

    /// Reads the value of `key` under `tags`: `Ok(Some)` on a hit, `Ok(None)`
    /// on a miss, `Err` when the backend failed. Bytes that do not decode are
    /// logged and read as a miss.
    pub fn get<T: DeserializeOwned>(&self, key: &str, tags: impl Tags) -> Result<Option<T>> {
        let Some(bytes) = self.get_bytes(key, tags)? else {
            return Ok(None);
        };
        match Cbor.decode(&bytes) {
            Ok(value) => Ok(Some(value)),
            Err(e) => {
                tracing::warn!(key, error = %e, "cached bytes do not decode; read as a miss");
                Ok(None)
            }
        }
    }

    /// Stores raw bytes under `key` and `tags`.
    pub fn set_bytes(&self, key: &str, value: &[u8], tags: impl Tags, lifetime: Lifetime) -> Result<()> {
        self.set_with(key, value, &owned(tags), lifetime)
    }

    /// Reads raw bytes: `Ok(Some)` on a hit, `Ok(None)` on a miss.
    pub fn get_bytes(&self, key: &str, tags: impl Tags) -> Result<Option<Vec<u8>>> {
        self.get_with(key, &owned(tags))
    }

    /// What the near cache has done (hits, misses, invalidations received,
    /// flushes, evictions) and holds; `None` when it is off. As natively,
    /// it is configured by `Config::near_cache_max_entries`; it lives in
    /// the host, which answers hits and learns entries from the
    /// component's Redis batches.
    pub fn near_stats(&self) -> Option<rtc_core::NearStats> {
        self.pool.host.as_ref().and_then(|h| h.near_stats())
    }

    /// Deletes the entry of `key` under `tags`; returns whether one existed.
    pub fn delete(&self, key: &str, tags: impl Tags) -> Result<bool> {
        self.delete_with(key, &owned(tags))
    }

    /// Invalidates one tag or several, in one round trip.
    pub fn invalidate(&self, tags: impl Tags) -> Result<()> {
        self.invalidate_with(&owned(tags))
    }

    // The `*_with` forms take the tags as the generated bindings lower them
    // (`&[String]`), so `RawCache`, which has them so already, copies nothing.

    fn set_with(&self, key: &str, value: &[u8], tags: &[String], lifetime: Lifetime) -> Result<()> {
        self.call(|s| cache_api(&s.rtc).call_set(&mut s.store, s.cache, key, value, tags, to_wit_lifetime(lifetime)))
    }

    fn get_with(&self, key: &str, tags: &[String]) -> Result<Option<Vec<u8>>> {
        // A near-cache hit needs no instance: the host answers it as native does.
        if let Some(host) = &self.pool.host {
            let names: Vec<&str> = tags.iter().map(String::as_str).collect();
            if let Some(bytes) = host.get(key, &names) {
                return Ok(Some(bytes.to_vec()));
            }
        }
        self.call(|s| cache_api(&s.rtc).call_get(&mut s.store, s.cache, key, tags))
    }

    fn delete_with(&self, key: &str, tags: &[String]) -> Result<bool> {
        self.call(|s| cache_api(&s.rtc).call_delete(&mut s.store, s.cache, key, tags))
    }

    fn invalidate_with(&self, tags: &[String]) -> Result<()> {
        self.call(|s| cache_api(&s.rtc).call_invalidate(&mut s.store, s.cache, tags))
    }

    /// Invalidates every entry of the namespace in one write.
    pub fn invalidate_all(&self) -> Result<()> {
        self.call(|s| cache_api(&s.rtc).call_invalidate_all(&mut s.store, s.cache))
    }

    /// The component's `get-or-lock`, core's [`rtc_core::Cache::get_or_lock`]
    /// run in the guest: reads the entry of `options`, and on a miss takes the
    /// stampede lock if the options ask for it. The component reports a
    /// failed lookup to the hook; a hit is reported by [`Hit::finish`], a
    /// miss by [`ComponentCache::set_and_unlock`]. `Err` means the backend failed:
    /// compute the value and do not store it.
    pub fn get_or_lock(&self, options: &ComputeOptions) -> Result<GetOrLock> {
        let hook = CallHook::reporting(options.userdata().cloned());
        self.lookup(options, hook).map_err(|f| f.error)
    }

    /// The component's `set-and-unlock`: stores `value` under the ticket's
    /// snapshot for the options' lifetime, releases its lock (if it holds
    /// one) and wakes the waiters, all in one round trip, and reports the
    /// call to the hook.
    pub fn set_and_unlock(&self, ticket: Ticket, value: &[u8]) -> Result<()> {
        store_ticket(ticket, value).map_err(|f| f.error)
    }

    /// Returns the cached value for `options`, or computes it with `compute`,
    /// stores it, and returns it. A backend failure never fails the call: the
    /// value is computed, and the error is reported to the hook.
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

    /// Like [`ComponentCache::get_or_compute`] for a fallible computation: an
    /// `Err` from `compute` is returned as is, nothing is stored, and the
    /// lock is released so a waiter can try.
    pub fn try_get_or_compute<T, E, F>(&self, options: &ComputeOptions, compute: F) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Result<T, E>,
    {
        self.run(options, |bytes| Cbor.decode(bytes), compute, |value| Cbor.encode(value))
    }

    /// How many get-or-compute calls with the lock wait, now, for another
    /// caller of this cache in this process that computes the same key
    /// (single-flight followers), as [`rtc_core::Cache::single_flight_waiters`].
    pub fn single_flight_waiters(&self) -> usize {
        self.pool.flights.waiters()
    }

    /// Get-or-compute on raw bytes, with no codec.
    pub fn get_or_compute_bytes<E, F>(&self, options: &ComputeOptions, compute: F) -> Result<Vec<u8>, E>
    where
        F: FnOnce() -> Result<Vec<u8>, E>,
    {
        self.run(options, |bytes| Ok(bytes.to_vec()), compute, |value| Ok(value.clone()))
    }

    /// Get-or-compute on the component, with core's control flow
    /// ([`rtc_core::adapter::get_or_compute`]) over the component's
    /// `get-or-lock` and `set-and-unlock` (see the [`TwoStep`] impl below).
    fn run<T, E>(
        &self,
        options: &ComputeOptions,
        decode: impl Fn(&[u8]) -> Result<T>,
        compute: impl FnOnce() -> Result<T, E>,
        encode: impl Fn(&T) -> Result<Vec<u8>>,
    ) -> Result<T, E> {
        rtc_core::adapter::get_or_compute(self, options, decode, compute, encode)
    }

    /// Runs `get-or-lock` and turns its outcome into [`GetOrLock`].
    fn lookup(&self, options: &ComputeOptions, hook: CallHook) -> Result<GetOrLock, Failure> {
        let (key, tags) = (options.cache_key(), options.tag_list());
        let wit_options = wit::LockOptions {
            lock_timeout_ms: lock_timeout_ms(options.lock_wait()),
            function: to_wit_function(options.function_id()),
            arguments: options.arguments().to_vec(),
            method: options.is_method(),
        };
        let mut slot = self.pool.acquire().map_err(Failure::unanswered)?;
        hook.enter(&mut slot.store);
        let looked =
            guarded(|| cache_api(&slot.rtc).call_get_or_lock(&mut slot.store, slot.cache, key, tags, &wit_options));
        let held = CallHook::leave(&mut slot.store);
        let lookup = match looked {
            Ok(lookup) => lookup,
            Err(mut failure) => {
                self.pool.release(slot, !failure.trapped);
                failure.held = held;
                return Err(failure);
            }
        };
        // Only a failed lookup is reported at once; anything else held goes on now,
        // and the hit or ticket reports as usual.
        self.pool.replay(held, hook.userdata.as_deref());
        let hook = CallHook { hold: false, ..hook };
        let handle = match lookup {
            wit::Lookup::Hit(hit) => {
                return Ok(GetOrLock::Hit(Hit {
                    value: hit.value,
                    stats: from_wit_stats(hit.stats),
                    pool: Arc::clone(&self.pool),
                    slot: Some(slot),
                    found: Some(hit.found),
                    hook,
                    lifetime: options.entry_lifetime(),
                }));
            }
            wit::Lookup::Locked(handle) | wit::Lookup::Miss(handle) => handle,
        };
        let locked = matches!(lookup, wit::Lookup::Locked(_));
        let described = guarded(|| {
            let ticket = slot.rtc.rtc_cache_cache().ticket();
            let stats = ticket.call_stats(&mut slot.store, handle)?;
            let storage_key = ticket.call_storage_key(&mut slot.store, handle)?;
            Ok(Ok::<_, crate::bindings::rtc::cache::types::Error>((stats, storage_key)))
        });
        let (stats, storage_key) = match described {
            Ok(described) => described,
            Err(failure) => {
                self.pool.release(slot, false);
                return Err(failure);
            }
        };
        let ticket = Ticket {
            pool: Arc::clone(&self.pool),
            slot: Some(slot),
            handle: Some(handle),
            holds_lock: locked,
            stats: from_wit_stats(stats),
            storage_key,
            lifetime: options.entry_lifetime(),
            hook,
        };
        Ok(if locked { GetOrLock::Locked(ticket) } else { GetOrLock::Miss(ticket) })
    }

    /// Runs one export on a pooled instance; a trap discards the instance.
    fn call<T>(
        &self,
        body: impl FnOnce(&mut Slot) -> wasmtime::Result<Result<T, crate::bindings::rtc::cache::types::Error>>,
    ) -> Result<T> {
        let mut slot = self.pool.acquire()?;
        let result = guarded(|| body(&mut slot));
        let healthy = result.as_ref().map_or_else(|f| !f.trapped, |_| true);
        self.pool.release(slot, healthy);
        result.map_err(|f| f.error)
    }
}

/// A get-or-compute waiting for its value on the component: the component's
/// ticket (none when the lookup failed) and core's accounting of the call,
/// which the host reports only for what the component could not (no
/// instance, a trap, an encode failure).
pub struct PendingCall {
    ticket: Option<Ticket>,
    shadow: Accounting,
    /// The component reported this call already (its lookup failed, and
    /// the WIT reports a failed get-or-lock at once).
    reported: bool,
    /// Why the lookup failed, if it did.
    error: Option<Error>,
    /// The component's report of the failed lookup, held while fail-safe
    /// may still answer the call (a stale hit is reported instead).
    held: Vec<Held>,
    /// The call's key and tags, to find its fail-safe value.
    key: String,
    tags: Vec<String>,
}

impl PendingCall {
    fn new(ticket: Option<Ticket>, shadow: Accounting, options: &ComputeOptions) -> Self {
        PendingCall {
            ticket,
            shadow,
            reported: false,
            error: None,
            held: Vec::new(),
            key: options.cache_key().to_owned(),
            tags: options.tag_list().to_vec(),
        }
    }
}

/// The component's calls, for core's get-or-compute. The component does the
/// accounting and reports to the hook; the host's `shadow` measures too.
impl TwoStep for ComponentCache {
    type Hit = Hit;
    type Ticket = PendingCall;

    fn lookup(&self, options: &ComputeOptions) -> Lookup<Hit, PendingCall> {
        let shadow = Accounting::start(options);
        // With fail-safe on, a failed lookup may end as a stale hit: the
        // component's report of it waits for the outcome.
        let hold = self.pool.host.as_ref().is_some_and(|h| h.has_fail_safe());
        let hook = CallHook { userdata: options.userdata().cloned(), hold };
        let mut call = match self.lookup(options, hook) {
            Ok(GetOrLock::Hit(hit)) => return Lookup::Hit(hit),
            Ok(GetOrLock::Locked(t) | GetOrLock::Miss(t)) => PendingCall::new(Some(t), shadow, options),
            Err(mut failure) => {
                let mut call = PendingCall::new(None, shadow, options);
                call.reported = failure.answered;
                call.error = Some(failure.error.clone());
                call.held = std::mem::take(&mut failure.held);
                unanswered(&mut call.shadow, options.cache_key(), failure, "cache bypassed");
                call
            }
        };
        call.shadow.looked_up(call.ticket.as_ref().map(Ticket::stats).unwrap_or_default());
        Lookup::Compute(call)
    }

    fn lookup_error(call: &PendingCall) -> Option<Error> {
        call.error.clone()
    }

    fn fallback(&self, call: &PendingCall) -> Option<Arc<Vec<u8>>> {
        let tags: Vec<&str> = call.tags.iter().map(String::as_str).collect();
        self.pool.host.as_ref()?.fallback(&call.key, &tags)
    }

    fn serve_stale(&self, options: &ComputeOptions, call: PendingCall, size: usize, error: Error) {
        // A stale hit is this call's one report: the held one (its failed lookup) is dropped.
        let PendingCall { ticket, mut shadow, .. } = call;
        // Dropping the component's ticket releases its lock (the guest's destructor).
        drop(ticket);
        shadow.served_stale(size, error);
        self.pool.report(options.cache_key(), options.tag_list(), &shadow.finish(), options.userdata().map(|u| &**u));
    }

    fn value(hit: &Hit) -> &[u8] {
        hit.value()
    }

    fn finish_hit(&self, _: &ComputeOptions, hit: Hit) {
        // The component reports the hit.
        let _ = hit.finish();
    }

    fn undecodable(&self, options: &ComputeOptions, hit: Hit, error: Error) -> PendingCall {
        tracing::warn!(key = options.cache_key(), error = %error, "cached bytes do not decode; computing and overwriting");
        let mut shadow = Accounting::start(options);
        shadow.looked_up(LockStats::default());
        // The component's ticket overwrites the bytes and reports the call.
        let ticket = match hit.undecodable(&error) {
            Ok(ticket) => Some(ticket),
            Err(e) => {
                shadow.bypass(e);
                None
            }
        };
        PendingCall::new(ticket, shadow, options)
    }

    fn store(&self, options: &ComputeOptions, call: PendingCall, encoded: Result<Vec<u8>>) -> Option<Error> {
        let PendingCall { ticket, mut shadow, held, .. } = call;
        let (key, tags) = (options.cache_key(), options.tag_list());
        // Fail-safe did not answer: the component's report of the failed lookup goes on.
        self.pool.replay(held, options.userdata().map(|u| &**u));
        shadow.computed(encoded.as_ref().map(Vec::len).map_err(Error::clone));
        let mut error = shadow.info().error.clone();
        let stored = match (&encoded, ticket) {
            // The ticket drops (releasing the lock); the component reports nothing for it.
            (Err(e), _) => {
                tracing::warn!(key, error = %e, "cannot encode the computed value");
                Ok(())
            }
            (Ok(bytes), Some(ticket)) => store_ticket(ticket, bytes),
            (Ok(_), None) => Ok(()),
        };
        if let Err(failure) = stored {
            error = Some(failure.error.clone());
            unanswered(&mut shadow, key, failure, "cannot store the computed value");
        }
        if shadow.info().error.is_some() {
            self.pool.report(key, tags, &shadow.finish(), options.userdata().map(|u| &**u));
        }
        error
    }

    fn give_up(&self, options: &ComputeOptions, mut call: PendingCall) {
        self.pool.replay(std::mem::take(&mut call.held), options.userdata().map(|u| &**u));
        // Dropping the component's ticket releases its lock (the guest's destructor).
        drop(call);
    }

    fn flights(&self) -> Option<&Flights> {
        Some(&self.pool.flights)
    }

    fn holds_lock(call: &PendingCall) -> bool {
        call.ticket.as_ref().is_some_and(Ticket::holds_lock)
    }

    fn shared(&self, options: &ComputeOptions, call: PendingCall, size: usize, error: Option<Error>, waited: Duration) {
        let PendingCall { ticket, mut shadow, reported, held, .. } = call;
        // The component's ticket goes unused, and reports nothing.
        drop(ticket);
        self.pool.replay(held, options.userdata().map(|u| &**u));
        if reported {
            // The component reported this call when its lookup failed (the
            // WIT's rule); one report per call.
            return;
        }
        shadow.shared(size, waited);
        if shadow.info().error.is_none()
            && let Some(e) = error
        {
            shadow.bypass(e);
        }
        self.pool.report(options.cache_key(), options.tag_list(), &shadow.finish(), options.userdata().map(|u| &**u));
    }
}

/// Logs a failed call, and records it in `shadow` when the component did not
/// answer (and so could not report it).
fn unanswered(shadow: &mut Accounting, key: &str, failure: Failure, what: &str) {
    tracing::warn!(key, error = %failure.error, "{what}");
    if !failure.answered {
        shadow.bypass(failure.error);
    }
}

/// Runs `set-and-unlock` on the ticket's own instance (and cache, as core's
/// ticket carries its own), then returns the instance to its pool.
fn store_ticket(mut ticket: Ticket, value: &[u8]) -> Result<(), Failure> {
    let lifetime = ticket.lifetime;
    let (Some(mut slot), Some(handle)) = (ticket.slot.take(), ticket.handle.take()) else {
        return Err(Failure::unanswered(Error::new(ErrorKind::Other, "this ticket was already used")));
    };
    let pool = Arc::clone(&ticket.pool);
    ticket.hook.enter(&mut slot.store);
    let result = guarded(|| {
        cache_api(&slot.rtc).call_set_and_unlock(&mut slot.store, slot.cache, handle, value, to_wit_lifetime(lifetime))
    });
    CallHook::leave(&mut slot.store);
    let healthy = result.as_ref().map_or_else(|f| !f.trapped, |_| true);
    pool.release(slot, healthy);
    result
}

/// The `hook_userdata` the component's `hooks.report` passes on during a
/// call, and whether its reports are held for the host to decide on.
#[derive(Default)]
struct CallHook {
    userdata: Option<Arc<dyn Any + Send + Sync>>,
    hold: bool,
}

impl CallHook {
    /// Reports reach the hook with the call's userdata.
    fn reporting(userdata: Option<Arc<dyn Any + Send + Sync>>) -> Self {
        CallHook { userdata, hold: false }
    }

    fn enter(&self, store: &mut Store<HostState>) {
        let data = store.data_mut();
        data.userdata.clone_from(&self.userdata);
        data.holding = self.hold;
    }

    /// Ends the call on `store`; returns the reports held during it.
    fn leave(store: &mut Store<HostState>) -> Vec<Held> {
        let data = store.data_mut();
        data.userdata = None;
        data.holding = false;
        std::mem::take(&mut data.held)
    }
}

/// A failed call: the error, whether the instance trapped (and must go),
/// and whether the component answered (and so reported it to the hook).
struct Failure {
    error: Error,
    trapped: bool,
    answered: bool,
    /// The component's reports of the call, when they were held.
    held: Vec<Held>,
}

impl Failure {
    /// The component answered with an error.
    fn answered(error: Error) -> Self {
        Failure { error, trapped: false, answered: true, held: Vec::new() }
    }

    /// The call never reached the component (no instance could be had).
    fn unanswered(error: Error) -> Self {
        Failure { error, trapped: false, answered: false, held: Vec::new() }
    }

    /// The instance trapped.
    fn trapped(error: Error) -> Self {
        Failure { error, trapped: true, answered: false, held: Vec::new() }
    }
}

/// Runs a guest call, turning a trap, or a panic out of wasmtime, into a
/// [`Failure`] that discards the instance.
fn guarded<T>(
    body: impl FnOnce() -> wasmtime::Result<Result<T, crate::bindings::rtc::cache::types::Error>>,
) -> Result<T, Failure> {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(Ok(value))) => Ok(value),
        Ok(Ok(Err(e))) => Err(Failure::answered(from_wit_error(e))),
        Ok(Err(trap)) => {
            let error = Error::new(ErrorKind::Other, format!("the rtc component trapped: {trap:#}"));
            tracing::warn!(error = %error, "discarding the component instance");
            Err(Failure::trapped(error))
        }
        Err(panic) => {
            let error =
                Error::new(ErrorKind::Other, format!("the component host panicked: {}", panic_message(&*panic)));
            tracing::error!(error = %error, "discarding the component instance");
            Err(Failure::trapped(error))
        }
    }
}

fn owned(tags: impl Tags) -> Vec<String> {
    tags.tag_names().into_iter().map(str::to_owned).collect()
}

/// One instance of the component in its own store, with this cache's
/// `cache` resource opened in it.
struct Slot {
    store: Store<HostState>,
    rtc: Rtc,
    cache: ResourceAny,
}

/// Returns the methods of the `cache` resource (a free function, so the
/// store can be borrowed mutably beside it).
fn cache_api(rtc: &Rtc) -> wit::GuestCache<'_> {
    rtc.rtc_cache_cache().cache()
}

struct Slots {
    idle: Vec<Slot>,
    /// Instances alive: idle, or checked out.
    live: usize,
    /// Callers waiting in `acquire` for an instance to be freed. Counted so
    /// that `release` wakes only when someone waits: a notify is a futex
    /// syscall even with no waiter, on every call.
    waiting: usize,
}

/// The instances of one cache.
struct Pool {
    runtime: Arc<ComponentRuntime>,
    config: Config,
    wit_config: wit::Config,
    imports: Arc<Imports>,
    max_memory: usize,
    max_instances: usize,
    slots: Mutex<Slots>,
    freed: Condvar,
    /// Get-or-compute calls with the lock computing in this process (core's
    /// single-flight, shared by the cache's clones).
    flights: Flights,
    /// The near cache and fail-safe values (also the imports' backend),
    /// when configured.
    host: Option<Arc<HostBackend>>,
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Checks an instance out: an idle one, a new one, or the next one freed.
    fn acquire(&self) -> Result<Slot> {
        let mut slots = self.lock();
        loop {
            if let Some(slot) = slots.idle.pop() {
                return Ok(slot);
            }
            if slots.live < self.max_instances {
                slots.live += 1;
                break;
            }
            slots.waiting += 1;
            slots = self.freed.wait(slots).unwrap_or_else(PoisonError::into_inner);
            slots.waiting -= 1;
        }
        drop(slots);
        let created = catch_unwind(AssertUnwindSafe(|| self.instantiate())).unwrap_or_else(|panic| {
            Err(Error::new(
                ErrorKind::Other,
                format!("instantiating the component panicked: {}", panic_message(&*panic)),
            ))
        });
        if created.is_err() {
            let mut slots = self.lock();
            slots.live -= 1;
            if slots.waiting > 0 {
                self.freed.notify_one();
            }
        }
        created
    }

    /// Returns an instance; one that trapped is dropped instead.
    fn release(&self, slot: Slot, healthy: bool) {
        let mut slots = self.lock();
        let wake = slots.waiting > 0;
        if healthy {
            slots.idle.push(slot);
        } else {
            slots.live -= 1;
        }
        drop(slots);
        if wake {
            self.freed.notify_one();
        }
        // An unhealthy slot is dropped here, outside the lock.
    }

    fn instantiate(&self) -> Result<Slot> {
        let state = HostState::new(Arc::clone(&self.imports), self.max_memory);
        let mut store = Store::new(self.runtime.engine(), state);
        store.limiter(|state| &mut state.limits);
        let rtc = self
            .runtime
            .pre()
            .instantiate(&mut store)
            .map_err(|e| Error::new(ErrorKind::Other, format!("cannot instantiate the rtc component: {e:#}")))?;
        let opened = rtc
            .rtc_cache_cache()
            .cache()
            .call_open(&mut store, &self.wit_config)
            .map_err(|e| Error::new(ErrorKind::Other, format!("the rtc component trapped in open: {e:#}")))?;
        let cache = opened.map_err(from_wit_error)?;
        Ok(Slot { store, rtc, cache })
    }

    /// Passes the component's held reports on to the hook, as they would
    /// have gone unheld.
    fn replay(&self, held: Vec<Held>, userdata: Option<&(dyn Any + Send + Sync)>) {
        for Held { key, tags, info } in held {
            self.report(&key, &tags, &info, userdata);
        }
    }

    /// Calls the hook from the host side (for a call the component could not report).
    fn report(&self, key: &str, tags: &[String], info: &CacheInfo, userdata: Option<&(dyn Any + Send + Sync)>) {
        let Some(hook) = &self.imports.hook else {
            return;
        };
        let event = HookEvent::new(key, tags, info, userdata);
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| hook(&event))) {
            tracing::warn!(key, panic = panic_message(&*panic), "the cache hook panicked; ignored");
        }
    }
}

impl rtc_core::RawCache for ComponentCache {
    fn config(&self) -> &Config {
        ComponentCache::config(self)
    }

    fn set_bytes(&self, key: &str, value: &[u8], tags: &[String], lifetime: Lifetime) -> Result<()> {
        self.set_with(key, value, tags, lifetime)
    }

    fn get_bytes(&self, key: &str, tags: &[String]) -> Result<Option<Vec<u8>>> {
        self.get_with(key, tags)
    }

    fn delete(&self, key: &str, tags: &[String]) -> Result<bool> {
        self.delete_with(key, tags)
    }

    fn invalidate(&self, tags: &[String]) -> Result<()> {
        self.invalidate_with(tags)
    }

    fn invalidate_all(&self) -> Result<()> {
        ComponentCache::invalidate_all(self)
    }

    fn get_or_compute_bytes(
        &self,
        options: &ComputeOptions,
        compute: &mut dyn FnMut() -> Result<Vec<u8>, Error>,
    ) -> Result<Vec<u8>, Error> {
        ComponentCache::get_or_compute_bytes(self, options, compute)
    }

    fn near_stats(&self) -> Option<rtc_core::NearStats> {
        ComponentCache::near_stats(self)
    }
}
