//! The cache handle, its builder, owned values, and the plain operations:
//! set, get, delete, invalidate, invalidate_all.

use std::ffi::{c_char, c_void};
use std::time::Duration;

use rtc_core::{Cache, Config, Lifetime};

use crate::boundary::{
    Out, bytes, c_text, c_text_opt, data_ptr, free_handle, guard, guard_or, handle, handle_mut, into_handle, out,
    rtc_bytes, tags, text,
};
use crate::error::{Failure, RTC_RESULT_INVALID_ARGUMENT, RTC_RESULT_MISS, RTC_RESULT_OK, rtc_result};
use crate::hook::{HookFn, call_hook};

/// A `lifetime` argument: use the cache's default lifetime
/// (rtc_cache_builder_set_default_lifetime).
pub const RTC_LIFETIME_DEFAULT: i64 = -1;

/// A `lifetime` argument: never expire. Any positive value is a number of seconds.
pub const RTC_LIFETIME_FOREVER: i64 = 0;

/// Converts a C lifetime argument.
pub(crate) fn lifetime(value: i64) -> Result<Lifetime, Failure> {
    match value {
        RTC_LIFETIME_DEFAULT => Ok(Lifetime::Default),
        RTC_LIFETIME_FOREVER => Ok(Lifetime::Forever),
        n if n > 0 => Ok(Lifetime::Seconds(n.unsigned_abs()).checked()?),
        n => Err(Failure::new(
            RTC_RESULT_INVALID_ARGUMENT,
            format!("lifetime {n} is invalid: use RTC_LIFETIME_DEFAULT, RTC_LIFETIME_FOREVER or a number of seconds"),
        )),
    }
}

/// The configuration a cache is built from: every field of the core's
/// `Config`, plus the hook. Made by rtc_cache_builder_new with the defaults of
/// the reference library (namespace "default", localhost:6379, db 0, no TLS,
/// 5 s timeouts, entries live 3600 s, tags 86400 s, values up to 512 MiB).
///
/// Not thread-safe: configure a builder from one thread at a time. A builder
/// can build any number of caches; free it with rtc_cache_builder_free.
#[allow(non_camel_case_types)]
pub struct rtc_cache_builder {
    pub(crate) config: Config,
    pub(crate) hook: Option<(HookFn, usize)>,
}

/// A cache: a connection pool to one Redis (or an in-process store) and one
/// namespace.
///
/// Thread-safe: all functions taking a `const rtc_cache *` may be called on
/// the same cache from many threads at once; share one cache per process
/// rather than one per thread. Only rtc_cache_free must not run concurrently
/// with other calls on the same cache.
#[allow(non_camel_case_types)]
pub struct rtc_cache {
    pub(crate) cache: Cache,
}

/// A value read from the cache, owned by the caller. Read it with
/// rtc_value_data and rtc_value_len; free it with rtc_value_free (never with
/// free()).
#[allow(non_camel_case_types)]
pub struct rtc_value {
    pub(crate) bytes: Vec<u8>,
}

/// Creates a builder holding the default configuration.
///
/// The caller owns the builder and frees it with rtc_cache_builder_free.
/// Returns NULL only if rtc failed internally.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_builder_new() -> *mut rtc_cache_builder {
    guard_or(std::ptr::null_mut(), || into_handle(rtc_cache_builder { config: Config::default(), hook: None }))
}

/// Frees a builder. NULL is a no-op. Caches built from it are not affected.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_builder_free(builder: *mut rtc_cache_builder) {
    // SAFETY: the caller passes NULL or a builder from rtc_cache_builder_new, once.
    guard_or((), || unsafe { free_handle(builder) })
}

/// Runs `set` on the builder behind `builder`.
fn with_builder(
    builder: *mut rtc_cache_builder,
    set: impl FnOnce(&mut rtc_cache_builder) -> Result<(), Failure>,
) -> rtc_result {
    guard(|| {
        // SAFETY: the caller passes NULL or a live builder, used by one thread.
        let b = unsafe { handle_mut(builder, "builder") }?;
        set(b)?;
        Ok(RTC_RESULT_OK)
    })
}

/// Sets the namespace (NUL-terminated UTF-8, default "default"): caches in
/// different namespaces never see each other's entries. The string is copied.
///
/// Errors: RTC_RESULT_NULL_PARAMETER, RTC_RESULT_INVALID_UTF8.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_builder_set_namespace(builder: *mut rtc_cache_builder, name: *const c_char) -> rtc_result {
    with_builder(builder, |b| {
        // SAFETY: the caller passes NULL or a NUL-terminated string.
        b.config.namespace = unsafe { c_text(name, "name") }?.to_owned();
        Ok(())
    })
}

/// Sets the Redis host name or address (NUL-terminated, default "localhost";
/// ignored when a URL is set). The string is copied.
///
/// Errors: RTC_RESULT_NULL_PARAMETER, RTC_RESULT_INVALID_UTF8.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_builder_set_host(builder: *mut rtc_cache_builder, host: *const c_char) -> rtc_result {
    with_builder(builder, |b| {
        // SAFETY: the caller passes NULL or a NUL-terminated string.
        b.config.host = unsafe { c_text(host, "host") }?.to_owned();
        Ok(())
    })
}

