//! One version everywhere it is written: the Cargo workspace's is the
//! source, and the header (`RTC_VERSION`), the Python package (pyproject and
//! `rtc.__version__`), the WIT package's docs, and what `ffi/install.sh`
//! installs (pkg-config files, the CMake package's version file, the
//! versioned librtc.so) must all say it. A release bumps them together;
//! this test names the one that drifted.

use std::process::Command;

use rtc_tests::cprog::{lib_dir, out_dir, root, run_checked};
use rtc_tests::unique_namespace;

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// The first quoted value on the line of `path` that starts with `prefix`.
fn quoted_after(path: &str, prefix: &str) -> String {
    let text = read(path);
    let line = text.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("{path} has no `{prefix}` line"));
    line.split('"').nth(1).unwrap_or_else(|| panic!("{path}: no quoted value in `{line}`")).to_owned()
}

#[test]
fn the_version_is_the_same_in_every_file_that_writes_it() {
    let written = [
        ("include/rtc.h (RTC_VERSION)", quoted_after("include/rtc.h", "#define RTC_VERSION ")),
        ("ffi/python/pyproject.toml", quoted_after("ffi/python/pyproject.toml", "version = ")),
        (
            "ffi/python/src/rtc/__init__.py (__version__)",
            quoted_after("ffi/python/src/rtc/__init__.py", "__version__ = "),
        ),
    ];
    for (place, version) in &written {
        assert_eq!(version, VERSION, "{place} says {version}, the Cargo workspace {VERSION}");
    }
    let (major, minor, patch) = {
        let mut parts = VERSION.split('.');
        (parts.next().unwrap_or_default(), parts.next().unwrap_or_default(), parts.next().unwrap_or_default())
    };
    let header = read("include/rtc.h");
    for (name, value) in [("MAJOR", major), ("MINOR", minor), ("PATCH", patch)] {
        assert!(header.contains(&format!("#define RTC_VERSION_{name} {value}\n")), "include/rtc.h: RTC_VERSION_{name}");
    }
    for doc in ["wit/README.md", "wit/world.wit"] {
        assert!(
            read(doc).contains(&format!("rtc {VERSION} ")),
            "{doc} must name the rtc release it ships (rtc {VERSION})"
        );
    }
}

#[test]
fn what_install_sh_installs_carries_the_version() {
    let prefix = out_dir().join(unique_namespace("version-prefix"));
    run_checked(
        Command::new("bash")
            .arg(root().join("ffi/install.sh"))
            .arg("--no-build")
            .arg(&prefix)
            .env("RTC_LIB_DIR", lib_dir()),
        "ffi/install.sh",
    );
    for module in ["rtc", "rtc-static"] {
        let out = run_checked(
            Command::new("pkg-config")
                .args(["--modversion", module])
                .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig")),
            "pkg-config",
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), VERSION, "pkg-config {module}");
    }
    let cmake =
        std::fs::read_to_string(prefix.join("lib/cmake/rtc/rtcConfigVersion.cmake")).expect("the CMake version file");
    assert!(cmake.contains(&format!("set(PACKAGE_VERSION \"{VERSION}\")")), "the CMake package's version:\n{cmake}");
    assert!(prefix.join(format!("lib/librtc.so.{VERSION}")).is_file(), "librtc.so.{VERSION}");
    let _ = std::fs::remove_dir_all(&prefix);
}
