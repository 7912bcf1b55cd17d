//! The stampede lock, split in two calls for callers that cannot pass a
//! closure: [`Cache::get_or_lock`] then [`Cache::set_and_unlock`].
//!
//! Protocol (the same on Redis and in memory):
//! 1. Take the tag snapshot (metadata hash) and read the entry. Hit: done.
//! 2. Try the lock: `SET lock-key token NX PX lock_timeout`.
//! 3. Got it: read again (a holder may have just finished); still missing,
//!    the caller computes and calls `set_and_unlock`, which stores under the
//!    snapshot of step 1, deletes the lock if it still holds our token, and
//!    pushes a wake-up onto the wake-up list.
//! 4. Lock taken by someone else: `BLPOP` the wake-up list (at most one second
//!    at a time, in case the holder died), read again, and on a hit pass the
//!    wake-up on to the next waiter; otherwise go back to 2, until
//!    `lock_timeout` has passed, then compute without the lock.
//!
//! Storing under the step-1 snapshot means an invalidation that happens while
//! the value is computed is never hidden: the value lands under the old tag
//! values, which no reader uses any more.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backend::{Command, Reply};
use crate::cache::{Cache, Inner, unexpected};
use crate::codec::Codec;
use crate::config::{Lifetime, MAX_LIFETIME_SECS, expire_ms};
use crate::error::{Error, Result};
use crate::hash::random_token;
use crate::layout::EntryKeys;
use crate::tags::Tags;

/// Longest single wait on the wake-up list, so a waiter notices a dead holder's expired lock.
const MAX_WAIT_STEP: Duration = Duration::from_secs(1);
/// How long a wake-up list outlives its last push (as the reference: 3 s).
const WAKE_TTL_MS: u64 = 3000;
/// The element pushed onto a wake-up list (as the reference).
const WAKE_TOKEN: &[u8] = b"x";

/// The outcome of [`Cache::get_or_lock`].
#[derive(Debug)]
pub enum GetOrLock {
    /// The value was cached.
    Hit(Vec<u8>, LockStats),
    /// Not cached, and this caller holds the lock: compute the value, then
    /// call [`Cache::set_and_unlock`] (or drop the ticket to give up).
    Locked(Ticket),
    /// Not cached, and no lock is held (none was asked for, or the wait for
    /// another holder timed out): compute the value; `set_and_unlock` still
    /// stores it under the snapshot.
    Miss(Ticket),
}

/// How the lock behaved during one [`Cache::get_or_lock`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LockStats {
    /// Time spent waiting for another caller's lock, in milliseconds.
    pub waiting_ms: u64,
    /// With a lock: the value was there at the first read.
    pub full_hit: bool,
    /// With a lock: still no value after waiting/locking.
    pub full_miss: bool,
}

/// The right to store one computed value under the tag snapshot taken by
/// [`Cache::get_or_lock`], and the stampede lock if [`Ticket::holds_lock`].
///
/// Dropping a ticket without storing releases its lock (and wakes waiters).
#[derive(Debug)]
#[must_use = "a ticket holds a lock until it is used or dropped"]
pub struct Ticket {
    inner: Arc<Inner>,
    keys: EntryKeys,
    token: Option<String>,
    stats: LockStats,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").field("namespace", &self.config.namespace).finish_non_exhaustive()
    }
}

impl Ticket {
    /// Returns true when this ticket holds the stampede lock.
    pub fn holds_lock(&self) -> bool {
        self.token.is_some()
    }

    /// Returns how the lock behaved while this ticket was obtained.
    pub fn stats(&self) -> LockStats {
        self.stats
    }

    /// Returns the storage key the value will be written to.
    pub fn storage_key(&self) -> &str {
        &self.keys.storage
    }

    fn release_commands(&self, token: &str) -> [Command; 3] {
        [
            Command::DelIfEq { key: self.keys.lock.clone(), value: token.as_bytes().to_vec() },
            Command::Rpush { key: self.keys.wake.clone(), value: WAKE_TOKEN.to_vec() },
            Command::Pexpire { key: self.keys.wake.clone(), ms: WAKE_TTL_MS },
        ]
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(token) = self.token.take()
            && let Err(e) = self.inner.backend.execute(&self.release_commands(&token))
        {
            tracing::warn!(error = %e, "cannot release a stampede lock; it expires after lock_timeout");
        }
    }
}

