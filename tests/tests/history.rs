//! The history check (issue 23, item 4) on a real redis-server: five worker
//! processes (this test binary run again, with `RTC_HISTORY_ROLE` naming
//! the role) work one namespace at once: writers that read back what they
//! wrote, readers, a churn of invalidations (a hot tag in a tight loop, a
//! cold one now and then, `invalidate_all` about once a row) and deletes, a
//! process with a near cache (a writer and two readers, its reads held to the
//! near bound), and a get-or-compute reader with fail-safe on whose
//! computation always fails (its stale reads held to the fail-safe
//! promise). Each records every call it makes ([`rtc_tests::history`]) and
//! writes its history to a file; the parent merges them and checks the whole
//! history against rtc's promise: zero wrong reads, with no fault and under
//! faults (Redis restarted empty, Redis paused past the socket timeout),
//! where errors are expected and wrong values are not.
//!
//! Separate processes, not threads: each has its own connections, tag memo
//! and near cache, as a fleet does, and their clocks compare
//! (`CLOCK_MONOTONIC`). The parent and the workers talk by pipes: a worker
//! says it is under way on stdout, and stops when its stdin closes.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use rtc_core::{Cache, ComputeOptions, GetOrLock, Lifetime, NearTracking};
use rtc_tests::history::{self, Bounds, Log, Op, Recorder, Report};
use rtc_tests::{RedisServer, unique_namespace};

/// The role of a worker process (unset: this is the test itself).
const ROLE: &str = "RTC_HISTORY_ROLE";
const URL: &str = "RTC_HISTORY_URL";
const NAMESPACE: &str = "RTC_HISTORY_NAMESPACE";
const OUT: &str = "RTC_HISTORY_OUT";
/// What a worker prints once each of its threads is under way.
const READY: &str = "RTC-HISTORY-READY";

const ROLES: [&str; 5] = ["writers", "readers", "churn", "near", "fail-safe"];

/// Keys under the hot tag, invalidated in a tight loop, and under a cold
/// one, invalidated now and then (so the near cache holds them a while).
const HOT_KEYS: [&str; 3] = ["h0", "h1", "h2"];
const HOT_TAGS: [&str; 2] = ["hot", "other"];
const COLD_KEYS: [&str; 3] = ["c0", "c1", "c2"];
const COLD_TAGS: [&str; 1] = ["cold"];

/// The near cache's promise, as the near-cache suite asserts it: push
/// delivery plus the 1 s heartbeat deadline, with room for a busy machine.
const NEAR_BOUND: Duration = Duration::from_millis(2500);
const FAIL_SAFE_MAX_AGE: Duration = Duration::from_secs(10);
const BOUNDS: Bounds = Bounds { near: NEAR_BOUND, fail_safe_max_age: FAIL_SAFE_MAX_AGE };
const SOCKET_TIMEOUT: Duration = Duration::from_millis(500);
/// How many calls each worker thread makes before its process says it is under way.
const WARM_UP: usize = 20;
/// The pause between a near reader's reads: a spin of 1-us near hits would
/// take a CPU of this 2-CPU machine from the thread that applies pushes.
const NEAR_PAUSE: Duration = Duration::from_micros(20);
/// How many churn turns (a few ms each) between two `invalidate_all`s:
/// about one per row. Each moves every entry's storage key, so a near cache
/// that learns the new value (from any fill) stops serving what it held:
/// more often and a near cache deaf to pushes would look fresh anyway.
const ALL_EVERY: usize = 1500;
/// The pace of the churn's deletes and cold invalidations.
const CHURN_PAUSE: Duration = Duration::from_millis(2);

/// One row at a time: the rows' processes would share two CPUs otherwise.
static ROWS: Mutex<()> = Mutex::new(());

/// The entry point of a worker process; a no-op in the test run itself.
#[test]
fn history_worker_process() {
    if let Ok(role) = std::env::var(ROLE) {
        worker(&role);
    }
}

#[test]
fn a_history_of_five_processes_has_no_wrong_reads() {
    row("no fault", |_| {
        // Real time must pass: the storm's length.
        std::thread::sleep(Duration::from_secs(4));
    });
}

