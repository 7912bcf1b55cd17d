//! Result codes, the mapping from [`rtc_core::ErrorKind`], and the per-thread
//! last error message (after rustls-ffi `src/error.rs`).

use std::cell::RefCell;
use std::ffi::{CString, c_char};

use rtc_core::ErrorKind;

/// What an rtc call did: one of the `RTC_RESULT_*` codes. `RTC_RESULT_OK`
/// is 0; every other value is stable: codes are never renumbered, new ones
/// are only appended.
///
/// A `uint32_t` in C and in C++ alike (not an enum, whose type would differ
/// between the two and between C standards), so a code passes between C and
/// C++ code, and to `rtc_result_name`, unchanged.
///
/// `RTC_RESULT_MISS` is not an error: it is the outcome of a read that found
/// nothing. Every other code except `RTC_RESULT_OK` is an error, and
/// `rtc_last_error_message` then describes it.
#[allow(non_camel_case_types)]
pub type rtc_result = u32;

/// Success.
pub const RTC_RESULT_OK: rtc_result = 0;
/// Not an error: the entry is not in the cache (or a get-or-lock found no
/// value and handed out a ticket).
pub const RTC_RESULT_MISS: rtc_result = 1;
/// A required pointer argument was NULL (or a buffer was NULL with a
/// non-zero length).
pub const RTC_RESULT_NULL_PARAMETER: rtc_result = 2;
/// A key, tag or text argument was not valid UTF-8.
pub const RTC_RESULT_INVALID_UTF8: rtc_result = 3;
/// An argument or setting rtc cannot use (a bad URL, a value larger than
/// max_value_size, a negative lifetime other than RTC_LIFETIME_DEFAULT, ...).
pub const RTC_RESULT_INVALID_ARGUMENT: rtc_result = 4;
/// Redis could not be reached (connection refused, reset, closed).
pub const RTC_RESULT_BACKEND_UNAVAILABLE: rtc_result = 5;
/// Redis did not answer within the socket timeout.
pub const RTC_RESULT_TIMEOUT: rtc_result = 6;
/// Redis answered with an error (authentication, ACL, wrong type, ...).
pub const RTC_RESULT_BACKEND: rtc_result = 7;
/// A value could not be encoded or decoded.
pub const RTC_RESULT_CODEC: rtc_result = 8;
/// Any other failure; see rtc_last_error_message.
pub const RTC_RESULT_OTHER: rtc_result = 9;
/// The compute callback of rtc_cache_get_or_compute returned non-zero:
/// nothing was stored and the lock (if any) was released.
pub const RTC_RESULT_COMPUTE_FAILED: rtc_result = 10;
/// rtc hit an internal bug (a Rust panic), caught at the boundary. The
/// handles passed to the call are still valid, but please report it.
pub const RTC_RESULT_PANIC: rtc_result = 11;
/// The backend broke its reply contract (a missing reply, or one of the
/// wrong kind): a bug in a custom backend or host, not Redis being down.
pub const RTC_RESULT_PROTOCOL: rtc_result = 12;
/// The non-blocking API refused to start an operation: as many as
/// rtc_async_new allowed are in flight. Take completions, then retry.
pub const RTC_RESULT_FULL: rtc_result = 13;
/// The completion of a non-blocking operation cancelled by
/// rtc_async_cancel or rtc_async_cancel_all (or by rtc_async_free).
pub const RTC_RESULT_CANCELLED: rtc_result = 14;

/// Returns the code of a core error kind.
pub(crate) fn code_of(kind: ErrorKind) -> rtc_result {
    match kind {
        ErrorKind::BackendUnavailable => RTC_RESULT_BACKEND_UNAVAILABLE,
        ErrorKind::Timeout => RTC_RESULT_TIMEOUT,
        ErrorKind::InvalidArgument => RTC_RESULT_INVALID_ARGUMENT,
        ErrorKind::Backend => RTC_RESULT_BACKEND,
        ErrorKind::Codec => RTC_RESULT_CODEC,
        ErrorKind::Protocol => RTC_RESULT_PROTOCOL,
        ErrorKind::Other => RTC_RESULT_OTHER,
    }
}

