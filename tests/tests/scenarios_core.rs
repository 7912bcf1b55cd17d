//! The scenario table on the native Rust API: in memory and on a real Redis.

use rtc_core::Cache;
use rtc_tests::{CacheSurface, RedisServer, run_table};

#[test]
fn scenario_table_in_memory() {
    run_table("core-memory", |ns| {
        Box::new(CacheSurface(Cache::builder().namespace(ns).in_local_memory(true).build().expect("build")))
    });
}

#[test]
fn scenario_table_on_redis() {
    let redis = RedisServer::start();
    run_table("core-redis", |ns| {
        Box::new(CacheSurface(Cache::builder().namespace(ns).url(Some(redis.url())).build().expect("build")))
    });
}

#[test]
fn scenario_table_parses_every_line() {
    let table = rtc_tests::scenarios::table();
    let steps: usize = table.iter().map(|s| s.steps.len()).sum();
    assert!(table.len() >= 15 && steps >= 50, "{} scenarios, {steps} steps", table.len());
}
