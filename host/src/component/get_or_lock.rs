//! The split calls: [`ComponentCache::get_or_lock`] hands out a [`Hit`] or
//! a [`Ticket`], and [`ComponentCache::set_and_unlock`] spends the ticket,
//! each one call of the component's `get-or-lock` and `set-and-unlock`.
//!
//! A hit or a ticket keeps the instance that made it (the guest's `found`
//! or `ticket` resource lives in that instance's store) until it is
//! finished, spent or dropped; dropping one runs the guest's destructor,
//! which releases the lock. With the lock, the split calls meet the other
//! callers of this cache in this process that must compute the same key
//! (the pool's flights, shared by every instance, which no instance has):
//! one gets the ticket, the others wait and get its value as a hit, also
//! when Redis is unreachable, as core's two calls do. Get-or-compute
//! (`compute.rs`) is built on the same lookup and store, with the host's
//! single-flight and fail-safe around them.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use std::time::Duration;

use rtc_core::adapter::{Accounting, Meeting, Waited};
use rtc_core::{CacheInfo, ComputeOptions, Error, ErrorKind, Lifetime, LockStats, Result};
use wasmtime::component::ResourceAny;

use crate::bindings::exports::rtc::cache::cache as wit;
use crate::bindings::rtc::cache::types;
use crate::convert::{from_wit_stats, lock_timeout_ms, to_wit_function, to_wit_lifetime};
use crate::state::{CallHook, panic_message};

use super::guest::{Failure, guarded};
use super::pool::{ComponentCache, Pool, Slot, cache_api};

/// The outcome of [`ComponentCache::get_or_lock`], shaped as core's `GetOrLock`.
#[derive(Debug)]
pub enum GetOrLock {
    /// The value was cached: decode [`Hit::value`], then call [`Hit::finish`],
    /// or [`Hit::undecodable`] if it does not decode.
    Hit(Hit),
    /// Not cached, and this caller holds the lock: compute the value, then
    /// call [`ComponentCache::set_and_unlock`] (or drop the ticket to give up).
    Locked(Ticket),
    /// Not cached, and no lock is held (none was asked for, or the wait for
    /// another holder timed out): compute the value; `set_and_unlock` still
    /// stores it under the snapshot.
    Miss(Ticket),
}

/// A cached value found by [`ComponentCache::get_or_lock`], shaped as core's
/// `Hit`: the component reports it when it is finished, so a hit whose bytes
/// do not decode is reported as the computation it turns into, as natively.
///
/// It holds the component instance that made it until it is finished (or
/// dropped, which reports nothing).
#[must_use = "a hit is reported by `finish`"]
pub struct Hit {
    value: Vec<u8>,
    stats: LockStats,
    pool: Arc<Pool>,
    slot: Option<Slot>,
    found: Option<ResourceAny>,
    hook: CallHook,
    lifetime: Lifetime,
    /// A value another caller of this process computed (a flight's
    /// follower): the report `finish` gives the hook, with the call's key
    /// and tags, if the component has not reported the call already.
    shared: Option<(String, Vec<String>, Option<CacheInfo>)>,
}

impl std::fmt::Debug for Hit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hit").field("len", &self.value.len()).field("stats", &self.stats).finish_non_exhaustive()
    }
}

impl Hit {
    /// Returns the cached bytes.
    pub fn value(&self) -> &[u8] {
        &self.value
    }

    /// Returns how the lock behaved.
    pub fn stats(&self) -> LockStats {
        self.stats
    }

    /// Finishes the call: the component reports the hit to the hook. Returns
    /// the bytes.
    pub fn finish(mut self) -> Vec<u8> {
        if let Some((key, tags, Some(info))) = self.shared.take() {
            self.pool.imports.report(&key, &tags, &info, self.hook.userdata.as_deref());
        }
        if let (Some(mut slot), Some(found)) = (self.slot.take(), self.found.take()) {
            self.hook.enter(&mut slot.store);
            let finished = guarded(|| {
                slot.rtc.rtc_cache_cache().found().call_finish(&mut slot.store, found)?;
                Ok(Ok::<_, types::Error>(()))
            });
            CallHook::leave(&mut slot.store);
            let healthy = finished.as_ref().map_or_else(|f| !f.trapped, |()| true);
            self.pool.release(slot, healthy);
        }
        std::mem::take(&mut self.value)
    }

