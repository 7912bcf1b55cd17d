//! Contention is never an error: under a hot-tag invalidation storm (a few
//! threads invalidating one tag in a tight loop while others get, set and
//! delete entries carrying it), every get returns a value or a miss, every
//! set and delete succeeds, and no get returns a stale value. On one Redis
//! and on a Redis Cluster.
//!
//! # The stale check
//!
//! Every set writes a value no other set writes (`k{key}/w{writer}/s{seq}`),
//! so a value read names the one set that wrote it. Each operation that can
//! make a value unreadable bumps a "started" counter before it calls the
//! cache and a "done" counter after its call returned `Ok`: invalidations of
//! the hot tag bump `inv_started`/`inv_done`, sets and deletes of key `k` bump
//! `key_started[k]`/`key_done[k]` (all `SeqCst`, so all bumps and loads fall
//! in one total order that agrees with each thread's program order).
//!
//! - A set `S`, once its call returned, loads `n = inv_started` (and
//!   `n_k = key_started[k]`): exactly `n` invalidations had started by then.
//! - A get `R`, before its call, loads `d = inv_done` (and `d_k = key_done[k]`):
//!   exactly `d` invalidations had returned by then.
//!
//! If `R` returns `S`'s value and `d > n`, at least one of the `d`
//! invalidations that returned before `R` began is not among the `n` that had
//! started when `S` returned: it began after `S` ended and ended before `R`
//! began. Every linearization puts that invalidation between `S` and `R`, and
//! only `S` writes that value, so `R` read a value the invalidation had made
//! unreachable: a stale read. The same holds for `d_k > n_k` with a later set
//! (an overwrite, or a write an invalidation followed) or a delete of the same
//! key. Operations that overlap in time may be ordered either way (a get may
//! return an entry invalidated during the get: it linearizes before that
//! invalidation), so the check only counts operations strictly ordered in real
//! time and never fails a correct cache. A get that trusts tag values it did
//! not confirm, though, returns values that invalidations which completed
//! before it began had made unreachable: trusting its last-seen values for
//! eight operations, a reader failed this check thousands of times per storm.
//!
//! The same calls are also recorded with their invoke and complete times
//! ([`rtc_tests::history`]) and the whole history is checked offline by the
//! same real-time rule, measured on the clock rather than by the counters:
//! two checks of one storm, which must both find nothing.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use rtc_core::{Cache, Lifetime};
use rtc_tests::history::{self, Bounds, Log, Op, Recorder};
use rtc_tests::{RedisCluster, RedisServer, unique_namespace};

/// How long each storm lasts at least.
const STORM: Duration = Duration::from_millis(2500);
/// How long a storm may go on to reach the counts that make it a storm
/// (see [`Clocks::enough`]): on a loaded machine it takes longer, never fails
/// for that alone; only a storm still short of them by then fails.
const STORM_LIMIT: Duration = Duration::from_secs(60);
/// The keys every writer, reader and deleter works on.
const KEYS: usize = 4;
/// The tags of every entry: the hot one, invalidated in a loop, and a cold one.
const TAGS: [&str; 2] = ["hot", "other"];
/// Two invalidators already replace the hot tag's value every few dozen
/// microseconds (most gets miss); more starve the readers of hits to check.
const INVALIDATORS: usize = 2;
const WRITERS: usize = 3;
const READERS: usize = 3;
const DELETERS: usize = 1;

