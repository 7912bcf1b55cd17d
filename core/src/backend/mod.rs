//! The I/O boundary of core: a [`Backend`] runs batches of Redis-shaped commands.
//!
//! Core holds all cache logic and does no I/O of its own. A backend is the
//! native Redis client, the in-process memory store, the disabled black hole,
//! or (in the WebAssembly component) the host's `redis` import.

pub mod contract;
pub mod environment;
#[cfg(feature = "redis")]
pub(crate) mod host;
pub(crate) mod memory;
#[cfg(feature = "redis-single")]
pub(crate) mod native;

use std::time::Duration;

use crate::error::Result;

/// One command, named after the Redis command a backend runs for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `GET key`: replies [`Reply::Bytes`] or [`Reply::Nil`].
    Get {
        /// The key.
        key: String,
    },
    /// `MGET key...`: replies [`Reply::Array`] of `Bytes`/`Nil`, one per key.
    Mget {
        /// The keys, at least one.
        keys: Vec<String>,
    },
    /// `SET key value [PX ms] [NX]`: replies [`Reply::Ok`], or [`Reply::Nil`]
    /// when `nx` is set and the key already exists.
    Set {
        /// The key.
        key: String,
        /// The value.
        value: Vec<u8>,
        /// Expiry in milliseconds; `None` means no expiry.
        expire_ms: Option<u64>,
        /// Only set if the key does not exist.
        nx: bool,
    },
    /// `DEL key...`: replies [`Reply::Int`], the number of keys removed.
    Del {
        /// The keys, at least one.
        keys: Vec<String>,
    },
    /// Compare-and-delete (a Lua script on Redis): deletes `key` only if it
    /// holds `value`; replies [`Reply::Int`] 1 if deleted, 0 otherwise.
    DelIfEq {
        /// The key.
        key: String,
        /// The value the key must hold.
        value: Vec<u8>,
    },
    /// `RPUSH key value`: replies [`Reply::Int`], the new length.
    Rpush {
        /// The list key.
        key: String,
        /// The element.
        value: Vec<u8>,
    },
    /// `PEXPIRE key ms`: replies [`Reply::Int`] 1 if the key exists, else 0.
    Pexpire {
        /// The key.
        key: String,
        /// Time to live in milliseconds.
        ms: u64,
    },
    /// `PTTL key`: replies [`Reply::Int`], the time to live in milliseconds,
    /// -1 for a key with no expiry, -2 for no such key. Read-only; the
    /// cache's operations never send it (`inspect` and `tags` do).
    Pttl {
        /// The key.
        key: String,
    },
    /// `BLPOP key timeout`: waits up to `timeout` for an element; replies
    /// [`Reply::Bytes`] (the element) or [`Reply::Nil`] on timeout.
    /// Put it last in a batch: it holds the connection while it waits.
    Blpop {
        /// The list key.
        key: String,
        /// How long to wait; at least one millisecond.
        timeout: Duration,
    },
}

/// A reply to one [`Command`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// No value (missing key, `SET NX` not applied, `BLPOP` timed out).
    Nil,
    /// The status `OK`.
    Ok,
    /// An integer.
    Int(i64),
    /// A binary string.
    Bytes(Vec<u8>),
    /// An array of replies (`MGET`).
    Array(Vec<Reply>),
}

impl Reply {
    /// Returns the bytes of a `Bytes` reply, `None` for anything else.
    pub fn into_bytes(self) -> Option<Vec<u8>> {
        match self {
            Reply::Bytes(b) => Some(b),
            _ => None,
        }
    }
}

/// Runs Redis-shaped commands. Implementations must be usable from many threads.
///
/// `execute` runs the commands in order, in one round trip where the backend
/// has round trips, and returns exactly one reply per command, or an error if
/// the batch could not run. Commands are not atomic as a group.
pub trait Backend: Send + Sync {
    /// Runs `commands` in order and returns one reply per command.
    fn execute(&self, commands: &[Command]) -> Result<Vec<Reply>>;
}

/// The backend of a disabled cache: stores nothing, every read misses.
#[derive(Debug, Default, Clone, Copy)]
pub struct DisabledBackend;

impl Backend for DisabledBackend {
    fn execute(&self, commands: &[Command]) -> Result<Vec<Reply>> {
        Ok(commands
            .iter()
            .map(|c| match c {
                Command::Mget { keys } => Reply::Array(vec![Reply::Nil; keys.len()]),
                // A SET that "succeeds" keeps lock holders and tag creation on their normal paths.
                Command::Set { .. } => Reply::Ok,
                Command::Del { .. } | Command::DelIfEq { .. } | Command::Pexpire { .. } => Reply::Int(0),
                Command::Pttl { .. } => Reply::Int(-2),
                Command::Rpush { .. } => Reply::Int(1),
                Command::Get { .. } | Command::Blpop { .. } => Reply::Nil,
            })
            .collect())
    }
}
