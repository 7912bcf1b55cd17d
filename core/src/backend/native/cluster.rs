//! A Redis Cluster, through the `redis` crate's cluster client.
//!
//! The key layout is the single-node one, unchanged (so it stays
//! byte-compatible): an entry's tags and its storage key hash to different
//! slots, and a namespace's entries spread over every master. A cluster
//! pipeline refuses `MGET` and multi-key `DEL` across slots, so they are sent
//! as one `GET`/`DEL` per key in the same pipeline, each routed to the node
//! owning its slot; the client writes to every node involved before reading
//! any reply, so an operation still costs one round trip of wall time, spread
//! over up to (tags + 2) nodes.

use std::time::Duration;

use redis::Value;
use redis::cluster::{ClusterClient, ClusterConnection};

use super::pool::Pool;
use super::{map_error, tls_certificates, to_cmd, to_reply};
use crate::backend::{Backend, Command, Reply};
use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};

/// A Redis Cluster backend: seed nodes in, commands routed by slot.
pub struct ClusterBackend {
    client: ClusterClient,
    idle: Pool<ClusterConnection>,
    socket_timeout: Option<Duration>,
}

impl ClusterBackend {
    /// Creates a backend for the cluster whose seed nodes `config.cluster_nodes`
    /// lists (`redis://host:port` URLs; `rediss://` for TLS, with
    /// `tls_ca_cert` for a private authority; credentials from the URLs or
    /// `username`/`password`).
    ///
    /// Does not connect: the first command does.
    pub fn new(config: &Config) -> Result<Self> {
        let client = cluster_client(config)?;
        Ok(ClusterBackend {
            client,
            idle: Pool::new(),
            socket_timeout: (!config.socket_timeout.is_zero()).then_some(config.socket_timeout),
        })
    }

    fn checkout(&self) -> Result<(ClusterConnection, bool)> {
        if let Some(conn) = self.idle.take() {
            return Ok((conn, true));
        }
        let conn = self.client.get_connection().map_err(|e| map_error(e, "cannot connect to the Redis Cluster"))?;
        conn.set_write_timeout(self.socket_timeout).map_err(|e| map_error(e, "cannot set the write timeout"))?;
        conn.set_read_timeout(self.socket_timeout).map_err(|e| map_error(e, "cannot set the read timeout"))?;
        Ok((conn, false))
    }
}

/// How the replies of the single-key commands a command became fold back into one.
enum Fold {
    /// One command, one reply.
    One,
    /// `MGET` of n keys: n `GET` replies into an array.
    Array(usize),
    /// `DEL` of n keys: n counts into their sum.
    Sum(usize),
}

impl Backend for ClusterBackend {
    fn execute(&self, commands: &[Command]) -> Result<Vec<Reply>> {
        if commands.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::cluster::cluster_pipe();
        let mut folds = Vec::with_capacity(commands.len());
        let mut blocking = Duration::ZERO;
        for command in commands {
            match command {
                Command::Mget { keys } => {
                    for key in keys {
                        pipe.add_command(redis::cmd("GET").arg(key).to_owned());
                    }
                    folds.push(Fold::Array(keys.len()));
                }
                Command::Del { keys } => {
                    for key in keys {
                        pipe.add_command(redis::cmd("DEL").arg(key).to_owned());
                    }
                    folds.push(Fold::Sum(keys.len()));
                }
                other => {
                    if let Command::Blpop { timeout, .. } = other {
                        blocking = blocking.saturating_add(*timeout);
                    }
                    pipe.add_command(to_cmd(other));
                    folds.push(Fold::One);
                }
            }
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (mut conn, pooled) = self.checkout()?;
            if !blocking.is_zero() {
                // The server legitimately stays silent while BLPOP waits.
                conn.set_read_timeout(self.socket_timeout.map(|t| t.saturating_add(blocking)))
                    .map_err(|e| map_error(e, "cannot set the read timeout"))?;
            }
            let result: redis::RedisResult<Vec<Value>> = pipe.query(&mut conn);
            match result {
                Ok(values) => {
                    if !blocking.is_zero() {
                        conn.set_read_timeout(self.socket_timeout)
                            .map_err(|e| map_error(e, "cannot set the read timeout"))?;
                    }
                    self.idle.put(conn);
                    return fold(commands, &folds, values);
                }
                Err(e) => {
                    if matches!(e.kind(), redis::ErrorKind::Server(_)) && !e.is_cluster_error() {
                        self.idle.put(conn);
                    } else if pooled && attempt == 1 && !e.is_timeout() {
                        // A pooled connection may predate a failover or a restart.
                        self.idle.clear();
                        continue;
                    }
                    return Err(map_error(e, "Redis Cluster command failed"));
                }
            }
        }
    }
}

fn fold(commands: &[Command], folds: &[Fold], values: Vec<Value>) -> Result<Vec<Reply>> {
    let expected: usize = folds
        .iter()
        .map(|f| match f {
            Fold::One => 1,
            Fold::Array(n) | Fold::Sum(n) => *n,
        })
        .sum();
    if values.len() != expected {
        return Err(Error::new(ErrorKind::Other, "the cluster returned a reply count that does not match the batch"));
    }
    let mut values = values.into_iter();
    let mut out = Vec::with_capacity(commands.len());
    for (command, f) in commands.iter().zip(folds) {
        out.push(match f {
            Fold::One => match (command, values.next()) {
                // BLPOP answers [key, element]; the cache only wants the element.
                (Command::Blpop { .. }, Some(Value::Array(mut items))) if items.len() == 2 => {
                    to_reply(items.remove(1))?
                }
                (_, Some(v)) => to_reply(v)?,
                (_, None) => Reply::Nil,
            },
            Fold::Array(n) => Reply::Array(values.by_ref().take(*n).map(to_reply).collect::<Result<_>>()?),
            Fold::Sum(n) => {
                let mut sum = 0;
                for v in values.by_ref().take(*n) {
                    if let Reply::Int(i) = to_reply(v)? {
                        sum += i;
                    }
                }
                Reply::Int(sum)
            }
        });
    }
    Ok(out)
}

/// The client of the Redis Cluster `config` names, for the sync and the
/// async backends. Does not connect.
pub(crate) fn cluster_client(config: &Config) -> Result<ClusterClient> {
    if config.cluster_nodes.is_empty() {
        return Err(Error::invalid("a cluster needs at least one seed node"));
    }
    let mut builder = ClusterClient::builder(config.cluster_nodes.iter().map(String::as_str))
        // Few retries: while a master fails over, the cache must bypass
        // within its timeouts rather than wait for the new topology.
        .retries(1);
    if !config.socket_connect_timeout.is_zero() {
        builder = builder.connection_timeout(config.socket_connect_timeout);
    }
    if !config.socket_timeout.is_zero() {
        builder = builder.response_timeout(config.socket_timeout);
    }
    if let Some(user) = &config.username {
        builder = builder.username(user);
    }
    if let Some(password) = &config.password {
        builder = builder.password(password);
    }
    if let Some(certs) = tls_certificates(config) {
        builder = builder.certs(certs);
    }
    builder.build().map_err(|e| Error::with_source(ErrorKind::InvalidArgument, "invalid Redis Cluster seed nodes", e))
}
