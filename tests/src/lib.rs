//! rtc's test harness: real Redis servers and the scenario table that every
//! surface runs (core in memory, core on Redis, the component, the C library).
#![deny(missing_docs)]

pub mod async_surface;
pub mod cache_surface;
pub mod cluster;
pub mod component_surface;
pub mod cprog;
pub mod history;
pub mod netns;
pub mod scenarios;
pub mod server;

pub use async_surface::AsyncSurface;
pub use cache_surface::CacheSurface;
pub use cluster::RedisCluster;
pub use scenarios::{Scenario, Step, Surface, run_table};
pub use server::RedisServer;

/// Returns a namespace no other test run uses, so suites can share a server.
pub fn unique_namespace(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{prefix}-{}-{nanos}-{n}", std::process::id())
}

/// Returns the path of a file under the repository's `tests/` folder.
pub fn tests_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
