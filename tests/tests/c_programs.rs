//! librtc from C and C++: the programs of `tests/c/` are compiled with
//! `-Wall -Wextra -Werror` against `include/rtc.h`, linked against both
//! `librtc.so` and `librtc.a` from `target/release` (built by `cargo build
//! --release`, which the README's test command runs first), run under
//! AddressSanitizer with leak checking, each against its own real
//! `redis-server`, and their exit status and output are checked.

use std::path::Path;
use std::process::{Command, Output};

use rtc_core::{Cache, ComputeOptions, FunctionId, Lifetime};
use rtc_tests::cprog::{Link, Options, compile, compile_with, lib_dir, out_dir, root, run, run_checked};
use rtc_tests::{RedisServer, unique_namespace};

/// Every program is linked both ways.
const BOTH: [Link; 2] = [Link::Shared, Link::Static];

/// librtc.so's SONAME, as `readelf -d` shows it: `librtc.so.0.MINOR` while
/// the version is 0.y, `librtc.so.MAJOR` from 1.0 on.
fn soname() -> String {
    let (major, minor) = (env!("CARGO_PKG_VERSION_MAJOR"), env!("CARGO_PKG_VERSION_MINOR"));
    if major == "0" { format!("librtc.so.0.{minor}") } else { format!("librtc.so.{major}") }
}

#[test]
fn librtc_so_has_a_soname() {
    let out = run_checked(Command::new("readelf").arg("-d").arg(lib_dir().join("librtc.so")), "readelf -d");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("Library soname: [{}]", soname())), "{text}");
}

/// Whether `program` is dynamically linked to librtc.
fn needs_librtc_so(program: &Path) -> bool {
    let out = run_checked(Command::new("readelf").arg("-d").arg(program), "readelf -d");
    String::from_utf8_lossy(&out.stdout).contains(&format!("[{}]", soname()))
}

#[test]
fn scenario_table_through_the_c_library() {
    let table = rtc_tests::scenarios::table();
    let steps: usize = table.iter().map(|s| s.steps.len()).sum();
    let path = rtc_tests::tests_dir().join("scenarios.txt");
    for link in BOTH {
        let program = compile("scenarios.c", link);
        let redis = RedisServer::start();
        let ns = unique_namespace(&format!("c-scenarios-{link:?}"));
        let out = run(&program, &[&redis.url(), path.to_str().expect("UTF-8 path"), &ns]);
        // The C parser must have read the same table as the Rust one.
        let summary = format!("c-scenarios: {} scenarios, {steps} steps", table.len());
        assert!(out.contains(&summary), "want {summary:?} in:\n{out}");
        assert!(out.contains(&format!("c-scenarios: {} passed, 0 failed", table.len())), "{out}");
    }
}

#[test]
fn scenario_table_through_the_c_library_on_a_cluster() {
    let table = rtc_tests::scenarios::table();
    let path = rtc_tests::tests_dir().join("scenarios.txt");
    let cluster = rtc_tests::RedisCluster::start(3, 0);
    let seeds = format!("cluster:{}", cluster.urls().join(","));
    let program = compile("scenarios.c", Link::Static);
    let ns = unique_namespace("c-scenarios-cluster");
    let out = run(&program, &[&seeds, path.to_str().expect("UTF-8 path"), &ns]);
    assert!(out.contains(&format!("c-scenarios: {} passed, 0 failed", table.len())), "{out}");
}

#[test]
fn the_c_scenario_runner_reports_a_wrong_expectation() {
    // A table whose expectations are wrong must fail: the runner really checks.
    let table = "scenario wrong_value\nset k v a\nget k a hit other\n\nscenario wrong_miss\nset k v a\nget k a miss\n";
    let path = out_dir().join("wrong-scenarios.txt");
    std::fs::write(&path, table).expect("write a doctored table");
    let program = compile("scenarios.c", Link::Shared);
    let redis = RedisServer::start();
    let ns = unique_namespace("c-scenarios-wrong");
    let out =
        Command::new(&program).args([&redis.url(), path.to_str().expect("UTF-8 path"), &ns]).output().expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL wrong_value (line 3): get hit a wrong value"), "{stdout}");
    assert!(stdout.contains("FAIL wrong_miss (line 7): get must miss"), "{stdout}");
}

