//! The non-blocking API: every operation of the blocking one, started by a
//! call that returns at once and completed on threads librtc owns, with the
//! completions handed to the program through a file descriptor it adds to
//! its own event loop (epoll, libuv, libevent, asyncio), as libcurl's multi
//! interface and hiredis's async context do.
//!
//! The operations run on core's async API (`rtc_core::future::Cache`, a
//! multiplexed connection) on a tokio runtime of a few threads that the
//! context owns. A finished operation is queued and the descriptor (one end
//! of a socket pair) made readable; `rtc_async_take` hands out the queue.
//! Nothing of the program's runs on those threads: hooks are kept and run
//! by `rtc_async_take`, on the thread that calls it.

use std::collections::{HashMap, VecDeque};
use std::ffi::{CString, c_char, c_void};
use std::future::Future;
use std::io::{Read as _, Write as _};
use std::os::fd::AsRawFd as _;
use std::os::unix::net::UnixStream;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use rtc_core::{Cache, GetOrLock, Ticket};

use crate::boundary::{bytes, guard, guard_or, handle, into_handle, out, rtc_bytes, tags, text};
use crate::cache::{lifetime, rtc_cache_builder, rtc_value};
use crate::compute::{TicketOwner, rtc_compute_options, rtc_ticket};
use crate::error::{
    Failure, RTC_RESULT_CANCELLED, RTC_RESULT_FULL, RTC_RESULT_INVALID_ARGUMENT, RTC_RESULT_MISS, RTC_RESULT_OK,
    RTC_RESULT_PANIC, code_of, rtc_result,
};
use crate::hook::{DeferredHook, HookFn};
use crate::runtime::{Owner, RuntimeOwner};

/// The id of an operation of the non-blocking API: never 0, unique within
/// its context.
#[allow(non_camel_case_types)]
pub type rtc_op = u64;

/// A completion of rtc_async_set.
pub const RTC_OP_SET: u32 = 1;
/// A completion of rtc_async_get: RTC_RESULT_OK with `value`, or RTC_RESULT_MISS.
pub const RTC_OP_GET: u32 = 2;
/// A completion of rtc_async_delete: RTC_RESULT_OK if an entry was
/// deleted, RTC_RESULT_MISS if there was none.
pub const RTC_OP_DELETE: u32 = 3;
/// A completion of rtc_async_invalidate.
pub const RTC_OP_INVALIDATE: u32 = 4;
/// A completion of rtc_async_invalidate_all.
pub const RTC_OP_INVALIDATE_ALL: u32 = 5;
/// A completion of rtc_async_get_or_lock: RTC_RESULT_OK with `value` (a
/// hit), or RTC_RESULT_MISS with `ticket`.
pub const RTC_OP_GET_OR_LOCK: u32 = 6;
/// A completion of rtc_async_set_and_unlock.
pub const RTC_OP_SET_AND_UNLOCK: u32 = 7;
/// A completion of rtc_async_release.
pub const RTC_OP_RELEASE: u32 = 8;
/// A completion of rtc_async_fail_and_unlock: RTC_RESULT_OK with `value`
/// (the fail-safe value), or RTC_RESULT_MISS.
pub const RTC_OP_FAIL_AND_UNLOCK: u32 = 9;

/// Library threads of a context when rtc_async_new is given 0.
const DEFAULT_THREADS: u32 = 2;
/// Library threads a context may have at most.
const MAX_THREADS: u32 = 64;
/// Operations in flight when rtc_async_new is given 0.
const DEFAULT_MAX_IN_FLIGHT: usize = 1024;

/// One finished operation, as rtc_async_take hands it out.
///
/// `value` and `ticket` belong to the program once taken (free them with
/// rtc_value_free and rtc_ticket_free, or pass the ticket on);
/// `error_message` belongs to the context and stays valid until the next
/// rtc_async_take or rtc_async_free.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct rtc_completion {
    /// The operation's id, as its start call returned it.
    pub op: rtc_op,
    /// Which operation it was: one of the `RTC_OP_*` values.
    pub kind: u32,
    /// Its outcome: RTC_RESULT_OK, RTC_RESULT_MISS (see the `RTC_OP_*`
    /// values), RTC_RESULT_CANCELLED, or the error the blocking call would
    /// have returned.
    pub result: rtc_result,
    /// The userdata given when the operation started.
    pub userdata: *mut c_void,
    /// The value of a hit (RTC_OP_GET, RTC_OP_GET_OR_LOCK) or the fail-safe
    /// value (RTC_OP_FAIL_AND_UNLOCK), else NULL.
    pub value: *mut rtc_value,
    /// The ticket of a get-or-lock miss, else NULL.
    pub ticket: *mut rtc_ticket,
    /// Why it failed (NUL-terminated), "" when it did not.
    pub error_message: *const c_char,
}

