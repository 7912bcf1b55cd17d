//! The wasmtime engine and the rtc component, compiled once and
//! pre-instantiated.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use rtc_core::{Error, ErrorKind, Result};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::bindings::{Rtc, RtcPre};
use crate::state::HostState;

/// The command that builds the component, from the workspace root.
pub const BUILD_COMMAND: &str = "cargo build --profile component --locked --target wasm32-wasip2 -p rtc-component";

/// The environment variable that names the component file.
pub const COMPONENT_ENV: &str = "RTC_COMPONENT";

/// Core instances, memories and tables one instance of the component may use
/// (a Rust `wasm32-wasip2` component has a few: the main module, the WASI
/// adapter, shims), with room to spare.
const CORE_INSTANCES_PER_COMPONENT: u32 = 16;
const MEMORIES_PER_COMPONENT: u32 = 4;
const TABLES_PER_COMPONENT: u32 = 8;

/// Returns where the component is: `$RTC_COMPONENT` if set, else the
/// artifact [`BUILD_COMMAND`] writes in this workspace,
/// `target/wasm32-wasip2/component/rtc_component.wasm`.
///
/// ```
/// let path = rtc_host::default_component_path();
/// assert!(path.ends_with("rtc_component.wasm") || std::env::var_os("RTC_COMPONENT").is_some());
/// ```
pub fn default_component_path() -> PathBuf {
    if let Some(path) = std::env::var_os(COMPONENT_ENV) {
        return PathBuf::from(path);
    }
    artifact("rtc_component.wasm")
}

/// Returns where the component build of this workspace writes `file`.
fn artifact(file: &str) -> PathBuf {
    let host = Path::new(env!("CARGO_MANIFEST_DIR"));
    host.parent().unwrap_or(host).join("target/wasm32-wasip2/component").join(file)
}

/// Returns where the standalone component is (the cache composed with rtc's
/// Redis provider, importing WASI only; `core/component/compose.sh` builds
/// it): `target/wasm32-wasip2/component/rtc_standalone.wasm` in this
/// workspace.
///
/// ```
/// assert!(rtc_host::standalone_component_path().ends_with("rtc_standalone.wasm"));
/// ```
pub fn standalone_component_path() -> PathBuf {
    artifact("rtc_standalone.wasm")
}

/// The name of the Redis import, without its version.
const REDIS_IMPORT: &str = "rtc:cache/redis@";

/// Limits of a [`ComponentRuntime`].
///
/// ```
/// let options = rtc_host::RuntimeOptions::default();
/// assert_eq!(options.max_memory, 256 << 20);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RuntimeOptions {
    /// Most instances of the component alive at once, over every cache that
    /// shares the runtime (the size of the pooling allocator). Default 128.
    pub max_instances: u32,
    /// Largest linear memory of one instance, in bytes. A value passes
    /// through the instance's memory a few times, so the largest value that
    /// fits is about a quarter of this. Default 256 MiB.
    pub max_memory: usize,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions { max_instances: 128, max_memory: 256 << 20 }
    }
}

impl RuntimeOptions {
    /// Sets the most instances alive at once.
    pub fn max_instances(mut self, n: u32) -> Self {
        self.max_instances = n.max(1);
        self
    }

    /// Sets the largest linear memory of one instance, in bytes.
    pub fn max_memory(mut self, bytes: usize) -> Self {
        self.max_memory = bytes;
        self
    }
}

/// A wasmtime engine with the rtc component compiled for it and
/// pre-instantiated (`InstancePre`): creating an instance then costs tens of
/// microseconds. Share one runtime (it is `Send + Sync`, behind an [`Arc`])
/// between all the caches of a process.
///
/// The engine uses the pooling allocator, sized by [`RuntimeOptions`].
pub struct ComponentRuntime {
    pre: RtcPre<HostState>,
    options: RuntimeOptions,
    path: Option<PathBuf>,
    /// The component imports no `rtc:cache/redis`: it reaches Redis itself
    /// (`rtc_standalone.wasm`, over `wasi:sockets`).
    own_redis: bool,
}

impl std::fmt::Debug for ComponentRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComponentRuntime")
            .field("path", &self.path)
            .field("options", &self.options)
            .field("own_redis", &self.own_redis)
            .finish()
    }
}

impl ComponentRuntime {
    /// Compiles the component at `path` (80-200 ms) with default options.
    ///
    /// Fails with [`ErrorKind::InvalidArgument`] when the file is missing
    /// (the message tells how to build it) or is not a component of the
    /// `rtc:cache` world.
    pub fn load(path: impl AsRef<Path>) -> Result<Arc<Self>> {
        Self::load_with(path, RuntimeOptions::default())
    }

