//! The hook: a C callback receiving every `CacheInfo` field after each
//! get-or-compute.

use std::ffi::{CString, c_char, c_void};

use rtc_core::HookEvent;

use crate::boundary::rtc_bytes;
use crate::error::rtc_result;

/// What a hook learns about one rtc_cache_get_or_compute: every field of the
/// core's CacheInfo, plus the call's key, tags and userdata.
///
/// Every pointer in it is owned by rtc and valid only during the hook call:
/// copy what you keep. Text is UTF-8. The `data` of an empty `rtc_bytes`
/// is a valid pointer to no bytes.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug)]
pub struct rtc_cache_info {
    /// The cache key (given, or derived from the function and its arguments).
    pub key: rtc_bytes,
    /// The entry's tags: `tags_len` buffers (NULL when there are none).
    pub tags: *const rtc_bytes,
    /// The number of tags.
    pub tags_len: usize,
    /// The cached function's module (NUL-terminated, "" for a fixed key).
    pub function_module: *const c_char,
    /// The cached function's type, for a method (NUL-terminated, "" otherwise).
    pub function_type: *const c_char,
    /// The cached function's name (NUL-terminated, "" for a fixed key).
    pub function_name: *const c_char,
    /// The call's arguments as CBOR (the bytes its key was derived from;
    /// empty for a fixed key).
    pub arguments: rtc_bytes,
    /// True when the cached function is a method.
    pub method: bool,
    /// True when the value came from the cache.
    pub hit: bool,
    /// The whole call in nanoseconds, computation included, hook excluded.
    pub elapsed_ns: u64,
    /// Time spent computing the value in nanoseconds (0 on a hit).
    pub decorated_elapsed_ns: u64,
    /// Time spent waiting for another caller's lock, in milliseconds.
    pub lock_waiting_ms: u64,
    /// With the lock: the value was there at the first read, no lock involved.
    pub lock_full_hit: bool,
    /// With the lock: no value even after locking, so this caller computed it.
    /// Neither flag set means another caller computed it while this one waited.
    pub lock_full_miss: bool,
    /// Size of the value's bytes as stored (0 if nothing was read or written).
    pub serialized_size: usize,
    /// RTC_RESULT_OK, or the error (e.g. RTC_RESULT_BACKEND_UNAVAILABLE) that
    /// made this call bypass the cache: the value was computed and returned
    /// but not cached.
    pub error: rtc_result,
    /// The error's message (NUL-terminated), or NULL when `error` is RTC_RESULT_OK.
    pub error_message: *const c_char,
    /// The call's rtc_compute_options_set_hook_userdata pointer, or NULL.
    pub call_userdata: *mut c_void,
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
    let info = event.info;
    let tags: Vec<rtc_bytes> = event.tags.iter().map(|t| rtc_bytes::of(t.as_bytes())).collect();
    let module = c_string(&info.function.module);
    let type_name = c_string(&info.function.type_name);
    let function = c_string(&info.function.function);
    let error_message = info.error.as_ref().map(|e| c_string(&e.to_string()));
    let call_userdata = event.userdata.and_then(|u| u.downcast_ref::<CallUserdata>()).map_or(0, |u| u.0);
    let c_info = rtc_cache_info {
        key: rtc_bytes::of(event.key.as_bytes()),
        tags: if tags.is_empty() { std::ptr::null() } else { tags.as_ptr() },
        tags_len: tags.len(),
        function_module: module.as_ptr(),
        function_type: type_name.as_ptr(),
        function_name: function.as_ptr(),
        arguments: rtc_bytes::of(&info.arguments),
        method: info.method,
        hit: info.hit,
        elapsed_ns: u64::try_from(info.elapsed.as_nanos()).unwrap_or(u64::MAX),
        decorated_elapsed_ns: u64::try_from(info.decorated_elapsed.as_nanos()).unwrap_or(u64::MAX),
        lock_waiting_ms: info.lock_waiting_ms,
        lock_full_hit: info.lock_full_hit,
        lock_full_miss: info.lock_full_miss,
        serialized_size: info.serialized_size,
        error: info.error.as_ref().map_or(rtc_result::Ok, |e| rtc_result::from_kind(e.kind())),
        error_message: error_message.as_ref().map_or(std::ptr::null(), |m| m.as_ptr()),
        call_userdata: call_userdata as *mut c_void,
    };
    // SAFETY: the hook's owner promised a valid function; `c_info` and all it
    // points to live until it returns.
    unsafe { f(userdata, &c_info) }
}
