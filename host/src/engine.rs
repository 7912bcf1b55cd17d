//! The engine the `rtc` command runs on: native core, or the same core
//! compiled to a WebAssembly component and run by the wasmtime host.

use std::path::Path;
use std::sync::Arc;

use rtc_core::{Cache, CacheInfo, ComputeOptions, Config, Lifetime, Result};
use rtc_host::ComponentCache;

/// A cache engine: the same operations, whatever runs them.
#[derive(Clone)]
pub enum Engine {
    /// `rtc_core::Cache`, in this process.
    Native(Cache),
    /// The rtc component, through the wasmtime host.
    Component(ComponentCache),
}

/// A hook for the demo: called with the key and the CacheInfo of each get-or-compute.
pub type DemoHook = Arc<dyn Fn(&str, &CacheInfo) + Send + Sync>;

impl Engine {
    /// Builds the native engine.
    pub fn native(config: Config) -> Result<Self> {
        Ok(Engine::Native(Cache::new(config)?))
    }

    /// Builds the native engine with a hook.
    pub fn native_with_hook(config: Config, hook: DemoHook) -> Result<Self> {
        let cache = Cache::builder()
            .config(config)
            .hook(move |e| hook(e.key, e.info))
            .build()?;
        Ok(Engine::Native(cache))
    }

    /// Builds the component engine from the component at `path`.
    pub fn component(path: &Path, config: Config) -> Result<Self> {
        Ok(Engine::Component(ComponentCache::new(path, config)?))
    }

    /// Builds the component engine with a hook.
    pub fn component_with_hook(path: &Path, config: Config, hook: DemoHook) -> Result<Self> {
        let runtime = rtc_host::ComponentRuntime::shared(path)?;
        let cache = ComponentCache::builder(runtime)
            .config(config)
            .hook(move |e| hook(e.key, e.info))
            .build()?;
        Ok(Engine::Component(cache))
    }

    /// `set`, raw bytes.
    pub fn set(&self, key: &str, value: &[u8], tags: &[String], lifetime: Lifetime) -> Result<()> {
        match self {
            Engine::Native(c) => c.set_bytes(key, value, tags, lifetime),
            Engine::Component(c) => c.set_bytes(key, value, tags, lifetime),
        }
    }

    /// `get`, raw bytes.
    pub fn get(&self, key: &str, tags: &[String]) -> Result<Option<Vec<u8>>> {
        match self {
            Engine::Native(c) => c.get_bytes(key, tags),
            Engine::Component(c) => c.get_bytes(key, tags),
        }
    }

    /// `delete`.
    pub fn delete(&self, key: &str, tags: &[String]) -> Result<bool> {
        match self {
            Engine::Native(c) => c.delete(key, tags),
            Engine::Component(c) => c.delete(key, tags),
        }
    }

    /// `invalidate`.
    pub fn invalidate(&self, tags: &[String]) -> Result<()> {
        match self {
            Engine::Native(c) => c.invalidate(tags),
            Engine::Component(c) => c.invalidate(tags),
        }
    }

    /// `invalidate_all`.
    pub fn invalidate_all(&self) -> Result<()> {
        match self {
            Engine::Native(c) => c.invalidate_all(),
            Engine::Component(c) => c.invalidate_all(),
        }
    }

    /// get-or-compute on raw bytes.
    pub fn get_or_compute(
        &self,
        options: &ComputeOptions,
        compute: impl FnOnce() -> Vec<u8>,
    ) -> Vec<u8> {
        let result = match self {
            Engine::Native(c) => {
                c.get_or_compute_bytes(options, || Ok::<_, std::convert::Infallible>(compute()))
            }
            Engine::Component(c) => {
                c.get_or_compute_bytes(options, || Ok::<_, std::convert::Infallible>(compute()))
            }
        };
        match result {
            Ok(v) => v,
        }
    }
}
