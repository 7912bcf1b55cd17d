//! In-process single-flight (issue 12, item 4): concurrent get-or-compute
//! calls with the lock on one cold key compute once per process, also when
//! Redis is unreachable (where the cross-process lock fails open), natively
//! and on the component host; with Redis up the cross-process lock works as
//! before.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use rtc_core::{Cache, CacheInfo, ComputeOptions, Config, ErrorKind};
use rtc_host::ComponentCache;
use rtc_tests::component_surface::component_runtime;
use rtc_tests::{RedisServer, unique_namespace};

const THREADS: usize = 32;

/// A Redis URL where nothing listens (connections are refused at once).
fn unreachable_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    format!("redis://127.0.0.1:{port}/")
}

/// Polls `ready` until it holds, with a deadline (an event we cannot be
/// told about: how many threads wait inside the library).
fn until(what: &str, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::yield_now();
    }
}

/// What the storm's computation does before returning (given how many
/// computations ran before it): waits until the other callers wait for it.
type Gate<'a> = &'a (dyn Fn(usize) + Sync);

/// `THREADS` callers of `call` at once; `call` computes with `compute`.
fn storm<F>(call: F) -> Vec<Result<u64, String>>
where
    F: Fn() -> Result<u64, String> + Sync,
{
    let barrier = Barrier::new(THREADS);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    call()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).collect()
    })
}

/// The computation of a storm: counts itself, waits at `gate`, and fails
/// the first time when `fail_first`.
fn computation(computed: &AtomicUsize, gate: Gate<'_>, fail_first: bool) -> Result<u64, String> {
    let n = computed.fetch_add(1, Ordering::SeqCst);
    gate(n);
    if n == 0 && fail_first {
        return Err("the first computation fails".to_string());
    }
    Ok(42)
}

