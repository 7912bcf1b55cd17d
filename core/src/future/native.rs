//! One Redis server for the async API, over the `redis` crate's async
//! multiplexed connection.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;

use super::{AsyncBackend, BoxFuture};
use crate::backend::{Command, Reply};
use crate::config::Config;
use crate::error::Result;
use crate::native::{client, map_error, replies, to_cmd};

/// How many idle connections for blocking waits are kept.
const IDLE_WAITERS: usize = 8;

/// A Redis backend for the async API.
///
/// Every batch without a `BLPOP` is pipelined on one multiplexed connection
/// that all tasks share (no checkout, no lock held across a round trip). A
/// batch with a `BLPOP` (the stampede lock's wait) runs on a connection of
/// its own, so it never holds up the others. A connection that fails is
/// dropped and the next call connects anew, so the cache works again after
/// Redis comes back. Does not connect until the first command.
pub struct AsyncRedisBackend {
    client: redis::Client,
    shared: Mutex<Option<MultiplexedConnection>>,
    waiters: Mutex<Vec<MultiplexedConnection>>,
    socket_timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
}

impl AsyncRedisBackend {
    /// Creates a backend for the Redis server that `config` names.
    pub fn new(config: &Config) -> Result<Self> {
        let socket_timeout = (!config.socket_timeout.is_zero()).then_some(config.socket_timeout);
        let connect_timeout = if config.socket_connect_timeout.is_zero() {
            socket_timeout
        } else {
            Some(config.socket_connect_timeout)
        };
        Ok(AsyncRedisBackend {
            client: client(config)?,
            shared: Mutex::new(None),
            waiters: Mutex::new(Vec::new()),
            socket_timeout,
            connect_timeout,
        })
    }

    async fn connect(&self, response_timeout: Option<Duration>) -> Result<MultiplexedConnection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(self.connect_timeout)
            .set_response_timeout(response_timeout);
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| map_error(e, "cannot connect to Redis"))
    }

    async fn run(&self, commands: &[Command]) -> Result<Vec<Reply>> {
        let mut pipe = redis::pipe();
        let mut blocking = Duration::ZERO;
        for command in commands {
            pipe.add_command(to_cmd(command));
            if let Command::Blpop { timeout, .. } = command {
                blocking = blocking.saturating_add(*timeout);
            }
        }
        // Server error replies come back as values, each answering its own command.
        pipe.ignore_errors();
        if blocking.is_zero() {
            let cached = self
                .shared
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            let mut conn = match cached {
                Some(conn) => conn,
                None => {
                    let conn = self.connect(self.socket_timeout).await?;
                    *self.shared.lock().unwrap_or_else(PoisonError::into_inner) =
                        Some(conn.clone());
                    conn
                }
            };
            match pipe.query_async::<Vec<redis::Value>>(&mut conn).await {
                Ok(values) => replies(commands, values),
                Err(e) => {
                    // A late reply may still be in flight: never reuse this connection.
                    *self.shared.lock().unwrap_or_else(PoisonError::into_inner) = None;
                    Err(map_error(e, "Redis command failed"))
                }
            }
        } else {
            // The server legitimately stays silent while BLPOP waits.
            let timeout = self.socket_timeout.map(|t| t.saturating_add(blocking));
            let idle = self
                .waiters
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            let mut conn = match idle {
                Some(mut conn) => {
                    conn.set_response_timeout(timeout.unwrap_or(Duration::MAX));
                    conn
                }
                None => self.connect(timeout).await?,
            };
            let values = pipe
                .query_async::<Vec<redis::Value>>(&mut conn)
                .await
                .map_err(|e| map_error(e, "Redis command failed"))?;
            let mut idle = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < IDLE_WAITERS {
                idle.push(conn);
            }
            replies(commands, values)
        }
    }
}

impl AsyncBackend for AsyncRedisBackend {
    fn execute<'a>(&'a self, commands: &'a [Command]) -> BoxFuture<'a, Result<Vec<Reply>>> {
        Box::pin(async move {
            if commands.is_empty() {
                return Ok(Vec::new());
            }
            self.run(commands).await
        })
    }
}
