//! The one-call operations: set, get, delete, invalidate, invalidate-all,
//! each one export call on a pooled instance, and the near cache's part in
//! them.
//!
//! A near-cache hit is answered here by the host, with no instance at all,
//! as the native engine answers it; the near cache itself lives in core's
//! `HostBackend`, below the component, and learns from its Redis batches.

use rtc_core::{Cbor, Codec, Lifetime, Result, Tags};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::convert::to_wit_lifetime;

use super::guest::call;
use super::pool::{ComponentCache, cache_api};

impl ComponentCache {
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

    pub(super) fn set_with(&self, key: &str, value: &[u8], tags: &[String], lifetime: Lifetime) -> Result<()> {
        call(&self.pool, |s| {
            cache_api(&s.rtc).call_set(&mut s.store, s.cache, key, value, tags, to_wit_lifetime(lifetime))
        })
    }

    pub(super) fn get_with(&self, key: &str, tags: &[String]) -> Result<Option<Vec<u8>>> {
        // A near-cache hit needs no instance: the host answers it as native does.
        if let Some(host) = &self.pool.host {
            let names: Vec<&str> = tags.iter().map(String::as_str).collect();
            if let Some(bytes) = host.get(key, &names) {
                return Ok(Some(bytes.to_vec()));
            }
        }
        call(&self.pool, |s| cache_api(&s.rtc).call_get(&mut s.store, s.cache, key, tags))
    }

    pub(super) fn delete_with(&self, key: &str, tags: &[String]) -> Result<bool> {
        call(&self.pool, |s| cache_api(&s.rtc).call_delete(&mut s.store, s.cache, key, tags))
    }

    pub(super) fn invalidate_with(&self, tags: &[String]) -> Result<()> {
        call(&self.pool, |s| cache_api(&s.rtc).call_invalidate(&mut s.store, s.cache, tags))
    }

    /// Invalidates every entry of the namespace in one write.
    pub fn invalidate_all(&self) -> Result<()> {
        call(&self.pool, |s| cache_api(&s.rtc).call_invalidate_all(&mut s.store, s.cache))
    }
}

fn owned(tags: impl Tags) -> Vec<String> {
    tags.tag_names().into_iter().map(str::to_owned).collect()
}