/// Sets the Redis port (default 6379; ignored when a URL is set).
///
/// Errors: RTC_RESULT_NULL_PARAMETER.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_builder_set_port(builder: *mut rtc_cache_builder, port: u16) -> rtc_result {
    with_builder(builder, |b| {
        b.config.port = port;
        Ok(())
    })
}

/// Sets the Redis database number (default 0; ignored when a URL is set).
///
/// Errors: RTC_RESULT_NULL_PARAMETER.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_builder_set_db(builder: *mut rtc_cache_builder, db: i64) -> rtc_result {
    with_builder(builder, |b| {
        b.config.db = db;
        Ok(())
    })
}

/// Connects with TLS when `ssl` is true (default false; ignored when a URL is
/// set: use a rediss:// URL instead).
///
/// Errors: RTC_RESULT_NULL_PARAMETER.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_builder_set_ssl(builder: *mut rtc_cache_builder, ssl: bool) -> rtc_result {
    with_builder(builder, |b| {
        b.config.ssl = ssl;
        Ok(())
    })
}

/// Sets the ACL user name (NUL-terminated; NULL for none, the default;
/// ignored when a URL is set). The string is copied.
///
/// Errors: RTC_RESULT_NULL_PARAMETER (builder), RTC_RESULT_INVALID_UTF8.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_builder_set_username(
    builder: *mut rtc_cache_builder,
    username: *const c_char,
) -> rtc_result {
    with_builder(builder, |b| {
        // SAFETY: the caller passes NULL or a NUL-terminated string.
        b.config.username = unsafe { c_text_opt(username, "username") }?.map(str::to_owned);
        Ok(())
    })
}

/// Sets the password (NUL-terminated; NULL for none, the default; ignored when
/// a URL is set). The string is copied.
///
/// Errors: RTC_RESULT_NULL_PARAMETER (builder), RTC_RESULT_INVALID_UTF8.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_builder_set_password(
    builder: *mut rtc_cache_builder,
    password: *const c_char,
) -> rtc_result {
    with_builder(builder, |b| {
        // SAFETY: the caller passes NULL or a NUL-terminated string.
        b.config.password = unsafe { c_text_opt(password, "password") }?.map(str::to_owned);
        Ok(())
    })
}

/// Sets a Redis URL (NUL-terminated: redis://, rediss:// or redis+unix://,
/// user and password allowed), which replaces host, port, db, ssl, username
/// and password; NULL (the default) unsets it. The string is copied; it is
/// checked by rtc_cache_new.
///
/// Errors: RTC_RESULT_NULL_PARAMETER (builder), RTC_RESULT_INVALID_UTF8.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_builder_set_url(builder: *mut rtc_cache_builder, url: *const c_char) -> rtc_result {
    with_builder(builder, |b| {
        // SAFETY: the caller passes NULL or a NUL-terminated string.
        b.config.url = unsafe { c_text_opt(url, "url") }?.map(str::to_owned);
        Ok(())
    })
}

/// Adds the node URL `node` to the list `nodes` picks from the builder's
/// configuration (cluster seeds, Sentinel nodes).
///
/// # Safety
/// `node` is NULL or a NUL-terminated string.
unsafe fn add_node(
    builder: *mut rtc_cache_builder,
    node: *const c_char,
    nodes: impl FnOnce(&mut Config) -> &mut Vec<String>,
) -> rtc_result {
    with_builder(builder, |b| {
        // SAFETY: as promised by the caller.
        let node = unsafe { c_text(node, "node") }?;
        nodes(&mut b.config).push(node.to_owned());
        Ok(())
    })
}

/// Adds a seed node of a Redis Cluster (NUL-terminated URL: `redis://host:port`,
/// or `rediss://` for TLS). Once one is added, the cache talks to that cluster
/// and ignores the URL, host, port and db. The string is copied; it is checked
/// by rtc_cache_new.
///
/// Errors: RTC_RESULT_NULL_PARAMETER (builder or node), RTC_RESULT_INVALID_UTF8.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_builder_add_cluster_node(
    builder: *mut rtc_cache_builder,
    node: *const c_char,
) -> rtc_result {
    // SAFETY: the caller passes a NUL-terminated string.
    unsafe { add_node(builder, node, |config| &mut config.cluster_nodes) }
}

