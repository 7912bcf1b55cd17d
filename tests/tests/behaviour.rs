//! Issue-level behaviour on a real Redis (and, where the promise is the same,
//! in memory): the reference's bugs fixed, the lock, hooks, derived keys.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use rtc_core::{
    Backend, Cache, CacheInfo, Command, ComputeOptions, Config, ErrorKind, GetOrLock, Layout, Lifetime, RedisBackend,
    Reply, function_id,
};
use rtc_tests::{RedisServer, unique_namespace};

/// The first half of get-or-compute for `key` under `tags`, with the stampede
/// lock (held and waited for at most `lock`) if given.
fn lookup(cache: &Cache, key: &str, tags: &[&str], lock: Option<Duration>) -> GetOrLock {
    let mut options = ComputeOptions::key(key).tags(tags);
    if let Some(timeout) = lock {
        options = options.lock(true).lock_timeout(timeout);
    }
    cache.get_or_lock(&options)
}

fn redis_cache(redis: &RedisServer, ns: &str) -> Cache {
    Cache::builder().namespace(ns).url(Some(redis.url())).build().expect("build")
}

fn conn(redis: &RedisServer) -> redis::Connection {
    redis::Client::open(redis.url()).expect("client").get_connection().expect("connect")
}

fn ttl(redis: &RedisServer, key: &str) -> i64 {
    redis::cmd("TTL").arg(key).query(&mut conn(redis)).expect("TTL")
}

/// A backend that holds every caller after its first MGET until all have done
/// theirs: they all see a brand-new tag as missing and race to create it.
struct RaceFirstRead {
    inner: RedisBackend,
    barrier: Barrier,
    mgets: AtomicUsize,
    callers: usize,
}

impl Backend for RaceFirstRead {
    fn execute(&self, commands: &[Command]) -> rtc_core::Result<Vec<Reply>> {
        let replies = self.inner.execute(commands)?;
        if matches!(commands, [Command::Mget { .. }]) && self.mgets.fetch_add(1, Ordering::SeqCst) < self.callers {
            self.barrier.wait();
        }
        Ok(replies)
    }
}

