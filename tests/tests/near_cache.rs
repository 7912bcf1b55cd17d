//! The near cache (issue 12, items 1-3) on a real redis-server: hits with no
//! round trip, kept coherent by Redis's invalidation pushes. Two caches on
//! separate connections stand for two processes: one reads through its near
//! cache, the other writes and invalidates. Prints the staleness window (from
//! the writer's call returning to the reader's first fresh read) and asserts
//! no read was stale beyond the bound: the push delivery plus the heartbeat
//! deadline, here a generous `BOUND`.

use std::time::{Duration, Instant};

use rtc_core::{Cache, Lifetime, NearStats};
use rtc_tests::{RedisServer, unique_namespace};

/// Push delivery (microseconds here) + the tracking thread's 100 ms poll +
/// its 1 s heartbeat deadline, with room for a busy 2-core machine.
const BOUND: Duration = Duration::from_millis(2500);

fn near(redis: &RedisServer, ns: &str) -> Cache {
    Cache::builder()
        .namespace(ns)
        .url(Some(redis.url()))
        .near_cache_max_entries(10_000usize)
        .build()
        .expect("near cache")
}

fn plain(redis: &RedisServer, ns: &str) -> Cache {
    Cache::builder().namespace(ns).url(Some(redis.url())).build().expect("cache")
}

fn stats(cache: &Cache) -> NearStats {
    cache.near_stats().expect("the near cache is on")
}

/// Polls until the near cache's tracking connection is subscribed.
fn until_live(cache: &Cache) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !stats(cache).live {
        assert!(Instant::now() < deadline, "the tracking connection never came up");
        std::thread::yield_now();
    }
}

