//! Histories: every operation several processes made on one cache
//! namespace, with its arguments, its result and when it was invoked and
//! completed, recorded cheaply from many threads and merged from files;
//! [`check`] then judges the whole history against rtc's promise.
//!
//! # The promise checked
//!
//! Every set writes a value no other set writes (the writer and a sequence
//! number are in it), so a value read names the one set `S` that wrote it.
//! A get `G` of an entry (a key under its tags) returning `v` is **wrong** if
//! - no set of that entry wrote `v` (never written, or written to another
//!   key or under other tags), or
//! - `S` was invoked after `G` completed (a read from the future), or
//! - some operation `X` that makes `S`'s value unreachable followed `S` and
//!   preceded `G` in real time: `X.invoke > S.complete` and
//!   `X.complete + bound < G.invoke`, where `X` is a delete of the entry, a
//!   set of the entry (with another value, necessarily), an invalidation of
//!   one of its tags, or an `invalidate_all`. Every linearization puts `X`
//!   between `S` and `G`, and only `S` wrote `v`. `bound` is zero for a
//!   plain read and the near cache's staleness bound for a read through a
//!   near cache (its promise: never stale beyond push delivery plus the
//!   heartbeat deadline). A miss is always allowed (eviction, expiry, a
//!   restarted Redis, contention: see `core/src/ops/snapshot.rs`).
//!
//! Operations whose call returned an error have an unknown effect:
//! - A failed set may or may not have happened, and when: its command may
//!   still reach Redis after the call gave up (a timeout). So it can be the
//!   `S` a read names (its invoke still bounds it from below), but nothing
//!   can be shown to follow it (its completion is taken as never), and it is
//!   never an `X`: it may not have happened at all.
//! - A failed delete or invalidation is never an `X`, for the same reason.
//! - A failed get returned nothing, so there is nothing to judge.
//!
//! # Fail-safe reads
//!
//! A read flagged stale (get-or-compute's fail-safe value,
//! `core/src/local/fail_safe.rs`) is not held to the promise above: it is
//! the last value this cache confirmed current for the entry, kept for at
//! most `fail_safe_max_duration`, looked up under the tag values this cache
//! last saw, so it is never a value this cache knows to be invalidated. What
//! other processes did meanwhile it cannot know. So a stale read `R` of `v`
//! by client `P` (one cache) is wrong if
//! - no set of that entry wrote `v`, or it was invoked after `R` completed;
//! - `P` never read `v` from that entry before (`C.invoke < R.complete`,
//!   over `P`'s non-stale reads `C` returning `v`: the confirmations);
//! - `R.invoke > latest + max_age`, `latest` the last completion of such a
//!   confirmation: every save of `v` happened by then, so `v` was older than
//!   its promise when `R` recalled it;
//! - after `latest` and before `R`, `P` itself deleted or set the entry,
//!   invalidated one of its tags or everything (each forgets the value or
//!   moves `P`'s tag memo on), or confirmed another value of the entry (the
//!   save replaced `v`, or the memo moved on to the newer tag values).
//!
//! The last rule needs `P` to be one cache used by one thread at a time:
//! two threads of one cache may store their tag reads into its memo out of
//! order, and an older snapshot then names the old storage key again. The
//! history test gives the fail-safe reader a cache of its own.
//!
//! # Why a check written for this model
//!
//! A general linearizability checker (porcupine, stateright's tester) would
//! need a sequential model of the whole namespace (entries, tags and their
//! values, the near cache's bound as a relaxation it has no notion of) and
//! searches for a linearization: exponential in the worst case, and with a
//! few thousand concurrent operations per key it has to partition the
//! history by key, which tags (one invalidation reaches many keys) forbid.
//! rtc's promise is not linearizability anyway: a miss is always allowed
//! and a write may be lost (an invalidation followed it), so a checker would
//! need a nondeterministic model to even accept correct histories. With
//! unique values the promise reduces to the interval conditions above, one
//! candidate writer per read, and is checked exactly in `O(n log n)`: each
//! family of `X` sorted by invoke, with suffix minima of completions, so
//! "some `X` invoked after `t1` completed before `t2`" is one binary search.
//! The check never fails a correct cache (it only uses real-time order that
//! holds in every linearization) and flags every read the rules name.

use std::path::Path;
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

mod check;

pub use check::{Bounds, Report, check};

/// Returns CLOCK_MONOTONIC in nanoseconds: one clock for every process of a
/// machine, so invoke and complete times of different processes compare.
pub fn now() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_MONOTONIC)");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// What an operation was.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A set of `key` under `tags`, writing `value`.
    Set,
    /// A get of `key` under `tags`.
    Get,
    /// A delete of `key` under `tags`.
    Delete,
    /// An invalidation of `tags`.
    Invalidate,
    /// An invalidation of everything in the namespace.
    InvalidateAll,
}

/// How an operation ended.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A set, delete or invalidation that returned `Ok`.
    Done,
    /// A get that returned this value.
    Value(String),
    /// A get that returned the fail-safe value, flagged stale.
    Stale(String),
    /// A get that returned nothing.
    Miss,
    /// A call that returned this error: its effect is unknown.
    Error(String),
}

/// One operation of a history.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Op {
    /// The cache that made it (one per process, or per thread: the fail-safe
    /// promise is per cache).
    pub client: String,
    /// What it was.
    pub kind: Kind,
    /// The entry's key (empty for invalidations).
    pub key: String,
    /// The entry's tags, or the tags invalidated.
    pub tags: Vec<String>,
    /// The value a set wrote.
    pub value: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// A read through a near cache: held to the near cache's bound.
    pub near: bool,
    /// When the call began ([`now`]).
    pub invoke: u64,
    /// When the call returned ([`now`]).
    pub complete: u64,
}

