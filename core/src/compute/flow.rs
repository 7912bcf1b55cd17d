//! Get-or-compute written once over its two calls: [`TwoStep`] is what an
//! implementation provides (core's [`Cache`](crate::Cache), and the wasmtime host's
//! component-backed cache), [`get_or_compute`] the control flow they share.

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::local::flight::{Flights, Leader, Meeting, Waited};
use crate::model::options::ComputeOptions;

/// What the first call found.
#[derive(Debug)]
pub enum Lookup<H, T> {
    /// A cached value.
    Hit(H),
    /// No usable value: compute it, then store or give up the ticket.
    Compute(T),
}

/// The two calls of get-or-compute as an implementation provides them; the
/// control flow between them is [`get_or_compute`]'s, written once.
pub trait TwoStep {
    /// A found value, not yet reported.
    type Hit;
    /// The right to store a computed value (and the lock, if taken).
    type Ticket;

    /// Reads the entry of `options`, taking the stampede lock on a miss if asked.
    fn lookup(&self, options: &ComputeOptions) -> Lookup<Self::Hit, Self::Ticket>;
    /// The bytes of a hit.
    fn value(hit: &Self::Hit) -> &[u8];
    /// Finishes a hit whose bytes decoded (reports it).
    fn finish_hit(&self, options: &ComputeOptions, hit: Self::Hit);
    /// Turns a hit whose bytes do not decode into a ticket that overwrites them.
    fn undecodable(&self, options: &ComputeOptions, hit: Self::Hit, error: Error) -> Self::Ticket;
    /// Stores the computed value's bytes (or records the error encoding them),
    /// unlocks and reports; returns the call's error (a bypass), if any.
    fn store(&self, options: &ComputeOptions, ticket: Self::Ticket, value: Result<Vec<u8>>) -> Option<Error>;
    /// Gives up: the computation failed; releases the lock at once.
    fn give_up(&self, options: &ComputeOptions, ticket: Self::Ticket);

    /// The in-process flights of this cache (see `flight`), for single-flight
    /// of get-or-compute with the lock; `None` turns it off.
    fn flights(&self) -> Option<&Flights>;

    /// Whether a ticket holds the stampede lock.
    fn holds_lock(ticket: &Self::Ticket) -> bool;

    /// Finishes a ticket whose value another caller of this process computed
    /// (a single-flight follower): reports a hit of `size` bytes, after
    /// `waited`, carrying `error` (the leader's bypass) unless it has its own.
    fn shared(
        &self,
        options: &ComputeOptions,
        ticket: Self::Ticket,
        size: usize,
        error: Option<Error>,
        waited: Duration,
    );

    /// The error of a lookup that failed (Redis unreachable, ...), if it did.
    fn lookup_error(_ticket: &Self::Ticket) -> Option<Error> {
        None
    }

    /// The fail-safe value of the ticket's entry, if fail-safe is on and one
    /// is young enough (see `fail_safe`); `None` by default.
    fn fallback(&self, _ticket: &Self::Ticket) -> Option<Arc<Vec<u8>>> {
        None
    }

    /// Finishes a ticket with a fail-safe value returned because of `error`:
    /// releases its lock and reports a stale hit.
    fn serve_stale(&self, options: &ComputeOptions, ticket: Self::Ticket, _size: usize, _error: Error) {
        self.give_up(options, ticket);
    }
}

/// What a get-or-compute does once its computation has run: the decision
/// every driver takes (the sync flow below over [`TwoStep`], and the async
/// API's), written once here; the driver only does the I/O it names.
pub(crate) enum Ending<K, T, E> {
    /// Store the encoded value (or record why it did not encode), unlock,
    /// and return `value`.
    Store {
        /// The call's ticket.
        ticket: K,
        /// The value's bytes, or the codec's error.
        encoded: Result<Vec<u8>>,
        /// What the call returns.
        value: T,
    },
    /// Return a fail-safe value instead: release the lock, report a stale
    /// hit of `size` bytes carrying `error`.
    Stale {
        /// The call's ticket.
        ticket: K,
        /// The stale value's size in bytes.
        size: usize,
        /// Why it stands in for a fresh one.
        error: Error,
        /// The decoded stale value.
        value: T,
    },
    /// The computation failed and there is no fail-safe value: give the
    /// ticket up at once (its lock freed, so a waiter can compute) and
    /// return `error` as is.
    GiveUp {
        /// The call's ticket.
        ticket: K,
        /// The computation's error.
        error: E,
    },
}

/// Decides how a get-or-compute ends once `computed` is known: a value is
/// stored; a failed computation is answered by the fail-safe value
/// (`fallback`, if one decodes), else the ticket is given up.
pub(crate) fn ending<K, T, E>(
    key: &str,
    ticket: K,
    computed: Result<T, E>,
    fallback: impl FnOnce(&K) -> Option<Arc<Vec<u8>>>,
    decode: &impl Fn(&[u8]) -> Result<T>,
    encode: &impl Fn(&T) -> Result<Vec<u8>>,
) -> Ending<K, T, E> {
    match computed {
        Ok(value) => Ending::Store { encoded: encode(&value), ticket, value },
        Err(error) => match stale(key, ticket, fallback, decode, computation_failed()) {
            Ok(stale) => stale,
            Err(ticket) => Ending::GiveUp { ticket, error },
        },
    }
}

