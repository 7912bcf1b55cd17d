//! The cache: tag-versioned set, get, delete and invalidation over a [`Backend`].

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::{Backend, DisabledBackend, Reply};
use crate::codec::{Cbor, Codec};
use crate::config::{Config, Lifetime, Target, expire_ms};
use crate::error::{Error, Result};
use crate::info::{Hook, HookEvent};
use crate::invalidate::Invalidate;
use crate::layout::{ALL_TAG, Layout};
use crate::memory::MemoryBackend;
use crate::near::NearState;
use crate::snapshot::{Access, Snapshot, TagMemo};
use crate::step::{drive, int};
use crate::tags::Tags;

/// A Redis-backed cache with O(1) tag-based invalidation.
///
/// Cheap to clone (clones share one backend and one connection pool) and safe
/// to share between threads. A backend failure never panics: `set`, `delete`
/// and `invalidate` return it, `get` returns it as its own outcome (distinct
/// from a miss), and get-or-compute computes and reports it to the hook.
///
/// ```
/// use rtc_core::{Cache, Lifetime};
/// let cache = Cache::builder().in_local_memory(true).build().unwrap();
/// cache.set("user:1", &"Ada", ["user", "user:1"], Lifetime::Default).unwrap();
/// assert_eq!(cache.get::<String>("user:1", ["user", "user:1"]).unwrap(), Some("Ada".into()));
/// cache.invalidate("user:1").unwrap();
/// assert_eq!(cache.get::<String>("user:1", ["user", "user:1"]).unwrap(), None);
/// ```
#[derive(Clone)]
pub struct Cache<C = Cbor> {
    pub(crate) inner: Arc<Inner>,
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) codec: C,
}

/// The state every driver's operations share (no backend: the driver owns
/// the I/O): configuration, key layout, hook and the memo of tag values.
pub(crate) struct Inner {
    pub(crate) layout: Layout,
    pub(crate) config: Config,
    pub(crate) hook: Option<Hook>,
    /// The tag values last seen, for one-round-trip operations.
    pub(crate) memo: TagMemo,
    /// The get-or-compute calls with the lock computing in this process.
    pub(crate) flights: crate::flight::Flights,
    /// The fail-safe values, when `fail_safe_max_duration` is set.
    pub(crate) fail_safe: Option<crate::fail_safe::FailSafe>,
    /// The near cache, when configured on Redis (a server or a cluster).
    pub(crate) near: Option<Arc<NearState>>,
}

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
        inner.near = NearState::start(&inner.config, &inner.layout, native)?;
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
        inner.near = NearState::start(&inner.config, &inner.layout, native)?;
        Ok(Cache { inner: Arc::new(inner), backend, codec: self.codec })
    }
}

impl Inner {
    pub(crate) fn new(config: Config, hook: Option<Hook>) -> Self {
        let fail_safe = crate::fail_safe::FailSafe::configured(&config);
        Inner {
            layout: Layout::new(&config.namespace),
            config,
            hook,
            memo: TagMemo::default(),
            flights: crate::flight::Flights::default(),
            fail_safe,
            near: None,
        }
    }
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").field("namespace", &self.config.namespace).finish_non_exhaustive()
    }
}

/// Returns the native backend `config` asks for: a Redis Cluster when
/// `cluster_nodes` is set, else one Redis server (URL or host/port/db).
/// Hosts that serve Redis to the component use this, so every surface picks
/// its backend the same way. Does not connect.
#[cfg(feature = "redis")]
pub fn native_backend(config: &Config) -> Result<Arc<dyn Backend>> {
    redis_backend(config)
}

#[cfg(feature = "redis")]
fn redis_backend(config: &Config) -> Result<Arc<dyn Backend>> {
    if config.cluster_nodes.is_empty() {
        Ok(Arc::new(crate::native::RedisBackend::new(config)?))
    } else {
        Ok(Arc::new(crate::native::ClusterBackend::new(config)?))
    }
}

#[cfg(not(feature = "redis"))]
fn redis_backend(_: &Config) -> Result<Arc<dyn Backend>> {
    Err(Error::invalid(
        "this build has no Redis backend (feature `redis`): set in_local_memory, disabled, or a backend",
    ))
}

impl<C: Codec> Cache<C> {
    /// Returns the configuration this cache was built from.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Returns the codec used by the typed operations.
    pub fn codec(&self) -> &C {
        &self.codec
    }

    /// Stores `value` (encoded by the codec) under `key` and `tags`.
    ///
    /// The entry is readable until it expires, one of its tags is invalidated,
    /// `invalidate_all` is called, or it is deleted.
    pub fn set<T: Serialize + ?Sized>(&self, key: &str, value: &T, tags: impl Tags, lifetime: Lifetime) -> Result<()> {
        let bytes = self.codec.encode(value)?;
        self.set_bytes(key, &bytes, tags, lifetime)
    }

