#!/usr/bin/env python3
"""Lists the import circles between the modules of a Rust crate, and exits 1
if there is one.

usage: import_circles.py SRC_DIR [DEPTH] [-v]
       import_circles.py --self-test

The modules are found the way rustc finds them: from the crate roots
(`lib.rs`, `main.rs`: two crates when both are there) through their `mod`
declarations. Every path a module names is resolved to the module that
defines the item: `crate::`, `super::` (any number), `self::` and paths that
start with a child module, in `use` trees and in code alike. A re-export
(`pub use`, `pub(crate) use`) is followed to where the item lives and is not
itself a dependency: a `mod.rs` that only declares and re-exports its
children is a facade, while one that holds items its children use, and uses
theirs, is a circle. Test code (`#[cfg(test)]` items) is left out: tests may
use anything. With DEPTH (1 = the top-level folders of SRC_DIR), modules are
grouped by their first DEPTH path segments, so a circle between two folders
shows too. `-v` prints the graph. tests/run.sh runs it on every crate of
core, ffi and host at both depths.
"""
import os
import re
import sys

SELF_TEST = {
    # A child using its parent's item while the parent uses the child's: a circle.
    "circle/lib.rs": "mod a;",
    "circle/a/mod.rs": "mod b;\nuse b::B;\npub struct A(B);",
    "circle/a/b.rs": "pub struct B;\nfn f(_: super::A) {}",
    # The same through crate:: and a re-export facade: siblings, no circle.
    "facade/lib.rs": "mod a;\npub use a::{B, C};",
    "facade/a/mod.rs": "mod b;\nmod c;\npub use b::B;\npub(crate) use c::C;",
    "facade/a/b.rs": "pub struct B(crate::C);",
    "facade/a/c.rs": "pub struct C;\n#[cfg(test)]\nmod tests { use crate::B; }",
    # Two folders, each using the other's module: a circle at depth 1 only.
    "folders/lib.rs": "mod x;\nmod y;",
    "folders/x/mod.rs": "mod p;\nmod q;",
    "folders/x/p.rs": "use crate::y::r::R;\npub struct P(R);",
    "folders/x/q.rs": "pub struct Q;",
    "folders/y/mod.rs": "pub(crate) mod r;",
    "folders/y/r.rs": "pub struct R;\nfn g(_: crate::x::q::Q) {}",
}
if sys.argv[1:] == ["--self-test"]:
    # The check checked: it must see the circles a change could bring.
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for name, text in SELF_TEST.items():
            os.makedirs(os.path.dirname(os.path.join(tmp, name)), exist_ok=True)
            with open(os.path.join(tmp, name), "w") as out:
                out.write(text + "\n")
        expected = {("circle", "99"): 1, ("facade", "99"): 0, ("folders", "99"): 0, ("folders", "1"): 1}
        for (crate, depth), code in expected.items():
            got = subprocess.run([sys.executable, __file__, os.path.join(tmp, crate), depth], capture_output=True)
            if got.returncode != code:
                sys.exit(f"self-test: {crate} at depth {depth} exited {got.returncode}, not {code}: {got.stdout}")
    print("self-test: the circles are found, the facades and test code are not")
    sys.exit(0)

ARGS = [a for a in sys.argv[1:] if a != "-v"]
ROOT = ARGS[0]
DEPTH = int(ARGS[1]) if len(ARGS) > 1 else 99
IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip(src):
    """The source without comments, string literals and `#[cfg(test)]` items."""
    src = re.sub(r"/\*.*?\*/", "", src, flags=re.S)
    src = re.sub(r"//[^\n]*", "", src)
    src = re.sub(r'r#*"(?:.|\n)*?"#*|"(?:\\.|[^"\\])*"', '""', src)
    out, lines, i = [], src.split("\n"), 0
    while i < len(lines):
        if re.match(r"\s*#\[cfg\(test\)\]", lines[i]):
            j, bal, started = i + 1, 0, False
            while j < len(lines):
                bal += lines[j].count("{") - lines[j].count("}")
                started = started or "{" in lines[j]
                if (started and bal <= 0) or (not started and lines[j].rstrip().endswith(";")):
                    break
                j += 1
            i = j + 1
            continue
        out.append(lines[i])
        i += 1
    return "\n".join(out)


def use_paths(tree):
    """Expands a use tree (`a::{b, c::{d as e}, f::*}`) into (path, name) pairs."""
    tokens = re.findall(r"::|[{},*]|" + IDENT, tree)
    pos = [0]

    def peek():
        return tokens[pos[0]] if pos[0] < len(tokens) else None

    def take():
        pos[0] += 1
        return tokens[pos[0] - 1]

    def parse(prefix):
        found = []
        while True:
            tok = peek()
            if tok is None:
                return found
            if tok == "{":
                take()
                while peek() not in (None, "}"):
                    found += parse(list(prefix))
                    if peek() == ",":
                        take()
                take()
                return found
            if tok == "*":
                take()
                return found + [(prefix + ["*"], "*")]
            if tok in (",", "}"):
                return found
            name = take()
            if peek() == "::":
                take()
                prefix = prefix + [name]
                continue
            alias = name
            if peek() == "as":
                take()
                alias = take()
            path = prefix + [name]
            if name == "self":
                path, alias = prefix, (prefix[-1] if prefix else "self")
                if alias == "self":
                    alias = prefix[-1] if prefix else "self"
            return found + [(path, alias)]

    return parse([])


