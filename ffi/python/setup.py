"""Builds the wheel of the `rtc` package from the rtc checkout it sits in.

Two generated files join the pure-Python package in the wheel:

- ``rtc/librtc.so``: ``cargo build --release --locked -p rtc-ffi`` in the
  workspace (its own ``target/``, or ``$CARGO_TARGET_DIR``), so the library is
  the one ``tests/run.sh`` builds and nothing else is compiled (no wasmtime).
- ``rtc/_ffi.py``: cffi's out-of-line ABI-mode module, made from
  ``include/rtc.h`` (the committed, cbindgen-generated header) by cffi's own
  recompiler. cffi cannot read preprocessor conditionals or string macros, so
  the header is first reduced to the C17 declarations a C compiler would see
  (``c17_declarations``). Deriving the declarations from the header, rather
  than copying them by hand, keeps them from drifting from the ABI.

Why not maturin's cffi binding: maturin 1.16.0 regenerates the header with
cbindgen from ``ffi/cbindgen.toml`` and hands it to cffi, whose ``cdef``
rejects the header's ``#define RTC_VERSION "0.1.0"`` (CDefError, tried);
making it work means changing the C header's configuration.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

try:
    from wheel.bdist_wheel import bdist_wheel
except ImportError:  # pragma: no cover - wheel is in build-system.requires
    bdist_wheel = None

HERE = Path(__file__).resolve().parent
# The Rust workspace librtc is built in: the checkout this package sits in
# (ffi/python -> the root), or, in an sdist, the part of it the sdist carries
# under rust/ (see Sdist).
ROOT = HERE / "rust" if (HERE / "rust" / "Cargo.toml").is_file() else HERE.parent.parent
IN_SDIST = ROOT == HERE / "rust"


def fail(message):
    sys.exit(f"rtc setup.py: {message}")


def c17_declarations(header: str) -> str:
    """Returns the declarations of rtc.h that a C17 compiler sees, for cffi.

    Comments, #include lines and string macros go; numeric macros stay (cffi
    reads them); #if/#ifdef/#ifndef blocks are resolved for C, not C++, before
    C23. An unknown condition stops the build, so a header change is noticed.
    """
    text = re.sub(r"/\*.*?\*/", "", header, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    known = {
        "defined(__cplusplus) || __STDC_VERSION__ >= 202311L": False,
        "__STDC_VERSION__ >= 202311L": False,
    }
    out, stack = [], []  # stack of (this branch taken, any branch taken)
    for raw in text.splitlines():
        line = raw.strip()
        active = all(taken for taken, _ in stack)
        if line.startswith("#"):
            directive, _, rest = line[1:].strip().partition(" ")
            rest = rest.strip()
            if directive in ("ifdef", "ifndef"):
                # Only the include guard and __cplusplus are tested: neither is defined.
                if rest not in ("RTC_H", "__cplusplus"):
                    fail(f"unknown #{directive} {rest!r} in include/rtc.h")
                taken = directive == "ifndef"
                stack.append((taken, taken))
            elif directive == "if":
                if rest not in known:
                    fail(f"unknown #if {rest!r} in include/rtc.h")
                stack.append((known[rest], known[rest]))
            elif directive == "else":
                _, any_taken = stack.pop()
                stack.append((not any_taken, True))
            elif directive == "endif":
                stack.pop()
            elif directive == "define" and active:
                name, _, value = rest.partition(" ")
                if re.fullmatch(r"-?(0x[0-9a-fA-F]+|\d+)", value.strip()):
                    out.append(f"#define {name} {value.strip()}")
            elif directive in ("include", "define"):
                pass
            else:
                fail(f"unknown directive {line!r} in include/rtc.h")
            continue
        if active and line:
            out.append(raw)
    if stack:
        fail("unbalanced #if/#endif in include/rtc.h")
    return "\n".join(out) + "\n"


def target_dir() -> Path:
    return Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")


def build_librtc() -> Path:
    """Builds librtc (release, only the ffi crate) and returns its path."""
    if not (ROOT / "Cargo.toml").is_file() or not (ROOT / "ffi" / "Cargo.toml").is_file():
        fail(f"{ROOT} is not the rtc workspace: build the package from an rtc checkout")
    cargo = shutil.which("cargo") or fail("cargo is not on PATH (install Rust: https://rustup.rs)")
    # In an sdist the workspace is cut down to core and ffi: cargo prunes the
    # lock file's other packages (wasmtime's), so it cannot be --locked; the
    # versions it keeps are the checkout's.
    cmd = [cargo, "build", "--release", "-p", "rtc-ffi"] + ([] if IN_SDIST else ["--locked"])
    print("rtc setup.py:", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)
    lib = target_dir() / "release" / "librtc.so"
    if not lib.is_file():
        fail(f"cargo did not produce {lib}")
    return lib


def write_ffi_module(dest: Path) -> None:
    """Writes cffi's ABI-mode module for include/rtc.h to `dest`."""
    import cffi
    from cffi import recompiler

    ffi = cffi.FFI()
    ffi.cdef(c17_declarations((ROOT / "include" / "rtc.h").read_text()))
    recompiler.make_py_source(ffi, "rtc._ffi", str(dest))


