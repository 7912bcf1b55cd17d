//! rtc's wasmtime host: runs the rtc WebAssembly component (`core` built for
//! `wasm32-wasip2`, see `wit/` and `core/component/`) and exposes it through
//! [`ComponentCache`], an API shaped as `rtc_core::Cache`, so the same code
//! can run on the native library or on the component.
//!
//! - [`ComponentRuntime`]: a wasmtime engine (pooling allocator) with the
//!   component compiled once and pre-instantiated (`InstancePre`).
//! - [`ComponentCache`]: one cache over a runtime. Each concurrent caller
//!   gets its own `Store` and instance from a pool; an instance that traps is
//!   discarded and re-created. The component's `redis` import is served by
//!   core's native [`rtc_core::RedisBackend`] (or [`rtc_core::MemoryBackend`],
//!   or any [`rtc_core::Backend`]); its `hooks` import by a Rust callback.
//!
//! The parts, each using only those before it:
//!
//! - `bindings`: the types and traits `wasmtime::component::bindgen!`
//!   generates from `wit/`.
//! - `convert`: core's types to and from the WIT ones; all checking of what
//!   the guest sends.
//! - `state`: the data of each `Store`, which serves the imports (`redis`
//!   by a backend, `hooks` by the hook) and holds a call's hook context.
//! - `runtime`: [`ComponentRuntime`], the engine and the pre-instantiated
//!   component.
//! - `component/`: [`ComponentCache`] and its pool of instances, the calls
//!   made on them, the split calls and get-or-compute (its module docs list
//!   its own parts).
//!
//! Build the component first:
//!
//! ```text
//! cargo build --profile component --locked --target wasm32-wasip2 -p rtc-component
//! ```
//!
//! ```no_run
//! use rtc_core::{ComputeOptions, Config};
//! use rtc_host::ComponentCache;
//!
//! let config = Config::default().url(Some("redis://127.0.0.1:6379/".into()));
//! let cache = ComponentCache::new(rtc_host::default_component_path(), config)?;
//! let options = ComputeOptions::key("answer").tags(["math"]).lock(true);
//! let n: u64 = cache.get_or_compute(&options, || 42);
//! assert_eq!(n, 42);
//! # Ok::<(), rtc_core::Error>(())
//! ```
//!
//! Guest input never panics the host: a trap, a command outside the WIT
//! contract, or a panic in a backend or hook becomes an error (or a logged
//! warning), and the host stays usable. Each store's linear memory is capped
//! ([`RuntimeOptions::max_memory`], [`ComponentCacheBuilder::max_memory`]).
#![deny(missing_docs)]

mod bindings;
mod component;
mod convert;
mod runtime;
mod state;

pub use component::{ComponentCache, ComponentCacheBuilder, GetOrLock, Hit, Ticket};
pub use runtime::{
    BUILD_COMMAND, COMPONENT_ENV, ComponentRuntime, RuntimeOptions, default_component_path, standalone_component_path,
};
