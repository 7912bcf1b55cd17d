//! The reader connections of the per-reader mode: the reads that fill the
//! near cache run on them, so that Redis tracks each entry for this process
//! alone.
//!
//! Each is a RESP3 connection to one master with `CLIENT TRACKING ON
//! REDIRECT <that master's tracking connection> OPTIN`, and each read sends
//! `CLIENT CACHING YES` right before the `GET` of the storage key: Redis
//! then remembers that this process holds that entry (one item in its
//! tracking table) and pushes the entry's next change to the tracking
//! connection. OPTIN, not default mode, because the same read also fetches
//! the tag keys (and the entry's `PTTL`), which the tracking connection
//! already hears of by BCAST: default mode would put every tag key in the
//! table once per process, and push each of its changes twice.
//!
//! Redirect, not the tracking connection itself, so that fills run on as
//! many connections as there are concurrent readers, while one thread per
//! master reads the pushes. The race between a reply on a reader connection
//! and a push on the tracking connection is the one the near cache's
//! generation already closes (`near`). What is new, and each flushes rather
//! than serves:
//! - a reader connection that fails or times out is dropped, and since Redis
//!   forgets the reads of a closed connection, the near cache is flushed;
//! - a reader connection closed by Redis (`CLIENT KILL`, a `timeout`) is
//!   noticed by its master's listener, which lists the reader connections on
//!   every heartbeat: the session ends, flushing;
//! - a reader connection that lost its tracking (`CLIENT CACHING YES`
//!   refused), or whose redirect target went away (`tracking-redir-broken`),
//!   answers the read but installs nothing, and is dropped (flushing);
//! - the reader connections belong to one session: a new session (a new
//!   tracking connection) opens new ones, so none ever redirects to a dead
//!   target, and a read still in flight across the change installs nothing
//!   (the session change flushes, moving the generation);
//! - Redis's table full (`tracking-table-max-keys`): Redis drops entries
//!   from it by sending their invalidations, which count as pushes and drop
//!   the entries here like any change.
//!
//! A read that cannot run here (no session yet, a slot that moved) runs on
//! the cache's backend, and installs nothing: its `PTTL` reply says -2
//! ("no such key"), which the near cache never installs.

use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use redis::Value;

use super::topology::Topology;
use crate::backend::native::pool::Pool;
use crate::backend::native::single::receive;
use crate::backend::native::{map_error, to_reply};
use crate::backend::{Backend, Command, Reply};
use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};
use crate::local::near::NearState;

/// The `PTTL` reply that keeps a read out of the near cache.
const UNTRACKED_PTTL: i64 = -2;

/// Whether `commands` is a read the near cache may install: `GET` of the
/// storage key, its `PTTL`, `MGET` of its tag keys (what a get sends while
/// the near cache is live).
pub(crate) fn is_fill(commands: &[Command]) -> bool {
    matches!(commands, [Command::Get { key }, Command::Pttl { key: pttl }, Command::Mget { .. }] if key == pttl)
}

/// The reader connections of one near cache, across its sessions.
pub(crate) struct Readers {
    session: RwLock<Option<Arc<Session>>>,
    near: Weak<NearState>,
    socket_timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
}

/// The reader connections of one tracking session.
struct Session {
    masters: Vec<Master>,
    /// Slot ranges and the index of their master (empty for one server).
    slots: Vec<(u16, u16, usize)>,
}

/// One master's reader connections.
struct Master {
    client: redis::Client,
    /// The client id of the master's tracking connection.
    redirect: u64,
    idle: Pool<Reader>,
    /// The ids of the open reader connections, which the listener checks.
    ids: Arc<Mutex<Vec<u64>>>,
}

/// One reader connection and its client id.
struct Reader {
    con: redis::Connection,
    id: u64,
}

/// How one fill read went.
pub(crate) enum Filled {
    /// Redis tracks the entry for this process: the replies may be installed.
    Tracked(Vec<Reply>),
    /// The replies are right, but Redis does not track the entry for us.
    Untracked(Vec<Reply>),
    /// Not run here: run it on the backend.
    Elsewhere,
}