#[test]
fn many_threads_share_one_cache_and_the_lock_computes_once() {
    for link in BOTH {
        let program = compile("threads.c", link);
        let redis = RedisServer::start(); // its own server: the program counts blocked clients
        let ns = unique_namespace("c-threads");
        let dead_port = rtc_tests::server::free_port(); // nothing listens there
        let out = run(&program, &[&redis.url(), &redis.port().to_string(), &ns, &dead_port.to_string()]);
        assert!(out.contains("lock: 48 callers, 1 computation(s), 47 waiters"), "{out}");
        assert!(out.contains("split: 48 callers, 1 ticket(s), 47 hits"), "{out}");
        assert!(out.contains("split, Redis down: 48 callers, 1 ticket(s), 47 hits"), "{out}");
        assert!(out.contains(" 0 failed"), "{out}");
    }
}

/// The non-blocking API in an epoll loop (tests/c/event_loop.c): 64 gets in
/// flight, a get-or-compute under the lock computed once, the in-flight
/// bound, cancellation, a Redis that is down, freeing with an operation in
/// flight, fail-safe after a failed computation (both APIs), the hook on
/// the loop's thread, and each call's report reaching
/// it before its completion (3200 calls, each freeing its report at once).
#[test]
fn the_non_blocking_api_runs_in_an_epoll_loop() {
    for link in BOTH {
        let program = compile("event_loop.c", link);
        let redis = RedisServer::start();
        let ns = unique_namespace("c-event-loop");
        let dead_port = rtc_tests::server::free_port(); // nothing listens there
        let out = run(&program, &[&redis.url(), &ns, &dead_port.to_string()]);
        assert!(out.contains("gets: 64 hits, 1 miss"), "{out}");
        assert!(out.contains("lock: 16 callers, 1 ticket(s), 15 hits"), "{out}");
        assert!(out.contains("bound: full at 3, cancelled 1, 2 hits after the store"), "{out}");
        assert!(out.contains("fail-safe: 3 failed computations served the fail-safe value, 2 missed"), "{out}");
        assert!(out.contains("redis down: 3 operations failed with BACKEND_UNAVAILABLE"), "{out}");
        assert!(out.contains("reports: 3200 calls, 0 reported after their completion"), "{out}");
        assert!(out.contains(" 0 off the loop's thread"), "{out}");
        assert!(out.contains("event-loop: ") && out.contains(" 0 failed"), "{out}");
    }
}

/// The non-blocking API driven by libuv from C++ (tests/c/libuv_loop.cpp,
/// Debian's libuv1-dev): 100 gets in flight, a get-or-compute under the
/// lock computed once.
#[test]
fn the_non_blocking_api_runs_in_a_libuv_loop_from_cpp() {
    for link in BOTH {
        let program = compile_with("libuv_loop.cpp", link, Options { libs: &["-luv"], ..Options::default() });
        let redis = RedisServer::start();
        let ns = unique_namespace("cpp-libuv");
        let out = run(&program, &[&redis.url(), &ns]);
        assert!(out.contains("libuv: 101 gets (100 hits, 1 miss), lock: 20 callers, 1 ticket(s), 19 hits"), "{out}");
        assert!(out.contains(" 0 failed"), "{out}");
    }
}

#[test]
fn bad_input_and_failures_are_result_codes() {
    for link in BOTH {
        let program = compile("bad_input.c", link);
        let redis = RedisServer::start();
        let dead_port = rtc_tests::server::free_port(); // nothing listens there
        let ns = unique_namespace("c-bad-input");
        let out = run(&program, &[&redis.url(), &dead_port.to_string(), &ns]);
        assert!(out.contains("c-bad-input: ") && out.contains(" 0 failed"), "{out}");
    }
}

#[test]
fn cpp_program() {
    for link in BOTH {
        let program = compile("cpp_program.cpp", link);
        let redis = RedisServer::start();
        let out = run(&program, &[&redis.url(), &unique_namespace("cpp")]);
        assert!(out.contains("c++: ") && out.contains(" 0 failed"), "{out}");
    }
}