fn recording() -> (Arc<Mutex<Vec<CacheInfo>>>, impl Fn(&rtc_core::HookEvent<'_>) + Send + Sync + 'static) {
    let seen: Arc<Mutex<Vec<CacheInfo>>> = Arc::default();
    let hook_seen = Arc::clone(&seen);
    (seen, move |e: &rtc_core::HookEvent<'_>| hook_seen.lock().expect("seen").push(e.info.clone()))
}

fn options() -> ComputeOptions {
    ComputeOptions::key("cold").tags(["t"]).lock(true).lock_timeout(Duration::from_secs(20))
}

/// Every call is reported once, with the error (never silent, also for the
/// callers that reused another's value), and `computed` of them as misses.
fn check_reports(seen: &Mutex<Vec<CacheInfo>>, computed: usize) {
    let seen = seen.lock().expect("seen");
    assert_eq!(seen.len(), THREADS, "every call is reported once: {seen:#?}");
    assert_eq!(seen.iter().filter(|i| !i.hit).count(), computed, "misses: {seen:#?}");
    assert!(
        seen.iter().all(|i| i.error.as_ref().map(|e| e.kind()) == Some(ErrorKind::BackendUnavailable)),
        "every report, the followers' too, says Redis was unreachable: {seen:#?}"
    );
    assert!(seen.iter().filter(|i| i.hit).all(|i| !i.lock_full_hit && !i.lock_full_miss));
}

#[test]
fn thirty_two_callers_compute_once_with_redis_unreachable() {
    let (seen, hook) = recording();
    let cache = Cache::builder()
        .namespace(unique_namespace("flight-down"))
        .url(Some(unreachable_url()))
        .socket_connect_timeout(Duration::from_millis(200))
        .hook(hook)
        .build()
        .expect("cache");
    let computed = AtomicUsize::new(0);
    // The computation lasts until every other caller waits for it.
    let gate = |_: usize| until("31 callers follow", || cache.single_flight_waiters() == THREADS - 1);
    let results = storm(|| cache.try_get_or_compute(&options(), || computation(&computed, &gate, false)));
    assert_eq!(computed.load(Ordering::SeqCst), 1, "one computation for {THREADS} callers, Redis down");
    assert!(results.iter().all(|r| r.as_ref() == Ok(&42)), "{results:?}");
    check_reports(&seen, 1);
}

/// On the component, a failed get-or-lock is reported by the component at
/// once (the WIT's rule: the host may have no ticket to finish), so every
/// report says miss; still one report per call, each with the error.
#[test]
fn the_component_host_computes_once_with_redis_unreachable() {
    let (seen, hook) = recording();
    let config = Config::default()
        .namespace(unique_namespace("flight-component"))
        .url(Some(unreachable_url()))
        .socket_connect_timeout(Duration::from_millis(200));
    let cache = ComponentCache::builder(component_runtime()).config(config).hook(hook).build().expect("component");
    let computed = AtomicUsize::new(0);
    let gate = |_: usize| until("31 callers follow", || cache.single_flight_waiters() == THREADS - 1);
    let results = storm(|| cache.try_get_or_compute(&options(), || computation(&computed, &gate, false)));
    assert_eq!(computed.load(Ordering::SeqCst), 1, "one computation for {THREADS} callers on the component");
    assert!(results.iter().all(|r| r.as_ref() == Ok(&42)), "{results:?}");
    check_reports(&seen, THREADS);
}

#[test]
fn when_the_leader_fails_a_follower_computes_and_the_rest_reuse_its_value() {
    let cache = Cache::builder()
        .namespace(unique_namespace("flight-fails"))
        .url(Some(unreachable_url()))
        .socket_connect_timeout(Duration::from_millis(200))
        .build()
        .expect("cache");
    let computed = AtomicUsize::new(0);
    // The first leader fails once all others follow; the next leads with one
    // caller fewer (the failed one has returned).
    let gate = |n: usize| until("the others follow", || cache.single_flight_waiters() == THREADS - 1 - n);
    let results = storm(|| cache.try_get_or_compute(&options(), || computation(&computed, &gate, true)));
    assert_eq!(results.iter().filter(|r| r.is_err()).count(), 1, "{results:?}");
    assert_eq!(results.iter().filter(|r| r.as_ref() == Ok(&42)).count(), THREADS - 1);
    assert_eq!(computed.load(Ordering::SeqCst), 2, "the failed leader, then one follower");
}

#[test]
fn with_redis_up_the_redis_lock_still_decides_and_another_process_reuses_the_value() {
    let redis = RedisServer::start();
    let ns = unique_namespace("flight-up");
    let cache = Cache::builder().namespace(ns.as_str()).url(Some(redis.url())).build().expect("cache");
    let computed = AtomicUsize::new(0);
    // The other callers wait on the Redis lock (in BLPOP), as before single-flight.
    let blocked = || redis.cli(&["CLIENT", "LIST"]).lines().filter(|l| l.contains("cmd=blpop")).count();
    let gate = |_: usize| until("31 callers wait on the Redis lock", || blocked() == THREADS - 1);
    let results = storm(|| cache.try_get_or_compute(&options(), || computation(&computed, &gate, false)));
    assert_eq!(computed.load(Ordering::SeqCst), 1);
    assert!(results.iter().all(|r| r.as_ref() == Ok(&42)), "{results:?}");
    assert_eq!(cache.single_flight_waiters(), 0);
    // Another process (another cache, its own connections) finds it in Redis.
    let other = Cache::builder().namespace(ns.as_str()).url(Some(redis.url())).build().expect("other");
    let again: u64 = other.get_or_compute(&options(), || unreachable!("stored by the first process"));
    assert_eq!(again, 42);
}

/// The async API too: 64 tasks on 2 worker threads, Redis unreachable, one
/// computation; the followers wait without blocking the runtime's threads
/// (the leader's computation itself runs on them).
#[test]
fn sixty_four_tasks_compute_once_with_redis_unreachable_on_the_async_api() {
    let (seen, hook) = recording();
    let cache = Cache::builder()
        .namespace(unique_namespace("flight-async"))
        .url(Some(unreachable_url()))
        .socket_connect_timeout(Duration::from_millis(200))
        .hook(hook)
        .build_async()
        .expect("async cache");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let computed = Arc::new(AtomicUsize::new(0));
    let tasks = 64;
    let results: Vec<u64> = runtime.block_on(async {
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let (cache, computed) = (cache.clone(), Arc::clone(&computed));
                tokio::spawn(async move {
                    let waiting = cache.clone();
                    cache
                        .get_or_compute(&options(), || async move {
                            computed.fetch_add(1, Ordering::SeqCst);
                            // Until every other task follows (polled, with a deadline).
                            let deadline = Instant::now() + Duration::from_secs(20);
                            while waiting.single_flight_waiters() < tasks - 1 {
                                assert!(Instant::now() < deadline, "the other tasks never followed");
                                tokio::task::yield_now().await;
                            }
                            42u64
                        })
                        .await
                })
            })
            .collect();
        let mut results = Vec::new();
        for handle in handles {
            results.push(handle.await.expect("task"));
        }
        results
    });
    assert_eq!(computed.load(Ordering::SeqCst), 1, "one computation for {tasks} tasks, Redis down");
    assert!(results.iter().all(|v| *v == 42), "{results:?}");
    let seen = seen.lock().expect("seen");
    assert_eq!(seen.len(), tasks, "every call is reported once");
    assert_eq!(seen.iter().filter(|i| !i.hit).count(), 1, "one computed");
    assert!(seen.iter().all(|i| i.error.is_some()), "never silent: {seen:#?}");
}
