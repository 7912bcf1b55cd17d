//! One master's tracking connection: subscribes, applies Redis's
//! invalidation pushes to the near cache, and checks on a heartbeat that the
//! connection is alive and, per reader, that every reader connection of
//! this master still is (Redis forgets the reads of a connection that
//! closes, so its entries' changes would no longer be pushed).
//!
//! The thread blocks reading its connection, so a push is applied as soon as
//! it arrives. Every `POLL`, however busy, it sends the heartbeat, which
//! must be answered within the heartbeat deadline.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use redis::{PushKind, Value};

use super::timing::{HEARTBEAT_DEADLINE, POLL};
use crate::local::near::NearState;

/// What a listener thread tells its session.
pub(super) enum Event {
    /// The listener of master `master` is subscribed, with this client id
    /// (the target of the reader connections' redirect): every change from
    /// now on is pushed to it.
    Subscribed { master: usize, id: u64 },
    /// Its connection failed (or one of its master's reader connections
    /// went away); the session must end.
    Failed(String),
}

/// One master's tracking connection.
pub(super) struct Listener {
    /// The master's index in the session's topology.
    pub(super) master: usize,
    pub(super) client: redis::Client,
    /// The BCAST prefixes: tag keys, and storage keys in broadcast mode.
    pub(super) prefixes: Vec<String>,
    pub(super) connect_timeout: Duration,
    pub(super) near: Weak<NearState>,
    pub(super) stop: Arc<AtomicBool>,
    /// The client ids of this master's reader connections (per reader).
    pub(super) readers: Arc<Mutex<Vec<u64>>>,
}

impl Listener {
    /// Subscribes, then applies pushes and checks the connection until it
    /// fails (`Err`, with why) or the session stops (`Ok`).
    pub(super) fn run(&self, events: &mpsc::Sender<Event>) -> Result<(), String> {
        let failed = |e: redis::RedisError| e.to_string();
        let mut con = self.client.get_connection_with_timeout(self.connect_timeout).map_err(failed)?;
        con.set_read_timeout(Some(HEARTBEAT_DEADLINE)).map_err(failed)?;
        con.set_write_timeout(Some(HEARTBEAT_DEADLINE)).map_err(failed)?;
        redis::cmd("CLIENT").arg("SETNAME").arg("rtc-near-tracking").query::<()>(&mut con).map_err(failed)?;
        let mut subscribe = redis::cmd("CLIENT");
        subscribe.arg("TRACKING").arg("ON").arg("BCAST");
        for prefix in &self.prefixes {
            subscribe.arg("PREFIX").arg(prefix);
        }
        subscribe.query::<()>(&mut con).map_err(failed)?;
        let id: u64 = redis::cmd("CLIENT").arg("ID").query(&mut con).map_err(failed)?;
        if events.send(Event::Subscribed { master: self.master, id }).is_err() {
            return Ok(()); // the session is over
        }
        let ping = redis::cmd("PING").get_packed_command();
        let mut beat = Instant::now() + POLL;
        loop {
            if self.stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            let mut owed = 0;
            if let Some(wait) = beat.checked_duration_since(Instant::now()).filter(|w| !w.is_zero()) {
                con.set_read_timeout(Some(wait)).map_err(failed)?;
                match con.recv_response() {
                    Ok(value) => {
                        self.apply(value);
                        continue;
                    }
                    // The timed-out read counts as one reply owed to it, paid by a PING.
                    Err(e) if e.is_timeout() => owed = 1,
                    Err(e) => return Err(e.to_string()),
                }
            }
            con.set_read_timeout(Some(HEARTBEAT_DEADLINE)).map_err(failed)?;
            for _ in 0..owed {
                con.send_packed_command(&ping).map_err(failed)?;
            }
            let readers = self.readers.lock().unwrap_or_else(PoisonError::into_inner).clone();
            if readers.is_empty() {
                con.send_packed_command(&ping).map_err(failed)?;
            } else {
                let mut list = redis::cmd("CLIENT");
                list.arg("LIST").arg("ID").arg(&readers);
                con.send_packed_command(&list.get_packed_command()).map_err(failed)?;
            }
            let reply = loop {
                match con.recv_response().map_err(failed)? {
                    Value::Push { kind, data } => self.apply(Value::Push { kind, data }),
                    reply => break reply,
                }
            };
            if !readers.is_empty() {
                self.check_readers(&readers, &reply)?;
            }
            beat = Instant::now() + POLL;
        }
    }

    /// Fails when a reader connection listed in `asked` is not in Redis's
    /// `CLIENT LIST ID` `reply` and is still registered (one dropped by its
    /// cache meanwhile has flushed the near cache already).
    fn check_readers(&self, asked: &[u64], reply: &Value) -> Result<(), String> {
        let text = match reply {
            Value::VerbatimString { text, .. } => text.clone(),
            Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
            Value::SimpleString(text) => text.clone(),
            other => return Err(format!("CLIENT LIST answered {other:?}")),
        };
        let listed: Vec<u64> = text
            .lines()
            .filter_map(|line| line.split_whitespace().find_map(|f| f.strip_prefix("id="))?.parse().ok())
            .collect();
        let registered = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
        match asked.iter().find(|id| !listed.contains(id) && registered.contains(id)) {
            Some(id) => Err(format!("reader connection {id} is gone: Redis no longer tracks its reads")),
            None => Ok(()),
        }
    }

    /// Applies one message of the tracking connection.
    fn apply(&self, value: Value) {
        let Value::Push { kind: PushKind::Invalidate, data } = value else {
            return;
        };
        let Some(state) = self.near.upgrade() else { return };
        state.count_push();
        match data.into_iter().next() {
            Some(Value::Array(keys)) => {
                let keys: Vec<Vec<u8>> = keys
                    .into_iter()
                    .filter_map(|k| match k {
                        Value::BulkString(bytes) => Some(bytes),
                        Value::SimpleString(s) => Some(s.into_bytes()),
                        _ => None,
                    })
                    .collect();
                state.invalidate(&keys);
            }
            // A null push: FLUSHALL, FLUSHDB or SWAPDB made every key invalid.
            _ => state.flush(),
        }
    }
}
