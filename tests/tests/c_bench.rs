//! The C benchmark program (`host/bench/c/bench.c`, the C library's leg of
//! `rtc bench`): it compiles with `-Wall -Wextra -Werror -pedantic` against
//! `include/rtc.h` and `librtc.a` from `target/release` (built by `cargo build
//! --release`), runs under AddressSanitizer with leak checking against a real
//! `redis-server` with tiny operation counts, and prints well-formed JSON with
//! all five workloads. Structure only: no timing is asserted.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rtc_core::Cache;
use rtc_tests::{RedisServer, unique_namespace};
use serde_json::Value;

/// The workloads the program must report, in order.
const WORKLOADS: [&str; 7] = [
    "c set",
    "c get hit",
    "c get miss",
    "c get-or-compute hit",
    "c invalidate",
    "c get hit, non-blocking, 1 in flight",
    "c get hit, non-blocking, 64 in flight",
];

/// Operations one call of a workload makes: the non-blocking ones make 256
/// gets per call (bench.c's NB_PER_CALL).
fn per_call(workload: &str) -> usize {
    if workload.contains("non-blocking") { 256 } else { 1 }
}

/// The repository's root (from this test's own manifest dir: the sources it was built from).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// The release folder this test binary was built in, which holds librtc.a.
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/release/deps/c_bench-HASH -> target/release
    let dir =
        exe.parent().and_then(Path::parent).expect("the test binary lives in target/<profile>/deps").to_path_buf();
    let lib = dir.join("librtc.a");
    assert!(lib.is_file(), "{} is missing: build librtc first with `cargo build --release`", lib.display());
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

/// Compiles bench.c with warnings as errors and AddressSanitizer, linked to
/// the static librtc as `rtc bench` links it.
fn compile() -> PathBuf {
    let lib = lib_dir();
    let dir = lib.join("c-tests");
    std::fs::create_dir_all(&dir).expect("create target/release/c-tests");
    let program = dir.join("bench-asan");
    let mut cmd = Command::new("cc");
    cmd.args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-g", "-O1"])
        .args(["-fsanitize=address", "-fno-omit-frame-pointer"])
        .arg("-I")
        .arg(root().join("include"))
        .arg(root().join("host/bench/c/bench.c"))
        .arg("-o")
        .arg(&program)
        .arg(lib.join("librtc.a"))
        .args(["-lpthread", "-ldl", "-lm"]);
    run_checked(&mut cmd, "compiling host/bench/c/bench.c");
    program
}

