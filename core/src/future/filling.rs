//! The near cache's per-reader fill reads for the async API: the
//! counterpart of the sync `Filling` (in `backend::native::tracking`), kept
//! here so that the blocking backends do not depend on the async API.

use std::sync::Arc;

use super::backend::{AsyncBackend, BoxFuture};
use crate::backend::native::tracking::{Filled, Readers, is_fill, untracked};
use crate::backend::{Command, Reply};
use crate::error::{Error, ErrorKind, Result};

/// [`Filling`](crate::backend::native::tracking::Filling) for the async API: the fill read runs on tokio's blocking
/// pool (reader connections are blocking ones), every other batch on the
/// async backend.
pub(crate) struct AsyncFilling {
    readers: Arc<Readers>,
    backend: Arc<dyn AsyncBackend>,
}

impl AsyncFilling {
    /// Sends `backend`'s fill reads through `readers`.
    pub(crate) fn new(readers: Arc<Readers>, backend: Arc<dyn AsyncBackend>) -> Self {
        AsyncFilling { readers, backend }
    }
}

impl AsyncBackend for AsyncFilling {
    fn execute<'a>(&'a self, commands: &'a [Command]) -> BoxFuture<'a, Result<Vec<Reply>>> {
        if !is_fill(commands) {
            return self.backend.execute(commands);
        }
        Box::pin(async move {
            let readers = Arc::clone(&self.readers);
            let owned = commands.to_vec();
            let filled = tokio::task::spawn_blocking(move || readers.read(&owned))
                .await
                .map_err(|e| Error::new(ErrorKind::Other, format!("a near-cache read did not finish: {e}")))??;
            Ok(match filled {
                Filled::Tracked(replies) => replies,
                Filled::Untracked(replies) => untracked(replies),
                Filled::Elsewhere => untracked(self.backend.execute(commands).await?),
            })
        })
    }
}
