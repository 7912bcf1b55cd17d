//! The scenario surface of the async Rust API (`rtc_core::future::Cache`),
//! each step run to completion on a tokio runtime.

use std::sync::atomic::{AtomicBool, Ordering};

use rtc_core::{ComputeOptions, Lifetime, future};

use crate::Surface;

/// Runs scenario steps through `rtc_core::future::Cache`'s raw-bytes operations.
pub struct AsyncSurface {
    cache: future::Cache,
    runtime: tokio::runtime::Runtime,
}

impl AsyncSurface {
    /// Wraps `cache`, with a multi-threaded runtime of its own.
    pub fn new(cache: future::Cache) -> Self {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime");
        AsyncSurface { cache, runtime }
    }
}

impl Surface for AsyncSurface {
    fn set(&self, key: &str, value: &[u8], tags: &[String]) -> Result<(), String> {
        self.runtime.block_on(self.cache.set_bytes(key, value, tags, Lifetime::Default)).map_err(|e| e.to_string())
    }

    fn get(&self, key: &str, tags: &[String]) -> Result<Option<Vec<u8>>, String> {
        self.runtime.block_on(self.cache.get_bytes(key, tags)).map_err(|e| e.to_string())
    }

    fn delete(&self, key: &str, tags: &[String]) -> Result<bool, String> {
        self.runtime.block_on(self.cache.delete(key, tags)).map_err(|e| e.to_string())
    }

    fn invalidate(&self, tags: &[String]) -> Result<(), String> {
        self.runtime.block_on(self.cache.invalidate(tags)).map_err(|e| e.to_string())
    }

    fn invalidate_all(&self) -> Result<(), String> {
        self.runtime.block_on(self.cache.invalidate_all()).map_err(|e| e.to_string())
    }

    fn get_or_compute(&self, key: &str, tags: &[String], computed: &[u8]) -> Result<(Vec<u8>, bool), String> {
        let ran = AtomicBool::new(false);
        let options = ComputeOptions::key(key).tags(tags).lock(true);
        let value = self.runtime.block_on(self.cache.get_or_compute_bytes(&options, || async {
            ran.store(true, Ordering::SeqCst);
            Ok::<_, String>(computed.to_vec())
        }))?;
        Ok((value, ran.load(Ordering::SeqCst)))
    }
}
