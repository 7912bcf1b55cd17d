//! Get-or-compute with a C callback, and its split form for callers that
//! compute elsewhere: get-or-lock, then set-and-unlock.

use std::ffi::{c_char, c_int, c_void};
use std::sync::Arc;
use std::time::Duration;

use rtc_core::{Cache, ComputeOptions, FunctionId, GetOrLock, Ticket};

use crate::boundary::{
    bytes, c_text, free_handle, guard, guard_or, handle, handle_mut, into_handle, out, rtc_bytes, tags, text,
};
use crate::cache::{cache_ref, lifetime, rtc_cache, rtc_value};
use crate::error::{
    Failure, RTC_RESULT_COMPUTE_FAILED, RTC_RESULT_INVALID_ARGUMENT, RTC_RESULT_MISS, RTC_RESULT_OK, rtc_result,
};
use crate::hook::CallUserdata;

/// Per-call options of rtc_cache_get_or_compute and rtc_cache_get_or_lock:
/// the key (fixed, or derived from a function and its arguments), tags,
/// lifetime, the stampede lock and its timeout.
///
/// Made by rtc_compute_options_new or rtc_compute_options_new_call, owned by
/// the caller, freed with rtc_compute_options_free. Set it up from one thread;
/// once set up, it may be passed to calls on many threads at once (calls only
/// read it).
#[allow(non_camel_case_types)]
pub struct rtc_compute_options {
    pub(crate) options: ComputeOptions,
}

/// Where a compute callback writes the value it produces, with
/// rtc_output_write. Owned by rtc and valid only during the callback.
#[allow(non_camel_case_types)]
pub struct rtc_output {
    bytes: Vec<u8>,
    /// The cache's max_value_size: a write past it is refused at once.
    limit: usize,
    /// The refusal, if a write was refused: the call then fails with it.
    refused: Option<String>,
}

/// The right to store one computed value under the tag snapshot taken by
/// rtc_cache_get_or_lock, and the stampede lock if rtc_ticket_holds_lock.
///
/// Owned by the caller: pass it to rtc_cache_set_and_unlock (which consumes
/// it), or free it with rtc_ticket_free to give up, which releases the lock
/// and wakes the waiters. A ticket may be used or freed on any thread. A
/// ticket from the non-blocking API (rtc_async_get_or_lock) goes to
/// rtc_async_set_and_unlock or rtc_async_release instead; rtc_ticket_free
/// then releases it without blocking.
#[allow(non_camel_case_types)]
pub struct rtc_ticket {
    pub(crate) ticket: Ticket,
    /// What made the ticket, which releases it in rtc_ticket_free.
    pub(crate) owner: TicketOwner,
}

/// The cache a ticket came from.
pub(crate) enum TicketOwner {
    /// A blocking cache (rtc_cache_get_or_lock).
    Blocking(Cache),
    /// A non-blocking context's cache and the runtime that runs it.
    NonBlocking(crate::runtime::Owner),
}

impl TicketOwner {
    /// Releases `ticket`: one round trip on a blocking cache; started on
    /// the context's threads, without waiting, on a non-blocking one.
    pub(crate) fn release(self, ticket: Ticket) {
        match self {
            TicketOwner::Blocking(cache) => {
                let _ = cache.release(ticket);
            }
            TicketOwner::NonBlocking(owner) => owner.release_in_background(ticket),
        }
    }
}

/// A compute callback: called with the userdata given to
/// rtc_cache_get_or_compute on a miss; writes the value with
/// rtc_output_write (zero or more times, appending) and returns 0. Any other
/// return value means the computation failed: nothing is stored, the lock is
/// released, and rtc_cache_get_or_compute returns RTC_RESULT_COMPUTE_FAILED.
#[allow(non_camel_case_types)]
pub type rtc_compute_callback = Option<unsafe extern "C" fn(userdata: *mut c_void, output: *mut rtc_output) -> c_int>;

/// A `serde` view of C bytes as one CBOR byte string.
struct ByteString<'a>(&'a [u8]);

impl serde::Serialize for ByteString<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

