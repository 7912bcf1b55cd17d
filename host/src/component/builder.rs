//! How a [`ComponentCache`] is made: [`ComponentCacheBuilder`], and the
//! `new` / `builder` constructors on the cache.
//!
//! The build decides, once, what serves the component's Redis import
//! (core's choice of target, as for the native engine, or the caller's
//! backend), wraps it in core's `HostBackend` when the near cache or
//! fail-safe is configured, and fills the [`Pool`] with its first instance.
//! Nothing after the build changes these.

use std::path::Path;
use std::sync::Arc;

use rtc_core::adapter::{HostBackend, environment};
use rtc_core::{Backend, Config, DisabledBackend, Error, ErrorKind, Hook, HookEvent, MemoryBackend, Result, Target};

use crate::convert::to_wit_config;
use crate::runtime::ComponentRuntime;
use crate::state::Imports;

use super::pool::{ComponentCache, Pool};

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
    /// turns, and a caller holding a [`Ticket`](crate::Ticket) must use or
    /// drop it before calling the cache again.
    pub fn guest_memory(mut self, on: bool) -> Self {
        self.guest_memory = on;
        self
    }

    /// Builds the cache and creates its first instance (so a component that
    /// does not work fails here, not at the first call).
    ///
    /// Fails with [`rtc_core::ErrorKind::InvalidArgument`] for an unusable
    /// Redis address, or with the error of the first instantiation.
    pub fn build(self) -> Result<ComponentCache> {
        let config = self.config;
        let target = config.target();
        // A component that reaches Redis itself (the standalone build) gets
        // the connection settings in its environment; on the memory target
        // it keeps the entries inside, as guest memory does.
        let own_redis = self.runtime.brings_its_own_redis();
        let guest_memory = self.guest_memory || (own_redis && target == Target::Memory);
        let environment = match target {
            Target::Redis | Target::Cluster if own_redis && !guest_memory => {
                if self.backend.is_some() {
                    return Err(Error::new(
                        ErrorKind::InvalidArgument,
                        "this component reaches Redis itself (it imports no rtc:cache/redis): it takes no backend",
                    ));
                }
                if config.near_cache_max_entries > 0 || config.fail_safe_max_duration.is_some() {
                    tracing::warn!(
                        "the near cache and fail-safe live in the host, below the component's Redis import, \
                         which this component does not use: both stay off"
                    );
                }
                Some(environment::variables(&config)?)
            }
            _ => None,
        };
        // The precedence is core's (`Config::target`), as for the native engine; guest
        // memory, or a component with its own Redis client, means the host serves no Redis at all.
        let native =
            !guest_memory && !own_redis && self.backend.is_none() && matches!(target, Target::Cluster | Target::Redis);
        let backend: Arc<dyn Backend> = match (target, self.backend) {
            _ if guest_memory || own_redis => Arc::new(DisabledBackend),
            (Target::Disabled, _) => Arc::new(DisabledBackend),
            (_, Some(backend)) => backend,
            (Target::Memory, None) => Arc::new(MemoryBackend::new()),
            (Target::Cluster | Target::Redis, None) => rtc_core::native_backend(&config)?,
        };
        // The near cache and the fail-safe values live here, in the host, below
        // the component: core's HostBackend answers and learns from its Redis batches.
        let host = if guest_memory || own_redis {
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
        let wit_config = to_wit_config(&config, guest_memory);
        let pool = Arc::new(Pool::new(
            self.runtime,
            config,
            wit_config,
            Arc::new(Imports { backend, hook: self.hook, own_redis: environment }),
            self.max_memory.map_or(runtime_memory, |m| m.min(runtime_memory)),
            if guest_memory { 1 } else { self.max_instances },
            host,
        ));
        let first = pool.acquire()?;
        pool.release(first, true);
        Ok(ComponentCache { pool })
    }
}

impl ComponentCache {
    /// Builds a cache on the component at `path` (compiled once per process
    /// and path, see [`ComponentRuntime::shared`]) for `config`: Redis as the
    /// configuration names it, or the in-process memory backend when
    /// `in_local_memory` is set (shared by all the cache's instances).
    ///
    /// Fails with [`rtc_core::ErrorKind::InvalidArgument`] when the component
    /// is missing (the message tells how to build it) or the Redis address is
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
}
