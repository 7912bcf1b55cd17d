//! The in-process memory backend: the same commands as Redis, in one process.
//!
//! Keys expire like Redis keys (checked on access and swept on writes), and
//! `BLPOP` really blocks, so get-or-compute with `lock` behaves as on Redis.

use std::collections::{HashMap, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::backend::{Backend, Command, Reply};
use crate::error::{Error, ErrorKind, Result};

/// The fewest writes between two sweeps of expired keys. A sweep visits every
/// key, so sweeps also wait for as many writes as there are keys: O(1) per
/// write, amortized, however large the store.
const SWEEP_EVERY: usize = 1024;

enum Value {
    Bytes(Vec<u8>),
    List(VecDeque<Vec<u8>>),
}

struct Slot {
    value: Value,
    expires: Option<Instant>,
}

impl Slot {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|t| t > now)
    }
}

#[derive(Default)]
struct State {
    slots: HashMap<String, Slot>,
    writes: usize,
}

impl State {
    fn live(&mut self, key: &str, now: Instant) -> Option<&mut Slot> {
        if self.slots.get(key).is_some_and(|s| !s.live(now)) {
            self.slots.remove(key);
        }
        self.slots.get_mut(key)
    }

    fn get(&mut self, key: &str, now: Instant) -> Result<Reply> {
        match self.live(key, now).map(|s| &s.value) {
            None => Ok(Reply::Nil),
            Some(Value::Bytes(b)) => Ok(Reply::Bytes(b.clone())),
            Some(Value::List(_)) => Err(wrong_type()),
        }
    }

    fn wrote(&mut self, now: Instant) {
        self.writes += 1;
        if self.writes >= SWEEP_EVERY.max(self.slots.len()) {
            self.writes = 0;
            self.slots.retain(|_, s| s.live(now));
        }
    }

    /// Runs one command that does not block.
    fn run(&mut self, command: &Command, now: Instant) -> Result<Reply> {
        Ok(match command {
            Command::Get { key } => self.get(key, now)?,
            Command::Mget { keys } => {
                // MGET answers nil for a key of another type, as Redis does.
                let values = keys.iter().map(|k| self.get(k, now).unwrap_or(Reply::Nil)).collect();
                Reply::Array(values)
            }
            Command::Set { key, value, expire_ms, nx } => {
                if *nx && self.live(key, now).is_some() {
                    return Ok(Reply::Nil);
                }
                // An expiry past the clock's range never comes: no expiry.
                let expires = expire_ms.and_then(|ms| now.checked_add(Duration::from_millis(ms)));
                self.slots.insert(key.clone(), Slot { value: Value::Bytes(value.clone()), expires });
                self.wrote(now);
                Reply::Ok
            }
            Command::Del { keys } => {
                let mut n = 0;
                for k in keys {
                    if self.live(k, now).is_some() {
                        self.slots.remove(k);
                        n += 1;
                    }
                }
                Reply::Int(n)
            }
            Command::DelIfEq { key, value } => {
                let matches = matches!(self.live(key, now), Some(Slot { value: Value::Bytes(b), .. }) if b == value);
                if matches {
                    self.slots.remove(key);
                }
                Reply::Int(i64::from(matches))
            }
            Command::Rpush { key, value } => {
                let slot = match self.live(key, now) {
                    Some(slot) => slot,
                    None => self
                        .slots
                        .entry(key.clone())
                        .or_insert(Slot { value: Value::List(VecDeque::new()), expires: None }),
                };
                let Value::List(list) = &mut slot.value else { return Err(wrong_type()) };
                list.push_back(value.clone());
                let len = list.len();
                self.wrote(now);
                Reply::Int(len as i64)
            }
            Command::Pexpire { key, ms } => match self.live(key, now) {
                Some(slot) => {
                    slot.expires = now.checked_add(Duration::from_millis(*ms));
                    Reply::Int(1)
                }
                None => Reply::Int(0),
            },
            Command::Pttl { key } => match self.live(key, now) {
                None => Reply::Int(-2),
                Some(Slot { expires: None, .. }) => Reply::Int(-1),
                Some(Slot { expires: Some(t), .. }) => Reply::Int(t.saturating_duration_since(now).as_millis() as i64),
            },
            Command::Blpop { key, .. } => self.pop(key, now)?.map_or(Reply::Nil, Reply::Bytes),
        })
    }

    fn pop(&mut self, key: &str, now: Instant) -> Result<Option<Vec<u8>>> {
        let Some(slot) = self.live(key, now) else { return Ok(None) };
        let Value::List(list) = &mut slot.value else { return Err(wrong_type()) };
        let head = list.pop_front();
        if list.is_empty() {
            // An empty list does not exist, as in Redis.
            self.slots.remove(key);
        }
        Ok(head)
    }
}

fn wrong_type() -> Error {
    Error::new(ErrorKind::Backend, "WRONGTYPE Operation against a key holding the wrong kind of value")
}

/// An in-process store that answers the cache's commands as Redis would.
///
/// Shared by every clone of the cache built on it; use one per process (or
/// per test) to get an isolated cache.
///
/// ```
/// use rtc_core::{Backend, Command, MemoryBackend, Reply};
/// let m = MemoryBackend::new();
/// let r = m.execute(&[Command::Get { key: "k".into() }]).unwrap();
/// assert_eq!(r, vec![Reply::Nil]);
/// ```
#[derive(Default)]
pub struct MemoryBackend {
    state: Mutex<State>,
    pushed: Condvar,
}

impl MemoryBackend {
    /// Creates an empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // No code path panics while holding the lock; if one ever did, the map is still valid.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Backend for MemoryBackend {
    fn execute(&self, commands: &[Command]) -> Result<Vec<Reply>> {
        let mut state = self.lock();
        let mut replies = Vec::with_capacity(commands.len());
        for command in commands {
            let reply = match command {
                Command::Blpop { key, timeout } => {
                    let deadline = Instant::now().checked_add(*timeout);
                    loop {
                        let now = Instant::now();
                        if let Some(v) = state.pop(key, now)? {
                            break Reply::Bytes(v);
                        }
                        // A timeout past the clock's range waits a day at a time.
                        let wait = match deadline {
                            Some(d) if now >= d => break Reply::Nil,
                            Some(d) => d - now,
                            None => Duration::from_secs(86_400),
                        };
                        state = self.pushed.wait_timeout(state, wait).unwrap_or_else(PoisonError::into_inner).0;
                    }
                }
                other => {
                    let reply = state.run(other, Instant::now())?;
                    if matches!(other, Command::Rpush { .. }) {
                        self.pushed.notify_all();
                    }
                    reply
                }
            };
            replies.push(reply);
        }
        Ok(replies)
    }
}
