//! The engine the `rtc` command runs on: native core (the component engine joins it later).

use std::sync::Arc;

use rtc_core::{Cache, CacheInfo, ComputeOptions, Config, Lifetime, Result};

/// A cache engine: the same operations, whatever runs them.
#[derive(Clone)]
pub enum Engine {
    /// `rtc_core::Cache`, in this process.
    Native(Cache),
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
        let cache = Cache::builder().config(config).hook(move |e| hook(e.key, e.info)).build()?;
        Ok(Engine::Native(cache))
    }

    /// `set`, raw bytes.
    pub fn set(&self, key: &str, value: &[u8], tags: &[String], lifetime: Lifetime) -> Result<()> {
        match self {
            Engine::Native(c) => c.set_bytes(key, value, tags, lifetime),
        }
    }

    /// `get`, raw bytes.
    pub fn get(&self, key: &str, tags: &[String]) -> Result<Option<Vec<u8>>> {
        match self {
            Engine::Native(c) => c.get_bytes(key, tags),
        }
    }

    /// `delete`.
    pub fn delete(&self, key: &str, tags: &[String]) -> Result<bool> {
        match self {
            Engine::Native(c) => c.delete(key, tags),
        }
    }

    /// `invalidate`.
    pub fn invalidate(&self, tags: &[String]) -> Result<()> {
        match self {
            Engine::Native(c) => c.invalidate(tags),
        }
    }

    /// `invalidate_all`.
    pub fn invalidate_all(&self) -> Result<()> {
        match self {
            Engine::Native(c) => c.invalidate_all(),
        }
    }

    /// get-or-compute on raw bytes.
    pub fn get_or_compute(&self, options: &ComputeOptions, compute: impl FnOnce() -> Vec<u8>) -> Vec<u8> {
        match self {
            Engine::Native(c) => match c.get_or_compute_bytes(options, || Ok::<_, std::convert::Infallible>(compute())) {
                Ok(v) => v,
            },
        }
    }
}
