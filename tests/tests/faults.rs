//! Faults under load on a real redis-server, with figures.
//!
//! Each test prints one line `FAULT <name>: ops=... over_timeout=... wrong=...
//! slowest_ms=...` and asserts `over_timeout == 0` and `wrong == 0`.
//!
//! Timeouts here are correctness bounds the library promises (a call returns
//! within its socket and connect timeouts, plus `lock_timeout` when it waits
//! for a lock), not speed measurements: the margin is a generous second so a
//! busy two-core machine does not flake.
//!
//! # How a wrong value is detected
//!
//! Every value written is `key=K;id=I`, where `I` is a fresh write id. A read
//! returning another key's value, or an id never handed out, is wrong. A read
//! returning a stale value is caught by event counters: each tag (and the
//! implicit "everything" tag, and Redis restarts) has an event counter with
//! `started` (incremented before an invalidation or restart begins; the
//! increment is the event's index) and `completed` (raised to the event's
//! index once it has succeeded). After a write returns, the test records the
//! `started` counters of the key's tags (`n`); before a read begins, it notes
//! their `completed` counters (`m`). If a read returns the value of write `W`
//! and `m > n` for one tag, then event `m` started after `W` returned and
//! succeeded before the read began, so it took effect strictly between the two:
//! the entry must have been unreachable, and the read is stale. This holds
//! whatever the interleaving (the counters are sequentially consistent), and a
//! write still in flight when the read ends (not yet recorded) is never judged.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rtc_core::{
    Backend, Cache, CacheBuilder, Command, ComputeOptions, Config, GetOrLock, Layout, Lifetime, RedisBackend, Reply,
};
use rtc_tests::{RedisServer, unique_namespace};

const SOCKET_TIMEOUT: Duration = Duration::from_millis(500);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const LOCK_TIMEOUT: Duration = Duration::from_millis(1000);
/// Slack for a noisy machine: scheduling, a few successful round trips, the computation.
const MARGIN: Duration = Duration::from_millis(1000);
const THREADS: usize = 8;
/// A safety cap per thread; the fault schedule normally stops the workers long before.
const MAX_OPS_PER_THREAD: u64 = 200_000;
/// How long the main thread waits for the load to reach a step of the schedule.
const PROGRESS_DEADLINE: Duration = Duration::from_secs(30);
const KEYS: u64 = 24;
const TAGS: usize = 4;
/// Event counters: one per tag, then the implicit "everything" tag, then Redis restarts.
const ALL: usize = TAGS;
const RESTART: usize = TAGS + 1;

fn key_name(k: u64) -> String {
    format!("k{k}")
}

fn tag_of(k: u64) -> usize {
    (k % TAGS as u64) as usize
}

fn tag_name(t: usize) -> String {
    format!("t{t}")
}

/// The bound a call must return within: `socket_timeout + socket_connect_timeout`
/// (one failing round trip on a fresh connection), plus `lock_timeout` for a
/// call that may wait for another caller's lock, plus the margin.
fn bound(connect_timeout: Duration, lock: bool) -> Duration {
    SOCKET_TIMEOUT + connect_timeout + MARGIN + if lock { LOCK_TIMEOUT } else { Duration::ZERO }
}

/// A small deterministic generator (xorshift64*), so each thread's mix is reproducible.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// An invalidation-like event source: see the module documentation.
#[derive(Default)]
struct Events {
    started: AtomicU64,
    completed: AtomicU64,
}

impl Events {
    fn begin(&self) -> u64 {
        self.started.fetch_add(1, SeqCst) + 1
    }

    fn succeeded(&self, index: u64) {
        self.completed.fetch_max(index, SeqCst);
    }
}

/// The stale-read detector of the module documentation.
struct Checker {
    events: Vec<Events>,
    next_id: AtomicU64,
    /// Write id -> (key, `started` counters of its tags once the write returned).
    writes: Mutex<HashMap<u64, (u64, [u64; 3])>>,
}

impl Checker {
    fn new() -> Self {
        Checker {
            events: (0..TAGS + 2).map(|_| Events::default()).collect(),
            next_id: AtomicU64::new(1),
            writes: Mutex::default(),
        }
    }

    fn slots(k: u64) -> [usize; 3] {
        [tag_of(k), ALL, RESTART]
    }

    /// Returns a fresh value for key `k`, and its write id.
    fn value(&self, k: u64) -> (u64, Vec<u8>) {
        let id = self.next_id.fetch_add(1, SeqCst);
        (id, format!("key={};id={id}", key_name(k)).into_bytes())
    }

    /// Records that write `id` of key `k` has returned (successfully or not).
    fn written(&self, k: u64, id: u64) {
        let n = Self::slots(k).map(|s| self.events[s].started.load(SeqCst));
        self.writes.lock().expect("writes").insert(id, (k, n));
    }

    /// Returns what a read of key `k` notes before it begins.
    fn before_read(&self, k: u64) -> [u64; 3] {
        Self::slots(k).map(|s| self.events[s].completed.load(SeqCst))
    }