/// Adds a Redis Sentinel node (NUL-terminated URL:
/// `redis://[user:password@]host:port` with the sentinel's own credentials,
/// or `rediss://` for TLS). Once one is added (and a master name is set with
/// rtc_cache_builder_set_sentinel_master_name), the cache asks the sentinels
/// for the master's address and follows it across failovers; the master is
/// reached with the db, ssl, username, password and certificate authority
/// set here, and the host and port are ignored. A URL or a cluster node set
/// as well is refused by rtc_cache_new. The string is copied; it is checked
/// by rtc_cache_new.
///
/// Errors: RTC_RESULT_NULL_PARAMETER (builder or node), RTC_RESULT_INVALID_UTF8.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_builder_add_sentinel_node(
    builder: *mut rtc_cache_builder,
    node: *const c_char,
) -> rtc_result {
    // SAFETY: the caller passes a NUL-terminated string.
    unsafe { add_node(builder, node, |config| &mut config.sentinel_nodes) }
}

/// Sets the name of the master the Sentinel nodes monitor (NUL-terminated;
/// NULL, the default, unsets it). Required with
/// rtc_cache_builder_add_sentinel_node. The string is copied.
///
/// Errors: RTC_RESULT_NULL_PARAMETER (builder), RTC_RESULT_INVALID_UTF8.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_builder_set_sentinel_master_name(
    builder: *mut rtc_cache_builder,
    name: *const c_char,
) -> rtc_result {
    with_builder(builder, |b| {
        // SAFETY: the caller passes NULL or a NUL-terminated string.
        b.config.sentinel_master_name = unsafe { c_text_opt(name, "name") }?.map(str::to_owned);
        Ok(())
    })
}

/// Sets a private certificate authority (PEM, `pem_len` bytes) to verify TLS
/// servers with, in place of the system's roots; verification is always on.
/// NULL with a length of 0 unsets it (the default). The bytes are copied.
///
/// Errors: RTC_RESULT_NULL_PARAMETER (builder, or NULL with a length).
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_builder_set_tls_ca_cert(
    builder: *mut rtc_cache_builder,
    pem: *const u8,
    pem_len: usize,
) -> rtc_result {
    with_builder(builder, |b| {
        // SAFETY: the caller passes NULL or `pem_len` readable bytes.
        let pem = unsafe { bytes(pem, pem_len, "pem") }?;
        b.config.tls_ca_cert = (!pem.is_empty()).then(|| pem.to_vec());
        Ok(())
    })
}

/// Sets the read/write timeout of one Redis round trip in milliseconds
/// (default 5000; 0 means none).
///
/// Errors: RTC_RESULT_NULL_PARAMETER.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_builder_set_socket_timeout_ms(
    builder: *mut rtc_cache_builder,
    timeout_ms: u64,
) -> rtc_result {
    with_builder(builder, |b| {
        b.config.socket_timeout = Duration::from_millis(timeout_ms);
        Ok(())
    })
}

/// Sets the connect timeout in milliseconds, the handshake included
/// (default 5000; 0 means the socket timeout bounds it).
///
/// Errors: RTC_RESULT_NULL_PARAMETER.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_builder_set_socket_connect_timeout_ms(
    builder: *mut rtc_cache_builder,
    timeout_ms: u64,
) -> rtc_result {
    with_builder(builder, |b| {
        b.config.socket_connect_timeout = Duration::from_millis(timeout_ms);
        Ok(())
    })
}

/// Sets the default entry lifetime in seconds (default 3600); 0
/// (RTC_LIFETIME_FOREVER) means entries never expire. Calls passing
/// RTC_LIFETIME_DEFAULT use it.
///
/// Errors: RTC_RESULT_NULL_PARAMETER.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_builder_set_default_lifetime(builder: *mut rtc_cache_builder, seconds: u64) -> rtc_result {
    with_builder(builder, |b| {
        b.config.default_lifetime = (seconds > 0).then_some(seconds);
        Ok(())
    })
}

/// Sets the lifetime of tags in seconds (default 86400); 0
/// (RTC_LIFETIME_FOREVER) means tags never expire. An expired tag invalidates
/// its entries.
///
/// Errors: RTC_RESULT_NULL_PARAMETER.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_builder_set_lifetime_for_tags(builder: *mut rtc_cache_builder, seconds: u64) -> rtc_result {
    with_builder(builder, |b| {
        b.config.lifetime_for_tags = (seconds > 0).then_some(seconds);
        Ok(())
    })
}

/// Disables the cache when `disabled` is true (default false): nothing is
/// stored, every read misses, get-or-compute always computes.
///
/// Errors: RTC_RESULT_NULL_PARAMETER.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_builder_set_disabled(builder: *mut rtc_cache_builder, disabled: bool) -> rtc_result {
    with_builder(builder, |b| {
        b.config.disabled = disabled;
        Ok(())
    })
}

/// Uses an in-process store instead of Redis when `in_local_memory` is true
/// (default false), for tests and single-process programs.
///
/// Errors: RTC_RESULT_NULL_PARAMETER.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_builder_set_in_local_memory(
    builder: *mut rtc_cache_builder,
    in_local_memory: bool,
) -> rtc_result {
    with_builder(builder, |b| {
        b.config.in_local_memory = in_local_memory;
        Ok(())
    })
}

