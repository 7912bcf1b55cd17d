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
use rtc_core::{Cache, Cbor, Codec};

#[path = "../checks/decode.rs"]
mod decode;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(|| Cache::builder().namespace("fuzz").in_local_memory(true).build().expect("memory cache"))
}

fuzz_target!(|data: &[u8]| {
    // The codec alone, into more types (cheap: most executions go here).
    let _ = Cbor.decode::<ciborium::Value>(data);
    let _ = Cbor.decode::<f64>(data);
    let _ = Cbor.decode::<(u8, Option<f32>, Vec<f64>)>(data);
    let _ = Cbor.decode::<bool>(data);
    let _ = Cbor.decode::<(u8, String, Option<i64>)>(data);
    let _ = Cbor.decode::<BTreeMap<String, u32>>(data);
    // Through a cache, as bytes someone else wrote into Redis.
    decode::check(cache(), data);
});
