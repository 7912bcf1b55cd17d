//! The hook: a C callback receiving every `CacheInfo` field after each
//! get-or-compute.

use std::ffi::{CString, c_char, c_void};

use rtc_core::HookEvent;

use crate::boundary::{handle, rtc_bytes};
use crate::error::{RTC_RESULT_NULL_PARAMETER, RTC_RESULT_OK, code_of, rtc_result};

/// What a hook learns about one get-or-compute: every field of core's
/// CacheInfo, plus the call's key, tags and userdata. Opaque: read it with the
/// rtc_cache_info_* functions, so fields can be added without breaking
/// compiled hooks or foreign-language bindings.
///
/// Owned by rtc and valid only during the hook call, as is everything its
/// accessors return: copy what you keep. Text is UTF-8. The `data` of an
/// empty `rtc_bytes` is a valid pointer to no bytes.
#[allow(non_camel_case_types)]
pub struct rtc_cache_info {
    key: rtc_bytes,
    tags: Vec<rtc_bytes>,
    function_module: CString,
    function_type: CString,
    function_name: CString,
    arguments: rtc_bytes,
    method: bool,
    hit: bool,
    stale: bool,
    elapsed_ns: u64,
    decorated_elapsed_ns: u64,
    lock_waiting_ms: u64,
    lock_full_hit: bool,
    lock_full_miss: bool,
    serialized_size: usize,
    error: rtc_result,
    error_message: Option<CString>,
    call_userdata: usize,
}

/// A hook: called with the userdata given to rtc_cache_builder_set_hook and
/// the call's measurements. It may run on many threads at once.
#[allow(non_camel_case_types)]
pub type rtc_hook_callback = Option<unsafe extern "C" fn(userdata: *mut c_void, info: *const rtc_cache_info)>;

/// The non-NULL hook function.
pub(crate) type HookFn = unsafe extern "C" fn(userdata: *mut c_void, info: *const rtc_cache_info);

/// The per-call userdata, as carried by `ComputeOptions::hook_userdata`.
pub(crate) struct CallUserdata(pub(crate) usize);

fn c_string(s: &str) -> CString {
    CString::new(s.replace('\0', "\\0")).unwrap_or_default()
}

/// Converts `event` and calls the C hook.
///
/// # Safety
/// `f` is a valid hook, and `userdata` whatever its owner promised.
pub(crate) unsafe fn call_hook(f: HookFn, userdata: *mut c_void, event: &HookEvent<'_>) {
    let c_info = info_of(event.key.as_bytes(), event.tags.iter().map(|t| t.as_bytes()).collect(), event);
    // SAFETY: the hook's owner promised a valid function; `c_info` and all it
    // points to live until it returns.
    unsafe { f(userdata, &c_info) }
}

/// The C view of `event`, its key, tags and arguments borrowed from `key`,
/// `tags` and the event's info.
fn info_of(key: &[u8], tags: Vec<&[u8]>, event: &HookEvent<'_>) -> rtc_cache_info {
    let info = event.info;
    rtc_cache_info {
        key: rtc_bytes::of(key),
        tags: tags.into_iter().map(rtc_bytes::of).collect(),
        function_module: c_string(&info.function.module),
        function_type: c_string(&info.function.type_name),
        function_name: c_string(&info.function.function),
        arguments: rtc_bytes::of(&info.arguments),
        method: info.method,
        hit: info.hit,
        stale: info.stale,
        elapsed_ns: u64::try_from(info.elapsed.as_nanos()).unwrap_or(u64::MAX),
        decorated_elapsed_ns: u64::try_from(info.decorated_elapsed.as_nanos()).unwrap_or(u64::MAX),
        lock_waiting_ms: info.lock_waiting_ms,
        lock_full_hit: info.lock_full_hit,
        lock_full_miss: info.lock_full_miss,
        serialized_size: info.serialized_size,
        error: info.error.as_ref().map_or(RTC_RESULT_OK, |e| code_of(e.kind())),
        error_message: info.error.as_ref().map(|e| c_string(&e.to_string())),
        call_userdata: event.userdata.and_then(|u| u.downcast_ref::<CallUserdata>()).map_or(0, |u| u.0),
    }
}

/// A hook call kept for later: the non-blocking API runs hooks on the
/// program's thread (in rtc_async_take), not on the library thread where
/// the operation reports.
pub(crate) struct DeferredHook {
    /// Points into the buffers below (a `Vec`'s heap buffer does not move
    /// when the `Vec` does).
    info: rtc_cache_info,
    _key: Vec<u8>,
    _tags: Vec<Vec<u8>>,
    _arguments: Vec<u8>,
}

// SAFETY: `info`'s pointers point into the buffers this value owns, which
// nothing else can reach, so the whole moves between threads as one.
unsafe impl Send for DeferredHook {}

impl DeferredHook {
    /// Copies what `event` says.
    pub(crate) fn capture(event: &HookEvent<'_>) -> Self {
        let key = event.key.as_bytes().to_vec();
        let tags: Vec<Vec<u8>> = event.tags.iter().map(|t| t.as_bytes().to_vec()).collect();
        let arguments = event.info.arguments.to_vec();
        let mut info = info_of(&key, tags.iter().map(Vec::as_slice).collect(), event);
        info.arguments = rtc_bytes::of(&arguments);
        DeferredHook { info, _key: key, _tags: tags, _arguments: arguments }
    }

