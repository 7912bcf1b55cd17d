#!/usr/bin/env bash
# Prepares the Node host of the rtc component (tests/node/run.mjs):
#   1. `npm ci` here, from package-lock.json (jco 1.10.2, preview2-shim 0.17.2),
#      skipped when node_modules already matches the lock file;
#   2. transpiles the built component into tests/node/out/ with jco, wiring
#      its rtc:cache imports to backend.js and hooks.js;
#   3. records which .wasm that was (out/SOURCE.json), so run.mjs refuses a
#      stale transpilation.
# Idempotent; run it after every build of the component:
#   cargo build --profile component --locked --target wasm32-wasip2 -p rtc-component
#   bash tests/node/setup.sh
# The component is $RTC_COMPONENT, else target/wasm32-wasip2/component/rtc_component.wasm.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
wasm="${RTC_COMPONENT:-$root/target/wasm32-wasip2/component/rtc_component.wasm}"

fail() { printf 'tests/node/setup.sh: %s\n' "$*" >&2; exit 1; }

command -v node >/dev/null || fail "node is not installed: Node.js 20 or later, with npm, is needed on the PATH"
command -v npm >/dev/null || fail "npm is not installed (e.g. apt-get install npm)"
major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$major" -ge 20 ] || fail "node $(node --version) is too old: Node.js 20 or later is needed"
[ -f "$wasm" ] || fail "the rtc component is not built: $wasm is missing.
Build it from the workspace root with:
    cargo build --profile component --locked --target wasm32-wasip2 -p rtc-component"
wasm="$(cd "$(dirname "$wasm")" && pwd)/$(basename "$wasm")"

cd "$here"
lock_sum="$(node -e 'process.stdout.write(require("crypto").createHash("sha256").update(require("fs").readFileSync("package-lock.json")).digest("hex"))')"
stamp=node_modules/.rtc-package-lock.sha256
if [ -x node_modules/.bin/jco ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$lock_sum" ]; then
  echo "tests/node: node_modules is up to date with package-lock.json"
else
  echo "tests/node: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  printf '%s' "$lock_sum" > "$stamp"
fi

echo "tests/node: transpiling $wasm"
rm -rf out
node_modules/.bin/jco transpile "$wasm" -o out --quiet \
  --map 'rtc:cache/redis@0.2.0=../backend.js' \
  --map 'rtc:cache/hooks@0.2.0=../hooks.js'
[ -f out/rtc_component.js ] || fail "jco wrote no out/rtc_component.js"
WASM="$wasm" node -e '
  const fs = require("fs");
  const sha256 = require("crypto").createHash("sha256").update(fs.readFileSync(process.env.WASM)).digest("hex");
  fs.writeFileSync("out/SOURCE.json", JSON.stringify({ wasm: process.env.WASM, sha256 }, null, 2) + "\n");
'
# The standalone rtc (core/component/compose.sh) needs no JavaScript of ours:
# jco's WASI shim serves all its imports, TCP sockets included.
standalone="$(dirname "$wasm")/rtc_standalone.wasm"
rm -rf out-standalone
if [ -f "$standalone" ]; then
  echo "tests/node: transpiling $standalone (no import mapped: WASI only)"
  node_modules/.bin/jco transpile "$standalone" -o out-standalone --quiet
  [ -f out-standalone/rtc_standalone.js ] || fail "jco wrote no out-standalone/rtc_standalone.js"
else
  echo "tests/node: no $standalone (bash core/component/compose.sh builds it); standalone.mjs cannot run"
fi
echo "tests/node: ready (node tests/node/run.mjs runs the Node host)"
