//! The stampede lock as step machines: [`Lookup`] (read, and on a miss take
//! the lock or wait for its holder), [`Store`] (store under the lookup's
//! snapshot and release) and [`Release`] (give up).
//!
//! Protocol (the same on Redis and in memory):
//! 1. Take the tag snapshot (metadata hash) and read the entry. Hit: done.
//! 2. Try the lock and read again in one round trip:
//!    `SET lock-key token NX PX lock_timeout`, `GET storage-key`.
//! 3. Got it: if the value appeared meanwhile, release the lock and return
//!    it; else the caller computes, and [`Store`] stores under the snapshot
//!    of step 1, deletes the lock if it still holds our token, and pushes a
//!    wake-up onto the wake-up list.
//! 4. Lock taken by someone else: a value already there is a hit; else
//!    `BLPOP` the wake-up list (at most one second at a time, in case the
//!    holder died) and go back to 2, until `lock_timeout` has passed, then
//!    compute without the lock. A waiter woken by a push that finds the value
//!    passes the wake-up on to the next waiter.
//!
//! Storing under the step-1 snapshot means an invalidation that happens while
//! the value is computed is never hidden: the value lands under the old tag
//! values, which no reader uses any more.
//!
//! Time is passed in; nothing here reads a clock, sleeps or calls a backend.

use std::time::{Duration, Instant};

use crate::backend::{Command, Reply};
use crate::error::{Error, Result};
use crate::local::Inner;
use crate::model::hash::random_token;
use crate::model::layout::EntryKeys;
use crate::ops::snapshot::{Access, Snapshot};
use crate::ops::step::{Op, Step, bytes, next};

/// Longest single wait on the wake-up list, so a waiter notices a dead holder's expired lock.
const MAX_WAIT_STEP: Duration = Duration::from_secs(1);
/// How long a wake-up list outlives its last push (as the reference: 3 s).
const WAKE_TTL_MS: u64 = 3000;
/// The element pushed onto a wake-up list (as the reference).
const WAKE_TOKEN: &[u8] = b"x";
/// The longest stampede-lock timeout, on every surface (one day): a lock is
/// held while one value is computed, and a longer wait is a bug upstream.
pub const MAX_LOCK_TIMEOUT: Duration = Duration::from_secs(86_400);

/// How the lock behaved during one get-or-lock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LockStats {
    /// Time spent waiting for another caller's lock, in milliseconds.
    pub waiting_ms: u64,
    /// With a lock: the value was there at the first read.
    pub full_hit: bool,
    /// With a lock: still no value after waiting/locking.
    pub full_miss: bool,
}

/// What a miss holds: where to store, and the lock if this caller took it.
#[derive(Debug, Clone)]
pub(crate) struct Hold {
    /// The entry's keys under the lookup's snapshot; `None` when the tags
    /// could not be read (nothing will be stored).
    pub(crate) keys: Option<EntryKeys>,
    /// The lock token, when this caller holds the lock.
    pub(crate) token: Option<String>,
    /// How the lock behaved.
    pub(crate) stats: LockStats,
}

impl Hold {
    /// The commands that release the lock and wake one waiter (none without the lock).
    pub(crate) fn release_commands(&self) -> Vec<Command> {
        match (&self.keys, &self.token) {
            (Some(keys), Some(token)) => release_commands(keys, token).into(),
            _ => Vec::new(),
        }
    }
}

fn release_commands(keys: &EntryKeys, token: &str) -> [Command; 3] {
    [
        Command::DelIfEq { key: keys.lock.clone(), value: token.as_bytes().to_vec() },
        Command::Rpush { key: keys.wake.clone(), value: WAKE_TOKEN.to_vec() },
        Command::Pexpire { key: keys.wake.clone(), ms: WAKE_TTL_MS },
    ]
}

/// The outcome of a [`Lookup`].
#[derive(Debug)]
pub(crate) enum Looked {
    /// The value was cached: its bytes, the lock's behaviour, and its storage
    /// key (only when fail-safe is on, for saving the value; else empty).
    Hit(Vec<u8>, LockStats, String),
    /// Not cached: compute the value.
    Miss(Hold),
}