class Module:
    def __init__(self, crate, path, file):
        self.crate, self.path, self.file = crate, path, file
        self.children = set()
        self.defines = set()
        self.reexports = {}  # name -> path (segments), relative to this module
        self.globs = []  # paths of `pub use x::*`
        self.uses = []  # paths this module depends on

    @property
    def id(self):
        return (self.crate, tuple(self.path))


modules = {}


def load(crate, path, file):
    module = Module(crate, path, file)
    modules[module.id] = module
    src = strip(open(file).read())
    folder = os.path.dirname(file)
    if os.path.basename(file) not in ("lib.rs", "main.rs", "mod.rs"):
        folder = os.path.join(folder, os.path.basename(file)[:-3])
    for name in re.findall(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(" + IDENT + r")\s*;", src, flags=re.M):
        for candidate in (os.path.join(folder, name + ".rs"), os.path.join(folder, name, "mod.rs")):
            if os.path.exists(candidate):
                module.children.add(name)
                load(crate, path + [name], candidate)
                break
    module.defines.update(
        re.findall(
            r"\b(?:fn|struct|enum|trait|type|const|static|union|macro_rules!)\s+(" + IDENT + ")",
            src,
        )
    )
    # Use statements: re-exports are followed, private ones are dependencies.
    for vis, tree in re.findall(r"(?:^|[;{}\s])(pub(?:\([^)]*\))?\s+)?use\s+([^;]*);", src):
        for path_, name in use_paths(tree):
            if vis:
                if name == "*":
                    module.globs.append(path_[:-1])
                else:
                    module.reexports[name] = path_
            else:
                module.uses.append(path_[:-1] if name == "*" else path_)
    code = re.sub(r"(?:pub(?:\([^)]*\))?\s+)?use\s+[^;]*;", "", src)
    for path_ in re.findall(r"\b(?:(?:crate|super|self|" + IDENT + r")::)+" + IDENT, code):
        module.uses.append(path_.split("::"))


def base_of(module, segs):
    """Where a path starts (a module id and the rest of the path), or None for an extern crate."""
    here = list(module.path)
    if segs[0] == "crate":
        return (module.crate, []), segs[1:]
    if segs[0] in ("super", "self"):
        while segs and segs[0] in ("super", "self"):
            if segs[0] == "super":
                here = here[:-1]
            segs = segs[1:]
        return (module.crate, here), segs
    if segs[0] in module.children:
        return (module.crate, here), segs
    return None, segs


def resolve(module, segs, seen=()):
    """The module that defines what `segs`, named in `module`, names."""
    start, rest = base_of(module, segs)
    if start is None:
        return None
    crate, here = start
    for i, seg in enumerate(rest):
        current = modules[(crate, tuple(here))]
        if seg in current.children:
            here = here + [seg]
            continue
        return follow(current, seg, seen)
    return modules[(crate, tuple(here))]


def follow(current, name, seen):
    """The module that defines `name`, as seen from `current` (through its re-exports)."""
    key = (current.id, name)
    if key in seen or name in current.defines:
        return current
    if name in current.reexports:
        return resolve(current, current.reexports[name], seen + (key,)) or current
    for glob in current.globs:
        source = resolve(current, glob, seen + (key,))
        if source is not None and source is not current:
            found = follow(source, name, seen + (key,))
            if found is not source or name in source.defines:
                return found
    return current


for root_file, crate in (("lib.rs", "lib"), ("main.rs", "main")):
    if os.path.exists(os.path.join(ROOT, root_file)):
        load(crate, [], os.path.join(ROOT, root_file))


def unit(module):
    return "/".join(module.path[:DEPTH]) or module.crate


edges = {}
for module in modules.values():
    targets = edges.setdefault(unit(module), set())
    for path_ in module.uses:
        if not path_:
            continue
        target = resolve(module, path_)
        if target is not None and unit(target) != unit(module) and target.crate == module.crate:
            targets.add(unit(target))

# Strongly connected components (Tarjan).
index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]


def connect(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on.add(v)
    for w in edges.get(v, ()):
        if w not in index:
            connect(w)
            low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop()
            on.discard(w)
            comp.append(w)
            if w == v:
                break
        if len(comp) > 1:
            comps.append(sorted(comp))


sys.setrecursionlimit(10000)
for v in list(edges):
    if v not in index:
        connect(v)
for comp in comps:
    print("circle:", " <-> ".join(comp))
if "-v" in sys.argv:
    for k in sorted(edges):
        print(f'{k:24} -> {" ".join(sorted(edges[k]))}')
print(f"{len(comps)} circle(s) among {len(edges)} units")
sys.exit(1 if comps else 0)
