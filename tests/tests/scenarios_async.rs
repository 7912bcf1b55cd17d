//! The scenario table on the async Rust API (`rtc_core::future::Cache`): in
//! memory and on a real Redis; and its stampede lock on a real Redis.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rtc_core::{Cache, ComputeOptions};
use rtc_tests::{AsyncSurface, RedisCluster, RedisServer, run_table, unique_namespace};

#[test]
fn scenario_table_in_memory_async() {
    run_table("async-memory", |ns| {
        Box::new(AsyncSurface::new(Cache::builder().namespace(ns).in_local_memory(true).build_async().expect("build")))
    });
}

#[test]
fn scenario_table_on_redis_async() {
    let redis = RedisServer::start();
    run_table("async-redis", |ns| {
        Box::new(AsyncSurface::new(Cache::builder().namespace(ns).url(Some(redis.url())).build_async().expect("build")))
    });
}

#[test]
fn scenario_table_on_a_cluster_async() {
    let cluster = RedisCluster::start(3, 0);
    run_table("async-cluster", |ns| {
        let cache = Cache::builder()
            .namespace(ns)
            .cluster_nodes(cluster.urls())
            .socket_timeout(Duration::from_millis(1500))
            .build_async()
            .expect("build");
        Box::new(AsyncSurface::new(cache))
    });
    // The async cluster cache and the sync one share entries and invalidations.
    let ns = unique_namespace("async-cluster-share");
    let sync = Cache::builder().namespace(ns.as_str()).cluster_nodes(cluster.urls()).build().expect("sync");
    let surface = AsyncSurface::new(
        Cache::builder().namespace(ns.as_str()).cluster_nodes(cluster.urls()).build_async().expect("async"),
    );
    use rtc_tests::Surface as _;
    let tags = vec!["a".to_string(), "b".to_string(), "c".to_string()];
    surface.set("k", b"v", &tags).expect("set");
    assert_eq!(sync.get_bytes("k", &tags).expect("sync get"), Some(b"v".to_vec()));
    sync.invalidate("b").expect("invalidate");
    assert_eq!(surface.get("k", &tags).expect("get"), None);
}

#[test]
fn sync_and_async_share_entries_on_redis() {
    let redis = RedisServer::start();
    let ns = unique_namespace("async-share");
    let sync = Cache::builder().namespace(ns.as_str()).url(Some(redis.url())).build().expect("sync");
    let cache = Cache::builder().namespace(ns.as_str()).url(Some(redis.url())).build_async().expect("async");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(async {
        cache.set_bytes("k", b"v", ["t"], rtc_core::Lifetime::Default).await.expect("set");
        assert_eq!(sync.get_bytes("k", ["t"]).expect("sync get"), Some(b"v".to_vec()));
        sync.invalidate("t").expect("invalidate");
        assert_eq!(
            cache.get_bytes("k", ["t"]).await.expect("get"),
            None,
            "the sync invalidation reaches the async cache"
        );
    });
}

#[test]
fn sixty_four_tasks_compute_once_under_the_lock_without_blocking_the_runtime() {
    let redis = RedisServer::start();
    let cache =
        Cache::builder().namespace(unique_namespace("async-lock")).url(Some(redis.url())).build_async().expect("async");
    // Two worker threads for 64 tasks: a wait that blocked a thread would starve the holder.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let computed = Arc::new(AtomicUsize::new(0));
    let values = runtime.block_on(async {
        let (release, hold) = tokio::sync::oneshot::channel::<()>();
        let options = ComputeOptions::key("cold").tags(["t"]).lock(true).lock_timeout(Duration::from_secs(20));
        // The holder computes until every waiter has started.
        let holder = {
            let (cache, options, computed) = (cache.clone(), options.clone(), Arc::clone(&computed));
            tokio::spawn(async move {
                cache
                    .get_or_compute(&options, || async move {
                        computed.fetch_add(1, Ordering::SeqCst);
                        let _ = hold.await;
                        42u64
                    })
                    .await
            })
        };
        // Wait (an event, polled) until the holder holds the lock: its computation has started.
        while computed.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let waiters: Vec<_> = (0..63)
            .map(|_| {
                let (cache, options, computed) = (cache.clone(), options.clone(), Arc::clone(&computed));
                tokio::spawn(async move {
                    cache
                        .get_or_compute(&options, || async move {
                            computed.fetch_add(1, Ordering::SeqCst);
                            0u64
                        })
                        .await
                })
            })
            .collect();
        // Most waiters are blocked in BLPOP on Redis (polled, with a deadline), on 2 threads.
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while blocked_clients(&redis) < 32 {
            assert!(std::time::Instant::now() < deadline, "the waiters never blocked on the lock");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // The runtime still serves other work while the tasks wait on the lock.
        cache.set_bytes("other", b"x", ["t"], rtc_core::Lifetime::Default).await.expect("the runtime is not blocked");
        let _ = release.send(());
        let mut values = vec![holder.await.expect("holder")];
        for w in waiters {
            values.push(w.await.expect("waiter"));
        }
        values
    });
    assert_eq!(computed.load(Ordering::SeqCst), 1, "one computation for 64 tasks");
    assert!(values.iter().all(|v| *v == 42), "{values:?}");
}

/// The number of clients blocked in `BLPOP` on `redis`.
fn blocked_clients(redis: &RedisServer) -> usize {
    let info = redis.cli(&["INFO", "clients"]);
    info.lines().find_map(|l| l.strip_prefix("blocked_clients:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

#[test]
fn the_async_api_reports_to_the_hook_as_the_sync_one_does() {
    let redis = RedisServer::start();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let hook_seen = Arc::clone(&seen);
    let cache = Cache::builder()
        .namespace(unique_namespace("async-hook"))
        .url(Some(redis.url()))
        .hook(move |e| hook_seen.lock().expect("seen").push((e.key.to_string(), e.info.clone())))
        .build_async()
        .expect("async");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let options = ComputeOptions::key("h").tags(["t"]).lock(true);
    runtime.block_on(async {
        assert_eq!(cache.get_or_compute(&options, || async { 5u8 }).await, 5);
        assert_eq!(cache.get_or_compute(&options, || async { 6u8 }).await, 5, "a hit");
        // The two-step form reports the same way: a hit now.
        match cache.get_or_lock(&options).await {
            rtc_core::GetOrLock::Hit(hit) => assert!(hit.finish().1.hit),
            other => panic!("expected a hit: {other:?}"),
        }
        // A computation that fails stores nothing, releases the lock and is not reported.
        let failed: Result<u8, &str> =
            cache.try_get_or_compute(&ComputeOptions::key("f").lock(true), || async { Err("no") }).await;
        assert_eq!(failed, Err("no"));
    });
    let seen = seen.lock().expect("seen");
    let flags: Vec<(bool, bool, bool)> = seen.iter().map(|(_, i)| (i.hit, i.lock_full_miss, i.lock_full_hit)).collect();
    assert_eq!(flags, vec![(false, true, false), (true, false, true), (true, false, true)], "{seen:?}");
    assert!(seen.iter().all(|(k, i)| k == "h" && i.error.is_none()));
}
