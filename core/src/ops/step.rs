//! Operations as step machines, and the one check of the backend contract.
//!
//! Every cache operation is an [`Op`]: a small state machine that says what it
//! needs next ([`Step::Send`] a batch of commands, possibly ending with a
//! blocking `BLPOP`) and consumes the replies, with the current time passed
//! in. Operations make no backend call, read no clock and never sleep, so the
//! same machine runs under the sync driver ([`drive`]), the async driver
//! (`crate::future`, feature `tokio`) and the WebAssembly component (the sync
//! driver over its `redis` import). quinn-proto's `Connection` and rustls's
//! `complete_io` are the models.
//!
//! The drivers hand an operation only replies that passed [`check_replies`]:
//! exactly one per command, each of the kind its command promises. A backend
//! that breaks the contract gets an [`ErrorKind::Protocol`] error here, once,
//! instead of a wrong answer deeper down.

use std::time::Instant;

use crate::backend::{Command, Reply};
use crate::error::{Error, ErrorKind, Result};

/// What an operation needs next.
#[derive(Debug)]
pub(crate) enum Step<T> {
    /// Run these commands in order, in one round trip, and resume with their
    /// replies. A `BLPOP`, if any, is last.
    Send(Vec<Command>),
    /// The operation is over.
    Done(T),
}

/// A cache operation as a state machine.
pub(crate) trait Op {
    /// What the operation returns.
    type Output;

    /// Whether the operation reads the `now` it is given (the stampede
    /// lock's waits). The drivers read the clock only for those: on
    /// `wasm32-wasip2` each read is a call out to the host.
    const TIMED: bool = false;

    /// Starts the operation at `now`.
    fn start(&mut self, now: Instant) -> Result<Step<Self::Output>>;

    /// Resumes with the replies to the last [`Step::Send`], at `now`. The
    /// driver hands back the commands it `sent` too, so an operation can
    /// take back what it moved into them (a snapshot's tag keys) instead of
    /// sending copies.
    fn resume(&mut self, sent: Vec<Command>, replies: Vec<Reply>, now: Instant) -> Result<Step<Self::Output>>;
}

/// The time to give an `O` now: the clock for a timed operation, else a
/// fixed instant it ignores (read once per process).
pub(crate) fn now_for<O: Op>() -> Instant {
    static UNTIMED: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    if O::TIMED { Instant::now() } else { *UNTIMED.get_or_init(Instant::now) }
}

/// Checks the backend contract: exactly one reply per command, each of the
/// kind the command promises (see [`Command`]).
///
/// ```text
/// GET, BLPOP         -> bytes | nil
/// MGET k1..kn        -> array of n (bytes | nil)
/// SET                -> ok (or nil with NX)
/// DEL, DelIfEq, RPUSH, PEXPIRE, PTTL -> int
/// ```
pub(crate) fn check_replies(commands: &[Command], replies: &[Reply]) -> Result<()> {
    if commands.len() != replies.len() {
        return Err(protocol(format!("{} replies to {} commands", replies.len(), commands.len())));
    }
    for (command, reply) in commands.iter().zip(replies) {
        let fits = match (command, reply) {
            (Command::Get { .. } | Command::Blpop { .. }, Reply::Bytes(_) | Reply::Nil) => true,
            (Command::Mget { keys }, Reply::Array(items)) => {
                items.len() == keys.len() && items.iter().all(|i| matches!(i, Reply::Bytes(_) | Reply::Nil))
            }
            (Command::Set { .. }, Reply::Ok) => true,
            (Command::Set { nx, .. }, Reply::Nil) => *nx,
            (
                Command::Del { .. }
                | Command::DelIfEq { .. }
                | Command::Rpush { .. }
                | Command::Pexpire { .. }
                | Command::Pttl { .. },
                Reply::Int(_),
            ) => true,
            _ => false,
        };
        if !fits {
            return Err(protocol(format!("{reply:?} is not a reply to {}", command_name(command))));
        }
    }
    Ok(())
}