impl Readers {
    /// The reader connections of `near`, for the Redis `config` names; none
    /// until a session begins.
    pub(crate) fn new(config: &Config, near: Weak<NearState>) -> Self {
        let socket_timeout = (!config.socket_timeout.is_zero()).then_some(config.socket_timeout);
        let connect_timeout =
            if config.socket_connect_timeout.is_zero() { socket_timeout } else { Some(config.socket_connect_timeout) };
        Readers { session: RwLock::new(None), near, socket_timeout, connect_timeout }
    }

    /// A session is subscribed: reads go to its masters, redirecting to
    /// `redirects` (the tracking connections' ids, in `topology` order);
    /// `ids` are the lists each master's listener checks.
    pub(super) fn begin(&self, topology: &Topology, redirects: Vec<u64>, ids: Vec<Arc<Mutex<Vec<u64>>>>) {
        let masters: Vec<Master> = topology
            .masters
            .iter()
            .zip(redirects)
            .zip(ids)
            .map(|(((_, client), redirect), ids)| Master { client: client.clone(), redirect, idle: Pool::new(), ids })
            .collect();
        let slots = topology
            .slots
            .iter()
            .filter_map(|(start, end, addr)| {
                let master = topology.masters.iter().position(|(a, _)| a == addr)?;
                Some((u16::try_from(*start).ok()?, u16::try_from(*end).ok()?, master))
            })
            .collect();
        *self.session.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(Session { masters, slots }));
    }

    /// The session ended: its reader connections close (those in use, once
    /// their read is over).
    pub(super) fn end(&self) {
        self.session.write().unwrap_or_else(PoisonError::into_inner).take();
    }

    fn current(&self) -> Option<Arc<Session>> {
        self.session.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Drops a reader connection: Redis forgets what it read, so the near
    /// cache can no longer trust what it holds.
    fn lose(&self, master: &Master, reader: Reader) {
        master.ids.lock().unwrap_or_else(PoisonError::into_inner).retain(|id| *id != reader.id);
        drop(reader);
        if let Some(near) = self.near.upgrade() {
            near.flush();
        }
    }

    /// A reader connection of `master`: an idle one, or a new one with its
    /// tracking on (registered before its first read).
    fn checkout(&self, master: &Master) -> redis::RedisResult<Reader> {
        if let Some(reader) = master.idle.take() {
            return Ok(reader);
        }
        let mut con = match self.connect_timeout {
            Some(timeout) => master.client.get_connection_with_timeout(timeout)?,
            None => master.client.get_connection()?,
        };
        con.set_read_timeout(self.socket_timeout)?;
        con.set_write_timeout(self.socket_timeout)?;
        redis::cmd("CLIENT")
            .arg("TRACKING")
            .arg("ON")
            .arg("REDIRECT")
            .arg(master.redirect)
            .arg("OPTIN")
            .query::<()>(&mut con)?;
        redis::cmd("CLIENT").arg("SETNAME").arg("rtc-near-reader").query::<()>(&mut con)?;
        let id: u64 = redis::cmd("CLIENT").arg("ID").query(&mut con)?;
        master.ids.lock().unwrap_or_else(PoisonError::into_inner).push(id);
        Ok(Reader { con, id })
    }

    /// Runs the fill read `commands` ([`is_fill`]) on reader connections:
    /// the storage key's `GET` and `PTTL` on its master after `CLIENT
    /// CACHING YES`, the tag keys on theirs, all written before any reply is
    /// read (one round trip).
    pub(crate) fn read(&self, commands: &[Command]) -> Result<Filled> {
        let [Command::Get { key }, Command::Pttl { .. }, Command::Mget { keys }] = commands else {
            return Ok(Filled::Elsewhere);
        };
        let Some(session) = self.current() else { return Ok(Filled::Elsewhere) };
        let Some(owner) = session.master_of(key) else { return Ok(Filled::Elsewhere) };
        // Per master: its pipeline and how many replies it owes.
        let mut plan: Vec<(usize, redis::Pipeline, usize)> = Vec::new();
        let mut part = |master: usize, cmd: redis::Cmd| {
            let at = match plan.iter().position(|(m, _, _)| *m == master) {
                Some(at) => at,
                None => {
                    plan.push((master, redis::pipe(), 0));
                    plan.len() - 1
                }
            };
            plan[at].1.add_command(cmd);
            plan[at].2 += 1;
        };
        part(owner, redis::cmd("CLIENT").arg("CACHING").arg("YES").to_owned());
        part(owner, redis::cmd("GET").arg(key).to_owned());
        part(owner, redis::cmd("PTTL").arg(key).to_owned());
        // Where each tag's value comes from: one MGET on one server, else a GET on its master.
        let mut tags: Vec<usize> = Vec::with_capacity(keys.len());
        if session.masters.len() == 1 {
            part(0, redis::cmd("MGET").arg(keys).to_owned());
        } else {
            for tag in keys {
                let Some(master) = session.master_of(tag) else { return Ok(Filled::Elsewhere) };
                tags.push(master);
                part(master, redis::cmd("GET").arg(tag).to_owned());
            }
        }
        let mut readers = Vec::with_capacity(plan.len());
        for (master, _, _) in &plan {
            match self.checkout(&session.masters[*master]) {
                Ok(reader) => readers.push(reader),
                Err(e) => {
                    for (reader, (master, _, _)) in readers.into_iter().zip(&plan) {
                        session.masters[*master].idle.put(reader);
                    }
                    return Err(map_error(e, "cannot open a near-cache reader connection"));
                }
            }
        }
        let started = Instant::now();
        let mut broken = false;
        let mut outcome: redis::RedisResult<Vec<Vec<Value>>> = Ok(Vec::with_capacity(plan.len()));
        for (reader, (_, pipe, _)) in readers.iter_mut().zip(&plan) {
            if let Err(e) = reader.con.send_packed_command(&pipe.get_packed_pipeline()) {
                outcome = Err(e);
                break;
            }
        }
        if let Ok(values) = &mut outcome {
            for (reader, (_, _, count)) in readers.iter_mut().zip(&plan) {
                let mut push = |value: Value| broken |= redirect_broken(&value);
                match receive(&mut reader.con, *count, started, self.socket_timeout, Duration::ZERO, &mut push) {
                    Ok(replies) => values.push(replies),
                    Err(e) => {
                        outcome = Err(e);
                        break;
                    }
                }
            }
        }
        let values = match outcome {
            Ok(values) => values,
            Err(e) => {
                // A late reply may still be in flight on any of them: drop them all.
                for (reader, (master, _, _)) in readers.into_iter().zip(&plan) {
                    self.lose(&session.masters[*master], reader);
                }
                if e.is_timeout() {
                    return Err(map_error(e, "Redis command failed"));
                }
                return Ok(Filled::Elsewhere);
            }
        };
        let mut by_master: Vec<(usize, std::vec::IntoIter<Value>)> =
            plan.iter().map(|(m, _, _)| *m).zip(values.into_iter().map(Vec::into_iter)).collect();
        let mut next = |master: usize| by_master.iter_mut().find(|(m, _)| *m == master).and_then(|(_, v)| v.next());
        let caching = next(owner);
        let entry = next(owner);
        let pttl = next(owner);
        let tag_values: Vec<Option<Value>> = if session.masters.len() == 1 {
            match next(0) {
                Some(Value::Array(values)) => values.into_iter().map(Some).collect(),
                other => vec![other],
            }
        } else {
            tags.iter().map(|master| next(*master)).collect()
        };
        let tracked = !broken && matches!(&caching, Some(Value::Okay) | Some(Value::SimpleString(_)));
        let moved = std::iter::once(&entry)
            .chain(&tag_values)
            .any(|v| matches!(v, Some(Value::ServerError(e)) if e.code() == "MOVED" || e.code() == "ASK"));
        for (reader, (master, _, _)) in readers.into_iter().zip(&plan) {
            if tracked || *master != owner {
                session.masters[*master].idle.put(reader);
            } else {
                self.lose(&session.masters[*master], reader);
            }
        }
        if moved {
            return Ok(Filled::Elsewhere);
        }
        let value = |v: Option<Value>| {
            v.map(to_reply).unwrap_or_else(|| Err(Error::new(ErrorKind::Other, "a near-cache read lost a reply")))
        };
        let tag_replies = tag_values.into_iter().map(value).collect::<Result<Vec<_>>>()?;
        let replies = vec![value(entry)?, value(pttl)?, Reply::Array(tag_replies)];
        Ok(if tracked { Filled::Tracked(replies) } else { Filled::Untracked(replies) })
    }
}

