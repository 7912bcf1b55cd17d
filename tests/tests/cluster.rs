//! rtc on a real Redis Cluster (3 masters, 1 replica each): the scenario
//! table, entries spread over the masters, and a master failover.

use std::time::{Duration, Instant};

use rtc_core::{Cache, ComputeOptions, Lifetime};
use rtc_tests::{CacheSurface, RedisCluster, run_table, unique_namespace};

fn cluster_cache(cluster: &RedisCluster, ns: &str) -> Cache {
    Cache::builder()
        .namespace(ns)
        .cluster_nodes(cluster.urls())
        .socket_timeout(Duration::from_millis(1500))
        .socket_connect_timeout(Duration::from_millis(1000))
        .build()
        .expect("build a cluster cache")
}

#[test]
fn cluster_scenarios_spread_and_failover() {
    let mut cluster = RedisCluster::start(3, 1);

    // The scenario table, unchanged.
    run_table("core-cluster", |ns| Box::new(CacheSurface(cluster_cache(&cluster, ns))));

    // A namespace's entries land on more than one master: no single hot slot.
    let ns = unique_namespace("spread");
    let cache = cluster_cache(&cluster, &ns);
    for i in 0..200 {
        cache.set_bytes(&format!("k{i}"), b"v", ["t"], Lifetime::Default).expect("set");
    }
    let masters = cluster.masters();
    let busy = masters.iter().filter(|&&m| cluster.nodes[m].cli(&["DBSIZE"]).parse::<u64>().unwrap_or(0) > 0).count();
    assert!(
        busy >= 2,
        "entries of one namespace should spread over the masters ({busy} of {} hold keys)",
        masters.len()
    );
    assert_eq!(cache.get_bytes("k7", ["t"]).expect("get"), Some(b"v".to_vec()));
    cache.invalidate("t").expect("invalidate");
    assert_eq!(cache.get_bytes("k7", ["t"]).expect("get"), None);

    // Kill a master: the cache keeps answering (bypassing where it must) and
    // recovers once the replica is promoted, with no restart of the cache.
    let victim = masters[0];
    cluster.nodes[victim].kill();
    let started = Instant::now();
    let mut calls = 0usize;
    let mut slowest = Duration::ZERO;
    let recovered = loop {
        calls += 1;
        let t = Instant::now();
        let options = ComputeOptions::key(format!("after-failover-{calls}")).tags(["t"]);
        let v = cache.get_or_compute_bytes(&options, || Ok::<_, ()>(b"computed".to_vec())).expect("value");
        assert_eq!(v, b"computed", "get-or-compute must always return the right value");
        let ok = (0..20).all(|i| {
            let key = format!("probe-{calls}-{i}");
            cache.set_bytes(&key, b"p", ["t"], Lifetime::Default).is_ok()
                && cache.get_bytes(&key, ["t"]).ok().flatten().as_deref() == Some(b"p".as_slice())
        });
        slowest = slowest.max(t.elapsed());
        if ok {
            break true;
        }
        if started.elapsed() > Duration::from_secs(40) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(recovered, "the cache did not recover within 40 s of the failover");
    eprintln!("failover: recovered after {:?}, {calls} rounds, slowest round {slowest:?}", started.elapsed());
}

#[test]
fn the_component_and_native_share_a_cluster() {
    let cluster = RedisCluster::start(3, 0);
    let ns = unique_namespace("cluster-component");
    let config = rtc_core::Config::default().namespace(ns.clone()).cluster_nodes(cluster.urls());
    let component =
        rtc_host::ComponentCache::new(rtc_host::default_component_path(), config).expect("component on a cluster");
    run_table("component-cluster", |ns| {
        let config = rtc_core::Config::default().namespace(ns).cluster_nodes(cluster.urls());
        Box::new(rtc_tests::CacheSurface(
            rtc_host::ComponentCache::new(rtc_host::default_component_path(), config).expect("component"),
        ))
    });
    let native = cluster_cache(&cluster, &ns);
    component.set_bytes("k", b"from the component", ["t"], Lifetime::Default).expect("set");
    assert_eq!(native.get_bytes("k", ["t"]).expect("get"), Some(b"from the component".to_vec()));
    native.invalidate("t").expect("invalidate");
    assert_eq!(component.get_bytes("k", ["t"]).expect("get"), None);
}
