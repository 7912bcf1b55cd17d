//! rtc as a WASI Preview 2 component: `rtc-core` adapted to the WIT package
//! `rtc:cache` in `wit/`.
//!
//! This crate has no cache logic of its own. It
//! - implements core's [`Backend`] over the imported `redis.execute`,
//! - exposes core's [`Cache`] as the exported `cache` resource, with core's
//!   [`Cache::get_or_lock`] and [`Cache::set_and_unlock`] under the same
//!   names (core's [`Ticket`] is the `ticket` resource),
//! - maps types and errors between core and WIT, and
//! - reports each get-or-compute's [`CacheInfo`], as core measured it,
//!   through the `hooks` import.
//!
//! Build it (only) for `wasm32-wasip2`:
//!
//! ```text
//! cargo build --profile component --locked --target wasm32-wasip2 -p rtc-component
//! # -> target/wasm32-wasip2/component/rtc_component.wasm
//! ```
//!
//! Randomness (tag values, lock tokens) comes from `wasi:random` through
//! core's use of `getrandom`; time from `wasi:clocks`.
//!
//! No panic may cross the component boundary: every export returns core's
//! errors as the WIT `error` variant, nothing here unwraps, and each fallible
//! export runs inside [`std::panic::catch_unwind`] (which catches only where
//! the target unwinds; on `wasm32-wasip2`, which aborts on panic, a panic
//! would trap the instance and the host discards it).
#![deny(missing_docs)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use rtc_core::adapter::{WitErrorCase, contract, set_and_unlock_outcome};
use rtc_core::{
    Backend, Cache, CacheInfo, ComputeOptions, Error, ErrorKind, FunctionId, GetOrLock, Hit, Lifetime,
    MAX_LOCK_TIMEOUT, Ticket,
};

#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
mod size_classes;

/// The allocator behind every allocation in the component, `cabi_realloc`
/// (the host's copies of strings and lists into the guest) included: see
/// [`size_classes`].
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: size_classes::SizeClasses = size_classes::SizeClasses::new();

#[allow(missing_docs)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "rtc",
        // Import arguments borrow: `redis.execute` and `hooks.report` read
        // core's commands and reports in place instead of cloning every key
        // and value into owned WIT types first.
        ownership: Borrowing { duplicate_if_necessary: false },
    });
}

use bindings::exports::rtc::cache::cache as wit;
use bindings::rtc::cache::{hooks, redis, types};

/// The component: the root of the exported interface.
struct Component;

bindings::export!(Component with_types_in bindings);

impl wit::Guest for Component {
    type Cache = CacheResource;
    type Found = FoundResource;
    type Ticket = TicketResource;
}

/// The `cache` resource: one core cache.
struct CacheResource {
    cache: Cache,
}

/// The `ticket` resource: core's [`Ticket`] and the cache that made it.
/// Dropping the resource (the host's explicit `resource.drop`) releases the
/// lock, as the WIT contract says.
struct TicketResource {
    ticket: Option<Ticket>,
    cache: Cache,
}

/// The `found` resource: core's [`Hit`], waiting for the host to say
/// whether its bytes decode. Dropped unfinished, it reports nothing (as a
/// dropped `Hit` does).
struct FoundResource {
    hit: Option<Hit>,
    cache: Cache,
}

impl wit::GuestFound for FoundResource {
    fn finish(this: wit::Found) {
        let mut found = this.into_inner::<FoundResource>();
        if let Some(hit) = found.hit.take() {
            let (key, tags) = (hit.key().to_owned(), hit.tags().to_vec());
            let (_, info) = hit.finish();
            report(&key, &tags, &info);
        }
    }

    fn undecodable(this: wit::Found, reason: String) -> wit::Ticket {
        let mut found = this.into_inner::<FoundResource>();
        // A found is consumed by its first use, so `hit` is always there;
        // without it, the ticket holds nothing and stores nothing.
        let ticket = found.hit.take().map(|hit| hit.undecodable(Error::new(ErrorKind::Codec, reason)));
        wit::Ticket::new(TicketResource { ticket, cache: found.cache.clone() })
    }
}

