#!/usr/bin/env bash
# Creates the Python virtual environment the interop tests run the reference
# in (tests/tests/python_interop.rs), and installs redis-tagged-cache 0.12.1
# and its dependencies (redis, wrapt) into it from the package index.
#
# Idempotent: does nothing when the venv already has the pinned version.
#
#   bash tests/python/setup.sh            # venv at target/py-venv
#   RTC_PY_VENV=/some/dir bash tests/python/setup.sh
#
# The tests look for the venv at the same place ($RTC_PY_VENV, else
# <repo>/target/py-venv).
set -euo pipefail

REFERENCE="redis-tagged-cache"
VERSION="0.12.1"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
VENV="${RTC_PY_VENV:-$ROOT/target/py-venv}"
PYTHON="${PYTHON:-python3}"

say() { printf '==> %s\n' "$*"; }
die() { printf 'tests/python/setup.sh: %s\n' "$*" >&2; exit 1; }

installed_version() {
  [ -x "$VENV/bin/python" ] || return 1
  "$VENV/bin/python" - "$REFERENCE" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
import rtc, redis, wrapt  # the reference and its dependencies import
print(version(sys.argv[1]))
EOF
}

if [ "$(installed_version || true)" = "$VERSION" ]; then
  say "$REFERENCE $VERSION is already installed in $VENV"
  exit 0
fi

command -v "$PYTHON" >/dev/null || die "$PYTHON is not installed (Debian: apt-get install -y python3 python3-venv)"

# A venv missing its python or pip (a half-made one) is made again.
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
  say "creating a virtual environment in $VENV"
  rm -rf "$VENV"
  mkdir -p "$(dirname "$VENV")"
  err="$(mktemp)"
  trap 'rm -f "$err"' EXIT
  if ! "$PYTHON" -m venv "$VENV" >/dev/null 2>"$err"; then
    rm -rf "$VENV"
    # Debian's python3 comes without venv and ensurepip: they are in python3-venv.
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
      say "$PYTHON -m venv failed; installing Debian's python3-venv"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      "$PYTHON" -m venv "$VENV" || die "$PYTHON -m venv still fails after installing python3-venv"
    else
      cat "$err" >&2
      die "$PYTHON -m venv failed. On Debian or Ubuntu install the venv module first:
    sudo apt-get install -y python3-venv
then run this script again."
    fi
  fi
fi

say "installing $REFERENCE==$VERSION into $VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$REFERENCE==$VERSION" \
  || die "pip could not install $REFERENCE==$VERSION (is the package index reachable?)"

got="$(installed_version || true)"
[ "$got" = "$VERSION" ] || die "$VENV has $REFERENCE '${got:-nothing}', want $VERSION"
say "$REFERENCE $VERSION ready: $VENV/bin/python"
