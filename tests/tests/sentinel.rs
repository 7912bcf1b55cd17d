//! Redis Sentinel (issue 23, item 2): a real master, a replica and three
//! sentinels on loopback (`redis-server --sentinel`, or Valkey's with
//! `RTC_REDIS_SERVER=valkey-server`), and rtc configured with the sentinels
//! only. Each test has its topology of its own (about two seconds to form,
//! one more for a failover).
//!
//! A manual `SENTINEL FAILOVER` promotes the replica and publishes
//! `+switch-master` about a second later; Sentinel demotes the old master
//! some ten seconds after that, and until then both accept writes. To show
//! that rtc follows Sentinel's word and not a dying connection, the old
//! master of the failover tests cannot be demoted at all (its `REPLICAOF`
//! is renamed away): it stays a writable master forever, so a process that
//! did not follow the switch would keep writing there, and its near cache
//! would keep serving what the new master has invalidated.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use rtc_core::{Cache, ComputeOptions, ErrorKind, GetOrLock, Layout, Lifetime};
use rtc_tests::server::free_port;
use rtc_tests::{RedisServer, unique_namespace};

const MASTER: &str = "mymaster";
const SOCKET_TIMEOUT: Duration = Duration::from_millis(1000);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);
/// How long forming a topology, a failover or a recovery may take on a
/// loaded 2-core machine before the test gives up (each takes seconds).
const DEADLINE: Duration = Duration::from_secs(60);

fn server_binary() -> String {
    std::env::var("RTC_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into())
}

/// One sentinel process, with its own writable configuration file
/// (Sentinel rewrites it: ids, epochs, peers).
struct Sentinel {
    child: Option<Child>,
    port: u16,
    dir: std::path::PathBuf,
}

impl Sentinel {
    fn start(master_port: u16) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(unique_namespace("rtc-sentinel"));
        std::fs::create_dir_all(&dir).expect("sentinel dir");
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {}\nlogfile {}\n\
                 sentinel monitor {MASTER} 127.0.0.1 {master_port} 2\n\
                 sentinel down-after-milliseconds {MASTER} 1000\n\
                 sentinel failover-timeout {MASTER} 5000\n",
                dir.display(),
                dir.join("sentinel.log").display()
            ),
        )
        .expect("write sentinel.conf");
        // The configuration file must come first.
        let child = Command::new(server_binary())
            .arg(&conf)
            .arg("--sentinel")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start a sentinel (redis-server --sentinel)");
        Sentinel { child: Some(child), port, dir }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn connection(&self) -> redis::RedisResult<redis::Connection> {
        let con = redis::Client::open(self.url())?.get_connection_with_timeout(Duration::from_secs(1))?;
        con.set_read_timeout(Some(Duration::from_secs(2)))?;
        Ok(con)
    }

    fn query(&self, args: &[&str]) -> redis::RedisResult<redis::Value> {
        let mut cmd = redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        cmd.query(&mut self.connection()?)
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("runs").id().to_string();
        assert!(Command::new("kill").args([signal, &pid]).status().expect("kill").success());
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.join("sentinel.log")).unwrap_or_default();
            eprintln!("--- sentinel log (port {}) ---\n{log}", self.port);
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A master, its replica, and three sentinels that agree on both.
struct Topology {
    master: RedisServer,
    replica: RedisServer,
    sentinels: Vec<Sentinel>,
}

fn text(value: &redis::Value) -> String {
    match value {
        redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        redis::Value::SimpleString(s) => s.clone(),
        redis::Value::Okay => "OK".into(),
        other => format!("{other:?}"),
    }
}

/// Field `name` of a Sentinel entry (a flat field/value array).
fn field(entry: &redis::Value, name: &str) -> Option<String> {
    let redis::Value::Array(fields) = entry else { return None };
    fields.chunks(2).find(|pair| text(&pair[0]) == name).and_then(|pair| pair.get(1).map(text))
}

