//! The `rtc` command against a real Redis and on its in-memory default.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use rtc_tests::{RedisServer, unique_namespace};

fn rtc_binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| rtc_tests::tests_dir().join("../target"));
    let path = target.join("release/rtc");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --release --locked` first (the README's test command does)",
        path.display()
    );
    path
}

fn rtc(redis: Option<&RedisServer>, ns: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(rtc_binary());
    cmd.env_remove("RTC_REDIS_URL").arg("--namespace").arg(ns);
    if let Some(redis) = redis {
        cmd.arg("--redis").arg(redis.url());
    }
    cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run rtc");
    if let Some(input) = stdin {
        child.stdin.take().expect("stdin").write_all(input).expect("write stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("wait for rtc")
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exit code")
}

#[test]
fn set_get_invalidate_on_redis() {
    let redis = RedisServer::start();
    let ns = unique_namespace("cli");
    let r = |args: &[&str]| rtc(Some(&redis), &ns, args, None);
    assert_eq!(code(&r(&["set", "greeting", "hello", "--tag", "a", "--tag", "b"])), 0);
    let hit = r(&["get", "greeting", "--tag", "a", "--tag", "b"]);
    assert_eq!((code(&hit), hit.stdout.as_slice()), (0, b"hello".as_slice()));
    let miss = r(&["get", "greeting", "--tag", "a"]);
    assert_eq!(code(&miss), 1);
    assert_eq!(String::from_utf8_lossy(&miss.stderr).trim(), "miss");
    assert_eq!(code(&r(&["invalidate", "b"])), 0);
    assert_eq!(code(&r(&["get", "greeting", "--tag", "a", "--tag", "b"])), 1, "invalidated");
}

#[test]
fn raw_bytes_from_stdin_delete_and_invalidate_all() {
    let redis = RedisServer::start();
    let ns = unique_namespace("cli-raw");
    let bytes: Vec<u8> = (0..=255u8).collect();
    assert_eq!(code(&rtc(Some(&redis), &ns, &["set", "bin", "-", "-t", "x", "--lifetime", "60"], Some(&bytes))), 0);
    let got = rtc(Some(&redis), &ns, &["get", "bin", "-t", "x"], None);
    assert_eq!(got.stdout, bytes, "raw bytes round-trip with no codec");
    assert_eq!(code(&rtc(Some(&redis), &ns, &["delete", "bin", "-t", "x"], None)), 0);
    assert_eq!(code(&rtc(Some(&redis), &ns, &["delete", "bin", "-t", "x"], None)), 1, "nothing left to delete");
    assert_eq!(code(&rtc(Some(&redis), &ns, &["set", "k", "v"], None)), 0);
    assert_eq!(code(&rtc(Some(&redis), &ns, &["invalidate-all"], None)), 0);
    assert_eq!(code(&rtc(Some(&redis), &ns, &["get", "k"], None)), 1);
}

#[test]
fn entries_from_the_command_are_read_by_the_library_and_back() {
    let redis = RedisServer::start();
    let ns = unique_namespace("cli-lib");
    let cache = rtc_core::Cache::builder().namespace(&ns).url(Some(redis.url())).build().expect("build");
    assert_eq!(code(&rtc(Some(&redis), &ns, &["set", "k", "from-cli", "-t", "t"], None)), 0);
    assert_eq!(cache.get_bytes("k", ["t"]).expect("get"), Some(b"from-cli".to_vec()));
    cache.set_bytes("k2", b"from-lib", ["t"], rtc_core::Lifetime::Default).expect("set");
    assert_eq!(rtc(Some(&redis), &ns, &["get", "k2", "-t", "t"], None).stdout, b"from-lib");
    cache.invalidate("t").expect("invalidate");
    assert_eq!(code(&rtc(Some(&redis), &ns, &["get", "k2", "-t", "t"], None)), 1);
}

#[test]
fn errors_have_their_own_exit_codes() {
    let ns = unique_namespace("cli-err");
    let usage = rtc(None, &ns, &["get"], None);
    assert_eq!(code(&usage), 2, "usage error");
    let mut down = RedisServer::start();
    down.kill();
    let out = rtc(Some(&down), &ns, &["get", "k"], None);
    assert_eq!(code(&out), 3, "backend error");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("backend-unavailable") && stderr.contains("hint:"), "{stderr}");
    let bad = Command::new(rtc_binary()).args(["--redis", "nonsense://x", "get", "k"]).output().expect("run");
    assert_eq!(code(&bad), 2, "a bad URL is a usage error: {}", String::from_utf8_lossy(&bad.stderr));
}

#[test]
fn demo_runs_with_no_redis() {
    let out = rtc(None, &unique_namespace("demo"), &["demo"], None);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("native engine") && text.contains("in-memory"), "{text}");
    assert!(text.contains("computations: 1"), "the lock must compute once: {text}");
    assert!(text.matches("hook:").count() >= 9, "a hook line per get-or-compute: {text}");
}

#[test]
fn component_engine_runs_the_demo_and_shares_entries_with_native() {
    let demo = rtc(None, &unique_namespace("demo-component"), &["--engine", "component", "demo"], None);
    assert_eq!(code(&demo), 0, "{}", String::from_utf8_lossy(&demo.stderr));
    let text = String::from_utf8_lossy(&demo.stdout);
    assert!(text.contains("component (wasmtime)") && text.contains("computations: 1"), "{text}");

    let redis = RedisServer::start();
    let ns = unique_namespace("cli-component");
    let component = |args: &[&str]| {
        let mut all = vec!["--engine", "component"];
        all.extend_from_slice(args);
        rtc(Some(&redis), &ns, &all, None)
    };
    assert_eq!(code(&component(&["set", "k", "from-component", "-t", "a"])), 0);
    assert_eq!(rtc(Some(&redis), &ns, &["get", "k", "-t", "a"], None).stdout, b"from-component");
    assert_eq!(code(&rtc(Some(&redis), &ns, &["set", "k2", "from-native", "-t", "a"], None)), 0);
    assert_eq!(component(&["get", "k2", "-t", "a"]).stdout, b"from-native");
    assert_eq!(code(&component(&["invalidate", "a"])), 0);
    assert_eq!(
        code(&rtc(Some(&redis), &ns, &["get", "k2", "-t", "a"], None)),
        1,
        "the component's invalidation reaches native"
    );
    let missing = rtc(None, &ns, &["--engine", "component", "--component", "/nonexistent.wasm", "get", "k"], None);
    assert_eq!(code(&missing), 2, "a missing component is a usage error");
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cargo build"), "the message says how to build it");
}

#[test]
fn inspect_and_tags_show_the_state_and_create_nothing() {
    let redis = RedisServer::start();
    let ns = unique_namespace("cli-inspect");
    let r = |args: &[&str]| rtc(Some(&redis), &ns, args, None);
    let json = |out: &Output| -> serde_json::Value { serde_json::from_slice(&out.stdout).expect("valid JSON") };

    // Nothing exists yet, and inspecting must not create the tags.
    let cold = r(&["inspect", "user:1", "--tag", "users", "--json"]);
    assert_eq!(code(&cold), 1, "would miss");
    let cold = json(&cold);
    assert_eq!(cold["would_hit"], false);
    assert!(cold["storage_key"].is_null(), "no storage key while a tag does not exist: {cold}");
    let before = redis.cli(&["DBSIZE"]);
    assert_eq!(before, "0", "inspect created keys");
    let tags = json(&r(&["tags", "users", "--json"]));
    assert!(tags[0]["value_hex"].is_null() && tags[0]["ttl_ms"].is_null(), "{tags}");
    assert_eq!(redis.cli(&["DBSIZE"]), "0", "tags created keys");

    assert_eq!(code(&r(&["set", "user:1", "Ada", "--tag", "users", "--lifetime", "600"])), 0);
    let hot = r(&["inspect", "user:1", "--tag", "users", "--json"]);
    assert_eq!(code(&hot), 0, "would hit");
    let hot = json(&hot);
    assert_eq!((hot["would_hit"].as_bool(), hot["value_size"].as_u64()), (Some(true), Some(3)));
    let ttl = hot["entry_ttl_ms"].as_u64().expect("entry TTL");
    assert!((590_000..=600_000).contains(&ttl), "{ttl}");
    let names: Vec<&str> =
        hot["tags"].as_array().expect("tags").iter().map(|t| t["name"].as_str().expect("name")).collect();
    assert_eq!(names, ["@@@all@@@", "users"], "hash order, with the implicit tag");
    let storage = hot["storage_key"].as_str().expect("storage key");
    assert_eq!(redis.cli(&["GET", storage]), "Ada", "the storage key shown is where the value is");
    let value = hot["tags"][1]["value_hex"].as_str().expect("tag value").to_owned();
    assert_eq!(value.len(), 32, "16 random bytes");

    assert_eq!(code(&r(&["invalidate", "users"])), 0);
    let after = json(&r(&["inspect", "user:1", "--tag", "users", "--json"]));
    assert_eq!(after["would_hit"], false);
    assert_ne!(after["tags"][1]["value_hex"].as_str(), Some(value.as_str()), "invalidate gave the tag a new value");
    let text = String::from_utf8_lossy(&r(&["inspect", "user:1", "--tag", "users"]).stdout).into_owned();
    assert!(text.contains("would hit   no") && text.contains("entry       missing"), "{text}");
}

#[test]
fn timeouts_are_settable_from_the_command_line_and_the_environment() {
    // A listening socket that never answers: the connect succeeds, the handshake times out.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("redis://{}/", silent.local_addr().expect("addr"));
    let ns = unique_namespace("cli-timeouts");
    for (args, env) in
        [(vec!["--socket-timeout", "0.2", "--connect-timeout", "0.2"], None), (vec![], Some(("0.2", "0.2")))]
    {
        let mut cmd = Command::new(rtc_binary());
        cmd.env_remove("RTC_REDIS_URL").args(["--redis", &url, "--namespace", &ns]).args(&args).args(["get", "k"]);
        if let Some((socket, connect)) = env {
            cmd.env("RTC_SOCKET_TIMEOUT", socket).env("RTC_CONNECT_TIMEOUT", connect);
        }
        let started = std::time::Instant::now();
        let out = cmd.output().expect("run rtc");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(code(&out), 3, "a backend error: {stderr}");
        assert!(stderr.contains("timeout"), "{stderr}");
        // The default is 5 s per timeout: the settings were used.
        assert!(started.elapsed() < std::time::Duration::from_secs(3), "took {:?}", started.elapsed());
    }
    let out = Command::new(rtc_binary()).args(["--socket-timeout", "soon", "get", "k"]).output().expect("run rtc");
    assert_eq!(code(&out), 2, "a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a number of seconds"));
}

/// `rtc bench --fleet` runs real reader processes in both tracking modes
/// and reports every phase. What it must show whatever the machine's load:
/// no reader ever served a hot value older than one it had already served,
/// no read failed, and Redis tracks the readers' entries per reader (one
/// table item per cached entry) and none in broadcast mode. (The figures
/// themselves are the benchmark's to print, not this test's to bound.)
#[test]
fn the_fleet_bench_reports_both_modes_and_no_reader_goes_back_in_time() {
    let redis = RedisServer::start();
    let ns = unique_namespace("cli-fleet");
    let out = rtc(Some(&redis), &ns, &["bench", "--fleet", "2", "--fleet-seconds", "0.3"], None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(code(&out), 0, "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let json = stdout.lines().find_map(|l| l.strip_prefix("JSON: ")).expect("a JSON line");
    let report: serde_json::Value = serde_json::from_str(json).expect("valid JSON");
    let rows = report["rows"].as_array().expect("rows");
    let phases: Vec<(&str, &str)> = rows.iter().map(|r| (text(&r["mode"]), text(&r["phase"]))).collect();
    let mut expected = Vec::new();
    for mode in ["per-reader", "broadcast"] {
        for phase in ["idle", "private", "hot"] {
            expected.push((mode, phase));
        }
    }
    assert_eq!(phases, expected);
    for row in rows {
        assert_eq!(row["readers"], 2);
        assert_eq!(row["older_reads"], 0, "a reader went back in time: {row}");
        assert_eq!(row["errors"], 0, "{row}");
        assert!(number(&row["reads"]) > 0, "{row}");
        let memory = &row["memory"];
        let (items, cached) = (number(&memory["tracking_total_items"]), number(&memory["cached_entries"]));
        assert!(cached > 0, "{row}");
        match text(&row["mode"]) {
            "per-reader" => assert!(items >= cached, "per reader, Redis tracks every cached entry: {row}"),
            _ => assert_eq!(items, 0, "broadcast keeps no table: {row}"),
        }
    }
    for row in rows.iter().filter(|r| r["phase"] != "idle") {
        assert!(number(&row["writes"]) > 0, "{row}");
    }
    let hot: Vec<&serde_json::Value> = rows.iter().filter(|r| r["phase"] == "hot").collect();
    assert!(hot.iter().all(|r| number(&r["stale_us"]["samples"]) > 0), "no hot change was seen: {hot:?}");
}

fn number(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("{v} is not a number"))
}

fn text(v: &serde_json::Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("{v} is not a string"))
}