    /// Checks a value read for key `k`; `Err` describes a wrong value.
    fn check(&self, k: u64, value: &[u8], seen: [u64; 3]) -> Result<(), String> {
        let text = std::str::from_utf8(value).map_err(|_| format!("{}: not UTF-8: {value:?}", key_name(k)))?;
        let parsed = text
            .strip_prefix("key=")
            .and_then(|rest| rest.split_once(";id="))
            .and_then(|(key, id)| id.parse::<u64>().ok().map(|id| (key, id)));
        let Some((key, id)) = parsed else {
            return Err(format!("{}: unparsable value {text:?}", key_name(k)));
        };
        if key != key_name(k) {
            return Err(format!("{}: read the value of {key} ({text})", key_name(k)));
        }
        if id == 0 || id >= self.next_id.load(SeqCst) {
            return Err(format!("{}: write id {id} was never handed out", key_name(k)));
        }
        let writes = self.writes.lock().expect("writes");
        let Some(&(written_key, n)) = writes.get(&id) else {
            return Ok(());
        }; // still in flight
        if written_key != k {
            return Err(format!("{}: write {id} was for {}", key_name(k), key_name(written_key)));
        }
        for (slot, (m, n)) in Self::slots(k).iter().zip(seen.iter().zip(n)) {
            if *m > n {
                return Err(format!(
                    "{}: stale value {text}: event {m} of slot {slot} started after the write returned and succeeded before the read began",
                    key_name(k)
                ));
            }
        }
        Ok(())
    }
}

/// The detector can fail: it flags a stale value, another key's value and an
/// id never handed out, and leaves alone what concurrency allows.
#[test]
fn the_stale_read_detector_flags_wrong_values() {
    let c = Checker::new();
    let (k, other) = (1, 2);
    let seen_early = c.before_read(k);
    let (id, v) = c.value(k);
    assert!(c.check(k, &v, seen_early).is_ok(), "a write still in flight is not judged");
    // An invalidation that starts while the write runs may or may not hide it.
    let concurrent = c.events[tag_of(k)].begin();
    c.written(k, id);
    c.events[tag_of(k)].succeeded(concurrent);
    assert!(c.check(k, &v, c.before_read(k)).is_ok(), "overlapping invalidation");
    let seen_before = c.before_read(k);
    for slot in [tag_of(k), ALL, RESTART] {
        let index = c.events[slot].begin();
        c.events[slot].succeeded(index);
        assert!(c.check(k, &v, c.before_read(k)).is_err(), "slot {slot}: stale value not flagged");
    }
    assert!(c.check(k, &v, seen_before).is_ok(), "a read that began before the invalidations may see the value");
    let unrelated = c.events[tag_of(other)].begin();
    c.events[tag_of(other)].succeeded(unrelated);
    assert!(c.check(other, &v, c.before_read(other)).is_err(), "another key's value");
    assert!(c.check(k, b"key=k1;id=999999", seen_before).is_err(), "an id never handed out");
    assert!(c.check(k, b"garbage", seen_before).is_err(), "garbage");
}

/// A broken backend: every tag read answers the first value it ever saw for
/// that tag, so invalidations stay invisible to the cache's snapshot check.
struct HidesInvalidations {
    inner: RedisBackend,
    first: Mutex<HashMap<String, Vec<u8>>>,
}

impl Backend for HidesInvalidations {
    fn execute(&self, commands: &[Command]) -> rtc_core::Result<Vec<Reply>> {
        let mut replies = self.inner.execute(commands)?;
        let mut first = self.first.lock().expect("first");
        for (command, reply) in commands.iter().zip(replies.iter_mut()) {
            if let (Command::Mget { keys }, Reply::Array(items)) = (command, reply) {
                for (key, item) in keys.iter().zip(items.iter_mut()) {
                    if let Reply::Bytes(now) = item {
                        *now = first.entry(key.clone()).or_insert_with(|| now.clone()).clone();
                    }
                }
            }
        }
        Ok(replies)
    }
}

/// The load check itself can fail: on a backend that hides invalidations it
/// must count wrong (stale) values.
#[test]
fn the_load_check_catches_a_cache_that_hides_invalidations() {
    let redis = RedisServer::start();
    let config = Config::default().url(Some(redis.url()));
    let backend = HidesInvalidations { inner: RedisBackend::new(&config).expect("backend"), first: Mutex::default() };
    let load = Load::with_backend(&redis, "hides-invalidations", CONNECT_TIMEOUT, Some(Arc::new(backend)));
    load.run(|| load.progress.wait("load", |ops, _| ops >= 3_000));
    let wrong = load.figures.wrong.load(SeqCst);
    eprintln!("{}", load.figures.line("hidden-invalidations", "").replacen("FAULT", "SELF-CHECK", 1));
    assert!(wrong > 0, "a cache serving invalidated entries went unnoticed");
}

/// Counts of finished operations, for the main thread to wait on (an event, not a sleep).
#[derive(Default)]
struct Progress {
    counts: Mutex<(u64, u64)>, // (operations, successful operations)
    changed: Condvar,
}