/// A non-blocking cache: a cache (configured by a builder, as
/// rtc_cache_new makes one), the threads that run its operations, and the
/// queue of their completions.
///
/// Threading: every rtc_async_* call except rtc_async_free may be made from
/// any thread, concurrently; completions are usually taken by the thread
/// that runs the event loop. Nothing of the program runs on the library's
/// threads: the hook (rtc_cache_builder_set_hook) runs inside
/// rtc_async_take, on its caller's thread, before it returns completions.
/// A cancelled operation never calls the hook (its userdata may be gone),
/// nor does a ticket released by rtc_ticket_free.
#[allow(non_camel_case_types)]
pub struct rtc_async {
    shared: Arc<Shared>,
    owner: Owner,
    hook: Option<(HookFn, usize)>,
    /// The error messages of the last batch taken.
    messages: Mutex<Vec<CString>>,
}

/// What the library threads and the program's calls share.
struct Shared {
    state: Mutex<State>,
    /// Written (one byte) when the queue stops being empty.
    wake_write: UnixStream,
    /// The program's descriptor: readable while completions wait.
    wake_read: UnixStream,
    max_in_flight: usize,
    next_op: AtomicU64,
}

tokio::task_local! {
    /// The operation a task runs, so that the hook calls it makes are kept
    /// for it (and dropped with it when it is cancelled).
    static OP: rtc_op;
}

#[derive(Default)]
struct State {
    in_flight: HashMap<rtc_op, InFlight>,
    ready: VecDeque<Done>,
    /// Whether a byte is in the socket pair for the completions in `ready`.
    signaled: bool,
    /// Hook calls of operations in flight, run by the next rtc_async_take.
    hooks: Vec<(rtc_op, DeferredHook)>,
}

struct InFlight {
    kind: u32,
    userdata: usize,
    /// Set for operations that stop when cancelled (reads and plain
    /// writes); get-or-lock, set-and-unlock and release run to their end
    /// when cancelled, so that a lock is never left held.
    abort: Option<tokio::task::AbortHandle>,
}

/// A finished operation, queued.
struct Done {
    op: rtc_op,
    kind: u32,
    userdata: usize,
    finished: Finished,
}

/// What an operation produced.
#[derive(Default)]
struct Finished {
    result: rtc_result,
    value: Option<Vec<u8>>,
    ticket: Option<Ticket>,
    message: Option<String>,
}

impl Finished {
    fn code(result: rtc_result) -> Self {
        Finished { result, ..Finished::default() }
    }

    fn failed(e: &rtc_core::Error) -> Self {
        Finished { result: code_of(e.kind()), message: Some(e.to_string()), ..Finished::default() }
    }

    fn of<T>(outcome: rtc_core::Result<T>, ok: impl FnOnce(T) -> Finished) -> Self {
        match outcome {
            Ok(value) => ok(value),
            Err(e) => Finished::failed(&e),
        }
    }
}

impl Shared {
    /// Queues `done` and makes the descriptor readable.
    fn push(&self, state: &mut State, done: Done) {
        state.ready.push_back(done);
        if !state.signaled {
            state.signaled = true;
            // A full socket buffer cannot happen (one byte while signaled);
            // a failed write would leave the program unwoken, so it is
            // retried on the next completion (`signaled` stays false).
            if (&self.wake_write).write_all(&[1]).is_err() {
                state.signaled = false;
            }
        }
    }

