//! The async API (cargo feature `tokio`): [`future::Cache`](Cache) has the
//! sync [`crate::Cache`]'s operations under the same names, as `async fn`s.
//!
//! No cache logic lives here: every operation is the same step machine
//! ([`crate::step`]) the sync API runs, driven by [`drive`] over an
//! [`AsyncBackend`] instead of a blocking [`crate::Backend`]. The stampede
//! lock's wait (`BLPOP`) runs on a connection of its own, so waiting never
//! blocks a runtime thread nor the multiplexed connection other calls share.
//! moka's `sync`/`future` split is the naming model.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use rtc_core::{ComputeOptions, Lifetime};
//! let cache = rtc_core::Cache::builder().in_local_memory(true).build_async()?;
//! cache.set("user:1", &"Ada", ["users"], Lifetime::Default).await?;
//! assert_eq!(cache.get::<String>("user:1", ["users"]).await?, Some("Ada".to_string()));
//! let options = ComputeOptions::key("n").tags(["users"]).lock(true);
//! let n: u64 = cache.get_or_compute(&options, || async { 7 }).await;
//! assert_eq!(n, 7);
//! cache.invalidate("users").await?;
//! assert_eq!(cache.get::<String>("user:1", ["users"]).await?, None);
//! # Ok::<(), rtc_core::Error>(()) }).unwrap();
//! ```

mod backend;
mod cache;
#[cfg(feature = "redis")]
mod filling;
#[cfg(feature = "redis")]
mod native;

pub use backend::{AsyncBackend, Blocking, BoxFuture};
pub use cache::Cache;
#[cfg(feature = "redis")]
pub(crate) use filling::AsyncFilling;
#[cfg(feature = "redis")]
pub use native::{AsyncClusterBackend, AsyncRedisBackend};

use crate::error::Result;
use crate::ops::step::{Op, Step, check_replies, now_for};

/// Runs `op` to completion on an async backend: the async driver, the
/// counterpart of the sync [`crate::ops::step::drive`].
pub(crate) async fn drive<O: Op + Send>(backend: &dyn AsyncBackend, mut op: O) -> Result<O::Output> {
    let mut step = op.start(now_for::<O>())?;
    loop {
        match step {
            Step::Done(output) => return Ok(output),
            Step::Send(commands) => {
                let replies = backend.execute(&commands).await?;
                check_replies(&commands, &replies)?;
                step = op.resume(commands, replies, now_for::<O>())?;
            }
        }
    }
}
