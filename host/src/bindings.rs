//! The generated bindings of the `rtc:cache` world (private to the crate).
#![allow(missing_docs)]

wasmtime::component::bindgen!({
    world: "rtc",
    path: "../wit",
    // `redis.execute` traps (rather than returns an error) on a host bug.
    imports: { default: trappable },
});