fn new_options(options: ComputeOptions) -> rtc_compute_options {
    rtc_compute_options { options }
}

/// Creates options for a value cached under a fixed `key` (UTF-8, `key_len`
/// bytes, copied; NULL only when `key_len` is 0), with no tags, the default
/// lifetime, no lock, and a lock timeout of 5000 ms.
///
/// The caller owns the options and frees them with rtc_compute_options_free;
/// `*options_out` is written only on success.
///
/// Errors: RTC_RESULT_NULL_PARAMETER, RTC_RESULT_INVALID_UTF8.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_compute_options_new(
    key: *const u8,
    key_len: usize,
    options_out: *mut *mut rtc_compute_options,
) -> rtc_result {
    guard(|| {
        // SAFETY (both): the caller passes a buffer valid for its length and a
        // writable out-pointer.
        let key = unsafe { text(key, key_len, "key") }?;
        let out = unsafe { out(options_out, "options_out") }?;
        out.put(into_handle(new_options(ComputeOptions::key(key))));
        Ok(RTC_RESULT_OK)
    })
}

/// Creates options for a call of a function with arguments: the key is
/// derived from the function's identity (`module`, `type_name`, `function`:
/// NUL-terminated UTF-8, `type_name` "" for a free function) and the
/// `arguments` bytes (any bytes the caller chooses, e.g. a serialisation of
/// the arguments; NULL only when `arguments_len` is 0). The hook sees the
/// identity, and the arguments as one CBOR byte string. A non-empty
/// `type_name` marks the function as a method. Everything is copied.
///
/// The same identity and arguments give the same key as the Rust API's
/// `ComputeOptions::call(FunctionId::new(module, type_name, function),
/// &serde_bytes::Bytes::new(arguments))`.
///
/// The caller owns the options and frees them with rtc_compute_options_free.
///
/// Errors: RTC_RESULT_NULL_PARAMETER, RTC_RESULT_INVALID_UTF8.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_compute_options_new_call(
    module: *const c_char,
    type_name: *const c_char,
    function: *const c_char,
    arguments: *const u8,
    arguments_len: usize,
    options_out: *mut *mut rtc_compute_options,
) -> rtc_result {
    guard(|| {
        // SAFETY (all): the caller passes NUL-terminated strings, a buffer
        // valid for its length and a writable out-pointer.
        let module = unsafe { c_text(module, "module") }?;
        let type_name = unsafe { c_text(type_name, "type_name") }?;
        let function = unsafe { c_text(function, "function") }?;
        let arguments = unsafe { bytes(arguments, arguments_len, "arguments") }?;
        let out = unsafe { out(options_out, "options_out") }?;
        let id = FunctionId::new(module, type_name, function);
        out.put(into_handle(new_options(ComputeOptions::call(id, &ByteString(arguments))?)));
        Ok(RTC_RESULT_OK)
    })
}

/// Frees options. NULL is a no-op.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_compute_options_free(options: *mut rtc_compute_options) {
    // SAFETY: the caller passes NULL or options from rtc, once.
    guard_or((), || unsafe { free_handle(options) })
}

/// Runs `set` on the options behind `options`.
fn with_options(
    options: *mut rtc_compute_options,
    set: impl FnOnce(&mut rtc_compute_options) -> Result<(), Failure>,
) -> rtc_result {
    guard(|| {
        // SAFETY: the caller passes NULL or live options, used by one thread.
        set(unsafe { handle_mut(options, "options") }?)?;
        Ok(RTC_RESULT_OK)
    })
}

/// Replaces the core options with `f(options)`.
fn update(o: &mut rtc_compute_options, f: impl FnOnce(ComputeOptions) -> ComputeOptions) {
    let taken = std::mem::replace(&mut o.options, ComputeOptions::key(String::new()));
    o.options = f(taken);
}

