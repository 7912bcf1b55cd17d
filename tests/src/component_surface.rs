//! The helper that finds the built rtc component for the wasmtime host
//! (`rtc_host::ComponentCache`, which runs the scenario table through
//! [`crate::CacheSurface`]).

use std::sync::Arc;

use rtc_host::ComponentRuntime;

/// Returns the process-wide runtime of the built component
/// (`$RTC_COMPONENT`, else `target/wasm32-wasip2/component/rtc_component.wasm`).
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
    ComponentRuntime::shared(&path).unwrap_or_else(|e| panic!("cannot load the rtc component {}: {e}", path.display()))
}

/// Returns the process-wide runtime of the standalone component (the cache
/// plugged with rtc's Redis provider, importing WASI only:
/// `target/wasm32-wasip2/component/rtc_standalone.wasm`).
///
/// Panics with the build command when it has not been built.
pub fn standalone_runtime() -> Arc<ComponentRuntime> {
    let path = rtc_host::standalone_component_path();
    assert!(
        path.is_file(),
        "the standalone rtc component is not built: {} is missing.\nBuild it from the workspace root with:\n    bash core/component/compose.sh",
        path.display(),
    );
    let runtime = ComponentRuntime::shared(&path)
        .unwrap_or_else(|e| panic!("cannot load the standalone rtc component {}: {e}", path.display()));
    assert!(runtime.brings_its_own_redis(), "{} imports rtc:cache/redis", path.display());
    runtime
}