enum State {
    Snapshot,
    /// Waiting for `SET NX` + `GET`.
    Acquire,
    /// Waiting for `BLPOP`.
    Wait,
    /// Waiting for the release of a lock taken just as the value appeared.
    Release(Vec<u8>, LockStats),
    /// Waiting for the wake-up passed on to the next waiter.
    PassOn(Vec<u8>, LockStats),
}

/// Reads an entry, and on a miss takes the stampede lock if asked to.
pub(crate) struct Lookup<'a> {
    inner: &'a Inner,
    key: &'a str,
    snapshot: Snapshot<'a>,
    lock: Option<Duration>,
    state: State,
    keys: Option<EntryKeys>,
    token: String,
    started: Option<Instant>,
    woken: bool,
}

impl<'a> Lookup<'a> {
    /// Prepares the lookup of `key` under `tags`, with the lock held at most
    /// (and waited for at most) `lock` if given. Fails with
    /// `InvalidArgument` for a lock timeout over [`MAX_LOCK_TIMEOUT`].
    pub(crate) fn new(inner: &'a Inner, key: &'a str, tags: &[&'a str], lock: Option<Duration>) -> Result<Self> {
        if let Some(timeout) = lock.filter(|t| *t > MAX_LOCK_TIMEOUT) {
            return Err(Error::invalid(format!("a lock timeout of {timeout:?} is over the maximum of one day")));
        }
        Ok(Lookup {
            inner,
            key,
            snapshot: Snapshot::new(inner, key, tags, Access::Get).answering_only(),
            lock,
            state: State::Snapshot,
            keys: None,
            token: String::new(),
            started: None,
            woken: false,
        })
    }

    fn waited(&self, now: Instant) -> LockStats {
        let waiting_ms = self.started.map_or(0, |s| now.saturating_duration_since(s).as_millis() as u64);
        LockStats { waiting_ms, ..LockStats::default() }
    }

    /// The storage key of a hit read after the snapshot, for fail-safe.
    fn storage(&self) -> String {
        match (&self.inner.fail_safe, &self.keys) {
            (Some(_), Some(keys)) => keys.storage.clone(),
            _ => String::new(),
        }
    }

    fn miss(&mut self, token: Option<String>, stats: LockStats) -> Step<Looked> {
        Step::Done(Looked::Miss(Hold { keys: self.keys.take(), token, stats }))
    }

    fn acquire(&self) -> Result<Step<Looked>> {
        let (Some(keys), Some(timeout)) = (&self.keys, self.lock) else {
            return Err(crate::ops::step::protocol("the lock is taken without keys"));
        };
        let lock_ms = (timeout.as_millis() as u64).max(1);
        Ok(Step::Send(vec![
            Command::Set {
                key: keys.lock.clone(),
                value: self.token.as_bytes().to_vec(),
                expire_ms: Some(lock_ms),
                nx: true,
            },
            Command::Get { key: keys.storage.clone() },
        ]))
    }
}

impl Op for Lookup<'_> {
    type Output = Looked;
    const TIMED: bool = true;

    fn start(&mut self, now: Instant) -> Result<Step<Looked>> {
        match self.snapshot.start(now)? {
            Step::Send(commands) => Ok(Step::Send(commands)),
            Step::Done(_) => Err(crate::ops::step::protocol("a snapshot ended before any command")),
        }
    }

