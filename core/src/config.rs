//! Configuration, with the reference library's defaults.

use std::fmt;
use std::time::Duration;

use crate::error::{Error, Result};

/// Everything a cache is built from. [`Config::default`] holds the defaults of
/// Python `redis-tagged-cache` 0.12.1.
///
/// Non-exhaustive, so settings can be added without breaking anyone: start
/// from `Config::default()` and chain the setters (one per field, named
/// after it), or set the public fields.
///
/// ```
/// let c = rtc_core::Config::default().namespace("shop").url(Some("redis://127.0.0.1:6379/".into()));
/// assert_eq!((c.namespace.as_str(), c.default_lifetime, c.lifetime_for_tags), ("shop", Some(3600), Some(86400)));
/// assert_eq!(c.target(), rtc_core::Target::Redis);
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Namespace: caches in different namespaces never see each other's entries.
    pub namespace: String,
    /// Redis host (ignored when `url` is set).
    pub host: String,
    /// Redis port (ignored when `url` is set).
    pub port: u16,
    /// Redis database number (ignored when `url` is set).
    pub db: i64,
    /// Connect with TLS (ignored when `url` is set).
    pub ssl: bool,
    /// ACL user name (ignored when `url` is set).
    pub username: Option<String>,
    /// Password (ignored when `url` is set).
    pub password: Option<String>,
    /// A Redis URL (`redis://`, `rediss://`, `redis+unix://`, user and password
    /// allowed); when set it replaces host, port, db, ssl, username, password.
    pub url: Option<String>,
    /// Seed nodes of a Redis Cluster (`redis://host:port`, `rediss://...`);
    /// when non-empty, rtc talks to that cluster and ignores `url`, `host`, `port`, `db`.
    pub cluster_nodes: Vec<String>,
    /// Redis Sentinel nodes (`redis://[user:password@]host:port`, the
    /// sentinel's own credentials; `rediss://` for TLS): when non-empty, rtc
    /// asks them for the address of the master named
    /// [`Config::sentinel_master_name`] and follows it across failovers. The
    /// master is reached with `db`, `ssl`, `username`, `password` and
    /// `tls_ca_cert`; `host` and `port` are ignored, `url` and
    /// `cluster_nodes` refused. See "Redis Sentinel" in core/README.md.
    pub sentinel_nodes: Vec<String>,
    /// The name of the master the Sentinel nodes monitor (`sentinel monitor
    /// <name> ...`); required with `sentinel_nodes`.
    pub sentinel_master_name: Option<String>,
    /// A private certificate authority (PEM) to verify TLS servers with, in
    /// place of the system's roots. Verification is always on.
    pub tls_ca_cert: Option<Vec<u8>>,
    /// Read/write timeout of one round trip; zero means none.
    pub socket_timeout: Duration,
    /// Connect timeout, the handshake included; zero means `socket_timeout`
    /// bounds it (a paused Redis accepts TCP connections, then never answers).
    pub socket_connect_timeout: Duration,
    /// Default entry lifetime in seconds; `None` or `Some(0)` means no expiry.
    pub default_lifetime: Option<u64>,
    /// Tag lifetime in seconds; `None` or `Some(0)` means no expiry.
    pub lifetime_for_tags: Option<u64>,
    /// A disabled cache stores nothing and every read misses.
    pub disabled: bool,
    /// Use the in-process memory backend instead of Redis.
    pub in_local_memory: bool,
    /// Largest value accepted by `set`, in bytes (Redis's own limit is 512 MiB).
    pub max_value_size: usize,
    /// Fail-safe (off when `None`): when Redis fails, or the computation
    /// fails, get-or-compute returns the last value this process confirmed
    /// current for the entry, if it was confirmed at most this long ago,
    /// flagged `stale` in `CacheInfo`. Never a value this process knows to
    /// be invalidated (see "Fail-safe, in detail" in core/README.md).
    pub fail_safe_max_duration: Option<Duration>,
    /// Memory for fail-safe values, in bytes (least recently used go first).
    pub fail_safe_max_bytes: usize,
    /// The near cache (off when 0): at most this many entries served from
    /// this process's memory with no round trip, kept coherent by Redis's
    /// invalidation pushes (Redis, one server or a cluster, sync and async
    /// APIs; see "The near cache" in core/README.md).
    pub near_cache_max_entries: usize,
    /// Memory for near-cache entries, in bytes.
    pub near_cache_max_bytes: usize,
    /// The longest a near-cache entry is served (also never past its TTL in Redis).
    pub near_cache_max_lifetime: Duration,
    /// How Redis tells the near cache what changed: per reader (the
    /// default: Redis pushes a change of an entry only to the processes
    /// that hold it) or broadcast (every process hears of every entry
    /// written in the namespace). See "The near cache" in core/README.md.
    pub near_cache_tracking: NearTracking,
}

