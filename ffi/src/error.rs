//! Result codes, the mapping from [`rtc_core::ErrorKind`], and the per-thread
//! last error message (after rustls-ffi `src/error.rs`).

use std::cell::RefCell;
use std::ffi::{CString, c_char};

use rtc_core::ErrorKind;

/// What an rtc call did. `RTC_RESULT_OK` is 0; every other value is stable:
/// codes are never renumbered, new ones are only appended.
///
/// `RTC_RESULT_MISS` is not an error: it is the outcome of a read that found
/// nothing. Every other code except `RTC_RESULT_OK` is an error, and
/// `rtc_last_error_message` then describes it.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum rtc_result {
    /// Success.
    Ok = 0,
    /// Not an error: the entry is not in the cache (or a get-or-lock found no
    /// value and handed out a ticket).
    Miss = 1,
    /// A required pointer argument was NULL (or a buffer was NULL with a
    /// non-zero length).
    NullParameter = 2,
    /// A key, tag or text argument was not valid UTF-8.
    InvalidUtf8 = 3,
    /// An argument or setting rtc cannot use (a bad URL, a value larger than
    /// max_value_size, a negative lifetime other than RTC_LIFETIME_DEFAULT, ...).
    InvalidArgument = 4,
    /// Redis could not be reached (connection refused, reset, closed).
    BackendUnavailable = 5,
    /// Redis did not answer within the socket timeout.
    Timeout = 6,
    /// Redis answered with an error (authentication, ACL, wrong type, ...).
    Backend = 7,
    /// A value could not be encoded or decoded.
    Codec = 8,
    /// Any other failure; see rtc_last_error_message.
    Other = 9,
    /// The compute callback of rtc_cache_get_or_compute returned non-zero:
    /// nothing was stored and the lock (if any) was released.
    ComputeFailed = 10,
    /// rtc hit an internal bug (a Rust panic), caught at the boundary. The
    /// handles passed to the call are still valid, but please report it.
    Panic = 11,
    /// The backend broke its reply contract (a missing reply, or one of the
    /// wrong kind): a bug in a custom backend or host, not Redis being down.
    Protocol = 12,
}

impl rtc_result {
    /// Returns the code of a core error kind.
    pub(crate) fn from_kind(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::BackendUnavailable => rtc_result::BackendUnavailable,
            ErrorKind::Timeout => rtc_result::Timeout,
            ErrorKind::InvalidArgument => rtc_result::InvalidArgument,
            ErrorKind::Backend => rtc_result::Backend,
            ErrorKind::Codec => rtc_result::Codec,
            ErrorKind::Protocol => rtc_result::Protocol,
            ErrorKind::Other => rtc_result::Other,
        }
    }

    fn name(code: u32) -> &'static str {
        match code {
            0 => "RTC_RESULT_OK\0",
            1 => "RTC_RESULT_MISS\0",
            2 => "RTC_RESULT_NULL_PARAMETER\0",
            3 => "RTC_RESULT_INVALID_UTF8\0",
            4 => "RTC_RESULT_INVALID_ARGUMENT\0",
            5 => "RTC_RESULT_BACKEND_UNAVAILABLE\0",
            6 => "RTC_RESULT_TIMEOUT\0",
            7 => "RTC_RESULT_BACKEND\0",
            8 => "RTC_RESULT_CODEC\0",
            9 => "RTC_RESULT_OTHER\0",
            10 => "RTC_RESULT_COMPUTE_FAILED\0",
            11 => "RTC_RESULT_PANIC\0",
            12 => "RTC_RESULT_PROTOCOL\0",
            _ => "RTC_RESULT_UNKNOWN\0",
        }
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
        Failure::new(rtc_result::NullParameter, format!("{what} is NULL"))
    }
}

impl From<rtc_core::Error> for Failure {
    fn from(e: rtc_core::Error) -> Self {
        Failure { code: rtc_result::from_kind(e.kind()), message: format!("{e} (hint: {})", e.kind().hint()) }
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
pub extern "C" fn rtc_result_name(result: u32) -> *const c_char {
    rtc_result::name(result).as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_codes() {
        let all = [
            rtc_result::Ok,
            rtc_result::Miss,
            rtc_result::NullParameter,
            rtc_result::InvalidUtf8,
            rtc_result::InvalidArgument,
            rtc_result::BackendUnavailable,
            rtc_result::Timeout,
            rtc_result::Backend,
            rtc_result::Codec,
            rtc_result::Other,
            rtc_result::ComputeFailed,
            rtc_result::Panic,
        ];
        for (i, code) in all.iter().enumerate() {
            assert_eq!(*code as u32, i as u32, "codes are dense and never renumbered");
            let name = rtc_result::name(*code as u32);
            let debug = format!("{code:?}");
            let screaming: String = debug
                .chars()
                .enumerate()
                .flat_map(|(j, c)| {
                    let sep = (j > 0 && c.is_uppercase()).then_some('_');
                    sep.into_iter().chain(c.to_uppercase())
                })
                .collect();
            assert_eq!(name, format!("RTC_RESULT_{screaming}\0"));
        }
        assert_eq!(rtc_result::name(999), "RTC_RESULT_UNKNOWN\0");
    }
}
