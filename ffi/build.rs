//! Gives librtc.so its SONAME, so a program linked against it records the
//! ABI it needs (`librtc.so.<abi>`), not the path it was built from.
//!
//! The ABI version follows Cargo's semver reading: `MAJOR` from 1.0 on, and
//! `0.MINOR` before (every 0.y release may break the ABI).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os != "linux" {
        return;
    }
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_default();
    let minor = std::env::var("CARGO_PKG_VERSION_MINOR").unwrap_or_default();
    let abi = if major == "0" { format!("0.{minor}") } else { major };
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,librtc.so.{abi}");
}