/// Reads `key` until it is no longer `old`; returns how long that took.
/// Fails on a stale read later than `BOUND` after `since`.
fn until_fresh(cache: &Cache, key: &str, tags: &[&str], old: &[u8], since: Instant) -> Duration {
    loop {
        // A failed read (Redis restarting) returns no value, so it is never stale.
        let got = cache.get_bytes(key, tags).ok().flatten();
        let elapsed = since.elapsed();
        if got.as_deref() != Some(old) {
            return elapsed;
        }
        assert!(elapsed < BOUND, "{key}: still the old value {elapsed:?} after the change returned");
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[test]
fn hits_take_no_round_trip_and_another_process_changes_reach_it_within_the_bound() {
    let redis = RedisServer::start();
    let ns = unique_namespace("near");
    let reader = near(&redis, &ns);
    let writer = plain(&redis, &ns);
    until_live(&reader);

    writer.set_bytes("k", b"v0", ["t"], Lifetime::Default).expect("set");
    // Read until served locally (a read that raced the set's own push is not installed).
    let deadline = Instant::now() + BOUND;
    loop {
        let hits = stats(&reader).hits;
        assert_eq!(reader.get_bytes("k", ["t"]).expect("get"), Some(b"v0".to_vec()));
        if stats(&reader).hits > hits {
            break;
        }
        assert!(Instant::now() < deadline, "never served from the near cache");
    }
    let before = stats(&reader);
    let calls = |r: &RedisServer| -> u64 {
        let info = r.cli(&["INFO", "commandstats"]);
        info.lines()
            .filter_map(|l| l.split_once("calls=").and_then(|(_, rest)| rest.split(',').next()?.parse::<u64>().ok()))
            .sum()
    };
    let commands = calls(&redis);
    for _ in 0..100 {
        assert_eq!(reader.get_bytes("k", ["t"]).expect("get"), Some(b"v0".to_vec()));
    }
    // INFO itself is one command, and the tracking connection may PING twice
    // per 100 ms; 100 hits that went to Redis would be 300 more (GET, PTTL, MGET).
    assert!(calls(&redis) <= commands + 7, "near hits went to Redis");
    assert_eq!(stats(&reader).hits - before.hits, 100);

    // The writer changes things in every way; the reader sees each within the bound.
    let mut windows = Vec::new();
    for round in 0..60 {
        let old = format!("v{round}").into_bytes();
        writer.set_bytes("k", &old, ["t"], Lifetime::Default).expect("set");
        let started = Instant::now();
        // The reader gets the new value (after the set's push), then serves it locally.
        while reader.get_bytes("k", ["t"]).expect("get").as_deref() != Some(&old[..]) {
            assert!(started.elapsed() < BOUND, "the reader never saw the set");
        }
        let since = Instant::now();
        match round % 4 {
            0 => writer.invalidate("t").expect("invalidate"),
            1 => writer.invalidate_all().expect("invalidate_all"),
            2 => assert!(writer.delete("k", ["t"]).expect("delete")),
            _ => writer.set_bytes("k", b"overwritten", ["t"], Lifetime::Default).expect("overwrite"),
        }
        windows.push(until_fresh(&reader, "k", &["t"], &old, since));
    }
    windows.sort();
    println!(
        "NEAR staleness over {} changes: p50 {:?}, p99 {:?}, max {:?} (bound {BOUND:?}); {:?}",
        windows.len(),
        percentile(&windows, 0.5),
        percentile(&windows, 0.99),
        windows[windows.len() - 1],
        stats(&reader)
    );
}

#[test]
fn own_writes_apply_before_the_call_returns() {
    let redis = RedisServer::start();
    let cache = near(&redis, &unique_namespace("near-own"));
    until_live(&cache);
    cache.set_bytes("k", b"v", ["t"], Lifetime::Default).expect("set");
    assert_eq!(cache.get_bytes("k", ["t"]).expect("get"), Some(b"v".to_vec()));
    assert_eq!(cache.get_bytes("k", ["t"]).expect("get"), Some(b"v".to_vec()), "a near hit");
    cache.invalidate("t").expect("invalidate");
    assert_eq!(cache.get_bytes("k", ["t"]).expect("get"), None, "at once, not after the push");
    cache.set_bytes("k", b"v2", ["t"], Lifetime::Default).expect("set");
    assert_eq!(cache.get_bytes("k", ["t"]).expect("get"), Some(b"v2".to_vec()));
    cache.set_bytes("k", b"v3", ["t"], Lifetime::Default).expect("set");
    assert_eq!(cache.get_bytes("k", ["t"]).expect("get"), Some(b"v3".to_vec()), "an overwrite, at once");
    assert!(cache.delete("k", ["t"]).expect("delete"));
    assert_eq!(cache.get_bytes("k", ["t"]).expect("get"), None, "a delete, at once");
}

#[test]
fn faults_turn_it_off_and_never_serve_stale_beyond_the_bound() {
    let mut redis = RedisServer::start();
    let ns = unique_namespace("near-faults");
    let reader = near(&redis, &ns);
    let writer = plain(&redis, &ns);
    until_live(&reader);
    let mut rows = Vec::new();
    for fault in ["CLIENT KILL the tracking connection", "FLUSHALL", "entry expiry", "Redis restarted empty"] {
        let lifetime = if fault == "entry expiry" { Lifetime::Seconds(1) } else { Lifetime::Default };
        let set_at = Instant::now();
        writer.set_bytes("k", b"old", ["t"], lifetime).expect("set");
        until_live(&reader);
        while reader.get_bytes("k", ["t"]).expect("get").as_deref() != Some(&b"old"[..]) {}
        assert_eq!(reader.get_bytes("k", ["t"]).expect("get"), Some(b"old".to_vec()));
        let since = match fault {
            "FLUSHALL" => {
                redis.cli(&["FLUSHALL"]);
                Instant::now()
            }
            "Redis restarted empty" => {
                redis.restart();
                // The writer's first call after the restart may meet its dead pooled connection.
                let deadline = Instant::now() + BOUND;
                while writer.set_bytes("k", b"after-restart", ["t"], Lifetime::Default).is_err() {
                    assert!(Instant::now() < deadline, "the writer never reconnected");
                }
                Instant::now()
            }
            "entry expiry" => {
                // The entry expires at most 1 s after the set began; count from then
                // (reads until then may see it or not).
                let expired = set_at + Duration::from_millis(1000);
                while Instant::now() < expired {
                    let _ = reader.get_bytes("k", ["t"]).expect("get");
                }
                expired
            }
            _ => {
                let list = redis.cli(&["CLIENT", "LIST"]);
                let id = list
                    .lines()
                    .find(|l| l.contains("name=rtc-near-tracking"))
                    .and_then(|l| l.split_whitespace().find_map(|f| f.strip_prefix("id=")))
                    .expect("the tracking connection is listed")
                    .to_owned();
                assert_eq!(redis.cli(&["CLIENT", "KILL", "ID", &id]).trim(), "1");
                // With the tracking connection gone, the writer's change would send no push here.
                writer.invalidate("t").expect("invalidate");
                Instant::now()
            }
        };
        let window = until_fresh(&reader, "k", &["t"], b"old", since);
        rows.push((fault, window));
    }
    for (fault, window) in &rows {
        println!("NEAR fault {fault}: fresh after {window:?}, 0 reads beyond {BOUND:?}");
    }
    until_live(&reader);
    assert!(stats(&reader).flushes >= 2, "{:?}", stats(&reader));
}
