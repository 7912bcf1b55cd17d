//! Get-or-compute on the component: core's one flow
//! ([`rtc_core::adapter::get_or_compute`]) driven over the split calls, with
//! the guarantees that wrap a call kept in the host.
//!
//! Core's flow runs here, in the host, through the [`TwoStep`] impl below:
//! single-flight (the pool's `Flights`, so callers in this process wait for
//! one leader) and fail-safe (a stale value from the host's `HostBackend`
//! when the lookup failed) need state shared by every instance, which no
//! instance has. The component does the accounting and reports each call to
//! the hook; the host keeps a shadow [`Accounting`] and reports only what the
//! component could not (no instance, a trap, an encode failure, a stale hit,
//! a value shared by a flight), holding the component's report of a failed
//! lookup until it knows whether fail-safe answers instead.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use rtc_core::adapter::{Accounting, Flights, Lookup, TwoStep};
use rtc_core::{Cbor, Codec, ComputeOptions, Error, LockStats, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::state::{CallHook, Held};

use super::get_or_lock::{GetOrLock, Hit, Ticket, store_ticket};
use super::guest::Failure;
use super::pool::ComponentCache;

impl ComponentCache {
    /// Returns the cached value for `options`, or computes it with `compute`,
    /// stores it, and returns it. A backend failure never fails the call: the
    /// value is computed, and the error is reported to the hook.
    pub fn get_or_compute<T, F>(&self, options: &ComputeOptions, compute: F) -> T
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> T,
    {
        let result: Result<T, Infallible> = self.try_get_or_compute(options, || Ok(compute()));
        match result {
            Ok(value) => value,
        }
    }

    /// Like [`ComponentCache::get_or_compute`] for a fallible computation: an
    /// `Err` from `compute` is returned as is, nothing is stored, and the
    /// lock is released so a waiter can try.
    pub fn try_get_or_compute<T, E, F>(&self, options: &ComputeOptions, compute: F) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Result<T, E>,
    {
        self.run(options, |bytes| Cbor.decode(bytes), compute, |value| Cbor.encode(value))
    }

    /// How many get-or-compute calls with the lock wait, now, for another
    /// caller of this cache in this process that computes the same key
    /// (single-flight followers), as [`rtc_core::Cache::single_flight_waiters`].
    pub fn single_flight_waiters(&self) -> usize {
        self.pool.flights.waiters()
    }

    /// Get-or-compute on raw bytes, with no codec.
    pub fn get_or_compute_bytes<E, F>(&self, options: &ComputeOptions, compute: F) -> Result<Vec<u8>, E>
    where
        F: FnOnce() -> Result<Vec<u8>, E>,
    {
        self.run(options, |bytes| Ok(bytes.to_vec()), compute, |value| Ok(value.clone()))
    }

    /// Get-or-compute on the component, with core's control flow
    /// ([`rtc_core::adapter::get_or_compute`]) over the component's
    /// `get-or-lock` and `set-and-unlock` (see the [`TwoStep`] impl below).
    fn run<T, E>(
        &self,
        options: &ComputeOptions,
        decode: impl Fn(&[u8]) -> Result<T>,
        compute: impl FnOnce() -> Result<T, E>,
        encode: impl Fn(&T) -> Result<Vec<u8>>,
    ) -> Result<T, E> {
        rtc_core::adapter::get_or_compute(self, options, decode, compute, encode)
    }
}

/// A get-or-compute waiting for its value on the component: the component's
/// ticket (none when the lookup failed) and core's accounting of the call,
/// which the host reports only for what the component could not (no
/// instance, a trap, an encode failure).
pub struct PendingCall {
    ticket: Option<Ticket>,
    shadow: Accounting,
    /// The component reported this call already (its lookup failed, and
    /// the WIT reports a failed get-or-lock at once).
    reported: bool,
    /// Why the lookup failed, if it did.
    error: Option<Error>,
    /// The component's report of the failed lookup, held while fail-safe
    /// may still answer the call (a stale hit is reported instead).
    held: Vec<Held>,
    /// The call's key and tags, to find its fail-safe value.
    key: String,
    tags: Vec<String>,
}

impl PendingCall {
    fn new(ticket: Option<Ticket>, shadow: Accounting, options: &ComputeOptions) -> Self {
        PendingCall {
            ticket,
            shadow,
            reported: false,
            error: None,
            held: Vec::new(),
            key: options.cache_key().to_owned(),
            tags: options.tag_list().to_vec(),
        }
    }
}

/// The component's calls, for core's get-or-compute. The component does the
/// accounting and reports to the hook; the host's `shadow` measures too.
impl TwoStep for ComponentCache {
    type Hit = Hit;
    type Ticket = PendingCall;

    fn lookup(&self, options: &ComputeOptions) -> Lookup<Hit, PendingCall> {
        let shadow = Accounting::start(options);
        // With fail-safe on, a failed lookup may end as a stale hit: the
        // component's report of it waits for the outcome.
        let hold = self.pool.host.as_ref().is_some_and(|h| h.has_fail_safe());
        let hook = CallHook { userdata: options.userdata().cloned(), hold };
        let mut call = match self.lookup(options, hook) {
            Ok(GetOrLock::Hit(hit)) => return Lookup::Hit(hit),
            Ok(GetOrLock::Locked(t) | GetOrLock::Miss(t)) => PendingCall::new(Some(t), shadow, options),
            Err(mut failure) => {
                let mut call = PendingCall::new(None, shadow, options);
                call.reported = failure.answered;
                call.error = Some(failure.error.clone());
                call.held = std::mem::take(&mut failure.held);
                unanswered(&mut call.shadow, options.cache_key(), failure, "cache bypassed");
                call
            }
        };
        call.shadow.looked_up(call.ticket.as_ref().map(Ticket::stats).unwrap_or_default());
        Lookup::Compute(call)
    }

    fn lookup_error(call: &PendingCall) -> Option<Error> {
        call.error.clone()
    }

    fn fallback(&self, call: &PendingCall) -> Option<Arc<Vec<u8>>> {
        let tags: Vec<&str> = call.tags.iter().map(String::as_str).collect();
        self.pool.host.as_ref()?.fallback(&call.key, &tags)
    }

    fn serve_stale(&self, options: &ComputeOptions, call: PendingCall, size: usize, error: Error) {
        // A stale hit is this call's one report: the held one (its failed lookup) is dropped.
        let PendingCall { ticket, mut shadow, .. } = call;
        // Dropping the component's ticket releases its lock (the guest's destructor).
        drop(ticket);
        shadow.served_stale(size, error);
        self.pool.imports.report(
            options.cache_key(),
            options.tag_list(),
            &shadow.finish(),
            options.userdata().map(|u| &**u),
        );
    }

    fn value(hit: &Hit) -> &[u8] {
        hit.value()
    }

    fn finish_hit(&self, _: &ComputeOptions, hit: Hit) {
        // The component reports the hit.
        let _ = hit.finish();
    }

    fn undecodable(&self, options: &ComputeOptions, hit: Hit, error: Error) -> PendingCall {
        tracing::warn!(key = options.cache_key(), error = %error, "cached bytes do not decode; computing and overwriting");
        let mut shadow = Accounting::start(options);
        shadow.looked_up(LockStats::default());
        // The component's ticket overwrites the bytes and reports the call.
        let ticket = match hit.undecodable(&error) {
            Ok(ticket) => Some(ticket),
            Err(e) => {
                shadow.bypass(e);
                None
            }
        };
        PendingCall::new(ticket, shadow, options)
    }

    fn store(&self, options: &ComputeOptions, call: PendingCall, encoded: Result<Vec<u8>>) -> Option<Error> {
        let PendingCall { ticket, mut shadow, held, .. } = call;
        let (key, tags) = (options.cache_key(), options.tag_list());
        // Fail-safe did not answer: the component's report of the failed lookup goes on.
        self.pool.imports.replay(held, options.userdata().map(|u| &**u));
        shadow.computed(encoded.as_ref().map(Vec::len).map_err(Error::clone));
        let mut error = shadow.info().error.clone();
        let stored = match (&encoded, ticket) {
            // The ticket drops (releasing the lock); the component reports nothing for it.
            (Err(e), _) => {
                tracing::warn!(key, error = %e, "cannot encode the computed value");
                Ok(())
            }
            (Ok(bytes), Some(ticket)) => store_ticket(ticket, bytes),
            (Ok(_), None) => Ok(()),
        };
        if let Err(failure) = stored {
            error = Some(failure.error.clone());
            unanswered(&mut shadow, key, failure, "cannot store the computed value");
        }
        if shadow.info().error.is_some() {
            self.pool.imports.report(key, tags, &shadow.finish(), options.userdata().map(|u| &**u));
        }
        error
    }

    fn give_up(&self, options: &ComputeOptions, mut call: PendingCall) {
        self.pool.imports.replay(std::mem::take(&mut call.held), options.userdata().map(|u| &**u));
        // Dropping the component's ticket releases its lock (the guest's destructor).
        drop(call);
    }

    fn flights(&self) -> Option<&Flights> {
        Some(&self.pool.flights)
    }

    fn holds_lock(call: &PendingCall) -> bool {
        call.ticket.as_ref().is_some_and(Ticket::holds_lock)
    }

    fn shared(&self, options: &ComputeOptions, call: PendingCall, size: usize, error: Option<Error>, waited: Duration) {
        let PendingCall { ticket, mut shadow, reported, held, .. } = call;
        // The component's ticket goes unused, and reports nothing.
        drop(ticket);
        self.pool.imports.replay(held, options.userdata().map(|u| &**u));
        if reported {
            // The component reported this call when its lookup failed (the
            // WIT's rule); one report per call.
            return;
        }
        shadow.shared(size, waited, error);
        self.pool.imports.report(
            options.cache_key(),
            options.tag_list(),
            &shadow.finish(),
            options.userdata().map(|u| &**u),
        );
    }
}

/// Logs a failed call, and records it in `shadow` when the component did not
/// answer (and so could not report it).
fn unanswered(shadow: &mut Accounting, key: &str, failure: Failure, what: &str) {
    tracing::warn!(key, error = %failure.error, "{what}");
    if !failure.answered {
        shadow.bypass(failure.error);
    }
}