/// Serialises C bytes as one CBOR byte string, as librtc's
/// `rtc_compute_options_new_call` does with its arguments.
struct ByteString<'a>(&'a [u8]);

impl serde::Serialize for ByteString<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

#[test]
fn entries_and_invalidations_cross_between_c_and_rust() {
    let program = compile("crossover.c", Link::Shared);
    let redis = RedisServer::start();
    let ns = unique_namespace("c-crossover");
    let rust = Cache::builder().namespace(ns.as_str()).url(Some(redis.url())).build().expect("build");
    let call = |args: &[u8]| {
        ComputeOptions::call(FunctionId::new("app::users", "", "load"), &ByteString(args)).expect("encode")
    };

    rust.set_bytes("r1", b"from-rust", ["shared", "r"], Lifetime::Default).expect("set r1");
    rust.set_bytes("r2", b"rust-keep", ["keep"], Lifetime::Default).expect("set r2");
    let computed = rust.get_or_compute_bytes(&call(&[3]), || Ok::<_, String>(b"r-call".to_vec())).expect("compute");
    assert_eq!(computed, b"r-call");

    let out = run(&program, &[&redis.url(), &ns, "1"]);
    assert!(out.contains(" 0 failed"), "{out}");

    // What C wrote, Rust reads; what C invalidated, Rust no longer sees.
    assert_eq!(rust.get_bytes("c1", ["shared"]).expect("get c1"), Some(b"from-c".to_vec()));
    assert_eq!(rust.get_bytes("c2", ["keep2"]).expect("get c2"), Some(b"c-keep".to_vec()));
    assert_eq!(rust.get_bytes("c3", ["shared"]).expect("get c3"), Some(b"c-computed".to_vec()));
    assert_eq!(rust.get_bytes("r2", ["keep"]).expect("get r2"), None, "C's invalidation of [keep] crosses over");
    // The key C derived from a function identity and arguments is Rust's.
    let cached = rust
        .get_or_compute_bytes(&call(&[1, 2]), || Err::<Vec<u8>, _>("C computed it: this must not run"))
        .expect("a hit");
    assert_eq!(cached, b"c-call");

    rust.invalidate("shared").expect("invalidate shared");
    rust.set_bytes("r3", b"rust-3", ["keep2"], Lifetime::Default).expect("set r3");

    let out = run(&program, &[&redis.url(), &ns, "2"]);
    assert!(out.contains(" 0 failed"), "{out}");
    // C's invalidate_all crosses over too.
    assert_eq!(rust.get_bytes("r3", ["keep2"]).expect("get r3"), None);
    assert_eq!(rust.get_bytes("c2", ["keep2"]).expect("get c2"), None);
}

#[test]
fn entries_and_invalidations_cross_between_c_and_the_rtc_command() {
    let rtc = lib_dir().join("rtc");
    assert!(rtc.is_file(), "{} is missing: run `cargo build --release --locked`", rtc.display());
    let program = compile("crossover.c", Link::Shared);
    let redis = RedisServer::start();
    let ns = unique_namespace("c-cli");
    let cli = |args: &[&str]| -> Output {
        Command::new(&rtc).args(["--redis", &redis.url(), "--namespace", &ns]).args(args).output().expect("run rtc")
    };
    let set = cli(&["set", "cli1", "from-cli", "--tag", "cli"]);
    assert!(set.status.success(), "rtc set: {set:?}");
    let out = run(&program, &[&redis.url(), &ns, "cli1"]);
    assert!(out.contains(" 0 failed"), "{out}");
    let get = cli(&["get", "c-cli", "--tag", "cli2"]);
    assert!(get.status.success(), "rtc get: {get:?}");
    assert_eq!(get.stdout, b"c-to-cli");
    let invalidate = cli(&["invalidate", "cli2"]);
    assert!(invalidate.status.success(), "rtc invalidate: {invalidate:?}");
    let out = run(&program, &[&redis.url(), &ns, "cli2"]);
    assert!(out.contains(" 0 failed"), "{out}");
}

