//! In-process state, no I/O: what every driver's operations share ([`Inner`]),
//! the memo of tag values, the near cache, the fail-safe store and the
//! single-flight of get-or-compute. Nothing here imports the operations or the
//! backends: they import this.

pub(crate) mod fail_safe;
pub(crate) mod flight;
pub(crate) mod memo;
pub(crate) mod near;
pub(crate) mod recent;

use std::sync::Arc;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::model::info::Hook;
use crate::model::layout::Layout;
use memo::TagMemo;
use near::NearState;

/// The state every driver's operations share (no backend: the driver owns
/// the I/O): configuration, key layout, hook and the memo of tag values.
pub(crate) struct Inner {
    pub(crate) layout: Layout,
    pub(crate) config: Config,
    pub(crate) hook: Option<Hook>,
    /// The tag values last seen, for one-round-trip operations.
    pub(crate) memo: TagMemo,
    /// The get-or-compute calls with the lock computing in this process.
    pub(crate) flights: flight::Flights,
    /// The fail-safe values, when `fail_safe_max_duration` is set.
    pub(crate) fail_safe: Option<fail_safe::FailSafe>,
    /// The near cache, when configured on Redis (a server or a cluster).
    pub(crate) near: Option<Arc<NearState>>,
}

impl Inner {
    pub(crate) fn new(config: Config, hook: Option<Hook>) -> Self {
        let fail_safe = fail_safe::FailSafe::configured(&config);
        Inner {
            layout: Layout::new(&config.namespace),
            config,
            hook,
            memo: TagMemo::default(),
            flights: flight::Flights::default(),
            fail_safe,
            near: None,
        }
    }
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").field("namespace", &self.config.namespace).finish_non_exhaustive()
    }
}

impl Inner {
    /// The near cache's copy of `key` under `tags`, if it holds one now.
    pub(crate) fn near_hit(&self, key: &str, tags: &(impl crate::Tags + ?Sized)) -> Option<Arc<Vec<u8>>> {
        self.near.as_ref()?.get(&self.layout, key, tags)
    }

    /// [`Inner::near_hit`], with how long the answer holds.
    pub(crate) fn near_hit_leased(
        &self,
        key: &str,
        tags: &(impl crate::Tags + ?Sized),
    ) -> Option<(Arc<Vec<u8>>, near::NearLease)> {
        self.near.as_ref()?.get_leased(&self.layout, key, tags)
    }

    /// The near cache's generation, read before a read is sent so that
    /// [`Inner::near_install`] can tell whether an invalidation raced it.
    pub(crate) fn near_generation(&self) -> Option<u64> {
        self.near.as_ref().map(|n| n.generation())
    }

    pub(crate) fn check_size(&self, len: usize) -> Result<()> {
        let max = self.config.max_value_size;
        if len > max {
            return Err(Error::invalid(format!("value of {len} bytes exceeds max_value_size ({max} bytes)")));
        }
        Ok(())
    }
}