    fn resume(&mut self, sent: Vec<Command>, replies: Vec<Reply>, now: Instant) -> Result<Step<Looked>> {
        match std::mem::replace(&mut self.state, State::Snapshot) {
            State::Snapshot => {
                let done = match self.snapshot.resume(sent, replies, now)? {
                    Step::Send(commands) => return Ok(Step::Send(commands)),
                    Step::Done(done) => done,
                };
                let Some((hash, reply)) = done.entry else {
                    // The tags could not be read: compute, store nothing.
                    return Ok(self.miss(None, LockStats::default()));
                };
                if done.confirmed
                    && let Reply::Bytes(value) = reply
                {
                    let stats = LockStats { full_hit: self.lock.is_some(), ..LockStats::default() };
                    let storage = match self.inner.fail_safe {
                        Some(_) => self.inner.layout.storage_key(self.key, &hash),
                        None => String::new(),
                    };
                    return Ok(Step::Done(Looked::Hit(value, stats, storage)));
                }
                self.keys = Some(self.inner.layout.entry(self.key, &hash));
                if self.lock.is_none() {
                    return Ok(self.miss(None, LockStats::default()));
                }
                self.token = random_token()?;
                self.started = Some(now);
                self.state = State::Acquire;
                self.acquire()
            }
            State::Acquire => {
                let mut replies = replies.into_iter();
                let locked = matches!(next(&mut replies)?, Reply::Ok);
                let value = bytes(next(&mut replies)?);
                let stats = self.waited(now);
                match (locked, value) {
                    // Someone stored the value between our read and our lock.
                    (true, Some(value)) => {
                        let release =
                            self.keys.as_ref().map(|k| release_commands(k, &self.token).to_vec()).unwrap_or_default();
                        self.state = State::Release(value, stats);
                        Ok(Step::Send(release))
                    }
                    (true, None) => {
                        let token = std::mem::take(&mut self.token);
                        Ok(self.miss(Some(token), LockStats { full_miss: true, ..stats }))
                    }
                    (false, Some(value)) if self.woken => {
                        // One RPUSH wakes one waiter: pass the wake-up on to the next one.
                        let Some(keys) = &self.keys else {
                            return Ok(Step::Done(Looked::Hit(value, stats, String::new())));
                        };
                        let pass = vec![
                            Command::Rpush { key: keys.wake.clone(), value: WAKE_TOKEN.to_vec() },
                            Command::Pexpire { key: keys.wake.clone(), ms: WAKE_TTL_MS },
                        ];
                        self.state = State::PassOn(value, stats);
                        Ok(Step::Send(pass))
                    }
                    (false, Some(value)) => Ok(Step::Done(Looked::Hit(value, stats, self.storage()))),
                    (false, None) => {
                        let deadline = self.started.unwrap_or(now) + self.lock.unwrap_or_default();
                        if now >= deadline {
                            return Ok(self.miss(None, LockStats { full_miss: true, ..stats }));
                        }
                        let Some(keys) = &self.keys else {
                            return Ok(self.miss(None, stats));
                        };
                        let wait = (deadline - now).min(MAX_WAIT_STEP);
                        self.state = State::Wait;
                        Ok(Step::Send(vec![Command::Blpop { key: keys.wake.clone(), timeout: wait }]))
                    }
                }
            }
            State::Wait => {
                self.woken = bytes(next(&mut replies.into_iter())?).is_some();
                self.state = State::Acquire;
                self.acquire()
            }
            State::Release(value, stats) | State::PassOn(value, stats) => {
                Ok(Step::Done(Looked::Hit(value, stats, self.storage())))
            }
        }
    }
}

/// Stores a computed value under a [`Hold`]'s snapshot, then releases its
/// lock and wakes the waiters, in one round trip.
pub(crate) struct Store {
    commands: Vec<Command>,
}

impl Store {
    /// Prepares the store of `access` (a [`Access::Set`]) for `hold`.
    pub(crate) fn new(hold: &Hold, access: Access) -> Self {
        let mut commands = Vec::with_capacity(4);
        if let (Some(keys), Access::Set { value, expire_ms }) = (&hold.keys, access) {
            commands.push(Command::Set { key: keys.storage.clone(), value, expire_ms, nx: false });
        }
        commands.extend(hold.release_commands());
        Store { commands }
    }

    /// Prepares the release of `hold`'s lock alone (storing nothing).
    pub(crate) fn release(hold: &Hold) -> Self {
        Store { commands: hold.release_commands() }
    }
}

impl Op for Store {
    type Output = ();

    fn start(&mut self, _now: Instant) -> Result<Step<()>> {
        if self.commands.is_empty() {
            return Ok(Step::Done(()));
        }
        Ok(Step::Send(std::mem::take(&mut self.commands)))
    }

    fn resume(&mut self, _sent: Vec<Command>, _replies: Vec<Reply>, _now: Instant) -> Result<Step<()>> {
        Ok(Step::Done(()))
    }
}
