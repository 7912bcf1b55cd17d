//! Arbitrary bytes as a cached value: through the CBOR codec into a few
//! representative types, and through a cache (in memory) after `set_bytes`
//! of the same bytes, as if someone else had written them into Redis.
//!
//! Invariants: nothing panics or aborts; a typed `get` is a hit exactly when
//! the codec decodes the bytes (with the same value) and a miss otherwise,
//! never an error; get-or-compute returns the decoded value or computes, and
//! a value it computed over undecodable bytes replaces them.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rtc_core::{Cache, Cbor, Codec, ComputeOptions, Lifetime};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A record as an application would cache it (no floats, so `==` is an equivalence).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    id: u64,
    name: String,
    tags: Vec<String>,
    score: Option<i64>,
    attributes: BTreeMap<String, Vec<u8>>,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Kind {
    Unit,
    Pair(i32, String),
    Named { flag: bool, items: Vec<u16> },
}

/// Recursive data: the decoder must bound its depth, not overflow the stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Tree {
    Leaf(u8),
    Node(Vec<Tree>),
}

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(|| {
        Cache::builder()
            .namespace("fuzz")
            .in_local_memory(true)
            .build()
            .expect("memory cache")
    })
}

/// Decodes `data` as `T` directly and through the cache; both must agree.
fn both_ways<T: DeserializeOwned + PartialEq + std::fmt::Debug>(data: &[u8]) -> Option<T> {
    let direct = Cbor.decode::<T>(data).ok();
    let cached = cache().get::<T>("k", ["t"]).expect("the memory backend does not fail");
    assert_eq!(
        direct, cached,
        "a typed get must be a hit exactly when the bytes decode"
    );
    direct
}

fuzz_target!(|data: &[u8]| {
    // The codec alone, into representative types (cheap: most executions go here).
    let _ = Cbor.decode::<ciborium::Value>(data);
    let _ = Cbor.decode::<f64>(data);
    let _ = Cbor.decode::<(u8, Option<f32>, Vec<f64>)>(data);
    let _ = Cbor.decode::<u64>(data);
    let _ = Cbor.decode::<i128>(data);
    let _ = Cbor.decode::<bool>(data);
    let _ = Cbor.decode::<String>(data);
    let _ = Cbor.decode::<Vec<u8>>(data);
    let _ = Cbor.decode::<Option<Vec<String>>>(data);
    let _ = Cbor.decode::<BTreeMap<String, u32>>(data);
    let _ = Cbor.decode::<(u8, String, Option<i64>)>(data);
    let _ = Cbor.decode::<Kind>(data);

    // Through a cache, as bytes someone else wrote into Redis: the typed read
    // path is generic, so two types cover it.
    let c = cache();
    c.set_bytes("k", data, ["t"], Lifetime::Default)
        .expect("set_bytes in memory");
    assert_eq!(
        c.get_bytes("k", ["t"]).expect("get_bytes"),
        Some(data.to_vec()),
        "raw bytes round-trip"
    );
    both_ways::<Tree>(data);
    let record = both_ways::<Record>(data);

    // A value that decodes re-encodes and decodes to itself.
    if let Some(r) = &record {
        let again = Cbor.encode(r).expect("encode a decoded record");
        assert_eq!(Cbor.decode::<Record>(&again).ok().as_ref(), Some(r));
    }

    // get-or-compute over the same bytes: the decoded value, or a computed one
    // that then replaces the garbage.
    let computed = Record {
        id: 7,
        name: "computed".into(),
        tags: vec![],
        score: None,
        attributes: BTreeMap::new(),
        kind: Kind::Unit,
    };
    let options = ComputeOptions::key("k").tags(["t"]);
    let got: Record = c.get_or_compute(&options, || computed.clone());
    match &record {
        Some(r) => assert_eq!(&got, r, "a decodable value is a hit"),
        None => {
            assert_eq!(got, computed, "undecodable bytes are computed over");
            assert_eq!(
                c.get::<Record>("k", ["t"]).expect("get"),
                Some(computed),
                "the computed value replaced the garbage"
            );
        }
    }
});
