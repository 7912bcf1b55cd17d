//! The exported ABI of librtc.so against its committed baseline,
//! `ffi/abi/<SONAME>.abi` (written by libabigail's `abidw`): an incompatible
//! change (a removed function, a changed parameter or return type, a struct
//! that changed layout) fails this test. Adding functions is compatible.
//! librtc is built with debug info (the workspace's release profile says so
//! for rtc-ffi), which is where abidw reads the types from.
//!
//! The insides of the opaque handles (rtc_cache, rtc_output, ...) are not
//! ABI: C sees them only through pointers. libabigail's type suppressions
//! do not match these Rust structs (tried by name, by regexp and with
//! `accessed_through = pointer`), so both sides of the comparison are
//! rewritten instead: each handle becomes a declaration-only struct
//! ([`opaque`]), as the header declares it. A change inside a handle is then
//! no change; anything C sees by value, and every signature, still is.
//!
//! An incompatible change ships only with a new SONAME: bump the version
//! (0.y -> 0.y+1 while the version is 0.y), then record the new ABI's
//! baseline with `RTC_BLESS=1 cargo test --release -p rtc-ffi --test abi`.
//! `RTC_BLESS=1` never overwrites the baseline of the current SONAME when
//! the change is incompatible: that is the mistake this test exists for.

use std::path::{Path, PathBuf};
use std::process::Command;

/// librtc.so's SONAME (see ffi/build.rs).
fn soname() -> String {
    let (major, minor) = (env!("CARGO_PKG_VERSION_MAJOR"), env!("CARGO_PKG_VERSION_MINOR"));
    if major == "0" { format!("librtc.so.0.{minor}") } else { format!("librtc.so.{major}") }
}

/// The librtc.so built with this test (target/<profile>/librtc.so).
fn library() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(Path::parent).expect("the test binary lives in target/<profile>/deps");
    let lib = dir.join("librtc.so");
    assert!(lib.is_file(), "{} is missing: build it with cargo build --release --locked", lib.display());
    lib
}

