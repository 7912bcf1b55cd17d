//! Get-or-compute in two calls has the closure form's guarantees (issue 18,
//! item 7): `get_or_lock` meets the other callers of this process that must
//! compute the same key (single-flight: one computes, the others get its
//! value, a leader that gives up hands the flight on), and a failed lookup
//! returns the fail-safe value. Also when Redis is unreachable, where the
//! Redis lock fails open; sync and async, and the component host's two calls
//! (`rtc_host::ComponentCache`, whose flights the pool's instances share).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use rtc_core::{Cache, CacheInfo, ComputeOptions, Config, ErrorKind, GetOrLock};
use rtc_host::ComponentCache;
use rtc_tests::component_surface::component_runtime;
use rtc_tests::{RedisServer, unique_namespace};

const THREADS: usize = 32;

/// A Redis URL where nothing listens (connections are refused at once).
fn unreachable_url() -> String {
    format!("redis://127.0.0.1:{}/", rtc_tests::server::free_port())
}

/// Polls `ready` until it holds, with a deadline (how many callers wait
/// inside the library is not an event we can be told about).
fn until(what: &str, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::yield_now();
    }
}

fn options() -> ComputeOptions {
    ComputeOptions::key("cold").tags(["t"]).lock(true).lock_timeout(Duration::from_secs(20))
}