/// Waits until `ready` holds, polling (a topology's state changes have no
/// event a test can wait on), for at most [`DEADLINE`].
fn until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !ready() {
        assert!(Instant::now() < deadline, "{what}: not within {DEADLINE:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Topology {
    /// Starts the topology; `pinned_master` makes the master impossible to
    /// demote (see the module documentation).
    fn start(pinned_master: bool) -> Self {
        let rename: &[&str] = &[
            "--rename-command",
            "REPLICAOF",
            "rtc-renamed-replicaof",
            "--rename-command",
            "SLAVEOF",
            "rtc-renamed-slaveof",
        ];
        let master = RedisServer::start_with(if pinned_master { rename } else { &[] });
        let port = master.port().to_string();
        let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &port]);
        until("the replica syncs", || replica.cli(&["INFO", "replication"]).contains("master_link_status:up"));
        let sentinels: Vec<Sentinel> = (0..3).map(|_| Sentinel::start(master.port())).collect();
        let topology = Topology { master, replica, sentinels };
        until("the sentinels agree on the master and its replica", || topology.ready());
        topology
    }

    /// Every sentinel sees a quorum, the two others and the replica up.
    fn ready(&self) -> bool {
        self.sentinels.iter().all(|s| {
            let quorum = s.query(&["SENTINEL", "CKQUORUM", MASTER]).is_ok_and(|v| text(&v).starts_with("OK"));
            let peers = s.query(&["SENTINEL", "SENTINELS", MASTER]);
            let replica_up = match s.query(&["SENTINEL", "REPLICAS", MASTER]) {
                Ok(redis::Value::Array(replicas)) => replicas.iter().any(|r| {
                    let flags = field(r, "flags").unwrap_or_default();
                    flags.split(',').any(|f| f == "slave")
                        && !flags.contains("down")
                        && field(r, "master-link-status").as_deref() == Some("ok")
                }),
                _ => false,
            };
            quorum && matches!(peers, Ok(redis::Value::Array(p)) if p.len() == 2) && replica_up
        })
    }

    /// The sentinels' URLs, in order.
    fn urls(&self) -> Vec<String> {
        self.sentinels.iter().map(Sentinel::url).collect()
    }

    /// Where sentinel `at` says the master is (`host:port`).
    fn named_master(&self, at: usize) -> Option<String> {
        match self.sentinels[at].query(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER]) {
            Ok(redis::Value::Array(addr)) if addr.len() == 2 => Some(format!("{}:{}", text(&addr[0]), text(&addr[1]))),
            _ => None,
        }
    }

    /// Subscribes to `+switch-master`, then runs `fault` (a `SENTINEL
    /// FAILOVER`, a killed master), and returns when the switch is published.
    fn switch_after(&self, fault: impl FnOnce()) -> Instant {
        let mut con = self.sentinels[1].connection().expect("connect to a sentinel");
        let mut pubsub = con.as_pubsub();
        pubsub.subscribe("+switch-master").expect("subscribe");
        pubsub.set_read_timeout(Some(DEADLINE)).expect("timeout");
        fault();
        let message = pubsub.get_message().expect("+switch-master is published");
        let switched = Instant::now();
        let payload: String = message.get_payload().expect("payload");
        let new_port = self.replica.port().to_string();
        assert!(payload.ends_with(&new_port), "the replica is the new master: {payload}");
        until("every sentinel names the new master", || {
            (0..3).all(|at| self.named_master(at).is_some_and(|a| a.ends_with(&format!(":{new_port}"))))
        });
        switched
    }

    fn failover(&self) -> Instant {
        self.switch_after(|| {
            // Sentinel answers NOGOODSLAVE while it has not yet judged the replica fit.
            until("SENTINEL FAILOVER is accepted", || {
                self.sentinels[0].query(&["SENTINEL", "FAILOVER", MASTER]).is_ok()
            });
        })
    }
}