/// How the near cache learns of changes (see [`Config::near_cache_tracking`]).
///
/// Tag keys are broadcast in both modes (a handful of keys every process
/// needs); the modes differ for entries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum NearTracking {
    /// Redis remembers which process read which entry into its near cache
    /// and pushes a change only to those (`CLIENT TRACKING ... OPTIN` on
    /// the connections that fill it): pushes grow with the readers of an
    /// entry, not with the fleet; Redis keeps one table item per entry held.
    #[default]
    PerReader,
    /// Every change of an entry in the namespace is pushed to every process
    /// (`CLIENT TRACKING ON BCAST` on the storage prefix): no table in Redis,
    /// pushes grow with the fleet.
    Broadcast,
}

impl NearTracking {
    /// The name used on every surface: `per-reader` or `broadcast`.
    pub fn name(self) -> &'static str {
        match self {
            NearTracking::PerReader => "per-reader",
            NearTracking::Broadcast => "broadcast",
        }
    }
}

impl std::str::FromStr for NearTracking {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self> {
        match name {
            "per-reader" => Ok(NearTracking::PerReader),
            "broadcast" => Ok(NearTracking::Broadcast),
            other => Err(Error::invalid(format!(
                "unknown near-cache tracking {other:?}: use \"per-reader\" or \"broadcast\""
            ))),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            namespace: "default".into(),
            host: "localhost".into(),
            port: 6379,
            db: 0,
            ssl: false,
            username: None,
            password: None,
            url: None,
            cluster_nodes: Vec::new(),
            sentinel_nodes: Vec::new(),
            sentinel_master_name: None,
            tls_ca_cert: None,
            socket_timeout: Duration::from_secs(5),
            socket_connect_timeout: Duration::from_secs(5),
            default_lifetime: Some(3600),
            lifetime_for_tags: Some(86400),
            disabled: false,
            in_local_memory: false,
            max_value_size: 512 * 1024 * 1024,
            fail_safe_max_duration: None,
            fail_safe_max_bytes: 64 * 1024 * 1024,
            near_cache_max_entries: 0,
            near_cache_max_bytes: 64 * 1024 * 1024,
            near_cache_max_lifetime: Duration::from_secs(60),
            near_cache_tracking: NearTracking::PerReader,
        }
    }
}

/// The settable fields of [`Config`], listed once: [`Config`]'s chainable
/// setters and the cache builder's are generated from this list.
macro_rules! with_config_fields {
    ($setters:ident) => {
        $setters! {
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
                /// Sets the Redis Sentinel nodes (non-empty: the master is found through them).
                sentinel_nodes: Vec<String>,
                /// Sets the name of the master the Sentinel nodes monitor.
                sentinel_master_name: Option<String>,
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
                /// Turns fail-safe on for values confirmed at most this long ago (`None`: off).
                fail_safe_max_duration: Option<Duration>,
                /// Sets the memory for fail-safe values, in bytes.
                fail_safe_max_bytes: usize,
                /// Turns the near cache on with at most this many entries (0: off).
                near_cache_max_entries: usize,
                /// Sets the memory for near-cache entries, in bytes.
                near_cache_max_bytes: usize,
                /// Sets the longest a near-cache entry is served.
                near_cache_max_lifetime: Duration,
                /// Sets how the near cache learns of changes (per reader or broadcast).
                near_cache_tracking: NearTracking,
        }
    };
}
pub(crate) use with_config_fields;

