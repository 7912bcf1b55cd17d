//! rtc in a host that contains no rtc code: the example plugin
//! (`core/component/example-plugin`, a `wasi:http` handler importing
//! `rtc:cache/cache`) plugged with `rtc_standalone.wasm`, run by the stock
//! `wasmtime serve` (wasmtime-cli 48, installed into `target/tools` by the
//! test command) on a real redis-server, and driven as its users would:
//! HTTP requests.
//!
//! Needs `bash core/component/compose.sh` (the README's test command runs
//! it) and, for the Python crossing, the package's venv that
//! `ffi/python/test.sh` makes (`target/py-pkg-venv`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rtc_core::{Cache, Config, Lifetime};
use rtc_tests::cprog::root;
use rtc_tests::server::free_port;
use rtc_tests::{RedisServer, unique_namespace};

/// The page's key and tags, as the plugin names them.
fn page(name: &str) -> (String, [String; 2]) {
    let key = format!("page:{name}");
    (key.clone(), ["pages".to_owned(), key])
}

/// `wasmtime serve` running the composed plugin.
struct Serve {
    child: Child,
    port: u16,
}

impl Serve {
    /// Starts the host on a free port for Redis at `url` and namespace `ns`,
    /// with `timeout` as the plugin's socket and connect timeouts; returns
    /// once it listens.
    fn start(url: &str, ns: &str, timeout: &str) -> Serve {
        let wasmtime = root().join("target/tools/bin/wasmtime");
        let plugin = root().join("target/wasm32-wasip2/component/rtc_example_plugin_composed.wasm");
        for (path, how) in [(&wasmtime, "the test command installs it"), (&plugin, "bash core/component/compose.sh")] {
            assert!(path.is_file(), "{} is missing ({how})", path.display());
        }
        let port = free_port();
        let mut child = Command::new(&wasmtime)
            .arg("serve")
            // wasi:cli (the environment), and TCP to Redis.
            .args(["-S", "cli", "-S", "inherit-network"])
            .args(["--addr", &format!("127.0.0.1:{port}")])
            .args(["--env", &format!("RTC_REDIS_URL={url}")])
            .args(["--env", &format!("RTC_NAMESPACE={ns}")])
            .args(["--env", &format!("RTC_SOCKET_TIMEOUT={timeout}")])
            .args(["--env", &format!("RTC_CONNECT_TIMEOUT={timeout}")])
            .arg(&plugin)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run wasmtime serve");
        // It says when it listens (after compiling the component).
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let mut seen = String::new();
        loop {
            match lines.next() {
                Some(Ok(line)) if line.contains("Serving HTTP on") => break,
                Some(Ok(line)) => seen.push_str(&line),
                _ => panic!("wasmtime serve stopped before serving: {seen}"),
            }
        }
        // Keep draining its stderr, so it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Serve { child, port }
    }