#[test]
fn the_header_compiles_as_c99_c11_c17_c23_and_cpp11_cpp17() {
    // Also checks that rtc_result is one type, uint32_t, in every language
    // and standard, and that rtc_result_name takes it (issue 11).
    let probe = out_dir().join("header-probe.c");
    std::fs::write(
        &probe,
        r#"#include "rtc.h"
#if defined(__cplusplus)
#include <type_traits>
static_assert(std::is_same<rtc_result, uint32_t>::value, "rtc_result is uint32_t in C++");
static_assert(std::is_same<decltype(&rtc_result_name), const char *(*)(rtc_result)>::value,
              "rtc_result_name takes an rtc_result");
#elif __STDC_VERSION__ >= 201112L
_Static_assert(_Generic((rtc_result)0, uint32_t: 1, default: 0), "rtc_result is uint32_t in C");
_Static_assert(_Generic(&rtc_result_name, const char *(*)(rtc_result): 1, default: 0),
               "rtc_result_name takes an rtc_result");
#endif
int main(void) { rtc_result code = RTC_RESULT_OK; return (int)code; }
"#,
    )
    .expect("write probe");
    for (compiler, std, lang) in [
        ("cc", "-std=c99", "c"),
        ("cc", "-std=c11", "c"),
        ("cc", "-std=c17", "c"),
        ("cc", "-std=c2x", "c"),
        ("g++", "-std=c++11", "c++"),
        ("g++", "-std=c++17", "c++"),
    ] {
        run_checked(
            Command::new(compiler)
                .args([std, "-Wall", "-Wextra", "-Werror", "-pedantic", "-fsyntax-only", "-x", lang])
                .arg("-I")
                .arg(root().join("include"))
                .arg(&probe),
            &format!("{compiler} {std} on rtc.h"),
        );
    }
}

/// Installs librtc as the README says (ffi/install.sh, into a fresh prefix)
/// and returns the prefix.
fn install_prefix() -> std::path::PathBuf {
    let prefix = out_dir().join(unique_namespace("prefix"));
    run_checked(
        Command::new("bash")
            .arg(root().join("ffi/install.sh"))
            .arg("--no-build") // cargo test holds the build lock; the libraries are built already
            .arg(&prefix)
            .env("RTC_LIB_DIR", lib_dir()),
        "ffi/install.sh",
    );
    prefix
}

/// The CMake package install.sh installs: `find_package(rtc 0.1 CONFIG
/// REQUIRED)` and `rtc::rtc` build the README's C and C++ examples
/// (tests/c/cmake), linked shared by default and static with
/// RTC_USE_STATIC_LIBS, and they run against a real Redis; the version file
/// accepts 0.1 and 0.1.0 and refuses 0.2, 1.0 and 0.0.9 (each 0.y may break
/// the ABI).
#[test]
fn cmake_finds_the_installed_package_shared_and_static() {
    let prefix = install_prefix();
    for file in ["lib/cmake/rtc/rtcConfig.cmake", "lib/cmake/rtc/rtcConfigVersion.cmake", "include/rtc.hpp"] {
        assert!(prefix.join(file).is_file(), "install.sh installed {file}");
    }
    let redis = RedisServer::start();
    for (static_libs, shared) in [("OFF", true), ("ON", false)] {
        let build = out_dir().join(unique_namespace("cmake-build"));
        run_checked(
            Command::new("cmake")
                .arg("-S")
                .arg(root().join("tests/c/cmake"))
                .arg("-B")
                .arg(&build)
                .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix.display()))
                .arg(format!("-DRTC_USE_STATIC_LIBS={static_libs}")),
            "cmake (configure)",
        );
        run_checked(Command::new("cmake").arg("--build").arg(&build), "cmake --build");
        for (program, want) in
            [("example_c", "hit: Ada\nafter invalidate: miss\nreport: 42 orders\n"), ("example_cpp", "hello, C++\n")]
        {
            let path = build.join(program);
            assert_eq!(needs_librtc_so(&path), shared, "{program} with RTC_USE_STATIC_LIBS={static_libs}");
            let out = run_checked(Command::new(&path).arg(redis.url()), program);
            assert_eq!(String::from_utf8_lossy(&out.stdout), want, "{program} (RTC_USE_STATIC_LIBS={static_libs})");
        }
        let _ = std::fs::remove_dir_all(&build);
    }
    for (request, accepted) in [("0.1", true), ("0.1.0", true), ("0.2", false), ("1.0", false), ("0.0.9", false)] {
        let build = out_dir().join(unique_namespace("cmake-version"));
        let out = Command::new("cmake")
            .arg("-S")
            .arg(root().join("tests/c/cmake/version"))
            .arg("-B")
            .arg(&build)
            .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix.display()))
            .arg(format!("-DRTC_REQUEST={request}"))
            .output()
            .expect("run cmake");
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.success(), accepted, "find_package(rtc {request}):\n{said}");
        if !accepted {
            assert!(said.contains("0.1.0"), "the refusal names the installed version:\n{said}");
        }
        let _ = std::fs::remove_dir_all(&build);
    }
    let _ = std::fs::remove_dir_all(&prefix);
}