    /// The operation `op` finished: queued unless it was cancelled, in
    /// which case its result comes back (to be cleaned up).
    fn finish(&self, op: rtc_op, finished: Finished) -> Option<Finished> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match state.in_flight.remove(&op) {
            Some(flight) => {
                self.push(&mut state, Done { op, kind: flight.kind, userdata: flight.userdata, finished });
                None
            }
            None => Some(finished),
        }
    }

    /// Keeps a hook call of operation `op` for the next rtc_async_take,
    /// unless `op` is no longer in flight (cancelled: the program may have
    /// freed what the call's userdata points to).
    fn defer(&self, op: rtc_op, hook: DeferredHook) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.in_flight.contains_key(&op) {
            state.hooks.push((op, hook));
        }
    }

    /// Cancels `op`: its completion (RTC_RESULT_CANCELLED) is queued now,
    /// and its hook calls not yet run are dropped.
    fn cancel(&self, state: &mut State, op: rtc_op) -> bool {
        let Some(flight) = state.in_flight.remove(&op) else { return false };
        state.hooks.retain(|(of, _)| *of != op);
        if let Some(abort) = &flight.abort {
            abort.abort();
        }
        let finished = Finished {
            result: RTC_RESULT_CANCELLED,
            message: Some("the operation was cancelled".into()),
            ..Finished::default()
        };
        self.push(state, Done { op, kind: flight.kind, userdata: flight.userdata, finished });
        true
    }
}

/// Polls a future, turning a panic into an error result (a panic must
/// never lose a completion, nor unwind out of a library thread).
struct CatchPanic<F>(F);

impl<F: Future<Output = Finished>> Future for CatchPanic<F> {
    type Output = Finished;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Finished> {
        // SAFETY: the inner future is never moved out of its pin.
        let inner = unsafe { self.map_unchecked_mut(|s| &mut s.0) };
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(poll) => poll,
            Err(_) => Poll::Ready(Finished {
                result: RTC_RESULT_PANIC,
                message: Some("rtc panicked (a bug in rtc, please report it)".into()),
                ..Finished::default()
            }),
        }
    }
}

impl rtc_async {
    /// Starts `work` as operation `kind`; its id. Refused when full.
    fn start<F>(&self, kind: u32, userdata: *mut c_void, abortable: bool, work: F) -> Result<rtc_op, Failure>
    where
        F: Future<Output = Finished> + Send + 'static,
    {
        let op = self.reserve(kind, userdata)?;
        self.spawn(op, abortable, work);
        Ok(op)
    }

    /// Takes a place in flight for an operation about to start; its id.
    fn reserve(&self, kind: u32, userdata: *mut c_void) -> Result<rtc_op, Failure> {
        let op = self.shared.next_op.fetch_add(1, Ordering::Relaxed);
        let mut state = self.shared.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.in_flight.len() >= self.shared.max_in_flight {
            return Err(Failure::new(
                RTC_RESULT_FULL,
                format!(
                    "{} operations are in flight, the most this context allows: take completions first",
                    self.shared.max_in_flight
                ),
            ));
        }
        state.in_flight.insert(op, InFlight { kind, userdata: userdata as usize, abort: None });
        Ok(op)
    }

    /// Runs `work` as the reserved operation `op`.
    fn spawn<F>(&self, op: rtc_op, abortable: bool, work: F)
    where
        F: Future<Output = Finished> + Send + 'static,
    {
        let shared = Arc::clone(&self.shared);
        let owner = self.owner.clone();
        let task = self.owner.runtime.spawn(async move {
            let finished = OP.scope(op, CatchPanic(work)).await;
            // Cancelled meanwhile: nobody takes it, so a ticket is released.
            if let Some(Finished { ticket: Some(ticket), .. }) = shared.finish(op, finished) {
                let _ = owner.cache.release(ticket).await;
            }
        });
        if abortable {
            let mut state = self.shared.state.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(flight) = state.in_flight.get_mut(&op) {
                flight.abort = Some(task.abort_handle());
            }
        }
    }
}

/// Writes the id of an operation just started.
fn started(op_out: *mut rtc_op, start: impl FnOnce() -> Result<rtc_op, Failure>) -> rtc_result {
    guard(|| {
        // SAFETY: the caller passes NULL or a writable pointer.
        let op_out = unsafe { out(op_out, "op_out") }?;
        op_out.put(start()?);
        Ok(RTC_RESULT_OK)
    })
}

fn context<'a>(ctx: *const rtc_async) -> Result<&'a rtc_async, Failure> {
    // SAFETY: every caller documents that it takes NULL or a live context.
    unsafe { handle(ctx, "ctx") }
}