/// Runs the program under AddressSanitizer with leak checking.
fn bench(program: &Path, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .env("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:halt_on_error=1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()))
}

#[test]
fn the_c_benchmark_reports_every_workload_as_json() {
    let program = compile_once();
    let redis = RedisServer::start();
    let ns = unique_namespace("c-bench");
    for threads in [1usize, 3] {
        let threads_arg = threads.to_string();
        let args = [
            "--url",
            &redis.url(),
            "--namespace",
            &ns,
            "--ops",
            "12",
            "--block",
            "5",
            "--threads",
            &threads_arg,
            "--round-trips",
            "5",
        ];
        let out = bench(&program, &args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "bench {args:?} failed ({}):\n{stdout}\n{stderr}", out.status);
        assert!(!stderr.contains("Sanitizer"), "sanitizer report:\n{stderr}");
        assert_eq!(stdout.lines().count(), 1, "one JSON object on one line:\n{stdout}");
        let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"));

        assert_eq!(report["engine"], "c");
        assert_eq!(report["threads"], threads);
        let results = report["results"].as_array().unwrap_or_else(|| panic!("no results array: {report}"));
        let names: Vec<&str> = results.iter().filter_map(|r| r["workload"].as_str()).collect();
        assert_eq!(names, WORKLOADS, "{report}");
        // 12 ops in blocks of 5 round up to 3 blocks of 5 per thread, as `rtc bench` counts them.
        let ops = 15 * threads;
        for row in results {
            assert_eq!(row["threads"], threads, "{row}");
            let per_call = per_call(row["workload"].as_str().unwrap_or_default());
            assert_eq!(row["ops"], ops * per_call, "{row}");
            let number = |field: &str| row[field].as_f64().unwrap_or_else(|| panic!("{field} is not a number: {row}"));
            assert!(number("ops_per_s") > 0.0, "{row}");
            assert!(number("p50_us") > 0.0 && number("p50_us") <= number("p99_us"), "{row}");
        }
        for name in WORKLOADS {
            let trips =
                report["round_trips"][name].as_f64().unwrap_or_else(|| panic!("no round trips for {name}: {report}"));
            assert!(trips > 0.0, "{name}: {trips}");
        }
        assert!(report["peak_rss_kib"].as_u64().is_some_and(|k| k > 0), "{report}");
    }

    // The program really worked on this Redis: Rust reads what it stored.
    let rust = Cache::builder().namespace(ns.as_str()).url(Some(redis.url())).build().expect("build");
    let tags = ["bench:a", "bench:b", "bench:c"];
    assert_eq!(rust.get_bytes("bench:hit", tags).expect("get bench:hit"), Some(vec![b'x'; 100]));
    assert_eq!(rust.get_bytes("bench:set:2:14", tags).expect("get a set entry"), Some(vec![b'x'; 100]));
    assert_eq!(rust.get_bytes("bench:absent", tags).expect("get bench:absent"), None);
}

#[test]
fn the_stepped_mode_runs_one_round_per_line() {
    // `rtc bench` interleaves the C program's rounds with its own: "ready"
    // once set up, then a round per line on stdin, acknowledged by "round N"
    // on stdout, then the report.
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    use std::process::Stdio;
    let program = compile_once();
    let redis = RedisServer::start();
    let ns = unique_namespace("c-bench-stepped");
    let mut child = Command::new(&program)
        .args(["--url", &redis.url(), "--namespace", &ns, "--ops", "6", "--block", "3", "--threads", "2", "--stepped"])
        .env("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:halt_on_error=1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the C benchmark");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut ready = String::new();
    stdout.read_line(&mut ready).expect("read ready");
    assert_eq!(ready, "ready\n");
    for round in 0..2 {
        stdin.write_all(b"round\n").and_then(|()| stdin.flush()).expect("ask for a round");
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read the acknowledgement");
        assert_eq!(line, format!("round {round}\n"));
    }
    drop(stdin);
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).expect("read the report");
    assert!(child.wait().expect("wait").success(), "{rest}");
    let report: Value = serde_json::from_str(rest.trim()).unwrap_or_else(|e| panic!("not JSON ({e}):\n{rest}"));
    let results = report["results"].as_array().unwrap_or_else(|| panic!("no results: {report}"));
    assert_eq!(results.len(), WORKLOADS.len(), "{report}");
    assert!(
        results.iter().all(|r| r["ops"] == 12 * per_call(r["workload"].as_str().unwrap_or_default())),
        "2 rounds of 3 ops on 2 threads: {report}"
    );

    // A driver that goes away mid-run stops the program with an error, not a report.
    let out = Command::new(&program)
        .args(["--url", &redis.url(), "--namespace", &ns, "--ops", "6", "--block", "3", "--stepped"])
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("stdin closed before round 0"));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ready\n", "no report");
}

#[test]
fn only_runs_the_one_workload_it_names() {
    let program = compile_once();
    let redis = RedisServer::start();
    let ns = unique_namespace("c-bench-only");
    let args = ["--url", &redis.url(), "--namespace", &ns, "--ops", "7", "--block", "7", "--only", "c set"];
    let out = bench(&program, &args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "bench {args:?} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"));
    let results = report["results"].as_array().unwrap_or_else(|| panic!("no results array: {report}"));
    for row in results {
        let expected = if row["workload"] == "c set" { 7 } else { 0 };
        assert_eq!(row["ops"], expected, "{row}");
    }
    // The set workload really ran: its last key is there.
    let rust = Cache::builder().namespace(ns.as_str()).url(Some(redis.url())).build().expect("build");
    let tags = ["bench:a", "bench:b", "bench:c"];
    assert_eq!(rust.get_bytes("bench:set:0:6", tags).expect("get a set entry"), Some(vec![b'x'; 100]));
}

#[test]
fn the_c_benchmark_refuses_bad_arguments() {
    let program = compile_once();
    for args in [
        &["--ops", "5"][..],
        &["--url", "redis://127.0.0.1:1/", "--ops", "zero"],
        &["--url", "redis://x/", "--frobnicate", "1"],
        &["--url", "redis://x/", "--only", "c get hits"],
    ] {
        let out = bench(&program, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(out.stdout.is_empty(), "{args:?} printed no report");
        assert!(String::from_utf8_lossy(&out.stderr).contains("usage: bench"), "{args:?}");
    }
    // A Redis that is not there is a setup error with rtc's message, not a report.
    let dead = rtc_tests::server::free_port();
    let out = bench(&program, &["--url", &format!("redis://127.0.0.1:{dead}/"), "--ops", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("RTC_RESULT_BACKEND_UNAVAILABLE"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Compiles the program once for the tests of this file that share it.
fn compile_once() -> PathBuf {
    static PROGRAM: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PROGRAM.get_or_init(compile).clone()
}
