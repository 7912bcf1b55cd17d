//! The native Redis backend (cargo feature `redis`), written once and used by
//! the Rust API, the C library (`ffi`) and the wasmtime host.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use redis::{ConnectionAddr, ConnectionLike, IntoConnectionInfo, Value};

use crate::backend::{Backend, Command, Reply};
use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};

/// Compare-and-delete: release a lock only if we still hold it (the reference's script).
const DEL_IF_EQ: &str = r#"if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end"#;

/// How many idle connections each shard keeps for reuse.
const MAX_IDLE_PER_SHARD: usize = 8;
/// Idle connections are sharded by thread, so threads rarely contend on one lock.
const SHARDS: usize = 16;

thread_local! {
    /// This thread's shard, assigned round-robin on first use.
    static SHARD: usize = {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % SHARDS
    };
}

/// A Redis backend over synchronous connections, one per concurrent caller.
///
/// Each batch checks a connection out of an idle list (sharded by thread), sends the batch
/// as one pipeline (one round trip) and puts the connection back. No lock is
/// held across a round trip. A connection that saw an I/O error or a timeout
/// is dropped, never reused, because a late reply could still be in flight.
///
/// The idle list is hand-written rather than r2d2: r2d2 waits out its whole
/// checkout timeout when Redis refuses connections, while a cache must bypass
/// at once when Redis is down.
pub struct RedisBackend {
    client: redis::Client,
    idle: [Mutex<Vec<redis::Connection>>; SHARDS],
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
        let client = redis::Client::open(info)
            .map_err(|e| Error::with_source(ErrorKind::InvalidArgument, "invalid Redis address", e))?;
        Ok(RedisBackend {
            client,
            idle: std::array::from_fn(|_| Mutex::new(Vec::new())),
            socket_timeout: (!config.socket_timeout.is_zero()).then_some(config.socket_timeout),
            connect_timeout: config.socket_connect_timeout,
        })
    }

    /// Returns a connection and whether it came from the idle list (and so may be stale).
    fn checkout(&self) -> Result<(redis::Connection, bool)> {
        let idle = self.shard().lock().unwrap_or_else(PoisonError::into_inner).pop();
        if let Some(conn) = idle {
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

    fn shard(&self) -> &Mutex<Vec<redis::Connection>> {
        &self.idle[SHARD.with(|s| *s)]
    }

    /// Forgets every idle connection: after one was found dropped (Redis
    /// restarted), the others are most likely dead too.
    fn flush_idle(&self) {
        for shard in &self.idle {
            shard.lock().unwrap_or_else(PoisonError::into_inner).clear();
        }
    }

    fn checkin(&self, conn: redis::Connection) {
        let mut idle = self.shard().lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE_PER_SHARD {
            idle.push(conn);
        }
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
                        self.flush_idle();
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

fn replies(commands: &[Command], values: Vec<Value>) -> Result<Vec<Reply>> {
    if values.len() != commands.len() {
        return Err(Error::new(ErrorKind::Other, "Redis returned a reply count that does not match the batch"));
    }
    commands
        .iter()
        .zip(values)
        .map(|(command, value)| match (command, value) {
            // BLPOP answers [key, element]; the cache only wants the element.
            (Command::Blpop { .. }, Value::Array(mut items)) if items.len() == 2 => to_reply(items.remove(1)),
            (_, value) => to_reply(value),
        })
        .collect()
}

fn to_cmd(command: &Command) -> redis::Cmd {
    match command {
        Command::Get { key } => redis::cmd("GET").arg(key).to_owned(),
        Command::Mget { keys } => redis::cmd("MGET").arg(keys).to_owned(),
        Command::Set { key, value, expire_ms, nx } => {
            let mut c = redis::cmd("SET");
            c.arg(key).arg(value.as_slice());
            if let Some(ms) = expire_ms {
                c.arg("PX").arg(*ms);
            }
            if *nx {
                c.arg("NX");
            }
            c
        }
        Command::Del { keys } => redis::cmd("DEL").arg(keys).to_owned(),
        Command::DelIfEq { key, value } => {
            redis::cmd("EVAL").arg(DEL_IF_EQ).arg(1).arg(key).arg(value.as_slice()).to_owned()
        }
        Command::Rpush { key, value } => redis::cmd("RPUSH").arg(key).arg(value.as_slice()).to_owned(),
        Command::Pexpire { key, ms } => redis::cmd("PEXPIRE").arg(key).arg(*ms).to_owned(),
        Command::Blpop { key, timeout } => {
            // Redis takes the timeout in seconds, fractions allowed; 0 would mean "forever".
            let secs = timeout.as_secs_f64().max(0.001);
            redis::cmd("BLPOP").arg(key).arg(format!("{secs:.3}")).to_owned()
        }
    }
}

fn to_reply(value: Value) -> Result<Reply> {
    Ok(match value {
        Value::Nil => Reply::Nil,
        Value::Okay => Reply::Ok,
        Value::Int(i) => Reply::Int(i),
        Value::BulkString(b) => Reply::Bytes(b),
        Value::SimpleString(s) if s == "OK" => Reply::Ok,
        Value::SimpleString(s) => Reply::Bytes(s.into_bytes()),
        Value::Array(items) => Reply::Array(items.into_iter().map(to_reply).collect::<Result<_>>()?),
        Value::ServerError(e) => return Err(Error::new(ErrorKind::Backend, e.to_string())),
        other => return Err(Error::new(ErrorKind::Other, format!("unexpected Redis reply: {other:?}"))),
    })
}

fn map_error(e: redis::RedisError, context: &str) -> Error {
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else if e.is_connection_refusal() || e.is_connection_dropped() || e.is_io_error() {
        ErrorKind::BackendUnavailable
    } else {
        match e.kind() {
            redis::ErrorKind::InvalidClientConfig => ErrorKind::InvalidArgument,
            redis::ErrorKind::AuthenticationFailed | redis::ErrorKind::Server(_) => ErrorKind::Backend,
            _ => ErrorKind::Other,
        }
    };
    Error::with_source(kind, context, e)
}
