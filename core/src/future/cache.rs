//! [`Cache`]: the async cache, driving core's step machines over an [`AsyncBackend`].

use std::future::Future;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{AsyncBackend, drive};
use crate::backend::Reply;
use crate::compute::call::{Call, GetOrLock, Joined, Ticket};
use crate::compute::flow::{Ending, computation_failed, ending};
use crate::config::{Config, Lifetime};
use crate::error::{Error, Result};
use crate::local::Inner;
use crate::model::codec::{Cbor, Codec};
use crate::model::info::CacheInfo;
use crate::model::layout::ALL_TAG;
use crate::model::options::ComputeOptions;
use crate::model::tags::Tags;
use crate::ops::inspect::{Inspect, Inspection, TagState};
use crate::ops::invalidate::Invalidate;
use crate::ops::snapshot::{Access, Snapshot};
use crate::ops::step::int;

/// The async cache: the operations of [`crate::Cache`] under the same names
/// and with the same meaning, as `async fn`s. Built by
/// [`crate::CacheBuilder::build_async`]; cheap to clone, safe to share.
#[derive(Clone)]
pub struct Cache<C = Cbor> {
    pub(crate) inner: Arc<Inner>,
    pub(crate) backend: Arc<dyn AsyncBackend>,
    pub(crate) codec: C,
}