/// The fail-safe value of `ticket`'s entry, if there is one that decodes,
/// to return instead of computing or failing: `error` is why.
fn stale<K, T, E>(
    key: &str,
    ticket: K,
    fallback: impl FnOnce(&K) -> Option<Arc<Vec<u8>>>,
    decode: &impl Fn(&[u8]) -> Result<T>,
    error: Error,
) -> Result<Ending<K, T, E>, K> {
    let Some(bytes) = fallback(&ticket) else {
        return Err(ticket);
    };
    match decode(&bytes) {
        Ok(value) => {
            tracing::warn!(key, error = %error, "returning the fail-safe value");
            Ok(Ending::Stale { ticket, size: bytes.len(), error, value })
        }
        Err(_) => Err(ticket),
    }
}

/// Does what `ending` decided, over a [`TwoStep`]. A flight's `leader`
/// (closed already) hands the stored bytes, and the store's error, to its
/// followers.
fn end<S, T, E>(
    cache: &S,
    options: &ComputeOptions,
    ending: Ending<S::Ticket, T, E>,
    leader: Option<Leader>,
) -> Result<T, E>
where
    S: TwoStep + ?Sized,
{
    match ending {
        Ending::Store { ticket, encoded, value } => {
            let bytes = leader.as_ref().and_then(|_| encoded.as_ref().ok().cloned());
            let error = cache.store(options, ticket, encoded);
            if let Some(leader) = leader {
                // Nothing to share if the value did not encode: the flight is handed on.
                leader.finish(bytes.map(|b| (b, error)));
            }
            Ok(value)
        }
        Ending::Stale { ticket, size, error, value } => {
            cache.serve_stale(options, ticket, size, error);
            Ok(value)
        }
        Ending::GiveUp { ticket, error } => {
            cache.give_up(options, ticket);
            Err(error)
        }
    }
}

/// The error a fail-safe value stands in for when the computation failed.
pub(crate) fn computation_failed() -> Error {
    Error::new(crate::error::ErrorKind::Other, "the computation failed; the fail-safe value was returned")
}

/// Get-or-compute over any [`TwoStep`]: a hit that decodes is returned; else
/// `compute` runs, and its value is stored (or, if it fails, the lock is
/// released and the error returned as is).
pub fn get_or_compute<S, T, E>(
    cache: &S,
    options: &ComputeOptions,
    decode: impl Fn(&[u8]) -> Result<T>,
    compute: impl FnOnce() -> Result<T, E>,
    encode: impl Fn(&T) -> Result<Vec<u8>>,
) -> Result<T, E>
where
    S: TwoStep + ?Sized,
{
    let ticket = match cache.lookup(options) {
        Lookup::Hit(hit) => match decode(S::value(&hit)) {
            Ok(value) => {
                cache.finish_hit(options, hit);
                return Ok(value);
            }
            // Garbage under our key: compute, and overwrite it.
            Err(e) => cache.undecodable(options, hit, e),
        },
        Lookup::Compute(ticket) => ticket,
    };
    // Redis failed: the fail-safe value, if any, instead of computing.
    let ticket = match S::lookup_error(&ticket) {
        Some(error) => match stale::<_, _, E>(options.cache_key(), ticket, |t| cache.fallback(t), &decode, error) {
            Ok(stale) => return end(cache, options, stale, None),
            Err(ticket) => ticket,
        },
        None => ticket,
    };
    // With the lock, the callers of this process that must compute one key
    // meet first, so it computes once even when Redis (and so its lock) is
    // down: see `flight` for why following is safe.
    if let (Some(wait), Some(flights)) = (options.lock_wait(), cache.flights()) {
        match flights.meet(options.cache_key(), options.tag_list(), S::holds_lock(&ticket)) {
            Meeting::Lead(leader) => return lead(cache, options, ticket, leader, decode, compute, encode),
            Meeting::Alone => {}
            Meeting::Follow(flight, key) => match flights.wait(&flight, &key, wait) {
                Waited::Value(bytes, error, waited) => {
                    // Another codec's bytes: compute alone.
                    if let Ok(value) = decode(&bytes) {
                        cache.shared(options, ticket, bytes.len(), error, waited);
                        return Ok(value);
                    }
                }
                // The leader failed: this caller leads now.
                Waited::Lead(leader) => return lead(cache, options, ticket, leader, decode, compute, encode),
                Waited::TimedOut => {}
            },
        }
    }
    let ending = ending(options.cache_key(), ticket, compute(), |t| cache.fallback(t), &decode, &encode);
    end(cache, options, ending, None)
}

/// A flight's leader: computes, closes the flight to new followers, stores,
/// then hands the stored bytes (and the call's error) to its followers. A
/// failed computation hands the flight over (dropping `leader`): one of the
/// followers leads it next.
fn lead<S, T, E>(
    cache: &S,
    options: &ComputeOptions,
    ticket: S::Ticket,
    mut leader: Leader,
    decode: impl Fn(&[u8]) -> Result<T>,
    compute: impl FnOnce() -> Result<T, E>,
    encode: impl Fn(&T) -> Result<Vec<u8>>,
) -> Result<T, E>
where
    S: TwoStep + ?Sized,
{
    let ending = ending(options.cache_key(), ticket, compute(), |t| cache.fallback(t), &decode, &encode);
    let leader = match ending {
        // Before the store: a caller arriving after it reads for itself.
        Ending::Store { .. } => {
            leader.close();
            Some(leader)
        }
        // The followers lead next (dropping hands the flight on), before
        // this caller falls back or gives up.
        Ending::Stale { .. } | Ending::GiveUp { .. } => {
            drop(leader);
            None
        }
    };
    end(cache, options, ending, leader)
}