/// Creates a non-blocking cache from `builder` (its whole configuration,
/// hook included) with `threads` library threads (0: 2; at most 64) and at
/// most `max_in_flight` operations in flight (0: 1024). Does not connect.
///
/// The caller owns the context and frees it with rtc_async_free.
///
/// Errors: RTC_RESULT_NULL_PARAMETER, RTC_RESULT_INVALID_ARGUMENT (a bad
/// configuration, more than 64 threads), RTC_RESULT_OTHER (the threads or
/// the descriptor could not be made).
#[unsafe(no_mangle)]
pub extern "C" fn rtc_async_new(
    builder: *const rtc_cache_builder,
    threads: u32,
    max_in_flight: usize,
    ctx_out: *mut *mut rtc_async,
) -> rtc_result {
    guard(|| {
        // SAFETY: the caller passes NULL or a live builder, and NULL or a writable pointer.
        let b = unsafe { handle(builder, "builder") }?;
        let ctx_out = unsafe { out(ctx_out, "ctx_out") }?;
        let threads = if threads == 0 { DEFAULT_THREADS } else { threads };
        if threads > MAX_THREADS {
            return Err(Failure::new(
                RTC_RESULT_INVALID_ARGUMENT,
                format!("{threads} threads asked for: at most {MAX_THREADS}"),
            ));
        }
        let other =
            |what: &str, e: std::io::Error| Failure::new(crate::error::RTC_RESULT_OTHER, format!("{what}: {e}"));
        let (wake_write, wake_read) =
            UnixStream::pair().map_err(|e| other("cannot make the completion descriptor", e))?;
        wake_write.set_nonblocking(true).map_err(|e| other("cannot make the completion descriptor", e))?;
        wake_read.set_nonblocking(true).map_err(|e| other("cannot make the completion descriptor", e))?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake_write,
            wake_read,
            max_in_flight: if max_in_flight == 0 { DEFAULT_MAX_IN_FLIGHT } else { max_in_flight },
            next_op: AtomicU64::new(1),
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads as usize)
            .thread_name("rtc-async")
            .enable_all()
            .build()
            .map_err(|e| other("cannot start the library threads", e))?;
        let handle = runtime.handle().clone();
        let mut cache = Cache::builder().config(b.config.clone());
        if b.hook.is_some() {
            let hooks = Arc::downgrade(&shared);
            cache = cache.hook(move |event| {
                // Outside an operation (a ticket released in the background),
                // nothing reports: no completion would carry it.
                if let (Some(shared), Ok(op)) = (hooks.upgrade(), OP.try_with(|op| *op)) {
                    shared.defer(op, DeferredHook::capture(event));
                }
            });
        }
        // The async backend's connections are made on the runtime.
        let cache = {
            let _entered = handle.enter();
            cache.build_async()?
        };
        let owner = Owner { cache, runtime: handle, keep: Arc::new(RuntimeOwner(Some(runtime))) };
        ctx_out.put(into_handle(rtc_async { shared, owner, hook: b.hook, messages: Mutex::new(Vec::new()) }));
        Ok(RTC_RESULT_OK)
    })
}

/// Returns the descriptor to add to the program's event loop: readable
/// (level-triggered) while completions wait to be taken; -1 if `ctx` is
/// NULL. Owned by the context: never read, write or close it.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_async_fd(ctx: *const rtc_async) -> i32 {
    guard_or(-1, || context(ctx).map_or(-1, |c| c.shared.wake_read.as_raw_fd()))
}