#[test]
fn a_history_across_a_redis_restart_has_no_wrong_reads() {
    row("Redis restarted empty", |redis| {
        std::thread::sleep(Duration::from_millis(1500));
        redis.restart();
        std::thread::sleep(Duration::from_millis(2000));
    });
}

#[test]
fn a_history_across_a_redis_pause_has_no_wrong_reads() {
    // Calls time out while their commands wait in Redis's socket buffers and
    // run when it resumes: failed calls that happened, later.
    row("Redis paused", |redis| {
        std::thread::sleep(Duration::from_millis(1500));
        redis.pause();
        std::thread::sleep(Duration::from_millis(1500));
        redis.resume();
        std::thread::sleep(Duration::from_millis(1500));
    });
}

/// Runs the five workers on a fresh Redis while `schedule` runs (and makes
/// its fault), then checks their merged history.
fn row(name: &str, schedule: impl FnOnce(&mut RedisServer)) -> Report {
    let _one = ROWS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut redis = RedisServer::start();
    let ns = unique_namespace("history");
    let dir = std::env::temp_dir().join(unique_namespace("rtc-history"));
    std::fs::create_dir_all(&dir).expect("a temp dir for the histories");
    let mut workers: Vec<Worker> = ROLES.iter().map(|role| Worker::spawn(role, &redis.url(), &ns, &dir)).collect();
    for w in &mut workers {
        w.wait_ready();
    }
    let started = history::now();
    schedule(&mut redis);
    for w in &mut workers {
        w.stop();
    }
    let ops: Vec<Op> = workers.into_iter().flat_map(Worker::finish).collect();
    let checking = std::time::Instant::now();
    let report = history::check(&ops, BOUNDS);
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "HISTORY {name}: {report} ({:.1} s of history from {} processes, checked in {:?})",
        (history::now() - started) as f64 / 1e9,
        ROLES.len(),
        checking.elapsed()
    );
    assert_eq!(report.wrong, 0, "{name}: wrong reads, e.g. {:#?}", report.examples);
    // Not vacuous: reads returned values, through Redis and through the near cache.
    assert!(report.reads > report.near_reads, "{name}: no plain read returned a value: {report}");
    assert!(report.near_reads > 0, "{name}: no near-cache read returned a value: {report}");
    report
}

/// A worker process, seen from the parent.
struct Worker {
    role: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    out: PathBuf,
    err: PathBuf,
}

impl Worker {
    fn spawn(role: &str, url: &str, ns: &str, dir: &Path) -> Self {
        let out = dir.join(format!("{role}.jsonl"));
        let err = dir.join(format!("{role}.stderr"));
        let mut child = Command::new(std::env::current_exe().expect("this test binary"))
            .args(["--exact", "history_worker_process", "--nocapture", "--test-threads", "1"])
            .env(ROLE, role)
            .env(URL, url)
            .env(NAMESPACE, ns)
            .env(OUT, &out)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&err).expect("a worker's stderr file"))
            .spawn()
            .expect("start a worker process");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("the worker's stdout"));
        Worker { role: role.to_string(), child, stdin, stdout, out, err }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Waits for the worker to say it is under way (or to die).
    fn wait_ready(&mut self) {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.stdout.read_line(&mut line).expect("read a worker's stdout");
            assert!(n > 0, "worker {} ended before it was under way:\n{}", self.role, self.stderr());
            // After libtest's "test history_worker_process ... ", on its line.
            if line.trim_end().ends_with(READY) {
                return;
            }
        }
    }

    /// Tells the worker to stop: its stdin closes.
    fn stop(&mut self) {
        self.stdin.take();
    }

    /// Waits for the worker to end and returns its history.
    fn finish(mut self) -> Vec<Op> {
        let mut rest = String::new();
        let _ = self.stdout.read_to_string(&mut rest);
        let status = self.child.wait().expect("wait for a worker");
        assert!(status.success(), "worker {} failed ({status}):\n{rest}\n{}", self.role, self.stderr());
        history::read(&self.out).unwrap_or_else(|e| panic!("worker {}'s history: {e}", self.role))
    }
}