/// Sets the entry's tags: an array of `tags_len` UTF-8 buffers (NULL when
/// `tags_len` is 0), copied.
///
/// Errors: RTC_RESULT_NULL_PARAMETER, RTC_RESULT_INVALID_UTF8.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_compute_options_set_tags(
    options: *mut rtc_compute_options,
    tags: *const rtc_bytes,
    tags_len: usize,
) -> rtc_result {
    with_options(options, |o| {
        // SAFETY: the caller passes an array valid for its length.
        let tags: Vec<String> = unsafe { self::tags(tags, tags_len) }?.into_iter().map(str::to_owned).collect();
        update(o, |c| c.tags(&tags));
        Ok(())
    })
}

/// Sets the lifetime of a computed entry: RTC_LIFETIME_DEFAULT (the default),
/// RTC_LIFETIME_FOREVER, or seconds, at most 3153600000 (100 years): a bad
/// lifetime is refused here, at once, as rtc_cache_set refuses it.
///
/// Errors: RTC_RESULT_NULL_PARAMETER, RTC_RESULT_INVALID_ARGUMENT.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_compute_options_set_lifetime(options: *mut rtc_compute_options, lifetime: i64) -> rtc_result {
    with_options(options, |o| {
        let lifetime = self::lifetime(lifetime)?;
        update(o, |c| c.lifetime(lifetime));
        Ok(())
    })
}

/// Turns the stampede lock on or off (default off). With the lock, on a miss
/// only one caller (across threads and processes) computes; the others wait
/// up to the lock timeout and reuse its value.
///
/// Errors: RTC_RESULT_NULL_PARAMETER.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_compute_options_set_lock(options: *mut rtc_compute_options, lock: bool) -> rtc_result {
    with_options(options, |o| {
        update(o, |c| c.lock(lock));
        Ok(())
    })
}

/// Sets the lock timeout in milliseconds (default 5000): how long the lock is
/// held at most, and how long waiters wait before computing themselves. At
/// most 86400000 (one day), as on every surface.
///
/// Errors: RTC_RESULT_NULL_PARAMETER, RTC_RESULT_INVALID_ARGUMENT (over one day).
#[unsafe(no_mangle)]
pub extern "C" fn rtc_compute_options_set_lock_timeout_ms(
    options: *mut rtc_compute_options,
    timeout_ms: u64,
) -> rtc_result {
    with_options(options, |o| {
        let timeout = Duration::from_millis(timeout_ms);
        if timeout > rtc_core::MAX_LOCK_TIMEOUT {
            return Err(Failure::new(
                RTC_RESULT_INVALID_ARGUMENT,
                format!("lock timeout {timeout_ms} ms is over the maximum of one day (86400000 ms)"),
            ));
        }
        update(o, |c| c.lock_timeout(timeout));
        Ok(())
    })
}

/// Marks the cached function as a method, or not (reported to the hook; set
/// by rtc_compute_options_new_call when a type name is given).
///
/// Errors: RTC_RESULT_NULL_PARAMETER.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_compute_options_set_method(options: *mut rtc_compute_options, method: bool) -> rtc_result {
    with_options(options, |o| {
        update(o, |c| c.method(method));
        Ok(())
    })
}

/// Sets a pointer handed to the hook as `call_userdata` for calls made with
/// these options. rtc never dereferences or frees it.
///
/// Errors: RTC_RESULT_NULL_PARAMETER (options).
#[unsafe(no_mangle)]
pub extern "C" fn rtc_compute_options_set_hook_userdata(
    options: *mut rtc_compute_options,
    call_userdata: *mut c_void,
) -> rtc_result {
    with_options(options, |o| {
        let data = Arc::new(CallUserdata(call_userdata as usize));
        update(o, |c| c.hook_userdata(data));
        Ok(())
    })
}