    /// The bytes did not decode (`error`): the call becomes a computation
    /// whose [`ComponentCache::set_and_unlock`] overwrites them and reports
    /// the call, with `error`. Fails only when the instance trapped.
    pub fn undecodable(mut self, error: &Error) -> Result<Ticket> {
        if self.shared.is_some() {
            return Err(Error::new(
                ErrorKind::Other,
                format!(
                    "another caller of this process computed this value, which does not decode ({error}): compute it alone"
                ),
            ));
        }
        let (Some(mut slot), Some(found)) = (self.slot.take(), self.found.take()) else {
            return Err(Error::new(ErrorKind::Other, "this hit was already used"));
        };
        let reason = error.to_string();
        let made = guarded(|| {
            let handle = slot.rtc.rtc_cache_cache().found().call_undecodable(&mut slot.store, found, &reason)?;
            let storage_key = slot.rtc.rtc_cache_cache().ticket().call_storage_key(&mut slot.store, handle)?;
            Ok(Ok::<_, types::Error>((handle, storage_key)))
        });
        match made {
            Ok((handle, storage_key)) => Ok(Ticket {
                pool: Arc::clone(&self.pool),
                slot: Some(slot),
                handle: Some(handle),
                holds_lock: false,
                stats: LockStats::default(),
                storage_key,
                lifetime: self.lifetime,
                hook: std::mem::take(&mut self.hook),
                leader: None,
                failed: None,
            }),
            Err(failure) => {
                self.pool.release(slot, !failure.trapped);
                Err(failure.error)
            }
        }
    }
}

impl Drop for Hit {
    fn drop(&mut self) {
        let (Some(mut slot), Some(found)) = (self.slot.take(), self.found.take()) else {
            return;
        };
        // Reports nothing, as core's `Hit` dropped unfinished.
        let dropped = catch_unwind(AssertUnwindSafe(|| found.resource_drop(&mut slot.store)));
        self.pool.release(slot, matches!(dropped, Ok(Ok(()))));
    }
}

/// The right to store one computed value under the tag snapshot taken by
/// [`ComponentCache::get_or_lock`], and the stampede lock if
/// [`Ticket::holds_lock`], shaped as core's `Ticket`.
///
/// It holds the component instance that made it. Dropping it without
/// storing releases its lock (and wakes waiters) and returns the instance.
#[must_use = "a ticket holds a lock until it is used or dropped"]
pub struct Ticket {
    pool: Arc<Pool>,
    slot: Option<Slot>,
    handle: Option<ResourceAny>,
    holds_lock: bool,
    stats: LockStats,
    storage_key: String,
    lifetime: Lifetime,
    hook: CallHook,
    /// This caller leads its key's flight: `set_and_unlock` hands the value
    /// to the followers; dropping the ticket hands the flight to one of them.
    leader: Option<rtc_core::adapter::Leader>,
    /// The lookup failed (the component reported it): the ticket stores
    /// nothing, and `set_and_unlock` returns this error.
    failed: Option<Error>,
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket")
            .field("holds_lock", &self.holds_lock)
            .field("stats", &self.stats)
            .field("storage_key", &self.storage_key)
            .finish_non_exhaustive()
    }
}

impl Ticket {
    /// Returns true when this ticket holds the stampede lock.
    pub fn holds_lock(&self) -> bool {
        self.holds_lock
    }

    /// Returns how the lock behaved while this ticket was obtained.
    pub fn stats(&self) -> LockStats {
        self.stats
    }

    /// Returns the storage key the value will be written to.
    pub fn storage_key(&self) -> &str {
        &self.storage_key
    }

    /// A ticket for a lookup that failed with `error` (the component
    /// reported it): no instance, no lock, nothing to store.
    fn failed(pool: &Arc<Pool>, options: &ComputeOptions, error: Error) -> Self {
        Ticket {
            pool: Arc::clone(pool),
            slot: None,
            handle: None,
            holds_lock: false,
            stats: LockStats::default(),
            storage_key: String::new(),
            lifetime: options.entry_lifetime(),
            hook: CallHook::reporting(options.userdata().cloned()),
            leader: None,
            failed: Some(error),
        }
    }

    /// The lookup's outcome with this ticket: locked if it holds the lock.
    fn outcome(self) -> GetOrLock {
        if self.holds_lock { GetOrLock::Locked(self) } else { GetOrLock::Miss(self) }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let (Some(mut slot), Some(handle)) = (self.slot.take(), self.handle.take()) else {
            return;
        };
        // The guest's destructor releases the lock through `redis.execute`.
        let dropped = catch_unwind(AssertUnwindSafe(|| handle.resource_drop(&mut slot.store)));
        let healthy = match dropped {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::warn!(error = %format!("{e:#}"), "dropping a ticket trapped; the instance is discarded");
                false
            }
            Err(panic) => {
                tracing::warn!(panic = panic_message(&*panic), "dropping a ticket panicked; the instance is discarded");
                false
            }
        };
        self.pool.release(slot, healthy);
    }
}