/// A small deterministic generator (xorshift64*), one per thread.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
    }

    /// An entry: a hot key or a cold one, with its tags.
    fn entry(&mut self) -> (&'static str, &'static [&'static str]) {
        let i = self.below(HOT_KEYS.len() + COLD_KEYS.len());
        match HOT_KEYS.get(i) {
            Some(key) => (key, &HOT_TAGS),
            None => (COLD_KEYS[i - HOT_KEYS.len()], &COLD_TAGS),
        }
    }

    /// A cold entry (what the near cache holds long enough to matter).
    fn cold(&mut self) -> (&'static str, &'static [&'static str]) {
        (COLD_KEYS[self.below(COLD_KEYS.len())], &COLD_TAGS)
    }
}

/// One worker thread's turn: its number, and the thread's log.
type Step = Box<dyn FnMut(usize, &mut Log<'_>) + Send>;

/// Runs a worker process: its threads make calls until the parent closes
/// stdin, then its history goes to the file the parent named.
fn worker(role: &str) {
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is set for a worker"));
    let (url, ns, out) = (var(URL), var(NAMESPACE), PathBuf::from(var(OUT)));
    let builder = || {
        Cache::builder()
            .namespace(ns.as_str())
            .url(Some(url.clone()))
            .socket_timeout(SOCKET_TIMEOUT)
            .socket_connect_timeout(SOCKET_TIMEOUT)
    };
    let steps: Vec<Step> = match role {
        "writers" => writers(Arc::new(builder().build().expect("a cache"))),
        "readers" => readers(Arc::new(builder().build().expect("a cache"))),
        "churn" => churn(Arc::new(builder().build().expect("a cache"))),
        "near" => near(Arc::new(
            builder()
                .near_cache_max_entries(10_000usize)
                .near_cache_tracking(NearTracking::PerReader)
                .build()
                .expect("a near cache"),
        )),
        "fail-safe" => fail_safe(Arc::new(
            builder().fail_safe_max_duration(Some(FAIL_SAFE_MAX_AGE)).build().expect("a fail-safe cache"),
        )),
        other => panic!("no worker role {other:?}"),
    };
    let recorder = Recorder::new(role);
    let stop = AtomicBool::new(false);
    let (ready, under_way) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        let threads = steps.len();
        for mut step in steps {
            let (recorder, stop, ready) = (&recorder, &stop, ready.clone());
            s.spawn(move || {
                let mut log = recorder.log();
                let mut ready = Some(ready);
                let mut n = 0;
                while !stop.load(SeqCst) {
                    step(n, &mut log);
                    n += 1;
                    if n == WARM_UP {
                        ready.take().map(|r| r.send(()));
                    }
                }
            });
        }
        drop(ready);
        for _ in 0..threads {
            under_way.recv().expect("a worker thread ended before it was under way");
        }
        println!("{READY}");
        std::io::stdout().flush().expect("stdout");
        // The parent closes stdin to stop this process.
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        stop.store(true, SeqCst);
    });
    history::write(&out, &recorder.into_ops()).expect("write the history");
}

/// Two threads: each sets a fresh value of any entry, then reads it back.
fn writers(cache: Arc<Cache>) -> Vec<Step> {
    (0..2)
        .map(|t| {
            let (cache, mut rng) = (Arc::clone(&cache), Rng::new(t + 1));
            Box::new(move |n, log: &mut Log<'_>| {
                write_and_read_back(&cache, log, &format!("writers-{t}"), n, rng.entry(), false)
            }) as Step
        })
        .collect()
}

/// Two threads reading any entry.
fn readers(cache: Arc<Cache>) -> Vec<Step> {
    (0..2)
        .map(|t| {
            let (cache, mut rng) = (Arc::clone(&cache), Rng::new(t + 11));
            Box::new(move |_, log: &mut Log<'_>| {
                let (key, tags) = rng.entry();
                let _ = log.get(key, tags, false, || cache.get_bytes(key, tags));
            }) as Step
        })
        .collect()
}

