//! Hashing and randomness, byte-compatible with Python `redis-tagged-cache` 0.12.1.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use md5::{Digest, Md5};

use crate::error::{Error, ErrorKind, Result};

/// Returns the reference's `short_hash`: MD5 of the bytes, first 8 bytes,
/// URL-safe base64 without padding, `-` replaced by `~`.
///
/// ```
/// assert_eq!(rtc_core::short_hash(b"default"), "wh~Wm18D0z0");
/// ```
pub fn short_hash(data: &[u8]) -> String {
    let digest = Md5::digest(data);
    // 8 bytes are 11 base64 characters; encoded in place, one allocation.
    let mut text = [0u8; 11];
    let written = URL_SAFE_NO_PAD.encode_slice(&digest[..8], &mut text).unwrap_or_default();
    for c in &mut text[..written] {
        if *c == b'-' {
            *c = b'~';
        }
    }
    text[..written].iter().map(|&c| char::from(c)).collect()
}

/// Returns 16 random bytes, the size of a tag value (a UUID4 in the reference).
///
/// On `wasm32-wasip2` the bytes come from `wasi:random`.
pub(crate) fn random_bytes() -> Result<[u8; 16]> {
    let mut buf = [0u8; 16];
    getrandom::fill(&mut buf).map_err(|e| Error::new(ErrorKind::Other, format!("no randomness available: {e}")))?;
    Ok(buf)
}

/// Returns a random lock token (32 lower-case hex digits, as the reference's).
pub(crate) fn random_token() -> Result<String> {
    let bytes = random_bytes()?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A map looked up on the hot path (the tag memo, the near cache's tag
/// keys and values): hashed with quick_cache's seeded foldhash, the hasher
/// the near cache's entries already use, rather than std's SipHash (about a
/// thousand instructions a get hit cheaper).
pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, quick_cache::DefaultHashBuilder>;
