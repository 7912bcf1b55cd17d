//! The tracking's clocks, shared by the supervisor, its listeners and the
//! slot-map reads (kept apart from `mod.rs` so that those modules do not
//! import their parent).

use std::time::Duration;

/// How often a listener checks its connection (and the reader connections of
/// its master), and how often a session re-reads a cluster's slot map.
pub(super) const POLL: Duration = Duration::from_millis(100);

/// How long a heartbeat (or a `CLUSTER SLOTS`) may take before the
/// connection counts as lost.
pub(super) const HEARTBEAT_DEADLINE: Duration = Duration::from_millis(1000);

/// How long to wait before a new session after a failure.
pub(super) const RECONNECT: Duration = Duration::from_millis(200);
