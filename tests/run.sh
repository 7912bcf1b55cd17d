#!/usr/bin/env bash
# The whole rtc test suite, from a fresh machine: installs what it needs,
# builds once (one release profile, one target dir), and runs every suite.
# Every test starts its own redis-server on a free loopback port.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n==> %s\n' "$*"; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v redis-server >/dev/null && command -v redis-cli >/dev/null || missing+=(redis-server redis-tools)
# abidw/abidiff: the ABI check of librtc (ffi/tests/abi.rs).
command -v abidiff >/dev/null && command -v abidw >/dev/null || missing+=(abigail-tools)
# libuv: the C++ program that drives the non-blocking API from a libuv loop.
[ -f /usr/include/uv.h ] || missing+=(libuv1-dev)
# cmake: the CMake package's test builds the examples with find_package(rtc).
command -v cmake >/dev/null || missing+=(cmake)
# nft: the partition row that cuts the near cache's tracking connection alone.
command -v nft >/dev/null || missing+=(nftables)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian's ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi
redis-server --version

# Valkey 8, the Redis fork many users moved to: Debian 12 has it in
# bookworm-backports only, whose source is added here (once) to install it.
if ! command -v valkey-server >/dev/null; then
  if [ ! -f /etc/apt/sources.list.d/bookworm-backports.sources ] && grep -qs 'VERSION_CODENAME=bookworm' /etc/os-release; then
    say "adding Debian's bookworm-backports source (for valkey-server 8)"
    printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' |
      as_root tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null
  fi
  say "installing Debian's valkey-server (bookworm-backports)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq -t bookworm-backports valkey-server valkey-tools >/dev/null
fi
valkey-server --version

if ! rustup target list --installed | grep -qx wasm32-wasip2; then
  say "adding the wasm32-wasip2 target"
  rustup target add wasm32-wasip2
fi

say "building the workspace (librtc, the rtc command, the harness and its tests)"
# --all-targets: the test targets' dev-dependencies change the features of
# shared dependencies (indexmap, proc-macro2, ...), and with them wasmtime's;
# building every target now resolves the features `cargo test` will use, so
# wasmtime is compiled once per run instead of twice.
cargo build --release --locked --all-targets

# Pinned tools, installed once into target/tools. They build in target/ too,
# after the workspace, so the dependencies they share with the host
# (wasmtime's, at the same version) are not compiled twice.
tool() { # binary crate@version [cargo install flags...]
  local bin=$1 crate=$2 version=${2#*@}
  shift 2
  if ! target/tools/bin/"$bin" --version 2>/dev/null | grep -q " $version"; then
    say "installing $crate into target/tools (once)"
    cargo install --locked --quiet --root target/tools --target-dir target "$crate" "$@"
  fi
}
# wac: composes the components (no registry client: plugs local files only).
tool wac wac-cli@0.12.0 --no-default-features
# The stock host the composed plugin runs under: `wasmtime serve` and `run`,
# the same major version as host/.
tool wasmtime wasmtime-cli@48.0.8 --no-default-features \
  --features run,serve,cranelift,component-model,component-model-async,parallel-compilation,pooling-allocator,wasi-http

say "building the WebAssembly components and composing them (warnings denied)"
bash core/component/compose.sh

say "hygiene: cargo fmt, clippy with warnings denied (native and component), no import circle"
cargo fmt --all --check
# --release: clippy reuses the dependencies the build above compiled.
cargo clippy --release --locked --workspace --all-targets -- -D warnings
for crate in rtc-component rtc-provider rtc-example-plugin; do
  cargo clippy --release --locked --target wasm32-wasip2 -p "$crate" -- -D warnings
done
python3 tests/tools/import_circles.py --self-test
for src in core/src core/component/src core/component/*/src ffi/src host/src host/*/src; do
  [ -d "$src" ] || continue
  # Module by module, then folder by folder.
  python3 tests/tools/import_circles.py "$src" >/dev/null || python3 tests/tools/import_circles.py "$src"
  python3 tests/tools/import_circles.py "$src" 1 >/dev/null || python3 tests/tools/import_circles.py "$src" 1
done
echo "no import circle in the crates of core, ffi or host"

say "preparing the Node host of the component (npm ci, jco transpile)"
bash tests/node/setup.sh

say "installing the Python reference (redis-tagged-cache 0.12.1) into target/py-venv"
bash tests/python/setup.sh

say "testing the Python package (its wheel and sdist, built into target/wheels, installed as users do)"
bash ffi/python/test.sh

say "running the tests (on Redis)"
cargo test --release --locked --no-fail-fast

# The suites whose subject is the server (operations, storms, faults, the
# near cache's tracking, the cluster), again on Valkey: every server the
# README says rtc supports is tested. No `-p rtc-tests`: selecting one
# package changes the features cargo unifies, which recompiled rtc-core,
# wasmtime and every test here (minutes); the default members, as above,
# reuse the binaries `cargo test` just built (only tests/ has these targets).
say "running the server suites again on Valkey ($(valkey-server --version | cut -d' ' -f3))"
RTC_REDIS_SERVER=valkey-server cargo test --release --locked --no-fail-fast \
  --test scenarios_core --test scenarios_async --test storm --test faults --test near_cache --test cluster --test partitions --test sentinel --test history