impl Op {
    /// Whether the call returned `Ok`.
    pub fn ok(&self) -> bool {
        !matches!(self.outcome, Outcome::Error(_))
    }
}

/// Collects the operations of one cache, from any number of threads: each
/// thread records into its own [`Log`] and hands it over when it is dropped,
/// so recording takes no lock per operation.
pub struct Recorder {
    client: String,
    ops: Mutex<Vec<Op>>,
}

impl Recorder {
    /// Starts an empty history for the cache named `client`.
    pub fn new(client: impl Into<String>) -> Self {
        Recorder { client: client.into(), ops: Mutex::new(Vec::new()) }
    }

    /// Returns a log for one thread.
    pub fn log(&self) -> Log<'_> {
        Log { recorder: self, ops: Vec::new() }
    }

    /// Returns everything recorded (by logs already dropped).
    pub fn into_ops(self) -> Vec<Op> {
        self.ops.into_inner().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One thread's record of its calls; see [`Recorder`].
pub struct Log<'a> {
    recorder: &'a Recorder,
    ops: Vec<Op>,
}

fn strings(tags: &[&str]) -> Vec<String> {
    tags.iter().map(|t| (*t).to_owned()).collect()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl Log<'_> {
    /// Runs `call` and records it as `kind` on `key` under `tags`.
    fn record<T>(
        &mut self,
        kind: Kind,
        (key, tags, value, near): (&str, &[&str], Option<&str>, bool),
        call: impl FnOnce() -> rtc_core::Result<T>,
        outcome: impl FnOnce(&T) -> Outcome,
    ) -> rtc_core::Result<T> {
        let invoke = now();
        let result = call();
        let complete = now();
        let outcome = match &result {
            Ok(t) => outcome(t),
            Err(e) => Outcome::Error(e.to_string()),
        };
        self.ops.push(Op {
            client: self.recorder.client.clone(),
            kind,
            key: key.to_owned(),
            tags: strings(tags),
            value: value.map(str::to_owned),
            outcome,
            near,
            invoke,
            complete,
        });
        result
    }

    /// Records `call`, a set of `key` under `tags` writing `value`.
    pub fn set(
        &mut self,
        key: &str,
        tags: &[&str],
        value: &str,
        call: impl FnOnce() -> rtc_core::Result<()>,
    ) -> rtc_core::Result<()> {
        self.record(Kind::Set, (key, tags, Some(value), false), call, |()| Outcome::Done)
    }

    /// Records `call`, a get of `key` under `tags` (through a near cache if `near`).
    pub fn get(
        &mut self,
        key: &str,
        tags: &[&str],
        near: bool,
        call: impl FnOnce() -> rtc_core::Result<Option<Vec<u8>>>,
    ) -> rtc_core::Result<Option<Vec<u8>>> {
        self.record(Kind::Get, (key, tags, None, near), call, |got| match got {
            Some(bytes) => Outcome::Value(text(bytes)),
            None => Outcome::Miss,
        })
    }

    /// Records `call`, a get-or-compute read of `key` under `tags` that
    /// returns the value and whether it is the fail-safe value (stale).
    pub fn get_or_stale(
        &mut self,
        key: &str,
        tags: &[&str],
        call: impl FnOnce() -> rtc_core::Result<Option<(Vec<u8>, bool)>>,
    ) -> rtc_core::Result<Option<(Vec<u8>, bool)>> {
        self.record(Kind::Get, (key, tags, None, false), call, |got| match got {
            Some((bytes, true)) => Outcome::Stale(text(bytes)),
            Some((bytes, false)) => Outcome::Value(text(bytes)),
            None => Outcome::Miss,
        })
    }

    /// Records `call`, a delete of `key` under `tags`.
    pub fn delete(
        &mut self,
        key: &str,
        tags: &[&str],
        call: impl FnOnce() -> rtc_core::Result<bool>,
    ) -> rtc_core::Result<bool> {
        self.record(Kind::Delete, (key, tags, None, false), call, |_| Outcome::Done)
    }

    /// Records `call`, an invalidation of `tags`.
    pub fn invalidate(&mut self, tags: &[&str], call: impl FnOnce() -> rtc_core::Result<()>) -> rtc_core::Result<()> {
        self.record(Kind::Invalidate, ("", tags, None, false), call, |()| Outcome::Done)
    }

    /// Records `call`, an invalidation of everything.
    pub fn invalidate_all(&mut self, call: impl FnOnce() -> rtc_core::Result<()>) -> rtc_core::Result<()> {
        self.record(Kind::InvalidateAll, ("", &[], None, false), call, |()| Outcome::Done)
    }
}

impl Drop for Log<'_> {
    fn drop(&mut self) {
        let mut ops = self.recorder.ops.lock().unwrap_or_else(PoisonError::into_inner);
        ops.append(&mut self.ops);
    }
}

/// Writes `ops` to `path`, one JSON object a line (a worker process's history).
pub fn write(path: &Path, ops: &[Op]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for op in ops {
        serde_json::to_writer(&mut out, op)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// Reads a history [`write`] wrote.
pub fn read(path: &Path) -> std::io::Result<Vec<Op>> {
    let text = std::fs::read_to_string(path)?;
    text.lines().map(|line| serde_json::from_str(line).map_err(std::io::Error::other)).collect()
}
