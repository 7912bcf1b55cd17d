//! One round trip per hit (and per set) in the steady state, and no stale
//! value when tags change between two reads, on a real Redis.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rtc_core::{Backend, Cache, Command, ComputeOptions, Config, Lifetime, RedisBackend, Reply};
use rtc_tests::{RedisServer, unique_namespace};

/// Counts batches, i.e. round trips, sent to Redis.
struct Counting {
    inner: RedisBackend,
    batches: AtomicUsize,
}

impl Backend for Counting {
    fn execute(&self, commands: &[Command]) -> rtc_core::Result<Vec<Reply>> {
        self.batches.fetch_add(1, Ordering::SeqCst);
        self.inner.execute(commands)
    }
}

fn counting_cache(redis: &RedisServer, ns: &str) -> (Cache, Arc<Counting>) {
    let config = Config::default().namespace(ns.to_owned()).url(Some(redis.url()));
    let counting =
        Arc::new(Counting { inner: RedisBackend::new(&config).expect("backend"), batches: AtomicUsize::new(0) });
    let cache = Cache::builder().config(config).backend(counting.clone()).build().expect("build");
    (cache, counting)
}

fn round_trips<T>(counter: &Counting, f: impl FnOnce() -> T) -> (T, usize) {
    let before = counter.batches.load(Ordering::SeqCst);
    let out = f();
    (out, counter.batches.load(Ordering::SeqCst) - before)
}

#[test]
fn steady_state_costs_one_round_trip() {
    let redis = RedisServer::start();
    let (cache, counter) = counting_cache(&redis, &unique_namespace("rt"));
    let tags = ["a", "b", "c"];
    // First use of the tags: read them (creating them), then the entry.
    let (_, first) = round_trips(&counter, || cache.set_bytes("k", b"v", tags, Lifetime::Default).expect("set"));
    assert!(first >= 2, "the first set learns the tag values: {first}");
    let (got, rt) = round_trips(&counter, || cache.get_bytes("k", tags).expect("get"));
    assert_eq!((got.as_deref(), rt), (Some(b"v".as_slice()), 1), "a hit is one round trip");
    let (got, rt) = round_trips(&counter, || cache.get_bytes("absent", tags).expect("get"));
    assert_eq!((got, rt), (None, 1), "a miss is one round trip");
    let (_, rt) = round_trips(&counter, || cache.set_bytes("k2", b"v2", tags, Lifetime::Default).expect("set"));
    assert_eq!(rt, 1, "a set with known tags is one round trip");
    let (deleted, rt) = round_trips(&counter, || cache.delete("k2", tags).expect("delete"));
    assert_eq!((deleted, rt), (true, 1));
    let (_, rt) = round_trips(&counter, || cache.invalidate(["a", "b"]).expect("invalidate"));
    assert_eq!(rt, 1, "invalidate is one round trip");
    let (got, rt) = round_trips(&counter, || cache.get_bytes("k", tags).expect("get"));
    assert_eq!((got, rt), (None, 1), "our own invalidation does not cost our next read a round trip");
    let options = ComputeOptions::key("c").tags(tags);
    let _ = cache.get_or_compute_bytes(&options, || Ok::<_, ()>(b"x".to_vec()));
    let (v, rt) = round_trips(&counter, || cache.get_or_compute_bytes(&options, || Ok::<_, ()>(b"y".to_vec())));
    assert_eq!((v, rt), (Ok(b"x".to_vec()), 1), "a get-or-compute hit is one round trip");
    // Cross-check with the server's own count of reads.
    let mut conn = redis::Client::open(redis.url()).expect("client").get_connection().expect("connect");
    let reads = |conn: &mut redis::Connection| -> u64 {
        let info: String = redis::cmd("INFO").arg("stats").query(conn).expect("INFO");
        info.lines()
            .find_map(|l| l.strip_prefix("total_reads_processed:"))
            .expect("field")
            .trim()
            .parse()
            .expect("number")
    };
    let before = reads(&mut conn);
    for _ in 0..100 {
        cache.get_bytes("c", tags).expect("get");
    }
    let server_reads = reads(&mut conn) - before - 1; // minus the INFO call itself
    assert!(server_reads <= 105, "100 hits took {server_reads} server reads");
}

#[test]
fn an_invalidation_from_another_connection_is_never_hidden() {
    let redis = RedisServer::start();
    let ns = unique_namespace("race");
    let (reader, counter) = counting_cache(&redis, &ns);
    let writer = Cache::builder().namespace(&ns).url(Some(redis.url())).build().expect("writer");
    reader.set_bytes("k", b"old", ["t"], Lifetime::Default).expect("set");
    assert_eq!(reader.get_bytes("k", ["t"]).expect("get"), Some(b"old".to_vec()), "the reader now remembers the tag");
    // Between the reader's two reads, another service invalidates the tag.
    writer.invalidate("t").expect("invalidate");
    let (got, rt) = round_trips(&counter, || reader.get_bytes("k", ["t"]).expect("get"));
    assert_eq!(got, None, "the remembered tag value is stale: the old entry must not be served");
    assert_eq!(rt, 2, "one stale attempt, one under the fresh value");
    // And a set from the stale reader lands where everyone reads.
    reader.set_bytes("k", b"new", ["t"], Lifetime::Default).expect("set");
    assert_eq!(writer.get_bytes("k", ["t"]).expect("get"), Some(b"new".to_vec()));
    writer.invalidate("t").expect("invalidate");
    let (_, rt) = round_trips(&counter, || reader.set_bytes("k", b"newer", ["t"], Lifetime::Default).expect("set"));
    assert_eq!(rt, 2, "a set under stale tags is detected and redone");
    assert_eq!(writer.get_bytes("k", ["t"]).expect("get"), Some(b"newer".to_vec()));
    // invalidate_all from elsewhere, and a tag deleted by hand.
    writer.invalidate_all().expect("invalidate_all");
    assert_eq!(reader.get_bytes("k", ["t"]).expect("get"), None);
    reader.set_bytes("k", b"again", ["t"], Lifetime::Default).expect("set");
    let mut conn = redis::Client::open(redis.url()).expect("client").get_connection().expect("connect");
    let _: i64 = redis::cmd("DEL").arg(rtc_core::Layout::new(&ns).tag_key("t")).query(&mut conn).expect("DEL tag");
    assert_eq!(reader.get_bytes("k", ["t"]).expect("get"), None, "a vanished tag is a new tag: only misses follow");
}
