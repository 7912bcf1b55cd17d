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
//!
//! # The parts, and which way they depend
//!
//! Each folder of `src/` is one part; a part uses only the parts below it
//! (and [`config`](Config) and [`error`](Error), which everything uses):
//!
//! ```text
//! builder    CacheBuilder: picks the backend, starts the near cache, builds either API
//!   sync     the blocking API (Cache, RawCache) and its driver
//!   future   the async API (future::Cache) and its driver (feature `tokio`)
//!     compute   get-or-compute: one call in two halves, its accounting, the one flow
//!       ops        the sans-IO step machines: snapshot, invalidate, lock, inspect
//!         backend    the I/O boundary: Backend, memory, native Redis and its tracking, the host's
//!         local      in-process state: shared Inner, tag memo, near cache, fail-safe, flights
//!           model      pure data: layout, hashes, tags, codecs, options, CacheInfo
//! ```
//!
//! `backend` may read `local` (the native tracking connection feeds the near
//! cache; the host's backend keeps a near cache and fail-safe values below the
//! component) but `local` never imports `backend`, and `sync` and `future`
//! never import each other. Like rustls's `msgs`/`crypto` split and
//! quinn-proto's sans-IO `Connection`, the machines in `ops` and `compute`
//! make no call and read no clock: the drivers do.
#![deny(missing_docs)]

mod backend;
mod builder;
mod compute;
mod config;
mod error;
#[cfg(feature = "tokio")]
pub mod future;
mod local;
mod model;
mod ops;
mod sync;

pub use backend::memory::MemoryBackend;
#[cfg(feature = "redis")]
pub use backend::native::ClusterBackend;
#[cfg(feature = "redis-single")]
pub use backend::native::RedisBackend;
pub use backend::{Backend, Command, DisabledBackend, Reply};
pub use builder::CacheBuilder;
#[cfg(feature = "redis-single")]
pub use builder::native_backend;
pub use compute::call::{GetOrLock, Hit, Ticket};
pub use config::{Config, Lifetime, MAX_LIFETIME_SECS, NearTracking, Target};
pub use error::{Error, ErrorKind, Result};
pub use local::near::{NearLease, NearStats};
pub use model::codec::{Cbor, Codec};
pub use model::hash::short_hash;
pub use model::info::{CacheInfo, FunctionId, Hook, HookEvent};
pub use model::layout::{ALL_TAG, EntryKeys, Layout, hash_order, metadata_hash};
pub use model::options::{ComputeOptions, DEFAULT_LOCK_TIMEOUT};
pub use model::tags::{NO_TAGS, Tags};
pub use ops::inspect::{Inspection, TagState, Ttl};
pub use ops::lock::{LockStats, MAX_LOCK_TIMEOUT};
pub use sync::{Cache, Decorated, RawCache};

/// Items for the adapters of core (the WebAssembly component, the wasmtime
/// host), not for applications: they may change in any release.
#[doc(hidden)]
pub mod adapter {
    #[cfg(feature = "redis")]
    pub use crate::backend::host::HostBackend;
    pub use crate::backend::{contract, environment};
    pub use crate::compute::accounting::Accounting;
    pub use crate::compute::flow::{Lookup, TwoStep, get_or_compute};
    pub use crate::error::WitErrorCase;
    pub use crate::local::flight::{Flight, Flights, Leader, Meeting, Waited};
    pub use crate::sync::compute::set_and_unlock_outcome;
}
