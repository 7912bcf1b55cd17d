//! [`ComponentCache`] itself and the pool of component instances behind it.
//!
//! A cache is a cheap handle on one [`Pool`]: the instances (one `Store`
//! each, made from the runtime's `InstancePre` on demand, at most
//! `max_instances` alive), and what every instance shares (the imports, the
//! configuration, the single-flight table, the host's near cache and
//! fail-safe store). This is the bottom of `component/`: it knows nothing of
//! the calls made on an instance, which the modules above it add.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use rtc_core::adapter::{Flights, HostBackend};
use rtc_core::{Config, Error, ErrorKind, Result};
use wasmtime::Store;
use wasmtime::component::ResourceAny;

use crate::bindings::Rtc;
use crate::bindings::exports::rtc::cache::cache as wit;
use crate::convert::from_wit_error;
use crate::runtime::ComponentRuntime;
use crate::state::{HostState, Imports, panic_message};

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
/// call gets a fresh instance. A [`Ticket`](crate::Ticket) keeps its instance
/// until it is used or dropped.
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
    pub(super) pool: Arc<Pool>,
}

impl std::fmt::Debug for ComponentCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComponentCache")
            .field("namespace", &self.pool.config.namespace)
            .field("runtime", &self.pool.runtime)
            .finish_non_exhaustive()
    }
}

impl ComponentCache {
    /// Returns the configuration this cache was built from.
    pub fn config(&self) -> &Config {
        &self.pool.config
    }

    /// Returns the runtime this cache runs on.
    pub fn runtime(&self) -> &Arc<ComponentRuntime> {
        &self.pool.runtime
    }
}

/// One instance of the component in its own store, with this cache's
/// `cache` resource opened in it.
pub(super) struct Slot {
    pub(super) store: Store<HostState>,
    pub(super) rtc: Rtc,
    pub(super) cache: ResourceAny,
}

/// Returns the methods of the `cache` resource (a free function, so the
/// store can be borrowed mutably beside it).
pub(super) fn cache_api(rtc: &Rtc) -> wit::GuestCache<'_> {
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
pub(super) struct Pool {
    pub(super) runtime: Arc<ComponentRuntime>,
    pub(super) config: Config,
    wit_config: wit::Config,
    /// What serves every instance's imports (the backend, the hook); the
    /// host reports to the same hook through it.
    pub(super) imports: Arc<Imports>,
    max_memory: usize,
    max_instances: usize,
    slots: Mutex<Slots>,
    freed: Condvar,
    /// Get-or-compute calls with the lock computing in this process (core's
    /// single-flight, shared by the cache's clones).
    pub(super) flights: Flights,
    /// The near cache and fail-safe values (also the imports' backend),
    /// when configured.
    pub(super) host: Option<Arc<HostBackend>>,
}

impl Pool {
    /// Creates a pool with no instance yet: each instance opens `wit_config`,
    /// its memory may grow to `max_memory` bytes, and at most `max_instances`
    /// are alive at once.
    pub(super) fn new(
        runtime: Arc<ComponentRuntime>,
        config: Config,
        wit_config: wit::Config,
        imports: Arc<Imports>,
        max_memory: usize,
        max_instances: usize,
        host: Option<Arc<HostBackend>>,
    ) -> Self {
        Pool {
            runtime,
            config,
            wit_config,
            imports,
            max_memory,
            max_instances,
            slots: Mutex::new(Slots { idle: Vec::new(), live: 0, waiting: 0 }),
            freed: Condvar::new(),
            flights: Flights::default(),
            host,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Checks an instance out: an idle one, a new one, or the next one freed.
    pub(super) fn acquire(&self) -> Result<Slot> {
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
    pub(super) fn release(&self, slot: Slot, healthy: bool) {
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
}
