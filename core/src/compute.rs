//! Get-or-compute (the reference's `decorator`): read, or compute once and store.

use std::any::Any;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cache::Cache;
use crate::codec::{Cbor, Codec};
use crate::config::Lifetime;
use crate::error::Result;
use crate::hash::short_hash;
use crate::info::FunctionId;
use crate::tags::Tags;

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
    hook_userdata: Option<Arc<dyn Any + Send + Sync>>,
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

impl<C: Codec> Cache<C> {
    /// Returns the cached value for `options`, or computes it with `compute`,
    /// stores it, and returns it. A backend failure never fails the call: the
    /// value is computed, and the error is reported to the hook.
    ///
    /// ```
    /// use rtc_core::{Cache, ComputeOptions};
    /// let cache = Cache::builder().in_local_memory(true).build().unwrap();
    /// let opts = ComputeOptions::key("answer").tags(["math"]).lock(true);
    /// assert_eq!(cache.get_or_compute(&opts, || 42u32), 42);
    /// assert_eq!(cache.get_or_compute(&opts, || -> u32 { unreachable!("cached") }), 42);
    /// ```
    pub fn get_or_compute<T, F>(&self, options: &ComputeOptions, compute: F) -> T
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> T,
    {
        let result: Result<T, Infallible> = self.try_get_or_compute(options, || Ok(compute()));
        match result {
            Ok(value) => value,
        }
    }

    /// Like [`Cache::get_or_compute`] for a fallible computation: an `Err`
    /// from `compute` is returned as is, nothing is stored, and the lock is
    /// released at once so a waiter can try. (A `compute` that panics
    /// leaves the lock to expire after the lock timeout.)
    pub fn try_get_or_compute<T, E, F>(&self, options: &ComputeOptions, compute: F) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Result<T, E>,
    {
        self.get_or_compute_with(&self.codec, options, compute)
    }

    /// Like [`Cache::try_get_or_compute`] with a codec for this call only.
    pub fn get_or_compute_with<D, T, E, F>(&self, codec: &D, options: &ComputeOptions, compute: F) -> Result<T, E>
    where
        D: Codec,
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Result<T, E>,
    {
        self.run(options, |bytes| codec.decode(bytes), compute, |value| codec.encode(value))
    }

    /// Get-or-compute on raw bytes, with no codec (the C library's form).
    pub fn get_or_compute_bytes<E, F>(&self, options: &ComputeOptions, compute: F) -> Result<Vec<u8>, E>
    where
        F: FnOnce() -> Result<Vec<u8>, E>,
    {
        self.run(options, |bytes| Ok(bytes.to_vec()), compute, |value| Ok(value.clone()))
    }

    /// How many get-or-compute calls with the lock wait, now, for another
    /// caller of this cache in this process that computes the same key
    /// (single-flight followers). For monitoring and tests.
    pub fn single_flight_waiters(&self) -> usize {
        self.inner.flights.waiters()
    }

    /// Get-or-compute on [`Cache::get_or_lock`] and [`Cache::set_and_unlock`],
    /// which do the accounting and call the hook; the control flow is
    /// [`crate::two_step::get_or_compute`], shared with the wasmtime host.
    fn run<T, E>(
        &self,
        options: &ComputeOptions,
        decode: impl Fn(&[u8]) -> Result<T>,
        compute: impl FnOnce() -> Result<T, E>,
        encode: impl Fn(&T) -> Result<Vec<u8>>,
    ) -> Result<T, E> {
        crate::two_step::get_or_compute(self, options, decode, compute, encode)
    }

    /// Returns a cached version of `function`: calling it with arguments
    /// returns the cached result for those arguments, or computes it.
    ///
    /// ```
    /// use rtc_core::{Cache, function_id};
    /// let cache = Cache::builder().in_local_memory(true).build().unwrap();
    /// let square = cache
    ///     .decorate(function_id!("square"), |n: &u64| n * n)
    ///     .tags_fn(|n: &u64| vec![format!("n:{n}")])
    ///     .lock(true);
    /// assert_eq!(square.call(&7), 49);
    /// assert_eq!(square.call(&7), 49); // a hit
    /// ```
    pub fn decorate<A, T, F>(&self, function: FunctionId, f: F) -> Decorated<A, T, F, C>
    where
        C: Clone,
        A: Serialize,
        T: Serialize + DeserializeOwned,
        F: Fn(&A) -> T,
    {
        Decorated {
            cache: self.clone(),
            function,
            f,
            tags: TagSource::Static(Vec::new()),
            lifetime: Lifetime::Default,
            lock: false,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            hook_userdata: None,
            _types: std::marker::PhantomData,
        }
    }
}

type TagsFn<A> = Arc<dyn Fn(&A) -> Vec<String> + Send + Sync>;

enum TagSource<A> {
    Static(Vec<String>),
    Computed(TagsFn<A>),
}

/// A function whose results are cached, made by [`Cache::decorate`].
pub struct Decorated<A, T, F, C = Cbor> {
    cache: Cache<C>,
    function: FunctionId,
    f: F,
    tags: TagSource<A>,
    lifetime: Lifetime,
    lock: bool,
    lock_timeout: Duration,
    hook_userdata: Option<Arc<dyn Any + Send + Sync>>,
    _types: std::marker::PhantomData<fn(&A) -> T>,
}

impl<A, T, F, C> Decorated<A, T, F, C>
where
    C: Codec,
    A: Serialize,
    T: Serialize + DeserializeOwned,
    F: Fn(&A) -> T,
{
    /// Sets static tags.
    pub fn tags(mut self, tags: impl Tags) -> Self {
        self.tags = TagSource::Static(tags.tag_names().into_iter().map(str::to_owned).collect());
        self
    }

    /// Computes the tags from each call's arguments.
    pub fn tags_fn(mut self, tags: impl Fn(&A) -> Vec<String> + Send + Sync + 'static) -> Self {
        self.tags = TagSource::Computed(Arc::new(tags));
        self
    }

    /// Sets the entry lifetime.
    pub fn lifetime(mut self, lifetime: Lifetime) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// Turns the stampede lock on.
    pub fn lock(mut self, lock: bool) -> Self {
        self.lock = lock;
        self
    }

    /// Sets the lock timeout.
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// Sets data handed to the hook.
    pub fn hook_userdata(mut self, userdata: Arc<dyn Any + Send + Sync>) -> Self {
        self.hook_userdata = Some(userdata);
        self
    }

    /// Returns the cached result for `args`, or computes, stores and returns it.
    /// Arguments that cannot be encoded bypass the cache (logged).
    pub fn call(&self, args: &A) -> T {
        let options = match ComputeOptions::call(self.function.clone(), args) {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, "arguments do not encode; cache bypassed");
                return (self.f)(args);
            }
        };
        let tags = match &self.tags {
            TagSource::Static(t) => t.clone(),
            TagSource::Computed(f) => f(args),
        };
        let mut options = options.tags(tags).lifetime(self.lifetime).lock(self.lock).lock_timeout(self.lock_timeout);
        options.hook_userdata.clone_from(&self.hook_userdata);
        self.cache.get_or_compute(&options, || (self.f)(args))
    }
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
