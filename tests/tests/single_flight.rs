//! In-process single-flight: concurrent get-or-compute calls with the lock on
//! one cold key compute once per process, also when Redis is unreachable
//! (where the cross-process lock fails open).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use rtc_core::{Cache, CacheInfo, ComputeOptions, ErrorKind};
use rtc_tests::{RedisServer, unique_namespace};

const THREADS: usize = 32;

/// A Redis URL where nothing listens (connections are refused at once).
fn unreachable_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    format!("redis://127.0.0.1:{port}/")
}

/// Waits until `n` callers are waiting for the leader (polled, with a deadline).
fn until_followers(cache: &Cache, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while cache.single_flight_waiters() < n && Instant::now() < deadline {
        std::thread::yield_now();
    }
}

fn storm(cache: &Cache, options: &ComputeOptions, computed: &AtomicUsize) -> Vec<Result<u64, String>> {
    let barrier = Barrier::new(THREADS);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    cache.try_get_or_compute(options, || {
                        let n = computed.fetch_add(1, Ordering::SeqCst);
                        // The leader computes until every other caller waits for it (after a
                        // failed first leader, whose caller has returned, one fewer).
                        until_followers(cache, THREADS - 1 - n);
                        if n == 0 && options.cache_key().starts_with("fails") {
                            return Err("the first computation fails".to_string());
                        }
                        Ok(42u64)
                    })
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).collect()
    })
}

#[test]
fn thirty_two_callers_compute_once_with_redis_unreachable() {
    let seen: Arc<Mutex<Vec<CacheInfo>>> = Arc::default();
    let hook_seen = Arc::clone(&seen);
    let cache = Cache::builder()
        .namespace(unique_namespace("flight-down"))
        .url(Some(unreachable_url()))
        .socket_connect_timeout(Duration::from_millis(200))
        .hook(move |e| hook_seen.lock().expect("seen").push(e.info.clone()))
        .build()
        .expect("cache");
    let options = ComputeOptions::key("cold").tags(["t"]).lock(true).lock_timeout(Duration::from_secs(20));
    let computed = AtomicUsize::new(0);
    let results = storm(&cache, &options, &computed);
    assert_eq!(computed.load(Ordering::SeqCst), 1, "one computation for {THREADS} callers, Redis down");
    assert!(results.iter().all(|r| r.as_ref() == Ok(&42)), "{results:?}");
    let seen = seen.lock().expect("seen");
    assert_eq!(seen.len(), THREADS, "every call is reported");
    let leader: Vec<_> = seen.iter().filter(|i| !i.hit).collect();
    assert_eq!(leader.len(), 1, "{seen:?}");
    assert_eq!(leader[0].error.as_ref().map(|e| e.kind()), Some(ErrorKind::BackendUnavailable), "never silent");
    assert!(seen.iter().filter(|i| i.hit).all(|i| !i.lock_full_hit && !i.lock_full_miss && i.error.is_none()));
}

#[test]
fn with_redis_up_one_process_computes_once_and_another_reuses_the_value() {
    let redis = RedisServer::start();
    let ns = unique_namespace("flight-up");
    let cache = Cache::builder().namespace(ns.as_str()).url(Some(redis.url())).build().expect("cache");
    let options = ComputeOptions::key("cold").tags(["t"]).lock(true).lock_timeout(Duration::from_secs(20));
    let computed = AtomicUsize::new(0);
    let results = storm(&cache, &options, &computed);
    assert_eq!(computed.load(Ordering::SeqCst), 1);
    assert!(results.iter().all(|r| r.as_ref() == Ok(&42)));
    // Another process (another cache, its own connections) finds it in Redis.
    let other = Cache::builder().namespace(ns.as_str()).url(Some(redis.url())).build().expect("other");
    let again: u64 = other.get_or_compute(&options, || unreachable!("stored by the first process"));
    assert_eq!(again, 42);
}

#[test]
fn when_the_leader_fails_a_follower_computes_and_the_rest_reuse_its_value() {
    let cache = Cache::builder()
        .namespace(unique_namespace("flight-fails"))
        .url(Some(unreachable_url()))
        .socket_connect_timeout(Duration::from_millis(200))
        .build()
        .expect("cache");
    let options = ComputeOptions::key("fails-first").lock(true).lock_timeout(Duration::from_secs(20));
    let computed = AtomicUsize::new(0);
    let results = storm(&cache, &options, &computed);
    // The failed leader's caller gets its error; one follower computes next; the rest reuse that.
    assert_eq!(results.iter().filter(|r| r.is_err()).count(), 1, "{results:?}");
    assert_eq!(results.iter().filter(|r| r.as_ref() == Ok(&42)).count(), THREADS - 1);
    assert_eq!(computed.load(Ordering::SeqCst), 2);
}