#[test]
fn concurrent_first_readers_of_a_tag_agree_on_one_value() {
    const CALLERS: usize = 8;
    let redis = RedisServer::start();
    let config = Config::default().namespace(unique_namespace("first-use")).url(Some(redis.url()));
    let backend = Arc::new(RaceFirstRead {
        inner: RedisBackend::new(&config).expect("backend"),
        barrier: Barrier::new(CALLERS),
        mgets: AtomicUsize::new(0),
        callers: CALLERS,
    });
    let cache = Cache::builder().config(config).backend(backend).build().expect("build");
    let keys: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..CALLERS)
            .map(|_| {
                s.spawn(|| match lookup(&cache, "k", &["brand-new-tag"], None) {
                    GetOrLock::Miss(ticket) => {
                        assert!(ticket.info().error.is_none(), "get_or_lock: {:?}", ticket.info().error);
                        ticket.storage_key().expect("a storage key").to_owned()
                    }
                    other => panic!("expected a miss, got {other:?}"),
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    assert!(keys.iter().all(|k| k == &keys[0]), "first readers hashed differently: {keys:?}");
}

#[test]
fn invalidate_keeps_the_tag_lifetime() {
    let redis = RedisServer::start();
    let ns = unique_namespace("tag-ttl");
    let cache =
        Cache::builder().namespace(&ns).url(Some(redis.url())).lifetime_for_tags(Some(500)).build().expect("build");
    cache.set_bytes("k", b"v", ["t"], Lifetime::Default).expect("set");
    let tag_key = Layout::new(&ns).tag_key("t");
    let before = ttl(&redis, &tag_key);
    assert!((490..=500).contains(&before), "tag TTL after first use: {before}");
    cache.invalidate("t").expect("invalidate");
    let after = ttl(&redis, &tag_key);
    assert!((490..=500).contains(&after), "tag TTL after invalidate: {after} (the reference drops it to -1)");
    let all_key = Layout::new(&ns).tag_key(rtc_core::ALL_TAG);
    cache.invalidate_all().expect("invalidate_all");
    assert!((490..=500).contains(&ttl(&redis, &all_key)));
}

#[test]
fn tag_lifetime_none_means_no_expiry_and_the_cache_still_works() {
    let redis = RedisServer::start();
    let ns = unique_namespace("tag-none");
    for lifetime in [None, Some(0)] {
        let cache =
            Cache::builder().namespace(&ns).url(Some(redis.url())).lifetime_for_tags(lifetime).build().expect("build");
        cache.set_bytes("k", b"v", ["t"], Lifetime::Default).expect("set must not fail (the reference sends EX 0)");
        assert_eq!(cache.get_bytes("k", ["t"]).expect("get"), Some(b"v".to_vec()));
        cache.invalidate("t").expect("invalidate");
        assert_eq!(ttl(&redis, &Layout::new(&ns).tag_key("t")), -1, "a tag with no lifetime never expires");
        assert_eq!(cache.get_bytes("k", ["t"]).expect("get"), None);
    }
}

#[test]
fn entry_lifetimes_reach_redis() {
    let redis = RedisServer::start();
    let ns = unique_namespace("entry-ttl");
    let cache = redis_cache(&redis, &ns);
    let storage = |key: &str| match lookup(&cache, key, &["t"], None) {
        GetOrLock::Hit(..) => panic!("{key} should be absent"),
        GetOrLock::Miss(t) | GetOrLock::Locked(t) => {
            assert!(t.info().error.is_none(), "get_or_lock {key}: {:?}", t.info().error);
            t.storage_key().expect("a storage key").to_owned()
        }
    };
    let (default, custom, forever, zero) = (storage("default"), storage("custom"), storage("forever"), storage("zero"));
    cache.set_bytes("default", b"v", ["t"], Lifetime::Default).expect("set");
    cache.set_bytes("custom", b"v", ["t"], Lifetime::Seconds(42)).expect("set");
    cache.set_bytes("forever", b"v", ["t"], Lifetime::Forever).expect("set");
    cache.set_bytes("zero", b"v", ["t"], Lifetime::Seconds(0)).expect("set");
    assert!((3590..=3600).contains(&ttl(&redis, &default)), "default lifetime is 3600 s");
    assert!((40..=42).contains(&ttl(&redis, &custom)));
    assert_eq!(ttl(&redis, &forever), -1);
    assert_eq!(ttl(&redis, &zero), -1);
    let never = Cache::builder().namespace(&ns).url(Some(redis.url())).default_lifetime(None).build().expect("build");
    never.set_bytes("default", b"v", ["t"], Lifetime::Default).expect("set");
    assert_eq!(ttl(&redis, &default), -1, "default_lifetime None means no expiry");
}

/// A backend that counts the callers inside a `BLPOP` now: the callers that
/// wait for another's stampede lock (Redis's `blocked_clients`, for any backend).
struct CountsWaiters {
    inner: Arc<dyn Backend>,
    waiting: AtomicUsize,
}

impl Backend for CountsWaiters {
    fn execute(&self, commands: &[Command]) -> rtc_core::Result<Vec<Reply>> {
        let waits = commands.iter().any(|c| matches!(c, Command::Blpop { .. }));
        if waits {
            self.waiting.fetch_add(1, Ordering::SeqCst);
        }
        let replies = self.inner.execute(commands);
        if waits {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
        }
        replies
    }
}

fn hundred_callers_compute_once(config: Config, inner: Arc<dyn Backend>) {
    const CALLERS: usize = 100;
    let backend = Arc::new(CountsWaiters { inner, waiting: AtomicUsize::new(0) });
    let cache =
        Cache::builder().config(config).backend(Arc::clone(&backend) as Arc<dyn Backend>).build().expect("build");
    let computed = AtomicUsize::new(0);
    let options = ComputeOptions::key("cold").tags(["a", "b"]).lock(true).lock_timeout(Duration::from_secs(20));
    let barrier = Barrier::new(CALLERS);
    let values: Vec<Vec<u8>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..CALLERS)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    cache
                        .get_or_compute_bytes(&options, || {
                            computed.fetch_add(1, Ordering::SeqCst);
                            // Computes until every other caller waits for the lock
                            // (each re-waits at least once a second: polled, with a deadline).
                            let deadline = std::time::Instant::now() + Duration::from_secs(15);
                            while backend.waiting.load(Ordering::SeqCst) < CALLERS - 1 {
                                assert!(std::time::Instant::now() < deadline, "the other callers never all waited");
                                std::thread::yield_now();
                            }
                            Ok::<_, ()>(b"expensive".to_vec())
                        })
                        .expect("infallible")
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    assert_eq!(computed.load(Ordering::SeqCst), 1, "the computation must run exactly once");
    assert!(values.iter().all(|v| v == b"expensive"));
}

#[test]
fn lock_100_concurrent_callers_compute_once_on_redis() {
    let redis = RedisServer::start();
    let config = Config::default().namespace(unique_namespace("lock100")).url(Some(redis.url()));
    let backend = Arc::new(RedisBackend::new(&config).expect("backend"));
    hundred_callers_compute_once(config, backend);
}

#[test]
fn lock_100_concurrent_callers_compute_once_in_memory() {
    hundred_callers_compute_once(Config::default(), Arc::new(rtc_core::MemoryBackend::new()));
}

#[test]
fn an_invalidation_during_the_computation_is_not_hidden() {
    let redis = RedisServer::start();
    let ns = unique_namespace("snapshot");
    let cache = redis_cache(&redis, &ns);
    let other = redis_cache(&redis, &ns); // another connection, as another service would be
    for lock in [false, true] {
        let options = ComputeOptions::key(format!("k-{lock}")).tags(["t"]).lock(lock);
        let v = cache.get_or_compute_bytes(&options, || {
            other.invalidate("t").expect("invalidate while computing");
            Ok::<_, ()>(b"computed from data that just changed".to_vec())
        });
        assert_eq!(v.expect("value"), b"computed from data that just changed");
        assert_eq!(
            cache.get_bytes(options.cache_key(), ["t"]).expect("get"),
            None,
            "a value computed before an invalidation must not be served after it (lock = {lock})"
        );
    }
}

/// What the test hook saw of one call: key, tags, info, userdata.
type Seen = (String, Vec<String>, CacheInfo, Option<String>);

#[test]
fn hooks_receive_every_field_and_a_failing_hook_never_fails_the_call() {
    let redis = RedisServer::start();
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let sink = Arc::clone(&seen);
    let cache = Cache::builder()
        .namespace(unique_namespace("hooks"))
        .url(Some(redis.url()))
        .hook(move |e| {
            let userdata = e.userdata.and_then(|u| u.downcast_ref::<String>()).cloned();
            sink.lock().expect("lock").push((e.key.to_owned(), e.tags.to_vec(), e.info.clone(), userdata));
            panic!("a broken hook");
        })
        .build()
        .expect("build");
    let options = ComputeOptions::call(function_id!(Report, "render"), &(7u32, "pdf"))
        .expect("options")
        .tags(["reports"])
        .lock(true)
        .hook_userdata(Arc::new("request-42".to_string()));
    let first: u64 = cache.get_or_compute(&options, || {
        std::thread::sleep(Duration::from_millis(20));
        99
    });
    let second: u64 = cache.get_or_compute(&options, || unreachable!("cached"));
    assert_eq!((first, second), (99, 99));
    let seen = seen.lock().expect("lock");
    assert_eq!(seen.len(), 2);
    let (key, tags, miss, userdata) = &seen[0];
    assert_eq!(key, options.cache_key());
    assert_eq!(tags, &["reports".to_string()]);
    assert_eq!(userdata.as_deref(), Some("request-42"));
    assert_eq!(miss.function.function, "render");
    assert_eq!(miss.function.type_name, "Report");
    assert!(
        miss.function.module.starts_with("behaviour"),
        "module path, never a file path: {:?}",
        miss.function.module
    );
    assert!(miss.method);
    assert!(!miss.arguments.is_empty());
    assert!(!miss.hit && miss.lock_full_miss && !miss.lock_full_hit);
    assert!(miss.decorated_elapsed >= Duration::from_millis(20) && miss.elapsed >= miss.decorated_elapsed);
    assert!(miss.serialized_size > 0 && miss.error.is_none());
    let hit = &seen[1].2;
    assert!(hit.hit && hit.lock_full_hit && !hit.lock_full_miss);
    assert_eq!(hit.decorated_elapsed, Duration::ZERO);
    assert_eq!(hit.serialized_size, miss.serialized_size);
}

#[test]
fn derived_keys_depend_on_identity_and_arguments_only() {
    let a = ComputeOptions::call(function_id!("f"), &(1u8, "x")).expect("a");
    let a2 = ComputeOptions::call(function_id!("f"), &(1u8, "x")).expect("a2");
    let b = ComputeOptions::call(function_id!("f"), &(2u8, "x")).expect("b");
    let g = ComputeOptions::call(function_id!("g"), &(1u8, "x")).expect("g");
    let m = ComputeOptions::call(function_id!(Thing, "f"), &(1u8, "x")).expect("m");
    assert_eq!(a.cache_key(), a2.cache_key());
    let keys = [a.cache_key(), b.cache_key(), g.cache_key(), m.cache_key()];
    for i in 0..keys.len() {
        for j in i + 1..keys.len() {
            assert_ne!(keys[i], keys[j]);
        }
    }
}

#[test]
fn decorate_with_computed_tags() {
    let cache = Cache::builder().in_local_memory(true).build().expect("build");
    let calls = AtomicUsize::new(0);
    let user = cache
        .decorate(function_id!("load_user"), |id: &u64| {
            calls.fetch_add(1, Ordering::SeqCst);
            format!("user {id}")
        })
        .tags_fn(|id: &u64| vec![format!("user:{id}")])
        .lock(true);
    assert_eq!(user.call(&1), "user 1");
    assert_eq!(user.call(&1), "user 1");
    assert_eq!(user.call(&2), "user 2");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    cache.invalidate("user:1").expect("invalidate");
    assert_eq!(user.call(&1), "user 1");
    assert_eq!(user.call(&2), "user 2");
    assert_eq!(calls.load(Ordering::SeqCst), 3, "only user:1 was invalidated");
}

#[test]
fn typed_values_round_trip_and_garbage_reads_as_a_miss() {
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct User {
        id: u64,
        name: String,
    }
    let redis = RedisServer::start();
    let ns = unique_namespace("typed");
    let cache = redis_cache(&redis, &ns);
    let ada = User { id: 1, name: "Ada".into() };
    cache.set("u", &ada, ["users"], Lifetime::Default).expect("set");
    assert_eq!(cache.get::<User>("u", ["users"]).expect("get"), Some(ada));
    // Someone else writes garbage under the storage key.
    cache.set_bytes("u", b"\xff\x00 not cbor", ["users"], Lifetime::Default).expect("set garbage");
    assert_eq!(cache.get::<User>("u", ["users"]).expect("garbage is a miss, not an error"), None);
    let options = ComputeOptions::key("u").tags(["users"]);
    let fresh: User = cache.get_or_compute(&options, || User { id: 2, name: "Grace".into() });
    assert_eq!(fresh.name, "Grace");
    assert_eq!(cache.get::<User>("u", ["users"]).expect("get"), Some(fresh), "the garbage was replaced");
}

#[test]
fn oversized_values_are_refused_with_a_clear_error() {
    let cache = Cache::builder().in_local_memory(true).max_value_size(16usize).build().expect("build");
    let err = cache.set_bytes("k", &[0u8; 17], ["t"], Lifetime::Default).expect_err("too large");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("max_value_size"), "{err}");
    cache.set_bytes("k", &[0u8; 16], ["t"], Lifetime::Default).expect("at the limit");
}

#[test]
fn disabled_cache_stores_nothing_and_always_computes() {
    let cache = Cache::builder().disabled(true).build().expect("build");
    cache.set_bytes("k", b"v", ["t"], Lifetime::Default).expect("set is accepted");
    assert_eq!(cache.get_bytes("k", ["t"]).expect("get"), None);
    let calls = AtomicUsize::new(0);
    let options = ComputeOptions::key("k").lock(true);
    for _ in 0..3 {
        let v: u32 = cache.get_or_compute(&options, || calls.fetch_add(1, Ordering::SeqCst) as u32);
        let _ = v;
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[test]
fn a_crashed_lock_holder_delays_waiters_only_until_lock_timeout() {
    let redis = RedisServer::start();
    let ns = unique_namespace("crash");
    let holder = redis_cache(&redis, &ns);
    let timeout = Duration::from_millis(800);
    match lookup(&holder, "k", &["t"], Some(timeout)) {
        // The holder "crashes": dropping a ticket does no I/O, so its lock is never released.
        GetOrLock::Locked(ticket) => drop(ticket),
        other => panic!("expected the lock, got {other:?}"),
    }
    let waiter = redis_cache(&redis, &ns);
    let options = ComputeOptions::key("k").tags(["t"]).lock(true).lock_timeout(timeout);
    let v = waiter.get_or_compute_bytes(&options, || Ok::<_, ()>(b"recovered".to_vec())).expect("value");
    assert_eq!(v, b"recovered");
    assert_eq!(waiter.get_bytes("k", ["t"]).expect("get"), Some(b"recovered".to_vec()));
}

#[test]
fn redis_down_bypasses_the_cache_and_reports_the_error() {
    let mut redis = RedisServer::start();
    let errors: Arc<Mutex<Vec<Option<ErrorKind>>>> = Arc::default();
    let sink = Arc::clone(&errors);
    let cache = Cache::builder()
        .namespace(unique_namespace("down"))
        .url(Some(redis.url()))
        .socket_timeout(Duration::from_secs(1))
        .socket_connect_timeout(Duration::from_secs(1))
        .hook(move |e| sink.lock().expect("lock").push(e.info.error.as_ref().map(|e| e.kind())))
        .build()
        .expect("build");
    cache.set_bytes("k", b"v", ["t"], Lifetime::Default).expect("set while up");
    redis.kill();
    let err = cache.get_bytes("k", ["t"]).expect_err("a get on a dead Redis is an error, not a miss");
    assert_eq!(err.kind(), ErrorKind::BackendUnavailable, "{err}");
    let err = cache.set_bytes("k", b"v2", ["t"], Lifetime::Default).expect_err("set fails");
    assert_eq!(err.kind(), ErrorKind::BackendUnavailable);
    assert!(cache.invalidate("t").is_err());
    let options = ComputeOptions::key("k2").tags(["t"]).lock(true);
    let v = cache.get_or_compute_bytes(&options, || Ok::<_, ()>(b"computed anyway".to_vec())).expect("value");
    assert_eq!(v, b"computed anyway");
    assert_eq!(errors.lock().expect("lock").as_slice(), &[Some(ErrorKind::BackendUnavailable)]);
    redis.restart();
    // Same cache, same process: it works again as soon as Redis is back.
    assert_eq!(cache.get_bytes("k", ["t"]).expect("get after restart"), None, "the restarted Redis is empty");
    cache.set_bytes("k", b"v3", ["t"], Lifetime::Default).expect("set after restart");
    assert_eq!(cache.get_bytes("k", ["t"]).expect("get"), Some(b"v3".to_vec()));
}

#[test]
fn a_paused_redis_times_out_within_socket_timeout() {
    let redis = RedisServer::start();
    let cache = Cache::builder()
        .namespace(unique_namespace("paused"))
        .url(Some(redis.url()))
        .socket_timeout(Duration::from_millis(300))
        .socket_connect_timeout(Duration::from_millis(300))
        .build()
        .expect("build");
    cache.set_bytes("k", b"v", ["t"], Lifetime::Default).expect("set while up");
    let pid = redis.pid().expect("pid").to_string();
    let signal = |sig: &str| {
        let ok = std::process::Command::new("kill").args([sig, &pid]).status().expect("kill").success();
        assert!(ok, "kill {sig} {pid}");
    };
    signal("-STOP");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let err = cache.get_bytes("k", ["t"]).expect_err("paused Redis");
        assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
        // A second call takes a fresh connection, which must time out too.
        let err = cache.set_bytes("k", b"v", ["t"], Lifetime::Default).expect_err("paused Redis");
        assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
        let v: u8 = cache.get_or_compute(&ComputeOptions::key("c").lock(true), || 5);
        assert_eq!(v, 5);
    }));
    signal("-CONT");
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    assert_eq!(cache.get_bytes("k", ["t"]).expect("get after resume"), Some(b"v".to_vec()));
}