fn builder(topology: &Topology, ns: &str) -> rtc_core::CacheBuilder {
    Cache::builder()
        .namespace(ns)
        .sentinel_nodes(topology.urls())
        .sentinel_master_name(Some(MASTER.to_owned()))
        .socket_timeout(SOCKET_TIMEOUT)
        .socket_connect_timeout(CONNECT_TIMEOUT)
}

/// Whether the tag key of `tag` in namespace `ns` exists on `server`.
fn has_tag(server: &RedisServer, ns: &str, tag: &str) -> bool {
    server.cli(&["EXISTS", &Layout::new(ns).tag_key(tag)]) == "1"
}

/// The pattern of namespace `ns`'s lock keys (`rtc:{hash}:l:...`).
fn lock_pattern(ns: &str) -> String {
    let tag_key = Layout::new(ns).tag_key("x");
    let prefix = tag_key.split(":t:").next().expect("a tag key is <prefix>:t:<hash>");
    format!("{prefix}:l:*")
}

/// Sync and async callers and a near cache across `SENTINEL FAILOVER`:
/// no call fails; writes go to the new master once Sentinel names it (the
/// old one stays writable, so nothing else would move them); the near
/// cache flushes and serves nothing the new master invalidated.
#[test]
fn calls_and_the_near_cache_follow_a_failover() {
    let topology = Topology::start(true);
    let ns = unique_namespace("sentinel-failover");
    let near = builder(&topology, &ns).near_cache_max_entries(100usize).build().expect("near cache");
    let writer = builder(&topology, &ns).build().expect("cache");
    near.set("entry", "v1", ["t"], Lifetime::Default).expect("set");
    until("the near cache serves the entry", || {
        near.get::<String>("entry", ["t"]).expect("get");
        near.near_stats().expect("on").hits > 0
    });
    let flushes = near.near_stats().expect("on").flushes;

    // Load, sync and async, through the failover.
    let stop = Arc::new(AtomicBool::new(false));
    let (calls, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let sync_load = {
        let (cache, stop, calls, errors) =
            (builder(&topology, &ns).build().expect("cache"), stop.clone(), calls.clone(), errors.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(SeqCst) {
                i += 1;
                let key = format!("sync-{}", i % 16);
                let value = format!("s{i}");
                for ok in [
                    cache.set(&key, &value, ["load"], Lifetime::Default).is_ok(),
                    cache.get::<String>(&key, ["load"]).is_ok(),
                ] {
                    calls.fetch_add(1, SeqCst);
                    errors.fetch_add(u64::from(!ok), SeqCst);
                }
            }
        })
    };
    let async_load = {
        let cache = builder(&topology, &ns).build_async().expect("async cache");
        let (stop, calls, errors) = (stop.clone(), calls.clone(), errors.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async {
                let mut i = 0u64;
                while !stop.load(SeqCst) {
                    i += 1;
                    let key = format!("async-{}", i % 16);
                    let set = cache.set(&key, &format!("a{i}"), ["load"], Lifetime::Default).await.is_ok();
                    let get = cache.get::<String>(&key, ["load"]).await.is_ok();
                    for ok in [set, get] {
                        calls.fetch_add(1, SeqCst);
                        errors.fetch_add(u64::from(!ok), SeqCst);
                    }
                }
            });
        })
    };
    until("the load runs", || calls.load(SeqCst) > 100);
    let switched = topology.failover();

    // A write lands on the new master, never on the old one (which still takes writes).
    let mut probe = 0;
    until("a write reaches the new master", || {
        probe += 1;
        let tag = format!("probe-{probe}");
        writer.invalidate(&tag).expect("invalidate");
        has_tag(&topology.replica, &ns, &tag)
    });
    let moved = switched.elapsed();
    assert!(!has_tag(&topology.master, &ns, &format!("probe-{probe}")), "the write went to the new master only");
    assert_eq!(topology.master.cli(&["ROLE"]).lines().next(), Some("master"), "the old master was not demoted");

    until("the near cache flushes on the switch", || near.near_stats().expect("on").flushes > flushes);
    let flushed = switched.elapsed();
    until("the near cache serves again", || near.near_stats().expect("on").live);
    // The new master invalidates the entry's tag: the near cache must not serve it.
    let pushes = near.near_stats().expect("on").pushes;
    writer.invalidate("t").expect("invalidate on the new master");
    until("the push arrives (or the near cache is off)", || {
        let stats = near.near_stats().expect("on");
        stats.pushes > pushes || !stats.live
    });
    assert_eq!(near.get::<String>("entry", ["t"]).expect("get"), None, "an entry the new master invalidated");

    stop.store(true, SeqCst);
    sync_load.join().expect("sync load");
    async_load.join().expect("async load");
    let (calls, errors) = (calls.load(SeqCst), errors.load(SeqCst));
    eprintln!(
        "sentinel failover: {calls} calls, {errors} failed; writes on the new master {moved:?} after +switch-master, near cache flushed after {flushed:?}"
    );
    assert_eq!(errors, 0, "no call fails across a failover where both servers stay up");
}