/// Sets the largest value accepted by set and set-and-unlock, in bytes
/// (default 512 MiB, Redis's own limit). A larger value is refused with
/// RTC_RESULT_INVALID_ARGUMENT.
///
/// Errors: RTC_RESULT_NULL_PARAMETER.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_builder_set_max_value_size(
    builder: *mut rtc_cache_builder,
    max_value_size: usize,
) -> rtc_result {
    with_builder(builder, |b| {
        b.config.max_value_size = max_value_size;
        Ok(())
    })
}

/// Turns fail-safe on: when Redis fails, or the compute callback fails,
/// rtc_cache_get_or_compute returns the last value this process confirmed
/// current for the entry, if it was confirmed at most `max_duration_ms` ago
/// (rtc_cache_info_stale is then true), instead of computing or failing.
/// Never a value this process knows to be invalidated. `max_bytes` bounds
/// the memory the values take (least recently used go first).
/// `max_duration_ms` 0 turns fail-safe off.
///
/// Errors: RTC_RESULT_NULL_PARAMETER, RTC_RESULT_INVALID_ARGUMENT (a
/// `max_bytes` of 0 with fail-safe on).
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_builder_set_fail_safe(
    builder: *mut rtc_cache_builder,
    max_duration_ms: u64,
    max_bytes: usize,
) -> rtc_result {
    with_builder(builder, |b| {
        if max_duration_ms > 0 && max_bytes == 0 {
            return Err(Failure::new(RTC_RESULT_INVALID_ARGUMENT, "fail-safe needs max_bytes above 0"));
        }
        b.config.fail_safe_max_duration = (max_duration_ms > 0).then(|| Duration::from_millis(max_duration_ms));
        b.config.fail_safe_max_bytes = max_bytes;
        Ok(())
    })
}

/// Turns the near cache on: at most `max_entries` entries (0 turns it off)
/// and `max_bytes` bytes served from this process's memory with no round
/// trip, each for at most `max_lifetime_ms` and never past its TTL in
/// Redis, kept coherent by Redis's invalidation pushes on a tracking
/// connection of its own (see "The near cache" in core/README.md for the
/// promise and its bound).
/// On a Redis Cluster, one tracking connection per master. Off, with a
/// warning, in memory or when disabled.
///
/// Errors: RTC_RESULT_NULL_PARAMETER, RTC_RESULT_INVALID_ARGUMENT (no bytes
/// or no lifetime with entries).
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_builder_set_near_cache(
    builder: *mut rtc_cache_builder,
    max_entries: usize,
    max_bytes: usize,
    max_lifetime_ms: u64,
) -> rtc_result {
    with_builder(builder, |b| {
        if max_entries > 0 && (max_bytes == 0 || max_lifetime_ms == 0) {
            return Err(Failure::new(
                RTC_RESULT_INVALID_ARGUMENT,
                "the near cache needs max_bytes and max_lifetime_ms above 0",
            ));
        }
        b.config.near_cache_max_entries = max_entries;
        b.config.near_cache_max_bytes = max_bytes;
        b.config.near_cache_max_lifetime = Duration::from_millis(max_lifetime_ms);
        Ok(())
    })
}

/// The near cache tracks per reader: Redis pushes a change of an entry only
/// to the processes that hold it (the default). See
/// rtc_cache_builder_set_near_cache_tracking.
pub const RTC_NEAR_TRACKING_PER_READER: u32 = 0;
/// The near cache tracks by broadcast: every process hears of every entry
/// written in the namespace.
pub const RTC_NEAR_TRACKING_BROADCAST: u32 = 1;

/// Sets how the near cache learns of changes: RTC_NEAR_TRACKING_PER_READER
/// (the default; pushes grow with the readers of an entry, Redis keeps one
/// tracking-table item per entry held) or RTC_NEAR_TRACKING_BROADCAST
/// (pushes grow with the fleet, no table in Redis). Tag changes are
/// broadcast in both. See "The near cache" in core/README.md.
///
/// Errors: RTC_RESULT_NULL_PARAMETER, RTC_RESULT_INVALID_ARGUMENT (an
/// unknown mode).
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_builder_set_near_cache_tracking(builder: *mut rtc_cache_builder, mode: u32) -> rtc_result {
    with_builder(builder, |b| {
        b.config.near_cache_tracking = match mode {
            RTC_NEAR_TRACKING_PER_READER => rtc_core::NearTracking::PerReader,
            RTC_NEAR_TRACKING_BROADCAST => rtc_core::NearTracking::Broadcast,
            other => {
                return Err(Failure::new(
                    RTC_RESULT_INVALID_ARGUMENT,
                    format!(
                        "unknown near-cache tracking mode {other}: use RTC_NEAR_TRACKING_PER_READER or RTC_NEAR_TRACKING_BROADCAST"
                    ),
                ));
            }
        };
        Ok(())
    })
}

