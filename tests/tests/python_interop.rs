//! rtc and the Python reference share one cache: the real
//! `redis-tagged-cache` 0.12.1 from PyPI (installed into a venv by
//! `tests/python/setup.sh`, which the README's test command runs), configured
//! with an identity bytes serializer, talks to the same real `redis-server`
//! as rtc's Rust API, its C library, and its WebAssembly component (run by
//! the wasmtime host; needs `cargo build --profile component --locked
//! --target wasm32-wasip2 -p rtc-component`, which the README's test command runs).
//!
//! Every test drives `tests/python/peer.py` (one JSON command per line) and
//! checks both directions: entries, tag invalidation, invalidate-all, and the
//! stampede lock. Where a bug of the reference makes a direction impossible,
//! the test pins the reference's behaviour and checks rtc's side (see
//! `tests/python/README.md` for the table).

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rtc_core::{
    Backend, Cache, CacheInfo, Command as Cmd, ComputeOptions, Config, GetOrLock, Layout, RedisBackend, Reply,
};
use rtc_tests::cprog::{self, Link, Running};
use rtc_tests::{RedisServer, unique_namespace};
use serde_json::{Value, json};

/// The version of the reference the tests are written against.
const REFERENCE_VERSION: &str = "0.12.1";
/// How long any single answer from the Python side may take.
const ANSWER_DEADLINE: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------- the Python side

/// The venv's python: `$RTC_PY_VENV/bin/python`, else `target/py-venv/bin/python`.
fn venv_python() -> PathBuf {
    let venv =
        std::env::var_os("RTC_PY_VENV").map(PathBuf::from).unwrap_or_else(|| cprog::root().join("target/py-venv"));
    let python = venv.join("bin/python");
    assert!(
        python.is_file(),
        "{} is missing: the Python reference (redis-tagged-cache {REFERENCE_VERSION}) is not installed.\n\
         Install it with:\n    bash tests/python/setup.sh\n\
         (the README's test command, tests/run.sh, does; RTC_PY_VENV chooses another venv)",
        python.display()
    );
    python
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex from peer.py")).collect()
}

/// One `tests/python/peer.py`: a RedisTaggedCache on our server and namespace.
struct Peer {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    stderr: PathBuf,
}

impl Peer {
    fn start(redis: &RedisServer, namespace: &str) -> Peer {
        Self::start_with(redis, namespace, &[])
    }

    /// Starts the peer with `options` (`lifetime_for_tags=none`).
    fn start_with(redis: &RedisServer, namespace: &str, options: &[&str]) -> Peer {
        let stderr = std::env::temp_dir().join(format!("{}.stderr", unique_namespace("peer")));
        let mut child = Command::new(venv_python())
            .arg(rtc_tests::tests_dir().join("python/peer.py"))
            .arg(redis.port().to_string())
            .arg(namespace)
            .args(options)
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("create the peer's stderr file"))
            .spawn()
            .expect("start tests/python/peer.py");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut peer = Peer { child, stdin, lines, stderr };
        let ready = peer.recv();
        assert_eq!(
            ready["version"], REFERENCE_VERSION,
            "the venv must hold redis-tagged-cache {REFERENCE_VERSION}: run tests/python/setup.sh"
        );
        peer
    }

    /// The peer's stderr so far (the reference logs its swallowed errors there).
    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn send(&mut self, command: &Value) {
        writeln!(self.stdin, "{command}").and_then(|()| self.stdin.flush()).expect("write to peer.py");
    }

    /// Writes a bare line (what a paused peer waits for).
    fn go(&mut self) {
        writeln!(self.stdin, "go").and_then(|()| self.stdin.flush()).expect("write to peer.py");
    }

    fn recv(&mut self) -> Value {
        match self.lines.recv_timeout(ANSWER_DEADLINE) {
            Ok(line) => {
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("peer.py said {line:?} ({e})\n{}", self.stderr()))
            }
            Err(e) => panic!("no answer from peer.py within {ANSWER_DEADLINE:?} ({e}); its stderr:\n{}", self.stderr()),
        }
    }

    fn call(&mut self, command: Value) -> Value {
        self.send(&command);
        self.recv()
    }

    fn set(&mut self, key: &str, value: &[u8], tags: &[&str]) -> bool {
        self.call(json!({"op": "set", "key": key, "value": hex(value), "tags": tags}))["ok"].as_bool().expect("ok")
    }

    fn get(&mut self, key: &str, tags: &[&str]) -> Option<Vec<u8>> {
        let answer = self.call(json!({"op": "get", "key": key, "tags": tags}));
        answer["hit"].as_bool().expect("hit").then(|| unhex(answer["value"].as_str().expect("value")))
    }

    fn delete(&mut self, key: &str, tags: &[&str]) -> bool {
        self.call(json!({"op": "delete", "key": key, "tags": tags}))["ok"].as_bool().expect("ok")
    }

    fn invalidate(&mut self, tags: &[&str]) -> bool {
        self.call(json!({"op": "invalidate", "tags": tags}))["ok"].as_bool().expect("ok")
    }

    fn invalidate_all(&mut self) -> bool {
        self.call(json!({"op": "invalidate_all"}))["ok"].as_bool().expect("ok")
    }

    /// Sends a decorator call (`@cache.decorator(key=lambda: key, tags=tags,
    /// lock=lock)` around a function returning `value`) without waiting.
    fn start_compute(&mut self, key: &str, tags: &[&str], value: &[u8], lock: bool, hold: bool) {
        self.send(&json!({"op": "compute", "key": key, "tags": tags, "value": hex(value), "lock": lock, "hold": hold}));
    }

    /// Reads the answer of a decorator call: (value, whether the function ran, the hook's CacheInfo).
    fn computed(&mut self) -> (Vec<u8>, bool, Value) {
        let answer = self.recv();
        (
            unhex(answer["value"].as_str().expect("value")),
            answer["computed"].as_bool().expect("computed"),
            answer["info"].clone(),
        )
    }

    fn expect_event(&mut self, event: &str) -> Value {
        let answer = self.recv();
        assert_eq!(answer["event"], event, "peer.py: want event {event:?}, got {answer}\n{}", self.stderr());
        answer
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- peer.py stderr ---\n{}", self.stderr());
        }
        let _ = std::fs::remove_file(&self.stderr);
    }
}