impl ComponentCache {
    /// The component's `get-or-lock`, core's [`rtc_core::Cache::get_or_lock`]
    /// run in the guest: reads the entry of `options`, and on a miss takes the
    /// stampede lock if the options ask for it. The component reports a
    /// failed lookup to the hook; a hit is reported by [`Hit::finish`], a
    /// miss by [`ComponentCache::set_and_unlock`].
    ///
    /// With the lock, the callers of this cache in this process that miss
    /// one key meet first: one gets the ticket, the others wait (up to the
    /// lock timeout) and get its value as a hit; dropping the ticket hands
    /// the computation to one of them. So this process computes the key
    /// once, also when Redis is unreachable (where the Redis lock fails
    /// open): a failed lookup then returns a [`GetOrLock::Miss`] ticket that
    /// stores nothing, and its `set_and_unlock` returns the Redis error.
    ///
    /// `Err`: the backend failed and the lock was off (or no instance could
    /// run the call), or `options` are invalid: compute the value and do
    /// not store it.
    pub fn get_or_lock(&self, options: &ComputeOptions) -> Result<GetOrLock> {
        let hook = CallHook::reporting(options.userdata().cloned());
        let looked = self.lookup(options, hook);
        // Without the lock every miss computes: there is no flight to meet.
        let Some(wait) = options.lock_wait() else {
            return looked.map_err(|f| f.error);
        };
        let ticket = match looked {
            Ok(GetOrLock::Hit(hit)) => return Ok(GetOrLock::Hit(hit)),
            Ok(GetOrLock::Locked(ticket) | GetOrLock::Miss(ticket)) => ticket,
            // Redis failed, and the component reported it: the call still
            // meets the others, so the process computes once.
            Err(failure) if failure.answered && is_backend(&failure.error) => {
                Ticket::failed(&self.pool, options, failure.error)
            }
            Err(failure) => return Err(failure.error),
        };
        Ok(self.meet(options, ticket, wait))
    }

    /// Joins the flight of the ticket's key (see `flight` in core): leads
    /// it, or waits up to `wait` for its leader's value.
    fn meet(&self, options: &ComputeOptions, mut ticket: Ticket, wait: Duration) -> GetOrLock {
        let flights = &self.pool.flights;
        match flights.meet(options.cache_key(), options.tag_list(), ticket.holds_lock) {
            Meeting::Lead(leader) => ticket.leader = Some(leader),
            Meeting::Alone => {}
            Meeting::Follow(flight, key) => match flights.wait(&flight, &key, wait) {
                Waited::Value(bytes, error, waited) => {
                    return GetOrLock::Hit(self.followed(options, ticket, &bytes, error, waited));
                }
                // The leader gave up: this caller leads now.
                Waited::Lead(leader) => ticket.leader = Some(leader),
                Waited::TimedOut => {}
            },
        }
        ticket.outcome()
    }

    /// A follower's hit: the leader's value, reported (by [`Hit::finish`])
    /// as a hit after `waited`, carrying the leader's `error` (its store
    /// bypassed the cache) unless the component reported the call already
    /// (its own lookup failed: one report per call).
    fn followed(
        &self,
        options: &ComputeOptions,
        mut ticket: Ticket,
        bytes: &[u8],
        error: Option<Error>,
        waited: Duration,
    ) -> Hit {
        let info = ticket.failed.is_none().then(|| {
            let mut shadow = Accounting::start(options);
            shadow.looked_up(ticket.stats);
            shadow.shared(bytes.len(), waited, error);
            shadow.finish()
        });
        let hook = std::mem::take(&mut ticket.hook);
        let stats = ticket.stats;
        // The component's ticket goes unused (it holds no lock), and reports nothing.
        drop(ticket);
        Hit {
            value: bytes.to_vec(),
            stats,
            pool: Arc::clone(&self.pool),
            slot: None,
            found: None,
            hook,
            lifetime: options.entry_lifetime(),
            shared: Some((options.cache_key().to_owned(), options.tag_list().to_vec(), info)),
        }
    }