/// Appends `len` bytes at `data` to the value being computed (copied; `data`
/// may be NULL only when `len` is 0). Call it only from inside the compute
/// callback that received `output`.
///
/// A write that would make the value larger than the cache's max_value_size
/// is refused at once with RTC_RESULT_INVALID_ARGUMENT (nothing is
/// appended), so the callback learns it while computing, as rtc_cache_set
/// would tell it; rtc_cache_get_or_compute then fails with the same code
/// whatever the callback returns, nothing is cached and the lock is released.
///
/// Errors: RTC_RESULT_NULL_PARAMETER, RTC_RESULT_INVALID_ARGUMENT.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_output_write(output: *mut rtc_output, data: *const u8, len: usize) -> rtc_result {
    guard(|| {
        // SAFETY: the caller passes the live output of its callback and a
        // buffer valid for its length.
        let output = unsafe { handle_mut(output, "output") }?;
        let data = unsafe { bytes(data, len, "data") }?;
        let total = output.bytes.len().saturating_add(data.len());
        if total > output.limit {
            let message = format!(
                "the computed value would be {total} bytes, over max_value_size ({} bytes): it cannot be cached",
                output.limit
            );
            output.refused = Some(message.clone());
            return Err(Failure::new(RTC_RESULT_INVALID_ARGUMENT, message));
        }
        output.bytes.extend_from_slice(data);
        Ok(RTC_RESULT_OK)
    })
}

/// Returns the cached value for `options`, or computes it by calling
/// `compute(userdata, output)`, stores it, and returns it.
///
/// On RTC_RESULT_OK, writes a new value to `*value_out` (cached or computed):
/// the caller owns it and frees it with rtc_value_free. A Redis failure never
/// fails the call: the value is computed, returned, and the failure reported
/// to the hook (rtc_cache_info.error). With the lock on, concurrent callers
/// of the same cold key compute once. `compute` runs on the calling thread,
/// at most once per call, and may call rtc itself. Thread-safe.
///
/// Errors: RTC_RESULT_NULL_PARAMETER (cache, options, compute, value_out),
/// RTC_RESULT_COMPUTE_FAILED (the callback returned non-zero; nothing is
/// stored), RTC_RESULT_INVALID_ARGUMENT (rtc_output_write refused a write
/// past max_value_size; nothing is stored, and no value is returned).
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_get_or_compute(
    cache: *const rtc_cache,
    options: *const rtc_compute_options,
    compute: rtc_compute_callback,
    userdata: *mut c_void,
    value_out: *mut *mut rtc_value,
) -> rtc_result {
    guard(|| {
        let cache = cache_ref(cache)?;
        // SAFETY (both): the caller passes live options and a writable out-pointer.
        let options = unsafe { handle(options, "options") }?;
        let out = unsafe { out(value_out, "value_out") }?;
        let compute = compute.ok_or_else(|| Failure::null("compute"))?;
        let bytes = cache.get_or_compute_bytes(&options.options, || {
            let limit = cache.config().max_value_size;
            let mut output = rtc_output { bytes: Vec::new(), limit, refused: None };
            // SAFETY: the caller passes a valid callback; `output` lives until it returns.
            let code = unsafe { compute(userdata, &mut output) };
            // A refused write left the value incomplete: never return or store it.
            if let Some(refused) = output.refused {
                return Err(Failure::new(RTC_RESULT_INVALID_ARGUMENT, format!("{refused}; nothing was cached")));
            }
            match code {
                0 => Ok(output.bytes),
                code => Err(Failure::new(
                    RTC_RESULT_COMPUTE_FAILED,
                    format!("the compute callback returned {code}; nothing was cached"),
                )),
            }
        })?;
        out.put(into_handle(rtc_value { bytes }));
        Ok(RTC_RESULT_OK)
    })
}

