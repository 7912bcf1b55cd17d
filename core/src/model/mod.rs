//! Pure data and functions, no state and no I/O: the key layout and its
//! hashes, tags, codecs, the per-call options and what a call reports
//! ([`info::CacheInfo`]). Everything else in core builds on these.

pub(crate) mod codec;
pub(crate) mod hash;
pub(crate) mod info;
pub(crate) mod layout;
pub(crate) mod options;
pub(crate) mod tags;