impl<C: Codec> Cache<C> {
    /// Reads `key` under `tags`, and on a miss takes the stampede lock if
    /// `lock_timeout` is given (waiting up to that long for another holder).
    ///
    /// `Err` means the backend failed: compute the value and do not store it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rtc_core::{Cache, GetOrLock, Lifetime};
    /// let cache = Cache::builder().in_local_memory(true).build().unwrap();
    /// match cache.get_or_lock("k", ["t"], Some(Duration::from_secs(5))).unwrap() {
    ///     GetOrLock::Locked(ticket) => cache.set_and_unlock(ticket, b"v", Lifetime::Default).unwrap(),
    ///     other => panic!("cold key must lock: {other:?}"),
    /// }
    /// assert!(matches!(cache.get_or_lock("k", ["t"], None).unwrap(), GetOrLock::Hit(v, _) if v == b"v"));
    /// ```
    pub fn get_or_lock(&self, key: &str, tags: impl Tags, lock_timeout: Option<Duration>) -> Result<GetOrLock> {
        let inner = &self.inner;
        if let Some(timeout) = lock_timeout.filter(|t| t.as_secs() > MAX_LIFETIME_SECS) {
            return Err(Error::invalid(format!("a lock timeout of {timeout:?} is over the maximum lifetime (100 years)")));
        }
        let get = |hash: &str| Command::Get { key: inner.layout.storage_key(key, hash) };
        let (hash, first) = inner.under_snapshot(&tags.tag_names(), get)?;
        match first {
            Reply::Bytes(value) => {
                let stats = LockStats { full_hit: lock_timeout.is_some(), ..LockStats::default() };
                return Ok(GetOrLock::Hit(value, stats));
            }
            Reply::Nil => {}
            other => return Err(unexpected("GET", &other)),
        }
        let keys = inner.layout.entry(key, &hash);
        let ticket = |token: Option<String>, stats: LockStats| Ticket { inner: Arc::clone(inner), keys: keys.clone(), token, stats };
        let Some(lock_timeout) = lock_timeout else {
            return Ok(GetOrLock::Miss(ticket(None, LockStats::default())));
        };
        let started = Instant::now();
        let deadline = started + lock_timeout;
        let waited = || LockStats { waiting_ms: started.elapsed().as_millis() as u64, ..LockStats::default() };
        let token = random_token()?;
        let lock_ms = (lock_timeout.as_millis() as u64).max(1);
        loop {
            let acquire = Command::Set { key: keys.lock.clone(), value: token.as_bytes().to_vec(), expire_ms: Some(lock_ms), nx: true };
            if matches!(inner.one(acquire)?, Reply::Ok) {
                let held = ticket(Some(token), LockStats { full_miss: true, ..waited() });
                // Someone may have stored the value between our read and our lock.
                if let Some(value) = inner.read(keys.storage.clone())? {
                    let stats = LockStats { full_miss: false, ..held.stats };
                    drop(held);
                    return Ok(GetOrLock::Hit(value, stats));
                }
                return Ok(GetOrLock::Locked(held));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(GetOrLock::Miss(ticket(None, LockStats { full_miss: true, ..waited() })));
            }
            let step = (deadline - now).min(MAX_WAIT_STEP);
            inner.backend.execute(&[Command::Blpop { key: keys.wake.clone(), timeout: step }])?;
            if let Some(value) = inner.read(keys.storage.clone())? {
                // One RPUSH wakes one waiter: pass the wake-up on to the next one.
                inner.backend.execute(&[
                    Command::Rpush { key: keys.wake.clone(), value: WAKE_TOKEN.to_vec() },
                    Command::Pexpire { key: keys.wake.clone(), ms: WAKE_TTL_MS },
                ])?;
                return Ok(GetOrLock::Hit(value, waited()));
            }
        }
    }

    /// Stores `value` under the ticket's snapshot, then releases its lock (if
    /// it holds one) and wakes the waiters, all in one round trip.
    pub fn set_and_unlock(&self, mut ticket: Ticket, value: &[u8], lifetime: Lifetime) -> Result<()> {
        let inner = Arc::clone(&ticket.inner);
        inner.check_size(value.len())?; // on error, dropping the ticket releases the lock
        let expire_ms = expire_ms(lifetime.resolve(inner.config.default_lifetime))?;
        let mut commands = vec![Command::Set { key: ticket.keys.storage.clone(), value: value.to_vec(), expire_ms, nx: false }];
        if let Some(token) = ticket.token.take() {
            commands.extend(ticket.release_commands(&token));
        }
        let replies = inner.backend.execute(&commands)?;
        match replies.first() {
            Some(Reply::Ok) => Ok(()),
            Some(other) => Err(unexpected("SET", other)),
            None => Err(unexpected("SET", &Reply::Nil)),
        }
    }
}