/// Reads the entry of `options` (its key and tags), and on a miss takes the
/// stampede lock if the options have the lock on (waiting up to the lock
/// timeout for another holder). For callers that compute elsewhere: the same
/// get-or-compute as rtc_cache_get_or_compute in two calls, with the same
/// hook report (a hit is reported here, a miss by rtc_cache_set_and_unlock).
///
/// - RTC_RESULT_OK: a hit; writes a new value to `*value_out` (the caller
///   frees it with rtc_value_free).
/// - RTC_RESULT_MISS: writes a new ticket to `*ticket_out`: compute the value,
///   then call rtc_cache_set_and_unlock, or give up with rtc_ticket_free. The
///   ticket holds the lock (rtc_ticket_holds_lock) unless the lock was off,
///   the wait for another holder timed out, or Redis failed.
///
/// The same guarantees as rtc_cache_get_or_compute: with the lock on, the
/// callers of this process that miss one key meet first, so one gets the
/// ticket and the others wait (up to the lock timeout) and get its value as
/// a hit, also when Redis is unreachable (where its lock cannot hold them
/// off); freeing the ticket hands the computation to one of them. When Redis
/// fails, the fail-safe value (rtc_cache_builder_set_fail_safe) is returned
/// as a hit if there is one; otherwise the ticket stores nothing, and
/// rtc_cache_set_and_unlock (or rtc_ticket_free) reports the Redis error to
/// the hook and returns it: never silent.
///
/// Only one of the out-parameters is written. Thread-safe.
///
/// Errors: RTC_RESULT_NULL_PARAMETER.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_get_or_lock(
    cache: *const rtc_cache,
    options: *const rtc_compute_options,
    value_out: *mut *mut rtc_value,
    ticket_out: *mut *mut rtc_ticket,
) -> rtc_result {
    guard(|| {
        let cache = cache_ref(cache)?;
        // SAFETY (all): the caller passes live options and writable out-pointers.
        let options = unsafe { handle(options, "options") }?;
        let value_out = unsafe { out(value_out, "value_out") }?;
        let ticket_out = unsafe { out(ticket_out, "ticket_out") }?;
        Ok(match cache.get_or_lock(&options.options) {
            GetOrLock::Hit(hit) => {
                let (bytes, _) = hit.finish();
                value_out.put(into_handle(rtc_value { bytes }));
                RTC_RESULT_OK
            }
            // A failed lookup's ticket too: it leads this process's flight,
            // and its end reports the error.
            GetOrLock::Locked(ticket) | GetOrLock::Miss(ticket) => {
                ticket_out.put(into_handle(rtc_ticket { ticket, owner: TicketOwner::Blocking(cache.clone()) }));
                RTC_RESULT_MISS
            }
        })
    })
}

/// Stores `value` (`value_len` bytes, copied; NULL only when `value_len` is 0)
/// under the ticket's tag snapshot for `lifetime` (RTC_LIFETIME_DEFAULT,
/// RTC_LIFETIME_FOREVER, or seconds), then releases the ticket's lock and
/// wakes the waiters, in one round trip, and calls the hook.
///
/// Consumes `ticket` whatever the result (on an error its lock is released
/// without storing): do not use or free it afterwards. If a tag was
/// invalidated since rtc_cache_get_or_lock, the value is stored where no
/// reader looks, as it is stale. Thread-safe.
///
/// Errors: RTC_RESULT_NULL_PARAMETER, RTC_RESULT_INVALID_ARGUMENT (value over
/// max_value_size, bad lifetime, a ticket of another cache), and Redis errors.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_set_and_unlock(
    cache: *const rtc_cache,
    ticket: *mut rtc_ticket,
    value: *const u8,
    value_len: usize,
    lifetime: i64,
) -> rtc_result {
    consume_blocking_ticket(
        ticket,
        "rtc_async_set_and_unlock",
        || {
            let cache = cache_ref(cache)?;
            // SAFETY: the caller passes a buffer valid for its length.
            let value = unsafe { bytes(value, value_len, "value") }?;
            Ok((cache, value, self::lifetime(lifetime)?))
        },
        |mut ticket, (cache, value, lifetime)| {
            ticket.set_lifetime(lifetime);
            match cache.set_and_unlock(ticket, Ok::<_, rtc_core::Error>(value)).error {
                Some(error) => Err(error.into()),
                None => Ok(RTC_RESULT_OK),
            }
        },
    )
}

