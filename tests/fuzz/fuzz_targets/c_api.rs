//! The C API's argument handling: fuzz-chosen builder settings, keys, tags,
//! values (any bytes, invalid UTF-8, zero lengths), NULL or real pointers,
//! compute callbacks and tickets, on an in-memory cache (plus a cache built
//! from the raw settings, which may name Redis, a cluster or a TLS authority:
//! built, never used, freed).
//!
//! Only what the C contract allows is passed: a pointer is NULL (with any
//! length) or points to at least `len` readable bytes, handles are live.
//! Invariants: every call returns a result code and never
//! `RTC_RESULT_PANIC`; out-parameters are written only on success; values
//! handed out are readable; everything is freed (LeakSanitizer checks).
#![no_main]

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::ptr::{null, null_mut};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rtc::*;

/// A byte buffer argument.
#[derive(Arbitrary, Debug)]
enum Buf {
    /// NULL, with any length: must be refused unless the length is 0.
    Null { len: usize },
    /// Real bytes with their length.
    Data(Vec<u8>),
    /// Real bytes with a shorter length.
    Prefix(Vec<u8>, u8),
}

impl Buf {
    fn raw(&self) -> (*const u8, usize) {
        match self {
            Buf::Null { len } => (null(), *len),
            Buf::Data(b) => (b.as_ptr(), b.len()),
            Buf::Prefix(b, n) => (b.as_ptr(), usize::from(*n).min(b.len())),
        }
    }
}

/// A NUL-terminated string argument: NULL, or bytes (maybe invalid UTF-8) up to the first NUL.
#[derive(Arbitrary, Debug)]
enum Text {
    Null,
    Bytes(Vec<u8>),
}

impl Text {
    fn c_string(&self) -> Option<CString> {
        match self {
            Text::Null => None,
            Text::Bytes(b) => {
                let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
                Some(CString::new(&b[..end]).expect("no interior NUL"))
            }
        }
    }
}

fn ptr(s: &Option<CString>) -> *const c_char {
    s.as_ref().map_or(null(), |s| s.as_ptr())
}

/// A list of tags argument.
#[derive(Arbitrary, Debug)]
enum TagList {
    Null { len: usize },
    List(Vec<Buf>),
}

