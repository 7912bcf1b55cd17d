//! The panic boundary and the checked conversions of C arguments.
//!
//! Every exported function runs its body through [`guard`] (or
//! [`guard_or`]), so a Rust panic never unwinds into C: it becomes
//! `RTC_RESULT_PANIC` (after rustls-ffi `src/panic.rs`). Every pointer from C
//! goes through one of the helpers here, which check it for NULL, and every
//! text argument is checked for UTF-8.

use std::ffi::{CStr, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::error::{
    Failure, RTC_RESULT_INVALID_ARGUMENT, RTC_RESULT_INVALID_UTF8, RTC_RESULT_NULL_PARAMETER, RTC_RESULT_PANIC,
    rtc_result, set_last_error,
};

/// A borrowed byte buffer: `len` bytes at `data`. Used for lists of tags
/// (`const rtc_bytes *tags, size_t tags_len`) and in `rtc_cache_info`.
///
/// `data` may be NULL only when `len` is 0.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct rtc_bytes {
    /// The first byte (NULL allowed when `len` is 0).
    pub data: *const u8,
    /// The number of bytes.
    pub len: usize,
}

/// A readable, non-NULL address for empty buffers handed to C: C may pass it
/// to `memcpy` with a length of 0, which a dangling pointer would not allow.
static EMPTY: u8 = 0;

impl rtc_bytes {
    /// Borrows `b` for C; an empty slice gets a valid non-NULL pointer.
    pub(crate) fn of(b: &[u8]) -> Self {
        rtc_bytes { data: data_ptr(b), len: b.len() }
    }
}

/// Returns a pointer to `b`'s bytes, valid and non-NULL even when `b` is empty.
pub(crate) fn data_ptr(b: &[u8]) -> *const u8 {
    if b.is_empty() { &EMPTY } else { b.as_ptr() }
}

/// What a body returns: a code (`RTC_RESULT_OK` or `RTC_RESULT_MISS`) or a failure.
pub(crate) type Outcome = Result<rtc_result, Failure>;

/// Runs `body`, turning a failure into its code (and this thread's last
/// error message) and a panic into `RTC_RESULT_PANIC`.
pub(crate) fn guard(body: impl FnOnce() -> Outcome) -> rtc_result {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(code)) => code,
        Ok(Err(failure)) => {
            set_last_error(&failure.message);
            failure.code
        }
        Err(payload) => {
            set_last_error(&format!("rtc panicked (a bug in rtc, please report it): {}", panic_message(&payload)));
            RTC_RESULT_PANIC
        }
    }
}

/// Runs `body` for a function that returns no code: a panic returns `fallback`.
pub(crate) fn guard_or<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|payload| {
        set_last_error(&format!("rtc panicked (a bug in rtc, please report it): {}", panic_message(&payload)));
        fallback
    })
}

fn panic_message(payload: &Box<dyn std::any::Any + Send>) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// Borrows the object behind a handle.
///
/// # Safety
/// `ptr` is NULL or points to a live `T` for `'a`.
pub(crate) unsafe fn handle<'a, T>(ptr: *const T, what: &str) -> Result<&'a T, Failure> {
    // SAFETY: the caller promises a NULL or live pointer.
    unsafe { ptr.as_ref() }.ok_or_else(|| Failure::null(what))
}

/// Borrows the object behind a handle, mutably.
///
/// # Safety
/// `ptr` is NULL or points to a live `T` for `'a`, not used elsewhere meanwhile.
pub(crate) unsafe fn handle_mut<'a, T>(ptr: *mut T, what: &str) -> Result<&'a mut T, Failure> {
    // SAFETY: the caller promises a NULL or live, unaliased pointer.
    unsafe { ptr.as_mut() }.ok_or_else(|| Failure::null(what))
}

/// An out-parameter checked for NULL; written only on success, with [`Out::put`].
pub(crate) struct Out<T>(std::ptr::NonNull<T>);

impl<T> Out<T> {
    /// Writes the result; the previous contents (possibly uninitialised) are not read.
    pub(crate) fn put(self, value: T) {
        // SAFETY: checked non-NULL by `out`, whose caller promised a writable pointer.
        unsafe { self.0.as_ptr().write(value) }
    }
}

/// Checks an out-parameter for NULL.
///
/// # Safety
/// `ptr` is NULL or valid for writes until the [`Out`] is used.
pub(crate) unsafe fn out<T>(ptr: *mut T, what: &str) -> Result<Out<T>, Failure> {
    std::ptr::NonNull::new(ptr).map(Out).ok_or_else(|| Failure::null(what))
}

/// Borrows `len` bytes at `ptr`. NULL is accepted only with `len == 0`.
///
/// # Safety
/// `ptr` is NULL or points to `len` readable bytes that live for `'a`.
pub(crate) unsafe fn bytes<'a>(ptr: *const u8, len: usize, what: impl std::fmt::Display) -> Result<&'a [u8], Failure> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Failure::new(RTC_RESULT_NULL_PARAMETER, format!("{what} is NULL with a length of {len}")));
    }
    if len > isize::MAX as usize {
        return Err(Failure::new(RTC_RESULT_INVALID_ARGUMENT, format!("{what} has an impossible length ({len})")));
    }
    // SAFETY: non-NULL, length checked against isize::MAX, and the caller
    // promises `len` readable bytes.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Borrows `len` bytes at `ptr` as UTF-8 text.