impl Progress {
    fn tick(&self, ok: bool) {
        let mut c = self.counts.lock().expect("progress");
        c.0 += 1;
        c.1 += u64::from(ok);
        self.changed.notify_all();
    }

    fn now(&self) -> (u64, u64) {
        *self.counts.lock().expect("progress")
    }

    /// Waits until `done(ops, ok)` holds; panics after [`PROGRESS_DEADLINE`].
    fn wait(&self, what: &str, done: impl Fn(u64, u64) -> bool) {
        let reached = self.wait_at_most(PROGRESS_DEADLINE, done);
        assert!(reached, "the load made no progress towards {what}: {:?}", self.now());
    }

    /// Waits until `done(ops, ok)` holds or `limit` has passed; returns whether it holds.
    fn wait_at_most(&self, limit: Duration, done: impl Fn(u64, u64) -> bool) -> bool {
        let guard = self.counts.lock().expect("progress");
        let (_guard, timeout) = self.changed.wait_timeout_while(guard, limit, |c| !done(c.0, c.1)).expect("progress");
        !timeout.timed_out()
    }
}

/// The figures one fault test reports.
#[derive(Default)]
struct Figures {
    ops: AtomicU64,
    over_timeout: AtomicU64,
    wrong: AtomicU64,
    slowest_us: AtomicU64,
    /// The slowest call that cannot wait for a lock (get, set, invalidate, ...).
    slowest_plain_us: AtomicU64,
    errors: AtomicU64,
    hits: AtomicU64,
    computed: AtomicU64,
    /// get-or-compute calls whose hook reported a bypass (a backend error).
    bypassed: Arc<AtomicU64>,
    /// The first few problems, to print on failure.
    problems: Mutex<Vec<String>>,
}

impl Figures {
    fn problem(&self, what: String) {
        let mut p = self.problems.lock().expect("problems");
        if p.len() < 20 {
            p.push(what);
        }
    }

    fn timed(&self, what: &str, took: Duration, bound: Duration) {
        self.ops.fetch_add(1, SeqCst);
        self.slowest_us.fetch_max(took.as_micros() as u64, SeqCst);
        if !what.starts_with("get_or_compute") && what != "waiter" {
            self.slowest_plain_us.fetch_max(took.as_micros() as u64, SeqCst);
        }
        if took > bound {
            self.over_timeout.fetch_add(1, SeqCst);
            self.problem(format!("{what} took {took:?} (bound {bound:?})"));
        }
    }

    fn wrong(&self, what: String) {
        self.wrong.fetch_add(1, SeqCst);
        self.problem(what);
    }

    fn line(&self, name: &str, extra: &str) -> String {
        format!(
            "FAULT {name}: ops={} over_timeout={} wrong={} slowest_ms={:.1} slowest_plain_ms={:.1} errors={} hits={} computed={} bypassed={}{extra}",
            self.ops.load(SeqCst),
            self.over_timeout.load(SeqCst),
            self.wrong.load(SeqCst),
            self.slowest_us.load(SeqCst) as f64 / 1000.0,
            self.slowest_plain_us.load(SeqCst) as f64 / 1000.0,
            self.errors.load(SeqCst),
            self.hits.load(SeqCst),
            self.computed.load(SeqCst),
            self.bypassed.load(SeqCst),
        )
    }

    /// Prints the figures and asserts the targets: nothing over its bound, nothing wrong.
    fn report(&self, name: &str, extra: &str) {
        eprintln!("{}", self.line(name, extra));
        let problems = self.problems.lock().expect("problems");
        assert_eq!(self.over_timeout.load(SeqCst), 0, "{name}: calls over their bound: {problems:#?}");
        assert_eq!(self.wrong.load(SeqCst), 0, "{name}: wrong values: {problems:#?}");
    }
}

/// A window during which Redis cannot answer: no call lying wholly inside may succeed.
type Window = (Instant, Instant);

/// Shared state of a load run.
struct Load {
    /// Two caches on the same Redis and namespace, as two processes would be:
    /// each remembers tag values (and pools connections) on its own, so one
    /// sees the other's invalidations only through Redis.
    caches: [Cache; 2],
    connect_timeout: Duration,
    checker: Checker,
    figures: Figures,
    progress: Progress,
    stop: AtomicBool,
    /// Every successful call with a `Result` (start, end, what), checked against the dead windows.
    successes: Mutex<Vec<(Instant, Instant, &'static str)>>,
}

impl Load {
    fn new(redis: &RedisServer, name: &str, connect_timeout: Duration) -> Self {
        Self::with_backend(redis, name, connect_timeout, None)
    }

    /// Like [`Load::new`], with both caches on `backend` instead of their own Redis clients.
    fn with_backend(
        redis: &RedisServer,
        name: &str,
        connect_timeout: Duration,
        backend: Option<Arc<dyn Backend>>,
    ) -> Self {
        let figures = Figures::default();
        let namespace = unique_namespace(name);
        let caches = [0, 1].map(|_| {
            let mut builder = Self::builder(redis, &namespace, connect_timeout, Arc::clone(&figures.bypassed));
            if let Some(backend) = &backend {
                builder = builder.backend(Arc::clone(backend));
            }
            builder.build().expect("build")
        });
        Load {
            caches,
            connect_timeout,
            checker: Checker::new(),
            figures,
            progress: Progress::default(),
            stop: AtomicBool::new(false),
            successes: Mutex::default(),
        }
    }

