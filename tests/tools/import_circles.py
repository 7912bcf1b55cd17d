#!/usr/bin/env python3
"""Lists the import circles between the modules of a Rust crate, and exits 1
if there is one.

usage: import_circles.py SRC_DIR [DEPTH] [-v]

Reads the `crate::` and `super::` paths of every `.rs` file under SRC_DIR
(test code, `#[cfg(test)]` items, left out: tests may use anything) and
finds the strongly connected components of the graph of modules. With DEPTH
(1 = the top-level folders of SRC_DIR), modules are grouped by their first
DEPTH path segments, so a circle between two folders shows too. `-v` prints
the graph. tests/run.sh runs it on core, ffi and host at both depths.
"""
import re, sys, os
args = [a for a in sys.argv[1:] if a != '-v']
root = args[0]
depth = int(args[1]) if len(args) > 1 else 99
mods = {}
for dp, _, fs in os.walk(root):
    for f in fs:
        if not f.endswith('.rs'): continue
        p = os.path.relpath(os.path.join(dp, f), root)[:-3]
        parts = p.split('/')
        if parts[-1] in ('mod', 'lib', 'main'): parts = parts[:-1]
        mods['/'.join(parts) or 'lib'] = os.path.join(dp, f)
def unit(m): return '/'.join(m.split('/')[:depth]) or 'lib'
def strip_tests(src):
    out, skip, depthb = [], False, 0
    lines = src.split('\n'); i = 0
    while i < len(lines):
        l = lines[i]
        if re.match(r'\s*#\[cfg\(test\)\]', l):
            # skip next item (mod tests { ... })
            j = i + 1; bal = 0; started = False
            while j < len(lines):
                bal += lines[j].count('{') - lines[j].count('}')
                if '{' in lines[j]: started = True
                if started and bal <= 0: break
                if not started and lines[j].rstrip().endswith(';'): break
                j += 1
            i = j + 1; continue
        out.append(l); i += 1
    return '\n'.join(out)
edges = {}
names = set(mods)
for m, path in mods.items():
    src = strip_tests(open(path).read())
    src = re.sub(r'//.*', '', src)
    deps = set()
    # expand `use crate::{a, b::c}` groups
    for grp in re.findall(r'crate::\{([^}]*(?:\{[^}]*\}[^}]*)*)\}', src):
        for item in re.split(r',\s*(?![^{]*\})', grp):
            item = item.strip()
            if item: deps.add(item)
    for p in re.findall(r'crate::((?:[a-z_][a-z0-9_]*::)*[A-Za-z_][A-Za-z0-9_]*)', src):
        deps.add(p)
    # super:: relative
    base = m.split('/')
    if os.path.basename(path) not in ('mod.rs', 'lib.rs'): base = base[:-1]
    for p in re.findall(r'\bsuper::((?:[a-z_][a-z0-9_]*::)*[A-Za-z_][A-Za-z0-9_]*)', src):
        deps.add('/'.join(base[:-1] + [p.replace('::', '/')]).replace('/', '::') if base else p)
    tgt = set()
    for d in deps:
        segs = d.replace('::', '/').split('/')
        best = None
        for k in range(len(segs), 0, -1):
            cand = '/'.join(segs[:k])
            if cand in names: best = cand; break
        if best and unit(best) != unit(m): tgt.add(unit(best))
    edges.setdefault(unit(m), set()).update(tgt)
# strongly connected components (Tarjan)
index, low, st, on, comps, c = {}, {}, [], set(), [], [0]
def sc(v):
    index[v] = low[v] = c[0]; c[0] += 1; st.append(v); on.add(v)
    for w in edges.get(v, ()):
        if w not in index: sc(w); low[v] = min(low[v], low[w])
        elif w in on: low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = st.pop(); on.discard(w); comp.append(w)
            if w == v: break
        if len(comp) > 1: comps.append(sorted(comp))
sys.setrecursionlimit(10000)
for v in list(edges):
    if v not in index: sc(v)
for comp in comps: print('circle:', ' <-> '.join(comp))
if '-v' in sys.argv:
    for k in sorted(edges): print(f'{k:24} -> {" ".join(sorted(edges[k]))}')
print(f'{len(comps)} circle(s) among {len(edges)} units')
sys.exit(1 if comps else 0)
