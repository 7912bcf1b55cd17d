//! librtc: the C ABI of rtc, a Redis-backed cache with O(1) tag-based
//! invalidation.
//!
//! This crate only converts types: every operation is `rtc_core`'s. It builds
//! `librtc.so` and `librtc.a`; `include/rtc.h` is generated from these doc
//! comments by cbindgen (`ffi/cbindgen.toml`), and `ffi/tests/header.rs`
//! fails when the committed header is stale (`RTC_BLESS=1` rewrites it).
//!
//! Conventions (those of rustls-ffi): opaque handles in `_new`/`_free` pairs,
//! `_free(NULL)` is a no-op, C never frees Rust memory, keys and values are
//! `const uint8_t *, size_t`, every pointer is checked, invalid UTF-8 is an
//! error code, out-parameters are written only on success, callbacks take
//! `void *userdata` first, and no panic crosses the boundary.
#![deny(missing_docs)]
#![allow(clippy::not_unsafe_ptr_arg_deref)]

mod boundary;
mod cache;
mod compute;
mod error;
mod hook;
mod nonblocking;
mod runtime;

use std::ffi::c_char;

pub use boundary::rtc_bytes;
pub use cache::*;
pub use compute::*;
pub use error::{rtc_last_error_message, rtc_result, rtc_result_name};
pub use hook::*;
pub use nonblocking::*;

/// Returns the version of the library, e.g. "0.1.0": compare it with the
/// header's RTC_VERSION to detect a header/library mismatch. The string is static:
/// never free it. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

#[cfg(test)]
mod tests {
    #[test]
    fn version_is_the_crate_version() {
        // SAFETY: rtc_version returns a static NUL-terminated string.
        let v = unsafe { std::ffi::CStr::from_ptr(super::rtc_version()) };
        assert_eq!(v.to_str().ok(), Some(env!("CARGO_PKG_VERSION")));
    }
}
