//! The sans-IO step machines, one per operation: [`snapshot`] (get, set and
//! delete of an entry under its tags' values), [`invalidate`], [`lock`] (the
//! stampede lock's lookup and store) and [`inspect`]. Each says what it needs
//! next and consumes the replies ([`step`]); the drivers in [`crate::sync`]
//! and [`crate::future`] do the I/O. Machines read and update the in-process
//! state of [`crate::local`]; they never import the APIs above them.

pub(crate) mod inspect;
pub(crate) mod invalidate;
pub(crate) mod lock;
pub(crate) mod snapshot;
pub(crate) mod step;