/// Takes up to `max` completions into `completions` (an array of `max`
/// structs of `completion_size` bytes each: pass sizeof(rtc_completion));
/// returns how many. Never blocks. First runs the hook for the operations
/// that reported since the last call, on this thread: every hook call of an
/// operation runs before (in the same call as) its completion is returned,
/// never after, so the program may free a call's userdata once it holds
/// the completion.
///
/// Completions come in the order the operations finished. When fewer than
/// `max` are returned, none is left and the descriptor is no longer
/// readable (until the next one). Returns 0 if `ctx` or `completions` is
/// NULL, or `completion_size` is smaller than this first version of the
/// struct.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_async_take(
    ctx: *const rtc_async,
    completions: *mut rtc_completion,
    max: usize,
    completion_size: usize,
) -> usize {
    guard_or(0, || {
        let Ok(ctx) = context(ctx) else { return 0 };
        let taking = !completions.is_null() && completion_size >= std::mem::size_of::<rtc_completion>();
        // The hook calls and the completions are taken under one lock: an
        // operation defers its hook calls before it finishes, so every hook
        // call of a completion handed out here runs first, in this call.
        // (Taken one after the other, a completion could overtake its
        // report, and the program free the report's userdata before the
        // next call ran it.)
        let (hooks, batch): (Vec<(rtc_op, DeferredHook)>, Vec<Done>) = {
            let mut state = ctx.shared.state.lock().unwrap_or_else(PoisonError::into_inner);
            let hooks = std::mem::take(&mut state.hooks);
            let n = if taking { max.min(state.ready.len()) } else { 0 };
            let batch = state.ready.drain(..n).collect();
            if taking && state.ready.is_empty() && state.signaled {
                let mut sink = [0u8; 64];
                while matches!((&ctx.shared.wake_read).read(&mut sink), Ok(n) if n > 0) {}
                state.signaled = false;
            }
            (hooks, batch)
        };
        if let Some((f, userdata)) = ctx.hook {
            for (_, hook) in &hooks {
                // SAFETY: the builder's hook and userdata, as its owner promised.
                unsafe { hook.call(f, userdata as *mut c_void) };
            }
        }
        if !taking {
            return 0;
        }
        let mut messages = ctx.messages.lock().unwrap_or_else(PoisonError::into_inner);
        messages.clear();
        for (i, done) in batch.into_iter().enumerate() {
            let Finished { result, value, ticket, message } = done.finished;
            let message = CString::new(message.unwrap_or_default().replace('\0', "\\0")).unwrap_or_default();
            let completion = rtc_completion {
                op: done.op,
                kind: done.kind,
                result,
                userdata: done.userdata as *mut c_void,
                value: value.map_or(std::ptr::null_mut(), |bytes| into_handle(rtc_value { bytes })),
                ticket: ticket.map_or(std::ptr::null_mut(), |ticket| {
                    into_handle(rtc_ticket { ticket, owner: TicketOwner::NonBlocking(ctx.owner.clone()) })
                }),
                error_message: message.as_ptr(),
            };
            messages.push(message);
            // SAFETY: the caller passes an array of `max` elements of
            // `completion_size` bytes, at least our struct's size.
            unsafe { completions.byte_add(i * completion_size).write_unaligned(completion) };
        }
        messages.len()
    })
}

/// Cancels operation `op`: its completion, RTC_RESULT_CANCELLED, is queued
/// at once. A read or a set, delete or invalidation stops where it is (a
/// write may or may not have happened); a get-or-lock, set-and-unlock or
/// release finishes in the background, releasing its lock. Returns
/// RTC_RESULT_OK, or RTC_RESULT_MISS when `op` is not in flight (it
/// finished: its completion is queued or taken).
///
/// Errors: RTC_RESULT_NULL_PARAMETER.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_async_cancel(ctx: *const rtc_async, op: rtc_op) -> rtc_result {
    guard(|| {
        let ctx = context(ctx)?;
        let mut state = ctx.shared.state.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(if ctx.shared.cancel(&mut state, op) { RTC_RESULT_OK } else { RTC_RESULT_MISS })
    })
}

/// Cancels every operation in flight (see rtc_async_cancel); returns how
/// many. Call it before rtc_async_free to get back the userdata of every
/// operation as a completion. 0 if `ctx` is NULL.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_async_cancel_all(ctx: *const rtc_async) -> usize {
    guard_or(0, || {
        let Ok(ctx) = context(ctx) else { return 0 };
        let mut state = ctx.shared.state.lock().unwrap_or_else(PoisonError::into_inner);
        let ops: Vec<rtc_op> = state.in_flight.keys().copied().collect();
        ops.into_iter().filter(|&op| ctx.shared.cancel(&mut state, op)).count()
    })
}

/// Returns how many operations are in flight (started, not yet completed
/// nor cancelled); 0 if `ctx` is NULL.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_async_in_flight(ctx: *const rtc_async) -> usize {
    guard_or(0, || {
        context(ctx).map_or(0, |c| c.shared.state.lock().unwrap_or_else(PoisonError::into_inner).in_flight.len())
    })
}

/// Frees a context. Operations still in flight are cancelled (as by
/// rtc_async_cancel_all) and their completions, with those not taken, are
/// dropped: their values and tickets are freed (a ticket's lock released in
/// the background), their userdata is not handed back. Does not wait for
/// Redis. NULL is a no-op. Must not run concurrently with other calls on
/// the same context; tickets from it stay valid.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_async_free(ctx: *mut rtc_async) {
    guard_or((), || {
        if ctx.is_null() {
            return;
        }
        // SAFETY: non-NULL, and the caller passes a context from rtc_async_new, once.
        let ctx = unsafe { Box::from_raw(ctx) };
        let mut state = ctx.shared.state.lock().unwrap_or_else(PoisonError::into_inner);
        let ops: Vec<rtc_op> = state.in_flight.keys().copied().collect();
        for op in ops {
            ctx.shared.cancel(&mut state, op);
        }
        for done in state.ready.drain(..) {
            if let Some(ticket) = done.finished.ticket {
                ctx.owner.clone().release_in_background(ticket);
            }
        }
    })
}

