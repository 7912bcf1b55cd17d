//! The scenario table through the rtc component (loaded by the wasmtime
//! host), and entries and invalidations crossing between the native engine
//! and the component engine.
//!
//! Needs the built component: `cargo build --profile component --locked
//! --target wasm32-wasip2 -p rtc-component` (the README's test command runs it).

use std::sync::Arc;

use rtc_core::{Backend, Cache, ComputeOptions, Config, Lifetime, MemoryBackend};
use rtc_host::ComponentCache;
use rtc_tests::CacheSurface;
use rtc_tests::component_surface::{component_runtime, standalone_runtime};
use rtc_tests::{RedisServer, run_table, unique_namespace};

fn on_redis(redis: &RedisServer, namespace: &str) -> Config {
    Config::default().namespace(namespace).url(Some(redis.url()))
}

#[test]
fn scenario_table_on_redis() {
    let redis = RedisServer::start();
    let runtime = component_runtime();
    run_table("component-redis", |ns| {
        let cache = ComponentCache::builder(Arc::clone(&runtime)).config(on_redis(&redis, ns)).build().expect("build");
        Box::new(CacheSurface(cache))
    });
}

#[test]
fn scenario_table_through_the_standalone_component_on_redis() {
    // Its own Redis client (the provider, over wasi:sockets) runs every batch.
    let redis = RedisServer::start();
    let runtime = standalone_runtime();
    run_table("standalone-redis", |ns| {
        let cache = ComponentCache::builder(Arc::clone(&runtime)).config(on_redis(&redis, ns)).build().expect("build");
        Box::new(CacheSurface(cache))
    });
}

#[test]
fn scenario_table_through_the_standalone_component_in_its_memory() {
    let runtime = standalone_runtime();
    run_table("standalone-memory", |ns| {
        let config = Config::default().namespace(ns).in_local_memory(true);
        let cache = ComponentCache::builder(Arc::clone(&runtime)).config(config).build().expect("build");
        Box::new(CacheSurface(cache))
    });
}

#[test]
fn scenario_table_on_the_host_memory_backend() {
    let runtime = component_runtime();
    run_table("component-memory", |ns| {
        let config = Config::default().namespace(ns).in_local_memory(true);
        let cache = ComponentCache::builder(Arc::clone(&runtime)).config(config).build().expect("build");
        Box::new(CacheSurface(cache))
    });
}

#[test]
fn scenario_table_in_guest_memory() {
    let runtime = component_runtime();
    run_table("component-guest-memory", |ns| {
        let config = Config::default().namespace(ns);
        let cache =
            ComponentCache::builder(Arc::clone(&runtime)).config(config).guest_memory(true).build().expect("build");
        Box::new(CacheSurface(cache))
    });
}

#[test]
fn the_convenience_constructor_picks_the_backend_from_the_config() {
    let redis = RedisServer::start();
    let ns = unique_namespace("component-new");
    let path = rtc_host::default_component_path();
    let _ = component_runtime(); // a clear message if the component is missing
    let component = ComponentCache::new(&path, on_redis(&redis, &ns)).expect("component on Redis");
    component.set_bytes("k", b"v", ["t"], Lifetime::Default).expect("set");
    let native = Cache::new(on_redis(&redis, &ns)).expect("native");
    assert_eq!(native.get_bytes("k", ["t"]).expect("get"), Some(b"v".to_vec()), "the component wrote to that Redis");

    let memory = Config::default().namespace(ns).in_local_memory(true);
    let component = ComponentCache::new(&path, memory).expect("component in memory");
    assert_eq!(component.get_bytes("k", ["t"]).expect("get"), None, "memory is not Redis");
    component.set_bytes("k", b"m", ["t"], Lifetime::Default).expect("set");
    assert_eq!(component.get_bytes("k", ["t"]).expect("get"), Some(b"m".to_vec()));
}