/// The Redis name of a command, for messages.
fn command_name(command: &Command) -> &'static str {
    match command {
        Command::Get { .. } => "GET",
        Command::Mget { .. } => "MGET",
        Command::Set { nx: true, .. } => "SET NX",
        Command::Set { nx: false, .. } => "SET",
        Command::Del { .. } => "DEL",
        Command::DelIfEq { .. } => "compare-and-delete",
        Command::Rpush { .. } => "RPUSH",
        Command::Pexpire { .. } => "PEXPIRE",
        Command::Pttl { .. } => "PTTL",
        Command::Blpop { .. } => "BLPOP",
    }
}

/// An error for a backend that broke the reply contract.
pub(crate) fn protocol(message: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Protocol, format!("the backend broke the reply contract: {message}"))
}

/// Takes the next reply of a checked batch (a missing one is a protocol error,
/// which [`check_replies`] has already ruled out).
pub(crate) fn next(replies: &mut std::vec::IntoIter<Reply>) -> Result<Reply> {
    replies.next().ok_or_else(|| protocol("a reply is missing"))
}

/// The bytes of a checked `GET`/`BLPOP` reply, `None` for nil.
pub(crate) fn bytes(reply: Reply) -> Option<Vec<u8>> {
    reply.into_bytes()
}

/// The items of a checked `MGET` reply.
pub(crate) fn array(reply: Reply) -> Vec<Option<Vec<u8>>> {
    match reply {
        Reply::Array(items) => items.into_iter().map(Reply::into_bytes).collect(),
        _ => Vec::new(),
    }
}

/// The integer of a checked integer reply.
pub(crate) fn int(reply: &Reply) -> i64 {
    match reply {
        Reply::Int(n) => *n,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_contract_rejects_wrong_counts_and_wrong_kinds() {
        let set_nx = Command::Set { key: "l".into(), value: vec![], expire_ms: None, nx: true };
        let set = Command::Set { key: "k".into(), value: vec![], expire_ms: None, nx: false };
        let get = Command::Get { key: "k".into() };
        let mget = Command::Mget { keys: vec!["a".into(), "b".into()] };
        let blpop = Command::Blpop { key: "w".into(), timeout: Duration::from_millis(1) };
        let del = Command::DelIfEq { key: "l".into(), value: vec![] };
        assert!(check_replies(std::slice::from_ref(&set_nx), &[Reply::Nil]).is_ok());
        assert!(check_replies(std::slice::from_ref(&set_nx), &[Reply::Ok]).is_ok());
        // The component's old bug: an `int` answer to the lock's SET NX read as "locked".
        assert_eq!(
            check_replies(std::slice::from_ref(&set_nx), &[Reply::Int(1)]).map_err(|e| e.kind()),
            Err(ErrorKind::Protocol)
        );
        assert!(
            check_replies(std::slice::from_ref(&set), &[Reply::Nil]).is_err(),
            "a SET without NX always answers OK"
        );
        assert!(check_replies(std::slice::from_ref(&get), &[Reply::Int(0)]).is_err());
        assert!(check_replies(std::slice::from_ref(&get), &[]).is_err());
        assert!(check_replies(std::slice::from_ref(&get), &[Reply::Nil, Reply::Nil]).is_err());
        assert!(check_replies(std::slice::from_ref(&mget), &[Reply::Array(vec![Reply::Nil])]).is_err());
        assert!(check_replies(std::slice::from_ref(&mget), &[Reply::Array(vec![Reply::Nil, Reply::Int(1)])]).is_err());
        assert!(
            check_replies(&[mget, blpop], &[Reply::Array(vec![Reply::Nil, Reply::Bytes(vec![1])]), Reply::Nil]).is_ok()
        );
        assert!(check_replies(std::slice::from_ref(&del), &[Reply::Ok]).is_err());
    }
}