    /// Sends one request and reads the whole response.
    fn request(&self, method: &str, path: &str) -> Response {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to wasmtime serve");
        // A generous bound: the test must fail, not hang, if the plugin never answers.
        stream.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
        write!(stream, "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .expect("send");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).expect("read the response");
        Response::parse(&raw)
    }

    /// `GET /page/NAME`.
    fn page(&self, name: &str) -> Response {
        self.request("GET", &format!("/page/{name}"))
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP response.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn parse(raw: &[u8]) -> Response {
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("end of headers");
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).expect("status");
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let mut body = raw[split + 4..].to_vec();
        if headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked")) {
            body = unchunk(&body);
        }
        Response { status, headers, body }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// What the plugin says of the cache: `hit`, `computed` or `bypass`.
    fn rtc(&self) -> &str {
        self.header("x-rtc").unwrap_or("(none)")
    }
}

/// Decodes a chunked body.
fn unchunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").expect("chunk size line");
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16).expect("chunk size");
        data = &data[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

fn native(redis: &RedisServer, ns: &str) -> Cache {
    Cache::new(Config::default().namespace(ns).url(Some(redis.url()))).expect("native cache")
}

#[test]
fn a_hit_costs_no_computation_and_an_invalidation_recomputes() {
    let redis = RedisServer::start();
    let ns = unique_namespace("serve");
    let serve = Serve::start(&redis.url(), &ns, "5");

    let first = serve.page("home");
    assert_eq!((first.status, first.rtc()), (200, "computed"), "{first:?}");
    // Every computation draws a new number: the same bytes mean nothing was computed.
    let second = serve.page("home");
    assert_eq!((second.status, second.rtc()), (200, "hit"), "{second:?}");
    assert_eq!(second.body, first.body, "a hit serves the stored page");
    // Another page is its own entry.
    assert_eq!(serve.page("about").rtc(), "computed");

    let invalidated = serve.request("POST", "/invalidate/page:home");
    assert_eq!(invalidated.status, 200, "{invalidated:?}");
    let third = serve.page("home");
    assert_eq!(third.rtc(), "computed", "{third:?}");
    assert_ne!(third.body, first.body, "recomputed after the invalidation");
    assert_eq!(serve.page("about").rtc(), "hit", "page:home's tag is not about's");
    // `pages` is on every page.
    assert_eq!(serve.request("POST", "/invalidate/pages").status, 200);
    assert_eq!(serve.page("about").rtc(), "computed");
    assert_eq!(serve.request("GET", "/nowhere").status, 404);
}

#[test]
fn the_plugin_native_rust_and_python_share_pages_and_invalidations() {
    let redis = RedisServer::start();
    let ns = unique_namespace("serve-cross");
    let serve = Serve::start(&redis.url(), &ns, "5");
    let native = native(&redis, &ns);

    // The plugin computes; native reads the same bytes, under the same key and tags.
    let (key, tags) = page("home");
    let computed = serve.page("home");
    assert_eq!(computed.rtc(), "computed");
    assert_eq!(native.get_bytes(&key, &tags).expect("native get"), Some(computed.body.clone()));
    // Native invalidates; the plugin recomputes.
    native.invalidate("page:home").expect("invalidate");
    assert_eq!(serve.page("home").rtc(), "computed");
    // Native stores a page; the plugin serves it as a hit.
    let (key, tags) = page("native");
    native.set_bytes(&key, b"written by native Rust\n", &tags, Lifetime::Default).expect("native set");
    let served = serve.page("native");
    assert_eq!((served.rtc(), served.body.as_slice()), ("hit", &b"written by native Rust\n"[..]));

    // Python (the package, over librtc): reads the plugin's page, stores one, invalidates.
    let fresh = serve.page("py");
    assert_eq!(fresh.rtc(), "computed");
    let out = python(
        &redis,
        &ns,
        r#"
import sys
page = cache.get("page:py", tags=["pages", "page:py"])
sys.stdout.buffer.write(page)
cache.set("page:from-python", b"written by Python\n", tags=["pages", "page:from-python"])
"#,
    );
    assert_eq!(out, fresh.body, "Python reads the plugin's page");
    let served = serve.page("from-python");
    assert_eq!((served.rtc(), served.body.as_slice()), ("hit", &b"written by Python\n"[..]));
    assert_eq!(serve.page("home").rtc(), "hit");
    python(&redis, &ns, r#"cache.invalidate("pages")"#);
    for name in ["home", "from-python", "py"] {
        assert_eq!(serve.page(name).rtc(), "computed", "Python's invalidation of `pages` reached {name}");
    }

    // And the plugin's invalidation reaches both.
    let (key, tags) = page("home");
    assert!(native.get_bytes(&key, &tags).expect("get").is_some());
    assert_eq!(serve.request("POST", "/invalidate/pages").status, 200);
    assert_eq!(native.get_bytes(&key, &tags).expect("get"), None, "native sees the plugin's invalidation");
    let missed = python(
        &redis,
        &ns,
        r#"
from rtc import CacheMiss
try:
    cache.get("page:home", tags=["pages", "page:home"])
    print("hit")
except CacheMiss:
    print("miss")
"#,
    );
    assert_eq!(String::from_utf8_lossy(&missed).trim(), "miss", "Python sees the plugin's invalidation");
}

/// Runs `body` in the Python package's venv with `cache` bound to an
/// identity-serializer cache on `redis` and `ns`; returns its stdout.
fn python(redis: &RedisServer, ns: &str, body: &str) -> Vec<u8> {
    let venv =
        std::env::var_os("RTC_PY_PKG_VENV").map(PathBuf::from).unwrap_or_else(|| root().join("target/py-pkg-venv"));
    let python = venv.join("bin/python");
    assert!(python.is_file(), "{} is missing: run `bash ffi/python/test.sh` (the test command does)", python.display());
    let script = format!(
        "from rtc import RedisTaggedCache\n\
         cache = RedisTaggedCache(host='127.0.0.1', port={port}, namespace={ns:?}, \
         serializer=lambda v: v, unserializer=lambda d: d)\n{body}",
        port = redis.port(),
    );
    let out = Command::new(&python).arg("-c").arg(script).output().expect("run python");
    assert!(out.status.success(), "python failed: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

#[test]
fn redis_paused_or_stopped_gives_the_plugin_the_documented_error_and_it_recovers() {
    let mut redis = RedisServer::start();
    let ns = unique_namespace("serve-down");
    let serve = Serve::start(&redis.url(), &ns, "0.5");
    assert_eq!(serve.page("home").rtc(), "computed");

    // Paused: the socket timeout ends the call; the page is computed, not stored.
    redis.pause();
    let paused = std::panic::catch_unwind(|| serve.page("home"));
    redis.resume();
    let paused = paused.expect("a response while Redis is paused");
    assert_eq!((paused.status, paused.rtc()), (200, "bypass"), "{paused:?}");
    let error = paused.header("x-rtc-error").unwrap_or_default();
    assert!(error.starts_with("timeout:"), "{error}");
    assert_eq!(serve.page("home").rtc(), "hit", "back after the pause, the stored page is there");

    // Stopped: backend-unavailable, for the get-or-compute and the invalidation.
    redis.kill();
    let down = serve.page("home");
    assert_eq!((down.status, down.rtc()), (200, "bypass"), "{down:?}");
    let error = down.header("x-rtc-error").unwrap_or_default();
    assert!(error.starts_with("backend-unavailable:"), "{error}");
    let refused = serve.request("POST", "/invalidate/pages");
    assert_eq!(refused.status, 503, "{refused:?}");
    assert!(refused.header("x-rtc-error").unwrap_or_default().starts_with("backend-unavailable:"), "{refused:?}");

    // Back: the plugin caches again (the restarted server is empty).
    redis.restart();
    assert_eq!(serve.page("home").rtc(), "computed");
    assert_eq!(serve.page("home").rtc(), "hit");
}