// ---------------------------------------------------------------- the rtc side

/// What a hook saw of each get-or-compute.
type Seen = Arc<Mutex<Vec<CacheInfo>>>;

fn rust_cache(redis: &RedisServer, namespace: &str) -> Cache {
    Cache::builder().namespace(namespace).url(Some(redis.url())).build().expect("build a cache")
}

fn rust_cache_with_hook(redis: &RedisServer, namespace: &str) -> (Cache, Seen) {
    let seen: Seen = Arc::default();
    let sink = Arc::clone(&seen);
    let cache = Cache::builder()
        .namespace(namespace)
        .url(Some(redis.url()))
        .hook(move |event| sink.lock().expect("hook sink").push(event.info.clone()))
        .build()
        .expect("build a cache");
    (cache, seen)
}

/// Options for a get-or-lock of `key` under `tags` with a five-second stampede lock.
fn lock_options(key: &str, tags: &[&str]) -> ComputeOptions {
    ComputeOptions::key(key).tags(tags).lock(true).lock_timeout(Duration::from_secs(5))
}

fn conn(redis: &RedisServer) -> redis::Connection {
    redis::Client::open(redis.url()).expect("client").get_connection().expect("connect")
}

fn ttl(redis: &RedisServer, key: &str) -> i64 {
    redis::cmd("TTL").arg(key).query(&mut conn(redis)).expect("TTL")
}

