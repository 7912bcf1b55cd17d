//! Fail-safe (issue 12, item 5): with `fail_safe_max_duration` set,
//! get-or-compute returns the last value this process confirmed current when
//! Redis fails or the computation fails, flagged stale, for at most that
//! long, and never a value this process knows to be invalidated. The
//! native cache and the component on its wasmtime host (which keeps the
//! values below the component, `rtc_core::adapter::HostBackend`) run the
//! same cases, and so does the async API (`rtc_core::future::Cache`), whose
//! get-or-compute awaits the same decisions.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rtc_core::{Cache, CacheInfo, ComputeOptions, Config, ErrorKind};
use rtc_host::{ComponentCache, ComponentRuntime};
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

/// The surface under test: the native cache, or the component on its host
/// (which keeps the fail-safe values below the component).
trait Surface {
    fn get_or_compute(
        &self,
        options: &ComputeOptions,
        compute: &mut dyn FnMut() -> Result<String, Failed>,
    ) -> Result<String, Failed>;
    fn invalidate(&self, tag: &str);
    fn delete(&self, key: &str, tags: &[&str]) -> bool;
}

type Failed = &'static str;
type Make = fn(&RedisServer, Duration, &Seen) -> Box<dyn Surface>;

impl Surface for Cache {
    fn get_or_compute(
        &self,
        options: &ComputeOptions,
        compute: &mut dyn FnMut() -> Result<String, Failed>,
    ) -> Result<String, Failed> {
        self.try_get_or_compute(options, compute)
    }
    fn invalidate(&self, tag: &str) {
        Cache::invalidate(self, tag).expect("invalidate");
    }
    fn delete(&self, key: &str, tags: &[&str]) -> bool {
        Cache::delete(self, key, tags).expect("delete")
    }
}

impl Surface for ComponentCache {
    fn get_or_compute(
        &self,
        options: &ComputeOptions,
        compute: &mut dyn FnMut() -> Result<String, Failed>,
    ) -> Result<String, Failed> {
        self.try_get_or_compute(options, compute)
    }
    fn invalidate(&self, tag: &str) {
        ComponentCache::invalidate(self, tag).expect("invalidate");
    }
    fn delete(&self, key: &str, tags: &[&str]) -> bool {
        ComponentCache::delete(self, key, tags).expect("delete")
    }
}

/// The async API, each call run to completion on its own runtime.
struct Async {
    cache: rtc_core::future::Cache,
    runtime: tokio::runtime::Runtime,
}

impl Surface for Async {
    fn get_or_compute(
        &self,
        options: &ComputeOptions,
        compute: &mut dyn FnMut() -> Result<String, Failed>,
    ) -> Result<String, Failed> {
        self.runtime.block_on(self.cache.try_get_or_compute(options, || async { compute() }))
    }
    fn invalidate(&self, tag: &str) {
        self.runtime.block_on(self.cache.invalidate(tag)).expect("invalidate");
    }
    fn delete(&self, key: &str, tags: &[&str]) -> bool {
        self.runtime.block_on(self.cache.delete(key, tags)).expect("delete")
    }
}

fn asynchronous(redis: &RedisServer, max_age: Duration, seen: &Seen) -> Box<dyn Surface> {
    let seen = Arc::clone(seen);
    let cache = Cache::builder()
        .namespace(unique_namespace("fail-safe-async"))
        .url(Some(redis.url()))
        .socket_timeout(Duration::from_millis(500))
        .socket_connect_timeout(Duration::from_millis(500))
        .fail_safe_max_duration(Some(max_age))
        .hook(move |e| seen.lock().expect("seen").push(e.info.clone()))
        .build_async()
        .expect("async cache");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    Box::new(Async { cache, runtime })
}

fn native(redis: &RedisServer, max_age: Duration, seen: &Seen) -> Box<dyn Surface> {
    Box::new(cache(redis, max_age, seen))
}

fn component(redis: &RedisServer, max_age: Duration, seen: &Seen) -> Box<dyn Surface> {
    let seen = Arc::clone(seen);
    let config = Config::default()
        .namespace(unique_namespace("fail-safe-component"))
        .url(Some(redis.url()))
        .socket_timeout(Duration::from_millis(500))
        .socket_connect_timeout(Duration::from_millis(500))
        .fail_safe_max_duration(Some(max_age));
    let runtime = ComponentRuntime::shared(rtc_host::default_component_path()).expect("the component");
    let cache = ComponentCache::builder(runtime)
        .config(config)
        .hook(move |e| seen.lock().expect("seen").push(e.info.clone()))
        .build()
        .expect("component cache");
    Box::new(cache)
}

