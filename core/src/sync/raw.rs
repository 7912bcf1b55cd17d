//! [`RawCache`]: the raw-bytes operations every cache implementation offers,
//! so a program (the `rtc` command, a test table) can run on the native
//! cache or on the WebAssembly component through one interface.

use crate::config::{Config, Lifetime};
use crate::error::{Error, Result};
use crate::model::codec::Codec;
use crate::model::options::ComputeOptions;
use crate::sync::cache::Cache;

/// The raw-bytes cache surface, object-safe: `set`, `get`, `delete`,
/// `invalidate`, `invalidate_all` and get-or-compute, with the meanings of
/// [`Cache`]'s methods of the same names. Implemented by [`Cache`] and by
/// the wasmtime host's `ComponentCache`; use it as `&dyn RawCache`.
///
/// The methods have the names of [`Cache`]'s (one operation, one name);
/// on a `Cache` itself the inherent methods are called, which mean the same.
///
/// ```
/// use rtc_core::{Cache, ComputeOptions, Lifetime, RawCache};
/// let cache: Box<dyn RawCache> = Box::new(Cache::builder().in_local_memory(true).build()?);
/// let tags = vec!["t".to_string()];
/// cache.set_bytes("k", b"v", &tags, Lifetime::Default)?;
/// assert_eq!(cache.get_bytes("k", &tags)?, Some(b"v".to_vec()));
/// let v = cache.get_or_compute_bytes(&ComputeOptions::key("n"), &mut || Ok(b"7".to_vec()))?;
/// assert_eq!(v, b"7");
/// # Ok::<(), rtc_core::Error>(())
/// ```
pub trait RawCache: Send + Sync {
    /// The configuration the cache was built from.
    fn config(&self) -> &Config;

    /// Stores raw bytes under `key` and `tags` (see [`Cache::set_bytes`]).
    fn set_bytes(&self, key: &str, value: &[u8], tags: &[String], lifetime: Lifetime) -> Result<()>;

    /// Reads raw bytes: `Ok(None)` is a miss (see [`Cache::get_bytes`]).
    fn get_bytes(&self, key: &str, tags: &[String]) -> Result<Option<Vec<u8>>>;

    /// Deletes an entry; returns whether one existed (see [`Cache::delete`]).
    fn delete(&self, key: &str, tags: &[String]) -> Result<bool>;

    /// Invalidates tags (see [`Cache::invalidate`]).
    fn invalidate(&self, tags: &[String]) -> Result<()>;

    /// Invalidates everything in the namespace (see [`Cache::invalidate_all`]).
    fn invalidate_all(&self) -> Result<()>;

    /// Get-or-compute on raw bytes (see [`Cache::get_or_compute_bytes`]):
    /// an `Err` from `compute` is returned as is and nothing is stored.
    fn get_or_compute_bytes(
        &self,
        options: &ComputeOptions,
        compute: &mut dyn FnMut() -> Result<Vec<u8>, Error>,
    ) -> Result<Vec<u8>, Error>;

    /// What the near cache has done and holds; `None` when it is off (see
    /// [`Cache::near_stats`]).
    fn near_stats(&self) -> Option<crate::NearStats> {
        None
    }
}

impl<C: Codec> RawCache for Cache<C> {
    fn config(&self) -> &Config {
        Cache::config(self)
    }

    fn set_bytes(&self, key: &str, value: &[u8], tags: &[String], lifetime: Lifetime) -> Result<()> {
        Cache::set_bytes(self, key, value, tags, lifetime)
    }

    fn get_bytes(&self, key: &str, tags: &[String]) -> Result<Option<Vec<u8>>> {
        Cache::get_bytes(self, key, tags)
    }

    fn delete(&self, key: &str, tags: &[String]) -> Result<bool> {
        Cache::delete(self, key, tags)
    }

    fn invalidate(&self, tags: &[String]) -> Result<()> {
        Cache::invalidate(self, tags)
    }

    fn invalidate_all(&self) -> Result<()> {
        Cache::invalidate_all(self)
    }

    fn get_or_compute_bytes(
        &self,
        options: &ComputeOptions,
        compute: &mut dyn FnMut() -> Result<Vec<u8>, Error>,
    ) -> Result<Vec<u8>, Error> {
        Cache::get_or_compute_bytes(self, options, compute)
    }

    fn near_stats(&self) -> Option<crate::NearStats> {
        Cache::near_stats(self)
    }
}
