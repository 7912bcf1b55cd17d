//! librtc from C and C++: the programs of `tests/c/` are compiled with
//! `-Wall -Wextra -Werror` against `include/rtc.h`, linked against both
//! `librtc.so` and `librtc.a` from `target/release` (built by `cargo build
//! --release`, which the README's test command runs first), run under
//! AddressSanitizer with leak checking, each against its own real
//! `redis-server`, and their exit status and output are checked.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::SystemTime;

use rtc_core::{Cache, ComputeOptions, FunctionId, Lifetime};
use rtc_tests::{RedisServer, unique_namespace};

/// How a program is linked to librtc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Shared,
    Static,
}

const BOTH: [Link; 2] = [Link::Shared, Link::Static];

/// The repository's root.
fn root() -> PathBuf {
    rtc_tests::tests_dir().parent().expect("tests/ has a parent").to_path_buf()
}

/// The folder holding librtc: the release folder this test binary was built in.
fn lib_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("current_exe");
        // target/release/deps/c_programs-HASH -> target/release
        let dir = exe.parent().and_then(Path::parent).expect("the test binary lives in target/<profile>/deps").to_path_buf();
        for lib in ["librtc.so", "librtc.a"] {
            let path = dir.join(lib);
            let built = std::fs::metadata(&path).and_then(|m| m.modified()).unwrap_or_else(|_| {
                panic!(
                    "{} is missing: build librtc first with `cargo build --release --locked` \
                     (the README's test command, tests/run.sh, does)",
                    path.display()
                )
            });
            let newest = newest_source();
            assert!(
                built >= newest,
                "{} is older than ffi/src: rebuild it with `cargo build --release --locked`",
                path.display()
            );
        }
        dir
    })
}

/// The newest modification time of librtc's own sources.
fn newest_source() -> SystemTime {
    let src = root().join("ffi/src");
    std::fs::read_dir(&src)
        .expect("read ffi/src")
        .filter_map(|e| e.ok()?.metadata().ok()?.modified().ok())
        .chain(std::fs::metadata(root().join("ffi/Cargo.toml")).and_then(|m| m.modified()))
        .max()
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// Where compiled programs go.
fn out_dir() -> PathBuf {
    let dir = lib_dir().join("c-tests");
    std::fs::create_dir_all(&dir).expect("create target/release/c-tests");
    dir
}

fn run_checked(cmd: &mut Command, what: &str) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {what} ({cmd:?}): {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- command\n{cmd:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Compiles `tests/c/<source>` with warnings as errors and AddressSanitizer,
/// linked to librtc as `link` says; returns the program.
fn compile(source: &str, link: Link) -> PathBuf {
    let cxx = source.ends_with(".cpp");
    let stem = source.rsplit_once('.').map_or(source, |(s, _)| s);
    let program = out_dir().join(format!("{stem}-{link:?}").to_lowercase());
    let mut cmd = Command::new(if cxx { "g++" } else { "cc" });
    cmd.arg(if cxx { "-std=c++17" } else { "-std=c11" })
        .args(["-Wall", "-Wextra", "-Werror", "-pedantic", "-g", "-O1"])
        .args(["-fsanitize=address", "-fno-omit-frame-pointer"])
        .arg("-I")
        .arg(root().join("include"))
        .arg("-I")
        .arg(root().join("tests/c"))
        .arg(root().join("tests/c").join(source))
        .arg("-o")
        .arg(&program);
    match link {
        Link::Shared => {
            cmd.arg("-L").arg(lib_dir()).arg("-lrtc").arg(format!("-Wl,-rpath,{}", lib_dir().display()));
        }
        Link::Static => {
            cmd.arg(lib_dir().join("librtc.a")).args(["-lpthread", "-ldl", "-lm"]);
        }
    }
    cmd.arg("-lpthread");
    run_checked(&mut cmd, &format!("compiling {source} ({link:?})"));
    assert_eq!(needs_librtc_so(&program), link == Link::Shared, "{} links librtc as asked", program.display());
    program
}

/// Whether `program`'s dynamic section needs librtc.so.
fn needs_librtc_so(program: &Path) -> bool {
    let out = run_checked(Command::new("readelf").arg("-d").arg(program), "readelf -d");
    String::from_utf8_lossy(&out.stdout).contains("[librtc.so]")
}

/// Runs a compiled program under AddressSanitizer with leak checking; panics
/// with its output unless it exits 0. Returns its stdout.
fn run(program: &Path, args: &[&str]) -> String {
    let out = run_checked(
        Command::new(program).args(args).env("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:halt_on_error=1"),
        &program.display().to_string(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("Sanitizer"), "{}: sanitizer report:\n{stderr}", program.display());
    String::from_utf8_lossy(&out.stdout).into_owned()
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
    let out = Command::new(&program).args([&redis.url(), path.to_str().expect("UTF-8 path"), &ns]).output().expect("run");
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
        let out = run(&program, &[&redis.url(), &redis.port().to_string(), &ns]);
        assert!(out.contains("lock: 48 callers, 1 computation(s), 47 waiters"), "{out}");
        assert!(out.contains("split: 48 callers, 1 ticket(s), 47 hits"), "{out}");
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
fn the_header_compiles_as_c99_c11_c17_and_cpp11_cpp17() {
    let probe = out_dir().join("header-probe.c");
    std::fs::write(&probe, "#include \"rtc.h\"\nint main(void) { return RTC_RESULT_OK; }\n").expect("write probe");
    for (compiler, std, lang) in [
        ("cc", "-std=c99", "c"),
        ("cc", "-std=c11", "c"),
        ("cc", "-std=c17", "c"),
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

#[test]
fn readme_examples_build_with_pkg_config_after_install() {
    // The README's section must show the example programs verbatim.
    let readme = std::fs::read_to_string(root().join("README.md")).expect("read README.md");
    for example in ["example.c", "example.cpp"] {
        let source = std::fs::read_to_string(root().join("tests/c").join(example)).expect("read example");
        assert!(readme.contains(source.trim_end()), "README.md must include tests/c/{example} verbatim");
    }

    // Install exactly as the README says, into a fresh prefix.
    let prefix = out_dir().join(unique_namespace("prefix"));
    run_checked(
        Command::new("bash")
            .arg(root().join("ffi/install.sh"))
            .arg("--no-build") // cargo test holds the build lock; the libraries are built already
            .arg(&prefix)
            .env("RTC_LIB_DIR", lib_dir()),
        "ffi/install.sh",
    );
    for file in ["include/rtc.h", "lib/librtc.so", "lib/librtc.a", "lib/pkgconfig/rtc.pc", "lib/pkgconfig/rtc-static.pc"] {
        assert!(prefix.join(file).is_file(), "install.sh installed {file}");
    }
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
