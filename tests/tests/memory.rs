//! The in-memory backend: a product feature with the same semantics as Redis,
//! expiry included (the reference's memory mode never expires tags).

use std::time::Duration;

use rtc_core::{Backend, Cache, Command, ComputeOptions, GetOrLock, Lifetime, MemoryBackend, Reply};

/// Lifetimes in these tests are whole seconds (Redis's unit); waiting for one
/// to pass is the event under test, not a synchronisation shortcut.
fn wait_past(seconds: u64) {
    std::thread::sleep(Duration::from_millis(seconds * 1000 + 150));
}

#[test]
fn entries_expire_in_memory() {
    let cache = Cache::builder().in_local_memory(true).build().expect("build");
    cache.set_bytes("short", b"v", ["t"], Lifetime::Seconds(1)).expect("set");
    cache.set_bytes("long", b"v", ["t"], Lifetime::Default).expect("set");
    assert_eq!(cache.get_bytes("short", ["t"]).expect("get"), Some(b"v".to_vec()));
    wait_past(1);
    assert_eq!(cache.get_bytes("short", ["t"]).expect("get"), None, "the entry expired");
    assert_eq!(cache.get_bytes("long", ["t"]).expect("get"), Some(b"v".to_vec()));
}

#[test]
fn tags_expire_in_memory_and_take_their_entries_with_them() {
    let cache = Cache::builder().in_local_memory(true).lifetime_for_tags(Some(1)).build().expect("build");
    cache.set_bytes("k", b"v", ["t"], Lifetime::Forever).expect("set");
    assert_eq!(cache.get_bytes("k", ["t"]).expect("get"), Some(b"v".to_vec()));
    wait_past(1);
    assert_eq!(cache.get_bytes("k", ["t"]).expect("get"), None, "an expired tag gets a new value");
}

#[test]
fn memory_backend_answers_like_redis() {
    let m = MemoryBackend::new();
    let set = |key: &str, nx: bool| Command::Set { key: key.into(), value: b"v".to_vec(), expire_ms: None, nx };
    let replies = m
        .execute(&[
            set("a", true),
            set("a", true),
            Command::Mget { keys: vec!["a".into(), "b".into()] },
            Command::DelIfEq { key: "a".into(), value: b"other".to_vec() },
            Command::DelIfEq { key: "a".into(), value: b"v".to_vec() },
            Command::Rpush { key: "l".into(), value: b"x".to_vec() },
            Command::Get { key: "l".into() },
        ])
        .expect_err("GET on a list is WRONGTYPE, as on Redis");
    assert!(replies.to_string().contains("WRONGTYPE"));
    let replies = m
        .execute(&[
            set("c", true),
            set("c", true),
            Command::Mget { keys: vec!["c".into(), "d".into()] },
            Command::DelIfEq { key: "c".into(), value: b"other".to_vec() },
            Command::DelIfEq { key: "c".into(), value: b"v".to_vec() },
            Command::Del { keys: vec!["c".into()] },
            Command::Blpop { key: "l".into(), timeout: Duration::from_millis(1) },
            Command::Blpop { key: "l".into(), timeout: Duration::from_millis(1) },
        ])
        .expect("batch");
    assert_eq!(
        replies,
        vec![
            Reply::Ok,
            Reply::Nil,
            Reply::Array(vec![Reply::Bytes(b"v".to_vec()), Reply::Nil]),
            Reply::Int(0),
            Reply::Int(1),
            Reply::Int(0),
            Reply::Bytes(b"x".to_vec()),
            Reply::Nil,
        ]
    );
}

#[test]
fn a_crashed_lock_holder_delays_waiters_only_until_lock_timeout_in_memory() {
    let cache = Cache::builder().in_local_memory(true).build().expect("build");
    let timeout = Duration::from_millis(500);
    let options = ComputeOptions::key("k").tags(["t"]).lock(true).lock_timeout(timeout);
    match cache.get_or_lock(&options) {
        // The holder "crashes": dropping a ticket does no I/O, so its lock is never released.
        GetOrLock::Locked(ticket) => drop(ticket),
        other => panic!("expected the lock, got {other:?}"),
    }
    let v = cache.get_or_compute_bytes(&options, || Ok::<_, ()>(b"recovered".to_vec())).expect("value");
    assert_eq!(v, b"recovered");
}