/// The near cache's counters, read with rtc_cache_near_stats.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
#[allow(non_camel_case_types)]
pub struct rtc_near_stats {
    /// Reads served from the near cache.
    pub hits: u64,
    /// Reads it could not serve while on (they went to Redis).
    pub misses: u64,
    /// Keys named by invalidation pushes.
    pub invalidations: u64,
    /// Flushes: disconnects, reconnects, FLUSHALL, missed heartbeats,
    /// cluster slot map changes.
    pub flushes: u64,
    /// Entries held now.
    pub entries: u64,
    /// Bytes held now.
    pub bytes: u64,
    /// True while the tracking connection is up and the near cache serves.
    pub live: bool,
    /// Entries dropped to stay within the bounds. Appended in the struct's
    /// second version: written only when `stats_size` covers it.
    pub evictions: u64,
    /// Invalidation pushes received (one push may name many keys).
    /// Appended in the third version, with `tracking`.
    pub pushes: u64,
    /// The tracking mode in use: RTC_NEAR_TRACKING_PER_READER or
    /// RTC_NEAR_TRACKING_BROADCAST. Third version.
    pub tracking: u32,
}

/// The size of the struct's first version (up to `live`, padded): every
/// later version starts with it.
const NEAR_STATS_FIRST: usize = 56;
const _: () = assert!(std::mem::offset_of!(rtc_near_stats, evictions) == NEAR_STATS_FIRST);

/// Writes the near cache's counters to `*stats_out`, a struct of
/// `stats_size` bytes: pass sizeof(rtc_near_stats). Fields are only ever
/// appended, and only the first `stats_size` bytes are written, so a program
/// compiled against this header keeps working with a later librtc whose
/// struct grew. Returns RTC_RESULT_MISS when the near cache is off.
/// Thread-safe.
///
/// Errors: RTC_RESULT_NULL_PARAMETER, RTC_RESULT_INVALID_ARGUMENT
/// (`stats_size` smaller than this first version of the struct).
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_near_stats(
    cache: *const rtc_cache,
    stats_out: *mut rtc_near_stats,
    stats_size: usize,
) -> rtc_result {
    guard(|| {
        let cache = cache_ref(cache)?;
        if stats_out.is_null() {
            return Err(Failure::null("stats_out"));
        }
        if stats_size < NEAR_STATS_FIRST {
            return Err(Failure::new(
                RTC_RESULT_INVALID_ARGUMENT,
                format!(
                    "stats_size {stats_size} is smaller than rtc_near_stats's first version ({NEAR_STATS_FIRST} bytes)"
                ),
            ));
        }
        // A program compiled against an older header gets the fields it knows.
        let size = stats_size.min(std::mem::size_of::<rtc_near_stats>());
        let Some(s) = cache.near_stats() else {
            return Ok(RTC_RESULT_MISS);
        };
        let stats = rtc_near_stats {
            hits: s.hits,
            misses: s.misses,
            invalidations: s.invalidations,
            flushes: s.flushes,
            entries: s.entries,
            bytes: s.bytes,
            live: s.live,
            evictions: s.evictions,
            pushes: s.pushes,
            tracking: match s.tracking {
                rtc_core::NearTracking::Broadcast => RTC_NEAR_TRACKING_BROADCAST,
                rtc_core::NearTracking::PerReader => RTC_NEAR_TRACKING_PER_READER,
            },
        };
        // SAFETY: the caller passes a writable struct of `stats_size` >= `size`
        // bytes, and `size` is at most this version's size.
        unsafe {
            std::ptr::copy_nonoverlapping(&stats as *const rtc_near_stats as *const u8, stats_out.cast::<u8>(), size)
        };
        Ok(RTC_RESULT_OK)
    })
}

/// Sets the hook, called after every rtc_cache_get_or_compute of the caches
/// built from now on, with `userdata` first and the call's measurements
/// (rtc_cache_info, valid only during the hook). NULL `hook` removes it.
///
/// The hook runs on the thread that called get-or-compute, possibly on many
/// threads at once: it and `userdata` must be thread-safe. `userdata` must
/// outlive the caches; rtc never frees it.
///
/// Errors: RTC_RESULT_NULL_PARAMETER (builder).
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_builder_set_hook(
    builder: *mut rtc_cache_builder,
    hook: crate::hook::rtc_hook_callback,
    userdata: *mut c_void,
) -> rtc_result {
    with_builder(builder, |b| {
        b.hook = hook.map(|f| (f, userdata as usize));
        Ok(())
    })
}

/// Builds a cache from `builder` (which is not consumed) and writes it to
/// `*cache_out`. Does not connect: a cache built while Redis is down works
/// once Redis is up.
///
/// The caller owns the cache and frees it with rtc_cache_free. The cache is
/// thread-safe (see rtc_cache).
///
/// Errors: RTC_RESULT_NULL_PARAMETER, RTC_RESULT_INVALID_ARGUMENT (an unusable
/// URL or address); `*cache_out` is then left untouched.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_new(builder: *const rtc_cache_builder, cache_out: *mut *mut rtc_cache) -> rtc_result {
    guard(|| {
        // SAFETY: the caller passes NULL or a live builder.
        let b = unsafe { handle(builder, "builder") }?;
        // SAFETY: the caller passes NULL or a writable pointer.
        let out = unsafe { out(cache_out, "cache_out") }?;
        let mut cache = Cache::builder().config(b.config.clone());
        if let Some((f, userdata)) = b.hook {
            // SAFETY: the caller of rtc_cache_builder_set_hook promised a
            // thread-safe hook and a userdata that outlives the cache.
            cache = cache.hook(move |event| unsafe { call_hook(f, userdata as *mut c_void, event) });
        }
        out.put(into_handle(rtc_cache { cache: cache.build()? }));
        Ok(RTC_RESULT_OK)
    })
}

