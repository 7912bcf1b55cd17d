//! The threads of a non-blocking context: its async cache and the tokio
//! runtime that runs it, kept alive by the context and by every ticket it
//! handed out (a ticket releases itself on them).

use std::sync::Arc;

use rtc_core::Ticket;

/// The async cache and the runtime it runs on; what a ticket of the
/// non-blocking API keeps to release itself.
#[derive(Clone)]
pub(crate) struct Owner {
    pub(crate) cache: rtc_core::future::Cache,
    pub(crate) runtime: tokio::runtime::Handle,
    /// Keeps the runtime (its threads) alive while a ticket or the context is.
    pub(crate) keep: Arc<RuntimeOwner>,
}

impl Owner {
    /// Starts releasing `ticket` on the context's threads, and returns.
    pub(crate) fn release_in_background(self, ticket: Ticket) {
        let cache = self.cache.clone();
        let keep = Arc::clone(&self.keep);
        self.runtime.spawn(async move {
            let _ = cache.release(ticket).await;
            drop(keep);
        });
    }
}

/// The runtime, shut down without waiting when the last owner goes.
pub(crate) struct RuntimeOwner(pub(crate) Option<tokio::runtime::Runtime>);

impl Drop for RuntimeOwner {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            // Not waiting: this may run on one of the runtime's own threads
            // (a background release), and a wait for Redis would block the
            // caller of rtc_async_free.
            runtime.shutdown_background();
        }
    }
}