fn ok(value: &str) -> impl FnMut() -> Result<String, Failed> + '_ {
    move || Ok(value.to_string())
}

fn with_redis_down_the_last_confirmed_value_is_returned_flagged_stale(make: Make) {
    let mut redis = RedisServer::start();
    let seen: Seen = Arc::default();
    let cache = make(&redis, Duration::from_secs(60), &seen);
    assert_eq!(cache.get_or_compute(&options(), &mut ok("Ada")), Ok("Ada".to_string()));
    assert!(!last(&seen).stale);
    redis.kill();
    let computed = AtomicUsize::new(0);
    let reports = seen.lock().expect("seen").len();
    let got = cache.get_or_compute(&options(), &mut || {
        computed.fetch_add(1, Ordering::SeqCst);
        Ok("recomputed".to_string())
    });
    assert_eq!(got, Ok("Ada".to_string()), "the fail-safe value, not a computation");
    assert_eq!(computed.load(Ordering::SeqCst), 0);
    let info = last(&seen);
    assert!(info.stale && info.hit, "{info:?}");
    assert_eq!(info.error.as_ref().map(|e| e.kind()), Some(ErrorKind::BackendUnavailable), "never silent");
    assert_eq!(seen.lock().expect("seen").len(), reports + 1, "one report per call");
    // Another key was never confirmed: it is computed.
    let other = ComputeOptions::key("user:2").tags(["users"]).lock(true);
    assert_eq!(cache.get_or_compute(&other, &mut ok("Grace")), Ok("Grace".to_string()));
    let info = last(&seen);
    assert!(!info.stale && info.error.is_some(), "{info:?}");
}

#[test]
fn with_redis_down_the_last_confirmed_value_is_returned_flagged_stale_native() {
    with_redis_down_the_last_confirmed_value_is_returned_flagged_stale(native);
}

#[test]
fn with_redis_down_the_last_confirmed_value_is_returned_flagged_stale_component() {
    with_redis_down_the_last_confirmed_value_is_returned_flagged_stale(component);
}

#[test]
fn with_redis_down_the_last_confirmed_value_is_returned_flagged_stale_async() {
    with_redis_down_the_last_confirmed_value_is_returned_flagged_stale(asynchronous);
}

fn a_failed_computation_gets_the_last_confirmed_value_unless_this_process_invalidated_it(make: Make) {
    let redis = RedisServer::start();
    let seen: Seen = Arc::default();
    let cache = make(&redis, Duration::from_secs(60), &seen);
    let mut fail = || -> Result<String, Failed> { Err("the database is down") };
    assert_eq!(cache.get_or_compute(&options(), &mut ok("Ada")), Ok("Ada".to_string()));
    // The entry goes from Redis (evicted, say) and the computation fails: the fail-safe value.
    let evict = "for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end";
    redis.cli(&["EVAL", evict, "0", "rtc:*:s:*"]);
    assert_eq!(cache.get_or_compute(&options(), &mut fail), Ok("Ada".to_string()));
    let info = last(&seen);
    assert!(info.stale && info.hit && info.error.is_some(), "{info:?}");
    // This process invalidates the tag: the value is known invalidated, never served.
    cache.invalidate("users");
    assert_eq!(cache.get_or_compute(&options(), &mut fail), Err("the database is down"));
    // Nor after tag keys vanished (FLUSHALL): this process saw the tags anew.
    assert_eq!(cache.get_or_compute(&options(), &mut ok("Ada")), Ok("Ada".to_string()));
    redis.cli(&["FLUSHALL"]);
    assert_eq!(cache.get_or_compute(&options(), &mut fail), Err("the database is down"));
    // Nor after this process deletes the entry.
    assert_eq!(cache.get_or_compute(&options(), &mut ok("Grace")), Ok("Grace".to_string()));
    assert!(cache.delete("user:1", &["users"]));
    assert_eq!(cache.get_or_compute(&options(), &mut fail), Err("the database is down"));
}

#[test]
fn a_failed_computation_gets_the_last_confirmed_value_unless_this_process_invalidated_it_native() {
    a_failed_computation_gets_the_last_confirmed_value_unless_this_process_invalidated_it(native);
}

#[test]
fn a_failed_computation_gets_the_last_confirmed_value_unless_this_process_invalidated_it_component() {
    a_failed_computation_gets_the_last_confirmed_value_unless_this_process_invalidated_it(component);
}

#[test]
fn a_failed_computation_gets_the_last_confirmed_value_unless_this_process_invalidated_it_async() {
    a_failed_computation_gets_the_last_confirmed_value_unless_this_process_invalidated_it(asynchronous);
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
