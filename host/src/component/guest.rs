//! Calling into the guest without letting it hurt the host.
//!
//! Every export call goes through [`guarded`]: a WIT error becomes core's
//! [`Error`], and a trap, or a panic out of wasmtime, becomes a [`Failure`]
//! that says the instance must be discarded. [`call`] is the whole round for
//! a one-call operation: check an instance out of the pool, call, put it back
//! (or drop it when it trapped). The split calls and get-or-compute build on
//! these, keeping their instance between calls.

use std::panic::{AssertUnwindSafe, catch_unwind};

use rtc_core::{Error, ErrorKind, Result};

use crate::bindings::rtc::cache::types;
use crate::convert::from_wit_error;
use crate::state::{Held, panic_message};

use super::pool::{Pool, Slot};

/// A failed call: the error, whether the instance trapped (and must go),
/// and whether the component answered (and so reported it to the hook).
pub(super) struct Failure {
    pub(super) error: Error,
    pub(super) trapped: bool,
    pub(super) answered: bool,
    /// The component's reports of the call, when they were held.
    pub(super) held: Vec<Held>,
}

impl Failure {
    /// The component answered with an error.
    fn answered(error: Error) -> Self {
        Failure { error, trapped: false, answered: true, held: Vec::new() }
    }

    /// The call never reached the component (no instance could be had).
    pub(super) fn unanswered(error: Error) -> Self {
        Failure { error, trapped: false, answered: false, held: Vec::new() }
    }

    /// The instance trapped.
    fn trapped(error: Error) -> Self {
        Failure { error, trapped: true, answered: false, held: Vec::new() }
    }
}

/// Runs a guest call, turning a trap, or a panic out of wasmtime, into a
/// [`Failure`] that discards the instance.
pub(super) fn guarded<T>(body: impl FnOnce() -> wasmtime::Result<Result<T, types::Error>>) -> Result<T, Failure> {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(Ok(value))) => Ok(value),
        Ok(Ok(Err(e))) => Err(Failure::answered(from_wit_error(e))),
        Ok(Err(trap)) => {
            let error = Error::new(ErrorKind::Other, format!("the rtc component trapped: {trap:#}"));
            tracing::warn!(error = %error, "discarding the component instance");
            Err(Failure::trapped(error))
        }
        Err(panic) => {
            let error =
                Error::new(ErrorKind::Other, format!("the component host panicked: {}", panic_message(&*panic)));
            tracing::error!(error = %error, "discarding the component instance");
            Err(Failure::trapped(error))
        }
    }
}

/// Runs one export on a pooled instance; a trap discards the instance.
pub(super) fn call<T>(
    pool: &Pool,
    body: impl FnOnce(&mut Slot) -> wasmtime::Result<Result<T, types::Error>>,
) -> Result<T> {
    let mut slot = pool.acquire()?;
    let result = guarded(|| body(&mut slot));
    let healthy = result.as_ref().map_or_else(|f| !f.trapped, |_| true);
    pool.release(slot, healthy);
    result.map_err(|f| f.error)
}
