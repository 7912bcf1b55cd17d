//! One Redis server over pooled synchronous connections.

use std::time::{Duration, Instant};

use redis::{ConnectionLike, Value};

use super::pool::Pool;
use super::server::Server;
use super::{map_error, packed, replies};
use crate::backend::{Backend, Command, Reply};
use crate::config::Config;
use crate::error::Result;

/// How long a round trip may run on the read timeout set at checkout before
/// each further reply is read with the time left until its deadline.
const DEADLINE_SLACK: Duration = Duration::from_millis(5);

/// A Redis backend over synchronous connections, one per concurrent caller.
///
/// Each batch checks a connection out of the idle pool, sends the batch as
/// one pipeline (one round trip) and puts the connection back. No lock is
/// held across a round trip. A connection that saw an I/O error or a timeout
/// is dropped, never reused, because a late reply could still be in flight.
pub struct RedisBackend {
    server: Server,
    /// Idle connections, each with the generation of the master it goes to.
    idle: Pool<(u64, redis::Connection)>,
    socket_timeout: Option<Duration>,
    connect_timeout: Duration,
}

impl RedisBackend {
    /// Creates a backend for the Redis that `config` names (URL, or host/port/db/...).
    ///
    /// Does not connect: the first command does, so a cache can be built while
    /// Redis is down and start working when it comes up.
    pub fn new(config: &Config) -> Result<Self> {
        Ok(RedisBackend {
            server: Server::new(config, redis::ProtocolVersion::RESP2)?,
            idle: Pool::new(),
            socket_timeout: (!config.socket_timeout.is_zero()).then_some(config.socket_timeout),
            connect_timeout: config.socket_connect_timeout,
        })
    }

    /// Returns a connection, the generation of the master it goes to, and
    /// whether it came from the idle list (and so may be stale).
    fn checkout(&self) -> Result<(redis::Connection, u64, bool)> {
        let generation = self.server.generation();
        while let Some((made, conn)) = self.idle.take() {
            // One made before Sentinel moved the master goes to a former one.
            if made == generation {
                return Ok((conn, made, true));
            }
        }
        let (generation, client) = self.server.client()?;
        // The connect timeout also bounds the handshake (HELLO/AUTH/SELECT/CLIENT
        // SETINFO), which the kernel lets start even while Redis is paused. With
        // no connect timeout, the socket timeout bounds both (as in redis-py),
        // or a fresh connection to a paused Redis would wait forever.
        let connect_timeout =
            if self.connect_timeout.is_zero() { self.socket_timeout } else { Some(self.connect_timeout) };
        let conn = match connect_timeout {
            Some(timeout) => client.get_connection_with_timeout(timeout),
            None => client.get_connection(),
        }
        .map_err(|e| map_error(e, "cannot connect to Redis"))?;
        conn.set_write_timeout(self.socket_timeout).map_err(|e| map_error(e, "cannot set the write timeout"))?;
        conn.set_read_timeout(self.socket_timeout).map_err(|e| map_error(e, "cannot set the read timeout"))?;
        Ok((conn, generation, false))
    }

    fn checkin(&self, conn: redis::Connection, generation: u64) {
        if generation == self.server.generation() {
            self.idle.put((generation, conn));
        }
    }
}

impl Backend for RedisBackend {
    fn execute(&self, commands: &[Command]) -> Result<Vec<Reply>> {
        if commands.is_empty() {
            return Ok(Vec::new());
        }
        let (bytes, count, blocking) = packed(commands);
        // A pooled connection may have died with a Redis restart: retry once on
        // a fresh one. Every command the cache sends is safe to repeat.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (mut conn, generation, pooled) = self.checkout()?;
            match self.query(&mut conn, &bytes, count, blocking) {
                Ok(values) => {
                    self.checkin(conn, generation);
                    return replies(commands, values);
                }
                Err(e) => {
                    // Only a server error reply leaves the connection in a known state.
                    if matches!(e.kind(), redis::ErrorKind::Server(_)) && conn.is_open() {
                        self.checkin(conn, generation);
                    } else if pooled
                        && attempt == 1
                        && !e.is_timeout()
                        && (e.is_connection_dropped() || e.is_io_error())
                    {
                        self.idle.clear();
                        continue;
                    }
                    return Err(map_error(e, "Redis command failed"));
                }
            }
        }
    }
}

impl RedisBackend {
    /// Sends `bytes` (`count` packed commands) and reads their replies, all
    /// within one socket timeout (plus the BLPOP wait): see [`receive`].
    fn query(
        &self,
        conn: &mut redis::Connection,
        bytes: &[u8],
        count: usize,
        blocking: Duration,
    ) -> redis::RedisResult<Vec<Value>> {
        let started = Instant::now();
        if !blocking.is_zero() {
            // The server legitimately stays silent while BLPOP waits.
            conn.set_read_timeout(self.socket_timeout.map(|t| t.saturating_add(blocking)))?;
        }
        conn.send_packed_command(bytes)?;
        // RESP3 push data is not a reply.
        receive(conn, count, started, self.socket_timeout, blocking, &mut |_| {})
    }
}

/// Reads the `count` replies owed on `conn` (whose read timeout is
/// `socket_timeout`, stretched by `blocking` if that is not zero), all
/// within one socket timeout (plus the BLPOP wait) from `started`: the first
/// reply that does not come in time ends the round trip. (`Pipeline::query`
/// keeps reading after a timeout, one more full timeout per remaining
/// reply.) RESP3 pushes read meanwhile go to `push`. Restores the read
/// timeout to `socket_timeout`.
pub(super) fn receive(
    conn: &mut redis::Connection,
    count: usize,
    started: Instant,
    socket_timeout: Option<Duration>,
    blocking: Duration,
    push: &mut dyn FnMut(Value),
) -> redis::RedisResult<Vec<Value>> {
    let budget = socket_timeout.map(|t| t.saturating_add(blocking));
    let mut retimed = !blocking.is_zero();
    let mut values = Vec::with_capacity(count);
    while values.len() < count {
        if let Some(budget) = budget {
            let elapsed = started.elapsed();
            // Replies that come at once cost no extra system call.
            if elapsed > DEADLINE_SLACK {
                let left = budget.checked_sub(elapsed).filter(|d| !d.is_zero()).ok_or_else(|| {
                    redis::RedisError::from(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "no reply within the socket timeout",
                    ))
                })?;
                conn.set_read_timeout(Some(left))?;
                retimed = true;
            }
        }
        match conn.recv_response()? {
            Value::Push { kind, data } => push(Value::Push { kind, data }),
            value => values.push(value),
        }
    }
    if retimed {
        conn.set_read_timeout(socket_timeout)?;
    }
    Ok(values)
}
