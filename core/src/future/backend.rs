//! The I/O boundary of the async API.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::backend::{Backend, Command, Reply};
use crate::error::{Error, ErrorKind, Result};

/// A boxed, sendable future (what [`AsyncBackend::execute`] returns).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs Redis-shaped commands asynchronously: the async counterpart of
/// [`Backend`], with the same contract (in order, one round trip where the
/// backend has round trips, exactly one reply per command).
///
/// A batch holding a `BLPOP` may wait up to its timeout: an implementation
/// must not make other callers wait behind it.
pub trait AsyncBackend: Send + Sync {
    /// Runs `commands` in order and returns one reply per command.
    fn execute<'a>(&'a self, commands: &'a [Command]) -> BoxFuture<'a, Result<Vec<Reply>>>;
}

/// A blocking [`Backend`] used from async code: batches run on tokio's
/// blocking thread pool, so a wait never blocks a runtime thread. For the
/// in-process memory and disabled backends (and any custom one).
pub struct Blocking(pub Arc<dyn Backend>);

impl AsyncBackend for Blocking {
    fn execute<'a>(&'a self, commands: &'a [Command]) -> BoxFuture<'a, Result<Vec<Reply>>> {
        let backend = Arc::clone(&self.0);
        let commands = commands.to_vec();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || backend.execute(&commands))
                .await
                .map_err(|e| Error::new(ErrorKind::Other, format!("a backend batch did not finish: {e}")))?
        })
    }
}