    /// Calls the hook with it.
    ///
    /// # Safety
    /// `f` is a valid hook, and `userdata` whatever its owner promised.
    pub(crate) unsafe fn call(&self, f: HookFn, userdata: *mut c_void) {
        // SAFETY: as promised by the caller; `self.info` lives until it returns.
        unsafe { f(userdata, &self.info) }
    }
}

/// Reads one field of a hook's info; NULL gives `default`.
fn field<T>(info: *const rtc_cache_info, default: T, read: impl FnOnce(&rtc_cache_info) -> T) -> T {
    guard_or_default(default, || {
        // SAFETY: the caller passes NULL or the info its hook received, during the hook call.
        unsafe { handle(info, "info") }.map(read)
    })
}

fn guard_or_default<T>(default: T, body: impl FnOnce() -> Result<T, crate::error::Failure>) -> T {
    // A NULL info is the caller's mistake, answered with the default (as rtc_ticket_holds_lock does).
    crate::boundary::guard_or(None, || body().ok()).unwrap_or(default)
}

/// The cache key (given, or derived from the function and its arguments);
/// empty if `info` is NULL.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_info_key(info: *const rtc_cache_info) -> rtc_bytes {
    field(info, rtc_bytes::of(&[]), |i| i.key)
}

/// The number of the entry's tags (a tag given twice counts twice).
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_info_tags_len(info: *const rtc_cache_info) -> usize {
    field(info, 0, |i| i.tags.len())
}

/// The cached function's module (NUL-terminated; "" for a fixed key or a NULL `info`).
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_info_function_module(info: *const rtc_cache_info) -> *const c_char {
    field(info, c"".as_ptr(), |i| i.function_module.as_ptr())
}

/// The cached function's type, for a method (NUL-terminated; "" otherwise).
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_info_function_type(info: *const rtc_cache_info) -> *const c_char {
    field(info, c"".as_ptr(), |i| i.function_type.as_ptr())
}

/// The cached function's name (NUL-terminated; "" for a fixed key).
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_info_function_name(info: *const rtc_cache_info) -> *const c_char {
    field(info, c"".as_ptr(), |i| i.function_name.as_ptr())
}

/// The call's arguments as CBOR (the bytes its key was derived from;
/// empty for a fixed key).
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_info_arguments(info: *const rtc_cache_info) -> rtc_bytes {
    field(info, rtc_bytes::of(&[]), |i| i.arguments)
}

/// True when the cached function is a method.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_info_method(info: *const rtc_cache_info) -> bool {
    field(info, false, |i| i.method)
}

/// True when the value came from the cache.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_info_hit(info: *const rtc_cache_info) -> bool {
    field(info, false, |i| i.hit)
}

/// True when the value returned is a fail-safe value (the builder's
/// rtc_cache_builder_set_fail_safe): the last one this process confirmed
/// current, returned because Redis or the computation failed; the error
/// says which. Such a call is also a hit.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_info_stale(info: *const rtc_cache_info) -> bool {
    field(info, false, |i| i.stale)
}

/// The whole call in nanoseconds, computation included, hook excluded.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_info_elapsed_ns(info: *const rtc_cache_info) -> u64 {
    field(info, 0, |i| i.elapsed_ns)
}

/// Time spent computing the value in nanoseconds (0 on a hit).
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_info_decorated_elapsed_ns(info: *const rtc_cache_info) -> u64 {
    field(info, 0, |i| i.decorated_elapsed_ns)
}

/// Time spent waiting for another caller's lock, in milliseconds.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_info_lock_waiting_ms(info: *const rtc_cache_info) -> u64 {
    field(info, 0, |i| i.lock_waiting_ms)
}

/// With the lock: the value was there at the first read, no lock involved.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_info_lock_full_hit(info: *const rtc_cache_info) -> bool {
    field(info, false, |i| i.lock_full_hit)
}

/// With the lock: no value even after locking, so this caller computed it.
/// Neither flag set means another caller computed it while this one waited.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_info_lock_full_miss(info: *const rtc_cache_info) -> bool {
    field(info, false, |i| i.lock_full_miss)
}

/// Size of the value's bytes as stored (0 if nothing was read or written).
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_info_serialized_size(info: *const rtc_cache_info) -> usize {
    field(info, 0, |i| i.serialized_size)
}

/// RTC_RESULT_OK, or the error (e.g. RTC_RESULT_BACKEND_UNAVAILABLE) that
/// made this call bypass the cache: the value was computed and returned
/// but not cached. RTC_RESULT_NULL_PARAMETER for a NULL `info`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_info_error(info: *const rtc_cache_info) -> rtc_result {
    field(info, RTC_RESULT_NULL_PARAMETER, |i| i.error)
}

/// The error's message (NUL-terminated), or NULL when there is no error.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_info_error_message(info: *const rtc_cache_info) -> *const c_char {
    field(info, std::ptr::null(), |i| i.error_message.as_ref().map_or(std::ptr::null(), |m| m.as_ptr()))
}

/// The call's rtc_compute_options_set_hook_userdata pointer, or NULL.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_info_call_userdata(info: *const rtc_cache_info) -> *mut c_void {
    field(info, std::ptr::null_mut(), |i| i.call_userdata as *mut c_void)
}

/// The entry's tag at `index` (0 to rtc_cache_info_tags_len - 1); empty
/// bytes if `index` is out of range or `info` is NULL.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_info_tag(info: *const rtc_cache_info, index: usize) -> rtc_bytes {
    field(info, rtc_bytes::of(&[]), |i| i.tags.get(index).copied().unwrap_or(rtc_bytes::of(&[])))
}