impl Drop for TicketResource {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            let _ = self.cache.release(ticket);
        }
    }
}

impl wit::GuestCache for CacheResource {
    fn open(config: wit::Config) -> Result<wit::Cache, types::Error> {
        guard(|| {
            let mut builder = Cache::builder()
                .namespace(config.namespace)
                .default_lifetime(config.default_lifetime)
                .lifetime_for_tags(config.lifetime_for_tags)
                .disabled(config.disabled)
                .in_local_memory(config.in_local_memory);
            if let Some(max) = config.max_value_size {
                builder = builder.max_value_size(usize::try_from(max).unwrap_or(usize::MAX));
            }
            if !config.in_local_memory {
                builder = builder.backend(Arc::new(ImportBackend));
            }
            let cache = builder.build().map_err(to_wit_error)?;
            Ok(wit::Cache::new(CacheResource { cache }))
        })
    }

    fn set(&self, key: String, value: Vec<u8>, tags: Vec<String>, lifetime: wit::Lifetime) -> Result<(), types::Error> {
        guard(|| self.cache.set_bytes(&key, &value, &tags, to_lifetime(lifetime)).map_err(to_wit_error))
    }

    fn get(&self, key: String, tags: Vec<String>) -> Result<Option<Vec<u8>>, types::Error> {
        guard(|| self.cache.get_bytes(&key, &tags).map_err(to_wit_error))
    }

    fn delete(&self, key: String, tags: Vec<String>) -> Result<bool, types::Error> {
        guard(|| self.cache.delete(&key, &tags).map_err(to_wit_error))
    }

    fn invalidate(&self, tags: Vec<String>) -> Result<(), types::Error> {
        guard(|| self.cache.invalidate(&tags).map_err(to_wit_error))
    }

    fn invalidate_all(&self) -> Result<(), types::Error> {
        guard(|| self.cache.invalidate_all().map_err(to_wit_error))
    }

    fn get_or_lock(
        &self,
        key: String,
        tags: Vec<String>,
        options: wit::LockOptions,
    ) -> Result<wit::Lookup, types::Error> {
        guard(|| {
            let f = options.function;
            let mut compute = ComputeOptions::key(key.as_str())
                .tags(&tags)
                .identity(FunctionId::new(f.module, f.type_name, f.function), options.arguments)
                .method(options.method);
            match options.lock_timeout_ms.map(Duration::from_millis) {
                None => {}
                Some(timeout) if timeout <= MAX_LOCK_TIMEOUT => {
                    compute = compute.lock(true).lock_timeout(timeout);
                }
                Some(timeout) => {
                    return Err(types::Error::InvalidArgument(format!(
                        "lock-timeout-ms {} is above the maximum of {} (one day)",
                        timeout.as_millis(),
                        MAX_LOCK_TIMEOUT.as_millis()
                    )));
                }
            }
            let resource = |ticket| TicketResource { ticket: Some(ticket), cache: self.cache.clone() };
            match self.cache.get_or_lock(&compute) {
                // Reported when the host finishes it (`found.finish`).
                GetOrLock::Hit(hit) => {
                    let info = hit.info();
                    let stats = wit::LockStats {
                        waiting_ms: info.lock_waiting_ms,
                        full_hit: info.lock_full_hit,
                        full_miss: info.lock_full_miss,
                    };
                    let value = hit.value().to_vec();
                    let found = wit::Found::new(FoundResource { hit: Some(hit), cache: self.cache.clone() });
                    Ok(wit::Lookup::Hit(wit::Hit { value, stats, found }))
                }
                GetOrLock::Locked(ticket) => Ok(wit::Lookup::Locked(wit::Ticket::new(resource(ticket)))),
                GetOrLock::Miss(ticket) if ticket.info().error.is_none() => {
                    Ok(wit::Lookup::Miss(wit::Ticket::new(resource(ticket))))
                }
                // The lookup failed (the info says how): report it, and say so.
                GetOrLock::Miss(ticket) => {
                    let info = self.cache.release(ticket);
                    let error =
                        info.error.clone().map_or_else(|| types::Error::Other("no ticket".into()), to_wit_error);
                    report(&key, &tags, &info);
                    Err(error)
                }
            }
        })
    }

