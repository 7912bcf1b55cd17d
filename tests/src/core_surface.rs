//! The scenario surface of the native Rust API (`rtc_core::Cache`).

use std::cell::Cell;

use rtc_core::{Cache, ComputeOptions, Lifetime};

use crate::Surface;

/// Runs scenario steps through `rtc_core::Cache`'s raw-bytes operations.
pub struct CoreSurface(pub Cache);

impl Surface for CoreSurface {
    fn set(&self, key: &str, value: &[u8], tags: &[String]) -> Result<(), String> {
        self.0
            .set_bytes(key, value, tags, Lifetime::Default)
            .map_err(|e| e.to_string())
    }

    fn get(&self, key: &str, tags: &[String]) -> Result<Option<Vec<u8>>, String> {
        self.0.get_bytes(key, tags).map_err(|e| e.to_string())
    }

    fn delete(&self, key: &str, tags: &[String]) -> Result<bool, String> {
        self.0.delete(key, tags).map_err(|e| e.to_string())
    }

    fn invalidate(&self, tags: &[String]) -> Result<(), String> {
        self.0.invalidate(tags).map_err(|e| e.to_string())
    }

    fn invalidate_all(&self) -> Result<(), String> {
        self.0.invalidate_all().map_err(|e| e.to_string())
    }

    fn get_or_compute(
        &self,
        key: &str,
        tags: &[String],
        computed: &[u8],
    ) -> Result<(Vec<u8>, bool), String> {
        let ran = Cell::new(false);
        let options = ComputeOptions::key(key).tags(tags).lock(true);
        let value = self.0.get_or_compute_bytes(&options, || {
            ran.set(true);
            Ok::<_, String>(computed.to_vec())
        })?;
        Ok((value, ran.get()))
    }
}