    fn builder(
        redis: &RedisServer,
        namespace: &str,
        connect_timeout: Duration,
        bypassed: Arc<AtomicU64>,
    ) -> CacheBuilder {
        Cache::builder()
            .namespace(namespace)
            .url(Some(redis.url()))
            .socket_timeout(SOCKET_TIMEOUT)
            .socket_connect_timeout(connect_timeout)
            .hook(move |e| {
                if e.info.error.is_some() {
                    bypassed.fetch_add(1, SeqCst);
                }
                // Tell the caller whether its own call bypassed the cache.
                if let Some(flag) = e.userdata.and_then(|u| u.downcast_ref::<AtomicBool>()) {
                    flag.store(e.info.error.is_some(), SeqCst);
                }
            })
    }

    fn tags(k: u64) -> [String; 1] {
        [tag_name(tag_of(k))]
    }

    fn succeeded(&self, started: Instant, what: &'static str) {
        self.successes.lock().expect("successes").push((started, Instant::now(), what));
    }

    /// Runs one operation of the mix on `cache`; returns whether it reached Redis successfully.
    fn one(&self, cache: &Cache, rng: &mut Rng) -> bool {
        let k = rng.below(KEYS);
        let key = key_name(k);
        let tags = Self::tags(k);
        let f = &self.figures;
        let plain = bound(self.connect_timeout, false);
        let roll = rng.below(100);
        let started = Instant::now();
        match roll {
            // get-or-compute with the stampede lock
            0..35 => {
                let seen = self.checker.before_read(k);
                let (id, mine) = self.checker.value(k);
                let ran = AtomicBool::new(false);
                let bypassed = Arc::new(AtomicBool::new(false));
                let options = ComputeOptions::key(&key)
                    .tags(&tags)
                    .lock(true)
                    .lock_timeout(LOCK_TIMEOUT)
                    .hook_userdata(Arc::clone(&bypassed) as Arc<dyn std::any::Any + Send + Sync>);
                let got = cache
                    .get_or_compute_bytes(&options, || {
                        ran.store(true, SeqCst);
                        // The computation's own duration, so that callers overlap on the lock.
                        std::thread::sleep(Duration::from_millis(1));
                        Ok::<_, ()>(mine.clone())
                    })
                    .expect("infallible computation");
                f.timed("get_or_compute", started.elapsed(), bound(self.connect_timeout, true));
                if ran.load(SeqCst) {
                    self.checker.written(k, id);
                    f.computed.fetch_add(1, SeqCst);
                    if got != mine {
                        f.wrong(format!("{key}: get_or_compute computed {mine:?} but returned {got:?}"));
                    }
                } else {
                    f.hits.fetch_add(1, SeqCst);
                    if let Err(e) = self.checker.check(k, &got, seen) {
                        f.wrong(format!("get_or_compute: {e}"));
                    }
                }
                if bypassed.load(SeqCst) {
                    false
                } else {
                    self.succeeded(started, "get_or_compute (no bypass)");
                    true
                }
            }
            35..65 => {
                let seen = self.checker.before_read(k);
                let got = cache.get_bytes(&key, &tags);
                f.timed("get", started.elapsed(), plain);
                match got {
                    Ok(Some(v)) => {
                        f.hits.fetch_add(1, SeqCst);
                        if let Err(e) = self.checker.check(k, &v, seen) {
                            f.wrong(format!("get: {e}"));
                        }
                        self.succeeded(started, "get (hit)");
                        true
                    }
                    Ok(None) => {
                        self.succeeded(started, "get (miss)");
                        true
                    }
                    Err(_) => {
                        f.errors.fetch_add(1, SeqCst);
                        false
                    }
                }
            }
            65..85 => {
                let (id, value) = self.checker.value(k);
                let r = cache.set_bytes(&key, &value, &tags, Lifetime::Seconds(60));
                self.checker.written(k, id);
                f.timed("set", started.elapsed(), plain);
                self.outcome(r, started, "set")
            }
            85..95 => {
                let t = tag_of(k);
                let index = self.checker.events[t].begin();
                let r = cache.invalidate(tag_name(t));
                if r.is_ok() {
                    self.checker.events[t].succeeded(index);
                }
                f.timed("invalidate", started.elapsed(), plain);
                self.outcome(r, started, "invalidate")
            }
            _ => {
                let index = self.checker.events[ALL].begin();
                let r = cache.invalidate_all();
                if r.is_ok() {
                    self.checker.events[ALL].succeeded(index);
                }
                f.timed("invalidate_all", started.elapsed(), plain);
                self.outcome(r, started, "invalidate_all")
            }
        }
    }

    fn outcome(&self, r: rtc_core::Result<()>, started: Instant, what: &'static str) -> bool {
        match r {
            Ok(()) => {
                self.succeeded(started, what);
                true
            }
            Err(_) => {
                self.figures.errors.fetch_add(1, SeqCst);
                false
            }
        }
    }

