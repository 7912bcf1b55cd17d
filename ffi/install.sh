#!/usr/bin/env bash
# Installs librtc into a prefix: the shared library (librtc.so.VERSION, with
# the links librtc.so.ABI, its SONAME, and librtc.so), the static library,
# the headers (rtc.h, and rtc.hpp for C++17), two pkg-config files (rtc:
# shared, rtc-static: static) and a CMake package (lib/cmake/rtc).
#
#   bash ffi/install.sh PREFIX            # builds librtc (cargo build --release --locked -p rtc-ffi), then installs
#   bash ffi/install.sh --no-build PREFIX # installs what target/release already holds
#
# Then:
#   export PKG_CONFIG_PATH=PREFIX/lib/pkgconfig
#   cc app.c $(pkg-config --cflags --libs rtc)          # links librtc.so (with an rpath to PREFIX/lib)
#   cc app.c $(pkg-config --cflags --libs rtc-static)   # links librtc.a
# or, in CMake (cmake -DCMAKE_PREFIX_PATH=PREFIX):
#   find_package(rtc 0.1 CONFIG REQUIRED)
#   target_link_libraries(app PRIVATE rtc::rtc)         # RTC_USE_STATIC_LIBS=ON: librtc.a
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

install -d "$prefix/include" "$prefix/lib/pkgconfig" "$prefix/lib/cmake/rtc"
install -m 644 "$root/include/rtc.h" "$root/include/rtc.hpp" "$prefix/include/"
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
# The CMake package: the same version and libraries (CMake wants the native
# libraries as names, without -l).
cmake_native_libs=$(printf '%s' "$native_libs" | sed -e 's/-l//g' -e 's/ /;/g')
IFS=. read -r major minor _ <<<"$version"
for f in rtcConfig rtcConfigVersion; do
  sed -e "s|@VERSION@|$version|g" -e "s|@VERSION_MAJOR@|$major|g" -e "s|@VERSION_MINOR@|$minor|g" \
    -e "s|@SONAME@|$soname|g" -e "s|@CMAKE_NATIVE_LIBS@|$cmake_native_libs|g" \
    "$root/ffi/cmake/$f.cmake.in" >"$prefix/lib/cmake/rtc/$f.cmake"
done
echo "installed librtc $version into $prefix (export PKG_CONFIG_PATH=$prefix/lib/pkgconfig)"
