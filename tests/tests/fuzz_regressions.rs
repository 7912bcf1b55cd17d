//! Inputs of interest to the fuzz targets (tests/fuzz), replayed in the normal
//! suite on stable through the same code (`tests/fuzz/checks/decode.rs`) as the `decode_value` target:
//! the CBOR codec into representative types, and a cache in memory after
//! `set_bytes` of the same bytes. Every crash a fuzz run finds is added here
//! (with the artifact's bytes) before it is fixed.
//!
//! Fuzz runs so far found no crash; the inputs below are the hostile shapes a
//! value read back from Redis can take (hand-written, each aimed at one way a
//! decoder can fail: depth, declared lengths, bad text, truncation).

use std::collections::BTreeMap;

use rtc_core::{Cache, Cbor, Codec};

#[path = "../fuzz/checks/decode.rs"]
mod decode;

use decode::{Kind, Record, Tree};

/// The `decode_value` fuzz target's checks, for one input.
fn replay(cache: &Cache, data: &[u8]) {
    decode::check(cache, data);
}

fn cache() -> Cache {
    Cache::builder().namespace("fuzz-regressions").in_local_memory(true).build().expect("memory cache")
}

/// `n` nested one-element arrays around a zero: deeper than any decoder should recurse.
fn nested_arrays(n: usize) -> Vec<u8> {
    let mut v = vec![0x81; n];
    v.push(0x00);
    v
}

#[test]
fn hostile_values_decode_to_errors_or_values_never_a_crash() {
    let cache = cache();
    let inputs: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("break byte alone", vec![0xff]),
        ("reserved additional info", vec![0x1c]),
        ("array of 2^64-1 items, none present", vec![0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        ("byte string of 2^64-1 bytes, none present", vec![0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        ("text string of 2^32-1 bytes, 3 present", vec![0x7a, 0xff, 0xff, 0xff, 0xff, b'a', b'b', b'c']),
        ("map of 2^64-1 pairs", vec![0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        ("invalid UTF-8 text", vec![0x62, 0xc3, 0x28]),
        ("indefinite text of byte chunks", vec![0x7f, 0x41, b'a', 0xff]),
        ("indefinite array never closed", vec![0x9f, 0x01, 0x02]),
        ("nested indefinite arrays", [vec![0x9f; 4096], vec![0xff; 4096]].concat()),
        ("tag around tag", [[0xd8, 0x18].repeat(2048), vec![0x00]].concat()),
        ("deep arrays (10 000)", nested_arrays(10_000)),
        ("deep arrays (1 000 000)", nested_arrays(1_000_000)),
        ("deep maps", [[0xa1, 0x00].repeat(100_000), vec![0x00]].concat()),
        ("u64::MAX", vec![0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        ("negative bignum tag", vec![0xc3, 0x49, 0x01, 0, 0, 0, 0, 0, 0, 0, 0]),
        ("half-float NaN", vec![0xf9, 0x7e, 0x00]),
        ("enum as a map with a wrong variant", vec![0xa1, 0x64, b'N', b'o', b'p', b'e', 0x00]),
        ("valid record then trailing garbage", {
            let r = Record {
                id: 1,
                name: "a".into(),
                tags: vec!["t".into()],
                score: Some(-1),
                attributes: BTreeMap::new(),
                kind: Kind::Pair(-5, "x".into()),
            };
            let mut v = Cbor.encode(&r).expect("encode");
            v.extend_from_slice(&[0xff, 0x00, 0x9b]);
            v
        }),
    ];
    for (what, data) in &inputs {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| replay(&cache, data)));
        assert!(outcome.is_ok(), "{what}: the decode path panicked");
    }
}

#[test]
fn valid_values_of_every_representative_type_round_trip_through_the_cache() {
    let cache = cache();
    let record = Record {
        id: u64::MAX,
        name: "ünïcode \u{0} nul".into(),
        tags: vec![String::new(), "x".repeat(300)],
        score: Some(i64::MIN),
        attributes: [("k".to_string(), vec![0, 255])].into_iter().collect(),
        kind: Kind::Named { flag: true, items: vec![0, u16::MAX] },
    };
    let deep = (0..64).fold(Tree::Leaf(1), |t, _| Tree::Node(vec![t]));
    for data in [
        Cbor.encode(&record).expect("record"),
        Cbor.encode(&deep).expect("tree"),
        Cbor.encode(&Kind::Unit).expect("unit"),
    ] {
        replay(&cache, &data);
    }
    // The last value is no Record: get-or-compute computed one over it.
    assert_eq!(cache.get::<Record>("k", ["t"]).expect("get").map(|r| r.id), Some(7));
}