    /// Runs the load on [`THREADS`] threads while `schedule` injects the fault,
    /// then stops the workers.
    fn run(&self, schedule: impl FnOnce()) {
        std::thread::scope(|s| {
            for t in 0..THREADS {
                s.spawn(move || {
                    let mut rng = Rng::new(t as u64 + 1);
                    for _ in 0..MAX_OPS_PER_THREAD {
                        if self.stop.load(SeqCst) {
                            break;
                        }
                        let ok = self.one(&self.caches[t % 2], &mut rng);
                        self.progress.tick(ok);
                    }
                });
            }
            // Stop the workers even if the schedule panics, so the scope can end.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(schedule));
            self.stop.store(true, SeqCst);
            if let Err(panic) = result {
                std::panic::resume_unwind(panic);
            }
        });
    }

    /// Counts as wrong every call that succeeded although it lay wholly inside a dead window.
    fn check_dead_windows(&self, windows: &[Window]) {
        let successes = self.successes.lock().expect("successes");
        for &(start, end, what) in successes.iter() {
            if windows.iter().any(|&(a, b)| start > a && end < b) {
                self.figures.wrong(format!("{what} succeeded while Redis could not answer"));
            }
        }
    }

    /// Asserts that the same caches work normally now (no program restart),
    /// and see each other's writes and invalidations.
    fn check_works(&self) {
        let k = KEYS + 1;
        let tags = Self::tags(k);
        let (_, value) = self.checker.value(k);
        let [a, b] = &self.caches;
        a.set_bytes(&key_name(k), &value, &tags, Lifetime::Default).expect("set after the fault");
        assert_eq!(b.get_bytes(&key_name(k), &tags).expect("get after the fault"), Some(value));
        b.invalidate(&tags).expect("invalidate after the fault");
        assert_eq!(a.get_bytes(&key_name(k), &tags).expect("get after the fault"), None);
    }
}

/// Waits for real time to pass (a fault must last long enough for in-flight
/// calls and lock waits to meet it), not for an event.
fn hold(since: Instant, at_least: Duration) {
    if let Some(rest) = at_least.checked_sub(since.elapsed()) {
        std::thread::sleep(rest);
    }
}

#[test]
fn redis_killed_under_load() {
    let mut redis = RedisServer::start();
    let load = Load::new(&redis, "killed", CONNECT_TIMEOUT);
    let mut dead = Vec::new();
    let mut ok_after_restart = 0;
    load.run(|| {
        load.progress.wait("warm-up", |ops, _| ops >= 2_000);
        let index = load.checker.events[RESTART].begin();
        redis.kill();
        let killed = Instant::now();
        let (ops_at_kill, _) = load.progress.now();
        // Calls keep coming while Redis is down; lock waiters meet the fault too.
        load.progress.wait("calls while Redis is down", |ops, _| ops >= ops_at_kill + 2_000);
        hold(killed, Duration::from_millis(1500));
        let restarting = Instant::now();
        dead.push((killed, restarting));
        redis.restart();
        load.checker.events[RESTART].succeeded(index);
        let (_, ok_at_restart) = load.progress.now();
        load.progress.wait("successful calls after the restart", |_, ok| ok >= ok_at_restart + 2_000);
        ok_after_restart = load.progress.now().1 - ok_at_restart;
    });
    load.check_dead_windows(&dead);
    load.check_works();
    let f = &load.figures;
    assert!(f.errors.load(SeqCst) > 0, "the kill was never seen by a call");
    assert!(f.bypassed.load(SeqCst) > 0, "no get-or-compute bypassed the cache while Redis was down");
    load.figures.report("killed-under-load", &format!(" ok_after_restart={ok_after_restart}"));
}

fn paused_under_load(name: &str, connect_timeout: Duration) {
    let redis = RedisServer::start();
    let load = Load::new(&redis, name, connect_timeout);
    let mut dead = Vec::new();
    let mut paused_for = Duration::ZERO;
    let mut ops_while_paused = 0;
    load.run(|| {
        load.progress.wait("warm-up", |ops, _| ops >= 2_000);
        redis.pause();
        let paused = Instant::now();
        // Longer than any call's bound, so a call that ignores socket_timeout
        // shows as a call over its bound once SIGCONT releases it.
        let pause = bound(connect_timeout, true) + Duration::from_millis(1500);
        let (ops_at_pause, _) = load.progress.now();
        load.progress.wait_at_most(pause, |ops, _| ops >= ops_at_pause + 1_000);
        hold(paused, pause);
        ops_while_paused = load.progress.now().0 - ops_at_pause;
        let resuming = Instant::now();
        redis.resume();
        paused_for = resuming - paused;
        dead.push((paused, resuming));
        let (_, ok_at_resume) = load.progress.now();
        load.progress.wait("successful calls after SIGCONT", |_, ok| ok >= ok_at_resume + 2_000);
    });
    load.check_dead_windows(&dead);
    load.check_works();
    assert!(load.figures.errors.load(SeqCst) > 0, "the pause was never seen by a call");
    load.figures.report(name, &format!(" paused_ms={} ops_while_paused={ops_while_paused}", paused_for.as_millis()));
}

#[test]
fn redis_paused_under_load() {
    paused_under_load("paused-under-load", CONNECT_TIMEOUT);
}

/// A zero connect timeout means the OS default for the TCP connect; the
/// connection handshake must still honour socket_timeout, or a fresh
/// connection to a paused Redis (which the kernel accepts) hangs until SIGCONT.
#[test]
fn redis_paused_under_load_with_the_os_default_connect_timeout() {
    paused_under_load("paused-under-load-connect-timeout-0", Duration::ZERO);
}

/// On a paused Redis, each call fails within one timeout: the first round
/// trip that gets no answer ends the call, however many commands its pipeline
/// holds (2 for a get, 4 for set-and-unlock, one per tag for an invalidation),
/// and a fresh connection's handshake does not add one timeout per command.
#[test]
fn each_call_on_a_paused_redis_fails_within_one_timeout() {
    const TIMEOUT: Duration = Duration::from_millis(1200);
    /// Scheduling slack only: one timeout is the whole promise. Just under
    /// one timeout, so a call that waited two is always caught, and a busy
    /// machine may delay a correct call by up to 1.1 s without failing it.
    const SLACK: Duration = Duration::from_millis(1100);
    let redis = RedisServer::start();
    let ns = unique_namespace("paused-calls");
    let tags = ["a", "b", "c", "d", "e", "f"];
    // One cache per call, each warmed on this thread, so that each call starts
    // on a pooled connection of its own (a fresh one for the "cold" cache).
    let warmed = || {
        let cache = Cache::builder()
            .namespace(&ns)
            .url(Some(redis.url()))
            .socket_timeout(TIMEOUT)
            .socket_connect_timeout(TIMEOUT)
            .build()
            .expect("build");
        cache.set_bytes("k", b"v", tags, Lifetime::Default).expect("warm-up set");
        assert_eq!(cache.get_bytes("k", tags).expect("warm-up get"), Some(b"v".to_vec()));
        cache
    };
    let caches: Vec<Cache> = (0..8).map(|_| warmed()).collect();
    let cold = Cache::builder()
        .namespace(&ns)
        .url(Some(redis.url()))
        .socket_timeout(TIMEOUT)
        .socket_connect_timeout(TIMEOUT)
        .build()
        .expect("build");
    let locked = |cache: &Cache, key: &str| match cache
        .get_or_lock(&ComputeOptions::key(key).tags(tags).lock(true).lock_timeout(LOCK_TIMEOUT))
    {
        GetOrLock::Locked(ticket) => ticket,
        other => panic!("expected the lock, got {other:?}"),
    };
    let to_store = locked(&caches[4], "cold-1");
    let to_drop = locked(&caches[5], "cold-2");
    let f = Figures::default();
    redis.pause();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let call = |what: &str, run: &mut dyn FnMut() -> bool| {
            let started = Instant::now();
            let failed = run();
            f.timed(what, started.elapsed(), TIMEOUT + SLACK);
            if failed {
                f.errors.fetch_add(1, SeqCst);
            } else {
                f.wrong(format!("{what} succeeded on a paused Redis"));
            }
        };
        call("get (2 commands)", &mut || caches[0].get_bytes("k", tags).is_err());
        call("set (2 commands)", &mut || caches[1].set_bytes("k", b"w", tags, Lifetime::Default).is_err());
        call("invalidate (6 commands)", &mut || caches[2].invalidate(tags).is_err());
        call("invalidate_all (1 command)", &mut || caches[3].invalidate_all().is_err());
        let mut to_store = Some(to_store);
        call("set_and_unlock (4 commands)", &mut || {
            let ticket = to_store.take().expect("ticket");
            // A failed store is recorded in the info, not returned.
            caches[4].set_and_unlock(ticket, Ok::<_, rtc_core::Error>(b"v")).error.is_some()
        });
        let mut to_drop = Some(to_drop);
        call("a ticket's release (3 commands)", &mut || {
            // A failed release is only logged: the lock expires after lock_timeout.
            let _ = caches[5].release(to_drop.take().expect("ticket"));
            true
        });
        call("get_or_compute with the lock", &mut || {
            let options = ComputeOptions::key("cold-3").tags(tags).lock(true).lock_timeout(LOCK_TIMEOUT);
            caches[6].get_or_compute_bytes(&options, || Ok::<_, ()>(b"computed".to_vec())).expect("value")
                == b"computed"
        });
        call("get on a fresh connection", &mut || cold.get_bytes("k", tags).is_err());
    }));
    redis.resume();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    // Commands sent during the pause run once Redis resumes (the invalidation
    // among them), so only check that the cache works again.
    caches[7].set_bytes("k", b"after", tags, Lifetime::Default).expect("set after SIGCONT");
    assert_eq!(caches[7].get_bytes("k", tags).expect("get after SIGCONT"), Some(b"after".to_vec()));
    f.report(
        "paused-each-call",
        &format!(" timeout_ms={} bound_ms={}", TIMEOUT.as_millis(), (TIMEOUT + SLACK).as_millis()),
    );
}

