//! The pure-CPU parts of rtc: key hashing, the metadata hash, CBOR, and the
//! whole core path of a hit on the in-memory backend (no network).
//!
//! Run with `cargo bench -p rtc-bench`.
// criterion_group! generates an undocumented function.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use rtc_core::{Cache, Cbor, Codec, Layout, Lifetime, metadata_hash, short_hash};

fn hashing(c: &mut Criterion) {
    c.bench_function("short_hash of a 16-byte key", |b| b.iter(|| short_hash(black_box(b"user:123456789012"))));
    let layout = Layout::new("default");
    c.bench_function("tag key", |b| b.iter(|| layout.tag_key(black_box("user:123"))));
    c.bench_function("storage key", |b| b.iter(|| layout.storage_key(black_box("user:123"), black_box("7hdQZHaOpyg"))));
    let values = [[1u8; 16], [2u8; 16], [3u8; 16], [4u8; 16]];
    c.bench_function("metadata hash of 4 tag values", |b| b.iter(|| metadata_hash(black_box(&values))));
}

fn cbor(c: &mut Criterion) {
    #[derive(serde::Serialize, serde::Deserialize)]
    struct User {
        id: u64,
        name: String,
        roles: Vec<String>,
    }
    let user = User { id: 42, name: "Ada Lovelace".into(), roles: vec!["admin".into(), "author".into()] };
    let bytes = Cbor.encode(&user).expect("encode");
    c.bench_function("CBOR encode a small struct", |b| b.iter(|| Cbor.encode(black_box(&user))));
    c.bench_function("CBOR decode a small struct", |b| b.iter(|| Cbor.decode::<User>(black_box(&bytes))));
}

fn core_path(c: &mut Criterion) {
    let cache = Cache::builder().in_local_memory(true).build().expect("build");
    let tags = ["a", "b", "c"];
    cache.set_bytes("k", &[b'x'; 100], tags, Lifetime::Default).expect("set");
    c.bench_function("get hit, 3 tags, in memory (core CPU per hit)", |b| {
        b.iter(|| cache.get_bytes(black_box("k"), tags))
    });
    c.bench_function("set, 3 tags, in memory", |b| {
        b.iter(|| cache.set_bytes(black_box("k"), &[b'x'; 100], tags, Lifetime::Default))
    });
}

criterion_group!(benches, hashing, cbor, core_path);
criterion_main!(benches);