impl Session {
    /// The index of the master holding `key`'s slot.
    fn master_of(&self, key: &str) -> Option<usize> {
        if self.slots.is_empty() {
            return (!self.masters.is_empty()).then_some(0);
        }
        let slot = slot(key.as_bytes());
        self.slots.iter().find(|(start, end, _)| (*start..=*end).contains(&slot)).map(|(_, _, master)| *master)
    }
}

/// Redis Cluster's slot of `key`: CRC16 (XMODEM) of the key, or of its hash
/// tag (`{...}`, non-empty), modulo 16384.
fn slot(key: &[u8]) -> u16 {
    let tagged = key
        .iter()
        .position(|b| *b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.iter().position(|b| *b == b'}').map(|close| &rest[..close])
        })
        .filter(|tag| !tag.is_empty());
    crc16::State::<crc16::XMODEM>::calculate(tagged.unwrap_or(key)) % 16384
}

/// Whether `push` says the connection's redirect target is gone.
fn redirect_broken(push: &Value) -> bool {
    let Value::Push { data, .. } = push else { return false };
    matches!(data.first(), Some(Value::BulkString(b)) if b == b"tracking-redir-broken")
        || matches!(data.first(), Some(Value::SimpleString(s)) if s == "tracking-redir-broken")
}

/// The cache's backend with the reads that fill the near cache sent on
/// reader connections ([`Readers`]); every other batch goes to the backend
/// as it is.
pub(crate) struct Filling {
    readers: Arc<Readers>,
    backend: Arc<dyn Backend>,
}

