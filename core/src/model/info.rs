//! What a hook learns about each get-or-compute: [`CacheInfo`].

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;

/// Identifies a cached function without any absolute file path, so that two
/// builds or two machines derive the same keys.
///
/// ```
/// let id = rtc_core::function_id!("load_user");
/// assert_eq!(id.function, "load_user");
/// assert!(id.module.ends_with("rust_out") || !id.module.starts_with('/'));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize)]
pub struct FunctionId {
    /// Module path (Rust `module_path!()`), or a name the caller chooses.
    pub module: String,
    /// Type name for a method, empty for a free function.
    pub type_name: String,
    /// Function name.
    pub function: String,
}

impl FunctionId {
    /// Creates an identity from its three parts.
    pub fn new(module: impl Into<String>, type_name: impl Into<String>, function: impl Into<String>) -> Self {
        FunctionId { module: module.into(), type_name: type_name.into(), function: function.into() }
    }
}

/// Returns the [`FunctionId`] of a free function in the calling module:
/// `function_id!("name")`, or of a method: `function_id!(Type, "name")`.
#[macro_export]
macro_rules! function_id {
    ($name:expr) => {
        $crate::FunctionId::new(module_path!(), "", $name)
    };
    ($ty:ty, $name:expr) => {
        $crate::FunctionId::new(module_path!(), stringify!($ty), $name)
    };
}

/// Everything the reference's `CacheInfo` holds, measured by rtc.
///
/// Non-exhaustive: fields may be added (a near-cache flag, say) without
/// breaking code that reads it; outside rtc, start from
/// `CacheInfo::default()` and set fields.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct CacheInfo {
    /// The cached function's identity (empty when the call gave a fixed key).
    pub function: FunctionId,
    /// The call's arguments as CBOR (the bytes its key was derived from).
    pub arguments: Vec<u8>,
    /// True when the cached function is a method.
    pub method: bool,
    /// True when the value came from the cache.
    pub hit: bool,
    /// Whole call, computation included, hooks excluded.
    pub elapsed: Duration,
    /// Time spent computing the value (zero on a hit).
    pub decorated_elapsed: Duration,
    /// Time spent waiting for another caller's lock, in milliseconds.
    pub lock_waiting_ms: u64,
    /// With `lock`: the value was there at the first read, no lock involved.
    pub lock_full_hit: bool,
    /// With `lock`: no value even after locking, so this caller computed it.
    /// (Neither flag set means another caller computed it while we waited.)
    pub lock_full_miss: bool,
    /// Size of the value's bytes as stored (zero if nothing was read or written).
    pub serialized_size: usize,
    /// The backend or codec error that made this call bypass the cache, if any.
    pub error: Option<Error>,
    /// The value returned is a fail-safe value (see
    /// [`crate::Config::fail_safe_max_duration`]): the last one this process
    /// confirmed current, returned because Redis or the computation failed
    /// (`error` says which). Such a call is also a `hit`.
    pub stale: bool,
}

/// What a hook receives after each get-or-compute.
#[derive(Debug)]
#[non_exhaustive]
pub struct HookEvent<'a> {
    /// The cache key (given, or derived from the function and its arguments).
    pub key: &'a str,
    /// The entry's tags.
    pub tags: &'a [String],
    /// Measurements of the call.
    pub info: &'a CacheInfo,
    /// The call's `hook_userdata`, if it gave one.
    pub userdata: Option<&'a (dyn Any + Send + Sync)>,
}

/// A hook: called after each get-or-compute. A panicking hook is caught and
/// logged; it never fails the call.
pub type Hook = Arc<dyn Fn(&HookEvent<'_>) + Send + Sync>;

impl<'a> HookEvent<'a> {
    /// Creates an event, for adapters that relay events reported elsewhere
    /// (the wasmtime host relays the component's `hooks.report`).
    #[doc(hidden)]
    ///
    /// ```
    /// use rtc_core::{CacheInfo, HookEvent};
    /// let mut info = CacheInfo::default();
    /// info.hit = true;
    /// let tags = vec!["t".to_string()];
    /// let event = HookEvent::new("k", &tags, &info, None);
    /// assert!(event.info.hit);
    /// ```
    pub fn new(
        key: &'a str,
        tags: &'a [String],
        info: &'a CacheInfo,
        userdata: Option<&'a (dyn Any + Send + Sync)>,
    ) -> Self {
        HookEvent { key, tags, info, userdata }
    }
}