/// Starts rtc_cache_set: stores `value` under `key` and `tags` for
/// `lifetime`. Its completion: RTC_RESULT_OK or an error. All buffers are
/// copied before the call returns. The operation's id goes to `*op_out`.
///
/// Errors (of the call; the operation's own go to its completion):
/// RTC_RESULT_NULL_PARAMETER, RTC_RESULT_INVALID_UTF8,
/// RTC_RESULT_INVALID_ARGUMENT (a bad lifetime), RTC_RESULT_FULL.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn rtc_async_set(
    ctx: *const rtc_async,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    tags: *const rtc_bytes,
    tags_len: usize,
    lifetime: i64,
    userdata: *mut c_void,
    op_out: *mut rtc_op,
) -> rtc_result {
    started(op_out, || {
        let ctx = context(ctx)?;
        // SAFETY (all): the caller passes buffers valid for their lengths.
        let key = unsafe { text(key, key_len, "key") }?.to_owned();
        let value = unsafe { bytes(value, value_len, "value") }?.to_vec();
        let tags = owned_tags(unsafe { self::tags(tags, tags_len) }?);
        let lifetime = self::lifetime(lifetime)?;
        let cache = ctx.owner.cache.clone();
        ctx.start(RTC_OP_SET, userdata, true, async move {
            Finished::of(cache.set_bytes(&key, &value, &tags, lifetime).await, |()| Finished::code(RTC_RESULT_OK))
        })
    })
}

/// Starts rtc_cache_get: reads `key` under `tags`. Its completion:
/// RTC_RESULT_OK with `value` (the program frees it with rtc_value_free),
/// RTC_RESULT_MISS, or an error. Buffers are copied.
///
/// Errors: RTC_RESULT_NULL_PARAMETER, RTC_RESULT_INVALID_UTF8, RTC_RESULT_FULL.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_async_get(
    ctx: *const rtc_async,
    key: *const u8,
    key_len: usize,
    tags: *const rtc_bytes,
    tags_len: usize,
    userdata: *mut c_void,
    op_out: *mut rtc_op,
) -> rtc_result {
    started(op_out, || {
        let ctx = context(ctx)?;
        // SAFETY (both): the caller passes buffers valid for their lengths.
        let key = unsafe { text(key, key_len, "key") }?.to_owned();
        let tags = owned_tags(unsafe { self::tags(tags, tags_len) }?);
        let cache = ctx.owner.cache.clone();
        ctx.start(RTC_OP_GET, userdata, true, async move {
            Finished::of(cache.get_bytes(&key, &tags).await, |found| match found {
                Some(bytes) => Finished { result: RTC_RESULT_OK, value: Some(bytes), ..Finished::default() },
                None => Finished::code(RTC_RESULT_MISS),
            })
        })
    })
}

/// Starts rtc_cache_delete. Its completion: RTC_RESULT_OK if an entry was
/// deleted, RTC_RESULT_MISS if there was none, or an error.
///
/// Errors: RTC_RESULT_NULL_PARAMETER, RTC_RESULT_INVALID_UTF8, RTC_RESULT_FULL.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_async_delete(
    ctx: *const rtc_async,
    key: *const u8,
    key_len: usize,
    tags: *const rtc_bytes,
    tags_len: usize,
    userdata: *mut c_void,
    op_out: *mut rtc_op,
) -> rtc_result {
    started(op_out, || {
        let ctx = context(ctx)?;
        // SAFETY (both): the caller passes buffers valid for their lengths.
        let key = unsafe { text(key, key_len, "key") }?.to_owned();
        let tags = owned_tags(unsafe { self::tags(tags, tags_len) }?);
        let cache = ctx.owner.cache.clone();
        ctx.start(RTC_OP_DELETE, userdata, true, async move {
            Finished::of(cache.delete(&key, &tags).await, |deleted| {
                Finished::code(if deleted { RTC_RESULT_OK } else { RTC_RESULT_MISS })
            })
        })
    })
}