/// The master killed: calls fail fast with an outcome that says so
/// (backend unavailable or timeout), then work again on the promoted
/// replica once Sentinel fails over (about 2-3 s with a 1 s down-after).
#[test]
fn a_killed_master_fails_calls_fast_until_sentinel_promotes_the_replica() {
    let mut topology = Topology::start(false);
    let ns = unique_namespace("sentinel-crash");
    let cache = builder(&topology, &ns).build().expect("cache");
    cache.set("k", "before", ["t"], Lifetime::Default).expect("set");
    topology.master.kill();
    let killed = Instant::now();
    let mut failures = Vec::new();
    let mut slowest = Duration::ZERO;
    until("calls work again after the failover", || {
        let start = Instant::now();
        let result = cache.set("k", "after", ["t"], Lifetime::Default);
        slowest = slowest.max(start.elapsed());
        result.map_err(|e| failures.push(e.kind())).is_ok()
    });
    let recovered = killed.elapsed();
    assert!(!failures.is_empty(), "calls failed while no master was up");
    assert!(
        failures.iter().all(|k| matches!(k, ErrorKind::BackendUnavailable | ErrorKind::Timeout)),
        "the outcome says Redis is unreachable: {failures:?}"
    );
    assert_eq!(topology.replica.cli(&["ROLE"]).lines().next(), Some("master"), "the replica was promoted");
    assert_eq!(cache.get::<String>("k", ["t"]).expect("get"), Some("after".to_owned()));
    eprintln!(
        "sentinel crash: {} failed calls, slowest {slowest:?}, calls work again {recovered:?} after the kill",
        failures.len()
    );
}

/// The first sentinel paused (it accepts connections and never answers):
/// the cache still finds the master through the next one, within its
/// deadline (the `redis` crate's own lookup would wait forever here).
#[test]
fn a_paused_sentinel_is_passed_over() {
    let topology = Topology::start(false);
    topology.sentinels[0].signal("-STOP");
    let ns = unique_namespace("sentinel-paused");
    let started = Instant::now();
    let cache = builder(&topology, &ns).build().expect("cache");
    cache.set("k", "v", ["t"], Lifetime::Default).expect("set through the second sentinel");
    let took = started.elapsed();
    assert_eq!(cache.get::<String>("k", ["t"]).expect("get"), Some("v".to_owned()));
    assert!(has_tag(&topology.master, &ns, "t"), "on the master");
    topology.sentinels[0].signal("-CONT");
    eprintln!("sentinel paused: the first call took {took:?} (one sentinel deadline, then the next sentinel)");
}

