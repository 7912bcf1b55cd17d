//! The cache: tag-versioned set, get, delete and invalidation over a [`Backend`].

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::{Backend, Command, DisabledBackend, Reply};
use crate::codec::{Cbor, Codec};
use crate::config::{Config, Lifetime, expire_ms};
use crate::error::{Error, ErrorKind, Result};
use crate::hash::random_bytes;
use crate::info::{Hook, HookEvent};
use crate::layout::{ALL_TAG, Layout};
use crate::memory::MemoryBackend;
use crate::snapshot::TagMemo;
use crate::tags::Tags;

/// How many times a tag read retries when tag keys vanish between two commands.
const TAG_READ_ATTEMPTS: usize = 3;

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
    pub(crate) codec: C,
}

/// The shared state behind every clone of a [`Cache`].
pub(crate) struct Inner {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) layout: Layout,
    pub(crate) config: Config,
    pub(crate) hook: Option<Hook>,
    /// The tag values last seen, for one-round-trip operations.
    pub(crate) memo: TagMemo,
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

    setters! {
        /// Sets the namespace.
        namespace: String,
        /// Sets the Redis host.
        host: String,
        /// Sets the Redis port.
        port: u16,
        /// Sets the Redis database number.
        db: i64,
        /// Connects with TLS.
        ssl: bool,
        /// Sets the ACL user name.
        username: Option<String>,
        /// Sets the password.
        password: Option<String>,
        /// Sets a Redis URL, which replaces host, port, db, ssl and credentials.
        url: Option<String>,
        /// Sets the seed nodes of a Redis Cluster (non-empty: cluster mode).
        cluster_nodes: Vec<String>,
        /// Sets a private certificate authority (PEM) for TLS.
        tls_ca_cert: Option<Vec<u8>>,
        /// Sets the read/write timeout of one round trip.
        socket_timeout: Duration,
        /// Sets the connect timeout.
        socket_connect_timeout: Duration,
        /// Sets the default entry lifetime in seconds (`None` or 0: no expiry).
        default_lifetime: Option<u64>,
        /// Sets the tag lifetime in seconds (`None` or 0: no expiry).
        lifetime_for_tags: Option<u64>,
        /// Disables the cache: nothing is stored, every read misses.
        disabled: bool,
        /// Uses the in-process memory backend instead of Redis.
        in_local_memory: bool,
        /// Sets the largest value `set` accepts, in bytes.
        max_value_size: usize,
    }

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

    /// Builds the cache. Does not connect: a cache built while Redis is down
    /// works once Redis is up.
    ///
    /// Fails with [`ErrorKind::InvalidArgument`] for an unusable URL, or when
    /// Redis is asked for in a build without the `redis` feature.
    pub fn build(self) -> Result<Cache<C>> {
        let config = self.config;
        config.validate()?;
        let backend: Arc<dyn Backend> = if config.disabled {
            Arc::new(DisabledBackend)
        } else if let Some(backend) = self.backend {
            backend
        } else if config.in_local_memory {
            Arc::new(MemoryBackend::new())
        } else {
            redis_backend(&config)?
        };
        let layout = Layout::new(&config.namespace);
        let inner = Inner { backend, layout, config, hook: self.hook, memo: TagMemo::default() };
        Ok(Cache { inner: Arc::new(inner), codec: self.codec })
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
    Err(Error::invalid("this build has no Redis backend (feature `redis`): set in_local_memory, disabled, or a backend"))
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
        let Some(bytes) = self.get_bytes(key, tags)? else { return Ok(None) };
        match self.codec.decode(&bytes) {
            Ok(value) => Ok(Some(value)),
            Err(e) => {
                tracing::warn!(key, error = %e, "cached bytes do not decode; read as a miss");
                Ok(None)
            }
        }
    }

    /// Stores raw bytes, with no codec, so any language can read them.
    pub fn set_bytes(&self, key: &str, value: &[u8], tags: impl Tags, lifetime: Lifetime) -> Result<()> {
        self.inner.check_size(value.len())?;
        let expire_ms = expire_ms(lifetime.resolve(self.inner.config.default_lifetime))?;
        let set = |hash: &str| Command::Set { key: self.inner.layout.storage_key(key, hash), value: value.to_vec(), expire_ms, nx: false };
        match self.inner.under_snapshot(&tags.tag_names(), set)?.1 {
            Reply::Ok => Ok(()),
            other => Err(unexpected("SET", &other)),
        }
    }

    /// Reads raw bytes: `Ok(Some)` on a hit, `Ok(None)` on a miss.
    pub fn get_bytes(&self, key: &str, tags: impl Tags) -> Result<Option<Vec<u8>>> {
        let get = |hash: &str| Command::Get { key: self.inner.layout.storage_key(key, hash) };
        match self.inner.under_snapshot(&tags.tag_names(), get)?.1 {
            Reply::Bytes(b) => Ok(Some(b)),
            Reply::Nil => Ok(None),
            other => Err(unexpected("GET", &other)),
        }
    }

    /// Deletes the entry of `key` under `tags`; returns whether one existed.
    pub fn delete(&self, key: &str, tags: impl Tags) -> Result<bool> {
        let del = |hash: &str| Command::Del { keys: vec![self.inner.layout.storage_key(key, hash)] };
        match self.inner.under_snapshot(&tags.tag_names(), del)?.1 {
            Reply::Int(n) => Ok(n > 0),
            other => Err(unexpected("DEL", &other)),
        }
    }

    /// Invalidates one tag or several, in one round trip, whatever the number
    /// of entries carrying them: each tag gets a new random value (keeping the
    /// tag lifetime), so every entry stored under the old value is unreachable.
    pub fn invalidate(&self, tags: impl Tags) -> Result<()> {
        self.inner.invalidate(&tags.tag_names())
    }

    /// Invalidates every entry of the namespace in O(1) (one write).
    pub fn invalidate_all(&self) -> Result<()> {
        self.inner.invalidate(&[ALL_TAG])
    }
}

