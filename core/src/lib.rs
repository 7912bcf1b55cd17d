//! rtc: a Redis-backed cache with O(1) tag-based invalidation.
//!
//! This crate holds all of rtc's cache logic: tag versioning, key hashing,
//! the stampede lock and [`CacheInfo`] accounting. It does no I/O of its own:
//! it talks to a [`Backend`] that runs Redis-shaped commands. Backends: the
//! native Redis client (feature `redis`), the in-process [`MemoryBackend`],
//! the [`DisabledBackend`], or anything else (the WebAssembly component
//! passes its host's import).
//!
//! The key layout is byte-compatible with Python `redis-tagged-cache` 0.12.1:
//! each tag has a random value in Redis, and an entry's storage key holds a
//! hash of its tags' current values, so invalidating a tag is one write.
//!
//! ```
//! use rtc_core::{Cache, ComputeOptions, Lifetime};
//!
//! let cache = Cache::builder().namespace("docs").in_local_memory(true).build()?;
//! cache.set("user:1", &"Ada", ["users"], Lifetime::Seconds(60))?;
//! assert_eq!(cache.get::<String>("user:1", ["users"])?, Some("Ada".to_string()));
//! cache.invalidate("users")?;
//! assert_eq!(cache.get::<String>("user:1", ["users"])?, None);
//!
//! let n: u64 = cache.get_or_compute(&ComputeOptions::key("n").tags(["users"]).lock(true), || 7);
//! assert_eq!(n, 7);
//! # Ok::<(), rtc_core::Error>(())
//! ```
#![deny(missing_docs)]

mod accounting;
mod backend;
mod cache;
mod codec;
mod compute;
mod config;
mod error;
mod fail_safe;
mod flight;
#[cfg(feature = "tokio")]
pub mod future;
mod get_or_lock;
mod hash;
mod host_backend;
mod info;
mod inspect;
mod invalidate;
mod layout;
mod lock;
mod memory;
#[cfg(feature = "redis")]
mod native;
mod near;
mod raw;
mod snapshot;
mod step;
mod tags;
mod two_step;

pub use backend::{Backend, Command, DisabledBackend, Reply};
#[cfg(feature = "redis")]
pub use cache::native_backend;
pub use cache::{Cache, CacheBuilder};
pub use codec::{Cbor, Codec};
pub use compute::{ComputeOptions, DEFAULT_LOCK_TIMEOUT, Decorated};
pub use config::{Config, Lifetime, MAX_LIFETIME_SECS, Target};
pub use error::{Error, ErrorKind, Result};
pub use get_or_lock::{GetOrLock, Hit, Ticket};
pub use hash::short_hash;
pub use info::{CacheInfo, FunctionId, Hook, HookEvent};
pub use inspect::{Inspection, TagState, Ttl};
pub use layout::{ALL_TAG, EntryKeys, Layout, hash_order, metadata_hash};
pub use lock::{LockStats, MAX_LOCK_TIMEOUT};
pub use memory::MemoryBackend;
#[cfg(feature = "redis")]
pub use native::{ClusterBackend, RedisBackend};
pub use near::NearStats;
pub use raw::RawCache;
pub use tags::{NO_TAGS, Tags};

/// Items for the adapters of core (the WebAssembly component, the wasmtime
/// host), not for applications: they may change in any release.
#[doc(hidden)]
pub mod adapter {
    pub use crate::accounting::Accounting;
    pub use crate::error::WitErrorCase;
    pub use crate::flight::Flights;
    pub use crate::host_backend::HostBackend;
    pub use crate::two_step::{Lookup, TwoStep, get_or_compute};
}