/// The counters of the stale check (see the module documentation).
struct Clocks {
    inv_started: AtomicU64,
    inv_done: AtomicU64,
    key_started: [AtomicU64; KEYS],
    key_done: [AtomicU64; KEYS],
    /// Progress, read by every thread to know when the storm has done enough.
    sets: AtomicU64,
    deletes: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Clocks {
    fn new() -> Self {
        Clocks {
            inv_started: AtomicU64::new(0),
            inv_done: AtomicU64::new(0),
            key_started: std::array::from_fn(|_| AtomicU64::new(0)),
            key_done: std::array::from_fn(|_| AtomicU64::new(0)),
            sets: AtomicU64::new(0),
            deletes: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Whether the storm has reached the counts `check` asserts (a hot tag,
    /// and reads that both hit and missed under it).
    fn enough(&self) -> bool {
        self.inv_done.load(SeqCst) >= MIN_INVALIDATIONS
            && self.sets.load(SeqCst) >= MIN_SETS
            && self.deletes.load(SeqCst) >= MIN_DELETES
            && self.hits.load(SeqCst) > 0
            && self.misses.load(SeqCst) > 0
    }
}

/// What makes a storm a storm (asserted by `check`).
const MIN_INVALIDATIONS: u64 = 1000;
const MIN_SETS: u64 = 100;
const MIN_DELETES: u64 = 100;

/// A set that returned Ok: its key and what had started when it returned.
struct Written {
    key: usize,
    inv_started_after: u64,
    key_started_after: u64,
}

/// A get that hit: its key, the value, and what had returned before it began.
struct Hit {
    key: usize,
    value: Vec<u8>,
    inv_done_before: u64,
    key_done_before: u64,
}

/// What the threads did, merged.
#[derive(Default)]
struct Tally {
    invalidations: u64,
    sets: u64,
    deletes_removed: u64,
    deletes_absent: u64,
    hits: u64,
    misses: u64,
    errors: Vec<String>,
    written: Vec<(Vec<u8>, Written)>,
    read: Vec<Hit>,
    /// Every call, for the offline check.
    history: Vec<Op>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.invalidations += other.invalidations;
        self.sets += other.sets;
        self.deletes_removed += other.deletes_removed;
        self.deletes_absent += other.deletes_absent;
        self.hits += other.hits;
        self.misses += other.misses;
        self.errors.extend(other.errors);
        self.written.extend(other.written);
        self.read.extend(other.read);
    }
}

fn key_name(k: usize) -> String {
    format!("storm-key-{k}")
}

/// Gets key `k`, having noted how many invalidations and sets/deletes of `k`
/// had returned before the get began.
fn get(cache: &Cache, clocks: &Clocks, k: usize, t: &mut Tally, log: &mut Log<'_>) {
    let inv_done_before = clocks.inv_done.load(SeqCst);
    let key_done_before = clocks.key_done[k].load(SeqCst);
    let key = key_name(k);
    match log.get(&key, &TAGS, false, || cache.get_bytes(&key, TAGS)) {
        Ok(Some(value)) => {
            clocks.hits.fetch_add(1, SeqCst);
            t.hits += 1;
            t.read.push(Hit { key: k, value, inv_done_before, key_done_before });
        }
        Ok(None) => {
            clocks.misses.fetch_add(1, SeqCst);
            t.misses += 1;
        }
        Err(e) => t.errors.push(format!("get: {e}")),
    }
}

/// Runs the storm for [`STORM`], and on until it has done enough (at most
/// [`STORM_LIMIT`]), with caches from `make`: thread 0 of each role
/// shares one cache (one memo of tag values), the others have their own, as
/// separate processes would.
fn storm(backend: &str, make: &(dyn Fn() -> Cache + Sync)) -> Tally {
    let clocks = Clocks::new();
    let shared = make();
    let started = Instant::now();
    let running = || {
        let elapsed = started.elapsed();
        elapsed < STORM || (elapsed < STORM_LIMIT && !clocks.enough())
    };

    let mut tally = Tally::default();
    let recorder = Recorder::new(backend);
    std::thread::scope(|s| {
        let mut handles = Vec::new();
        for i in 0..INVALIDATORS {
            let (clocks, shared, recorder) = (&clocks, &shared, &recorder);
            handles.push(s.spawn(move || {
                let own;
                let cache = if i == 0 {
                    shared
                } else {
                    own = make();
                    &own
                };
                let mut t = Tally::default();
                let mut log = recorder.log();
                while running() {
                    clocks.inv_started.fetch_add(1, SeqCst);
                    match log.invalidate(&["hot"], || cache.invalidate("hot")) {
                        Ok(()) => {
                            clocks.inv_done.fetch_add(1, SeqCst);
                            t.invalidations += 1;
                        }
                        Err(e) => t.errors.push(format!("invalidate: {e}")),
                    }
                }
                t
            }));
        }
        for w in 0..WRITERS {
            let (clocks, shared, recorder) = (&clocks, &shared, &recorder);
            handles.push(s.spawn(move || {
                let own;
                let cache = if w == 0 {
                    shared
                } else {
                    own = make();
                    &own
                };
                let mut t = Tally::default();
                let mut log = recorder.log();
                let mut seq = 0u64;
                while running() {
                    seq += 1;
                    let k = (seq as usize + w) % KEYS;
                    let value = format!("k{k}/w{w}/s{seq}").into_bytes();
                    clocks.key_started[k].fetch_add(1, SeqCst);
                    let key = key_name(k);
                    let shown = String::from_utf8_lossy(&value).into_owned();
                    match log.set(&key, &TAGS, &shown, || cache.set_bytes(&key, &value, TAGS, Lifetime::Default)) {
                        Ok(()) => {
                            let written = Written {
                                key: k,
                                inv_started_after: clocks.inv_started.load(SeqCst),
                                key_started_after: clocks.key_started[k].load(SeqCst),
                            };
                            clocks.key_done[k].fetch_add(1, SeqCst);
                            clocks.sets.fetch_add(1, SeqCst);
                            t.sets += 1;
                            t.written.push((value, written));
                            // Read it back at once: this cache's freshest snapshot.
                            get(cache, clocks, k, &mut t, &mut log);
                        }
                        Err(e) => t.errors.push(format!("set: {e}")),
                    }
                }
                t
            }));
        }
        for d in 0..DELETERS {
            let (clocks, shared, recorder) = (&clocks, &shared, &recorder);
            handles.push(s.spawn(move || {
                let own;
                let cache = if d == 0 {
                    shared
                } else {
                    own = make();
                    &own
                };
                let mut t = Tally::default();
                let mut log = recorder.log();
                let mut n = 0usize;
                while running() {
                    n += 1;
                    let k = n % KEYS;
                    clocks.key_started[k].fetch_add(1, SeqCst);
                    let key = key_name(k);
                    match log.delete(&key, &TAGS, || cache.delete(&key, TAGS)) {
                        Ok(removed) => {
                            clocks.key_done[k].fetch_add(1, SeqCst);
                            clocks.deletes.fetch_add(1, SeqCst);
                            if removed {
                                t.deletes_removed += 1;
                            } else {
                                t.deletes_absent += 1;
                            }
                        }
                        Err(e) => t.errors.push(format!("delete: {e}")),
                    }
                }
                t
            }));
        }
        for r in 0..READERS {
            let (clocks, shared, recorder) = (&clocks, &shared, &recorder);
            handles.push(s.spawn(move || {
                let own;
                let cache = if r == 0 {
                    shared
                } else {
                    own = make();
                    &own
                };
                let mut t = Tally::default();
                let mut log = recorder.log();
                let mut n = r;
                while running() {
                    n += 1;
                    let k = n % KEYS;
                    get(cache, clocks, k, &mut t, &mut log);
                }
                t
            }));
        }
        for h in handles {
            tally.merge(h.join().expect("a storm thread panicked"));
        }
    });
    tally.history = recorder.into_ops();
    println!(
        "{backend}: {:?} storm: {} invalidations, {} sets, {} deletes ({} removed, {} absent), {} gets ({} hits, {} misses), {} errors",
        started.elapsed(),
        tally.invalidations,
        tally.sets,
        tally.deletes_removed + tally.deletes_absent,
        tally.deletes_removed,
        tally.deletes_absent,
        tally.hits + tally.misses,
        tally.hits,
        tally.misses,
        tally.errors.len(),
    );
    tally
}

/// Asserts zero errors, zero stale reads, and that the storm was a storm.
fn check(backend: &str, tally: &Tally) {
    assert!(
        tally.errors.is_empty(),
        "{backend}: contention must never be an error; first errors: {:?}",
        &tally.errors[..tally.errors.len().min(5)]
    );

    let written: HashMap<&[u8], &Written> = tally.written.iter().map(|(v, w)| (v.as_slice(), w)).collect();
    let mut stale = Vec::new();
    // Per hit: invalidations started when its set returned minus those that had
    // returned before the get began; a value older by more than this would fail.
    let mut margins = Vec::with_capacity(tally.read.len());
    for hit in &tally.read {
        let shown = String::from_utf8_lossy(&hit.value);
        let Some(w) = written.get(hit.value.as_slice()) else {
            stale.push(format!("{shown:?} read from {} was never written by a set that returned", key_name(hit.key)));
            continue;
        };
        if w.key != hit.key {
            stale.push(format!("{shown:?} read from {}: it was written to {}", key_name(hit.key), key_name(w.key)));
        }
        if hit.inv_done_before > w.inv_started_after {
            stale.push(format!(
                "{shown:?} read after {} invalidations had returned; only {} had started when its set returned",
                hit.inv_done_before, w.inv_started_after
            ));
        }
        if hit.key_done_before > w.key_started_after {
            stale.push(format!(
                "{shown:?} read after {} sets/deletes of its key had returned; only {} had started when its set returned",
                hit.key_done_before, w.key_started_after
            ));
        }
        margins.push(w.inv_started_after.saturating_sub(hit.inv_done_before));
    }
    margins.sort_unstable();
    println!(
        "{backend}: {} hits checked, {} stale; margin to stale, in invalidations: median {}, max {}",
        tally.read.len(),
        stale.len(),
        margins.get(margins.len() / 2).copied().unwrap_or(0),
        margins.last().copied().unwrap_or(0),
    );
    assert!(stale.is_empty(), "{backend}: {} stale reads, e.g. {:?}", stale.len(), &stale[..stale.len().min(5)]);

    // The same storm, judged offline on invoke and complete times.
    let report = history::check(&tally.history, Bounds { near: Duration::ZERO, fail_safe_max_age: Duration::ZERO });
    println!("{backend}: history check: {report}");
    assert_eq!(report.wrong, 0, "{backend}: the history check found wrong reads, e.g. {:#?}", report.examples);
    assert_eq!(report.reads as u64, tally.hits, "{backend}: the history holds every hit");

    // Not vacuous: the tag was hot, and reads both hit and missed under it.
    assert!(
        tally.invalidations >= MIN_INVALIDATIONS,
        "{backend}: only {} invalidations: no storm",
        tally.invalidations
    );
    assert!(tally.sets >= MIN_SETS, "{backend}: only {} sets", tally.sets);
    assert!(tally.deletes_removed + tally.deletes_absent >= MIN_DELETES, "{backend}: too few deletes");
    assert!(tally.hits > 0, "{backend}: no get hit during the storm: nothing was checked for staleness");
    assert!(tally.misses > 0, "{backend}: no get missed during the storm: the invalidations did not bite");
}

#[test]
fn a_hot_tag_storm_on_redis_has_no_errors_and_no_stale_reads() {
    let redis = RedisServer::start();
    let ns = unique_namespace("storm");
    let make = || Cache::builder().namespace(ns.as_str()).url(Some(redis.url())).build().expect("build a cache");
    let tally = storm("redis", &make);
    check("redis", &tally);
}

#[test]
fn a_hot_tag_storm_on_a_cluster_has_no_errors_and_no_stale_reads() {
    let cluster = RedisCluster::start(3, 0);
    let ns = unique_namespace("storm-cluster");
    let make = || {
        Cache::builder().namespace(ns.as_str()).cluster_nodes(cluster.urls()).build().expect("build a cluster cache")
    };
    let tally = storm("cluster", &make);
    check("cluster", &tally);
}
