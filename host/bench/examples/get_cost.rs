//! Measures the CPU cost of one get hit, native against the component, with
//! no Redis (both on core's in-memory backend), so what differs is only what
//! the component adds: the host/guest crossings and core running in wasm.
//!
//! `rtc bench` measures against Redis, where a busy machine moves the figures
//! by tens of percent; this takes the fastest of many short rounds, run in
//! turn in one process, which repeats within a few percent even on a busy
//! machine.
//!
//! ```text
//! cargo build --profile component --locked --target wasm32-wasip2 -p rtc-component
//! cargo run --release --locked -p rtc-bench --example get_cost -- [GETS_PER_ROUND] [COMPONENT.wasm ...]
//! ```
//!
//! With no component given, it measures the one `rtc` would load. Several
//! components (say, two builds) are measured in the same rounds. With
//! `$RTC_REDIS_URL` set, both engines use that Redis instead (pin the client
//! and the server to one CPU, as `rtc bench` advises, to compare CPU).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use rtc_core::{Cache, Config, Lifetime, MemoryBackend, RawCache};
use rtc_host::{ComponentCache, ComponentRuntime};

/// Rounds per engine; the fastest one is reported, with the median.
const ROUNDS: usize = 40;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let gets: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(10_000).max(1);
    let mut paths: Vec<PathBuf> = args.map(PathBuf::from).collect();
    if paths.is_empty() {
        paths.push(rtc_host::default_component_path());
    }
    let tags: Vec<String> = ["tag:a", "tag:b", "tag:c"].map(String::from).to_vec();
    let value = vec![7u8; 100];

    // `$RTC_REDIS_URL` puts both engines on that Redis instead.
    let redis_url = std::env::var("RTC_REDIS_URL").ok();
    let config = Config::default().namespace("get-cost").url(redis_url.clone());
    let mut native = Cache::builder().config(config.clone());
    if redis_url.is_none() {
        native = native.backend(Arc::new(MemoryBackend::new()));
    }
    let mut engines: Vec<(String, Arc<dyn RawCache>)> = vec![("native".into(), Arc::new(native.build()?))];
    for path in paths {
        let mut cache = ComponentCache::builder(ComponentRuntime::load(&path)?).config(config.clone());
        if redis_url.is_none() {
            cache = cache.backend(Arc::new(MemoryBackend::new()));
        }
        engines.push((path.display().to_string(), Arc::new(cache.build()?)));
    }

    for (_, engine) in &engines {
        engine.set_bytes("bench:hit", &value, &tags, Lifetime::Default)?;
        for _ in 0..gets {
            std::hint::black_box(engine.get_bytes("bench:hit", &tags)?);
        }
    }
    let mut rounds = vec![Vec::with_capacity(ROUNDS); engines.len()];
    for _ in 0..ROUNDS {
        for ((_, engine), times) in engines.iter().zip(&mut rounds) {
            let started = Instant::now();
            for _ in 0..gets {
                std::hint::black_box(engine.get_bytes("bench:hit", &tags)?);
            }
            times.push(started.elapsed().as_nanos() as f64 / gets as f64);
        }
    }
    let backend = redis_url.as_deref().unwrap_or("in-memory backend");
    println!("get hit, {backend}: ns per get, fastest and median of {ROUNDS} rounds of {gets}");
    for ((name, _), mut times) in engines.iter().zip(rounds) {
        times.sort_by(f64::total_cmp);
        println!("{:>8.0} {:>8.0}  {name}", times[0], times[times.len() / 2]);
    }
    Ok(())
}