    /// The component's `set-and-unlock`: stores `value` under the ticket's
    /// snapshot for the options' lifetime, releases its lock (if it holds
    /// one) and wakes the waiters, all in one round trip, and reports the
    /// call to the hook. A ticket that leads its flight hands `value` to
    /// the callers waiting for it; one from a failed lookup stores nothing
    /// and returns that lookup's error.
    pub fn set_and_unlock(&self, mut ticket: Ticket, value: &[u8]) -> Result<()> {
        // Closed before the store: a caller arriving after it reads for itself.
        let leader = ticket.leader.take().map(|mut leader| {
            leader.close();
            leader
        });
        let result = match ticket.failed.take() {
            Some(error) => Err(error),
            None => store_ticket(ticket, value).map_err(|f| f.error),
        };
        if let Some(leader) = leader {
            leader.finish(Some((value.to_vec(), result.as_ref().err().cloned())));
        }
        result
    }

    /// Runs `get-or-lock` and turns its outcome into [`GetOrLock`].
    pub(super) fn lookup(&self, options: &ComputeOptions, hook: CallHook) -> Result<GetOrLock, Failure> {
        let (key, tags) = (options.cache_key(), options.tag_list());
        let wit_options = wit::LockOptions {
            lock_timeout_ms: lock_timeout_ms(options.lock_wait()),
            function: to_wit_function(options.function_id()),
            arguments: options.arguments().to_vec(),
            method: options.is_method(),
        };
        let mut slot = self.pool.acquire().map_err(Failure::unanswered)?;
        hook.enter(&mut slot.store);
        let looked =
            guarded(|| cache_api(&slot.rtc).call_get_or_lock(&mut slot.store, slot.cache, key, tags, &wit_options));
        let held = CallHook::leave(&mut slot.store);
        let lookup = match looked {
            Ok(lookup) => lookup,
            Err(mut failure) => {
                self.pool.release(slot, !failure.trapped);
                failure.held = held;
                return Err(failure);
            }
        };
        // Only a failed lookup is reported at once; anything else held goes on now,
        // and the hit or ticket reports as usual.
        self.pool.imports.replay(held, hook.userdata.as_deref());
        let hook = CallHook { hold: false, ..hook };
        let handle = match lookup {
            wit::Lookup::Hit(hit) => {
                return Ok(GetOrLock::Hit(Hit {
                    value: hit.value,
                    stats: from_wit_stats(hit.stats),
                    pool: Arc::clone(&self.pool),
                    slot: Some(slot),
                    found: Some(hit.found),
                    hook,
                    lifetime: options.entry_lifetime(),
                    shared: None,
                }));
            }
            wit::Lookup::Locked(handle) | wit::Lookup::Miss(handle) => handle,
        };
        let locked = matches!(lookup, wit::Lookup::Locked(_));
        let described = guarded(|| {
            let ticket = slot.rtc.rtc_cache_cache().ticket();
            let stats = ticket.call_stats(&mut slot.store, handle)?;
            let storage_key = ticket.call_storage_key(&mut slot.store, handle)?;
            Ok(Ok::<_, types::Error>((stats, storage_key)))
        });
        let (stats, storage_key) = match described {
            Ok(described) => described,
            Err(failure) => {
                self.pool.release(slot, false);
                return Err(failure);
            }
        };
        let ticket = Ticket {
            pool: Arc::clone(&self.pool),
            slot: Some(slot),
            handle: Some(handle),
            holds_lock: locked,
            stats: from_wit_stats(stats),
            storage_key,
            lifetime: options.entry_lifetime(),
            hook,
            leader: None,
            failed: None,
        };
        Ok(ticket.outcome())
    }
}

/// Runs `set-and-unlock` on the ticket's own instance (and cache, as core's
/// ticket carries its own), then returns the instance to its pool.
pub(super) fn store_ticket(mut ticket: Ticket, value: &[u8]) -> Result<(), Failure> {
    let lifetime = ticket.lifetime;
    let (Some(mut slot), Some(handle)) = (ticket.slot.take(), ticket.handle.take()) else {
        return Err(Failure::unanswered(Error::new(ErrorKind::Other, "this ticket was already used")));
    };
    let pool = Arc::clone(&ticket.pool);
    ticket.hook.enter(&mut slot.store);
    let result = guarded(|| {
        cache_api(&slot.rtc).call_set_and_unlock(&mut slot.store, slot.cache, handle, value, to_wit_lifetime(lifetime))
    });
    CallHook::leave(&mut slot.store);
    let healthy = result.as_ref().map_or_else(|f| !f.trapped, |_| true);
    pool.release(slot, healthy);
    result
}

/// Whether a lookup failed because of the backend (not the options).
fn is_backend(error: &Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::BackendUnavailable | ErrorKind::Timeout | ErrorKind::Backend | ErrorKind::Protocol
    )
}