/// Waits until `n` clients of the server are blocked (in the lock's BLPOP):
/// the event that says a waiter is really waiting.
fn wait_until_blocked(redis: &RedisServer, n: usize) {
    let mut conn = conn(redis);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info: String = redis::cmd("INFO").arg("clients").query(&mut conn).expect("INFO clients");
        let blocked = info
            .lines()
            .find_map(|l| l.strip_prefix("blocked_clients:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .expect("blocked_clients in INFO clients");
        if blocked >= n {
            return;
        }
        assert!(Instant::now() < deadline, "only {blocked} of {n} clients blocked on the lock after 10 s");
        std::thread::sleep(Duration::from_millis(2));
    }
}

// ---------------------------------------------------------------- entries

#[test]
fn entries_cross_between_python_and_rust_with_the_same_tags() {
    let redis = RedisServer::start();
    let ns = unique_namespace("py-entries");
    let mut py = Peer::start(&redis, &ns);
    let rust = rust_cache(&redis, &ns);
    let binary: Vec<u8> = (0..=255).collect();

    // Python -> Rust. Tags are a set: any order reads the entry back.
    assert!(py.set("p1", b"from-python", &["a", "b"]));
    assert!(py.set("p2", &binary, &["tag ü", "with space"]));
    assert!(py.set("p3", b"untagged", &[]));
    assert!(py.set("p4", b"", &["a"]));
    assert_eq!(rust.get_bytes("p1", ["a", "b"]).expect("get"), Some(b"from-python".to_vec()));
    assert_eq!(rust.get_bytes("p1", ["b", "a"]).expect("get"), Some(b"from-python".to_vec()));
    assert_eq!(rust.get_bytes("p2", ["with space", "tag ü"]).expect("get"), Some(binary.clone()));
    assert_eq!(rust.get_bytes("p3", rtc_core::NO_TAGS).expect("get"), Some(b"untagged".to_vec()));
    assert_eq!(rust.get_bytes("p4", ["a"]).expect("get"), Some(Vec::new()));
    // Other tags, other entry.
    assert_eq!(rust.get_bytes("p1", ["a"]).expect("get"), None);
    assert_eq!(rust.get_bytes("p3", ["a"]).expect("get"), None);

    // Rust -> Python.
    rust.set_bytes("r1", b"from-rust", ["a", "b"], rtc_core::Lifetime::Default).expect("set");
    rust.set_bytes("r2", &binary, ["tag ü", "with space"], rtc_core::Lifetime::Default).expect("set");
    rust.set_bytes("r3", b"untagged", rtc_core::NO_TAGS, rtc_core::Lifetime::Default).expect("set");
    rust.set_bytes("r4", b"", ["a"], rtc_core::Lifetime::Default).expect("set");
    assert_eq!(py.get("r1", &["b", "a"]), Some(b"from-rust".to_vec()));
    assert_eq!(py.get("r2", &["tag ü", "with space"]), Some(binary.clone()));
    assert_eq!(py.get("r3", &[]), Some(b"untagged".to_vec()));
    assert_eq!(py.get("r4", &["a"]), Some(Vec::new()));
    assert_eq!(py.get("r1", &["a"]), None);

    // One key, one entry: each side overwrites the other's value.
    assert!(py.set("r1", b"python-overwrote", &["a", "b"]));
    assert_eq!(rust.get_bytes("r1", ["a", "b"]).expect("get"), Some(b"python-overwrote".to_vec()));

    // Deletes cross too.
    assert!(py.delete("r3", &[]), "Python deletes rtc's entry");
    assert_eq!(rust.get_bytes("r3", rtc_core::NO_TAGS).expect("get"), None);
    assert!(rust.delete("p3", rtc_core::NO_TAGS).expect("delete"), "rtc deletes Python's entry");
    assert_eq!(py.get("p3", &[]), None);

    // Entry lifetimes: both default to 3600 s.
    let storage = Layout::new(&ns).storage_key("p4", &rtc_core::metadata_hash(&tag_values(&redis, &ns, &["a"])));
    assert!((3500..=3600).contains(&ttl(&redis, &storage)), "Python's entry has the default lifetime");
}

/// The current values of `tags` (plus the all-tag), in hash order.
fn tag_values(redis: &RedisServer, ns: &str, tags: &[&str]) -> Vec<Vec<u8>> {
    let layout = Layout::new(ns);
    rtc_core::hash_order(tags)
        .into_iter()
        .map(|t| redis::cmd("GET").arg(layout.tag_key(t)).query::<Vec<u8>>(&mut conn(redis)).expect("tag value"))
        .collect()
}

// ---------------------------------------------------------------- invalidation

#[test]
fn tag_invalidation_crosses_both_ways() {
    let redis = RedisServer::start();
    let ns = unique_namespace("py-invalidate");
    let mut py = Peer::start(&redis, &ns);
    let rust = rust_cache(&redis, &ns);
    let d = rtc_core::Lifetime::Default;
    let layout = Layout::new(&ns);

    let fill = |py: &mut Peer| {
        for (key, tags) in [("x", &["a"][..]), ("xy", &["a", "b"][..]), ("y", &["b"][..])] {
            assert!(py.set(&format!("p-{key}"), b"p", tags));
            rust.set_bytes(&format!("r-{key}"), b"r", tags, d).expect("set");
        }
    };
    let rust_sees = |key: &str, tags: &[&str]| rust.get_bytes(key, tags).expect("get").is_some();

    // Python invalidates [a]: entries under a (from both sides) go, the rest stays.
    fill(&mut py);
    assert!(py.invalidate(&["a"]));
    for side in ["p", "r"] {
        assert!(!rust_sees(&format!("{side}-x"), &["a"]), "{side}-x after Python's invalidate(a)");
        assert!(!rust_sees(&format!("{side}-xy"), &["a", "b"]), "{side}-xy after Python's invalidate(a)");
        assert!(rust_sees(&format!("{side}-y"), &["b"]), "{side}-y stays");
        assert_eq!(py.get(&format!("{side}-x"), &["a"]), None);
        assert!(py.get(&format!("{side}-y"), &["b"]).is_some());
    }
    // The reference's bug: its invalidation drops the tag's lifetime (the tag key never expires).
    assert_eq!(ttl(&redis, &layout.tag_key("a")), -1, "redis-tagged-cache 0.12.1 sets an invalidated tag without EX");

    // rtc invalidates [b]: Python no longer sees entries under b; rtc keeps the tag lifetime.
    fill(&mut py);
    rust.invalidate("b").expect("invalidate");
    for side in ["p", "r"] {
        assert_eq!(py.get(&format!("{side}-y"), &["b"]), None, "{side}-y after rtc's invalidate(b)");
        assert_eq!(py.get(&format!("{side}-xy"), &["b", "a"]), None, "{side}-xy after rtc's invalidate(b)");
        assert!(py.get(&format!("{side}-x"), &["a"]).is_some(), "{side}-x stays");
        assert!(!rust_sees(&format!("{side}-y"), &["b"]));
    }
    assert!((86_000..=86_400).contains(&ttl(&redis, &layout.tag_key("b"))), "rtc keeps lifetime_for_tags");
    // rtc's invalidation also gives back a lifetime to the tag Python made permanent.
    rust.invalidate("a").expect("invalidate");
    assert!((86_000..=86_400).contains(&ttl(&redis, &layout.tag_key("a"))));

    // Several tags at once, from either side.
    fill(&mut py);
    assert!(py.invalidate(&["a", "b"]));
    assert!(!rust_sees("r-x", &["a"]) && !rust_sees("p-y", &["b"]));
    fill(&mut py);
    rust.invalidate(["a", "b"]).expect("invalidate");
    assert!(py.get("r-x", &["a"]).is_none() && py.get("p-y", &["b"]).is_none());
}

#[test]
fn invalidate_all_crosses_both_ways() {
    let redis = RedisServer::start();
    let ns = unique_namespace("py-all");
    let other_ns = unique_namespace("py-all-other");
    let mut py = Peer::start(&redis, &ns);
    let rust = rust_cache(&redis, &ns);
    let other = rust_cache(&redis, &other_ns);
    let d = rtc_core::Lifetime::Default;
    other.set_bytes("o", b"other namespace", ["a"], d).expect("set");

    for round in ["python", "rust"] {
        assert!(py.set("p", b"p", &["a"]));
        assert!(py.set("p0", b"p0", &[]));
        rust.set_bytes("r", b"r", ["b"], d).expect("set");
        assert!(rust.get_bytes("p", ["a"]).expect("get").is_some() && py.get("r", &["b"]).is_some());
        if round == "python" {
            assert!(py.invalidate_all());
        } else {
            rust.invalidate_all().expect("invalidate_all");
        }
        for (key, tags) in [("p", &["a"][..]), ("p0", &[][..]), ("r", &["b"][..])] {
            assert_eq!(rust.get_bytes(key, tags).expect("get"), None, "{key} after {round}'s invalidate_all");
            assert_eq!(py.get(key, tags), None, "{key} after {round}'s invalidate_all");
        }
        assert!(other.get_bytes("o", ["a"]).expect("get").is_some(), "other namespaces are not touched");
    }
}

// ---------------------------------------------------------------- the lock

#[test]
fn a_python_lock_holder_makes_rust_wait_and_reuse_its_value() {
    let redis = RedisServer::start();
    let ns = unique_namespace("py-lock-holder");
    let mut py = Peer::start(&redis, &ns);
    let (rust, seen) = rust_cache_with_hook(&redis, &ns);

    // Python's decorator misses, takes the lock, and stops inside its function.
    py.start_compute("report", &["reports"], b"computed by python", true, true);
    py.expect_event("locked");

    let ran = AtomicBool::new(false);
    let options = ComputeOptions::key("report").tags(["reports"]).lock(true);
    std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            rust.get_or_compute_bytes(&options, || {
                ran.store(true, Ordering::SeqCst);
                Ok::<_, String>(b"computed by rust".to_vec())
            })
        });
        // rtc is waiting on the wake-up list of Python's lock: let Python finish.
        wait_until_blocked(&redis, 1);
        assert!(!waiter.is_finished(), "rtc must wait while Python holds the lock");
        py.go();
        let (value, computed, _) = py.computed();
        assert_eq!((value.as_slice(), computed), (&b"computed by python"[..], true));
        let value = waiter.join().expect("waiter").expect("get_or_compute");
        assert_eq!(value, b"computed by python", "rtc reuses Python's value");
    });
    assert!(!ran.load(Ordering::SeqCst), "rtc's computation must not run");
    let seen = seen.lock().expect("seen");
    let info = seen.last().expect("the hook ran");
    assert!(
        info.hit && !info.lock_full_hit && !info.lock_full_miss,
        "a hit after waiting for another holder: {info:?}"
    );
    assert!(info.error.is_none(), "{info:?}");
}