fn recording() -> (Arc<Mutex<Vec<CacheInfo>>>, impl Fn(&rtc_core::HookEvent<'_>) + Send + Sync + 'static) {
    let seen: Arc<Mutex<Vec<CacheInfo>>> = Arc::default();
    let hook_seen = Arc::clone(&seen);
    (seen, move |e: &rtc_core::HookEvent<'_>| hook_seen.lock().expect("seen").push(e.info.clone()))
}

fn unreachable_cache(name: &str, hook: impl Fn(&rtc_core::HookEvent<'_>) + Send + Sync + 'static) -> Cache {
    Cache::builder()
        .namespace(unique_namespace(name))
        .url(Some(unreachable_url()))
        .socket_connect_timeout(Duration::from_millis(200))
        .hook(hook)
        .build()
        .expect("cache")
}

/// What one caller of the two calls did.
#[derive(Debug, PartialEq)]
enum Did {
    /// Got a ticket, computed and stored (or gave up, when `give_up`).
    Computed,
    GaveUp,
    /// Got another caller's value.
    Reused(Vec<u8>),
}

/// One caller: `get_or_lock`, then on a ticket `before_store(n)` (n: tickets
/// handed out before this one) and `set_and_unlock`, or `release` when
/// `give_up(n)`.
fn caller(cache: &Cache, tickets: &AtomicUsize, before_store: &(dyn Fn(usize) + Sync), give_up: bool) -> Did {
    match cache.get_or_lock(&options()) {
        GetOrLock::Hit(hit) => Did::Reused(hit.finish().0),
        GetOrLock::Locked(ticket) | GetOrLock::Miss(ticket) => {
            let n = tickets.fetch_add(1, Ordering::SeqCst);
            before_store(n);
            if give_up && n == 0 {
                let _ = cache.release(ticket);
                Did::GaveUp
            } else {
                let _ = cache.set_and_unlock(ticket, Ok(b"42"));
                Did::Computed
            }
        }
    }
}

fn unreachable_component(
    name: &str,
    hook: impl Fn(&rtc_core::HookEvent<'_>) + Send + Sync + 'static,
) -> ComponentCache {
    let config = Config::default()
        .namespace(unique_namespace(name))
        .url(Some(unreachable_url()))
        .socket_connect_timeout(Duration::from_millis(200));
    ComponentCache::builder(component_runtime()).config(config).hook(hook).build().expect("component")
}

/// [`caller`] on the component host's two calls; a failed lookup's ticket
/// stores nothing, so its `set_and_unlock` must return the Redis error.
fn component_caller(cache: &ComponentCache, tickets: &AtomicUsize, before_store: &(dyn Fn(usize) + Sync)) -> Did {
    match cache.get_or_lock(&options()).expect("with the lock, a failed lookup is a ticket") {
        rtc_host::GetOrLock::Hit(hit) => Did::Reused(hit.finish()),
        rtc_host::GetOrLock::Locked(ticket) | rtc_host::GetOrLock::Miss(ticket) => {
            let n = tickets.fetch_add(1, Ordering::SeqCst);
            before_store(n);
            let error = cache.set_and_unlock(ticket, b"42").expect_err("Redis is down: nothing stored");
            assert_eq!(error.kind(), ErrorKind::BackendUnavailable, "{error}");
            Did::Computed
        }
    }
}

fn storm(call: impl Fn() -> Did + Sync) -> Vec<Did> {
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

#[test]
fn thirty_two_callers_of_the_two_calls_get_one_ticket_with_redis_unreachable() {
    let (seen, hook) = recording();
    let cache = unreachable_cache("split-down", hook);
    let tickets = AtomicUsize::new(0);
    // The ticket is stored only once every other caller waits for it.
    let gate = |_: usize| until("31 callers follow", || cache.single_flight_waiters() == THREADS - 1);
    let did = storm(|| caller(&cache, &tickets, &gate, false));
    assert_eq!(tickets.load(Ordering::SeqCst), 1, "one ticket for {THREADS} callers, Redis down: {did:?}");
    assert_eq!(did.iter().filter(|d| **d == Did::Reused(b"42".to_vec())).count(), THREADS - 1, "{did:?}");
    let seen = seen.lock().expect("seen");
    assert_eq!(seen.len(), THREADS, "every call is reported once: {seen:#?}");
    assert_eq!(seen.iter().filter(|i| !i.hit).count(), 1, "one miss: {seen:#?}");
    assert!(
        seen.iter().all(|i| i.error.as_ref().map(|e| e.kind()) == Some(ErrorKind::BackendUnavailable)),
        "every report, the followers' too, says Redis was unreachable: {seen:#?}"
    );
    assert_eq!(cache.single_flight_waiters(), 0);
}

/// On the component host, the component reports each failed lookup at once
/// (the WIT's rule), so every report is a miss with the error; still one
/// report per call, and one ticket.
#[test]
fn thirty_two_callers_of_the_component_hosts_two_calls_get_one_ticket_with_redis_unreachable() {
    let (seen, hook) = recording();
    let cache = unreachable_component("split-component-down", hook);
    let tickets = AtomicUsize::new(0);
    let gate = |_: usize| until("31 callers follow", || cache.single_flight_waiters() == THREADS - 1);
    let did = storm(|| component_caller(&cache, &tickets, &gate));
    assert_eq!(tickets.load(Ordering::SeqCst), 1, "one ticket for {THREADS} callers, Redis down: {did:?}");
    assert_eq!(did.iter().filter(|d| **d == Did::Reused(b"42".to_vec())).count(), THREADS - 1, "{did:?}");
    let seen = seen.lock().expect("seen");
    assert_eq!(seen.len(), THREADS, "every call is reported once: {seen:#?}");
    assert!(
        seen.iter().all(|i| i.error.as_ref().map(|e| e.kind()) == Some(ErrorKind::BackendUnavailable)),
        "every report says Redis was unreachable: {seen:#?}"
    );
    assert_eq!(cache.single_flight_waiters(), 0);
}

#[test]
fn a_dropped_ticket_of_the_component_host_hands_the_flight_on() {
    let cache = unreachable_component("split-component-drop", |_| {});
    let first = cache.get_or_lock(&options()).expect("a ticket");
    assert!(matches!(first, rtc_host::GetOrLock::Miss(_)), "Redis is down: a miss, holding no lock: {first:?}");
    std::thread::scope(|s| {
        let follower = s.spawn(|| cache.get_or_lock(&options()).expect("a ticket"));
        until("the second caller follows", || cache.single_flight_waiters() == 1);
        drop(first);
        let rtc_host::GetOrLock::Miss(next) = follower.join().expect("thread") else { panic!("the follower leads") };
        assert!(cache.set_and_unlock(next, b"v").is_err(), "nothing stored with Redis down");
    });
}

/// Without the lock there is no flight: a failed lookup is an error at once.
#[test]
fn without_the_lock_the_component_hosts_failed_lookup_is_an_error() {
    let cache = unreachable_component("split-component-nolock", |_| {});
    let error = cache.get_or_lock(&ComputeOptions::key("cold").tags(["t"])).expect_err("Redis is down");
    assert_eq!(error.kind(), ErrorKind::BackendUnavailable, "{error}");
}

#[test]
fn a_released_ticket_hands_the_flight_to_one_follower_and_the_rest_reuse_its_value() {
    let cache = unreachable_cache("split-release", |_| {});
    let tickets = AtomicUsize::new(0);
    // The first leader gives up once all others follow; the next leads with
    // one caller fewer (the first has returned).
    let gate = |n: usize| until("the others follow", || cache.single_flight_waiters() == THREADS - 1 - n);
    let did = storm(|| caller(&cache, &tickets, &gate, true));
    assert_eq!(did.iter().filter(|d| **d == Did::GaveUp).count(), 1, "{did:?}");
    assert_eq!(did.iter().filter(|d| **d == Did::Computed).count(), 1, "one follower leads next: {did:?}");
    assert_eq!(did.iter().filter(|d| **d == Did::Reused(b"42".to_vec())).count(), THREADS - 2, "{did:?}");
    assert_eq!(tickets.load(Ordering::SeqCst), 2);
}

#[test]
fn a_dropped_ticket_hands_the_flight_on_too() {
    let cache = unreachable_cache("split-drop", |_| {});
    let GetOrLock::Miss(first) = cache.get_or_lock(&options()) else { panic!("Redis is down: a miss") };
    std::thread::scope(|s| {
        let follower = s.spawn(|| cache.get_or_lock(&options()));
        until("the second caller follows", || cache.single_flight_waiters() == 1);
        drop(first); // no I/O; the flight is handed over
        let GetOrLock::Miss(next) = follower.join().expect("thread") else { panic!("the follower leads") };
        let _ = cache.set_and_unlock(next, Ok(b"v"));
    });
}

#[test]
fn the_two_calls_return_the_fail_safe_value_when_redis_goes_away() {
    let mut redis = RedisServer::start();
    let (seen, hook) = recording();
    let cache = Cache::builder()
        .namespace(unique_namespace("split-fail-safe"))
        .url(Some(redis.url()))
        .socket_connect_timeout(Duration::from_millis(200))
        .socket_timeout(Duration::from_millis(500))
        .fail_safe_max_duration(Some(Duration::from_secs(600)))
        .hook(hook)
        .build()
        .expect("cache");
    let GetOrLock::Locked(ticket) = cache.get_or_lock(&options()) else { panic!("a cold key") };
    assert!(cache.set_and_unlock(ticket, Ok(b"confirmed")).error.is_none());
    redis.kill();
    let GetOrLock::Hit(hit) = cache.get_or_lock(&options()) else { panic!("the fail-safe value, not a ticket") };
    let (value, info) = hit.finish();
    assert_eq!(value, b"confirmed");
    assert!(info.hit && info.error.is_some(), "a stale hit says why: {info:?}");
    assert_eq!(seen.lock().expect("seen").len(), 2, "each call reported once");
}

#[test]
fn sixty_four_tasks_of_the_async_two_calls_get_one_ticket_with_redis_unreachable() {
    let cache = Cache::builder()
        .namespace(unique_namespace("split-async"))
        .url(Some(unreachable_url()))
        .socket_connect_timeout(Duration::from_millis(200))
        .build_async()
        .expect("async cache");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let tickets = Arc::new(AtomicUsize::new(0));
    let tasks = 64;
    let did: Vec<Vec<u8>> = runtime.block_on(async {
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let (cache, tickets) = (cache.clone(), Arc::clone(&tickets));
                tokio::spawn(async move {
                    match cache.get_or_lock(&options()).await {
                        GetOrLock::Hit(hit) => hit.finish().0,
                        GetOrLock::Locked(ticket) | GetOrLock::Miss(ticket) => {
                            tickets.fetch_add(1, Ordering::SeqCst);
                            let deadline = Instant::now() + Duration::from_secs(20);
                            while cache.single_flight_waiters() < tasks - 1 {
                                assert!(Instant::now() < deadline, "the other tasks never followed");
                                tokio::task::yield_now().await;
                            }
                            let _ = cache.set_and_unlock(ticket, Ok(b"42")).await;
                            b"42".to_vec()
                        }
                    }
                })
            })
            .collect();
        let mut did = Vec::new();
        for handle in handles {
            did.push(handle.await.expect("task"));
        }
        did
    });
    assert_eq!(tickets.load(Ordering::SeqCst), 1, "one ticket for {tasks} tasks, Redis down");
    assert!(did.iter().all(|v| v == b"42"));
}