/// Ends a ticket whose computation failed, as rtc_cache_get_or_compute
/// ends one when its callback fails: if fail-safe is on
/// (rtc_cache_builder_set_fail_safe) and has a value for the ticket's
/// entry, writes it to `*value_out` (free it with rtc_value_free), releases
/// the lock, reports a stale hit to the hook and returns RTC_RESULT_OK;
/// otherwise releases the ticket as rtc_ticket_free does and returns
/// RTC_RESULT_MISS. Consumes `ticket` whatever the result. Thread-safe.
///
/// Errors: RTC_RESULT_NULL_PARAMETER, RTC_RESULT_INVALID_ARGUMENT (a ticket
/// of the non-blocking API); on an error the ticket is released.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_cache_fail_and_unlock(
    cache: *const rtc_cache,
    ticket: *mut rtc_ticket,
    value_out: *mut *mut rtc_value,
) -> rtc_result {
    consume_blocking_ticket(
        ticket,
        "rtc_async_fail_and_unlock",
        || {
            let cache = cache_ref(cache)?;
            // SAFETY: the caller passes a writable out-pointer.
            let value_out = unsafe { out(value_out, "value_out") }?;
            Ok((cache, value_out))
        },
        |ticket, (cache, value_out)| {
            Ok(match cache.fail_and_unlock(ticket).0 {
                Some(bytes) => {
                    value_out.put(into_handle(rtc_value { bytes }));
                    RTC_RESULT_OK
                }
                None => RTC_RESULT_MISS,
            })
        },
    )
}

/// Runs a blocking call that consumes `ticket`, as `nonblocking::ticket_op`
/// does for the non-blocking ones: refuses a NULL ticket; releases the
/// ticket and fails the call when it is the non-blocking API's (whose
/// counterpart, `async_counterpart`, the error names) or when `check`
/// refuses the other arguments; otherwise hands the ticket and what `check`
/// read to `work`.
fn consume_blocking_ticket<T>(
    ticket: *mut rtc_ticket,
    async_counterpart: &str,
    check: impl FnOnce() -> Result<T, Failure>,
    work: impl FnOnce(Ticket, T) -> Result<rtc_result, Failure>,
) -> rtc_result {
    guard(|| {
        if ticket.is_null() {
            return Err(Failure::null("ticket"));
        }
        // SAFETY: non-NULL, and the caller passes a ticket from rtc, once.
        let rtc_ticket { ticket, owner } = *unsafe { Box::from_raw(ticket) };
        if let TicketOwner::NonBlocking(_) = owner {
            owner.release(ticket);
            return Err(Failure::new(
                RTC_RESULT_INVALID_ARGUMENT,
                format!("a ticket of the non-blocking API: pass it to {async_counterpart} (it was released)"),
            ));
        }
        let checked = match check() {
            Ok(checked) => checked,
            Err(failure) => {
                owner.release(ticket);
                return Err(failure);
            }
        };
        // `owner` holds a handle on the ticket's cache: dropped only once
        // `work` is done, so that cache outlives the call.
        work(ticket, checked)
    })
}

/// Returns true when the ticket holds the stampede lock (false if NULL).
#[unsafe(no_mangle)]
pub extern "C" fn rtc_ticket_holds_lock(ticket: *const rtc_ticket) -> bool {
    guard_or(false, || {
        // SAFETY: the caller passes NULL or a live ticket.
        unsafe { handle(ticket, "ticket") }.is_ok_and(|t| t.ticket.holds_lock())
    })
}

/// Returns how long rtc_cache_get_or_lock waited for another caller's lock,
/// in milliseconds (0 if NULL).
#[unsafe(no_mangle)]
pub extern "C" fn rtc_ticket_lock_waiting_ms(ticket: *const rtc_ticket) -> u64 {
    guard_or(0, || {
        // SAFETY: the caller passes NULL or a live ticket.
        unsafe { handle(ticket, "ticket") }.map_or(0, |t| t.ticket.stats().waiting_ms)
    })
}

/// Frees a ticket without storing a value: releases its lock (if it holds
/// one, one round trip) and wakes the waiters, so one of them can compute.
/// NULL is a no-op.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_ticket_free(ticket: *mut rtc_ticket) {
    guard_or((), || {
        if !ticket.is_null() {
            // SAFETY: non-NULL, and the caller passes a ticket from rtc, once.
            let rtc_ticket { ticket, owner } = *unsafe { Box::from_raw(ticket) };
            owner.release(ticket);
        }
    })
}