#[test]
fn a_rust_lock_holder_makes_python_wait_and_reuse_its_value() {
    let redis = RedisServer::start();
    let ns = unique_namespace("py-lock-waiter");
    let mut py = Peer::start(&redis, &ns);
    let rust = rust_cache(&redis, &ns);

    let GetOrLock::Locked(ticket) = rust.get_or_lock(&lock_options("report", &["reports"])) else {
        panic!("a cold key must lock");
    };
    py.start_compute("report", &["reports"], b"computed by python", true, false);
    // Python's decorator is in its BLPOP on rtc's wake-up list: store and release.
    wait_until_blocked(&redis, 1);
    let info = rust.set_and_unlock(ticket, Ok::<_, rtc_core::Error>(b"computed by rust"));
    assert!(info.error.is_none(), "set_and_unlock: {info:?}");
    let (value, computed, info) = py.computed();
    assert_eq!(value, b"computed by rust", "Python reuses rtc's value");
    assert!(!computed, "Python's function must not run");
    assert_eq!(info["hit"], true);
    assert_eq!(info["lock_full_hit"], false, "Python waited: {info}");
    // And the entry is there for everyone.
    assert_eq!(py.get("report", &["reports"]), Some(b"computed by rust".to_vec()));
}

#[test]
fn a_waiter_that_finds_the_value_without_a_wake_up_rtc_reuses_it_the_reference_computes() {
    // A value stored by a plain set while a lock is held wakes nobody. A
    // waiter finds it when its one-second BLPOP ends. rtc then returns it;
    // the reference releases a lock it never took (`unlock(lock_id=None)`),
    // which redis-py rejects, so it bypasses the cache and computes.
    let redis = RedisServer::start();
    let ns = unique_namespace("py-no-wake");
    let mut py = Peer::start(&redis, &ns);
    let (rust, seen) = rust_cache_with_hook(&redis, &ns);
    let holder = rust_cache(&redis, &ns);
    let d = rtc_core::Lifetime::Default;

    // The reference's side.
    let GetOrLock::Locked(ticket) = holder.get_or_lock(&lock_options("k-py", &["t"])) else {
        panic!("a cold key must lock");
    };
    py.start_compute("k-py", &["t"], b"computed by python", true, false);
    wait_until_blocked(&redis, 1);
    holder.set_bytes("k-py", b"stored by rust", ["t"], d).expect("set");
    let (value, computed, _) = py.computed();
    assert!(computed, "redis-tagged-cache 0.12.1 computes although the value is there");
    assert_eq!(value, b"computed by python");
    assert!(py.stderr().contains("cache exception when getting or locking a key"), "{}", py.stderr());
    let _ = holder.release(ticket);

    // rtc's side.
    let GetOrLock::Locked(ticket) = holder.get_or_lock(&lock_options("k-rs", &["t"])) else {
        panic!("a cold key must lock");
    };
    let ran = AtomicBool::new(false);
    std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            rust.get_or_compute_bytes(&ComputeOptions::key("k-rs").tags(["t"]).lock(true), || {
                ran.store(true, Ordering::SeqCst);
                Ok::<_, String>(b"computed by rust".to_vec())
            })
        });
        wait_until_blocked(&redis, 1);
        holder.set_bytes("k-rs", b"stored by python", ["t"], d).expect("set");
        assert_eq!(waiter.join().expect("waiter").expect("compute"), b"stored by python");
    });
    assert!(!ran.load(Ordering::SeqCst), "rtc reuses the value it finds after its wait");
    assert!(seen.lock().expect("seen").last().is_some_and(|i| i.hit && i.lock_waiting_ms > 0));
    let _ = holder.release(ticket);
}

