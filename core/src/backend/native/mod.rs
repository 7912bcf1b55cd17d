//! The native Redis backends (cargo feature `redis`), written once and used by
//! the Rust API, the C library (`ffi`), the wasmtime host and the Redis
//! provider component: one server ([`RedisBackend`], all that feature
//! `redis-single` builds) or a Redis Cluster ([`ClusterBackend`]).

mod client;
#[cfg(feature = "redis")]
mod cluster;
mod pool;
#[cfg(feature = "redis")]
mod sentinel;
mod server;
mod single;
#[cfg(feature = "redis")]
pub(crate) mod tracking;

use redis::Value;

use crate::backend::{Command, Reply};
use crate::error::{Error, ErrorKind, Result};

#[cfg(feature = "redis")]
pub use cluster::ClusterBackend;
#[cfg(feature = "tokio")]
pub(crate) use cluster::cluster_client;
#[cfg(feature = "tokio")]
pub(crate) use server::Server;
pub use single::RedisBackend;

/// Compare-and-delete: release a lock only if we still hold it (the reference's script).
const DEL_IF_EQ: &str =
    r#"if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end"#;

/// Returns the TLS roots configured for a private certificate authority, if any.
#[cfg(feature = "redis")]
fn tls_certificates(config: &crate::config::Config) -> Option<redis::TlsCertificates> {
    config.tls_ca_cert.as_ref().map(|pem| redis::TlsCertificates { client_tls: None, root_cert: Some(pem.clone()) })
}

pub(crate) fn replies(commands: &[Command], values: Vec<Value>) -> Result<Vec<Reply>> {
    let mut values = values.into_iter();
    let mut out = Vec::with_capacity(commands.len());
    let mut at = 0;
    while at < commands.len() {
        let value = values.next().ok_or_else(count_mismatch)?;
        match (&commands[at], value) {
            // A `GET` sent inside the next `MGET` (see [`merged`]): its reply
            // is the first element, the `MGET`'s the rest.
            (Command::Get { .. }, Value::Array(mut items)) if merged(commands, at) => {
                if items.is_empty() {
                    return Err(count_mismatch());
                }
                let rest = items.split_off(1);
                out.push(to_reply(items.remove(0))?);
                out.push(Reply::Array(rest.into_iter().map(to_reply).collect::<Result<_>>()?));
                at += 2;
                continue;
            }
            // BLPOP answers [key, element]; the cache only wants the element.
            (Command::Blpop { .. }, Value::Array(mut items)) if items.len() == 2 => {
                out.push(to_reply(items.remove(1))?)
            }
            (_, value) => out.push(to_reply(value)?),
        }
        at += 1;
    }
    if values.next().is_some() {
        return Err(count_mismatch());
    }
    Ok(out)
}

fn count_mismatch() -> Error {
    Error::new(ErrorKind::Other, "Redis returned a reply count that does not match the batch")
}

/// Whether `commands[at]`, a `GET`, is sent as the first key of the `MGET`
/// that follows it: a hit's entry and tag reads become one command (one
/// dispatch on the server instead of two, one reply to parse). One `MGET`
/// reads every key at one instant, which is all the snapshot check needs
/// (the entry read while the tags held the values it was hashed under; see
/// `ops::snapshot`). Only on one server: a cluster's keys live in
/// different slots.
fn merged(commands: &[Command], at: usize) -> bool {
    matches!((commands.get(at), commands.get(at + 1)), (Some(Command::Get { .. }), Some(Command::Mget { .. })))
}

/// Hands each command of the batch to `each` as the redis crate sends it (a
/// `GET` followed by an `MGET` as one `MGET`: see [`merged`]); returns how
/// long its `BLPOP`s may keep the server silent (the read timeout must
/// stretch by that much).
fn wire(commands: &[Command], each: &mut dyn FnMut(redis::Cmd)) -> std::time::Duration {
    let mut blocking = std::time::Duration::ZERO;
    let mut at = 0;
    while at < commands.len() {
        if let (true, Command::Get { key }, Some(Command::Mget { keys })) =
            (merged(commands, at), &commands[at], commands.get(at + 1))
        {
            let mut c = sized("MGET", 1 + keys.len(), key.len() + keys_len(keys));
            c.arg(key).arg(keys);
            each(c);
            at += 2;
            continue;
        }
        each(to_cmd(&commands[at]));
        if let Command::Blpop { timeout, .. } = &commands[at] {
            blocking = blocking.saturating_add(*timeout);
        }
        at += 1;
    }
    blocking
}

