//! Building a cache: [`CacheBuilder`] validates the configuration, picks the
//! backend once for both APIs ([`CacheBuilder::build`] and
//! [`CacheBuilder::build_async`]) and starts the near cache's tracking. It sits
//! above the sync and async APIs, so neither imports the other.

use std::sync::Arc;
use std::time::Duration;

use crate::backend::memory::MemoryBackend;
use crate::backend::{Backend, DisabledBackend};
use crate::config::{Config, NearTracking, Target};
use crate::error::Result;
use crate::local::Inner;
#[cfg(not(feature = "redis"))]
use crate::local::near::NearState;
use crate::model::codec::{Cbor, Codec};
use crate::model::info::{Hook, HookEvent};
use crate::sync::Cache;

impl Cache<Cbor> {
    /// Returns a builder holding the default configuration.
    pub fn builder() -> CacheBuilder<Cbor> {
        CacheBuilder { config: Config::default(), hook: None, backend: None, codec: Cbor }
    }

    /// Builds a cache from `config` with the default codec and no hook.
    pub fn new(config: Config) -> Result<Self> {
        Cache::builder().config(config).build()
    }
}

/// Builds a [`Cache`]; every setter mirrors a [`Config`] field.
///
/// ```
/// let cache = rtc_core::Cache::builder()
///     .namespace("shop")
///     .default_lifetime(Some(60))
///     .in_local_memory(true)
///     .build()
///     .unwrap();
/// assert_eq!(cache.config().namespace, "shop");
/// ```
#[must_use]
pub struct CacheBuilder<C = Cbor> {
    config: Config,
    hook: Option<Hook>,
    backend: Option<Arc<dyn Backend>>,
    codec: C,
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty),* $(,)?) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, value: impl Into<$ty>) -> Self {
                self.config.$name = value.into();
                self
            }
        )*
    };
}

impl<C: Codec> CacheBuilder<C> {
    /// Replaces the whole configuration.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    crate::config::with_config_fields!(setters);

