//! The wasmtime host of the rtc component: hooks, many threads and the
//! stampede lock, traps and misbehaving backends, Redis going away, and a
//! component that is missing or is not one.
//!
//! Needs the built component: `cargo build --profile component --locked
//! --target wasm32-wasip2 -p rtc-component` (the README's test command runs it).

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use rtc_core::{
    Backend, Cache, CacheInfo, Command, ComputeOptions, Config, ErrorKind, Lifetime, MemoryBackend, Reply, function_id,
};
use rtc_host::{ComponentCache, ComponentRuntime, GetOrLock, RuntimeOptions};
use rtc_tests::component_surface::{component_runtime, standalone_runtime};
use rtc_tests::{RedisServer, unique_namespace};

/// What a hook saw: key, tags, info, and the call's userdata (a u32 here).
type Seen = Arc<Mutex<Vec<(String, Vec<String>, CacheInfo, Option<u32>)>>>;

fn recording_hook(seen: &Seen) -> impl Fn(&rtc_core::HookEvent<'_>) + Send + Sync + 'static {
    let seen = Arc::clone(seen);
    move |event| {
        let userdata = event.userdata.and_then(|u| u.downcast_ref::<u32>()).copied();
        let mut seen = seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        seen.push((event.key.to_string(), event.tags.to_vec(), event.info.clone(), userdata));
    }
}

fn memory_config(prefix: &str) -> Config {
    Config::default().namespace(unique_namespace(prefix))
}

#[test]
fn the_hook_receives_every_cache_info_field_as_natively() {
    let memory: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let component_seen: Seen = Arc::default();
    let native_seen: Seen = Arc::default();
    let component = ComponentCache::builder(component_runtime())
        .config(memory_config("hook-component"))
        .backend(Arc::clone(&memory))
        .hook(recording_hook(&component_seen))
        .build()
        .expect("component");
    let native = Cache::builder()
        .config(memory_config("hook-native"))
        .backend(memory)
        .hook(recording_hook(&native_seen))
        .build()
        .expect("native");

    let options = ComputeOptions::call(function_id!("square"), &(7u64,))
        .expect("options")
        .tags(["sq", "n:7"])
        .lock(true)
        .hook_userdata(Arc::new(5u32));
    let pause = Duration::from_millis(20);
    let compute = || {
        // A measurable computation (timing, not synchronisation).
        std::thread::sleep(pause);
        49u64
    };
    assert_eq!(component.get_or_compute(&options, compute), 49);
    assert_eq!(component.get_or_compute(&options, || -> u64 { unreachable!("cached") }), 49);
    assert_eq!(native.get_or_compute(&options, compute), 49);
    assert_eq!(native.get_or_compute(&options, || -> u64 { unreachable!("cached") }), 49);

    let component_seen = component_seen.lock().expect("lock").clone();
    let native_seen = native_seen.lock().expect("lock").clone();
    assert_eq!(component_seen.len(), 2, "one report per get-or-compute: {component_seen:#?}");
    assert_eq!(native_seen.len(), 2);
    for ((ck, ct, ci, cu), (nk, nt, ni, nu)) in component_seen.iter().zip(&native_seen) {
        assert_eq!((ck, ct, cu), (nk, nt, nu), "key, tags and userdata");
        assert_eq!(ck, options.cache_key());
        assert_eq!(ct, &["sq".to_string(), "n:7".to_string()]);
        assert_eq!(*cu, Some(5));
        assert_eq!(ci.function, ni.function);
        assert_eq!(ci.function.function, "square");
        assert_eq!(ci.arguments, ni.arguments);
        assert_eq!(ci.arguments, options.arguments());
        assert_eq!(
            (ci.method, ci.hit, ci.lock_full_hit, ci.lock_full_miss, ci.serialized_size),
            (ni.method, ni.hit, ni.lock_full_hit, ni.lock_full_miss, ni.serialized_size),
        );
        assert!(ci.error.is_none() && ni.error.is_none());
        assert!(ci.elapsed >= ci.decorated_elapsed);
    }
    let (miss, hit) = (&component_seen[0].2, &component_seen[1].2);
    assert!(!miss.hit && miss.lock_full_miss && !miss.lock_full_hit);
    assert!(miss.decorated_elapsed >= pause, "decorated_elapsed {:?}", miss.decorated_elapsed);
    assert!(miss.serialized_size > 0);
    assert!(hit.hit && hit.lock_full_hit && !hit.lock_full_miss);
    assert_eq!(hit.decorated_elapsed, Duration::ZERO);
    assert_eq!(hit.serialized_size, miss.serialized_size);
}

/// The one place the component and native used to disagree: a hit whose
/// bytes do not decode. Both now report it once, as a miss that computed
/// and overwrote the bytes, with the codec error; the next call hits.
#[test]
fn an_undecodable_hit_is_reported_as_natively() {
    let memory: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let component_seen: Seen = Arc::default();
    let native_seen: Seen = Arc::default();
    let component = ComponentCache::builder(component_runtime())
        .config(memory_config("undecodable-component"))
        .backend(Arc::clone(&memory))
        .hook(recording_hook(&component_seen))
        .build()
        .expect("component");
    let native = Cache::builder()
        .config(memory_config("undecodable-native"))
        .backend(memory)
        .hook(recording_hook(&native_seen))
        .build()
        .expect("native");
    let options = ComputeOptions::key("n").tags(["t"]).lock(true);
    // Bytes that are not CBOR for a u64 (written by another program, say).
    component.set_bytes("n", b"\xff not cbor", ["t"], Lifetime::Default).expect("set garbage");
    native.set_bytes("n", b"\xff not cbor", ["t"], Lifetime::Default).expect("set garbage");

    assert_eq!(component.get_or_compute(&options, || 42u64), 42);
    assert_eq!(native.get_or_compute(&options, || 42u64), 42);
    assert_eq!(component.get::<u64>("n", ["t"]).expect("get"), Some(42), "the component overwrote the bytes");
    assert_eq!(native.get::<u64>("n", ["t"]).expect("get"), Some(42), "native overwrote the bytes");
    assert_eq!(component.get_or_compute(&options, || -> u64 { unreachable!("cached") }), 42);
    assert_eq!(native.get_or_compute(&options, || -> u64 { unreachable!("cached") }), 42);

    let summary = |seen: &Seen| -> Vec<(bool, Option<ErrorKind>)> {
        let seen = seen.lock().expect("lock");
        seen.iter().map(|(_, _, info, _)| (info.hit, info.error.as_ref().map(|e| e.kind()))).collect()
    };
    let want = vec![(false, Some(ErrorKind::Codec)), (true, None)];
    assert_eq!(summary(&native_seen), want, "native: one report per call, the first a miss with the codec error");
    assert_eq!(summary(&component_seen), want, "the component reports as native does");
}

#[test]
fn the_split_get_or_compute_locks_waits_and_wakes() {
    split_get_or_compute(component_runtime());
}

#[test]
fn the_split_get_or_compute_locks_waits_and_wakes_through_the_standalone_component() {
    split_get_or_compute(standalone_runtime());
}

/// Whether the component's reports reach the host's hook: not those of the
/// standalone component, whose `hooks` import its own provider serves.
fn reports_reach_the_host(runtime: &ComponentRuntime) -> bool {
    !runtime.brings_its_own_redis()
}

fn split_get_or_compute(runtime: Arc<ComponentRuntime>) {
    let reported = reports_reach_the_host(&runtime);
    let redis = RedisServer::start();
    let config = Config::default().namespace(unique_namespace("split")).url(Some(redis.url()));
    let seen: Seen = Arc::default();
    let cache = ComponentCache::builder(runtime).config(config).hook(recording_hook(&seen)).build().expect("component");

    let GetOrLock::Locked(ticket) = cache.get_or_lock(&lookup("k", Some(Duration::from_secs(5)))).expect("lookup")
    else {
        panic!("a cold key must lock");
    };
    assert!(ticket.holds_lock());
    // The same storage key as the native engine's, for the same key, tags and tag values.
    let native = Cache::new(cache.config().clone()).expect("native");
    match native.get_or_lock(&lookup("k", None)) {
        rtc_core::GetOrLock::Miss(t) => assert_eq!(t.storage_key(), Some(ticket.storage_key())),
        other => panic!("expected a native miss: {other:?}"),
    }

    // Another caller waits for the holder; a short timeout ends in a miss without the lock.
    match cache.get_or_lock(&lookup("k", Some(Duration::from_millis(50)))).expect("lookup") {
        GetOrLock::Miss(t) => {
            assert!(!t.holds_lock());
            assert!(t.stats().full_miss && t.stats().waiting_ms >= 50, "{:?}", t.stats());
        }
        other => panic!("expected a miss after waiting: {other:?}"),
    }

    // A waiter with time to spare is woken by set_and_unlock.
    let waiter = {
        let cache = cache.clone();
        std::thread::spawn(move || cache.get_or_lock(&lookup("k", Some(Duration::from_secs(10)))))
    };
    // Unlock once the waiter is blocked on Redis (an event, not a sleep).
    wait_for_blocked_clients(&redis, 1);
    cache.set_and_unlock(ticket, b"v").expect("set_and_unlock");
    match waiter.join().expect("waiter").expect("lookup") {
        GetOrLock::Hit(hit) => {
            let stats = hit.stats();
            assert!(!stats.full_hit && !stats.full_miss, "another caller computed it: {stats:?}");
            assert_eq!(hit.finish(), b"v");
        }
        other => panic!("the waiter must see the value: {other:?}"),
    }

    // Dropping a ticket releases the lock at once.
    cache.invalidate("t").expect("invalidate");
    let GetOrLock::Locked(ticket) = cache.get_or_lock(&lookup("k", Some(Duration::from_secs(5)))).expect("lookup")
    else {
        panic!("must lock after the invalidation");
    };
    drop(ticket);
    let waits = blpops(&redis);
    let GetOrLock::Locked(ticket) = cache.get_or_lock(&lookup("k", Some(Duration::from_secs(5)))).expect("lookup")
    else {
        panic!("the dropped ticket's lock must be free");
    };
    // A held lock would have made this caller wait on the wake-up list (a
    // BLPOP) before taking it: it took it at its first try.
    assert_eq!(blpops(&redis), waits, "no wait for a released lock: {:?}", ticket.stats());
    cache.set_and_unlock(ticket, b"w").expect("set_and_unlock");
    assert_eq!(cache.get_bytes("k", ["t"]).expect("get"), Some(b"w".to_vec()));

    // A native reader sees what the component stored through the split path.
    assert_eq!(native.get_bytes("k", ["t"]).expect("get"), Some(b"w".to_vec()));
    // As natively, the split calls report to the hook exactly as get-or-compute does: two stores
    // (misses that computed) and the waiter's hit; the abandoned tickets report nothing.
    let seen = seen.lock().expect("lock");
    if !reported {
        assert!(seen.is_empty(), "the standalone component's reports stay inside it: {seen:?}");
        return;
    }
    let hits: Vec<bool> = seen.iter().map(|(_, _, info, _)| info.hit).collect();
    assert_eq!((hits.len(), hits.iter().filter(|h| **h).count()), (3, 1), "{seen:?}");
    assert!(seen.iter().all(|(key, _, info, _)| key == "k" && info.error.is_none()), "{seen:?}");
}

/// How many `BLPOP`s (waits on a lock's wake-up list) Redis has served.
fn blpops(redis: &RedisServer) -> u64 {
    let info = redis.cli(&["INFO", "commandstats"]);
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_blpop:"))
        .and_then(|l| l.split_once("calls=").and_then(|(_, rest)| rest.split(',').next()?.parse().ok()))
        .unwrap_or(0)
}

/// Polls Redis until `n` clients are blocked (in `BLPOP`), with a deadline.
fn wait_for_blocked_clients(redis: &RedisServer, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info = redis.cli(&["INFO", "clients"]);
        let blocked = info
            .lines()
            .find_map(|l| l.strip_prefix("blocked_clients:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        if blocked >= n {
            return;
        }
        assert!(Instant::now() < deadline, "{n} clients never blocked; INFO clients:\n{info}");
        std::thread::yield_now();
    }
}

#[test]
fn many_threads_share_one_cache_and_compute_once_under_the_lock() {
    many_threads(component_runtime());
}

#[test]
fn many_threads_share_one_standalone_cache_and_compute_once_under_the_lock() {
    many_threads(standalone_runtime());
}

fn many_threads(runtime: Arc<ComponentRuntime>) {
    let reported = reports_reach_the_host(&runtime);
    let redis = RedisServer::start();
    let config = Config::default().namespace(unique_namespace("threads")).url(Some(redis.url()));
    let seen: Seen = Arc::default();
    let cache = ComponentCache::builder(runtime).config(config).hook(recording_hook(&seen)).build().expect("component");
    const THREADS: usize = 8;
    let computed = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|i| {
            let (cache, computed, start, redis_port) =
                (cache.clone(), Arc::clone(&computed), Arc::clone(&start), redis.port());
            std::thread::spawn(move || {
                // Independent work first: every thread on its own keys.
                for j in 0..50 {
                    let key = format!("t{i}-k{j}");
                    cache.set_bytes(&key, key.as_bytes(), ["mine"], Lifetime::Default).expect("set");
                    assert_eq!(cache.get_bytes(&key, ["mine"]).expect("get"), Some(key.into_bytes()));
                }
                start.wait();
                let options = ComputeOptions::key("shared").tags(["s"]).lock(true);
                cache.get_or_compute(&options, || {
                    computed.fetch_add(1, Ordering::SeqCst);
                    // Hold the lock until every other thread waits on it, and a
                    // little longer, so each wait lasts a whole millisecond at
                    // least (waits are reported in whole milliseconds).
                    let redis = RedisPort(redis_port);
                    redis.wait_blocked(THREADS - 1);
                    std::thread::sleep(Duration::from_millis(5));
                    "once".to_string()
                })
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().expect("thread"), "once");
    }
    assert_eq!(computed.load(Ordering::SeqCst), 1, "the stampede lock must let one thread compute");
    let seen = seen.lock().expect("lock");
    if !reported {
        assert!(seen.is_empty(), "the standalone component's reports stay inside it: {seen:?}");
        return;
    }
    let infos: Vec<&CacheInfo> = seen.iter().map(|(_, _, info, _)| info).collect();
    assert_eq!(infos.len(), THREADS);
    assert_eq!(infos.iter().filter(|i| i.lock_full_miss).count(), 1, "{infos:#?}");
    assert_eq!(infos.iter().filter(|i| i.hit && i.lock_waiting_ms > 0).count(), THREADS - 1, "{infos:#?}");
}

/// `redis-cli` on a port, usable from a thread that does not own the server.
struct RedisPort(u16);

impl RedisPort {
    fn wait_blocked(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = std::process::Command::new("redis-cli")
                .args(["-h", "127.0.0.1", "-p", &self.0.to_string(), "INFO", "clients"])
                .output()
                .expect("run redis-cli");
            let info = String::from_utf8_lossy(&out.stdout);
            let blocked = info
                .lines()
                .find_map(|l| l.strip_prefix("blocked_clients:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if blocked >= n {
                return;
            }
            assert!(Instant::now() < deadline, "{n} waiters never blocked; INFO clients:\n{info}");
        }
    }
}

#[test]
fn a_trap_fails_the_call_and_the_next_call_gets_a_fresh_instance() {
    let memory: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let seen: Seen = Arc::default();
    let cache = ComponentCache::builder(component_runtime())
        .config(memory_config("trap"))
        .backend(memory)
        .hook(recording_hook(&seen))
        .max_memory(16 << 20)
        .max_instances(2)
        .build()
        .expect("component");
    cache.set_bytes("before", b"kept", ["t"], Lifetime::Default).expect("set");
    let huge = vec![7u8; 32 << 20];
    for round in 0..5 {
        // The 32 MiB value cannot fit in a 16 MiB instance: the instance traps.
        let e = cache.set_bytes("huge", &huge, ["t"], Lifetime::Default).expect_err("must trap");
        assert_eq!(e.kind(), ErrorKind::Other, "round {round}: {e}");
        assert!(e.to_string().contains("trapped"), "round {round}: {e}");
        assert!(e.to_string().contains("growing memory"), "the store's memory limit must be what trips: {e}");
        // The host is still usable, with the entries of before, on a fresh instance.
        assert_eq!(cache.get_bytes("before", ["t"]).expect("get"), Some(b"kept".to_vec()));
        cache.set_bytes("after", b"ok", ["t"], Lifetime::Default).expect("set");
        assert_eq!(cache.get_bytes("after", ["t"]).expect("get"), Some(b"ok".to_vec()));
    }
    // A trap inside get-or-compute still computes the value, and the host
    // reports what the trapped instance could not.
    let options = ComputeOptions::key("k").tags(["t"]).hook_userdata(Arc::new(9u32));
    let v = cache.get_or_compute_bytes(&options, || Ok::<_, ()>(huge.clone()));
    assert_eq!(v.expect("computed").len(), huge.len());
    {
        let seen = seen.lock().expect("lock");
        assert_eq!(seen.len(), 1, "one report: {seen:?}");
        let (key, tags, info, userdata) = &seen[0];
        assert_eq!((key.as_str(), tags.as_slice(), *userdata), ("k", &["t".to_string()][..], Some(9)));
        assert!(!info.hit && info.serialized_size == huge.len(), "{info:?}");
        let error = info.error.as_ref().expect("the trap is reported");
        assert!(error.to_string().contains("trapped"), "{error}");
    }
    assert_eq!(cache.get_bytes("before", ["t"]).expect("get"), Some(b"kept".to_vec()));
    // Every instance is back in the pool (2 at most): two tickets can be held at once.
    let a = cache.get_or_lock(&ComputeOptions::key("a").tags(["t"])).expect("lookup");
    let b = cache.get_or_lock(&ComputeOptions::key("b").tags(["t"])).expect("lookup");
    drop((a, b));
}

/// A backend that misbehaves on demand, in front of a memory backend.
struct Misbehaving {
    inner: MemoryBackend,
    mode: AtomicU8,
}

const GOOD: u8 = 0;
const TOO_FEW_REPLIES: u8 = 1;
const WRONG_REPLY_TYPE: u8 = 2;
const BAD_ARRAY: u8 = 3;
const PANIC: u8 = 4;

impl Backend for Misbehaving {
    fn execute(&self, commands: &[Command]) -> rtc_core::Result<Vec<Reply>> {
        let mut replies = self.inner.execute(commands)?;
        match self.mode.load(Ordering::SeqCst) {
            TOO_FEW_REPLIES => {
                replies.pop();
            }
            WRONG_REPLY_TYPE => replies.iter_mut().for_each(|r| *r = Reply::Int(42)),
            BAD_ARRAY => replies.iter_mut().for_each(|r| *r = Reply::Array(vec![Reply::Ok])),
            PANIC => panic!("the backend broke (on purpose, in a test)"),
            _ => {}
        }
        Ok(replies)
    }
}

#[test]
fn a_misbehaving_backend_gives_errors_and_leaves_the_host_usable() {
    let backend = Arc::new(Misbehaving { inner: MemoryBackend::new(), mode: AtomicU8::new(GOOD) });
    let cache = ComponentCache::builder(component_runtime())
        .config(memory_config("misbehaving"))
        .backend(Arc::clone(&backend) as Arc<dyn Backend>)
        .build()
        .expect("component");
    cache.set_bytes("k", b"v", ["t"], Lifetime::Default).expect("set");
    for mode in [TOO_FEW_REPLIES, WRONG_REPLY_TYPE, BAD_ARRAY, PANIC] {
        backend.mode.store(mode, Ordering::SeqCst);
        let e = cache.get_bytes("k", ["t"]).expect_err("a broken backend must fail the call");
        // A broken reply contract has a kind of its own; a panicking backend traps the instance.
        let kind = if mode == PANIC { ErrorKind::Other } else { ErrorKind::Protocol };
        assert_eq!(e.kind(), kind, "mode {mode}: {e}");
        if mode == PANIC {
            assert!(e.to_string().contains("panicked"), "{e}");
        }
        // get-or-compute bypasses the broken backend and still returns the value.
        let options = ComputeOptions::key("c").tags(["t"]).lock(true);
        assert_eq!(
            cache.get_or_compute_bytes(&options, || Ok::<_, ()>(b"computed".to_vec())),
            Ok(b"computed".to_vec())
        );
        backend.mode.store(GOOD, Ordering::SeqCst);
        assert_eq!(cache.get_bytes("k", ["t"]).expect("get"), Some(b"v".to_vec()), "mode {mode}");
    }
}

#[test]
fn a_panicking_hook_is_contained() {
    let cache = ComponentCache::builder(component_runtime())
        .config(memory_config("hook-panic").in_local_memory(true))
        .hook(|_| panic!("the hook broke (on purpose, in a test)"))
        .build()
        .expect("component");
    let options = ComputeOptions::key("k").lock(true);
    assert_eq!(cache.get_or_compute(&options, || 1u8), 1);
    assert_eq!(cache.get_or_compute(&options, || 2u8), 1);
}

#[test]
fn redis_down_is_backend_unavailable_and_recovers() {
    redis_down(component_runtime());
}

#[test]
fn redis_down_is_backend_unavailable_and_recovers_through_the_standalone_component() {
    redis_down(standalone_runtime());
}

fn redis_down(runtime: Arc<ComponentRuntime>) {
    let reported = reports_reach_the_host(&runtime);
    let mut redis = RedisServer::start();
    let seen: Seen = Arc::default();
    let config = Config::default()
        .namespace(unique_namespace("down"))
        .url(Some(redis.url()))
        .socket_connect_timeout(Duration::from_millis(500));
    let cache = ComponentCache::builder(runtime).config(config).hook(recording_hook(&seen)).build().expect("component");
    cache.set_bytes("k", b"v", ["t"], Lifetime::Default).expect("set");
    redis.kill();
    let e = cache.get_bytes("k", ["t"]).expect_err("Redis is down");
    assert_eq!(e.kind(), ErrorKind::BackendUnavailable, "{e}");
    let e = cache.invalidate("t").expect_err("Redis is down");
    assert_eq!(e.kind(), ErrorKind::BackendUnavailable, "{e}");
    let options = ComputeOptions::key("c").tags(["t"]).lock(true);
    assert_eq!(cache.get_or_compute(&options, || 3u8), 3, "computed, not cached");
    if reported {
        let seen = seen.lock().expect("lock");
        let info = &seen.last().expect("a report").2;
        assert_eq!(info.error.as_ref().map(|e| e.kind()), Some(ErrorKind::BackendUnavailable), "{info:?}");
    }
    redis.restart();
    cache.set_bytes("k", b"again", ["t"], Lifetime::Default).expect("set after restart");
    assert_eq!(cache.get_bytes("k", ["t"]).expect("get"), Some(b"again".to_vec()));
}

#[test]
fn values_above_max_value_size_are_invalid_arguments() {
    let cache = ComponentCache::builder(component_runtime())
        .config(memory_config("max-size").in_local_memory(true).max_value_size(8usize))
        .build()
        .expect("component");
    cache.set_bytes("k", b"12345678", ["t"], Lifetime::Default).expect("8 bytes fit");
    let e = cache.set_bytes("k", b"123456789", ["t"], Lifetime::Default).expect_err("9 bytes do not");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    let GetOrLock::Locked(ticket) = cache.get_or_lock(&lookup("j", Some(Duration::from_secs(1)))).expect("lookup")
    else {
        panic!("a cold key must lock");
    };
    let e = cache.set_and_unlock(ticket, b"123456789").expect_err("too large");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    // The failed store released the lock.
    assert!(matches!(
        cache.get_or_lock(&lookup("j", Some(Duration::from_secs(5)))).expect("lookup"),
        GetOrLock::Locked(_)
    ));
}

#[test]
fn a_disabled_cache_stores_nothing() {
    let cache = ComponentCache::builder(component_runtime())
        .config(memory_config("disabled").disabled(true))
        .build()
        .expect("component");
    cache.set_bytes("k", b"v", ["t"], Lifetime::Default).expect("set");
    assert_eq!(cache.get_bytes("k", ["t"]).expect("get"), None);
    let options = ComputeOptions::key("c").lock(true);
    assert_eq!(cache.get_or_compute(&options, || 1u8), 1);
    assert_eq!(cache.get_or_compute(&options, || 2u8), 2);
}

#[test]
fn a_missing_component_says_how_to_build_it() {
    let e = ComponentRuntime::load("/nonexistent/rtc_component.wasm").expect_err("no such file");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.to_string().contains(rtc_host::BUILD_COMMAND), "{e}");
    let e = ComponentCache::new("/nonexistent/rtc_component.wasm", Config::default()).expect_err("no such file");
    assert!(e.to_string().contains(rtc_host::BUILD_COMMAND), "{e}");
}

#[test]
fn a_file_that_is_not_the_component_is_refused() {
    let e = ComponentRuntime::from_binary(b"\0asm\x01\0\0\0", RuntimeOptions::default()).expect_err("a core module");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    let e = ComponentRuntime::from_binary(b"not wasm at all", RuntimeOptions::default()).expect_err("garbage");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
}

#[test]
fn a_runtime_of_its_own_limits_instances() {
    let path = rtc_host::default_component_path();
    let _ = component_runtime(); // a clear message if the component is missing
    let runtime = ComponentRuntime::load_with(&path, RuntimeOptions::default().max_instances(2)).expect("runtime");
    let seen: Seen = Arc::default();
    let cache = ComponentCache::builder(runtime)
        .config(memory_config("limits").in_local_memory(true))
        .hook(recording_hook(&seen))
        .max_instances(8)
        .build()
        .expect("component");
    // Two tickets hold the engine's two instances; a third instance cannot be created.
    let a = cache.get_or_lock(&ComputeOptions::key("a").tags(["t"])).expect("lookup");
    let b = cache.get_or_lock(&ComputeOptions::key("b").tags(["t"])).expect("lookup");
    let e = cache.get_bytes("c", ["t"]).expect_err("the engine is full");
    assert_eq!(e.kind(), ErrorKind::Other, "{e}");
    // get-or-compute computes anyway, and the host reports what the component never saw.
    assert_eq!(cache.get_or_compute(&ComputeOptions::key("c"), || 5u8), 5);
    assert_eq!(seen.lock().expect("lock").len(), 1);
    assert!(seen.lock().expect("lock")[0].2.error.is_some());
    drop((a, b));
    assert_eq!(cache.get_bytes("c", ["t"]).expect("get"), None, "usable again once instances are free");
}

#[test]
fn the_component_imports_what_the_wit_documents() {
    let runtime = component_runtime();
    let imports = runtime.imports();
    for needed in ["rtc:cache/redis@0.2.0", "rtc:cache/hooks@0.2.0", "rtc:cache/types@0.2.0"] {
        assert!(imports.iter().any(|i| i == needed), "{needed} missing from {imports:?}");
    }
    // world.wit lists the WASI interfaces a second host must serve; keep it true.
    let documented = ["wasi:random/", "wasi:clocks/", "wasi:cli/", "wasi:io/"];
    for import in &imports {
        assert!(
            import.starts_with("rtc:cache/") || documented.iter().any(|d| import.starts_with(d)),
            "{import} is imported but not documented in wit/world.wit"
        );
    }
    assert_eq!(runtime.exports(), ["rtc:cache/cache@0.2.0"]);
}

#[test]
fn the_standalone_component_imports_wasi_only() {
    let runtime = standalone_runtime();
    let imports = runtime.imports();
    assert!(imports.iter().all(|i| i.starts_with("wasi:")), "{imports:?}");
    // It reaches Redis over TCP, and finds it in its environment.
    for needed in ["wasi:sockets/tcp@", "wasi:cli/environment@"] {
        assert!(imports.iter().any(|i| i.starts_with(needed)), "{needed} missing from {imports:?}");
    }
    assert_eq!(runtime.exports(), ["rtc:cache/cache@0.2.0"]);
}

#[test]
fn the_standalone_component_refuses_what_its_provider_cannot_do() {
    let runtime = standalone_runtime();
    for config in [
        Config::default().url(Some("rediss://127.0.0.1:1/".into())),
        Config::default().cluster_nodes(vec!["redis://127.0.0.1:1".into()]),
    ] {
        let e = ComponentCache::builder(Arc::clone(&runtime)).config(config).build().expect_err("refused");
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    }
    let e = ComponentCache::builder(runtime)
        .backend(Arc::new(MemoryBackend::new()))
        .build()
        .expect_err("it takes no backend");
    assert!(e.to_string().contains("takes no backend"), "{e}");
}

/// Get-or-lock options for `key` under the tag `t`, with the lock if `lock` is given.
fn lookup(key: &str, lock: Option<Duration>) -> ComputeOptions {
    let options = ComputeOptions::key(key).tags(["t"]);
    match lock {
        Some(timeout) => options.lock(true).lock_timeout(timeout),
        None => options,
    }
}
