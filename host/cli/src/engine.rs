//! The engines the `rtc` command runs on: native core, or the same core
//! compiled to a WebAssembly component and run by the wasmtime host. Both
//! are a [`rtc_core::RawCache`], so the command has one code path for either.

use std::path::Path;
use std::sync::Arc;

use rtc_core::{Cache, CacheInfo, Config, Result};
use rtc_host::ComponentCache;

/// A cache engine: the same operations, whatever runs them (the type
/// `rtc bench` measures).
pub use rtc_bench::Engine;

/// A hook for the demo: called with the key and the CacheInfo of each get-or-compute.
pub type DemoHook = Arc<dyn Fn(&str, &CacheInfo) + Send + Sync>;

/// Builds the native engine, with `hook` if given.
pub fn native(config: Config, hook: Option<DemoHook>) -> Result<Engine> {
    let mut builder = Cache::builder().config(config);
    if let Some(hook) = hook {
        builder = builder.hook(move |e| hook(e.key, e.info));
    }
    Ok(Arc::new(builder.build()?))
}

/// The component engine of one single-threaded client under valgrind
/// (`rtc bench --instructions`): a pool of one instance, since valgrind
/// cannot reserve the address space of the default 128 (about 2 TiB).
pub fn component_alone(path: &Path, config: Config) -> Result<Engine> {
    let runtime = rtc_host::ComponentRuntime::load_with(path, rtc_host::RuntimeOptions::default().max_instances(1))?;
    Ok(Arc::new(ComponentCache::builder(runtime).config(config).build()?))
}

/// Builds the component engine from the component at `path`, with `hook` if given.
pub fn component(path: &Path, config: Config, hook: Option<DemoHook>) -> Result<Engine> {
    let runtime = rtc_host::ComponentRuntime::shared(path)?;
    let mut builder = ComponentCache::builder(runtime).config(config);
    if let Some(hook) = hook {
        builder = builder.hook(move |e| hook(e.key, e.info));
    }
    Ok(Arc::new(builder.build()?))
}