/// Runs the crossover checks between `native` and `component`, which share
/// one store and one namespace.
fn crossover(native: &Cache, component: &ComponentCache) {
    // Native writes, the component reads; and back.
    native.set_bytes("n", b"from-native", ["a", "b"], Lifetime::Default).expect("native set");
    assert_eq!(component.get_bytes("n", ["b", "a"]).expect("get"), Some(b"from-native".to_vec()));
    component.set_bytes("c", b"from-component", ["b"], Lifetime::Default).expect("component set");
    assert_eq!(native.get_bytes("c", ["b"]).expect("get"), Some(b"from-component".to_vec()));

    // Typed values use the same codec (CBOR) on both sides.
    native.set("typed", &(7u32, "seven"), ["a"], Lifetime::Default).expect("set");
    assert_eq!(component.get::<(u32, String)>("typed", ["a"]).expect("get"), Some((7, "seven".to_string())));
    component.set("typed2", &vec![1u8, 2, 3], ["b"], Lifetime::Default).expect("set");
    assert_eq!(native.get::<Vec<u8>>("typed2", ["b"]).expect("get"), Some(vec![1, 2, 3]));

    // A native invalidation hides the component's entries, and back.
    native.invalidate("b").expect("native invalidate");
    assert_eq!(component.get_bytes("n", ["a", "b"]).expect("get"), None);
    assert_eq!(component.get_bytes("c", ["b"]).expect("get"), None);
    assert_eq!(component.get::<(u32, String)>("typed", ["a"]).expect("get"), Some((7, "seven".to_string())));
    component.invalidate("a").expect("component invalidate");
    assert_eq!(native.get::<(u32, String)>("typed", ["a"]).expect("get"), None);

    // Delete crosses over.
    component.set_bytes("d", b"x", ["d"], Lifetime::Default).expect("set");
    assert!(native.delete("d", ["d"]).expect("delete"));
    assert!(!component.delete("d", ["d"]).expect("delete"));

    // invalidate_all crosses over, both ways.
    native.set_bytes("all", b"1", ["z"], Lifetime::Default).expect("set");
    component.invalidate_all().expect("invalidate_all");
    assert_eq!(native.get_bytes("all", ["z"]).expect("get"), None);
    component.set_bytes("all", b"2", ["z"], Lifetime::Default).expect("set");
    native.invalidate_all().expect("invalidate_all");
    assert_eq!(component.get_bytes("all", ["z"]).expect("get"), None);

    // get-or-compute: computed by one engine, cached for the other.
    let options = ComputeOptions::key("computed").tags(["g"]).lock(true);
    let v: String = component.get_or_compute(&options, || "by-component".to_string());
    assert_eq!(v, "by-component");
    let v: String = native.get_or_compute(&options, || unreachable!("the component stored it"));
    assert_eq!(v, "by-component");
    native.invalidate("g").expect("invalidate");
    let v: String = native.get_or_compute(&options, || "by-native".to_string());
    assert_eq!(v, "by-native");
    let v: String = component.get_or_compute(&options, || unreachable!("native stored it"));
    assert_eq!(v, "by-native");

    // Keys derived from a function and its arguments are the same on both.
    let call = ComputeOptions::call(rtc_core::function_id!("square"), &(9u64,)).expect("options").tags(["sq"]);
    let v: u64 = native.get_or_compute(&call, || 81);
    assert_eq!(v, 81);
    let v: u64 = component.get_or_compute(&call, || unreachable!("native stored it"));
    assert_eq!(v, 81);
}

#[test]
fn native_and_component_share_entries_and_invalidations_on_redis() {
    let redis = RedisServer::start();
    let ns = unique_namespace("crossover-redis");
    let native = Cache::new(on_redis(&redis, &ns)).expect("native");
    let component =
        ComponentCache::builder(component_runtime()).config(on_redis(&redis, &ns)).build().expect("component");
    crossover(&native, &component);
}

#[test]
fn native_and_the_standalone_component_share_entries_and_invalidations_on_redis() {
    let redis = RedisServer::start();
    let ns = unique_namespace("cross-standalone");
    let native = Cache::new(on_redis(&redis, &ns)).expect("native");
    let component =
        ComponentCache::builder(standalone_runtime()).config(on_redis(&redis, &ns)).build().expect("component");
    crossover(&native, &component);
}

#[test]
fn native_and_component_share_entries_and_invalidations_in_memory() {
    let memory: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let config = Config::default().namespace(unique_namespace("crossover-memory"));
    let native = Cache::builder().config(config.clone()).backend(Arc::clone(&memory)).build().expect("native");
    let component =
        ComponentCache::builder(component_runtime()).config(config).backend(memory).build().expect("component");
    crossover(&native, &component);
}

#[test]
fn namespaces_separate_the_engines_too() {
    let redis = RedisServer::start();
    let native = Cache::new(on_redis(&redis, &unique_namespace("ns-a"))).expect("native");
    let component = ComponentCache::builder(component_runtime())
        .config(on_redis(&redis, &unique_namespace("ns-b")))
        .build()
        .expect("component");
    native.set_bytes("k", b"v", ["t"], Lifetime::Default).expect("set");
    assert_eq!(component.get_bytes("k", ["t"]).expect("get"), None);
}