/// Frees a cache and closes its connections. NULL is a no-op.
///
/// Must not run while other threads still use the cache. Tickets obtained
/// from it stay valid and may still be freed or used afterwards.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_free(cache: *mut rtc_cache) {
    // SAFETY: the caller passes NULL or a cache from rtc_cache_new, once.
    guard_or((), || unsafe { free_handle(cache) })
}

/// Borrows the cache behind a handle.
/// Returns how many get-or-compute calls with the lock (either form) wait,
/// now, for another caller of this cache in this process that computes the
/// same key (single-flight followers); 0 if `cache` is NULL. For monitoring
/// and tests. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_single_flight_waiters(cache: *const rtc_cache) -> usize {
    guard_or(0, || cache_ref(cache).map_or(0, Cache::single_flight_waiters))
}

pub(crate) fn cache_ref<'a>(cache: *const rtc_cache) -> Result<&'a Cache, Failure> {
    // SAFETY: every caller documents that it takes NULL or a live cache.
    unsafe { handle(cache, "cache") }.map(|c| &c.cache)
}

/// Stores `value` under `key` and `tags`, for `lifetime` (RTC_LIFETIME_DEFAULT,
/// RTC_LIFETIME_FOREVER, or seconds). The entry is readable until it expires,
/// one of its tags is invalidated, rtc_cache_invalidate_all is called, or it
/// is deleted.
///
/// `key` (UTF-8, `key_len` bytes) and `value` (any bytes) are copied; each may
/// be NULL only when its length is 0. `tags` is an array of `tags_len` UTF-8
/// buffers (NULL when `tags_len` is 0); the same set of tags, in any order,
/// must be given to read the entry back. Thread-safe.
///
/// Errors: RTC_RESULT_NULL_PARAMETER, RTC_RESULT_INVALID_UTF8,
/// RTC_RESULT_INVALID_ARGUMENT (value over max_value_size, bad lifetime), and
/// Redis errors (RTC_RESULT_BACKEND_UNAVAILABLE, RTC_RESULT_TIMEOUT, ...).
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_set(
    cache: *const rtc_cache,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    tags: *const rtc_bytes,
    tags_len: usize,
    lifetime: i64,
) -> rtc_result {
    guard(|| {
        let cache = cache_ref(cache)?;
        // SAFETY (all three): the caller passes buffers valid for their lengths.
        let key = unsafe { text(key, key_len, "key") }?;
        let value = unsafe { bytes(value, value_len, "value") }?;
        let tags = unsafe { self::tags(tags, tags_len) }?;
        cache.set_bytes(key, value, &tags, self::lifetime(lifetime)?)?;
        Ok(RTC_RESULT_OK)
    })
}

/// Reads the value of `key` under `tags` (as for rtc_cache_set).
///
/// Returns RTC_RESULT_OK and writes a new value to `*value_out` on a hit: the
/// caller owns it and frees it with rtc_value_free. Returns RTC_RESULT_MISS,
/// leaving `*value_out` untouched, when there is no such entry (never stored,
/// expired, invalidated or deleted). Thread-safe.
///
/// Errors: RTC_RESULT_NULL_PARAMETER, RTC_RESULT_INVALID_UTF8, and Redis
/// errors (RTC_RESULT_BACKEND_UNAVAILABLE, RTC_RESULT_TIMEOUT, ...), which are
/// never reported as a miss.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_get(
    cache: *const rtc_cache,
    key: *const u8,
    key_len: usize,
    tags: *const rtc_bytes,
    tags_len: usize,
    value_out: *mut *mut rtc_value,
) -> rtc_result {
    guard(|| {
        let cache = cache_ref(cache)?;
        // SAFETY (all three): the caller passes buffers valid for their lengths
        // and a writable out-pointer.
        let key = unsafe { text(key, key_len, "key") }?;
        let tags = unsafe { self::tags(tags, tags_len) }?;
        let out = unsafe { out(value_out, "value_out") }?;
        Ok(match cache.get_bytes(key, &tags)? {
            Some(bytes) => {
                out.put(into_handle(rtc_value { bytes }));
                RTC_RESULT_OK
            }
            None => RTC_RESULT_MISS,
        })
    })
}

