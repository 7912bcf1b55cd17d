//! Per-call options of get-or-compute: plain data, shared by every API and adapter.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::config::Lifetime;
use crate::error::Result;
use crate::model::codec::{Cbor, Codec};
use crate::model::hash::short_hash;
use crate::model::info::FunctionId;
use crate::model::tags::Tags;

/// The reference's default `lock_timeout`.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(5);

/// Per-call options of get-or-compute.
///
/// ```
/// use rtc_core::{ComputeOptions, function_id};
/// // A fixed key:
/// let a = ComputeOptions::key("report:daily").tags(["reports"]).lock(true);
/// // A key derived from the function and its arguments:
/// let b = ComputeOptions::call(function_id!("load_user"), &(42u64,)).unwrap();
/// assert_ne!(a.cache_key(), b.cache_key());
/// ```
#[derive(Clone)]
pub struct ComputeOptions {
    key: String,
    tags: Vec<String>,
    function: FunctionId,
    arguments: Vec<u8>,
    method: bool,
    lifetime: Lifetime,
    lock: bool,
    lock_timeout: Duration,
    pub(crate) hook_userdata: Option<Arc<dyn Any + Send + Sync>>,
}

impl ComputeOptions {
    fn with_key(key: String) -> Self {
        ComputeOptions {
            key,
            tags: Vec::new(),
            function: FunctionId::default(),
            arguments: Vec::new(),
            method: false,
            lifetime: Lifetime::Default,
            lock: false,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            hook_userdata: None,
        }
    }

    /// Options for a value cached under a fixed `key`.
    pub fn key(key: impl Into<String>) -> Self {
        Self::with_key(key.into())
    }

    /// Options for a call of `function` with `arguments`: the key is
    /// `short_hash` of the CBOR encoding of `[module, type, function]` and
    /// the arguments, so it never depends on a file path.
    ///
    /// Arguments must encode deterministically (a `HashMap` does not: use a
    /// `BTreeMap`). Fails with [`crate::ErrorKind::Codec`] if they do not encode.
    pub fn call<A: Serialize + ?Sized>(function: FunctionId, arguments: &A) -> Result<Self> {
        let arguments = Cbor.encode(arguments)?;
        let identity = (&function.module, &function.type_name, &function.function);
        let key = short_hash(&Cbor.encode(&(identity, serde_bytes_ref(&arguments)))?);
        let method = !function.type_name.is_empty();
        Ok(ComputeOptions { function, arguments, method, ..Self::with_key(key) })
    }

    /// Sets the tags (static, or computed by the caller from the arguments).
    pub fn tags(mut self, tags: impl Tags) -> Self {
        self.tags = tags.tag_names().into_iter().map(str::to_owned).collect();
        self
    }

    /// Sets the entry lifetime.
    pub fn lifetime(mut self, lifetime: Lifetime) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// Turns the stampede lock on: only one caller computes, the others wait
    /// (up to `lock_timeout`) and reuse its value.
    pub fn lock(mut self, lock: bool) -> Self {
        self.lock = lock;
        self
    }

    /// Sets how long the lock is held at most, and how long waiters wait.
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// Marks the cached function as a method (set automatically when the
    /// function identity has a type name).
    pub fn method(mut self, method: bool) -> Self {
        self.method = method;
        self
    }

    /// Sets the function identity and the (CBOR) arguments reported to the
    /// hook, keeping the key and the method flag: for adapters relaying a
    /// call keyed elsewhere (the component's `get-or-lock`).
    /// [`ComputeOptions::call`] sets them from the call itself.
    ///
    /// ```
    /// use rtc_core::{ComputeOptions, FunctionId};
    /// let o = ComputeOptions::key("k").identity(FunctionId::new("m", "", "f"), vec![0x80]);
    /// assert_eq!((o.cache_key(), o.function_id().function.as_str(), o.arguments()), ("k", "f", &[0x80][..]));
    /// ```
    pub fn identity(mut self, function: FunctionId, arguments: Vec<u8>) -> Self {
        self.function = function;
        self.arguments = arguments;
        self
    }

    /// Sets data handed to the hook with this call's [`CacheInfo`](crate::CacheInfo).
    pub fn hook_userdata(mut self, userdata: Arc<dyn Any + Send + Sync>) -> Self {
        self.hook_userdata = Some(userdata);
        self
    }

    /// Returns the cache key: the fixed key, or the one derived from the call.
    pub fn cache_key(&self) -> &str {
        &self.key
    }
}

/// Encodes already-encoded bytes as a CBOR byte string rather than an array of integers.
fn serde_bytes_ref(bytes: &[u8]) -> ciborium::Value {
    ciborium::Value::Bytes(bytes.to_vec())
}

/// Read access to the options, for adapters that pass them on (the wasmtime
/// host sends them to the component's `get-or-lock`).
impl ComputeOptions {
    /// Returns the tags.
    pub fn tag_list(&self) -> &[String] {
        &self.tags
    }

    /// Returns the entry lifetime.
    pub fn entry_lifetime(&self) -> Lifetime {
        self.lifetime
    }

    /// Returns the lock timeout when the stampede lock is on, `None` when it is off.
    ///
    /// ```
    /// use std::time::Duration;
    /// let o = rtc_core::ComputeOptions::key("k").lock(true).lock_timeout(Duration::from_secs(2));
    /// assert_eq!(o.lock_wait(), Some(Duration::from_secs(2)));
    /// assert_eq!(rtc_core::ComputeOptions::key("k").lock_wait(), None);
    /// ```
    pub fn lock_wait(&self) -> Option<Duration> {
        self.lock.then_some(self.lock_timeout)
    }

    /// Returns the cached function's identity (empty for a fixed key).
    pub fn function_id(&self) -> &FunctionId {
        &self.function
    }

    /// Returns the call's CBOR-encoded arguments (empty for a fixed key).
    pub fn arguments(&self) -> &[u8] {
        &self.arguments
    }

    /// Returns whether the cached function is a method.
    pub fn is_method(&self) -> bool {
        self.method
    }

    /// Returns the data handed to the hook with this call's [`CacheInfo`](crate::CacheInfo).
    pub fn userdata(&self) -> Option<&Arc<dyn Any + Send + Sync>> {
        self.hook_userdata.as_ref()
    }
}