impl<C: Codec> Cache<C> {
    /// Returns the configuration this cache was built from.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Stores `value` (encoded by the codec) under `key` and `tags`.
    pub async fn set<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        tags: impl Tags,
        lifetime: Lifetime,
    ) -> Result<()> {
        let bytes = self.codec.encode(value)?;
        self.set_bytes(key, &bytes, tags, lifetime).await
    }

    /// Reads the value of `key` under `tags`: `Ok(Some)` on a hit, `Ok(None)`
    /// on a miss (bytes that do not decode are logged and read as a miss).
    pub async fn get<T: DeserializeOwned>(&self, key: &str, tags: impl Tags) -> Result<Option<T>> {
        let bytes = self.get_bytes(key, tags).await?;
        Ok(bytes.and_then(|b| crate::model::codec::decode_or_miss(&self.codec, key, &b)))
    }

    /// Stores raw bytes, with no codec.
    pub async fn set_bytes(&self, key: &str, value: &[u8], tags: impl Tags, lifetime: Lifetime) -> Result<()> {
        let access = self.inner.set_access(value, lifetime)?;
        drive(&*self.backend, Snapshot::new(&self.inner, key, &tags.tag_names(), access)).await?;
        Ok(())
    }

    /// Reads raw bytes: `Ok(Some)` on a hit, `Ok(None)` on a miss.
    pub async fn get_bytes(&self, key: &str, tags: impl Tags) -> Result<Option<Vec<u8>>> {
        if let Some(bytes) = self.inner.near_hit(key, &tags) {
            return Ok(Some(bytes.to_vec()));
        }
        let tags = tags.tag_names();
        // Read before sending: an invalidation processed meanwhile blocks the install.
        let generation = self.inner.near_generation();
        let mut done = drive(&*self.backend, Snapshot::new(&self.inner, key, &tags, Access::Get)).await?;
        self.inner.near_install(generation, &mut done);
        Ok(done.confirmed_reply().and_then(Reply::into_bytes))
    }

    /// Deletes the entry of `key` under `tags`; returns whether one existed.
    pub async fn delete(&self, key: &str, tags: impl Tags) -> Result<bool> {
        let done = drive(&*self.backend, Snapshot::new(&self.inner, key, &tags.tag_names(), Access::Del)).await?;
        Ok(done.confirmed_reply().is_some_and(|r| int(&r) > 0))
    }

    /// Invalidates one tag or several, in one round trip.
    pub async fn invalidate(&self, tags: impl Tags) -> Result<()> {
        drive(&*self.backend, Invalidate::new(&self.inner, tags.tag_names())).await
    }

    /// Invalidates every entry of the namespace in O(1).
    pub async fn invalidate_all(&self) -> Result<()> {
        drive(&*self.backend, Invalidate::new(&self.inner, vec![ALL_TAG])).await
    }

    /// What the near cache has done and holds (see [`crate::Cache::near_stats`]).
    pub fn near_stats(&self) -> Option<crate::local::near::NearStats> {
        self.inner.near.as_ref().map(|n| n.stats())
    }

    /// The first half of get-or-compute (see [`crate::Cache::get_or_lock`]);
    /// a wait for another holder never blocks a runtime thread.
    pub async fn get_or_lock(&self, options: &ComputeOptions) -> GetOrLock {
        let call = Call::new(&self.inner, options);
        if let Some(bytes) = call.near_bytes() {
            return call.near_hit(&bytes, options);
        }
        let looked = match call.lookup(options) {
            Ok(op) => drive(&*self.backend, op).await,
            Err(e) => Err(e),
        };
        match call.looked(looked, options) {
            Joined::Ready(outcome) => outcome,
            Joined::Follow(ticket, flight, key, wait) => {
                ticket.followed(self.inner.flights.wait_async(&flight, &key, wait).await)
            }
        }
    }

    /// The second half of get-or-compute (see [`crate::Cache::set_and_unlock`]).
    pub async fn set_and_unlock(&self, mut ticket: Ticket, value: Result<impl AsRef<[u8]>, Error>) -> CacheInfo {
        let value = value.as_ref().map(|v| v.as_ref()).map_err(Clone::clone);
        let saving = self.inner.fail_safe.as_ref().zip(ticket.storage_key().map(str::to_owned));
        let stored = match ticket.finishing(&self.inner, value.clone()) {
            Ok((op, _)) => drive(&*self.backend, op).await,
            Err(e) => Err(e),
        };
        let info = ticket.report(stored);
        // Stored under the ticket's snapshot: the entry's current value now.
        if let (Some((fail_safe, key)), Ok(bytes), None) = (saving, value, &info.error) {
            fail_safe.save(&key, bytes);
        }
        info
    }

    /// Gives up a ticket (see [`crate::Cache::release`]).
    pub async fn release(&self, ticket: Ticket) -> CacheInfo {
        if ticket.belongs_to(&self.inner)
            && let Err(e) = drive(&*self.backend, ticket.releasing()).await
        {
            tracing::warn!(error = %e, "cannot release a stampede lock; it expires after lock_timeout");
        }
        ticket.released()
    }

    /// Ends a ticket whose computation failed: the fail-safe value, its
    /// lock released, or `None` after a release (see
    /// [`crate::Cache::fail_and_unlock`]).
    pub async fn fail_and_unlock(&self, ticket: Ticket) -> (Option<Vec<u8>>, CacheInfo) {
        match ticket.fallback().filter(|_| ticket.belongs_to(&self.inner)) {
            Some(bytes) => {
                tracing::warn!(error = %computation_failed(), "returning the fail-safe value");
                let size = bytes.len();
                let info = self.serve_stale(ticket, size, computation_failed()).await;
                (Some(bytes.to_vec()), info)
            }
            None => (None, self.release(ticket).await),
        }
    }

    /// Returns the cached value for `options`, or computes it with `compute`
    /// (a future), stores it, and returns it. A backend failure never fails
    /// the call: the value is computed, and the error reported to the hook.
    pub async fn get_or_compute<T, F, Fut>(&self, options: &ComputeOptions, compute: F) -> T
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let result: Result<T, std::convert::Infallible> =
            self.try_get_or_compute(options, || async { Ok(compute().await) }).await;
        match result {
            Ok(value) => value,
        }
    }

    /// Like [`Cache::get_or_compute`] for a fallible computation: an `Err` is
    /// returned as is, nothing is stored, and the lock is released at once.
    pub async fn try_get_or_compute<T, E, F, Fut>(&self, options: &ComputeOptions, compute: F) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let codec = &self.codec;
        self.run(options, |b| codec.decode(b), compute, |v| codec.encode(v)).await
    }

    /// Get-or-compute on raw bytes, with no codec.
    pub async fn get_or_compute_bytes<E, F, Fut>(&self, options: &ComputeOptions, compute: F) -> Result<Vec<u8>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<u8>, E>>,
    {
        self.run(options, |b| Ok(b.to_vec()), compute, |v| Ok(v.clone())).await
    }

    /// How many get-or-compute calls with the lock wait, now, for another
    /// caller of this cache that computes the same key (single-flight
    /// followers), as [`crate::Cache::single_flight_waiters`].
    pub fn single_flight_waiters(&self) -> usize {
        self.inner.flights.waiters()
    }

    async fn run<T, E, F, Fut>(
        &self,
        options: &ComputeOptions,
        decode: impl Fn(&[u8]) -> Result<T>,
        compute: F,
        encode: impl Fn(&T) -> Result<Vec<u8>>,
    ) -> Result<T, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let ticket = match self.get_or_lock(options).await.decoded(&decode) {
            Ok(value) => return Ok(value),
            Err(ticket) => ticket,
        };
        // `get_or_lock` gave the fail-safe value or met the flight already;
        // how the call ends is core's one decision (`ending`), its I/O here.
        let computed = compute().await;
        match ending(options.cache_key(), ticket, computed, Ticket::fallback, &decode, &encode) {
            Ending::Store { ticket, encoded, value } => {
                let _ = self.set_and_unlock(ticket, encoded).await;
                Ok(value)
            }
            Ending::Stale { ticket, size, error, value } => {
                let _ = self.serve_stale(ticket, size, error).await;
                Ok(value)
            }
            Ending::GiveUp { ticket, error } => {
                let _ = self.release(ticket).await;
                Err(error)
            }
        }
    }

    /// Finishes a ticket with a fail-safe value (as the sync API's): releases
    /// its lock, reports a stale hit carrying `error`.
    async fn serve_stale(&self, ticket: Ticket, size: usize, error: Error) -> CacheInfo {
        if ticket.holds_lock()
            && let Err(e) = drive(&*self.backend, ticket.releasing()).await
        {
            tracing::warn!(error = %e, "cannot release a stampede lock; it expires after lock_timeout");
        }
        ticket.served_stale(size, error)
    }

    /// Returns the current value and time to live of each tag (see [`crate::Cache::tags`]).
    pub async fn tags(&self, tags: impl Tags) -> Result<Vec<TagState>> {
        Ok(drive(&*self.backend, Inspect::tags(&self.inner, tags.tag_names())).await?.tags)
    }

    /// Describes the entry of `key` under `tags` (see [`crate::Cache::inspect`]).
    pub async fn inspect(&self, key: &str, tags: impl Tags) -> Result<Inspection> {
        drive(&*self.backend, Inspect::entry(&self.inner, key, &tags.tag_names())).await
    }
}