/// Generates `Config`'s chainable setters.
macro_rules! config_setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty),* $(,)?) => {
        $(
            $(#[$doc])*
            #[must_use]
            pub fn $name(mut self, value: impl Into<$ty>) -> Self {
                self.$name = value.into();
                self
            }
        )*
    };
}

impl Config {
    with_config_fields!(config_setters);

    /// Returns where a cache built from this configuration keeps its
    /// entries. The precedence of the fields is decided here, once:
    /// `disabled`, then `in_local_memory`, then `cluster_nodes`, then one
    /// Redis server (`url`, else `host`/`port`/`db`/`ssl`/credentials). A
    /// backend given to the cache builder replaces all but `disabled`.
    ///
    /// ```
    /// use rtc_core::{Config, Target};
    /// assert_eq!(Config::default().target(), Target::Redis);
    /// assert_eq!(Config::default().in_local_memory(true).target(), Target::Memory);
    /// assert_eq!(Config::default().in_local_memory(true).disabled(true).target(), Target::Disabled);
    /// assert_eq!(Config::default().cluster_nodes(vec!["redis://a:7000".to_string()]).target(), Target::Cluster);
    /// ```
    pub fn target(&self) -> Target {
        // Sentinel names one server (the current master): `Target::Redis`.
        if self.disabled {
            Target::Disabled
        } else if self.in_local_memory {
            Target::Memory
        } else if !self.cluster_nodes.is_empty() {
            Target::Cluster
        } else {
            Target::Redis
        }
    }
}

/// Where a cache keeps its entries (see [`Config::target`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Nowhere: every read misses.
    Disabled,
    /// The in-process memory backend.
    Memory,
    /// A Redis Cluster (`cluster_nodes`).
    Cluster,
    /// One Redis server (`url`, else `host`, `port`, `db`, `ssl`,
    /// credentials), or the master Redis Sentinel names (`sentinel_nodes`).
    Redis,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print secrets: the password, and a URL that may carry one.
        f.debug_struct("Config")
            .field("namespace", &self.namespace)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("db", &self.db)
            .field("ssl", &self.ssl)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("url", &self.url.as_ref().map(|_| "<redacted>"))
            .field("cluster_nodes", &self.cluster_nodes.len())
            // Sentinel URLs may carry the sentinels' password.
            .field("sentinel_nodes", &self.sentinel_nodes.len())
            .field("sentinel_master_name", &self.sentinel_master_name)
            .field("tls_ca_cert", &self.tls_ca_cert.as_ref().map(|pem| pem.len()))
            .field("socket_timeout", &self.socket_timeout)
            .field("socket_connect_timeout", &self.socket_connect_timeout)
            .field("default_lifetime", &self.default_lifetime)
            .field("lifetime_for_tags", &self.lifetime_for_tags)
            .field("disabled", &self.disabled)
            .field("in_local_memory", &self.in_local_memory)
            .field("max_value_size", &self.max_value_size)
            .field("fail_safe_max_duration", &self.fail_safe_max_duration)
            .field("fail_safe_max_bytes", &self.fail_safe_max_bytes)
            .field("near_cache_max_entries", &self.near_cache_max_entries)
            .field("near_cache_max_bytes", &self.near_cache_max_bytes)
            .field("near_cache_max_lifetime", &self.near_cache_max_lifetime)
            .field("near_cache_tracking", &self.near_cache_tracking)
            .finish()
    }
}