/// Starts rtc_cache_invalidate: invalidates every entry carrying any of
/// `tags`. Its completion: RTC_RESULT_OK or an error.
///
/// Errors: RTC_RESULT_NULL_PARAMETER, RTC_RESULT_INVALID_UTF8, RTC_RESULT_FULL.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_async_invalidate(
    ctx: *const rtc_async,
    tags: *const rtc_bytes,
    tags_len: usize,
    userdata: *mut c_void,
    op_out: *mut rtc_op,
) -> rtc_result {
    started(op_out, || {
        let ctx = context(ctx)?;
        // SAFETY: the caller passes an array valid for its length.
        let tags = owned_tags(unsafe { self::tags(tags, tags_len) }?);
        let cache = ctx.owner.cache.clone();
        ctx.start(RTC_OP_INVALIDATE, userdata, true, async move {
            Finished::of(cache.invalidate(&tags).await, |()| Finished::code(RTC_RESULT_OK))
        })
    })
}

/// Starts rtc_cache_invalidate_all. Its completion: RTC_RESULT_OK or an error.
///
/// Errors: RTC_RESULT_NULL_PARAMETER, RTC_RESULT_FULL.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_async_invalidate_all(
    ctx: *const rtc_async,
    userdata: *mut c_void,
    op_out: *mut rtc_op,
) -> rtc_result {
    started(op_out, || {
        let ctx = context(ctx)?;
        let cache = ctx.owner.cache.clone();
        ctx.start(RTC_OP_INVALIDATE_ALL, userdata, true, async move {
            Finished::of(cache.invalidate_all().await, |()| Finished::code(RTC_RESULT_OK))
        })
    })
}

/// Starts rtc_cache_get_or_lock for `options` (copied). A wait for another
/// holder of the lock runs on the library's threads, never the caller's.
/// Its completion: RTC_RESULT_OK with `value` (a hit), or RTC_RESULT_MISS
/// with `ticket`: compute the value, then rtc_async_set_and_unlock (or
/// rtc_async_release to give up). Cancelled, it still finishes in the
/// background and releases what it took.
///
/// Errors: RTC_RESULT_NULL_PARAMETER, RTC_RESULT_FULL.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_async_get_or_lock(
    ctx: *const rtc_async,
    options: *const rtc_compute_options,
    userdata: *mut c_void,
    op_out: *mut rtc_op,
) -> rtc_result {
    started(op_out, || {
        let ctx = context(ctx)?;
        // SAFETY: the caller passes NULL or live options.
        let options = unsafe { handle(options, "options") }?.options.clone();
        let cache = ctx.owner.cache.clone();
        ctx.start(RTC_OP_GET_OR_LOCK, userdata, false, async move {
            match cache.get_or_lock(&options).await {
                GetOrLock::Hit(hit) => {
                    let (bytes, _) = hit.finish();
                    Finished { result: RTC_RESULT_OK, value: Some(bytes), ..Finished::default() }
                }
                GetOrLock::Locked(ticket) | GetOrLock::Miss(ticket) => {
                    Finished { result: RTC_RESULT_MISS, ticket: Some(ticket), ..Finished::default() }
                }
            }
        })
    })
}

/// Starts rtc_cache_set_and_unlock: stores `value` (copied) under the
/// ticket's tag snapshot for `lifetime`, releases its lock and runs the
/// hook (in rtc_async_take). Consumes `ticket` whatever the result. Its
/// completion: RTC_RESULT_OK or an error.
///
/// Errors: RTC_RESULT_NULL_PARAMETER, RTC_RESULT_INVALID_ARGUMENT (a bad
/// lifetime, a ticket of the blocking API), RTC_RESULT_FULL; on an error
/// the ticket is released.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_async_set_and_unlock(
    ctx: *const rtc_async,
    ticket: *mut rtc_ticket,
    value: *const u8,
    value_len: usize,
    lifetime: i64,
    userdata: *mut c_void,
    op_out: *mut rtc_op,
) -> rtc_result {
    ticket_op(ctx, ticket, RTC_OP_SET_AND_UNLOCK, userdata, op_out, |cache, mut ticket| {
        // SAFETY: the caller passes a buffer valid for its length.
        let value = match unsafe { bytes(value, value_len, "value") }.map(<[u8]>::to_vec) {
            Ok(value) => value,
            Err(failure) => return Err((failure, Box::new(ticket))),
        };
        match self::lifetime(lifetime) {
            Ok(lifetime) => ticket.set_lifetime(lifetime),
            Err(failure) => return Err((failure, Box::new(ticket))),
        }
        Ok(async move {
            match cache.set_and_unlock(ticket, Ok::<_, rtc_core::Error>(value)).await.error {
                Some(error) => Finished::failed(&error),
                None => Finished::code(RTC_RESULT_OK),
            }
        })
    })
}