impl Inner {
    pub(crate) fn one(&self, command: Command) -> Result<Reply> {
        let mut replies = self.backend.execute(std::slice::from_ref(&command))?;
        match (replies.pop(), replies.is_empty()) {
            (Some(reply), true) => Ok(reply),
            _ => Err(Error::new(ErrorKind::Other, "the backend returned a wrong number of replies")),
        }
    }

    pub(crate) fn check_size(&self, len: usize) -> Result<()> {
        let max = self.config.max_value_size;
        if len > max {
            return Err(Error::invalid(format!("value of {len} bytes exceeds max_value_size ({max} bytes)")));
        }
        Ok(())
    }

    pub(crate) fn read(&self, storage: String) -> Result<Option<Vec<u8>>> {
        match self.one(Command::Get { key: storage })? {
            Reply::Bytes(b) => Ok(Some(b)),
            Reply::Nil => Ok(None),
            other => Err(unexpected("GET", &other)),
        }
    }

    fn invalidate(&self, tags: &[&str]) -> Result<()> {
        if tags.is_empty() {
            return Ok(());
        }
        // Keeping the tag lifetime here fixes the reference, which drops it on invalidation.
        let expire_ms = expire_ms(self.config.lifetime_for_tags)?;
        let keys: Vec<String> = tags.iter().map(|t| self.layout.tag_key(t)).collect();
        let values = keys.iter().map(|_| Ok(random_bytes()?.to_vec())).collect::<Result<Vec<_>>>()?;
        let commands: Vec<Command> = keys
            .iter()
            .zip(&values)
            .map(|(key, value)| Command::Set { key: key.clone(), value: value.clone(), expire_ms, nx: false })
            .collect();
        self.backend.execute(&commands)?;
        // Our own invalidation need not cost our next read a second round trip.
        self.memo.remember(tags, &keys, &values.iter().map(Some).collect::<Vec<_>>());
        Ok(())
    }

    /// Reads the values of the tag keys `keys`, creating missing ones.
    ///
    /// A missing tag is created with `SET NX` and then read back with `GET`,
    /// so concurrent first readers all use whichever value won (the reference
    /// overwrites, and two first readers can hash differently).
    pub(crate) fn tag_values(&self, keys: &[String]) -> Result<Vec<Vec<u8>>> {
        let mut values: Vec<Option<Vec<u8>>> = match self.one(Command::Mget { keys: keys.to_vec() })? {
            Reply::Array(items) if items.len() == keys.len() => items.into_iter().map(Reply::into_bytes).collect(),
            other => return Err(unexpected("MGET", &other)),
        };
        let expire_ms = expire_ms(self.config.lifetime_for_tags)?;
        for _ in 0..TAG_READ_ATTEMPTS {
            let mut missing: Vec<&String> = keys.iter().zip(&values).filter(|(_, v)| v.is_none()).map(|(k, _)| k).collect();
            missing.dedup();
            if missing.is_empty() {
                break;
            }
            let mut commands = Vec::with_capacity(missing.len() * 2);
            for key in &missing {
                commands.push(Command::Set { key: (*key).clone(), value: random_bytes()?.to_vec(), expire_ms, nx: true });
                commands.push(Command::Get { key: (*key).clone() });
            }
            let replies = self.backend.execute(&commands)?;
            if replies.len() != commands.len() {
                return Err(Error::new(ErrorKind::Other, "the backend returned a wrong number of replies"));
            }
            for (key, reply) in missing.iter().zip(replies.into_iter().skip(1).step_by(2)) {
                let value = reply.into_bytes();
                for (k, v) in keys.iter().zip(values.iter_mut()) {
                    if k == *key && v.is_none() {
                        v.clone_from(&value);
                    }
                }
            }
        }
        values
            .into_iter()
            .map(|v| v.ok_or_else(|| Error::new(ErrorKind::Other, "tag keys keep vanishing (is Redis evicting them?)")))
            .collect()
    }
}

pub(crate) fn unexpected(command: &str, reply: &Reply) -> Error {
    Error::new(ErrorKind::Other, format!("unexpected reply to {command}: {reply:?}"))
}
