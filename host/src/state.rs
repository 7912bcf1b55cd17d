//! The data of each `Store`: WASI context, resource limits, and what serves
//! the component's imports (the backend for `redis`, the hook for `hooks`),
//! with the per-call hook context ([`CallHook`]) a call sets on its store.
//!
//! Everything that calls the hook lives here, so a report from the guest
//! (`hooks.report`) and one the host makes for a call the guest could not
//! report take the same path (a panicking hook is logged and ignored).

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use rtc_core::{Backend, CacheInfo, Hook, HookEvent};
use wasmtime::component::ResourceTable;
use wasmtime::{Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::rtc::cache::{hooks, redis, types};
use crate::convert::{from_wit_command, from_wit_info, to_wit_error, to_wit_reply};

/// What serves the imports of every instance of one `ComponentCache`.
pub(crate) struct Imports {
    /// Runs the batches of `redis.execute`.
    pub(crate) backend: Arc<dyn Backend>,
    /// Receives the reports of `hooks.report`.
    pub(crate) hook: Option<Hook>,
    /// For a component that reaches Redis itself (the standalone build):
    /// its environment (the connection settings, core's
    /// `environment::variables`), and it gets network access. `None`: no
    /// environment, no network.
    pub(crate) own_redis: Option<Vec<(String, String)>>,
}

impl Imports {
    /// Calls the hook (if there is one) with one report; a panic in the hook
    /// is logged and ignored, so a hook bug never fails a call.
    pub(crate) fn report(
        &self,
        key: &str,
        tags: &[String],
        info: &CacheInfo,
        userdata: Option<&(dyn Any + Send + Sync)>,
    ) {
        let Some(hook) = &self.hook else {
            return;
        };
        let event = HookEvent::new(key, tags, info, userdata);
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| hook(&event))) {
            tracing::warn!(key, panic = panic_message(&*panic), "the cache hook panicked; ignored");
        }
    }

    /// Passes the component's held reports on to the hook, as they would
    /// have gone unheld.
    pub(crate) fn replay(&self, held: Vec<Held>, userdata: Option<&(dyn Any + Send + Sync)>) {
        for Held { key, tags, info } in held {
            self.report(&key, &tags, &info, userdata);
        }
    }
}

/// The data of one `Store`: one per pooled instance.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limits: StoreLimits,
    imports: Arc<Imports>,
    /// The `hook_userdata` of the get-or-compute in progress on this store
    /// (set and cleared by [`CallHook`] only).
    userdata: Option<Arc<dyn Any + Send + Sync>>,
    /// Whether the component's reports are held for the host to decide on
    /// (a failed lookup that fail-safe may answer) instead of reaching the hook.
    holding: bool,
    /// The reports held meanwhile.
    held: Vec<Held>,
}

/// A report of the component held by the host (see `HostState::holding`).
#[derive(Debug)]
pub(crate) struct Held {
    pub(crate) key: String,
    pub(crate) tags: Vec<String>,
    pub(crate) info: CacheInfo,
}

impl HostState {
    /// Creates the data of a store whose linear memories may grow to `max_memory` bytes.
    pub(crate) fn new(imports: Arc<Imports>, max_memory: usize) -> Self {
        // No files, no inherited stdio: the component needs none. No
        // environment or network either, unless it reaches Redis itself.
        let mut wasi = WasiCtx::builder();
        if let Some(variables) = &imports.own_redis {
            wasi.envs(variables).inherit_network().allow_tcp(true).allow_ip_name_lookup(true);
        }
        let wasi = wasi.build();
        let limits = StoreLimitsBuilder::new().memory_size(max_memory).trap_on_grow_failure(true).build();
        HostState {
            wasi,
            table: ResourceTable::new(),
            limits,
            imports,
            userdata: None,
            holding: false,
            held: Vec::new(),
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl types::Host for HostState {}

impl redis::Host for HostState {
    fn execute(&mut self, commands: Vec<redis::Command>) -> wasmtime::Result<Result<Vec<redis::Reply>, types::Error>> {
        let commands = match commands.into_iter().map(from_wit_command).collect::<Result<Vec<_>, _>>() {
            Ok(commands) => commands,
            Err(e) => return Ok(Err(to_wit_error(&e))),
        };
        let backend = &self.imports.backend;
        let replies = match catch_unwind(AssertUnwindSafe(|| backend.execute(&commands))) {
            Ok(Ok(replies)) => replies,
            Ok(Err(e)) => return Ok(Err(to_wit_error(&e))),
            // A host bug, not the guest's: trap, so the instance is discarded and the caller sees an error.
            Err(panic) => {
                return Err(wasmtime::Error::msg(format!("the rtc backend panicked: {}", panic_message(&*panic))));
            }
        };
        // The reply count and kinds are checked once, by core's driver in the guest.
        match replies.into_iter().map(to_wit_reply).collect::<Result<Vec<_>, _>>() {
            Ok(replies) => Ok(Ok(replies)),
            Err(e) => Ok(Err(to_wit_error(&e))),
        }
    }
}

impl hooks::Host for HostState {
    fn report(&mut self, event: hooks::HookEvent) -> wasmtime::Result<()> {
        if self.imports.hook.is_none() {
            return Ok(());
        }
        let info = from_wit_info(event.info);
        if self.holding {
            self.held.push(Held { key: event.key, tags: event.tags, info });
            return Ok(());
        }
        self.imports.report(&event.key, &event.tags, &info, self.userdata.as_deref());
        Ok(())
    }
}

/// The `hook_userdata` the component's `hooks.report` passes on during a
/// call, and whether its reports are held for the host to decide on.
#[derive(Default)]
pub(crate) struct CallHook {
    pub(crate) userdata: Option<Arc<dyn Any + Send + Sync>>,
    pub(crate) hold: bool,
}

impl CallHook {
    /// Reports reach the hook with the call's userdata.
    pub(crate) fn reporting(userdata: Option<Arc<dyn Any + Send + Sync>>) -> Self {
        CallHook { userdata, hold: false }
    }

    /// Starts a call on `store`: its reports carry this userdata, and are
    /// held if asked.
    pub(crate) fn enter(&self, store: &mut Store<HostState>) {
        let data = store.data_mut();
        data.userdata.clone_from(&self.userdata);
        data.holding = self.hold;
    }

    /// Ends the call on `store`; returns the reports held during it.
    pub(crate) fn leave(store: &mut Store<HostState>) -> Vec<Held> {
        let data = store.data_mut();
        data.userdata = None;
        data.holding = false;
        std::mem::take(&mut data.held)
    }
}

/// Returns the message of a panic payload.
pub(crate) fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}