#[test]
fn unix_socket_and_password_urls() {
    let dir = std::env::temp_dir().join(unique_namespace("sock"));
    std::fs::create_dir_all(&dir).expect("dir");
    let socket = dir.join("redis.sock");
    let socket_arg = socket.to_str().expect("utf-8 path").to_owned();
    let redis = RedisServer::start_with(&["--unixsocket", &socket_arg, "--requirepass", "s3cret"]);
    let ns = unique_namespace("urls");
    let unix = Cache::builder()
        .namespace(&ns)
        .url(Some(format!("redis+unix://{socket_arg}?pass=s3cret")))
        .build()
        .expect("unix");
    unix.set_bytes("k", b"via unix", ["t"], Lifetime::Default).expect("set over the unix socket");
    let tcp = Cache::builder()
        .namespace(&ns)
        .url(Some(format!("redis://:s3cret@127.0.0.1:{}/", redis.port())))
        .build()
        .expect("tcp");
    assert_eq!(tcp.get_bytes("k", ["t"]).expect("get over tcp"), Some(b"via unix".to_vec()));
    let fields = Cache::builder()
        .namespace(&ns)
        .host("127.0.0.1")
        .port(redis.port())
        .password(Some("s3cret".to_string()))
        .build()
        .expect("fields");
    assert_eq!(fields.get_bytes("k", ["t"]).expect("get with host/port/password"), Some(b"via unix".to_vec()));
    let wrong = Cache::builder()
        .namespace(&ns)
        .url(Some(format!("redis://:nope@127.0.0.1:{}/", redis.port())))
        .build()
        .expect("build");
    let err = wrong.get_bytes("k", ["t"]).expect_err("wrong password");
    assert_eq!(err.kind(), ErrorKind::Backend, "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn many_threads_share_one_cache() {
    let redis = RedisServer::start();
    let cache = redis_cache(&redis, &unique_namespace("threads"));
    std::thread::scope(|s| {
        for t in 0..8 {
            let cache = &cache;
            s.spawn(move || {
                for i in 0..200 {
                    let key = format!("k{t}-{i}");
                    let tags = [format!("thread:{t}"), "shared".to_string()];
                    cache.set_bytes(&key, key.as_bytes(), &tags, Lifetime::Default).expect("set");
                    assert_eq!(cache.get_bytes(&key, &tags).expect("get"), Some(key.clone().into_bytes()));
                }
            });
        }
    });
    cache.invalidate("shared").expect("invalidate");
    assert_eq!(cache.get_bytes("k3-7", ["thread:3".to_string(), "shared".to_string()]).expect("get"), None);
}

#[test]
fn absurd_lifetimes_are_invalid_arguments_not_redis_errors() {
    let redis = RedisServer::start();
    let cache = redis_cache(&redis, &unique_namespace("lifetimes"));
    for seconds in [u64::MAX, 10u64.pow(16), rtc_core::MAX_LIFETIME_SECS + 1] {
        let err = cache.set_bytes("k", b"v", ["t"], Lifetime::Seconds(seconds)).expect_err("absurd lifetime");
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{seconds}: {err}");
    }
    cache.set_bytes("k", b"v", ["t"], Lifetime::Seconds(rtc_core::MAX_LIFETIME_SECS)).expect("100 years is fine");
    for config in
        [Config::default().default_lifetime(Some(u64::MAX)), Config::default().lifetime_for_tags(Some(u64::MAX))]
    {
        let err = Cache::new(config.url(Some(redis.url()))).err().expect("refused at build");
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    }
    let GetOrLock::Miss(ticket) = lookup(&cache, "k2", &["t"], Some(Duration::from_secs(u64::MAX))) else {
        panic!("an absurd lock timeout bypasses the cache")
    };
    let err = ticket.info().error.clone().expect("absurd lock timeout");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert!(!ticket.holds_lock() && ticket.storage_key().is_none(), "nothing is locked or stored");
    let _ = cache.release(ticket);
}
