#!/usr/bin/env bash
# Installs librtc into a prefix: the shared library (librtc.so.VERSION, with
# the links librtc.so.ABI, its SONAME, and librtc.so), the static library,
# the header, and two pkg-config files (rtc: shared, rtc-static: static).
#
#   bash ffi/install.sh PREFIX            # builds librtc (cargo build --release --locked -p rtc-ffi), then installs
#   bash ffi/install.sh --no-build PREFIX # installs what target/release already holds
#
# Then:
#   export PKG_CONFIG_PATH=PREFIX/lib/pkgconfig
#   cc app.c $(pkg-config --cflags --libs rtc)          # links librtc.so (with an rpath to PREFIX/lib)
#   cc app.c $(pkg-config --cflags --libs rtc-static)   # links librtc.a
#
# The libraries are taken from $RTC_LIB_DIR if set, else from
# ${CARGO_TARGET_DIR:-target}/release.
set -euo pipefail

build=1
if [ "${1:-}" = "--no-build" ]; then
  build=0
  shift
fi
if [ $# -ne 1 ]; then
  echo "usage: bash ffi/install.sh [--no-build] PREFIX" >&2
  exit 2
fi
prefix=$1
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$prefix"
prefix=$(cd "$prefix" && pwd)

if [ "$build" = 1 ]; then
  (cd "$root" && cargo build --release --locked -p rtc-ffi)
fi
target=${CARGO_TARGET_DIR:-$root/target}
case "$target" in /*) ;; *) target=$root/$target ;; esac
lib_dir=${RTC_LIB_DIR:-$target/release}
for f in librtc.so librtc.a; do
  if [ ! -f "$lib_dir/$f" ]; then
    echo "install.sh: $lib_dir/$f is missing: run cargo build --release --locked -p rtc-ffi" >&2
    exit 1
  fi
done

# The header is the source of truth for the version (a test keeps it equal to the crate's).
version=$(sed -n 's/^#define RTC_VERSION "\(.*\)"$/\1/p' "$root/include/rtc.h")
# What Rust's standard library needs when librtc.a is linked statically
# (rustc --print native-static-libs, for x86_64/aarch64-unknown-linux-gnu).
native_libs="-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc"

install -d "$prefix/include" "$prefix/lib/pkgconfig"
install -m 644 "$root/include/rtc.h" "$prefix/include/rtc.h"
# The versioned file, its SONAME link (what programs record) and the
# development link (what -lrtc finds): librtc.so -> librtc.so.ABI -> librtc.so.VERSION.
soname=$(readelf -d "$lib_dir/librtc.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
if [ -z "$soname" ]; then
  echo "install.sh: $lib_dir/librtc.so has no SONAME: rebuild it with cargo build --release --locked -p rtc-ffi" >&2
  exit 1
fi
install -m 755 "$lib_dir/librtc.so" "$prefix/lib/librtc.so.$version"
ln -sfn "librtc.so.$version" "$prefix/lib/$soname"
ln -sfn "$soname" "$prefix/lib/librtc.so"
install -m 644 "$lib_dir/librtc.a" "$prefix/lib/librtc.a"
for pc in rtc rtc-static; do
  sed -e "s|@PREFIX@|$prefix|g" -e "s|@VERSION@|$version|g" -e "s|@NATIVE_LIBS@|$native_libs|g" \
    "$root/ffi/$pc.pc.in" >"$prefix/lib/pkgconfig/$pc.pc"
done
echo "installed librtc $version into $prefix (export PKG_CONFIG_PATH=$prefix/lib/pkgconfig)"