/// One thread invalidating the hot tag in a tight loop; one deleting
/// entries, invalidating the cold tag every tenth turn and everything every
/// [`ALL_EVERY`]th.
fn churn(cache: Arc<Cache>) -> Vec<Step> {
    let hot = Arc::clone(&cache);
    let mut rng = Rng::new(21);
    vec![
        Box::new(move |_, log: &mut Log<'_>| {
            let _ = log.invalidate(&["hot"], || hot.invalidate("hot"));
        }),
        Box::new(move |n, log: &mut Log<'_>| {
            // Pacing, so the cold entries live long enough to be read.
            std::thread::sleep(CHURN_PAUSE);
            let (key, tags) = rng.entry();
            let _ = log.delete(key, tags, || cache.delete(key, tags));
            if n % 10 == 9 {
                let _ = log.invalidate(&COLD_TAGS, || cache.invalidate(COLD_TAGS));
            }
            if n % ALL_EVERY == ALL_EVERY - 1 {
                let _ = log.invalidate_all(|| cache.invalidate_all());
            }
        }),
    ]
}

/// A near cache: a writer of hot entries (its own writes must apply before
/// the call returns) and two readers of the cold entries (those it holds
/// for long: only a push or a fill with a newer tag value drops them), their
/// reads held to the near bound.
fn near(cache: Arc<Cache>) -> Vec<Step> {
    let writer = Arc::clone(&cache);
    let mut rng = Rng::new(31);
    let mut steps: Vec<Step> = vec![Box::new(move |n, log: &mut Log<'_>| {
        std::thread::sleep(CHURN_PAUSE);
        let key = HOT_KEYS[rng.below(HOT_KEYS.len())];
        write_and_read_back(&writer, log, "near", n, (key, &HOT_TAGS), true);
    })];
    for t in 0..2 {
        let (cache, mut rng) = (Arc::clone(&cache), Rng::new(t + 41));
        steps.push(Box::new(move |_, log: &mut Log<'_>| {
            std::thread::sleep(NEAR_PAUSE);
            let (key, tags) = rng.cold();
            let _ = log.get(key, tags, true, || cache.get_bytes(key, tags));
        }));
    }
    steps
}

/// One thread (the fail-safe promise is per cache, and its check needs one
/// caller at a time): get-or-compute reads whose computation always fails,
/// so a miss returns the fail-safe value when there is one; every tenth
/// turn a write of its own.
fn fail_safe(cache: Arc<Cache>) -> Vec<Step> {
    let mut rng = Rng::new(51);
    vec![Box::new(move |n, log: &mut Log<'_>| {
        std::thread::sleep(Duration::from_millis(1));
        let (key, tags) = rng.entry();
        if n % 10 == 9 {
            let value = format!("{key}/fail-safe/{n}");
            let _ = log.set(key, tags, &value, || cache.set_bytes(key, value.as_bytes(), tags, Lifetime::Default));
            return;
        }
        let _ = log.get_or_stale(key, tags, || {
            let options = ComputeOptions::key(key).tags(tags);
            match cache.get_or_lock(&options) {
                GetOrLock::Hit(hit) => {
                    let (bytes, info) = hit.finish();
                    Ok(Some((bytes, info.stale)))
                }
                GetOrLock::Locked(ticket) | GetOrLock::Miss(ticket) => match cache.fail_and_unlock(ticket) {
                    (Some(bytes), info) => Ok(Some((bytes, info.stale))),
                    (None, info) => info.error.map_or(Ok(None), Err),
                },
            }
        });
    })]
}

/// A set of a fresh value (`key/who/n`, written by no other set), then a read of it.
fn write_and_read_back(
    cache: &Cache,
    log: &mut Log<'_>,
    who: &str,
    n: usize,
    (key, tags): (&str, &[&str]),
    near: bool,
) {
    let value = format!("{key}/{who}/{n}");
    let _ = log.set(key, tags, &value, || cache.set_bytes(key, value.as_bytes(), tags, Lifetime::Default));
    let _ = log.get(key, tags, near, || cache.get_bytes(key, tags));
}
