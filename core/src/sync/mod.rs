//! The blocking API and its driver: [`Cache`] (set, get, delete, invalidate,
//! inspect), get-or-compute in both forms ([`compute`]), and [`RawCache`],
//! the byte-level face that adapters and benchmarks share. [`drive`] runs any
//! step machine of [`crate::ops`] over a blocking [`Backend`].

pub(crate) mod cache;
pub(crate) mod compute;
pub(crate) mod raw;

pub use cache::Cache;
pub use compute::Decorated;
pub use raw::RawCache;

use crate::backend::Backend;
use crate::error::Result;
use crate::ops::step::{Op, Step, check_replies, now_for};

/// Runs `op` to completion on a blocking backend: the sync driver.
pub(crate) fn drive<O: Op>(backend: &dyn Backend, mut op: O) -> Result<O::Output> {
    let mut step = op.start(now_for::<O>())?;
    loop {
        match step {
            Step::Done(output) => return Ok(output),
            Step::Send(commands) => {
                let replies = backend.execute(&commands)?;
                check_replies(&commands, &replies)?;
                step = op.resume(commands, replies, now_for::<O>())?;
            }
        }
    }
}