class BuildPy(build_py):
    """build_py that adds librtc.so and the cffi module to the package."""

    def run(self):
        super().run()
        package = Path(self.build_lib) / "rtc"
        package.mkdir(parents=True, exist_ok=True)
        lib = package / "librtc.so"
        shutil.copyfile(build_librtc(), lib)
        # The release build keeps full debug info for the ABI check (abidw);
        # the wheel's copy needs none of it (about 5 MB of 6).
        strip = shutil.which("strip")
        if strip:
            subprocess.run([strip, "--strip-debug", str(lib)], check=True)
        write_ffi_module(package / "_ffi.py")


# What of the workspace an sdist carries to build librtc: core and ffi with
# the lock file and the header; nothing of host/ (wasmtime), tests/ or the
# components.
SDIST_RUST = ["Cargo.lock", "include/rtc.h", "core/Cargo.toml", "core/src", "ffi/Cargo.toml", "ffi/build.rs", "ffi/src"]


def sdist_manifest(manifest: str) -> str:
    """The workspace's Cargo.toml with only the members an sdist carries."""
    members = re.compile(r'^(default-)?members = \[.*\]$', re.M)
    if len(members.findall(manifest)) != 2:
        fail("the workspace's Cargo.toml has no members/default-members lines to cut down")
    manifest = members.sub(lambda m: "" if m.group(1) else 'members = ["core", "ffi"]', manifest)
    # Workspace dependencies on crates the sdist lacks (host/...) go too.
    return "\n".join(line for line in manifest.splitlines() if 'path = "host' not in line) + "\n"


class Sdist(sdist):
    """sdist that adds the part of the workspace librtc is built from, under rust/."""

    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        if IN_SDIST:  # an sdist of an sdist: rust/ is among the files already
            return
        rust = Path(base_dir) / "rust"
        for part in SDIST_RUST:
            src, dest = ROOT / part, rust / part
            if src.is_dir():
                shutil.copytree(src, dest)
            else:
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dest)
        (rust / "Cargo.toml").write_text(sdist_manifest((ROOT / "Cargo.toml").read_text()))


class BinaryDistribution(Distribution):
    """Marks the wheel as platform-specific: it carries librtc.so."""

    def has_ext_modules(self):
        return True


cmdclass = {"build_py": BuildPy, "sdist": Sdist}
if bdist_wheel is not None:

    class BdistWheel(bdist_wheel):
        """Tags the wheel py3-none-PLATFORM: the cffi ABI module fits any CPython 3."""

        def get_tag(self):
            _, _, plat = super().get_tag()
            return "py3", "none", plat

    cmdclass["bdist_wheel"] = BdistWheel

# setuptools' scratch files go to the workspace's target/, not into the source tree.
setup(
    cmdclass=cmdclass,
    distclass=BinaryDistribution,
    options={"build": {"build_base": str(target_dir() / "python-build")}},
)