    /// Reads the value of `key` under `tags`: `Ok(Some)` on a hit, `Ok(None)`
    /// on a miss, `Err` when the backend failed.
    ///
    /// Bytes that do not decode (written by another program, or corrupted)
    /// are logged and read as a miss.
    pub fn get<T: DeserializeOwned>(&self, key: &str, tags: impl Tags) -> Result<Option<T>> {
        let bytes = self.get_bytes(key, tags)?;
        Ok(bytes.and_then(|b| crate::codec::decode_or_miss(&self.codec, key, &b)))
    }

    /// Stores raw bytes, with no codec, so any language can read them.
    ///
    /// When the tags keep changing during the call (a hot tag invalidated
    /// in a loop), the write still succeeds: an invalidation followed it.
    pub fn set_bytes(&self, key: &str, value: &[u8], tags: impl Tags, lifetime: Lifetime) -> Result<()> {
        let access = self.inner.set_access(value, lifetime)?;
        drive(&*self.backend, Snapshot::new(&self.inner, key, &tags.tag_names(), access))?;
        Ok(())
    }

    /// Reads raw bytes: `Ok(Some)` on a hit, `Ok(None)` on a miss (also when
    /// the tags kept changing during the call: the entry was invalidated).
    pub fn get_bytes(&self, key: &str, tags: impl Tags) -> Result<Option<Vec<u8>>> {
        let tags = tags.tag_names();
        if let Some(bytes) = self.inner.near_hit(key, &tags) {
            return Ok(Some(bytes.to_vec()));
        }
        // Read before sending: an invalidation processed meanwhile blocks the install.
        let generation = self.inner.near_generation();
        let mut done = drive(&*self.backend, Snapshot::new(&self.inner, key, &tags, Access::Get))?;
        self.inner.near_install(generation, &mut done);
        Ok(done.confirmed_reply().and_then(Reply::into_bytes))
    }

    /// What the near cache has done (hits, misses, invalidations received,
    /// flushes) and holds; `None` when it is off (see
    /// [`Config::near_cache_max_entries`]).
    pub fn near_stats(&self) -> Option<crate::near::NearStats> {
        self.inner.near.as_ref().map(|n| n.stats())
    }

    /// Deletes the entry of `key` under `tags`; returns whether one existed.
    pub fn delete(&self, key: &str, tags: impl Tags) -> Result<bool> {
        let done = drive(&*self.backend, Snapshot::new(&self.inner, key, &tags.tag_names(), Access::Del))?;
        Ok(done.confirmed_reply().is_some_and(|r| int(&r) > 0))
    }

    /// Invalidates one tag or several, in one round trip, whatever the number
    /// of entries carrying them: each tag gets a new random value (keeping the
    /// tag lifetime), so every entry stored under the old value is unreachable.
    pub fn invalidate(&self, tags: impl Tags) -> Result<()> {
        drive(&*self.backend, Invalidate::new(&self.inner, tags.tag_names()))
    }

    /// Invalidates every entry of the namespace in O(1) (one write).
    pub fn invalidate_all(&self) -> Result<()> {
        drive(&*self.backend, Invalidate::new(&self.inner, vec![ALL_TAG]))
    }
}

impl Inner {
    /// The near cache's copy of `key` under `tags`, if it holds one now.
    pub(crate) fn near_hit(&self, key: &str, tags: &[&str]) -> Option<Arc<Vec<u8>>> {
        self.near.as_ref()?.get(&self.layout, key, tags)
    }

    /// The near cache's generation, read before a read is sent so that
    /// [`Inner::near_install`] can tell whether an invalidation raced it.
    pub(crate) fn near_generation(&self) -> Option<u64> {
        self.near.as_ref().map(|n| n.generation())
    }

    /// Installs what a confirmed read carried for the near cache, unless an
    /// invalidation was processed since `generation`.
    pub(crate) fn near_install(&self, generation: Option<u64>, done: &mut crate::snapshot::Snapshotted) {
        if let (Some(near), Some(generation), Some(fill)) = (&self.near, generation, done.fill.take()) {
            near.install(generation, fill);
        }
    }

    /// Checks a value's size and lifetime and returns the write to make.
    pub(crate) fn set_access(&self, value: &[u8], lifetime: Lifetime) -> Result<Access> {
        self.check_size(value.len())?;
        let expire_ms = expire_ms(lifetime.resolve(self.config.default_lifetime))?;
        Ok(Access::Set { value: value.to_vec(), expire_ms })
    }

    pub(crate) fn check_size(&self, len: usize) -> Result<()> {
        let max = self.config.max_value_size;
        if len > max {
            return Err(Error::invalid(format!("value of {len} bytes exceeds max_value_size ({max} bytes)")));
        }
        Ok(())
    }
}