/// The name of a code, NUL-terminated.
fn code_name(code: rtc_result) -> &'static str {
    match code {
        RTC_RESULT_OK => "RTC_RESULT_OK\0",
        RTC_RESULT_MISS => "RTC_RESULT_MISS\0",
        RTC_RESULT_NULL_PARAMETER => "RTC_RESULT_NULL_PARAMETER\0",
        RTC_RESULT_INVALID_UTF8 => "RTC_RESULT_INVALID_UTF8\0",
        RTC_RESULT_INVALID_ARGUMENT => "RTC_RESULT_INVALID_ARGUMENT\0",
        RTC_RESULT_BACKEND_UNAVAILABLE => "RTC_RESULT_BACKEND_UNAVAILABLE\0",
        RTC_RESULT_TIMEOUT => "RTC_RESULT_TIMEOUT\0",
        RTC_RESULT_BACKEND => "RTC_RESULT_BACKEND\0",
        RTC_RESULT_CODEC => "RTC_RESULT_CODEC\0",
        RTC_RESULT_OTHER => "RTC_RESULT_OTHER\0",
        RTC_RESULT_COMPUTE_FAILED => "RTC_RESULT_COMPUTE_FAILED\0",
        RTC_RESULT_PANIC => "RTC_RESULT_PANIC\0",
        RTC_RESULT_PROTOCOL => "RTC_RESULT_PROTOCOL\0",
        RTC_RESULT_FULL => "RTC_RESULT_FULL\0",
        RTC_RESULT_CANCELLED => "RTC_RESULT_CANCELLED\0",
        _ => "RTC_RESULT_UNKNOWN\0",
    }
}

/// A failed call: the code to return and the message for
/// `rtc_last_error_message`.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) code: rtc_result,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(code: rtc_result, message: impl Into<String>) -> Self {
        Failure { code, message: message.into() }
    }

    pub(crate) fn null(what: &str) -> Self {
        Failure::new(RTC_RESULT_NULL_PARAMETER, format!("{what} is NULL"))
    }
}

impl From<rtc_core::Error> for Failure {
    fn from(e: rtc_core::Error) -> Self {
        Failure { code: code_of(e.kind()), message: format!("{e} (hint: {})", e.kind().hint()) }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Records `message` as this thread's last error.
pub(crate) fn set_last_error(message: &str) {
    let message = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    // `try_with`: a call made while this thread's locals are being destroyed keeps quiet.
    let _ = LAST_ERROR.try_with(|last| *last.borrow_mut() = message);
}

/// Returns a description of the most recent error on the calling thread: the
/// last rtc call on this thread that returned a code other than
/// `RTC_RESULT_OK` or `RTC_RESULT_MISS`. Successful calls do not clear it.
///
/// Never returns NULL (an empty string if no call has failed on this thread).
/// The string is owned by rtc and stays valid until the next rtc call on the
/// same thread; copy it to keep it. Each thread has its own message, so this
/// is safe to call from any thread.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_last_error_message() -> *const c_char {
    LAST_ERROR.try_with(|last| last.borrow().as_ptr()).unwrap_or(c"".as_ptr())
}

/// Returns the name of a result code as a static string, e.g.
/// "RTC_RESULT_MISS", or "RTC_RESULT_UNKNOWN" for a value that is not a code.
///
/// The string is static: never free it. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_result_name(result: rtc_result) -> *const c_char {
    code_name(result).as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_codes() {
        let all = [
            (RTC_RESULT_OK, "OK"),
            (RTC_RESULT_MISS, "MISS"),
            (RTC_RESULT_NULL_PARAMETER, "NULL_PARAMETER"),
            (RTC_RESULT_INVALID_UTF8, "INVALID_UTF8"),
            (RTC_RESULT_INVALID_ARGUMENT, "INVALID_ARGUMENT"),
            (RTC_RESULT_BACKEND_UNAVAILABLE, "BACKEND_UNAVAILABLE"),
            (RTC_RESULT_TIMEOUT, "TIMEOUT"),
            (RTC_RESULT_BACKEND, "BACKEND"),
            (RTC_RESULT_CODEC, "CODEC"),
            (RTC_RESULT_OTHER, "OTHER"),
            (RTC_RESULT_COMPUTE_FAILED, "COMPUTE_FAILED"),
            (RTC_RESULT_PANIC, "PANIC"),
            (RTC_RESULT_PROTOCOL, "PROTOCOL"),
            (RTC_RESULT_FULL, "FULL"),
            (RTC_RESULT_CANCELLED, "CANCELLED"),
        ];
        for (i, (code, name)) in all.iter().enumerate() {
            assert_eq!(*code as usize, i, "codes are dense and never renumbered");
            assert_eq!(code_name(*code), format!("RTC_RESULT_{name}\0"));
        }
        assert_eq!(code_name(999), "RTC_RESULT_UNKNOWN\0");
    }
}
