//! The scenario surface of the rtc component, run by the wasmtime host
//! (`rtc_host::ComponentCache`), and the helper that finds the built component.

use std::cell::Cell;
use std::sync::Arc;

use rtc_core::{ComputeOptions, Lifetime};
use rtc_host::{ComponentCache, ComponentRuntime};

use crate::Surface;

/// Returns the process-wide runtime of the built component
/// (`$RTC_COMPONENT`, else `target/wasm32-wasip2/release/rtc_component.wasm`).
///
/// Panics with the build command when the component has not been built.
pub fn component_runtime() -> Arc<ComponentRuntime> {
    let path = rtc_host::default_component_path();
    assert!(
        path.is_file(),
        "the rtc component is not built: {} is missing.\nBuild it from the workspace root with:\n    {}\n(or point {} at a built component)",
        path.display(),
        rtc_host::BUILD_COMMAND,
        rtc_host::COMPONENT_ENV,
    );
    ComponentRuntime::shared(&path)
        .unwrap_or_else(|e| panic!("cannot load the rtc component {}: {e}", path.display()))
}

/// Runs scenario steps through the component's raw-bytes operations.
pub struct ComponentSurface(pub ComponentCache);

impl Surface for ComponentSurface {
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
