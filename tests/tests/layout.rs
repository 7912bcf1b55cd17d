//! The key layout against vectors produced by the reference library itself
//! (`tests/data/layout-0.12.1.json`), and end to end on a real Redis.

use rtc_core::{Cache, Layout, Lifetime, hash_order, metadata_hash, short_hash};
use rtc_tests::RedisServer;
use serde_json::Value;

fn vectors() -> Value {
    let path = rtc_tests::tests_dir().join("data/layout-0.12.1.json");
    serde_json::from_str(&std::fs::read_to_string(&path).expect("read the vectors")).expect("parse the vectors")
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().expect("array").iter().map(|s| s.as_str().expect("string").to_owned()).collect()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

#[test]
fn short_hash_matches_the_reference() {
    let v = vectors();
    let cases = v["short_hash"].as_array().expect("short_hash cases");
    assert!(cases.len() >= 10);
    for case in cases {
        let input = case["input"].as_str().expect("input");
        assert_eq!(short_hash(input.as_bytes()), case["output"].as_str().expect("output"), "input {input:?}");
    }
}

#[test]
fn keys_and_metadata_hash_match_the_reference() {
    let v = vectors();
    for case in v["cases"].as_array().expect("cases") {
        let ns = case["namespace"].as_str().expect("namespace");
        let key = case["key"].as_str().expect("key");
        let tags = strings(&case["tags"]);
        let tag_refs: Vec<&str> = tags.iter().map(String::as_str).collect();
        let order = hash_order(&tag_refs);
        assert_eq!(order, strings(&case["tag_names_in_hash_order"]), "{case}");
        let layout = Layout::new(ns);
        for (tag, expected) in case["tag_keys"].as_object().expect("tag_keys") {
            assert_eq!(layout.tag_key(tag), expected.as_str().expect("tag key"), "{case}");
        }
        let values: Vec<Vec<u8>> = strings(&case["tag_values_hex_in_hash_order"]).iter().map(|h| hex(h)).collect();
        let hash = metadata_hash(&values);
        assert_eq!(hash, case["metadata_hash"].as_str().expect("metadata_hash"), "{case}");
        let entry = layout.entry(key, &hash);
        assert_eq!(entry.storage, case["storage_key"].as_str().expect("storage_key"));
        assert_eq!(entry.lock, case["lock_key"].as_str().expect("lock_key"));
        assert_eq!(entry.wake, case["waiting_key"].as_str().expect("waiting_key"));
    }
}

/// Seeds Redis with the vectors' tag values, stores through rtc, and finds the
/// value under exactly the storage key the reference would use.
#[test]
fn rtc_writes_where_the_reference_reads_on_redis() {
    let redis = RedisServer::start();
    let mut conn = redis::Client::open(redis.url()).expect("client").get_connection().expect("connect");
    let v = vectors();
    for case in v["cases"].as_array().expect("cases") {
        let ns = case["namespace"].as_str().expect("namespace");
        let key = case["key"].as_str().expect("key");
        let tags = strings(&case["tags"]);
        let names = strings(&case["tag_names_in_hash_order"]);
        let values = strings(&case["tag_values_hex_in_hash_order"]);
        for (name, value) in names.iter().zip(&values) {
            let tag_key = case["tag_keys"][name].as_str().expect("tag key");
            let _: () = redis::cmd("SET").arg(tag_key).arg(hex(value)).query(&mut conn).expect("seed tag");
        }
        let cache = Cache::builder().namespace(ns).url(Some(redis.url())).build().expect("build");
        let payload = format!("value of {key} in {ns}");
        cache.set_bytes(key, payload.as_bytes(), &tags, Lifetime::Default).expect("set");
        let storage_key = case["storage_key"].as_str().expect("storage key");
        let stored: Option<Vec<u8>> = redis::cmd("GET").arg(storage_key).query(&mut conn).expect("get");
        assert_eq!(stored.as_deref(), Some(payload.as_bytes()), "{case}");
    }
}
