//! Pluggable serialization of typed values; CBOR (ciborium) by default.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorKind, Result};

/// Turns typed values into the bytes stored in the cache, and back.
///
/// Raw-bytes operations (`set_bytes`, `get_bytes`, ...) bypass the codec, so
/// other languages can read what they store.
pub trait Codec: Send + Sync {
    /// Encodes `value`.
    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>>;
    /// Decodes bytes produced by [`Codec::encode`] (or by anyone: they are untrusted).
    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T>;
}

/// The default codec: CBOR through ciborium.
///
/// ```
/// use rtc_core::{Cbor, Codec};
/// let bytes = Cbor.encode(&(1u8, "a")).unwrap();
/// let back: (u8, String) = Cbor.decode(&bytes).unwrap();
/// assert_eq!(back, (1, "a".to_string()));
/// assert!(Cbor.decode::<u32>(b"\xff\xff").is_err());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cbor;

impl Codec for Cbor {
    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        ciborium::into_writer(value, &mut out)
            .map_err(|e| Error::with_source(ErrorKind::Codec, "cannot encode the value as CBOR", e))?;
        Ok(out)
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T> {
        ciborium::from_reader(bytes)
            .map_err(|e| Error::with_source(ErrorKind::Codec, "cached bytes are not valid CBOR for this type", e))
    }
}

/// Decodes a hit; bytes that do not decode (written by another program, or
/// corrupted) are logged and read as a miss.
pub(crate) fn decode_or_miss<C: Codec, T: DeserializeOwned>(codec: &C, key: &str, bytes: &[u8]) -> Option<T> {
    match codec.decode(bytes) {
        Ok(value) => Some(value),
        Err(e) => {
            tracing::warn!(key, error = %e, "cached bytes do not decode; read as a miss");
            None
        }
    }
}