/// The batch as one pipeline (see [`wire`]), and how long its `BLPOP`s may
/// keep the server silent.
#[cfg(feature = "tokio")]
pub(crate) fn pipeline(commands: &[Command]) -> (redis::Pipeline, std::time::Duration) {
    let mut pipe = redis::Pipeline::with_capacity(commands.len());
    let blocking = wire(commands, &mut |c| {
        pipe.add_command(c);
    });
    (pipe, blocking)
}

/// The batch encoded for the wire in one buffer (see [`wire`]), the number
/// of replies it owes, and how long its `BLPOP`s may keep the server silent.
/// The blocking connection sends these bytes as they are: no `Pipeline` to
/// fill and pack on every round trip.
pub(crate) fn packed(commands: &[Command]) -> (Vec<u8>, usize, std::time::Duration) {
    let mut bytes = Vec::new();
    let mut count = 0;
    let blocking = wire(commands, &mut |c| {
        c.write_packed_command(&mut bytes);
        count += 1;
    });
    (bytes, count, blocking)
}

/// A command named `name` whose buffers already hold `args` more arguments
/// of `bytes` bytes in all (the crate grows them one argument at a time).
fn sized(name: &str, args: usize, bytes: usize) -> redis::Cmd {
    let mut c = redis::Cmd::with_capacity(1 + args, name.len() + bytes);
    c.arg(name);
    c
}

/// The bytes of `keys` together.
fn keys_len(keys: &[String]) -> usize {
    keys.iter().map(String::len).sum()
}

/// One command as the redis crate sends it.
pub(crate) fn to_cmd(command: &Command) -> redis::Cmd {
    match command {
        Command::Get { key } => {
            let mut c = sized("GET", 1, key.len());
            c.arg(key);
            c
        }
        Command::Mget { keys } => {
            let mut c = sized("MGET", keys.len(), keys_len(keys));
            c.arg(keys);
            c
        }
        Command::Set { key, value, expire_ms, nx } => {
            // "PX" and up to 20 digits, "NX".
            let mut c = sized("SET", 5, key.len() + value.len() + 24);
            c.arg(key).arg(value.as_slice());
            if let Some(ms) = expire_ms {
                c.arg("PX").arg(*ms);
            }
            if *nx {
                c.arg("NX");
            }
            c
        }
        Command::Del { keys } => {
            let mut c = sized("DEL", keys.len(), keys_len(keys));
            c.arg(keys);
            c
        }
        Command::DelIfEq { key, value } => {
            let mut c = sized("EVAL", 4, DEL_IF_EQ.len() + 1 + key.len() + value.len());
            c.arg(DEL_IF_EQ).arg(1).arg(key).arg(value.as_slice());
            c
        }
        Command::Rpush { key, value } => {
            let mut c = sized("RPUSH", 2, key.len() + value.len());
            c.arg(key).arg(value.as_slice());
            c
        }
        Command::Pexpire { key, ms } => {
            let mut c = sized("PEXPIRE", 2, key.len() + 20);
            c.arg(key).arg(*ms);
            c
        }
        Command::Pttl { key } => {
            let mut c = sized("PTTL", 1, key.len());
            c.arg(key);
            c
        }
        Command::Blpop { key, timeout } => {
            // Redis takes the timeout in seconds, fractions allowed; 0 would mean "forever".
            let secs = timeout.as_secs_f64().max(0.001);
            let mut c = sized("BLPOP", 2, key.len() + 24);
            c.arg(key).arg(format!("{secs:.3}"));
            c
        }
    }
}

pub(crate) fn to_reply(value: Value) -> Result<Reply> {
    Ok(match value {
        Value::Nil => Reply::Nil,
        Value::Okay => Reply::Ok,
        Value::Int(i) => Reply::Int(i),
        Value::BulkString(b) => Reply::Bytes(b),
        Value::SimpleString(s) if s == "OK" => Reply::Ok,
        Value::SimpleString(s) => Reply::Bytes(s.into_bytes()),
        Value::Array(items) => Reply::Array(items.into_iter().map(to_reply).collect::<Result<_>>()?),
        Value::ServerError(e) => return Err(Error::new(ErrorKind::Backend, e.to_string())),
        other => {
            return Err(Error::new(ErrorKind::Other, format!("unexpected Redis reply: {other:?}")));
        }
    })
}

pub(crate) fn map_error(e: redis::RedisError, context: &str) -> Error {
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