/// How long an entry lives, per call.
///
/// ```
/// use rtc_core::Lifetime;
/// assert_eq!(Lifetime::default(), Lifetime::Default);
/// assert_eq!(Lifetime::Seconds(0).resolve(Some(3600)), None);
/// assert_eq!(Lifetime::Default.resolve(Some(3600)), Some(3600));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lifetime {
    /// The cache's `default_lifetime`.
    #[default]
    Default,
    /// No expiry.
    Forever,
    /// This many seconds; `Seconds(0)` means no expiry, as in the reference.
    Seconds(u64),
}

impl Lifetime {
    /// Checks a per-call lifetime at once: more than [`MAX_LIFETIME_SECS`]
    /// is `InvalidArgument`, on every surface, before anything is computed.
    ///
    /// ```
    /// use rtc_core::Lifetime;
    /// assert!(Lifetime::Seconds(60).checked().is_ok());
    /// assert!(Lifetime::Seconds(u64::MAX).checked().is_err());
    /// ```
    pub fn checked(self) -> Result<Self> {
        expire_ms(self.resolve(None))?;
        Ok(self)
    }

    /// Returns the lifetime in seconds given the cache default, `None` for no expiry.
    pub fn resolve(self, default: Option<u64>) -> Option<u64> {
        match self {
            Lifetime::Default => default.filter(|&s| s > 0),
            Lifetime::Forever => None,
            Lifetime::Seconds(0) => None,
            Lifetime::Seconds(s) => Some(s),
        }
    }
}

/// The longest lifetime accepted, in seconds (100 years). Redis refuses
/// expiries past a 64-bit millisecond clock, and a bigger number is a bug.
pub const MAX_LIFETIME_SECS: u64 = 100 * 365 * 24 * 3600;

/// Converts optional seconds to the milliseconds of a `PX` expiry, refusing
/// lifetimes over [`MAX_LIFETIME_SECS`].
pub(crate) fn expire_ms(seconds: Option<u64>) -> Result<Option<u64>> {
    match seconds.filter(|&s| s > 0) {
        Some(s) if s > MAX_LIFETIME_SECS => {
            Err(Error::invalid(format!("a lifetime of {s} s is over the maximum of {MAX_LIFETIME_SECS} s (100 years)")))
        }
        other => Ok(other.map(|s| s * 1000)),
    }
}

impl Config {
    /// Checks the settings that can be checked without connecting.
    pub(crate) fn validate(&self) -> Result<()> {
        expire_ms(self.default_lifetime).map_err(|e| Error::invalid(format!("default_lifetime: {}", e.message())))?;
        expire_ms(self.lifetime_for_tags).map_err(|e| Error::invalid(format!("lifetime_for_tags: {}", e.message())))?;
        self.validate_sentinel()
    }

    /// Refuses a Sentinel setting that cannot mean one thing: nodes
    /// without a master name (or the reverse), or with another address.
    fn validate_sentinel(&self) -> Result<()> {
        let name = self.sentinel_master_name.as_deref();
        match (self.sentinel_nodes.is_empty(), name) {
            (true, None) => return Ok(()),
            (true, Some(_)) => return Err(Error::invalid("sentinel_master_name is set but sentinel_nodes is empty")),
            (false, None) => return Err(Error::invalid("sentinel_nodes is set but sentinel_master_name is not")),
            (false, Some("")) => return Err(Error::invalid("sentinel_master_name is empty")),
            (false, Some(_)) => {}
        }
        if !self.cluster_nodes.is_empty() {
            return Err(Error::invalid("sentinel_nodes and cluster_nodes are both set: use one"));
        }
        if self.url.is_some() {
            return Err(Error::invalid(
                "sentinel_nodes and url are both set: the master's address comes from Sentinel (set db, ssl and credentials instead of url)",
            ));
        }
        Ok(())
    }
}
