#!/usr/bin/env bash
# Builds and installs the `rtc` Python package from this checkout into a fresh
# venv (target/py-pkg-venv), exactly as a user would (`pip install ./ffi/python`),
# then runs its pytest suite against a real redis-server and the reference
# (redis-tagged-cache 0.12.1, in target/py-venv from tests/python/setup.sh).
#
#   bash ffi/python/test.sh [pytest arguments]
#
# The wheel's librtc comes from `cargo build --release --locked -p rtc-ffi`, so
# it reuses the workspace's target/ (a no-op after tests/run.sh's build).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
VENV="${RTC_PY_PKG_VENV:-$ROOT/target/py-pkg-venv}"
PYTHON="${PYTHON:-python3}"
cd "$ROOT"

say() { printf '==> %s\n' "$*"; }

bash tests/python/setup.sh  # the reference, which the interop tests drive

say "creating a fresh venv in $VENV"
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
say "pip install ./ffi/python (builds the wheel from this checkout)"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check ./ffi/python pytest redis
say "running the pytest suite of ffi/python"
cd ffi/python
# --capture=sys: the descriptors stay the terminal's, so what the process
# says as it dies (a fatal error, librtc's own output) reaches the log.
exec "$VENV/bin/python" -m pytest -q --capture=sys -p no:cacheprovider tests "$@"
