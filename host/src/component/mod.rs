//! [`ComponentCache`]: core's cache API, served by the rtc component.
//!
//! The parts, from the bottom up (each uses only those above it in this
//! list, and the crate's `bindings`, `convert`, `runtime` and `state`):
//!
//! - `pool`: [`ComponentCache`] itself, a handle on the pool of instances
//!   (one `Store` each) and what they share: imports, single-flight table,
//!   the host's near cache and fail-safe store.
//! - `guest`: one guarded call into an instance; a trap or a panic becomes
//!   an error and discards the instance.
//! - `builder`: [`ComponentCacheBuilder`], which picks the backend and fills
//!   the pool.
//! - `ops`: the one-call operations (set, get, delete, invalidate), and the
//!   near-cache hit answered with no instance.
//! - `get_or_lock`: the split calls, [`GetOrLock`], [`Hit`] and [`Ticket`].
//! - `compute`: get-or-compute, core's flow over the split calls, with
//!   single-flight, fail-safe and the hook reports the component cannot make.
//!
//! This file only names the parts, re-exports the public types, and joins
//! `ops` and `compute` into core's object-safe [`rtc_core::RawCache`].

mod builder;
mod compute;
mod get_or_lock;
mod guest;
mod ops;
mod pool;

use rtc_core::{ComputeOptions, Config, Error, Lifetime, Result};

pub use builder::ComponentCacheBuilder;
pub use get_or_lock::{GetOrLock, Hit, Ticket};
pub use pool::ComponentCache;

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