#[test]
fn redis_restarted_empty_under_load() {
    const RESTARTS: usize = 3;
    let mut redis = RedisServer::start();
    let load = Load::new(&redis, "restarted", CONNECT_TIMEOUT);
    // Entries no worker touches: after a restart every one of them must read as a miss.
    let quiet: Vec<u64> = (100..164).collect();
    for &k in &quiet {
        let (id, value) = load.checker.value(k);
        load.caches[0]
            .set_bytes(&key_name(k), &value, Load::tags(k), Lifetime::Default)
            .expect("set before the restarts");
        load.checker.written(k, id);
        assert!(load.caches[1].get_bytes(&key_name(k), Load::tags(k)).expect("get").is_some());
    }
    let mut quiet_hits = 0;
    load.run(|| {
        for round in 0..RESTARTS {
            let (ops, _) = load.progress.now();
            load.progress.wait("load between restarts", |o, _| o >= ops + 1_500);
            let index = load.checker.events[RESTART].begin();
            redis.restart();
            load.checker.events[RESTART].succeeded(index);
            if round == 0 {
                for &k in &quiet {
                    let seen = load.checker.before_read(k);
                    match load.caches[k as usize % 2].get_bytes(&key_name(k), Load::tags(k)) {
                        Ok(Some(v)) => {
                            quiet_hits += 1;
                            load.figures.wrong(format!("{} survived the restart: {v:?}", key_name(k)));
                            let _ = load.checker.check(k, &v, seen);
                        }
                        Ok(None) => {}
                        Err(e) => load.figures.problem(format!("get after restart failed: {e}")),
                    }
                }
            }
            let (_, ok) = load.progress.now();
            load.progress.wait("successful calls after the restart", |_, o| o >= ok + 1_500);
        }
    });
    load.check_works();
    load.figures.report(
        "restarted-empty",
        &format!(" restarts={RESTARTS} quiet_entries={} quiet_hits={quiet_hits}", quiet.len()),
    );
}