    /// Compiles the component at `path` with `options`.
    pub fn load_with(path: impl AsRef<Path>, options: RuntimeOptions) -> Result<Arc<Self>> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| {
            Error::with_source(
                ErrorKind::InvalidArgument,
                format!(
                    "cannot read the rtc component at {} (build it with `{BUILD_COMMAND}`, or set {COMPONENT_ENV})",
                    path.display()
                ),
                e,
            )
        })?;
        let mut runtime = Self::from_binary(&bytes, options)?;
        runtime.path = Some(path.to_owned());
        Ok(Arc::new(runtime))
    }

    /// Returns the process-wide runtime for the component at `path` with
    /// default options, compiling it on first use only.
    pub fn shared(path: impl AsRef<Path>) -> Result<Arc<Self>> {
        static SHARED: Mutex<Option<HashMap<PathBuf, Arc<ComponentRuntime>>>> = Mutex::new(None);
        let path = path.as_ref().to_owned();
        let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
        let map = shared.get_or_insert_with(HashMap::new);
        if let Some(runtime) = map.get(&path) {
            return Ok(Arc::clone(runtime));
        }
        let runtime = Self::load(&path)?;
        map.insert(path, Arc::clone(&runtime));
        Ok(runtime)
    }

    /// Compiles a component from its bytes.
    pub fn from_binary(bytes: &[u8], options: RuntimeOptions) -> Result<Self> {
        let engine = engine(&options)?;
        let component =
            Component::from_binary(&engine, bytes).map_err(|e| invalid("this is not a valid component", &e))?;
        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| other("cannot link WASI", &e))?;
        Rtc::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |state| state)
            .map_err(|e| other("cannot link the rtc imports", &e))?;
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| invalid("the component does not fit the rtc:cache world's imports", &e))?;
        let pre = RtcPre::new(pre).map_err(|e| invalid("the component does not export rtc:cache/cache", &e))?;
        let own_redis = !component.component_type().imports(&engine).any(|(name, _)| name.starts_with(REDIS_IMPORT));
        Ok(ComponentRuntime { pre, options, path: None, own_redis })
    }

    /// Returns true when the component reaches Redis itself instead of
    /// importing `rtc:cache/redis` (the standalone build,
    /// [`standalone_component_path`]): a cache on it gives the component
    /// network access and the connection settings in its environment, and
    /// serves no Redis of its own.
    pub fn brings_its_own_redis(&self) -> bool {
        self.own_redis
    }

    /// Returns the options this runtime was built with.
    pub fn options(&self) -> RuntimeOptions {
        self.options
    }

    /// Returns the names of the component's imports (`rtc:cache/redis@0.2.0`,
    /// the WASI interfaces Rust std needs, ...), sorted: what a host must serve.
    pub fn imports(&self) -> Vec<String> {
        let component = self.pre.instance_pre().component();
        let mut names: Vec<String> =
            component.component_type().imports(self.engine()).map(|(name, _)| name.to_owned()).collect();
        names.sort();
        names
    }

    /// Returns the names of the component's exports, sorted.
    pub fn exports(&self) -> Vec<String> {
        let component = self.pre.instance_pre().component();
        let mut names: Vec<String> =
            component.component_type().exports(self.engine()).map(|(name, _)| name.to_owned()).collect();
        names.sort();
        names
    }

    pub(crate) fn pre(&self) -> &RtcPre<HostState> {
        &self.pre
    }

    pub(crate) fn engine(&self) -> &Engine {
        self.pre.engine()
    }
}

fn engine(options: &RuntimeOptions) -> Result<Engine> {
    let n = options.max_instances.max(1);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(n)
        .total_core_instances(n.saturating_mul(CORE_INSTANCES_PER_COMPONENT))
        .total_memories(n.saturating_mul(MEMORIES_PER_COMPONENT))
        .total_tables(n.saturating_mul(TABLES_PER_COMPONENT))
        .total_stacks(n)
        .max_memory_size(options.max_memory);
    let mut config = wasmtime::Config::new();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config).map_err(|e| other("cannot create the wasmtime engine", &e))
}

fn invalid(context: &str, e: &wasmtime::Error) -> Error {
    Error::new(ErrorKind::InvalidArgument, format!("{context}: {e:#}"))
}

fn other(context: &str, e: &wasmtime::Error) -> Error {
    Error::new(ErrorKind::Other, format!("{context}: {e:#}"))
}
