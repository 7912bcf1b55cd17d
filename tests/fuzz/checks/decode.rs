//! The checks of the `decode_value` fuzz target for one input, shared with
//! the stable regression suite (`tests/tests/fuzz_regressions.rs`), which
//! includes this file, so both exercise exactly the same path.
//!
//! Invariants: nothing panics or aborts; a typed `get` is a hit exactly when
//! the codec decodes the bytes (with the same value) and a miss otherwise,
//! never an error; a value that decodes re-encodes to itself; get-or-compute
//! returns the decoded value or computes, and a value it computed over
//! undecodable bytes replaces them.

use std::collections::BTreeMap;

use rtc_core::{Cache, Cbor, Codec, ComputeOptions, Lifetime};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A record as an application would cache it (no floats, so `==` is an equivalence).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub id: u64,
    pub name: String,
    pub tags: Vec<String>,
    pub score: Option<i64>,
    pub attributes: BTreeMap<String, Vec<u8>>,
    pub kind: Kind,
}

/// Every shape of enum variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    Unit,
    Pair(i32, String),
    Named { flag: bool, items: Vec<u16> },
}

/// Recursive data: the decoder must bound its depth, not overflow the stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tree {
    Leaf(u8),
    Node(Vec<Tree>),
}

/// Decodes `data` as `T` directly and through the cache; both must agree.
fn both_ways<T: DeserializeOwned + PartialEq + std::fmt::Debug>(cache: &Cache, data: &[u8]) -> Option<T> {
    let direct = Cbor.decode::<T>(data).ok();
    let cached = cache.get::<T>("k", ["t"]).expect("the memory backend does not fail");
    assert_eq!(direct, cached, "a typed get must be a hit exactly when the bytes decode");
    direct
}

/// Runs every check on `data`, stored as a value someone else wrote.
pub fn check(cache: &Cache, data: &[u8]) {
    cache.set_bytes("k", data, ["t"], Lifetime::Default).expect("set_bytes in memory");
    assert_eq!(cache.get_bytes("k", ["t"]).expect("get_bytes"), Some(data.to_vec()), "raw bytes round-trip");
    both_ways::<u64>(cache, data);
    both_ways::<i128>(cache, data);
    both_ways::<String>(cache, data);
    both_ways::<Vec<u8>>(cache, data);
    both_ways::<Option<Vec<String>>>(cache, data);
    both_ways::<BTreeMap<String, u32>>(cache, data);
    both_ways::<Kind>(cache, data);
    both_ways::<Tree>(cache, data);
    let record = both_ways::<Record>(cache, data);

    if let Some(r) = &record {
        let again = Cbor.encode(r).expect("encode a decoded record");
        assert_eq!(Cbor.decode::<Record>(&again).ok().as_ref(), Some(r), "a decoded value re-encodes to itself");
    }

    let computed = Record {
        id: 7,
        name: "computed".into(),
        tags: vec![],
        score: None,
        attributes: BTreeMap::new(),
        kind: Kind::Unit,
    };
    let got: Record = cache.get_or_compute(&ComputeOptions::key("k").tags(["t"]), || computed.clone());
    match record {
        Some(r) => assert_eq!(got, r, "a decodable value is a hit"),
        None => {
            assert_eq!(got, computed, "undecodable bytes are computed over");
            assert_eq!(
                cache.get::<Record>("k", ["t"]).expect("get"),
                Some(computed),
                "the computed value replaced the garbage"
            );
        }
    }
}
