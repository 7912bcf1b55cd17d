//! Fail-safe (issue 12, item 5): with `fail_safe_max_duration` set,
//! get-or-compute returns the last value this process confirmed current when
//! Redis fails or the computation fails, flagged stale, for at most that
//! long, and never a value this process knows to be invalidated.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rtc_core::{Cache, CacheInfo, ComputeOptions, ErrorKind};
use rtc_tests::{RedisServer, unique_namespace};

type Seen = Arc<Mutex<Vec<CacheInfo>>>;

fn cache(redis: &RedisServer, max_age: Duration, seen: &Seen) -> Cache {
    let seen = Arc::clone(seen);
    Cache::builder()
        .namespace(unique_namespace("fail-safe"))
        .url(Some(redis.url()))
        .socket_timeout(Duration::from_millis(500))
        .socket_connect_timeout(Duration::from_millis(500))
        .fail_safe_max_duration(Some(max_age))
        .hook(move |e| seen.lock().expect("seen").push(e.info.clone()))
        .build()
        .expect("cache")
}

fn last(seen: &Seen) -> CacheInfo {
    seen.lock().expect("seen").last().cloned().expect("a report")
}

fn options() -> ComputeOptions {
    ComputeOptions::key("user:1").tags(["users"]).lock(true).lock_timeout(Duration::from_secs(5))
}

#[test]
fn with_redis_down_the_last_confirmed_value_is_returned_flagged_stale() {
    let mut redis = RedisServer::start();
    let seen: Seen = Arc::default();
    let cache = cache(&redis, Duration::from_secs(60), &seen);
    assert_eq!(cache.get_or_compute(&options(), || "Ada".to_string()), "Ada");
    assert!(!last(&seen).stale);
    redis.kill();
    let computed = AtomicUsize::new(0);
    let got = cache.get_or_compute(&options(), || {
        computed.fetch_add(1, Ordering::SeqCst);
        "recomputed".to_string()
    });
    assert_eq!(got, "Ada", "the fail-safe value, not a computation");
    assert_eq!(computed.load(Ordering::SeqCst), 0);
    let info = last(&seen);
    assert!(info.stale && info.hit, "{info:?}");
    assert_eq!(info.error.as_ref().map(|e| e.kind()), Some(ErrorKind::BackendUnavailable), "never silent");
    // Another key was never confirmed: it is computed.
    let other = ComputeOptions::key("user:2").tags(["users"]).lock(true);
    assert_eq!(cache.get_or_compute(&other, || "Grace".to_string()), "Grace");
    assert!(!last(&seen).stale);
}

#[test]
fn a_failed_computation_gets_the_last_confirmed_value_unless_this_process_invalidated_it() {
    let redis = RedisServer::start();
    let seen: Seen = Arc::default();
    let cache = cache(&redis, Duration::from_secs(60), &seen);
    let fail = || -> Result<String, &'static str> { Err("the database is down") };
    assert_eq!(cache.try_get_or_compute(&options(), || Ok::<_, &str>("Ada".to_string())), Ok("Ada".to_string()));
    // The entry goes from Redis (evicted, say) and the computation fails: the fail-safe value.
    let evict = "for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end";
    redis.cli(&["EVAL", evict, "0", "rtc:*:s:*"]);
    assert_eq!(cache.try_get_or_compute(&options(), fail), Ok("Ada".to_string()));
    let info = last(&seen);
    assert!(info.stale && info.hit && info.error.is_some(), "{info:?}");
    // This process invalidates the tag: the value is known invalidated, never served.
    cache.invalidate("users").expect("invalidate");
    assert_eq!(cache.try_get_or_compute(&options(), fail), Err("the database is down"));
    // Nor after tag keys vanished (FLUSHALL): this process saw the tags anew.
    assert_eq!(cache.try_get_or_compute(&options(), || Ok::<_, &str>("Ada".to_string())), Ok("Ada".to_string()));
    redis.cli(&["FLUSHALL"]);
    assert_eq!(cache.try_get_or_compute(&options(), fail), Err("the database is down"));
    // Nor after this process deletes the entry.
    assert_eq!(cache.try_get_or_compute(&options(), || Ok::<_, &str>("Grace".to_string())), Ok("Grace".to_string()));
    assert!(cache.delete("user:1", ["users"]).expect("delete"));
    assert_eq!(cache.try_get_or_compute(&options(), fail), Err("the database is down"));
}

#[test]
fn a_value_older_than_the_maximum_is_not_served_and_fail_safe_is_off_by_default() {
    let mut redis = RedisServer::start();
    let seen: Seen = Arc::default();
    let young = cache(&redis, Duration::from_secs(60), &seen);
    let old = cache(&redis, Duration::ZERO, &seen);
    let off = Cache::builder()
        .namespace(unique_namespace("fail-safe-off"))
        .url(Some(redis.url()))
        .socket_connect_timeout(Duration::from_millis(500))
        .build()
        .expect("cache");
    for c in [&young, &old, &off] {
        assert_eq!(c.get_or_compute(&options(), || "Ada".to_string()), "Ada");
    }
    redis.kill();
    assert_eq!(young.get_or_compute(&options(), || "computed".to_string()), "Ada");
    std::thread::sleep(Duration::from_millis(5)); // an age past the zero maximum, not synchronisation
    assert_eq!(old.get_or_compute(&options(), || "computed".to_string()), "computed", "too old");
    assert_eq!(off.get_or_compute(&options(), || "computed".to_string()), "computed", "off by default");
}