///
/// # Safety
/// As [`bytes`].
pub(crate) unsafe fn text<'a>(ptr: *const u8, len: usize, what: impl std::fmt::Display) -> Result<&'a str, Failure> {
    // SAFETY: forwarded.
    let b = unsafe { bytes(ptr, len, &what) }?;
    std::str::from_utf8(b).map_err(|e| Failure::new(RTC_RESULT_INVALID_UTF8, format!("{what} is not valid UTF-8: {e}")))
}

/// Borrows a NUL-terminated string as UTF-8 text.
///
/// # Safety
/// `ptr` is NULL or a NUL-terminated string that lives for `'a`.
pub(crate) unsafe fn c_text<'a>(ptr: *const c_char, what: &str) -> Result<&'a str, Failure> {
    if ptr.is_null() {
        return Err(Failure::null(what));
    }
    // SAFETY: non-NULL, and the caller promises a NUL-terminated string.
    let s = unsafe { CStr::from_ptr(ptr) };
    s.to_str().map_err(|e| Failure::new(RTC_RESULT_INVALID_UTF8, format!("{what} is not valid UTF-8: {e}")))
}

/// Like [`c_text`], but NULL reads as `None`.
///
/// # Safety
/// As [`c_text`].
pub(crate) unsafe fn c_text_opt<'a>(ptr: *const c_char, what: &str) -> Result<Option<&'a str>, Failure> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: forwarded.
    unsafe { c_text(ptr, what) }.map(Some)
}

/// Borrows a list of `len` tags at `ptr`. NULL is accepted only with `len == 0`.
///
/// # Safety
/// `ptr` is NULL or points to `len` `rtc_bytes`, each valid as for [`bytes`].
pub(crate) unsafe fn tags<'a>(ptr: *const rtc_bytes, len: usize) -> Result<Vec<&'a str>, Failure> {
    if len == 0 {
        return Ok(Vec::new());
    }
    if ptr.is_null() {
        return Err(Failure::new(RTC_RESULT_NULL_PARAMETER, format!("tags is NULL with a length of {len}")));
    }
    if len > isize::MAX as usize / size_of::<rtc_bytes>() {
        return Err(Failure::new(RTC_RESULT_INVALID_ARGUMENT, format!("tags has an impossible length ({len})")));
    }
    // SAFETY: non-NULL, bounded length, and the caller promises `len` entries.
    let list = unsafe { std::slice::from_raw_parts(ptr, len) };
    list.iter()
        .enumerate()
        // SAFETY: the caller promises each entry is a valid buffer.
        .map(|(i, t)| unsafe { text(t.data, t.len, format_args!("tag {i}")) })
        .collect()
}

/// Moves `value` to the heap and returns the handle C keeps.
pub(crate) fn into_handle<T>(value: T) -> *mut T {
    Box::into_raw(Box::new(value))
}

/// Frees a handle made by [`into_handle`]; NULL is a no-op.
///
/// # Safety
/// `ptr` is NULL or came from [`into_handle`] and is not used again.
pub(crate) unsafe fn free_handle<T>(ptr: *mut T) {
    if !ptr.is_null() {
        // SAFETY: the caller promises the pointer came from `Box::into_raw`.
        drop(unsafe { Box::from_raw(ptr) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Failure;

    #[test]
    fn a_panic_becomes_a_code_and_a_message() {
        let code = guard(|| panic!("boom"));
        assert_eq!(code, RTC_RESULT_PANIC);
        // SAFETY: rtc_last_error_message returns a NUL-terminated string.
        let msg = unsafe { CStr::from_ptr(crate::error::rtc_last_error_message()) };
        assert!(msg.to_str().is_ok_and(|m| m.contains("boom")), "{msg:?}");
        assert!(guard_or(std::ptr::null::<u8>(), || panic!("x")).is_null());
    }

    fn code<T>(r: Result<T, Failure>) -> Option<rtc_result> {
        r.err().map(|f| f.code)
    }

    #[test]
    fn buffers_are_checked() {
        // SAFETY: only NULL or valid pointers are passed.
        unsafe {
            assert!(bytes(std::ptr::null(), 0, "v").is_ok_and(<[u8]>::is_empty));
            assert_eq!(code(bytes(std::ptr::null(), 3, "v")), Some(RTC_RESULT_NULL_PARAMETER));
            let b = [0xffu8, 0xfe];
            assert_eq!(code(text(b.as_ptr(), 2, "key")), Some(RTC_RESULT_INVALID_UTF8));
            assert_eq!(code(bytes(b.as_ptr(), usize::MAX, "v")), Some(RTC_RESULT_INVALID_ARGUMENT));
            assert_eq!(code(c_text(std::ptr::null(), "host")), Some(RTC_RESULT_NULL_PARAMETER));
            assert_eq!(c_text_opt(std::ptr::null(), "url").ok(), Some(None));
        }
    }
}