// ---------------------------------------------------------------- the C library

#[test]
fn the_c_library_shares_entries_invalidations_and_the_lock_with_python() {
    let program = cprog::compile("python_interop.c", Link::Shared);
    let redis = RedisServer::start();
    let ns = unique_namespace("py-c");
    let mut py = Peer::start(&redis, &ns);
    let url = redis.url();
    let c = |args: &[&str]| -> String {
        let mut all = vec![url.as_str(), ns.as_str()];
        all.extend_from_slice(args);
        let out = cprog::run(&program, &all);
        assert!(out.contains("c-python-interop: ") && out.contains(" 0 failed"), "{args:?}:\n{out}");
        out
    };

    // Entries, both ways.
    assert!(py.set("pc", b"from-python", &["a", "b"]));
    c(&["expect-hit", "pc", "from-python", "b", "a"]);
    c(&["expect-miss", "pc", "a"]);
    c(&["set", "cc", "from-c", "a"]);
    assert_eq!(py.get("cc", &["a"]), Some(b"from-c".to_vec()));

    // Tag invalidation, both ways.
    assert!(py.invalidate(&["a"]));
    c(&["expect-miss", "cc", "a"]);
    c(&["expect-miss", "pc", "a", "b"]);
    c(&["set", "cc2", "c2", "b"]);
    assert!(py.set("pc2", b"p2", &["b"]));
    assert!(py.set("pc3", b"p3", &["z"]));
    c(&["invalidate", "b"]);
    assert_eq!(py.get("cc2", &["b"]), None);
    assert_eq!(py.get("pc2", &["b"]), None);
    assert_eq!(py.get("pc3", &["z"]), Some(b"p3".to_vec()));

    // Invalidate-all, both ways.
    c(&["set", "cc3", "c3", "z"]);
    assert!(py.invalidate_all());
    c(&["expect-miss", "cc3", "z"]);
    c(&["expect-miss", "pc3", "z"]);
    assert!(py.set("pc4", b"p4", &["z"]));
    c(&["expect-hit", "pc4", "p4", "z"]);
    c(&["invalidate-all"]);
    assert_eq!(py.get("pc4", &["z"]), None);

    // The lock: C waits for Python's holder and reuses its value.
    py.start_compute("lk1", &["l"], b"python-lock", true, true);
    py.expect_event("locked");
    let waiter = Running::spawn(&program, &[&url, &ns, "wait", "lk1", "python-lock", "l"]);
    wait_until_blocked(&redis, 1);
    py.go();
    assert!(py.computed().1, "Python computed while holding the lock");
    let out = waiter.finish();
    assert!(out.contains("value: python-lock") && out.contains(" 0 failed"), "{out}");

    // ... and Python waits for C's holder and reuses its value.
    let mut holder = Running::spawn(&program, &[&url, &ns, "hold", "lk2", "c-lock", "l"]);
    assert_eq!(holder.read_line(), "locked");
    py.start_compute("lk2", &["l"], b"python-value", true, false);
    wait_until_blocked(&redis, 1);
    holder.write_line("go");
    let out = holder.finish();
    assert!(out.contains(" 0 failed"), "{out}");
    let (value, computed, _) = py.computed();
    assert_eq!(value, b"c-lock", "Python reuses C's value");
    assert!(!computed, "Python's function must not run");
}

// ---------------------------------------------------------------- the reference's bugs