impl Filling {
    /// Sends `backend`'s fill reads through `readers`.
    pub(crate) fn new(readers: Arc<Readers>, backend: Arc<dyn Backend>) -> Self {
        Filling { readers, backend }
    }
}

impl Backend for Filling {
    fn execute(&self, commands: &[Command]) -> Result<Vec<Reply>> {
        if !is_fill(commands) {
            return self.backend.execute(commands);
        }
        fill(&self.readers, &*self.backend, commands)
    }
}

/// Runs the fill read `commands` on `readers`, or on `backend` (then
/// marked not to be installed).
pub(crate) fn fill(readers: &Readers, backend: &dyn Backend, commands: &[Command]) -> Result<Vec<Reply>> {
    Ok(match readers.read(commands)? {
        Filled::Tracked(replies) => replies,
        Filled::Untracked(replies) => untracked(replies),
        Filled::Elsewhere => untracked(backend.execute(commands)?),
    })
}

/// Marks the replies of a fill read that Redis does not track for this
/// process: nothing installs them.
pub(crate) fn untracked(mut replies: Vec<Reply>) -> Vec<Reply> {
    if let Some(pttl) = replies.get_mut(1) {
        *pttl = Reply::Int(UNTRACKED_PTTL);
    }
    replies
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_redis_cluster() {
        // Values from Redis's CLUSTER KEYSLOT.
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"{user1000}.following"), slot(b"user1000"));
        // Only the first `{...}` counts, and an empty one means the whole key.
        assert_eq!(slot(b"foo{bar}{zap}"), slot(b"bar"));
        assert_ne!(slot(b"foo{}{bar}"), slot(b"bar"));
        // CRC16/XMODEM's check value, already below 16384.
        assert_eq!(slot(b"123456789"), 0x31C3);
    }

    #[test]
    fn only_a_get_with_its_pttl_and_tags_is_a_fill() {
        let get = Command::Get { key: "s".into() };
        let pttl = Command::Pttl { key: "s".into() };
        let mget = Command::Mget { keys: vec!["t".into()] };
        assert!(is_fill(&[get.clone(), pttl.clone(), mget.clone()]));
        assert!(!is_fill(&[get.clone(), mget.clone()]));
        assert!(!is_fill(&[get, Command::Pttl { key: "other".into() }, mget]));
    }
}