/// Borrowed `rtc_bytes` over a [`TagList`]'s buffers (which must outlive it).
fn tag_array(t: &TagList) -> (Vec<rtc_bytes>, *const rtc_bytes, usize) {
    match t {
        TagList::Null { len } => (Vec::new(), null(), *len),
        TagList::List(list) => {
            let array: Vec<rtc_bytes> = list
                .iter()
                .take(8)
                .map(|b| {
                    let (data, len) = b.raw();
                    rtc_bytes { data, len }
                })
                .collect();
            let (p, n) = (array.as_ptr(), array.len());
            (array, p, n)
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Setting {
    Namespace(Text),
    Host(Text),
    Port(u16),
    Db(i64),
    Ssl(bool),
    Username(Text),
    Password(Text),
    Url(Text),
    ClusterNode(Text),
    SentinelNode(Text),
    SentinelMasterName(Text),
    TlsCa(Buf),
    SocketTimeoutMs(u64),
    ConnectTimeoutMs(u64),
    DefaultLifetime(u64),
    LifetimeForTags(u64),
    Disabled(bool),
    MaxValueSize(usize),
    Hook(bool),
}

#[derive(Arbitrary, Debug)]
enum OptionSetting {
    Tags(TagList),
    Lifetime(i64),
    Lock(bool),
    LockTimeoutMs(u64),
    Method(bool),
    HookUserdata(usize),
}

/// What a compute callback does.
#[derive(Arbitrary, Debug)]
struct Compute {
    writes: Vec<Buf>,
    null_output: bool,
    ret: i8,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Set {
        null_cache: bool,
        key: Buf,
        value: Buf,
        tags: TagList,
        lifetime: i64,
    },
    Get {
        null_cache: bool,
        key: Buf,
        tags: TagList,
        null_out: bool,
    },
    Delete {
        null_cache: bool,
        key: Buf,
        tags: TagList,
        null_out: bool,
    },
    Invalidate {
        null_cache: bool,
        tags: TagList,
    },
    InvalidateAll {
        null_cache: bool,
    },
    OptionsNew {
        key: Buf,
        null_out: bool,
    },
    OptionsNewCall {
        module: Text,
        type_name: Text,
        function: Text,
        arguments: Buf,
        null_out: bool,
    },
    OptionsSet {
        options: Option<u8>,
        setting: OptionSetting,
    },
    OptionsFree {
        options: u8,
    },
    GetOrCompute {
        options: Option<u8>,
        compute: Option<Compute>,
        null_out: bool,
    },
    GetOrLock {
        options: Option<u8>,
        null_value_out: bool,
        null_ticket_out: bool,
    },
    SetAndUnlock {
        ticket: Option<u8>,
        null_cache: bool,
        value: Buf,
        lifetime: i64,
    },
    TicketFree {
        ticket: u8,
    },
    TicketRead {
        ticket: Option<u8>,
    },
    ResultName(u32),
}

#[derive(Arbitrary, Debug)]
struct Input {
    null_builder: bool,
    settings: Vec<Setting>,
    ops: Vec<Op>,
}

/// A value no rtc call writes: an out-parameter still holding it was left untouched.
fn sentinel<T>() -> *mut T {
    std::ptr::dangling_mut::<T>().wrapping_byte_add(0x1000)
}

/// Checks a result code: any code but a caught panic.
fn ok(r: rtc_result, what: &str) -> rtc_result {
    if r == RTC_RESULT_PANIC {
        // SAFETY: rtc_last_error_message returns a NUL-terminated string.
        let msg = unsafe { CStr::from_ptr(rtc_last_error_message()) };
        panic!("{what} panicked inside rtc: {msg:?}");
    }
    // The message is always a readable string.
    // SAFETY: as above.
    let _ = unsafe { CStr::from_ptr(rtc_last_error_message()) }.to_bytes().len();
    r
}

/// Reads a value handed out by rtc, then frees it.
fn consume(value: *mut rtc_value) {
    assert!(
        !value.is_null() && value != sentinel(),
        "a value out-parameter was not written on success"
    );
    let (data, len) = (rtc_value_data(value), rtc_value_len(value));
    assert!(!data.is_null(), "rtc_value_data is never NULL for a value");
    // SAFETY: rtc promises `len` readable bytes at `data` until rtc_value_free.
    let bytes = unsafe { std::slice::from_raw_parts(data, len) };
    std::hint::black_box(bytes.iter().fold(0u8, |a, b| a ^ b));
    rtc_value_free(value);
}

unsafe extern "C" fn hook(userdata: *mut c_void, info: *const rtc_cache_info) {
    assert_eq!(userdata as usize, 0xC0FFEE, "the builder's userdata is passed through");
    let read = |b: rtc_bytes| {
        assert!(!b.data.is_null(), "rtc_bytes handed to C are never NULL");
        // SAFETY: rtc promises `len` readable bytes.
        std::hint::black_box(unsafe { std::slice::from_raw_parts(b.data, b.len) }.len())
    };
    read(rtc_cache_info_key(info));
    read(rtc_cache_info_arguments(info));
    let tags = rtc_cache_info_tags_len(info);
    for i in 0..=tags {
        // Out of range (i == tags) gives empty bytes, never NULL.
        read(rtc_cache_info_tag(info, i));
    }
    for s in [rtc_cache_info_function_module(info), rtc_cache_info_function_type(info), rtc_cache_info_function_name(info)] {
        assert!(!s.is_null());
        // SAFETY: NUL-terminated strings owned by rtc.
        let _ = unsafe { CStr::from_ptr(s) };
    }
    let message = rtc_cache_info_error_message(info);
    assert_eq!(message.is_null(), rtc_cache_info_error(info) == RTC_RESULT_OK, "a message exactly when there is an error");
    if !message.is_null() {
        // SAFETY: as above.
        let _ = unsafe { CStr::from_ptr(message) };
    }
}

unsafe extern "C" fn compute(userdata: *mut c_void, output: *mut rtc_output) -> c_int {
    // SAFETY: the harness passes a live `Compute`.
    let c = unsafe { &*(userdata as *const Compute) };
    for w in c.writes.iter().take(8) {
        let (data, len) = w.raw();
        let r = ok(
            rtc_output_write(if c.null_output { null_mut() } else { output }, data, len),
            "rtc_output_write",
        );
        let expected_ok = !c.null_output && (!data.is_null() || len == 0);
        assert_eq!(
            r == RTC_RESULT_OK,
            expected_ok,
            "rtc_output_write({data:?}, {len}) -> {r:?}"
        );
    }
    c_int::from(c.ret)
}

fn apply(builder: *mut rtc_cache_builder, s: &Setting) {
    let r = match s {
        Setting::Namespace(t) => rtc_cache_builder_set_namespace(builder, ptr(&t.c_string())),
        Setting::Host(t) => rtc_cache_builder_set_host(builder, ptr(&t.c_string())),
        Setting::Port(p) => rtc_cache_builder_set_port(builder, *p),
        Setting::Db(d) => rtc_cache_builder_set_db(builder, *d),
        Setting::Ssl(b) => rtc_cache_builder_set_ssl(builder, *b),
        Setting::Username(t) => rtc_cache_builder_set_username(builder, ptr(&t.c_string())),
        Setting::Password(t) => rtc_cache_builder_set_password(builder, ptr(&t.c_string())),
        Setting::Url(t) => rtc_cache_builder_set_url(builder, ptr(&t.c_string())),
        Setting::ClusterNode(t) => rtc_cache_builder_add_cluster_node(builder, ptr(&t.c_string())),
        Setting::SentinelNode(t) => rtc_cache_builder_add_sentinel_node(builder, ptr(&t.c_string())),
        Setting::SentinelMasterName(t) => rtc_cache_builder_set_sentinel_master_name(builder, ptr(&t.c_string())),
        Setting::TlsCa(b) => {
            let (p, n) = b.raw();
            rtc_cache_builder_set_tls_ca_cert(builder, p, n)
        }
        Setting::SocketTimeoutMs(ms) => rtc_cache_builder_set_socket_timeout_ms(builder, *ms),
        Setting::ConnectTimeoutMs(ms) => rtc_cache_builder_set_socket_connect_timeout_ms(builder, *ms),
        Setting::DefaultLifetime(s) => rtc_cache_builder_set_default_lifetime(builder, *s),
        Setting::LifetimeForTags(s) => rtc_cache_builder_set_lifetime_for_tags(builder, *s),
        Setting::Disabled(b) => rtc_cache_builder_set_disabled(builder, *b),
        Setting::MaxValueSize(n) => rtc_cache_builder_set_max_value_size(builder, *n),
        Setting::Hook(on) => rtc_cache_builder_set_hook(builder, on.then_some(hook as _), 0xC0FFEE as *mut c_void),
    };
    ok(r, "a builder setter");
    if builder.is_null() {
        assert_eq!(r, RTC_RESULT_NULL_PARAMETER);
    }
}

/// Keeps lock waits short: a held ticket makes the next locked call on its key
/// wait the whole lock timeout. Absurd values pass through (they must be refused).
fn lock_timeout_ms(ms: u64) -> u64 {
    if ms >= 1 << 62 { ms } else { ms % 4 }
}

fuzz_target!(|input: Input| {
    let builder = if input.null_builder {
        null_mut()
    } else {
        rtc_cache_builder_new()
    };
    for s in input.settings.iter().take(16) {
        apply(builder, s);
    }
    // The raw settings may name Redis, a cluster, a TLS authority: build, never use, free.
    let mut probe: *mut rtc_cache = sentinel();
    let r = ok(rtc_cache_new(builder, &mut probe), "rtc_cache_new (raw settings)");
    if r == RTC_RESULT_OK {
        assert!(probe != sentinel() && !probe.is_null());
        rtc_cache_free(probe);
    } else {
        assert_eq!(probe, sentinel(), "cache_out written on failure");
    }
    // The cache the operations run on: the same settings, in memory.
    ok(
        rtc_cache_builder_set_in_local_memory(builder, true),
        "set_in_local_memory",
    );
    let mut cache: *mut rtc_cache = sentinel();
    let r = ok(rtc_cache_new(builder, &mut cache), "rtc_cache_new (in memory)");
    if r != RTC_RESULT_OK {
        assert_eq!(cache, sentinel(), "cache_out written on failure");
        cache = null_mut();
    }
    ok(rtc_cache_new(builder, null_mut()), "rtc_cache_new with NULL cache_out");
    rtc_cache_builder_free(builder);

    let mut options: Vec<*mut rtc_compute_options> = Vec::new();
    let mut tickets: Vec<*mut rtc_ticket> = Vec::new();
    let pick = |list: &[*mut rtc_compute_options], i: Option<u8>| match i {
        Some(i) if !list.is_empty() => list[usize::from(i) % list.len()],
        _ => null_mut(),
    };
    for op in input.ops.iter().take(32) {
        let c = |null_cache: bool| if null_cache { null() } else { cache as *const rtc_cache };
        match op {
            Op::Set {
                null_cache,
                key,
                value,
                tags,
                lifetime,
            } => {
                let ((k, kl), (v, vl), (_t, tp, tl)) = (key.raw(), value.raw(), tag_array(tags));
                ok(
                    rtc_cache_set(c(*null_cache), k, kl, v, vl, tp, tl, *lifetime),
                    "rtc_cache_set",
                );
            }
            Op::Get {
                null_cache,
                key,
                tags,
                null_out,
            } => {
                let ((k, kl), (_t, tp, tl)) = (key.raw(), tag_array(tags));
                let mut out: *mut rtc_value = sentinel();
                let out_ptr = if *null_out { null_mut() } else { &mut out as *mut _ };
                let r = ok(rtc_cache_get(c(*null_cache), k, kl, tp, tl, out_ptr), "rtc_cache_get");
                if r == RTC_RESULT_OK {
                    consume(out);
                } else {
                    assert_eq!(out, sentinel(), "value_out written without a hit ({r:?})");
                }
            }
            Op::Delete {
                null_cache,
                key,
                tags,
                null_out,
            } => {
                let ((k, kl), (_t, tp, tl)) = (key.raw(), tag_array(tags));
                let mut deleted = false;
                let out_ptr = if *null_out {
                    null_mut()
                } else {
                    &mut deleted as *mut bool
                };
                ok(
                    rtc_cache_delete(c(*null_cache), k, kl, tp, tl, out_ptr),
                    "rtc_cache_delete",
                );
            }
            Op::Invalidate { null_cache, tags } => {
                let (_t, tp, tl) = tag_array(tags);
                ok(rtc_cache_invalidate(c(*null_cache), tp, tl), "rtc_cache_invalidate");
            }
            Op::InvalidateAll { null_cache } => {
                ok(rtc_cache_invalidate_all(c(*null_cache)), "rtc_cache_invalidate_all");
            }
            Op::OptionsNew { key, null_out } => {
                let (k, kl) = key.raw();
                let mut out: *mut rtc_compute_options = sentinel();
                let r = ok(
                    rtc_compute_options_new(k, kl, if *null_out { null_mut() } else { &mut out }),
                    "rtc_compute_options_new",
                );
                if r == RTC_RESULT_OK {
                    assert!(out != sentinel() && !out.is_null());
                    ok(rtc_compute_options_set_lock_timeout_ms(out, 2), "set_lock_timeout_ms");
                    options.push(out);
                } else {
                    assert_eq!(out, sentinel());
                }
            }
            Op::OptionsNewCall {
                module,
                type_name,
                function,
                arguments,
                null_out,
            } => {
                let (m, t, f) = (module.c_string(), type_name.c_string(), function.c_string());
                let (a, al) = arguments.raw();
                let mut out: *mut rtc_compute_options = sentinel();
                let r = ok(
                    rtc_compute_options_new_call(
                        ptr(&m),
                        ptr(&t),
                        ptr(&f),
                        a,
                        al,
                        if *null_out { null_mut() } else { &mut out },
                    ),
                    "rtc_compute_options_new_call",
                );
                if r == RTC_RESULT_OK {
                    assert!(out != sentinel() && !out.is_null());
                    ok(rtc_compute_options_set_lock_timeout_ms(out, 2), "set_lock_timeout_ms");
                    options.push(out);
                } else {
                    assert_eq!(out, sentinel());
                }
            }
            Op::OptionsSet { options: i, setting } => {
                let o = pick(&options, *i);
                let r = match setting {
                    OptionSetting::Tags(tags) => {
                        let (_t, tp, tl) = tag_array(tags);
                        rtc_compute_options_set_tags(o, tp, tl)
                    }
                    OptionSetting::Lifetime(l) => rtc_compute_options_set_lifetime(o, *l),
                    OptionSetting::Lock(b) => rtc_compute_options_set_lock(o, *b),
                    OptionSetting::LockTimeoutMs(ms) => {
                        rtc_compute_options_set_lock_timeout_ms(o, lock_timeout_ms(*ms))
                    }
                    OptionSetting::Method(b) => rtc_compute_options_set_method(o, *b),
                    OptionSetting::HookUserdata(u) => rtc_compute_options_set_hook_userdata(o, *u as *mut c_void),
                };
                ok(r, "an options setter");
            }
            Op::OptionsFree { options: i } => {
                if !options.is_empty() {
                    let o = options.swap_remove(usize::from(*i) % options.len());
                    rtc_compute_options_free(o);
                }
            }
            Op::GetOrCompute {
                options: i,
                compute: how,
                null_out,
            } => {
                let o = pick(&options, *i);
                let mut out: *mut rtc_value = sentinel();
                let callback: rtc_compute_callback = how.as_ref().map(|_| compute as _);
                let userdata = how.as_ref().map_or(null_mut(), |h| h as *const Compute as *mut c_void);
                let r = ok(
                    rtc_cache_get_or_compute(
                        cache,
                        o,
                        callback,
                        userdata,
                        if *null_out { null_mut() } else { &mut out },
                    ),
                    "rtc_cache_get_or_compute",
                );
                if r == RTC_RESULT_OK {
                    consume(out);
                } else {
                    assert_eq!(out, sentinel(), "value_out written on failure ({r:?})");
                }
            }
            Op::GetOrLock {
                options: i,
                null_value_out,
                null_ticket_out,
            } => {
                let o = pick(&options, *i);
                let mut value: *mut rtc_value = sentinel();
                let mut ticket: *mut rtc_ticket = sentinel();
                let r = ok(
                    rtc_cache_get_or_lock(
                        cache,
                        o,
                        if *null_value_out { null_mut() } else { &mut value },
                        if *null_ticket_out { null_mut() } else { &mut ticket },
                    ),
                    "rtc_cache_get_or_lock",
                );
                match r {
                    RTC_RESULT_OK => {
                        assert_eq!(ticket, sentinel(), "a hit writes no ticket");
                        consume(value);
                    }
                    RTC_RESULT_MISS => {
                        assert_eq!(value, sentinel(), "a miss writes no value");
                        assert!(ticket != sentinel() && !ticket.is_null());
                        tickets.push(ticket);
                    }
                    _ => assert!(
                        value == sentinel() && ticket == sentinel(),
                        "out-parameters written on failure ({r:?})"
                    ),
                }
            }
            Op::SetAndUnlock {
                ticket: i,
                null_cache,
                value,
                lifetime,
            } => {
                let t = match i {
                    Some(i) if !tickets.is_empty() => tickets.swap_remove(usize::from(*i) % tickets.len()),
                    _ => null_mut(),
                };
                let (v, vl) = value.raw();
                // Consumes the ticket whatever the result.
                ok(
                    rtc_cache_set_and_unlock(c(*null_cache), t, v, vl, *lifetime),
                    "rtc_cache_set_and_unlock",
                );
            }
            Op::TicketFree { ticket: i } => {
                if !tickets.is_empty() {
                    rtc_ticket_free(tickets.swap_remove(usize::from(*i) % tickets.len()));
                }
            }
            Op::TicketRead { ticket: i } => {
                let t = match i {
                    Some(i) if !tickets.is_empty() => tickets[usize::from(*i) % tickets.len()],
                    _ => null_mut(),
                };
                let holds = rtc_ticket_holds_lock(t);
                let waited = rtc_ticket_lock_waiting_ms(t);
                if t.is_null() {
                    assert!(!holds && waited == 0);
                }
            }
            Op::ResultName(code) => {
                let name = rtc_result_name(*code);
                assert!(!name.is_null());
                // SAFETY: a static NUL-terminated string.
                let _ = unsafe { CStr::from_ptr(name) };
            }
        }
    }
    for t in tickets {
        rtc_ticket_free(t);
    }
    for o in options {
        rtc_compute_options_free(o);
    }
    rtc_cache_free(cache);
    // NULL is a no-op everywhere.
    rtc_cache_free(null_mut());
    rtc_cache_builder_free(null_mut());
    rtc_value_free(null_mut());
    rtc_ticket_free(null_mut());
    rtc_compute_options_free(null_mut());
    assert!(rtc_value_data(null()).is_null() && rtc_value_len(null()) == 0);
    // SAFETY: a static NUL-terminated string.
    let _ = unsafe { CStr::from_ptr(rtc_version()) };
});