#[test]
fn with_lifetime_for_tags_none_the_reference_cannot_create_or_invalidate_tags() {
    // The reference turns lifetime_for_tags=None ("no expiry") into 0 and
    // sends `SET ... EX 0`, which Redis rejects; it swallows the error. So
    // it can still read and write under tags that exist (created by rtc),
    // but cannot create a tag nor invalidate one. rtc's None means no expiry.
    let redis = RedisServer::start();
    let ns = unique_namespace("py-tags-none");
    let mut py = Peer::start_with(&redis, &ns, &["lifetime_for_tags=none"]);
    let rust =
        Cache::builder().namespace(ns.as_str()).url(Some(redis.url())).lifetime_for_tags(None).build().expect("build");
    let d = rtc_core::Lifetime::Default;

    assert!(!py.set("p", b"p", &["new"]), "the reference cannot create the tags of a new entry");
    assert!(py.stderr().contains("invalid expire time"), "{}", py.stderr());

    rust.set_bytes("r", b"from-rust", ["t"], d).expect("set");
    assert_eq!(ttl(&redis, &Layout::new(&ns).tag_key("t")), -1, "rtc: no expiry");
    assert_eq!(py.get("r", &["t"]), Some(b"from-rust".to_vec()), "tags rtc created are read");
    assert!(py.set("p", b"from-python", &["t"]), "and written under");
    assert_eq!(rust.get_bytes("p", ["t"]).expect("get"), Some(b"from-python".to_vec()));

    assert!(!py.invalidate(&["t"]), "the reference cannot invalidate");
    assert!(!py.invalidate_all(), "nor invalidate all");
    assert_eq!(rust.get_bytes("r", ["t"]).expect("get"), Some(b"from-rust".to_vec()), "nothing was invalidated");
    rust.invalidate("t").expect("rtc invalidates");
    assert_eq!(py.get("r", &["t"]), None);
    assert_eq!(ttl(&redis, &Layout::new(&ns).tag_key("t")), -1, "still no expiry");
}

/// A backend that stops once after an MGET that finds a tag missing (before
/// rtc creates it), until the test lets it go.
struct PauseFirstCreation {
    inner: RedisBackend,
    armed: AtomicBool,
    reached: Sender<()>,
    resume: Mutex<Receiver<()>>,
}

impl Backend for PauseFirstCreation {
    fn execute(&self, commands: &[Cmd]) -> rtc_core::Result<Vec<Reply>> {
        let replies = self.inner.execute(commands)?;
        let missing = matches!(replies.as_slice(), [Reply::Array(values)] if values.contains(&Reply::Nil));
        if matches!(commands, [Cmd::Mget { .. }]) && missing && self.armed.swap(false, Ordering::SeqCst) {
            self.reached.send(()).expect("the test waits");
            self.resume.lock().expect("resume").recv().expect("the test resumes us");
        }
        Ok(replies)
    }
}

#[test]
fn first_creation_of_a_tag_the_reference_overwrites_rtc_does_not() {
    let redis = RedisServer::start();
    let ns = unique_namespace("py-first-tag");
    let mut py = Peer::start(&redis, &ns);
    let rust = rust_cache(&redis, &ns);
    let d = rtc_core::Lifetime::Default;
    rust.set_bytes("warm", b"w", ["other"], d).expect("set"); // the all-tag exists from here on

    // The reference reads the missing tag, then creates it with a plain SET.
    // An entry stored in between, under the value another client created, is lost.
    assert!(py.call(json!({"op": "pause_tag_creation", "on": true}))["ok"].as_bool().expect("ok"));
    py.send(&json!({"op": "set", "key": "p", "value": hex(b"from-python"), "tags": ["fresh"]}));
    assert_eq!(py.expect_event("tags_missing")["n"], 1);
    rust.set_bytes("r", b"from-rust", ["fresh"], d).expect("set"); // rtc creates the tag first
    assert_eq!(rust.get_bytes("r", ["fresh"]).expect("get"), Some(b"from-rust".to_vec()));
    py.go();
    assert_eq!(py.recv()["ok"], true);
    assert!(py.call(json!({"op": "pause_tag_creation", "on": false}))["ok"].as_bool().expect("ok"));
    assert_eq!(
        rust.get_bytes("r", ["fresh"]).expect("get"),
        None,
        "redis-tagged-cache 0.12.1 overwrote the tag rtc had created"
    );
    assert_eq!(py.get("r", &["fresh"]), None);
    assert_eq!(rust.get_bytes("p", ["fresh"]).expect("get"), Some(b"from-python".to_vec()));

    // rtc reads the missing tag, then creates it with SET NX and reads back
    // the winner: an entry the reference stored in between survives.
    let (reached, reached_rx) = mpsc::channel();
    let (resume_tx, resume) = mpsc::channel();
    let config = Config::default().namespace(ns.clone()).url(Some(redis.url()));
    let backend = PauseFirstCreation {
        inner: RedisBackend::new(&config).expect("backend"),
        armed: AtomicBool::new(true),
        reached,
        resume: Mutex::new(resume),
    };
    let paused = Cache::builder().config(config).backend(Arc::new(backend)).build().expect("build");
    std::thread::scope(|s| {
        let setter = s.spawn(|| paused.set_bytes("r2", b"from-rust", ["fresh2"], d));
        reached_rx.recv_timeout(ANSWER_DEADLINE).expect("rtc reaches its tag creation");
        assert!(py.set("p2", b"from-python", &["fresh2"]), "the reference creates the tag meanwhile");
        resume_tx.send(()).expect("resume rtc");
        setter.join().expect("setter").expect("set r2");
    });
    assert_eq!(py.get("p2", &["fresh2"]), Some(b"from-python".to_vec()), "rtc kept the reference's tag value");
    assert_eq!(py.get("r2", &["fresh2"]), Some(b"from-rust".to_vec()));
    assert_eq!(rust.get_bytes("p2", ["fresh2"]).expect("get"), Some(b"from-python".to_vec()));

    // A tag given twice: the reference creates each copy with its own random
    // value, hashes both, and keeps only the last, so its first entry under a
    // new tag given twice is lost. rtc creates the tag once.
    assert!(py.set("dup-p", b"from-python", &["dup1", "dup1"]));
    assert_eq!(py.get("dup-p", &["dup1", "dup1"]), None, "redis-tagged-cache 0.12.1 loses it");
    assert_eq!(rust.get_bytes("dup-p", ["dup1", "dup1"]).expect("get"), None);
    rust.set_bytes("dup-r", b"from-rust", ["dup2", "dup2"], d).expect("set");
    assert_eq!(py.get("dup-r", &["dup2", "dup2"]), Some(b"from-rust".to_vec()));
}

