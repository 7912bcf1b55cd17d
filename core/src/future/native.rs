//! One Redis server for the async API, over the `redis` crate's async
//! multiplexed connection.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;

use super::{AsyncBackend, BoxFuture};
use crate::backend::native::{Server, map_error, pipeline, replies, to_cmd};
use crate::backend::{Command, Reply};
use crate::config::Config;
use crate::error::Result;

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
    server: Arc<Server>,
    /// The shared connection, with the generation of the master it goes to
    /// (one made before Sentinel moved the master is never used again).
    shared: Mutex<Option<(u64, MultiplexedConnection)>>,
    waiters: Mutex<Vec<(u64, MultiplexedConnection)>>,
    socket_timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
}

impl AsyncRedisBackend {
    /// Creates a backend for the Redis server that `config` names.
    pub fn new(config: &Config) -> Result<Self> {
        let socket_timeout = (!config.socket_timeout.is_zero()).then_some(config.socket_timeout);
        let connect_timeout =
            if config.socket_connect_timeout.is_zero() { socket_timeout } else { Some(config.socket_connect_timeout) };
        Ok(AsyncRedisBackend {
            server: Arc::new(Server::new(config, redis::ProtocolVersion::RESP2)?),
            shared: Mutex::new(None),
            waiters: Mutex::new(Vec::new()),
            socket_timeout,
            connect_timeout,
        })
    }

    async fn connect(&self, response_timeout: Option<Duration>) -> Result<(u64, MultiplexedConnection)> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(self.connect_timeout)
            .set_response_timeout(response_timeout);
        let (generation, client) = match self.server.as_ref() {
            Server::Fixed(client) => (0, client.clone()),
            // Looking up a Sentinel master blocks (bounded by the timeouts):
            // off the async threads.
            _ => {
                let server = Arc::clone(&self.server);
                tokio::task::spawn_blocking(move || server.client())
                    .await
                    .map_err(|e| crate::error::Error::new(crate::ErrorKind::Other, e.to_string()))??
            }
        };
        let conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| map_error(e, "cannot connect to Redis"))?;
        Ok((generation, conn))
    }

    async fn run(&self, commands: &[Command]) -> Result<Vec<Reply>> {
        let (mut pipe, blocking) = pipeline(commands);
        // Server error replies come back as values, each answering its own command.
        pipe.ignore_errors();
        let generation = self.server.generation();
        if blocking.is_zero() {
            let cached = self.shared.lock().unwrap_or_else(PoisonError::into_inner).clone();
            let mut conn = match cached {
                Some((made, conn)) if made == generation => conn,
                _ => {
                    let (made, conn) = self.connect(self.socket_timeout).await?;
                    *self.shared.lock().unwrap_or_else(PoisonError::into_inner) = Some((made, conn.clone()));
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
            let idle = {
                let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
                waiters.retain(|(made, _)| *made == generation);
                waiters.pop()
            };
            let (made, mut conn) = match idle {
                Some((made, mut conn)) => {
                    conn.set_response_timeout(timeout.unwrap_or(Duration::MAX));
                    (made, conn)
                }
                None => self.connect(timeout).await?,
            };
            let values = pipe
                .query_async::<Vec<redis::Value>>(&mut conn)
                .await
                .map_err(|e| map_error(e, "Redis command failed"))?;
            let mut idle = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < IDLE_WAITERS && made == self.server.generation() {
                idle.push((made, conn));
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

/// A Redis Cluster backend for the async API, over the `redis` crate's async
/// cluster connection (multiplexed, one per node, reconnecting by itself).
///
/// An async cluster pipeline cannot cross hash slots, so a batch runs
/// command by command, in order (the snapshot check needs the entry command
/// to finish before the tags are read); the keys of one `MGET` or `DEL` are
/// sent at once. A batch with a `BLPOP` runs on a connection of its own.
pub struct AsyncClusterBackend {
    client: redis::cluster::ClusterClient,
    shared: tokio::sync::OnceCell<redis::cluster_async::ClusterConnection>,
}

impl AsyncClusterBackend {
    /// Creates a backend for the cluster `config.cluster_nodes` seeds.
    pub fn new(config: &Config) -> Result<Self> {
        Ok(AsyncClusterBackend {
            client: crate::backend::native::cluster_client(config)?,
            shared: tokio::sync::OnceCell::new(),
        })
    }

    async fn connection(&self, blocking: bool) -> Result<redis::cluster_async::ClusterConnection> {
        let connect = || async {
            self.client.get_async_connection().await.map_err(|e| map_error(e, "cannot connect to the Redis Cluster"))
        };
        if blocking {
            // The response timeout is the cluster's; a BLPOP step is at most one second.
            return connect().await;
        }
        self.shared.get_or_try_init(connect).await.cloned()
    }

    async fn run(&self, commands: &[Command]) -> Result<Vec<Reply>> {
        let blocking = commands.iter().any(|c| matches!(c, Command::Blpop { .. }));
        let conn = self.connection(blocking).await?;
        let mut out = Vec::with_capacity(commands.len());
        for command in commands {
            let keys = match command {
                Command::Mget { keys } | Command::Del { keys } => keys,
                one => {
                    let value = query(conn.clone(), to_cmd(one)).await?;
                    out.extend(replies(std::slice::from_ref(one), vec![value])?);
                    continue;
                }
            };
            let name = if matches!(command, Command::Mget { .. }) { "GET" } else { "DEL" };
            let sent: Vec<_> =
                keys.iter().map(|k| tokio::spawn(query(conn.clone(), redis::cmd(name).arg(k).to_owned()))).collect();
            let mut values = Vec::with_capacity(sent.len());
            for handle in sent {
                let value =
                    handle.await.map_err(|e| crate::error::Error::new(crate::ErrorKind::Other, e.to_string()))??;
                values.push(crate::backend::native::to_reply(value)?);
            }
            out.push(match command {
                Command::Mget { .. } => Reply::Array(values),
                _ => Reply::Int(values.iter().map(crate::ops::step::int).sum()),
            });
        }
        Ok(out)
    }
}

async fn query(mut conn: redis::cluster_async::ClusterConnection, cmd: redis::Cmd) -> Result<redis::Value> {
    let value =
        cmd.query_async::<redis::Value>(&mut conn).await.map_err(|e| map_error(e, "Redis Cluster command failed"))?;
    Ok(value)
}

impl AsyncBackend for AsyncClusterBackend {
    fn execute<'a>(&'a self, commands: &'a [Command]) -> BoxFuture<'a, Result<Vec<Reply>>> {
        Box::pin(async move {
            if commands.is_empty() {
                return Ok(Vec::new());
            }
            self.run(commands).await
        })
    }
}
