//! `include/rtc.hpp`, the header-only C++ wrapper over librtc: the program
//! `tests/c/rtc_hpp.cpp`, which drives every operation of the header, is
//! compiled as C++17 and as C++20 with `-Wall -Wextra -Werror -pedantic`,
//! AddressSanitizer and UndefinedBehaviorSanitizer, linked against both
//! `librtc.so` and `librtc.a` from `target/release` (built by `cargo build
//! --release`), run against its own real `redis-server`, and its output is
//! checked: the summary line and the facts that matter most to a C++ user
//! (a miss is not an empty value, exceptions keep their type and never
//! cross librtc, errors carry their code).

use std::process::Command;

use rtc_tests::cprog::{Link, Options, compile_with, root, run, run_checked};
use rtc_tests::{RedisServer, unique_namespace};

/// What the program must print: one line per fact it established.
const FACTS: [&str; 13] = [
    "get: hit \"Ada\", empty value is a hit (0 bytes), absent is a miss",
    "del: true then false",
    "invalidate: one tag, many tags, all (other namespace kept: yes)",
    "lifetimes: 1 s entries expired: yes, longer and forever kept: yes",
    "bad lifetime: rtc::error RTC_RESULT_INVALID_ARGUMENT",
    "compute: 1 computation(s) for 2 calls, hook saw 1 miss then 1 hit",
    "threads: 8 callers, 1 computation(s)",
    "throwing compute: db_down propagated, nothing stored, lock released",
    "get_or_lock: miss with a ticket holding the lock, set_and_unlock, then hit \"computed elsewhere\"",
    "fail-safe: fail_and_unlock served \"v1\" (stale), a throwing compute served \"v1\"",
    "throwing hook: swallowed, 2 calls, both returned their value",
    "redis down: set threw rtc::error RTC_RESULT_BACKEND_UNAVAILABLE",
    "moves: cache, builder, options, ticket moved; moved-from calls threw RTC_RESULT_NULL_PARAMETER",
];

/// Fewer checks than this means the program skipped a part.
const MIN_CHECKS: u32 = 200;

/// Compiles the program with `-std=<std>`, runs it linked both ways, and
/// checks what it printed.
fn the_program_passes(std: &str) {
    for link in [Link::Shared, Link::Static] {
        let options = Options { flags: &[&format!("-std={std}")], variant: Some(std), ..Options::default() };
        let program = compile_with("rtc_hpp.cpp", link, options);
        let redis = RedisServer::start();
        let ns = unique_namespace(&format!("cpp-header-{std}-{link:?}"));
        let dead_port = rtc_tests::server::free_port(); // nothing listens there
        let out = run(&program, &[&redis.url(), &ns, &dead_port.to_string()]);
        assert!(out.contains(&format!("version: {}\n", env!("CARGO_PKG_VERSION"))), "{std} {link:?}:\n{out}");
        for fact in FACTS {
            assert!(out.contains(&format!("{fact}\n")), "{std} {link:?}: want {fact:?} in:\n{out}");
        }
        assert!(out.contains("near cache: stats read, tracking broadcast; off: nullopt"), "{std} {link:?}:\n{out}");
        assert!(!out.contains("FAIL"), "{std} {link:?}:\n{out}");
        let summary: Vec<&str> = out.lines().filter(|l| l.starts_with("rtc-hpp: ")).collect();
        assert_eq!(summary.len(), 1, "{std} {link:?}: one summary line:\n{out}");
        let checks: u32 = summary[0]
            .strip_prefix("rtc-hpp: ")
            .and_then(|rest| rest.strip_suffix(" checks, 0 failed"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{std} {link:?}: want \"rtc-hpp: N checks, 0 failed\", got {:?}", summary[0]));
        assert!(checks >= MIN_CHECKS, "{std} {link:?}: only {checks} checks ran:\n{out}");
    }
}

#[test]
fn the_cpp_header_covers_every_operation_as_cpp17() {
    the_program_passes("c++17");
}

#[test]
fn the_cpp_header_covers_every_operation_as_cpp20() {
    the_program_passes("c++20");
}

/// The header on its own, first in its translation unit (so it includes
/// what it uses), is warning-free under stricter warnings than the
/// programs' too, for users who compile with them.
#[test]
fn the_cpp_header_is_self_contained_and_warning_free_under_strict_warnings() {
    let probe = rtc_tests::cprog::out_dir().join("rtc-hpp-probe.cpp");
    std::fs::write(&probe, "#include \"rtc.hpp\"\nint main() { return rtc::version().empty() ? 1 : 0; }\n")
        .expect("write the probe");
    for std in ["-std=c++17", "-std=c++20"] {
        run_checked(
            Command::new("g++")
                .args([std, "-Wall", "-Wextra", "-Werror", "-pedantic", "-fsyntax-only"])
                .args(["-Wshadow", "-Wconversion", "-Wsign-conversion", "-Wold-style-cast", "-Wnon-virtual-dtor"])
                .args(["-Wuseless-cast", "-Wcast-qual", "-Wzero-as-null-pointer-constant"])
                .arg("-I")
                .arg(root().join("include"))
                .arg(&probe),
            &format!("g++ {std} on rtc.hpp"),
        );
    }
}