/// Reads the value of `key` under `tags` as rtc_cache_get does, into a
/// buffer of the caller's: the cheaper call for a caller that reads many
/// small values (one call where rtc_cache_get then needs rtc_value_data,
/// rtc_value_len and rtc_value_free; the Python package reads this way).
///
/// On a hit, writes the value's length to `*len_out` and returns
/// RTC_RESULT_OK: if it is at most `buf_cap`, the value is copied to `buf`
/// and `*value_out` is left untouched; otherwise nothing is copied and the
/// value is written to `*value_out` as by rtc_cache_get (the caller frees
/// it with rtc_value_free), so a value too big costs no second read.
/// Returns RTC_RESULT_MISS, writing nothing, when there is no such entry.
/// `buf` may be NULL with a `buf_cap` of 0. Thread-safe.
///
/// Errors: RTC_RESULT_NULL_PARAMETER (also `buf` NULL with a capacity),
/// RTC_RESULT_INVALID_UTF8, and Redis errors, as for rtc_cache_get.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_get_into(
    cache: *const rtc_cache,
    key: *const u8,
    key_len: usize,
    tags: *const rtc_bytes,
    tags_len: usize,
    buf: *mut u8,
    buf_cap: usize,
    len_out: *mut usize,
    value_out: *mut *mut rtc_value,
) -> rtc_result {
    guard(|| {
        let cache = cache_ref(cache)?;
        // SAFETY (all): the caller passes buffers valid for their lengths and
        // writable out-pointers.
        let key = unsafe { text(key, key_len, "key") }?;
        let tags = unsafe { self::tags(tags, tags_len) }?;
        let len = unsafe { out(len_out, "len_out") }?;
        let value = unsafe { out(value_out, "value_out") }?;
        if buf.is_null() && buf_cap > 0 {
            return Err(Failure::null("buf"));
        }
        Ok(match cache.get_bytes(key, &tags)? {
            // SAFETY: the caller passes `buf_cap` writable bytes at `buf`.
            Some(bytes) => unsafe { deliver(bytes, buf, buf_cap, len, value) },
            None => RTC_RESULT_MISS,
        })
    })
}

/// Hands a hit over as rtc_cache_get_into promises: its length, and the
/// bytes copied to `buf` if they fit, else an rtc_value.
///
/// # Safety
/// `buf` is NULL with a `buf_cap` of 0, or holds `buf_cap` writable bytes.
unsafe fn deliver(
    bytes: Vec<u8>,
    buf: *mut u8,
    buf_cap: usize,
    len: Out<usize>,
    value: Out<*mut rtc_value>,
) -> rtc_result {
    len.put(bytes.len());
    if bytes.len() > buf_cap {
        value.put(into_handle(rtc_value { bytes }));
    } else if !bytes.is_empty() {
        // SAFETY: `buf` holds `buf_cap` writable bytes (non-NULL, since the
        // capacity is not 0), and a Vec never overlaps the caller's buffer.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf, bytes.len()) };
    }
    RTC_RESULT_OK
}

/// How long a hit served by the near cache may be served again, by a caller
/// that keeps it, for the same key and the same tags in the same order
/// (rtc_cache_get_leased_into): while the stamp rtc_cache_near_stamp points
/// at still reads `stamp`, and for `valid_ns` nanoseconds from the call's
/// return. A `stamp` of 0 is no lease: the hit came from Redis, or the
/// cache has no near cache (a near-cache stamp is never 0).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct rtc_near_lease {
    /// The near cache's stamp the hit was served at; 0: no lease.
    pub stamp: u64,
    /// Nanoseconds the hit may be served for, from the call's return.
    pub valid_ns: u64,
}

/// Reads the value of `key` under `tags` as rtc_cache_get_into does, and
/// writes to `*lease_out` how long a near-cache hit holds (see
/// rtc_near_lease; zeroes on a miss or a hit read from Redis).
///
/// For a binding whose every call into librtc is dear (the Python package):
/// it may keep the hit in its own memo and serve it again with no call,
/// while `*rtc_cache_near_stamp(cache)` equals the lease's stamp and the
/// lease's time has not run out. Every invalidation push, flush, write of
/// this process and loss of the tracking connection moves the stamp, so
/// such a memo is as coherent as the near cache itself. Thread-safe.
///
/// Errors: those of rtc_cache_get_into, and RTC_RESULT_NULL_PARAMETER for
/// a NULL `lease_out`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_get_leased_into(
    cache: *const rtc_cache,
    key: *const u8,
    key_len: usize,
    tags: *const rtc_bytes,
    tags_len: usize,
    buf: *mut u8,
    buf_cap: usize,
    len_out: *mut usize,
    value_out: *mut *mut rtc_value,
    lease_out: *mut rtc_near_lease,
) -> rtc_result {
    guard(|| {
        let cache = cache_ref(cache)?;
        // SAFETY (all): the caller passes buffers valid for their lengths and
        // writable out-pointers.
        let key = unsafe { text(key, key_len, "key") }?;
        let tags = unsafe { self::tags(tags, tags_len) }?;
        let len = unsafe { out(len_out, "len_out") }?;
        let value = unsafe { out(value_out, "value_out") }?;
        let lease_out = unsafe { out(lease_out, "lease_out") }?;
        if buf.is_null() && buf_cap > 0 {
            return Err(Failure::null("buf"));
        }
        let got = cache.get_bytes_leased(key, &tags)?;
        let lease = got.as_ref().and_then(|(_, lease)| *lease).map_or_else(rtc_near_lease::default, |lease| {
            let left = lease.until.saturating_duration_since(std::time::Instant::now());
            rtc_near_lease { stamp: lease.stamp, valid_ns: u64::try_from(left.as_nanos()).unwrap_or(u64::MAX) }
        });
        lease_out.put(lease);
        Ok(match got {
            // SAFETY: the caller passes `buf_cap` writable bytes at `buf`.
            Some((bytes, _)) => unsafe { deliver(bytes, buf, buf_cap, len, value) },
            None => RTC_RESULT_MISS,
        })
    })
}