/// Starts rtc_ticket_free's release: gives up the ticket, releasing its
/// lock and waking the waiters. Consumes `ticket`. Its completion:
/// RTC_RESULT_OK (a failed release is logged; the lock expires after its
/// timeout).
///
/// Errors: RTC_RESULT_NULL_PARAMETER, RTC_RESULT_INVALID_ARGUMENT (a ticket
/// of the blocking API), RTC_RESULT_FULL; on an error the ticket is released.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_async_release(
    ctx: *const rtc_async,
    ticket: *mut rtc_ticket,
    userdata: *mut c_void,
    op_out: *mut rtc_op,
) -> rtc_result {
    ticket_op(ctx, ticket, RTC_OP_RELEASE, userdata, op_out, |cache, ticket| {
        Ok(async move {
            let _ = cache.release(ticket).await;
            Finished::code(RTC_RESULT_OK)
        })
    })
}

/// Starts rtc_cache_fail_and_unlock: ends a ticket whose computation
/// failed. Consumes `ticket`. Its completion: RTC_RESULT_OK with the
/// fail-safe value of the ticket's entry (fail-safe on and one kept; the
/// lock released, a stale hit reported to the hook), or RTC_RESULT_MISS
/// once the ticket is released (no fail-safe value).
///
/// Errors: RTC_RESULT_NULL_PARAMETER, RTC_RESULT_INVALID_ARGUMENT (a ticket
/// of the blocking API), RTC_RESULT_FULL; on an error the ticket is released.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_async_fail_and_unlock(
    ctx: *const rtc_async,
    ticket: *mut rtc_ticket,
    userdata: *mut c_void,
    op_out: *mut rtc_op,
) -> rtc_result {
    ticket_op(ctx, ticket, RTC_OP_FAIL_AND_UNLOCK, userdata, op_out, |cache, ticket| {
        Ok(async move {
            match cache.fail_and_unlock(ticket).await.0 {
                Some(bytes) => Finished { result: RTC_RESULT_OK, value: Some(bytes), ..Finished::default() },
                None => Finished::code(RTC_RESULT_MISS),
            }
        })
    })
}

/// Starts an operation that consumes `ticket`, releasing it when the call
/// fails.
fn ticket_op<F>(
    ctx: *const rtc_async,
    ticket: *mut rtc_ticket,
    kind: u32,
    userdata: *mut c_void,
    op_out: *mut rtc_op,
    work: impl FnOnce(rtc_core::future::Cache, Ticket) -> Result<F, (Failure, Box<Ticket>)>,
) -> rtc_result
where
    F: Future<Output = Finished> + Send + 'static,
{
    guard(|| {
        if ticket.is_null() {
            return Err(Failure::null("ticket"));
        }
        // SAFETY: non-NULL, and the caller passes a ticket from rtc, once.
        let rtc_ticket { ticket, owner } = *unsafe { Box::from_raw(ticket) };
        let ctx = match context(ctx) {
            Ok(ctx) => ctx,
            Err(failure) => {
                owner.release(ticket);
                return Err(failure);
            }
        };
        if let TicketOwner::Blocking(_) = owner {
            owner.release(ticket);
            return Err(Failure::new(
                RTC_RESULT_INVALID_ARGUMENT,
                "a ticket of the blocking API: pass it to rtc_cache_set_and_unlock (it was released)",
            ));
        }
        // SAFETY: the caller passes NULL or a writable pointer.
        let op_out = match unsafe { out(op_out, "op_out") } {
            Ok(op_out) => op_out,
            Err(failure) => {
                owner.release(ticket);
                return Err(failure);
            }
        };
        let op = match ctx.reserve(kind, userdata) {
            Ok(op) => op,
            Err(failure) => {
                owner.release(ticket);
                return Err(failure);
            }
        };
        match work(ctx.owner.cache.clone(), ticket) {
            Ok(future) => ctx.spawn(op, false, future),
            Err((failure, ticket)) => {
                ctx.shared.state.lock().unwrap_or_else(PoisonError::into_inner).in_flight.remove(&op);
                owner.release(*ticket);
                return Err(failure);
            }
        }
        op_out.put(op);
        Ok(RTC_RESULT_OK)
    })
}

fn owned_tags(tags: Vec<&str>) -> Vec<String> {
    tags.into_iter().map(str::to_owned).collect()
}
