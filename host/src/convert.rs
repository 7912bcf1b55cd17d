//! Conversions between core's types and the generated WIT types.
//!
//! Everything that comes from the guest is validated here: a value the WIT
//! contract forbids becomes an `invalid-argument` error, never a panic.

use std::time::Duration;

use rtc_core::adapter::{WitErrorCase, contract};
use rtc_core::{CacheInfo, Command, Config, Error, FunctionId, Lifetime, LockStats, Reply};

use crate::bindings::exports::rtc::cache::cache as wit;
use crate::bindings::rtc::cache::{hooks, redis, types};

/// Converts one guest command to core's, checking the WIT contract (core's
/// [`contract`] rules).
pub(crate) fn from_wit_command(command: redis::Command) -> Result<Command, Error> {
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

/// Converts one backend reply to WIT; `MGET` arrays may only hold bytes and nils.
pub(crate) fn to_wit_reply(reply: Reply) -> Result<redis::Reply, Error> {
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

/// Converts a core error to the WIT variant; which case and message is
/// decided in core ([`Error::to_wit`]).
pub(crate) fn to_wit_error(e: &Error) -> types::Error {
    match e.to_wit() {
        (WitErrorCase::BackendUnavailable, m) => types::Error::BackendUnavailable(m),
        (WitErrorCase::Timeout, m) => types::Error::Timeout(m),
        (WitErrorCase::InvalidArgument, m) => types::Error::InvalidArgument(m),
        (WitErrorCase::Backend, m) => types::Error::Backend(m),
        (WitErrorCase::Other, m) => types::Error::Other(m),
    }
}

/// Converts a WIT error to core's.
pub(crate) fn from_wit_error(e: types::Error) -> Error {
    let (case, m) = match e {
        types::Error::BackendUnavailable(m) => (WitErrorCase::BackendUnavailable, m),
        types::Error::Timeout(m) => (WitErrorCase::Timeout, m),
        types::Error::InvalidArgument(m) => (WitErrorCase::InvalidArgument, m),
        types::Error::Backend(m) => (WitErrorCase::Backend, m),
        types::Error::Other(m) => (WitErrorCase::Other, m),
    };
    Error::from_wit(case, m)
}

/// Converts a reported `cache-info` to core's [`CacheInfo`].
pub(crate) fn from_wit_info(info: hooks::CacheInfo) -> CacheInfo {
    // Field by field: `CacheInfo` is non-exhaustive, so it can grow without breaking this.
    let mut out = CacheInfo::default();
    out.function = FunctionId::new(info.function.module, info.function.type_name, info.function.function);
    out.arguments = info.arguments;
    out.method = info.method;
    out.hit = info.hit;
    out.elapsed = Duration::from_nanos(info.elapsed_ns);
    out.decorated_elapsed = Duration::from_nanos(info.decorated_elapsed_ns);
    out.lock_waiting_ms = info.lock_waiting_ms;
    out.lock_full_hit = info.lock_full_hit;
    out.lock_full_miss = info.lock_full_miss;
    out.serialized_size = usize::try_from(info.serialized_size).unwrap_or(usize::MAX);
    out.error = info.error.map(from_wit_error);
    out
}

/// Converts core's configuration to the WIT record. Connection settings stay
/// on the host (they configure the backend serving `redis.execute`).
pub(crate) fn to_wit_config(config: &Config, in_local_memory: bool) -> wit::Config {
    wit::Config {
        namespace: config.namespace.clone(),
        default_lifetime: config.default_lifetime,
        lifetime_for_tags: config.lifetime_for_tags,
        disabled: config.disabled,
        in_local_memory,
        max_value_size: Some(u64::try_from(config.max_value_size).unwrap_or(u64::MAX)),
    }
}

pub(crate) fn to_wit_lifetime(lifetime: Lifetime) -> wit::Lifetime {
    match lifetime {
        Lifetime::Default => wit::Lifetime::Default,
        Lifetime::Forever => wit::Lifetime::Forever,
        Lifetime::Seconds(s) => wit::Lifetime::Seconds(s),
    }
}

pub(crate) fn from_wit_stats(stats: wit::LockStats) -> LockStats {
    LockStats { waiting_ms: stats.waiting_ms, full_hit: stats.full_hit, full_miss: stats.full_miss }
}

pub(crate) fn to_wit_function(function: &FunctionId) -> types::FunctionId {
    types::FunctionId {
        module: function.module.clone(),
        type_name: function.type_name.clone(),
        function: function.function.clone(),
    }
}

/// Returns the millisecond timeout of `get-or-lock` for an optional lock
/// timeout (rounded up, so a sub-millisecond timeout still locks).
pub(crate) fn lock_timeout_ms(timeout: Option<Duration>) -> Option<u64> {
    timeout.map(|t| u64::try_from(t.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc_core::ErrorKind;

    #[test]
    fn guest_commands_outside_the_contract_are_invalid_arguments() {
        let bad = [
            redis::Command::Mget(vec![]),
            redis::Command::Del(vec![]),
            redis::Command::Blpop(redis::BlpopArgs { key: "k".into(), timeout_ms: 0 }),
            redis::Command::Blpop(redis::BlpopArgs { key: "k".into(), timeout_ms: u64::MAX }),
            redis::Command::Pexpire(redis::PexpireArgs { key: "k".into(), ms: 0 }),
            redis::Command::Set(redis::SetArgs { key: "k".into(), value: vec![], expire_ms: Some(0), nx: false }),
        ];
        for command in bad {
            let e = from_wit_command(command).expect_err("must be refused");
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        }
        let ok = from_wit_command(redis::Command::Blpop(redis::BlpopArgs { key: "k".into(), timeout_ms: 1500 }));
        assert_eq!(ok.ok(), Some(Command::Blpop { key: "k".into(), timeout: Duration::from_millis(1500) }));
    }

    #[test]
    fn errors_keep_their_kind_both_ways() {
        // Every kind, `codec` and `protocol` included (they travel as `other` with a prefix).
        for kind in [
            ErrorKind::BackendUnavailable,
            ErrorKind::Timeout,
            ErrorKind::InvalidArgument,
            ErrorKind::Backend,
            ErrorKind::Codec,
            ErrorKind::Protocol,
            ErrorKind::Other,
        ] {
            let back = from_wit_error(to_wit_error(&Error::new(kind, "m")));
            assert_eq!((back.kind(), back.message()), (kind, "m"));
        }
    }

    #[test]
    fn array_replies_hold_only_bytes_and_nils() {
        assert!(to_wit_reply(Reply::Array(vec![Reply::Bytes(vec![1]), Reply::Nil])).is_ok());
        assert!(to_wit_reply(Reply::Array(vec![Reply::Int(1)])).is_err());
    }

    #[test]
    fn lock_timeouts_round_up_to_whole_milliseconds() {
        assert_eq!(lock_timeout_ms(None), None);
        assert_eq!(lock_timeout_ms(Some(Duration::from_micros(1))), Some(1));
        assert_eq!(lock_timeout_ms(Some(Duration::from_secs(5))), Some(5000));
    }
}