    /// Sets the hook called after each get-or-compute.
    pub fn hook(mut self, hook: impl Fn(&HookEvent<'_>) + Send + Sync + 'static) -> Self {
        self.hook = Some(Arc::new(hook));
        self
    }

    /// Uses `backend` for all I/O (the WebAssembly component passes its host
    /// import here); it replaces the Redis and memory backends, not `disabled`.
    pub fn backend(mut self, backend: Arc<dyn Backend>) -> Self {
        self.backend = Some(backend);
        self
    }

    /// Uses `codec` for typed values.
    pub fn codec<D: Codec>(self, codec: D) -> CacheBuilder<D> {
        CacheBuilder { config: self.config, hook: self.hook, backend: self.backend, codec }
    }

    /// Builds the async cache ([`crate::future::Cache`], feature `tokio`),
    /// with the same configuration rules as [`CacheBuilder::build`]: Redis
    /// through the `redis` crate's async multiplexed connection, the memory
    /// and disabled backends (and a custom blocking one) on tokio's blocking
    /// pool. Does not connect.
    #[cfg(feature = "tokio")]
    pub fn build_async(self) -> Result<crate::future::Cache<C>> {
        use crate::future::{AsyncBackend, Blocking};
        let config = self.config;
        config.validate()?;
        let (config_target, backend_given) = (config.target(), self.backend.is_some());
        let backend: Arc<dyn AsyncBackend> = match (config.target(), self.backend) {
            (Target::Disabled, _) => Arc::new(Blocking(Arc::new(DisabledBackend))),
            (_, Some(backend)) => Arc::new(Blocking(backend)),
            (Target::Memory, None) => Arc::new(Blocking(Arc::new(MemoryBackend::new()))),
            (Target::Cluster, None) => Arc::new(crate::future::AsyncClusterBackend::new(&config)?),
            (Target::Redis, None) => Arc::new(crate::future::AsyncRedisBackend::new(&config)?),
        };
        let native = !backend_given && matches!(config_target, Target::Redis | Target::Cluster);
        let mut inner = Inner::new(config, self.hook);
        let backend = with_near_async(&mut inner, backend, native)?;
        Ok(crate::future::Cache { inner: Arc::new(inner), backend, codec: self.codec })
    }

    /// Builds the cache. Does not connect: a cache built while Redis is down
    /// works once Redis is up.
    ///
    /// Fails with [`crate::ErrorKind::InvalidArgument`] for an unusable URL, or when
    /// Redis is asked for in a build without the `redis` feature.
    pub fn build(self) -> Result<Cache<C>> {
        let config = self.config;
        config.validate()?;
        let native = self.backend.is_none() && matches!(config.target(), Target::Redis | Target::Cluster);
        let backend: Arc<dyn Backend> = match (config.target(), self.backend) {
            (Target::Disabled, _) => Arc::new(DisabledBackend),
            (_, Some(backend)) => backend,
            (Target::Memory, None) => Arc::new(MemoryBackend::new()),
            (Target::Cluster | Target::Redis, None) => redis_backend(&config)?,
        };
        let mut inner = Inner::new(config, self.hook);
        let backend = with_near(&mut inner, backend, native)?;
        Ok(Cache { inner: Arc::new(inner), backend, codec: self.codec })
    }
}

/// Returns the native backend `config` asks for: a Redis Cluster when
/// `cluster_nodes` is set, else one Redis server (URL or host/port/db).
/// Hosts that serve Redis to the component use this, so every surface picks
/// its backend the same way. Does not connect.
#[cfg(feature = "redis-single")]
pub fn native_backend(config: &Config) -> Result<Arc<dyn Backend>> {
    redis_backend(config)
}

#[cfg(feature = "redis-single")]
fn redis_backend(config: &Config) -> Result<Arc<dyn Backend>> {
    if config.cluster_nodes.is_empty() {
        Ok(Arc::new(crate::backend::native::RedisBackend::new(config)?))
    } else {
        cluster_backend(config)
    }
}

#[cfg(feature = "redis")]
fn cluster_backend(config: &Config) -> Result<Arc<dyn Backend>> {
    Ok(Arc::new(crate::backend::native::ClusterBackend::new(config)?))
}

/// A build with one-server Redis only (feature `redis-single`) refuses
/// cluster nodes rather than talk to the first one as if it were alone.
#[cfg(all(feature = "redis-single", not(feature = "redis")))]
fn cluster_backend(_: &Config) -> Result<Arc<dyn Backend>> {
    Err(crate::error::Error::invalid("this build has no Redis Cluster backend (feature `redis`): cluster_nodes is set"))
}

#[cfg(not(feature = "redis-single"))]
fn redis_backend(_: &Config) -> Result<Arc<dyn Backend>> {
    Err(crate::error::Error::invalid(
        "this build has no Redis backend (feature `redis`): set in_local_memory, disabled, or a backend",
    ))
}

/// Turns on the near cache `inner.config` asks for, its tracking started,
/// when the backend is core's own Redis backend (`native`; see
/// [`crate::backend::native::tracking::near_cache`]); returns `backend`,
/// with the reads that fill the near cache sent on its reader connections
/// when it tracks per reader.
#[cfg(feature = "redis")]
fn with_near(inner: &mut Inner, backend: Arc<dyn Backend>, native: bool) -> Result<Arc<dyn Backend>> {
    let Some(tracked) = crate::backend::native::tracking::near_cache(&inner.config, &inner.layout, native)? else {
        return Ok(backend);
    };
    let backend = tracked.filling(backend);
    inner.near = Some(tracked.near);
    Ok(backend)
}

/// [`with_near`] for the async API.
// (`tokio` implies `redis`.)
#[cfg(feature = "tokio")]
fn with_near_async(
    inner: &mut Inner,
    backend: Arc<dyn crate::future::AsyncBackend>,
    native: bool,
) -> Result<Arc<dyn crate::future::AsyncBackend>> {
    use crate::backend::native::tracking::near_cache;
    use crate::future::AsyncFilling;
    let Some(tracked) = near_cache(&inner.config, &inner.layout, native)? else { return Ok(backend) };
    let backend: Arc<dyn crate::future::AsyncBackend> = match tracked.readers {
        Some(readers) => Arc::new(AsyncFilling::new(readers, backend)),
        None => backend,
    };
    inner.near = Some(tracked.near);
    Ok(backend)
}

/// Without the `redis` feature there is no tracking: the near cache is off,
/// with a warning when one was asked for.
#[cfg(not(feature = "redis"))]
fn with_near(inner: &mut Inner, backend: Arc<dyn Backend>, _: bool) -> Result<Arc<dyn Backend>> {
    NearState::refuse(&inner.config);
    Ok(backend)
}