#[test]
fn tag_keys_evicted_or_deleted_give_misses_never_stale_values() {
    const ROUNDS: u64 = 24;
    const ENTRIES: u64 = 300;
    const ENTRY_TAGS: u64 = 30;
    const FILLER: usize = 400;
    let redis = RedisServer::start_with(&["--maxmemory", "4mb", "--maxmemory-policy", "allkeys-lru"]);
    let ns = unique_namespace("evicted");
    let cache =
        Cache::builder().namespace(&ns).url(Some(redis.url())).socket_timeout(SOCKET_TIMEOUT).build().expect("build");
    let layout = Layout::new(&ns);
    let mut raw = redis::Client::open(redis.url()).expect("client").get_connection().expect("connect");
    let tag = |k: u64| format!("e{}", k % ENTRY_TAGS);
    let f = Figures::default();
    let (mut hits, mut misses, mut deleted_by_hand, mut tags_gone, mut errors) = (0u64, 0u64, 0u64, 0u64, 0u64);
    // What the model expects of each entry: the round it was last written in,
    // unless one of its tags changed (evicted, deleted, invalidated) since.
    let mut written: Vec<Option<u64>> = vec![None; ENTRIES as usize];
    let filler = vec![b'x'; 8 * 1024];
    let mut rng = Rng::new(7);
    for round in 0..ROUNDS {
        for k in 0..ENTRIES {
            let value = format!("key={k};round={round}");
            let started = Instant::now();
            let r = cache.set_bytes(&format!("e{k}"), value.as_bytes(), [tag(k)], Lifetime::Default);
            f.timed("set", started.elapsed(), bound(CONNECT_TIMEOUT, false));
            match r {
                Ok(()) => written[k as usize] = Some(round),
                Err(e) => {
                    errors += 1;
                    written[k as usize] = None;
                    f.problem(format!("set failed: {e}"));
                }
            }
        }
        // Fill Redis so that LRU eviction takes tag keys and entries alike.
        let mut pipe = redis::pipe();
        for i in 0..FILLER {
            pipe.cmd("SET").arg(format!("filler:{round}:{i}")).arg(filler.as_slice()).ignore();
        }
        let () = pipe.query(&mut raw).expect("fill");
        // And delete a few tag keys by hand, as an operator might.
        for _ in 0..3 {
            let t = rng.below(ENTRY_TAGS);
            let n: i64 = redis::cmd("DEL").arg(layout.tag_key(&format!("e{t}"))).query(&mut raw).expect("DEL");
            deleted_by_hand += n as u64;
        }
        // Which tags are gone now (evicted or deleted): their entries must miss.
        for t in 0..ENTRY_TAGS {
            let exists: bool =
                redis::cmd("EXISTS").arg(layout.tag_key(&format!("e{t}"))).query(&mut raw).expect("EXISTS");
            if !exists {
                tags_gone += 1;
                for k in (t..ENTRIES).step_by(ENTRY_TAGS as usize) {
                    written[k as usize] = None;
                }
            }
        }
        for k in 0..ENTRIES {
            let started = Instant::now();
            let got = cache.get_bytes(&format!("e{k}"), [tag(k)]);
            f.timed("get", started.elapsed(), bound(CONNECT_TIMEOUT, false));
            match got {
                Ok(Some(v)) => {
                    hits += 1;
                    let expected = written[k as usize].map(|r| format!("key={k};round={r}"));
                    if expected.as_deref().map(str::as_bytes) != Some(v.as_slice()) {
                        f.wrong(format!("e{k}: read {:?}, expected {expected:?}", String::from_utf8_lossy(&v)));
                    }
                }
                Ok(None) => misses += 1,
                Err(e) => {
                    errors += 1;
                    f.problem(format!("get failed: {e}"));
                }
            }
        }
    }
    let info: String = redis::cmd("INFO").arg("stats").query(&mut raw).expect("INFO");
    let evicted: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("evicted_keys:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("evicted_keys in INFO stats");
    f.errors.store(errors, SeqCst);
    f.hits.store(hits, SeqCst);
    f.report(
        "tag-keys-evicted",
        &format!(" misses={misses} evicted_keys={evicted} tag_keys_deleted_by_hand={deleted_by_hand} tag_keys_found_gone={tags_gone}"),
    );
    assert!(evicted > 0, "Redis evicted nothing: the test did not exercise eviction");
    assert!(tags_gone > deleted_by_hand, "no tag key was evicted (only {deleted_by_hand} deleted by hand)");
    assert!(hits > 0, "no entry survived: the test checked nothing");
}

#[test]
fn crashed_lock_holders_delay_waiters_only_until_lock_timeout() {
    const CRASHED_KEYS: usize = 4;
    const WAITERS_PER_KEY: usize = 4;
    let redis = RedisServer::start();
    let ns = unique_namespace("crashed-holder");
    let build = || {
        Cache::builder()
            .namespace(&ns)
            .url(Some(redis.url()))
            .socket_timeout(SOCKET_TIMEOUT)
            .socket_connect_timeout(CONNECT_TIMEOUT)
            .build()
            .expect("build")
    };
    let f = Figures::default();
    let computed = AtomicU64::new(0);
    let waiters = build();
    // Each holder takes its lock and "crashes": the ticket is dropped unused,
    // which does no I/O, so the lock stays until it expires.
    let holders: Vec<(String, Instant)> = (0..CRASHED_KEYS)
        .map(|i| {
            let key = format!("cold-{i}");
            let holder = build();
            let taken = Instant::now();
            match holder.get_or_lock(&ComputeOptions::key(&key).tags(["t"]).lock(true).lock_timeout(LOCK_TIMEOUT)) {
                GetOrLock::Locked(ticket) => drop(ticket),
                other => panic!("expected the lock, got {other:?}"),
            }
            (key, taken)
        })
        .collect();
    let mut early = 0;
    let results: Vec<(usize, Instant, Vec<u8>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..CRASHED_KEYS * WAITERS_PER_KEY)
            .map(|w| {
                let (waiters, holders, f, computed) = (&waiters, &holders, &f, &computed);
                s.spawn(move || {
                    let i = w % CRASHED_KEYS;
                    let options = ComputeOptions::key(&holders[i].0).tags(["t"]).lock(true).lock_timeout(LOCK_TIMEOUT);
                    let started = Instant::now();
                    let v = waiters
                        .get_or_compute_bytes(&options, || {
                            computed.fetch_add(1, SeqCst);
                            Ok::<_, ()>(format!("{}:computed-by-waiter-{w}", holders[i].0).into_bytes())
                        })
                        .expect("infallible");
                    f.timed("waiter", started.elapsed(), bound(CONNECT_TIMEOUT, true));
                    (i, Instant::now(), v)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("waiter thread")).collect()
    });
    for (i, ended, v) in &results {
        let (key, taken) = &holders[*i];
        // The dead holder's lock expires lock_timeout after it was taken; nobody may compute before.
        if *ended < *taken + LOCK_TIMEOUT {
            early += 1;
            f.wrong(format!(
                "{key}: a waiter returned {:?} before the crashed holder's lock expired",
                ended.duration_since(*taken)
            ));
        }
        if !v.starts_with(format!("{key}:computed-by-waiter-").as_bytes()) {
            f.wrong(format!("{key}: waiter got {:?}", String::from_utf8_lossy(v)));
        }
    }
    // The value computed after the lock expired is cached for everyone.
    for (key, _) in &holders {
        let v = waiters.get_bytes(key, ["t"]).expect("get").expect("the recovered value is cached");
        assert!(v.starts_with(format!("{key}:computed-by-waiter-").as_bytes()));
    }
    let n = computed.load(SeqCst);
    f.computed.store(n, SeqCst);
    f.report(
        "lock-holder-crashed",
        &format!(
            " crashed_holders={CRASHED_KEYS} waiters={} early={early} lock_timeout_ms={}",
            results.len(),
            LOCK_TIMEOUT.as_millis()
        ),
    );
    assert!(n >= CRASHED_KEYS as u64, "each key must be computed at least once");
}
