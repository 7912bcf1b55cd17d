//! Get-or-compute written once over its two calls: [`TwoStep`] is what an
//! implementation provides (core's [`Cache`], and the wasmtime host's
//! component-backed cache), [`get_or_compute`] the control flow they share.

use crate::cache::Cache;
use crate::codec::Codec;
use crate::compute::ComputeOptions;
use crate::error::{Error, Result};
use crate::get_or_lock::{GetOrLock, Hit, Ticket};

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
    /// Stores the computed value's bytes (or records the error encoding them), unlocks and reports.
    fn store(&self, options: &ComputeOptions, ticket: Self::Ticket, value: Result<Vec<u8>>);
    /// Gives up: the computation failed; releases the lock at once.
    fn give_up(&self, options: &ComputeOptions, ticket: Self::Ticket);
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
    match compute() {
        Ok(value) => {
            cache.store(options, ticket, encode(&value));
            Ok(value)
        }
        Err(e) => {
            // Nothing to store: free the lock now so a waiter can compute.
            cache.give_up(options, ticket);
            Err(e)
        }
    }
}

impl<C: Codec> TwoStep for Cache<C> {
    type Hit = Hit;
    type Ticket = Ticket;

    fn lookup(&self, options: &ComputeOptions) -> Lookup<Hit, Ticket> {
        match self.get_or_lock(options) {
            GetOrLock::Hit(hit) => Lookup::Hit(hit),
            GetOrLock::Locked(ticket) | GetOrLock::Miss(ticket) => Lookup::Compute(ticket),
        }
    }

    fn value(hit: &Hit) -> &[u8] {
        hit.value()
    }

    fn finish_hit(&self, _: &ComputeOptions, hit: Hit) {
        let _ = hit.finish();
    }

    fn undecodable(&self, _: &ComputeOptions, hit: Hit, error: Error) -> Ticket {
        hit.undecodable(error)
    }

    fn store(&self, _: &ComputeOptions, ticket: Ticket, value: Result<Vec<u8>>) {
        let _ = self.set_and_unlock(ticket, value);
    }

    fn give_up(&self, _: &ComputeOptions, ticket: Ticket) {
        let _ = self.release(ticket);
    }
}