    fn set_and_unlock(&self, ticket: wit::Ticket, value: Vec<u8>, lifetime: wit::Lifetime) -> Result<(), types::Error> {
        guard(|| {
            let mut resource = ticket.into_inner::<TicketResource>();
            let Some(mut ticket) = resource.ticket.take() else {
                return Err(types::Error::Other("the ticket was already used".into()));
            };
            ticket.set_lifetime(to_lifetime(lifetime));
            let (key, tags) = (ticket.key().to_owned(), ticket.tags().to_vec());
            // Core checks that the ticket is this cache's, and tells this
            // call's own failure from an error the ticket carried (the codec
            // error of an undecodable hit), which stays in the info only.
            let (info, failure) = set_and_unlock_outcome(&self.cache, ticket, Ok::<_, rtc_core::Error>(value));
            let result = failure.map_or(Ok(()), |e| Err(to_wit_error(e)));
            report(&key, &tags, &info);
            result
        })
    }
}

impl wit::GuestTicket for TicketResource {
    fn holds_lock(&self) -> bool {
        self.ticket.as_ref().is_some_and(Ticket::holds_lock)
    }

    fn stats(&self) -> wit::LockStats {
        let stats = self.ticket.as_ref().map(Ticket::stats).unwrap_or_default();
        wit::LockStats { waiting_ms: stats.waiting_ms, full_hit: stats.full_hit, full_miss: stats.full_miss }
    }

    fn storage_key(&self) -> String {
        self.ticket.as_ref().and_then(Ticket::storage_key).map(str::to_owned).unwrap_or_default()
    }
}

/// Core's [`Backend`] over the imported `redis.execute`.
struct ImportBackend;

impl Backend for ImportBackend {
    fn execute(&self, commands: &[rtc_core::Command]) -> rtc_core::Result<Vec<rtc_core::Reply>> {
        if commands.is_empty() {
            return Ok(Vec::new());
        }
        // The WIT commands borrow core's strings and bytes. The keys of every
        // MGET and DEL go, borrowed, into one buffer that the batch slices.
        let keys: Vec<&str> = commands.iter().flat_map(key_list).map(String::as_str).collect();
        let mut rest = keys.as_slice();
        let batch: Vec<redis::Command<'_>> =
            commands.iter().map(|command| to_wit_command(command, &mut rest)).collect();
        // Core's driver checks the reply count and kinds (the backend contract), once.
        let replies = redis::execute(&batch).map_err(from_wit_error)?;
        Ok(replies.into_iter().map(from_wit_reply).collect())
    }
}

/// Returns the keys of a command that names several.
fn key_list(command: &rtc_core::Command) -> &[String] {
    match command {
        rtc_core::Command::Mget { keys } | rtc_core::Command::Del { keys } => keys,
        _ => &[],
    }
}

/// Converts one command, taking its key list (if it has one) from the front of `keys`.
fn to_wit_command<'a>(command: &'a rtc_core::Command, keys: &mut &'a [&'a str]) -> redis::Command<'a> {
    use rtc_core::Command as C;
    let mut take = || {
        let (list, rest) = keys.split_at(key_list(command).len());
        *keys = rest;
        list
    };
    match command {
        C::Get { key } => redis::Command::Get(key),
        C::Mget { .. } => redis::Command::Mget(take()),
        C::Set { key, value, expire_ms, nx } => {
            redis::Command::Set(redis::SetArgs { key, value, expire_ms: *expire_ms, nx: *nx })
        }
        C::Del { .. } => redis::Command::Del(take()),
        C::DelIfEq { key, value } => redis::Command::DelIfEq(redis::DelIfEqArgs { key, value }),
        C::Rpush { key, value } => redis::Command::Rpush(redis::RpushArgs { key, value }),
        C::Pexpire { key, ms } => redis::Command::Pexpire(redis::PexpireArgs { key, ms: *ms }),
        C::Pttl { key } => redis::Command::Pttl(key),
        C::Blpop { key, timeout } => {
            let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX).clamp(1, contract::MAX_BLPOP_MS);
            redis::Command::Blpop(redis::BlpopArgs { key, timeout_ms: ms })
        }
    }
}

