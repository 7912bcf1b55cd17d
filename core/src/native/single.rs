//! One Redis server over pooled synchronous connections.

use std::time::Duration;

use redis::{ConnectionAddr, ConnectionLike, IntoConnectionInfo, Value};

use super::pool::Pool;
use super::{map_error, replies, tls_certificates, to_cmd};
use crate::backend::{Backend, Command, Reply};
use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};

/// A Redis backend over synchronous connections, one per concurrent caller.
///
/// Each batch checks a connection out of the idle pool, sends the batch as
/// one pipeline (one round trip) and puts the connection back. No lock is
/// held across a round trip. A connection that saw an I/O error or a timeout
/// is dropped, never reused, because a late reply could still be in flight.
pub struct RedisBackend {
    client: redis::Client,
    idle: Pool<redis::Connection>,
    socket_timeout: Option<Duration>,
    connect_timeout: Duration,
}

impl RedisBackend {
    /// Creates a backend for the Redis that `config` names (URL, or host/port/db/...).
    ///
    /// Does not connect: the first command does, so a cache can be built while
    /// Redis is down and start working when it comes up.
    pub fn new(config: &Config) -> Result<Self> {
        let info = match &config.url {
            Some(url) => url.as_str().into_connection_info(),
            None => {
                let addr = if config.ssl {
                    ConnectionAddr::TcpTls {
                        host: config.host.clone(),
                        port: config.port,
                        insecure: false,
                        tls_params: None,
                    }
                } else {
                    ConnectionAddr::Tcp(config.host.clone(), config.port)
                };
                addr.into_connection_info().map(|info| {
                    let mut redis = info.redis_settings().clone().set_db(config.db);
                    if let Some(user) = &config.username {
                        redis = redis.set_username(user);
                    }
                    if let Some(password) = &config.password {
                        redis = redis.set_password(password);
                    }
                    info.set_redis_settings(redis)
                })
            }
        }
        .map_err(|e| Error::with_source(ErrorKind::InvalidArgument, "invalid Redis address", e))?;
        if !info.addr().is_supported() {
            return Err(Error::invalid(format!(
                "Redis address {} is not supported by this build (TLS needs the TLS feature)",
                info.addr()
            )));
        }
        let client = match tls_certificates(config) {
            Some(certs) => redis::Client::build_with_tls(info, certs),
            None => redis::Client::open(info),
        }
        .map_err(|e| Error::with_source(ErrorKind::InvalidArgument, "invalid Redis address or TLS certificate", e))?;
        Ok(RedisBackend {
            client,
            idle: Pool::new(),
            socket_timeout: (!config.socket_timeout.is_zero()).then_some(config.socket_timeout),
            connect_timeout: config.socket_connect_timeout,
        })
    }

    /// Returns a connection and whether it came from the idle list (and so may be stale).
    fn checkout(&self) -> Result<(redis::Connection, bool)> {
        if let Some(conn) = self.idle.take() {
            return Ok((conn, true));
        }
        let conn = if self.connect_timeout.is_zero() {
            self.client.get_connection()
        } else {
            self.client.get_connection_with_timeout(self.connect_timeout)
        }
        .map_err(|e| map_error(e, "cannot connect to Redis"))?;
        conn.set_write_timeout(self.socket_timeout).map_err(|e| map_error(e, "cannot set the write timeout"))?;
        conn.set_read_timeout(self.socket_timeout).map_err(|e| map_error(e, "cannot set the read timeout"))?;
        Ok((conn, false))
    }

    fn checkin(&self, conn: redis::Connection) {
        self.idle.put(conn);
    }
}

impl Backend for RedisBackend {
    fn execute(&self, commands: &[Command]) -> Result<Vec<Reply>> {
        if commands.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        let mut blocking = Duration::ZERO;
        for command in commands {
            pipe.add_command(to_cmd(command));
            if let Command::Blpop { timeout, .. } = command {
                blocking += *timeout;
            }
        }
        // A pooled connection may have died with a Redis restart: retry once on
        // a fresh one. Every command the cache sends is safe to repeat.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (mut conn, pooled) = self.checkout()?;
            match self.query(&mut conn, &pipe, blocking) {
                Ok(values) => {
                    self.checkin(conn);
                    return replies(commands, values);
                }
                Err(e) => {
                    // Only a server error reply leaves the connection in a known state.
                    if matches!(e.kind(), redis::ErrorKind::Server(_)) && conn.is_open() {
                        self.checkin(conn);
                    } else if pooled && attempt == 1 && !e.is_timeout() && (e.is_connection_dropped() || e.is_io_error()) {
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
    fn query(&self, conn: &mut redis::Connection, pipe: &redis::Pipeline, blocking: Duration) -> redis::RedisResult<Vec<Value>> {
        if !blocking.is_zero() {
            // The server legitimately stays silent while BLPOP waits.
            conn.set_read_timeout(self.socket_timeout.map(|t| t + blocking))?;
        }
        let values = pipe.query(conn)?;
        if !blocking.is_zero() {
            conn.set_read_timeout(self.socket_timeout)?;
        }
        Ok(values)
    }
}