/// The stampede lock across a failover (see "Redis Sentinel" in
/// core/README.md): a lock the new master lost (not yet replicated) is
/// taken by another process, so two computations overlap; but the first
/// holder's release never deletes the other's lock, and the last value
/// stored wins.
#[test]
fn a_lock_lost_in_a_failover_is_never_released_by_its_old_holder() {
    let topology = Topology::start(true);
    let ns = unique_namespace("sentinel-lock");
    let (a, b) = (builder(&topology, &ns).build().expect("a"), builder(&topology, &ns).build().expect("b"));
    let options = ComputeOptions::key("report").tags(["t"]).lock(true).lock_timeout(Duration::from_secs(60));
    let GetOrLock::Locked(held_by_a) = a.get_or_lock(&options) else { panic!("a cold key: a takes the lock") };
    topology.failover();
    // The lock had not replicated before the promotion (simulated: removed on the new master).
    let locks = topology.replica.cli(&["--scan", "--pattern", &lock_pattern(&ns)]);
    assert!(!locks.is_empty(), "a's lock replicated to the new master");
    for lock in locks.lines() {
        topology.replica.cli(&["DEL", lock]);
    }
    // b moves to the new master first (a write is the event that shows it).
    until("b writes to the new master", || {
        b.invalidate("probe").expect("invalidate");
        has_tag(&topology.replica, &ns, "probe")
    });
    let GetOrLock::Locked(held_by_b) = b.get_or_lock(&options) else { panic!("b takes the lock the new master lost") };
    let info = a.set_and_unlock(held_by_a, Ok(b"from a"));
    assert!(info.error.is_none(), "a stores: {:?}", info.error);
    let still = topology.replica.cli(&["--scan", "--pattern", &lock_pattern(&ns)]);
    assert_eq!(still.lines().count(), 1, "a's release left b's lock alone");
    let info = b.set_and_unlock(held_by_b, Ok(b"from b"));
    assert!(info.error.is_none(), "b stores: {:?}", info.error);
    assert_eq!(topology.replica.cli(&["--scan", "--pattern", &lock_pattern(&ns)]), "");
    let GetOrLock::Hit(hit) = a.get_or_lock(&options) else { panic!("stored") };
    assert_eq!(hit.finish().0, b"from b", "the last store wins");
}

/// Settings that cannot mean one thing are refused at build, on the Rust
/// surface (the C, Python and CLI surfaces go through the same check).
#[test]
fn contradictory_sentinel_settings_are_refused() {
    let refused = [
        Cache::builder().sentinel_nodes(vec!["redis://127.0.0.1:1".to_owned()]),
        Cache::builder().sentinel_master_name(Some(MASTER.to_owned())),
        Cache::builder()
            .sentinel_nodes(vec!["redis://127.0.0.1:1".to_owned()])
            .sentinel_master_name(Some(String::new())),
        Cache::builder()
            .sentinel_nodes(vec!["redis://127.0.0.1:1".to_owned()])
            .sentinel_master_name(Some(MASTER.to_owned()))
            .url(Some("redis://127.0.0.1:2".to_owned())),
        Cache::builder()
            .sentinel_nodes(vec!["redis://127.0.0.1:1".to_owned()])
            .sentinel_master_name(Some(MASTER.to_owned()))
            .cluster_nodes(vec!["redis://127.0.0.1:3".to_owned()]),
        Cache::builder().sentinel_nodes(vec!["not a url".to_owned()]).sentinel_master_name(Some(MASTER.to_owned())),
    ];
    for (at, builder) in refused.into_iter().enumerate() {
        let error = builder.build().err().unwrap_or_else(|| panic!("setting {at} is refused"));
        assert_eq!(error.kind(), ErrorKind::InvalidArgument, "setting {at}: {error}");
    }
    // No sentinel answers: a call fails with BackendUnavailable, never hangs or panics.
    let port = free_port();
    let cache = Cache::builder()
        .sentinel_nodes(vec![format!("redis://127.0.0.1:{port}")])
        .sentinel_master_name(Some(MASTER.to_owned()))
        .socket_timeout(SOCKET_TIMEOUT)
        .socket_connect_timeout(CONNECT_TIMEOUT)
        .build()
        .expect("builds without connecting");
    assert_eq!(cache.get::<String>("k", ["t"]).err().map(|e| e.kind()), Some(ErrorKind::BackendUnavailable));
}
