//! The `rtc:cache/redis` contract as a server of that import enforces it:
//! the ranges the WIT promises (`wit/redis.wit`), checked once here, so the
//! wasmtime host and the Redis provider component refuse the same commands
//! with the same errors, and answer `MGET` the same way.
//!
//! Each server still matches its own generated WIT types field by field
//! (the bindings differ); every rule lives here.

use std::time::Duration;

use crate::backend::Reply;
use crate::error::{Error, ErrorKind, Result};

/// The longest `blpop` timeout the WIT contract allows (one day), in ms.
pub const MAX_BLPOP_MS: u64 = 86_400_000;

/// Checks the key list of `MGET` or `DEL` (`what`): at least one key.
///
/// ```
/// use rtc_core::adapter::contract;
/// assert!(contract::keys("MGET", vec![]).is_err());
/// assert_eq!(contract::keys("DEL", vec!["k".to_owned()]).ok(), Some(vec!["k".to_owned()]));
/// ```
pub fn keys(what: &str, keys: Vec<String>) -> Result<Vec<String>> {
    if keys.is_empty() {
        return Err(Error::new(ErrorKind::InvalidArgument, format!("{what} needs at least one key")));
    }
    Ok(keys)
}

/// Checks a duration in milliseconds that Redis would misread as 0 (`SET
/// PX`, `PEXPIRE`): at least 1.
pub fn millis(what: &str, ms: u64) -> Result<u64> {
    if ms == 0 {
        return Err(Error::new(ErrorKind::InvalidArgument, format!("{what} must be at least 1 ms")));
    }
    Ok(ms)
}

/// Checks the expiry of `SET` (`none`: no expiry).
pub fn expire(ms: Option<u64>) -> Result<Option<u64>> {
    ms.map(|ms| millis("SET PX", ms)).transpose()
}

/// Checks the timeout of `BLPOP`: from 1 ms to [`MAX_BLPOP_MS`] (0 would
/// mean "forever" to Redis).
///
/// ```
/// use std::time::Duration;
/// use rtc_core::adapter::contract;
/// assert_eq!(contract::blpop_timeout(1500).ok(), Some(Duration::from_millis(1500)));
/// assert!(contract::blpop_timeout(0).is_err());
/// assert!(contract::blpop_timeout(contract::MAX_BLPOP_MS + 1).is_err());
/// ```
pub fn blpop_timeout(ms: u64) -> Result<Duration> {
    let ms = millis("BLPOP timeout", ms)?;
    if ms > MAX_BLPOP_MS {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("BLPOP timeout of {ms} ms is above the maximum of {MAX_BLPOP_MS} ms"),
        ));
    }
    Ok(Duration::from_millis(ms))
}

/// Converts one item of an `MGET` array reply: bytes or nil, anything else
/// breaks the contract (a backend bug, reported as `protocol`).
pub fn array_item(item: Reply) -> Result<Option<Vec<u8>>> {
    match item {
        Reply::Bytes(b) => Ok(Some(b)),
        Reply::Nil => Ok(None),
        other => Err(Error::new(
            ErrorKind::Protocol,
            format!("the backend broke the reply contract: {other:?} in an array reply"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_durations_and_empty_key_lists_are_refused() {
        for e in [
            keys("MGET", vec![]).err(),
            millis("PEXPIRE", 0).err(),
            expire(Some(0)).err(),
            blpop_timeout(0).err(),
            blpop_timeout(u64::MAX).err(),
        ] {
            assert_eq!(e.map(|e| e.kind()), Some(ErrorKind::InvalidArgument));
        }
        assert_eq!(expire(None).ok(), Some(None));
        assert_eq!(expire(Some(7)).ok(), Some(Some(7)));
    }

    #[test]
    fn array_items_are_bytes_or_nil() {
        assert_eq!(array_item(Reply::Bytes(vec![1])).ok(), Some(Some(vec![1])));
        assert_eq!(array_item(Reply::Nil).ok(), Some(None));
        assert_eq!(array_item(Reply::Int(1)).err().map(|e| e.kind()), Some(ErrorKind::Protocol));
    }
}