/// The address of the near cache's stamp, which rtc_near_lease's `stamp`
/// is compared with; NULL when `cache` is NULL or has no near cache. The
/// address holds for the cache's life (until rtc_cache_free). The stamp
/// changes from other threads: read it as one aligned 64-bit load (C11's
/// `atomic_load` on a cast to `_Atomic uint64_t *`, or a plain load on
/// x86-64 and AArch64, where aligned 64-bit loads are single-copy atomic).
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_near_stamp(cache: *const rtc_cache) -> *const u64 {
    guard_or(std::ptr::null(), || {
        cache_ref(cache).ok().and_then(Cache::near_stamp).map_or(std::ptr::null(), |stamp| stamp.as_ptr().cast_const())
    })
}

/// Deletes the entry of `key` under `tags` (as for rtc_cache_set). If
/// `deleted_out` is not NULL, writes whether an entry existed. Thread-safe.
///
/// Errors: RTC_RESULT_NULL_PARAMETER, RTC_RESULT_INVALID_UTF8, and Redis errors.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_delete(
    cache: *const rtc_cache,
    key: *const u8,
    key_len: usize,
    tags: *const rtc_bytes,
    tags_len: usize,
    deleted_out: *mut bool,
) -> rtc_result {
    guard(|| {
        let cache = cache_ref(cache)?;
        // SAFETY (both): the caller passes buffers valid for their lengths.
        let key = unsafe { text(key, key_len, "key") }?;
        let tags = unsafe { self::tags(tags, tags_len) }?;
        let deleted = cache.delete(key, &tags)?;
        // SAFETY: the caller passes NULL or a writable pointer.
        if let Ok(out) = unsafe { out(deleted_out, "deleted_out") } {
            out.put(deleted);
        }
        Ok(RTC_RESULT_OK)
    })
}

/// Invalidates one tag (`tags_len` 1) or several, in one Redis round trip
/// whatever the number of entries carrying them: every entry stored with any
/// of these tags becomes unreachable. Tags never used before are fine; 0 tags
/// is a no-op. Thread-safe.
///
/// Errors: RTC_RESULT_NULL_PARAMETER, RTC_RESULT_INVALID_UTF8, and Redis errors.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_invalidate(cache: *const rtc_cache, tags: *const rtc_bytes, tags_len: usize) -> rtc_result {
    guard(|| {
        let cache = cache_ref(cache)?;
        // SAFETY: the caller passes an array valid for its length.
        let tags = unsafe { self::tags(tags, tags_len) }?;
        cache.invalidate(&tags)?;
        Ok(RTC_RESULT_OK)
    })
}

/// Invalidates every entry of the cache's namespace, in one write. Other
/// namespaces are not affected. Thread-safe.
///
/// Errors: RTC_RESULT_NULL_PARAMETER, and Redis errors.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_invalidate_all(cache: *const rtc_cache) -> rtc_result {
    guard(|| {
        cache_ref(cache)?.invalidate_all()?;
        Ok(RTC_RESULT_OK)
    })
}

/// Returns a pointer to the value's bytes (rtc_value_len of them), owned by
/// the value and valid until rtc_value_free; never NULL for a value, even an
/// empty one. Returns NULL if `value` is NULL.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_value_data(value: *const rtc_value) -> *const u8 {
    guard_or(std::ptr::null(), || {
        // SAFETY: the caller passes NULL or a live value.
        unsafe { handle(value, "value") }.map_or(std::ptr::null(), |v| data_ptr(&v.bytes))
    })
}

/// Returns the length of the value in bytes (0 if `value` is NULL).
#[unsafe(no_mangle)]
pub extern "C" fn rtc_value_len(value: *const rtc_value) -> usize {
    guard_or(0, || {
        // SAFETY: the caller passes NULL or a live value.
        unsafe { handle(value, "value") }.map_or(0, |v| v.bytes.len())
    })
}

/// Frees a value returned by rtc. NULL is a no-op.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_value_free(value: *mut rtc_value) {
    // SAFETY: the caller passes NULL or a value from rtc, once.
    guard_or((), || unsafe { free_handle(value) })
}
