//! An example plugin component that uses rtc: a `wasi:http` handler that
//! serves a page expensive to compute, cached by rtc with tags and the
//! stampede lock, and a route that invalidates a tag.
//!
//! It imports `rtc:cache/cache` (its world, `wit/world.wit`) and exports
//! `wasi:http/incoming-handler`. `wac plug` fills the import with
//! `rtc_standalone.wasm`, and the result runs under `wasmtime serve` (or any
//! host of `wasi:http`), which knows nothing of rtc:
//!
//! ```text
//! cargo build --profile component --locked --target wasm32-wasip2 -p rtc-example-plugin
//! wac plug target/wasm32-wasip2/component/rtc_example_plugin.wasm \
//!     --plug target/wasm32-wasip2/component/rtc_standalone.wasm -o plugin.wasm
//! wasmtime serve -S cli -S inherit-network --env RTC_REDIS_URL=redis://127.0.0.1:6379 plugin.wasm
//! ```
//!
//! Routes:
//! - `GET /page/NAME`: the page NAME, under key `page:NAME` and tags
//!   `pages` and `page:NAME`. The header `x-rtc` says `hit` (from the cache,
//!   nothing computed), `computed` (this request computed and stored it) or
//!   `bypass` (the cache failed: the page was computed and not stored, and
//!   `x-rtc-error` carries the error, `case: message`).
//! - `POST /invalidate/TAG`: invalidates TAG (`pages` for every page):
//!   `200`, or `503` with the error.
//!
//! The namespace is `$RTC_NAMESPACE` (default `example`).
#![deny(missing_docs)]

#[allow(missing_docs)]
mod bindings {
    wit_bindgen::generate!({
        // rtc's WIT package, then this crate's world over it.
        path: ["../../../wit", "wit"],
        world: "rtc:example-plugin/plugin",
        generate_all,
    });
}

use bindings::rtc::cache::cache::{Cache, Config, Lifetime, LockOptions, Lookup, Ticket};
use bindings::rtc::cache::types::{Error, FunctionId};
use wasip2::http::types::{Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam};

/// How long a page lives in the cache, in seconds.
const PAGE_LIFETIME: u64 = 600;
/// How long the stampede lock is held at most, and waited for, in ms.
const LOCK_TIMEOUT_MS: u64 = 5_000;
/// Rounds of the page's "expensive" computation.
const WORK: u32 = 200_000;

/// The plugin: the root of the exported handler.
struct Plugin;

wasip2::http::proxy::export!(Plugin);

impl wasip2::exports::http::incoming_handler::Guest for Plugin {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let reply = route(&request.method(), &path);
        respond(out, reply);
    }
}

/// A response: status, headers and body.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Reply { status, headers: Vec::new(), body: body.into() }
    }

    fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }
}

/// Serves one request.
fn route(method: &Method, path: &str) -> Reply {
    let path = path.split('?').next().unwrap_or_default();
    match (method, path.strip_prefix("/page/"), path.strip_prefix("/invalidate/")) {
        (Method::Get, Some(name), _) if !name.is_empty() => page(name),
        (Method::Post, _, Some(tag)) if !tag.is_empty() => invalidate(tag),
        _ => Reply::new(404, "routes: GET /page/NAME, POST /invalidate/TAG\n"),
    }
}

/// Opens the cache of this request (an instance serves one request under
/// `wasmtime serve`; opening costs no round trip).
fn cache() -> Result<Cache, Error> {
    let namespace = std::env::var("RTC_NAMESPACE").unwrap_or_else(|_| "example".to_owned());
    Cache::open(&Config {
        namespace,
        default_lifetime: Some(PAGE_LIFETIME),
        lifetime_for_tags: None,
        disabled: false,
        in_local_memory: false,
        max_value_size: None,
    })
}

/// `GET /page/NAME`: get-or-compute under the stampede lock.
fn page(name: &str) -> Reply {
    let key = format!("page:{name}");
    let tags = vec!["pages".to_owned(), key.clone()];
    let options = LockOptions {
        lock_timeout_ms: Some(LOCK_TIMEOUT_MS),
        function: FunctionId { module: "example-plugin".into(), type_name: String::new(), function: "page".into() },
        arguments: name.as_bytes().to_vec(),
        method: false,
    };
    let lookup = cache().and_then(|cache| cache.get_or_lock(&key, &tags, &options).map(|lookup| (cache, lookup)));
    match lookup {
        Ok((_, Lookup::Hit(hit))) => {
            // The bytes are the page as stored: nothing to decode.
            let value = hit.value;
            bindings::rtc::cache::cache::Found::finish(hit.found);
            Reply::new(200, value).header("x-rtc", "hit")
        }
        Ok((cache, Lookup::Locked(ticket) | Lookup::Miss(ticket))) => store(&cache, ticket, compute(name)),
        Err(e) => Reply::new(200, compute(name)).header("x-rtc", "bypass").header("x-rtc-error", describe(&e)),
    }
}

/// Stores a computed page with its ticket (releasing the lock).
fn store(cache: &Cache, ticket: Ticket, page: Vec<u8>) -> Reply {
    match cache.set_and_unlock(ticket, &page, Lifetime::Default) {
        Ok(()) => Reply::new(200, page).header("x-rtc", "computed"),
        Err(e) => Reply::new(200, page).header("x-rtc", "bypass").header("x-rtc-error", describe(&e)),
    }
}

/// `POST /invalidate/TAG`.
fn invalidate(tag: &str) -> Reply {
    match cache().and_then(|cache| cache.invalidate(&[tag.to_owned()])) {
        Ok(()) => Reply::new(200, format!("invalidated {tag}\n")),
        Err(e) => Reply::new(503, format!("{}\n", describe(&e))).header("x-rtc-error", describe(&e)),
    }
}

/// The page: some work, and a number drawn at random, so that two
/// computations of one page never look alike (a hit returns the stored one).
fn compute(name: &str) -> Vec<u8> {
    let mut state: u64 = 0xcbf2_9ce4_8422_2325;
    for round in 0..WORK {
        for byte in name.bytes().chain(round.to_le_bytes()) {
            state = (state ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    let drawn = wasip2::random::random::get_random_u64();
    format!("page {name}: digest {state:016x}, computation {drawn:016x}\n").into_bytes()
}

/// `case: message`, as the `x-rtc-error` header carries it.
fn describe(e: &Error) -> String {
    let (case, message) = match e {
        Error::BackendUnavailable(m) => ("backend-unavailable", m),
        Error::Timeout(m) => ("timeout", m),
        Error::InvalidArgument(m) => ("invalid-argument", m),
        Error::Backend(m) => ("backend", m),
        Error::Other(m) => ("other", m),
    };
    // A header value is one line of visible characters.
    let message: String = message.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    format!("{case}: {message}")
}

/// Sends `reply` through the host's response slot.
fn respond(out: ResponseOutparam, reply: Reply) {
    let headers: Vec<(String, Vec<u8>)> =
        reply.headers.into_iter().map(|(name, value)| (name, value.into_bytes())).collect();
    let Ok(fields) = Fields::from_list(&headers) else {
        return; // dropping the slot answers 500: a header this code built is malformed
    };
    let response = OutgoingResponse::new(fields);
    let _ = response.set_status_code(reply.status);
    let Ok(body) = response.body() else {
        return;
    };
    ResponseOutparam::set(out, Ok(response));
    if let Ok(stream) = body.write() {
        // At most 4096 bytes per blocking write.
        for chunk in reply.body.chunks(4096) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                break;
            }
        }
    }
    let _ = OutgoingBody::finish(body, None);
}
