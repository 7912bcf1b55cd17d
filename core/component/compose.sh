#!/usr/bin/env bash
# Builds rtc's WebAssembly components and composes them with `wac plug`:
#   target/wasm32-wasip2/component/
#     rtc_component.wasm       the cache; imports rtc:cache/redis and hooks
#     rtc_provider.wasm        Redis over wasi:sockets, and hooks to stderr
#     rtc_standalone.wasm      the two plugged together: imports WASI only
#     rtc_example_plugin.wasm  a wasi:http handler importing rtc:cache/cache
#     rtc_example_plugin_composed.wasm
#                              that plugin with rtc_standalone.wasm plugged
#                              in: runs under `wasmtime serve`
# Needs `wac` (wac-cli 0.12) on PATH or in target/tools/bin. Warnings are
# errors. Run from anywhere; paths are the workspace's.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PWD/target/tools/bin:$PATH"
export CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS="-D warnings"

# One cargo invocation per component: built together, cargo would unify
# rtc-core's features, and the cache component would carry the provider's
# Redis client.
for crate in rtc-component rtc-provider rtc-example-plugin; do
  cargo build --profile component --locked --target wasm32-wasip2 -p "$crate"
done

out=target/wasm32-wasip2/component
wac plug "$out/rtc_component.wasm" --plug "$out/rtc_provider.wasm" -o "$out/rtc_standalone.wasm"
wac plug "$out/rtc_example_plugin.wasm" --plug "$out/rtc_standalone.wasm" -o "$out/rtc_example_plugin_composed.wasm"
ls -l "$out"/rtc_*.wasm | awk '{printf "%10d  %s\n", $5, $NF}'