#[test]
fn readme_examples_build_with_pkg_config_after_install() {
    // The README's section must show the example programs verbatim.
    let readme = std::fs::read_to_string(root().join("ffi/README.md")).expect("read README.md");
    for example in ["example.c", "example.cpp"] {
        let source = std::fs::read_to_string(root().join("tests/c").join(example)).expect("read example");
        assert!(readme.contains(source.trim_end()), "ffi/README.md must include tests/c/{example} verbatim");
    }

    // Install exactly as the README says, into a fresh prefix.
    let prefix = install_prefix();
    let versioned = format!("lib/librtc.so.{}", env!("CARGO_PKG_VERSION"));
    for file in [
        "include/rtc.h",
        "lib/librtc.so",
        &format!("lib/{}", soname()),
        &versioned,
        "lib/librtc.a",
        "lib/pkgconfig/rtc.pc",
        "lib/pkgconfig/rtc-static.pc",
    ] {
        assert!(prefix.join(file).is_file(), "install.sh installed {file}");
    }
    // librtc.so -> librtc.so.ABI -> librtc.so.VERSION, the usual links.
    let target = |link: &str| std::fs::read_link(prefix.join("lib").join(link)).expect("a symlink");
    assert_eq!(target("librtc.so"), Path::new(&soname()));
    assert_eq!(target(&soname()), Path::new(versioned.trim_start_matches("lib/")));
    let pkg_config = |args: &[&str]| -> Vec<String> {
        let out = run_checked(
            Command::new("pkg-config").args(args).env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig")),
            "pkg-config",
        );
        String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_owned).collect()
    };
    assert_eq!(pkg_config(&["--modversion", "rtc"]), [env!("CARGO_PKG_VERSION")]);
    assert!(pkg_config(&["--static", "--libs", "rtc"]).contains(&"-lpthread".to_string()));

    let redis = RedisServer::start();
    let cases = [
        ("example.c", "cc", "rtc", "hit: Ada\nafter invalidate: miss\nreport: 42 orders\n"),
        ("example.c", "cc", "rtc-static", "hit: Ada\nafter invalidate: miss\nreport: 42 orders\n"),
        ("example.cpp", "g++", "rtc", "hello, C++\n"),
        ("example.cpp", "g++", "rtc-static", "hello, C++\n"),
    ];
    for (source, compiler, module, want) in cases {
        let program = out_dir().join(format!("{source}-{module}").replace('.', "-"));
        // cc app.c $(pkg-config --cflags --libs rtc)
        run_checked(
            Command::new(compiler)
                .args(["-Wall", "-Wextra", "-Werror"])
                .arg(root().join("tests/c").join(source))
                .args(pkg_config(&["--cflags", "--libs", module]))
                .arg("-o")
                .arg(&program),
            &format!("{compiler} {source} $(pkg-config --cflags --libs {module})"),
        );
        assert_eq!(needs_librtc_so(&program), module == "rtc", "{module} links as it says");
        let out = run_checked(Command::new(&program).arg(redis.url()), &program.display().to_string());
        assert_eq!(String::from_utf8_lossy(&out.stdout), want, "{source} via {module}");
    }
    let _ = std::fs::remove_dir_all(&prefix);
}