fn from_wit_reply(reply: redis::Reply) -> rtc_core::Reply {
    use rtc_core::Reply as R;
    match reply {
        redis::Reply::Nil => R::Nil,
        redis::Reply::Ok => R::Ok,
        redis::Reply::Int(i) => R::Int(i),
        redis::Reply::Bytes(b) => R::Bytes(b),
        redis::Reply::Array(items) => R::Array(items.into_iter().map(|item| item.map_or(R::Nil, R::Bytes)).collect()),
    }
}

fn to_lifetime(lifetime: wit::Lifetime) -> Lifetime {
    match lifetime {
        wit::Lifetime::Default => Lifetime::Default,
        wit::Lifetime::Forever => Lifetime::Forever,
        wit::Lifetime::Seconds(s) => Lifetime::Seconds(s),
    }
}

/// Builds the WIT error; which case and message is decided in core ([`rtc_core::Error::to_wit`]).
fn to_wit_error(e: rtc_core::Error) -> types::Error {
    match e.to_wit() {
        (WitErrorCase::BackendUnavailable, m) => types::Error::BackendUnavailable(m),
        (WitErrorCase::Timeout, m) => types::Error::Timeout(m),
        (WitErrorCase::InvalidArgument, m) => types::Error::InvalidArgument(m),
        (WitErrorCase::Backend, m) => types::Error::Backend(m),
        (WitErrorCase::Other, m) => types::Error::Other(m),
    }
}

fn from_wit_error(e: types::Error) -> rtc_core::Error {
    let (case, m) = match e {
        types::Error::BackendUnavailable(m) => (WitErrorCase::BackendUnavailable, m),
        types::Error::Timeout(m) => (WitErrorCase::Timeout, m),
        types::Error::InvalidArgument(m) => (WitErrorCase::InvalidArgument, m),
        types::Error::Backend(m) => (WitErrorCase::Backend, m),
        types::Error::Other(m) => (WitErrorCase::Other, m),
    };
    rtc_core::Error::from_wit(case, m)
}

/// Reports one get-or-compute to the host's hook.
fn report(key: &str, tags: &[String], info: &CacheInfo) {
    let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    // `function-id` is also an export type, so it stays owned.
    let function = types::FunctionId {
        module: info.function.module.clone(),
        type_name: info.function.type_name.clone(),
        function: info.function.function.clone(),
    };
    let error = info.error.clone().map(to_wit_error);
    let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
    let info = hooks::CacheInfo {
        function: &function,
        arguments: &info.arguments,
        method: info.method,
        hit: info.hit,
        elapsed_ns: nanos(info.elapsed),
        decorated_elapsed_ns: nanos(info.decorated_elapsed),
        lock_waiting_ms: info.lock_waiting_ms,
        lock_full_hit: info.lock_full_hit,
        lock_full_miss: info.lock_full_miss,
        serialized_size: info.serialized_size as u64,
        error: error.as_ref(),
    };
    hooks::report(hooks::HookEvent { key, tags: &tags, info });
}

/// Runs an export's body; a panic (where the target unwinds) becomes `other`.
fn guard<T>(body: impl FnOnce() -> Result<T, types::Error>) -> Result<T, types::Error> {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        Err(types::Error::Other(format!("the rtc component panicked: {what}")))
    })
}
