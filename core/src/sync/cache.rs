//! The cache: tag-versioned set, get, delete and invalidation over a [`Backend`].

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::{Backend, Reply};
use crate::config::{Config, Lifetime};
use crate::error::Result;
use crate::local::Inner;
use crate::model::codec::{Cbor, Codec};
use crate::model::layout::ALL_TAG;
use crate::model::tags::Tags;
use crate::ops::inspect::{Inspect, Inspection, TagState};
use crate::ops::invalidate::Invalidate;
use crate::ops::snapshot::{Access, Snapshot};
use crate::ops::step::int;
use crate::sync::drive;

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
        Ok(bytes.and_then(|b| crate::model::codec::decode_or_miss(&self.codec, key, &b)))
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
        if let Some(bytes) = self.inner.near_hit(key, &tags) {
            return Ok(Some(bytes.to_vec()));
        }
        self.read_bytes(key, tags)
    }

    /// Reads raw bytes from the backend (the near cache, if any, was asked).
    fn read_bytes(&self, key: &str, tags: impl Tags) -> Result<Option<Vec<u8>>> {
        let tags = tags.tag_names();
        // Read before sending: an invalidation processed meanwhile blocks the install.
        let generation = self.inner.near_generation();
        let mut done = drive(&*self.backend, Snapshot::new(&self.inner, key, &tags, Access::Get))?;
        self.inner.near_install(generation, &mut done);
        Ok(done.confirmed_reply().and_then(Reply::into_bytes))
    }

    /// [`Cache::get_bytes`], with a [`NearLease`](crate::NearLease) when
    /// the near cache served the hit: how long an adapter may keep serving
    /// these bytes for this key and these tags as given without calling
    /// again (while [`Cache::near_stamp`] reads the lease's stamp, until its
    /// end). A hit read from Redis, or with no near cache, has none.
    pub fn get_bytes_leased(&self, key: &str, tags: impl Tags) -> Result<Option<(Vec<u8>, Option<crate::NearLease>)>> {
        if let Some((bytes, lease)) = self.inner.near_hit_leased(key, &tags) {
            return Ok(Some((bytes.to_vec(), Some(lease))));
        }
        Ok(self.read_bytes(key, tags)?.map(|bytes| (bytes, None)))
    }

    /// The near cache's stamp, which every change of what it may serve
    /// moves (a push, a flush, this process's own write, the tracking
    /// connection going down or up): what a [`NearLease`](crate::NearLease)
    /// is checked against. `None` without a near cache. It stays at one
    /// address for the cache's life, so the C ABI hands out its address.
    pub fn near_stamp(&self) -> Option<&std::sync::atomic::AtomicU64> {
        self.inner.near.as_deref().map(crate::local::near::NearState::stamp)
    }

    /// What the near cache has done (hits, misses, invalidations received,
    /// flushes) and holds; `None` when it is off (see
    /// [`Config::near_cache_max_entries`]).
    pub fn near_stats(&self) -> Option<crate::local::near::NearStats> {
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

impl<C: Codec> Cache<C> {
    /// Returns the current value and time to live of each tag, without
    /// creating any (one round trip).
    ///
    /// ```
    /// use rtc_core::{Cache, Lifetime, Ttl};
    /// let cache = Cache::builder().in_local_memory(true).build().unwrap();
    /// assert_eq!(cache.tags(["t"]).unwrap()[0].ttl, Ttl::Missing);
    /// cache.set_bytes("k", b"v", ["t"], Lifetime::Default).unwrap();
    /// assert!(cache.tags(["t"]).unwrap()[0].value.is_some());
    /// ```
    pub fn tags(&self, tags: impl Tags) -> Result<Vec<TagState>> {
        Ok(drive(&*self.backend, Inspect::tags(&self.inner, tags.tag_names()))?.tags)
    }

    /// Describes the entry of `key` under `tags`: its tags' current values
    /// and TTLs, its storage key, and whether a read would hit. Creates
    /// nothing (a `get` would create missing tags); two round trips at most.
    ///
    /// ```
    /// use rtc_core::{Cache, Lifetime};
    /// let cache = Cache::builder().in_local_memory(true).build().unwrap();
    /// assert!(!cache.inspect("k", ["t"]).unwrap().would_hit());
    /// cache.set_bytes("k", b"v", ["t"], Lifetime::Seconds(60)).unwrap();
    /// let seen = cache.inspect("k", ["t"]).unwrap();
    /// assert!(seen.would_hit() && seen.value_size == Some(1));
    /// ```
    pub fn inspect(&self, key: &str, tags: impl Tags) -> Result<Inspection> {
        drive(&*self.backend, Inspect::entry(&self.inner, key, &tags.tag_names()))
    }
}