// ---------------------------------------------------------------- the README

/// Splits a command line of the README's transcript into words (plain words
/// and '...' quotes, which is all the transcript uses).
fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut rest = line.trim();
    while !rest.is_empty() {
        if let Some(quoted) = rest.strip_prefix('\'') {
            let end = quoted.find('\'').expect("a closing quote");
            words.push(quoted[..end].to_string());
            rest = quoted[end + 1..].trim_start();
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            words.push(rest[..end].to_string());
            rest = rest[end..].trim_start();
        }
    }
    words
}

/// Returns the lines of the fenced block following `marker` in `text`.
fn block_after<'a>(text: &'a str, marker: &str) -> Vec<&'a str> {
    let from = text.find(marker).unwrap_or_else(|| panic!("{marker:?} in the README"));
    text[from..].lines().skip_while(|l| !l.starts_with("```")).skip(1).take_while(|l| !l.starts_with("```")).collect()
}

#[test]
fn the_readme_transcript_python_service_c_program_and_rtc_command() {
    let whole =
        std::fs::read_to_string(rtc_tests::tests_dir().join("../ffi/python/README.md")).expect("read README.md");
    let section = "## Sharing one cache with Python";
    let readme = &whole[whole.find(section).unwrap_or_else(|| panic!("{section:?} in README.md"))..];
    // The code the README shows is the code that runs.
    let service = std::fs::read_to_string(rtc_tests::tests_dir().join("python/example_service.py")).expect("read");
    let shown = block_after(readme, "```python").join("\n");
    assert!(service.contains(&shown), "the README's Python block must be verbatim from example_service.py:\n{shown}");
    let reader_source = rtc_tests::tests_dir().join("python/example_reader.c");
    let reader_text = std::fs::read_to_string(&reader_source).expect("read");
    for line in block_after(readme, "```c\n").into_iter().filter(|l| *l != "/* ... */") {
        assert!(reader_text.lines().any(|l| l.trim() == line), "README line {line:?} is not in example_reader.c");
    }

    let redis = RedisServer::start();
    let port = redis.port().to_string();
    let rtc = cprog::lib_dir().join("rtc");
    assert!(rtc.is_file(), "{} is missing: run `cargo build --release --locked`", rtc.display());
    let transcript = block_after(readme, "<!-- transcript");
    assert!(transcript.len() > 20, "the transcript block is there");
    let mut reader = None;
    let mut steps = transcript.iter().peekable();
    let mut commands = 0;
    while let Some(line) = steps.next() {
        let command = line.strip_prefix("$ ").unwrap_or_else(|| panic!("a command line, not {line:?}"));
        let mut want = Vec::new();
        while let Some(out) = steps.next_if(|l| !l.starts_with("$ ")) {
            want.push(*out);
        }
        let want = want.join("\n");
        let words = words(command);
        match words[0].as_str() {
            // The venv is the tests' own, and the server is this test's.
            "bash" if command == "bash tests/python/setup.sh" => continue,
            "redis-server" => continue,
            "cc" => {
                assert!(
                    command.contains("tests/python/example_reader.c") && command.ends_with("-o reader"),
                    "{command}"
                );
                reader = Some(cprog::compile_file(&reader_source, Link::Shared));
                continue;
            }
            _ => {}
        }
        let program = match words[0].as_str() {
            "target/py-venv/bin/python" => venv_python(),
            "target/release/rtc" => rtc.clone(),
            "./reader" => reader.clone().expect("the transcript compiles the reader first"),
            other => panic!("the test does not know how to run {other:?}"),
        };
        let args: Vec<String> = words[1..].iter().map(|w| w.replace("6390", &port)).collect();
        let out = Command::new(&program)
            .args(&args)
            .current_dir(cprog::root())
            .env("ASAN_OPTIONS", cprog::ASAN_OPTIONS)
            .output()
            .unwrap_or_else(|e| panic!("run {command}: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "$ {command}\n{stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(stdout.trim_end(), want, "the output of `{command}` differs from the README's");
        commands += 1;
    }
    assert_eq!(commands, 9, "every command of the transcript ran");
}

#[test]
fn an_invalidation_during_a_computation_the_reference_stores_under_the_new_tags_rtc_does_not() {
    // The reference reads the tags again when it stores a computed value, so a
    // value computed before an invalidation lands under the new tag values and
    // is served as current. rtc stores under the snapshot it read first.
    let redis = RedisServer::start();
    let ns = unique_namespace("py-inflight");
    let mut py = Peer::start(&redis, &ns);
    let rust = rust_cache(&redis, &ns);

    // Python computes; rtc invalidates the tag meanwhile.
    py.start_compute("k-py", &["t"], b"computed before the invalidation", true, true);
    py.expect_event("locked");
    rust.invalidate("t").expect("invalidate");
    py.go();
    assert!(py.computed().1);
    assert_eq!(
        rust.get_bytes("k-py", ["t"]).expect("get"),
        Some(b"computed before the invalidation".to_vec()),
        "redis-tagged-cache 0.12.1 stores a value computed before the invalidation under the new tag values"
    );

    // rtc computes; Python invalidates the tag meanwhile.
    let GetOrLock::Locked(ticket) = rust.get_or_lock(&lock_options("k-rs", &["t"])) else {
        panic!("a cold key must lock");
    };
    assert!(py.invalidate(&["t"]));
    let info = rust.set_and_unlock(ticket, Ok::<_, rtc_core::Error>(b"computed before the invalidation"));
    assert!(info.error.is_none(), "store: {info:?}");
    assert_eq!(rust.get_bytes("k-rs", ["t"]).expect("get"), None, "rtc's value stays under the old tag values");
    assert_eq!(py.get("k-rs", &["t"]), None);
}

// ---------------------------------------------------------------- the component

#[test]
fn the_component_shares_entries_invalidations_and_the_lock_with_python() {
    use rtc_host::ComponentCache;
    let runtime = rtc_tests::component_surface::component_runtime();
    let redis = RedisServer::start();
    let ns = unique_namespace("py-component");
    let mut py = Peer::start(&redis, &ns);
    let seen: Seen = Arc::default();
    let sink = Arc::clone(&seen);
    let component = ComponentCache::builder(runtime)
        .config(Config::default().namespace(ns.clone()).url(Some(redis.url())))
        .hook(move |event| sink.lock().expect("hook sink").push(event.info.clone()))
        .build()
        .expect("build a component cache");
    let d = rtc_core::Lifetime::Default;
    let binary: Vec<u8> = (0..=255).collect();

    // Entries, both ways.
    assert!(py.set("p", &binary, &["a", "tag ü"]));
    assert_eq!(component.get_bytes("p", ["tag ü", "a"]).expect("get"), Some(binary.clone()));
    assert_eq!(component.get_bytes("p", ["a"]).expect("get"), None);
    component.set_bytes("w", b"from-wasm", ["a", "b"], d).expect("set");
    assert_eq!(py.get("w", &["b", "a"]), Some(b"from-wasm".to_vec()));

    // Tag invalidation, both ways.
    assert!(py.invalidate(&["a"]));
    assert_eq!(component.get_bytes("p", ["a", "tag ü"]).expect("get"), None);
    assert_eq!(component.get_bytes("w", ["a", "b"]).expect("get"), None);
    component.set_bytes("w", b"w2", ["b"], d).expect("set");
    assert!(py.set("p", b"p2", &["b"]));
    component.invalidate("b").expect("invalidate");
    assert_eq!(py.get("w", &["b"]), None);
    assert_eq!(py.get("p", &["b"]), None);

    // Invalidate-all, both ways.
    assert!(py.set("p", b"p3", &[]));
    component.set_bytes("w", b"w3", ["c"], d).expect("set");
    assert!(py.invalidate_all());
    assert_eq!(component.get_bytes("p", rtc_core::NO_TAGS).expect("get"), None);
    assert_eq!(component.get_bytes("w", ["c"]).expect("get"), None);
    assert!(py.set("p", b"p4", &["c"]));
    component.invalidate_all().expect("invalidate_all");
    assert_eq!(py.get("p", &["c"]), None);

    // The lock: the component waits for Python's holder and reuses its value...
    py.start_compute("lk1", &["l"], b"computed by python", true, true);
    py.expect_event("locked");
    let ran = AtomicBool::new(false);
    std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            component.get_or_compute_bytes(&ComputeOptions::key("lk1").tags(["l"]).lock(true), || {
                ran.store(true, Ordering::SeqCst);
                Ok::<_, String>(b"computed by the component".to_vec())
            })
        });
        wait_until_blocked(&redis, 1);
        py.go();
        assert!(py.computed().1, "Python computed while holding the lock");
        assert_eq!(waiter.join().expect("waiter").expect("compute"), b"computed by python");
    });
    assert!(!ran.load(Ordering::SeqCst), "the component's computation must not run");
    let info = seen.lock().expect("seen").last().cloned().expect("the hook ran");
    assert!(info.hit && !info.lock_full_hit && !info.lock_full_miss, "{info:?}");

    // ... and Python waits for the component's holder and reuses its value.
    let rtc_host::GetOrLock::Locked(ticket) = component
        .get_or_lock(&ComputeOptions::key("lk2").tags(["l"]).lock(true).lock_timeout(Duration::from_secs(5)))
        .expect("lock")
    else {
        panic!("a cold key must lock");
    };
    py.start_compute("lk2", &["l"], b"computed by python", true, false);
    wait_until_blocked(&redis, 1);
    component.set_and_unlock(ticket, b"computed by the component").expect("set_and_unlock");
    let (value, computed, _) = py.computed();
    assert_eq!(value, b"computed by the component", "Python reuses the component's value");
    assert!(!computed, "Python's function must not run");
}