fn abidw(lib: &Path) -> String {
    let out = Command::new("abidw")
        .args(["--no-corpus-path", "--no-show-locs", "--no-comp-dir-path"])
        .arg(lib)
        .output()
        .expect("run abidw (Debian's abigail-tools; tests/run.sh installs it)");
    assert!(out.status.success(), "abidw failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("abidw writes UTF-8")
}

#[test]
fn the_exported_abi_is_compatible_with_the_baseline() {
    let lib = library();
    let baseline = Path::new(env!("CARGO_MANIFEST_DIR")).join("abi").join(format!("{}.abi", soname()));
    let bless = std::env::var_os("RTC_BLESS").is_some();
    if !baseline.is_file() {
        assert!(
            bless,
            "no ABI baseline for {} ({}): a new ABI version; record it with\n    \
             RTC_BLESS=1 cargo test --release -p rtc-ffi --test abi\nand commit it",
            soname(),
            baseline.display()
        );
        std::fs::write(&baseline, opaque(&abidw(&lib))).expect("write the baseline");
        return;
    }
    let dir = std::env::temp_dir().join(format!("rtc-abi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (old, new) = (dir.join("baseline.abi"), dir.join("built.abi"));
    std::fs::write(&old, opaque(&std::fs::read_to_string(&baseline).expect("read the baseline"))).expect("write");
    std::fs::write(&new, opaque(&abidw(&lib))).expect("write");
    let out = Command::new("abidiff")
        .arg("--no-show-locs")
        .arg(&old)
        .arg(&new)
        .output()
        .expect("run abidiff (Debian's abigail-tools; tests/run.sh installs it)");
    let report = String::from_utf8_lossy(&out.stdout);
    let status = out.status.code().expect("abidiff exits with a status");
    // abidiff's status bits: 1 error, 2 usage, 4 an ABI change, 8 an incompatible one. It
    // counts a changed parameter or return type as a mere change (4), so the summary decides:
    // only added functions and variables are compatible.
    assert_eq!(status & 3, 0, "abidiff failed ({status}): {report}{}", String::from_utf8_lossy(&out.stderr));
    let (removed, changed, added) = summary(&report);
    // A struct versioned by size only grows at its end; a function that
    // changed by that alone is compatible (C passes sizeof the struct it
    // was compiled with, and librtc writes only that many bytes).
    let grown = extensible_growth(&report);
    assert!(
        status & 8 == 0 && removed == 0 && changed == grown.unwrap_or(u64::MAX),
        "librtc's ABI changed incompatibly against {}:\n{report}\nAn incompatible change needs a new \
         SONAME: bump the version in Cargo.toml, then RTC_BLESS=1 cargo test --release -p rtc-ffi --test abi",
        baseline.display()
    );
    if added > 0 || changed > 0 {
        eprintln!("librtc's ABI grew (compatible):\n{report}");
        if bless {
            std::fs::write(&baseline, opaque(&abidw(&lib))).expect("write the baseline");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The handles C sees only through pointers (`typedef struct X X;` in rtc.h).
const OPAQUE: [&str; 8] = [
    "rtc_async",
    "rtc_cache",
    "rtc_cache_builder",
    "rtc_compute_options",
    "rtc_ticket",
    "rtc_output",
    "rtc_value",
    "rtc_cache_info",
];

/// Rewrites abidw's XML so that each opaque handle is a declaration-only
/// struct (its members, size and the types only they use drop out of the
/// comparison), keeping its type id so references to it still resolve.
fn opaque(xml: &str) -> String {
    let mut out = String::with_capacity(xml.len());
    let mut lines = xml.lines();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        let handle = OPAQUE.iter().find(|h| trimmed.starts_with(&format!("<class-decl name='{h}' ")));
        match handle {
            Some(handle) if !trimmed.ends_with("/>") => {
                let indent = &line[..line.len() - trimmed.len()];
                let id = trimmed.split(" id='").nth(1).and_then(|rest| rest.split('\'').next()).expect("a type id");
                out.push_str(&format!(
                    "{indent}<class-decl name='{handle}' is-struct='yes' visibility='default' \
                     is-declaration-only='yes' id='{id}'/>\n"
                ));
                let end = format!("{indent}</class-decl>");
                for inner in lines.by_ref() {
                    if inner == end {
                        break;
                    }
                }
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

#[test]
fn opaque_handles_lose_their_insides_and_keep_their_ids() {
    let xml = "  <class-decl name='rtc_value' size-in-bits='192' is-struct='yes' visibility='default' id='type-id-90'>\n\
               \x20   <data-member-decl name='bytes'/>\n\
               \x20 </class-decl>\n\
               \x20 <class-decl name='rtc_bytes' size-in-bits='128' is-struct='yes' visibility='default' id='type-id-86'>\n\
               \x20 </class-decl>\n";
    let rewritten = opaque(xml);
    assert_eq!(
        rewritten,
        "  <class-decl name='rtc_value' is-struct='yes' visibility='default' is-declaration-only='yes' id='type-id-90'/>\n\
         \x20 <class-decl name='rtc_bytes' size-in-bits='128' is-struct='yes' visibility='default' id='type-id-86'>\n\
         \x20 </class-decl>\n",
        "rtc_bytes, passed by value, keeps its layout"
    );
}

/// The structs C passes with their size (`rtc_cache_near_stats(cache,
/// &stats, sizeof stats)`), whose fields are only ever appended.
const EXTENSIBLE: [&str; 1] = ["rtc_near_stats"];

/// How many of the report's changed functions changed only by an
/// [`EXTENSIBLE`] struct growing at its end (a larger size, members inserted
/// at or past the old size, nothing else); `None` when a changed function
/// changed in any other way.
fn extensible_growth(report: &str) -> Option<u64> {
    let mut grown = 0;
    let mut old_size: Option<u64> = None;
    let mut in_function = false;
    let number = |text: &str| text.split_whitespace().find_map(|w| w.parse::<u64>().ok());
    let extensible =
        |line: &str| EXTENSIBLE.iter().any(|s| line.contains(&format!("::{s}*'")) || line.contains(&format!("::{s}'")));
    for line in report.lines().map(str::trim) {
        if line.starts_with("[C] ") {
            grown += 1;
            in_function = true;
            old_size = None;
            continue;
        }
        if !in_function || line.is_empty() {
            continue;
        }
        // The lines that only say where the change is.
        let context = (line.starts_with("parameter ") && line.ends_with("has sub-type changes:") && extensible(line))
            || (line.starts_with("in pointed to type 'struct ") && extensible(line))
            || line.ends_with("data member insertion:")
            || line.ends_with("data member insertions:");
        if line.starts_with('[') || line.ends_with("Added functions:") || line.ends_with("Removed functions:") {
            in_function = false;
        } else if context {
            continue;
        } else if let Some(sizes) = line.strip_prefix("type size changed from ") {
            let (from, to) = sizes.split_once(" to ")?;
            let (from, to) = (number(from)?, number(to)?);
            if to <= from {
                return None;
            }
            old_size = Some(from);
        } else if let Some((_, offset)) = line.split_once("', at offset ") {
            if number(offset)? < old_size? {
                return None;
            }
        } else {
            return None;
        }
    }
    Some(grown)
}

#[test]
fn only_a_size_versioned_struct_growing_at_its_end_is_a_compatible_change() {
    let grown = "1 function with some indirect sub-type change:\n\n\
                 \x20 [C] 'function u32 rtc::cache::rtc_cache_near_stats(rtc::cache::rtc_cache*, rtc::cache::rtc_near_stats*, usize)' has some indirect sub-type changes:\n\
                 \x20   parameter 2 of type 'rtc::cache::rtc_near_stats*' has sub-type changes:\n\
                 \x20     in pointed to type 'struct rtc::cache::rtc_near_stats':\n\
                 \x20       type size changed from 512 to 640 (in bits)\n\
                 \x20       2 data member insertions:\n\
                 \x20         'u64 pushes', at offset 512 (in bits)\n\
                 \x20         'u32 tracking', at offset 576 (in bits)\n";
    assert_eq!(extensible_growth(grown), Some(1));
    let inserted_inside = grown.replace("at offset 512", "at offset 64");
    assert_eq!(extensible_growth(&inserted_inside), None, "a member inserted before the old end moves the others");
    let shrunk = grown.replace("from 512 to 640", "from 640 to 512");
    assert_eq!(extensible_growth(&shrunk), None);
    let other = grown.replace("rtc_near_stats", "rtc_bytes");
    assert_eq!(extensible_growth(&other), None, "only the size-versioned structs may grow");
    let changed_member = format!("{grown}\x20       1 data member change:\n\x20         type of 'u64 hits' changed\n");
    assert_eq!(extensible_growth(&changed_member), None);
    assert_eq!(extensible_growth("Functions changes summary: 0 Removed, 0 Changed, 1 Added function\n"), Some(0));
}

/// Sums abidiff's "N Removed, N Changed, N Added" counts over its function
/// and variable summaries (a report without them has no change).
fn summary(report: &str) -> (u64, u64, u64) {
    let mut sums = (0, 0, 0);
    for line in report.lines().filter(|l| l.contains("changes summary:")) {
        let count = |word: &str| -> u64 {
            line.split(',')
                .find(|part| part.contains(word))
                .and_then(|part| part.split_whitespace().find_map(|w| w.parse().ok()))
                .unwrap_or(0)
        };
        sums.0 += count("Removed");
        sums.1 += count("Changed");
        sums.2 += count("Added");
    }
    sums
}

#[test]
fn the_summary_is_read_as_abidiff_writes_it() {
    let report = "Functions changes summary: 1 Removed, 2 Changed (3 filtered out), 4 Added functions\n\
                  Variables changes summary: 0 Removed, 0 Changed, 1 Added variable\n";
    assert_eq!(summary(report), (1, 2, 5));
    assert_eq!(summary(""), (0, 0, 0));
}
