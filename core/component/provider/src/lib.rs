//! rtc's Redis provider: a WASI Preview 2 component that exports the
//! `rtc:cache/redis` and `rtc:cache/hooks` interfaces (the world `provider`
//! in `wit/world.wit`) and imports WASI only.
//!
//! `wac plug` joins it to rtc's cache component, giving
//! `rtc_standalone.wasm`: a cache that any WASI 0.2 host with network access
//! runs (the `wasmtime` CLI, `wasmtime serve`), with no rtc code in the host.
//!
//! It has no Redis client of its own: `redis.execute` runs on core's
//! [`RedisBackend`], the native backend's code for one server (one pipeline
//! per batch, so one round trip; `BLPOP` with its fractional timeout;
//! socket and connect timeouts; a connection dropped after an I/O error or a
//! timeout, a retry on a fresh one; the same error kinds), built here on the
//! redis crate's sync connection, whose `TcpStream` on `wasm32-wasip2` is
//! `wasi:sockets` TCP.
//!
//! Configuration comes from the environment (`wasi:cli/environment`), read
//! once, at the first batch, with the names and meanings of the `rtc`
//! command:
//! - `RTC_REDIS_URL`: where Redis is, `redis://[user:password@]host:port[/db]`
//!   (required; TLS, `rediss://`, is not available in this build);
//! - `RTC_SOCKET_TIMEOUT`, `RTC_CONNECT_TIMEOUT`: seconds, fractions allowed
//!   (default 5 each; 0 leaves a round trip unbounded);
//! - `RTC_LOG`: `info`, `debug` or `trace` writes one line per get-or-compute
//!   report to stderr; anything else (or nothing) drops the reports.
//!
//! A setting that cannot be used makes every batch fail with
//! `invalid-argument` and a message naming it: the cache then bypasses, and
//! says why, rather than guess.
//!
//! Build it (only) for `wasm32-wasip2`:
//!
//! ```text
//! cargo build --profile component --locked --target wasm32-wasip2 -p rtc-provider
//! # -> target/wasm32-wasip2/component/rtc_provider.wasm
//! ```
#![deny(missing_docs)]

use std::sync::OnceLock;

use rtc_core::adapter::{WitErrorCase, contract, environment};
use rtc_core::{Backend, Command, Error, RedisBackend, Reply};

#[allow(missing_docs)]
mod bindings {
    wit_bindgen::generate!({
        // rtc's WIT package, then this crate's world over it.
        path: ["../../../wit", "wit"],
        world: "rtc:provider/provider",
    });
}

use bindings::exports::rtc::cache::{hooks, redis, types};

/// The component: the root of the exported interfaces.
struct Provider;

bindings::export!(Provider with_types_in bindings);

impl redis::Guest for Provider {
    fn execute(commands: Vec<redis::Command>) -> Result<Vec<redis::Reply>, types::Error> {
        let backend = backend()?;
        let commands =
            commands.into_iter().map(from_wit_command).collect::<Result<Vec<_>, _>>().map_err(to_wit_error)?;
        let replies = backend.execute(&commands).map_err(to_wit_error)?;
        replies.into_iter().map(to_wit_reply).collect::<Result<_, _>>().map_err(to_wit_error)
    }
}

impl hooks::Guest for Provider {
    fn report(event: hooks::HookEvent) {
        if !logging() {
            return;
        }
        let info = &event.info;
        let error = info.error.as_ref().map(|e| format!(" error={e:?}")).unwrap_or_default();
        eprintln!(
            "rtc: get-or-compute key={:?} tags={:?} hit={} elapsed_ns={} computed_ns={} lock_waiting_ms={} size={}{error}",
            event.key,
            event.tags,
            info.hit,
            info.elapsed_ns,
            info.decorated_elapsed_ns,
            info.lock_waiting_ms,
            info.serialized_size,
        );
    }
}

/// Returns the backend the environment names, made at the first batch
/// (an instance is one component's lifetime: the environment does not
/// change under it), or the error that names the unusable setting.
fn backend() -> Result<&'static RedisBackend, types::Error> {
    static BACKEND: OnceLock<Result<RedisBackend, types::Error>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            let config = environment::config(|name| std::env::var(name).ok()).map_err(to_wit_error)?;
            RedisBackend::new(&config).map_err(to_wit_error)
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Whether `RTC_LOG` asks for the reports.
fn logging() -> bool {
    static LOGGING: OnceLock<bool> = OnceLock::new();
    *LOGGING.get_or_init(|| {
        std::env::var("RTC_LOG")
            .is_ok_and(|level| ["info", "debug", "trace"].contains(&level.to_ascii_lowercase().as_str()))
    })
}

/// Converts one command of the batch to core's, checking the WIT contract.
fn from_wit_command(command: redis::Command) -> Result<Command, Error> {
    Ok(match command {
        redis::Command::Get(key) => Command::Get { key },
        redis::Command::Mget(keys) => Command::Mget { keys: contract::keys("MGET", keys)? },
        redis::Command::Set(a) => {
            Command::Set { key: a.key, value: a.value, expire_ms: contract::expire(a.expire_ms)?, nx: a.nx }
        }
        redis::Command::Del(keys) => Command::Del { keys: contract::keys("DEL", keys)? },
        redis::Command::DelIfEq(a) => Command::DelIfEq { key: a.key, value: a.value },
        redis::Command::Rpush(a) => Command::Rpush { key: a.key, value: a.value },
        redis::Command::Pexpire(a) => Command::Pexpire { key: a.key, ms: contract::millis("PEXPIRE", a.ms)? },
        redis::Command::Pttl(key) => Command::Pttl { key },
        redis::Command::Blpop(a) => Command::Blpop { key: a.key, timeout: contract::blpop_timeout(a.timeout_ms)? },
    })
}

/// Converts one reply to WIT; an `MGET` array may only hold bytes and nils.
fn to_wit_reply(reply: Reply) -> Result<redis::Reply, Error> {
    Ok(match reply {
        Reply::Nil => redis::Reply::Nil,
        Reply::Ok => redis::Reply::Ok,
        Reply::Int(i) => redis::Reply::Int(i),
        Reply::Bytes(b) => redis::Reply::Bytes(b),
        Reply::Array(items) => {
            redis::Reply::Array(items.into_iter().map(contract::array_item).collect::<Result<_, _>>()?)
        }
    })
}

/// Builds the WIT error; which case and message is decided in core.
fn to_wit_error(e: Error) -> types::Error {
    match e.to_wit() {
        (WitErrorCase::BackendUnavailable, m) => types::Error::BackendUnavailable(m),
        (WitErrorCase::Timeout, m) => types::Error::Timeout(m),
        (WitErrorCase::InvalidArgument, m) => types::Error::InvalidArgument(m),
        (WitErrorCase::Backend, m) => types::Error::Backend(m),
        (WitErrorCase::Other, m) => types::Error::Other(m),
    }
}
