//! Get-or-compute, with no I/O of its own: [`call`] is one call in two halves
//! (`get_or_lock`, then `set_and_unlock` or `release`) with its
//! [`accounting`] and hook report; [`flow`] is the control flow between the
//! halves that every closure form runs (single-flight and fail-safe
//! included). The drivers in [`crate::sync`] and [`crate::future`] run the
//! halves' step machines.

pub(crate) mod accounting;
pub(crate) mod call;
pub(crate) mod flow;
