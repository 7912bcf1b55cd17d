"""Benchmark: the reference (redis-tagged-cache 0.12.1) and this package on the
same Redis, in one run, single-threaded ops/s.

    target/py-pkg-venv/bin/python host/bench/python/package.py [--seconds 2] [--rounds 3] [--port PORT]

Starts its own redis-server on a free loopback port unless --port is given.
Each round runs the reference, then this package, in separate processes (each
in its own venv: `import rtc` is the reference in target/py-venv, this package
in the venv running this script), so both see the same Redis and machine
load; the best round of each is reported. Operations: get hit (2 tags), set
(2 tags), decorator hit (2 tags, derived key), invalidate (1 tag).
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
OPS = ["get hit", "set", "decorator hit", "invalidate"]


def worker(port: int, namespace: str, seconds: float) -> None:
    """Measures each operation for `seconds` with whichever rtc this Python imports."""
    from rtc import RedisTaggedCache

    cache = RedisTaggedCache(host="127.0.0.1", port=port, namespace=namespace)
    tags = ["users", "user:42"]
    value = {"id": 42, "name": "Ada", "roles": ["admin", "dev"], "bio": "x" * 200}

    @cache.decorator(tags=tags)
    def load_user(user_id):
        return value

    cache.set("user:42", value, tags=tags)
    load_user(42)

    def measure(op):
        n, end = 0, time.perf_counter() + seconds
        start = time.perf_counter()
        while True:
            for _ in range(100):
                op()
            n += 100
            now = time.perf_counter()
            if now >= end:
                return n / (now - start)

    results = {
        "get hit": measure(lambda: cache.get("user:42", tags=tags)),
        "set": measure(lambda: cache.set("user:43", value, tags=tags)),
        "decorator hit": measure(lambda: load_user(42)),
        "invalidate": measure(lambda: cache.invalidate("user:44")),
    }
    import rtc

    if "near_cache_max_entries" in {f.name for f in __import__("dataclasses").fields(RedisTaggedCache)}:
        # rtc only: the get hit served by the near cache, against the reference's get hit.
        near = RedisTaggedCache(host="127.0.0.1", port=port, namespace=namespace, near_cache_max_entries=1000)
        near.set("user:42", value, tags=tags)
        deadline = time.perf_counter() + 10
        while time.perf_counter() < deadline:  # until the tracking connection serves it
            near.get("user:42", tags=tags)
            t0 = time.perf_counter()
            near.get("user:42", tags=tags)
            if time.perf_counter() - t0 < 0.00002:
                break
        results["get hit, near cache"] = measure(lambda: near.get("user:42", tags=tags))
    results["module"] = rtc.__file__
    print(json.dumps(results))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--port", type=int)
    parser.add_argument("--reference-python", default=str(Path(os.environ.get("RTC_PY_VENV") or ROOT / "target/py-venv") / "bin/python"))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--namespace", default="bench")
    args = parser.parse_args()
    if args.worker:
        return worker(args.port, args.namespace, args.seconds)

    server = None
    port = args.port
    tmp = tempfile.mkdtemp(prefix="rtc-bench-")
    if port is None:
        port = free_port()
        server = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", tmp],
            stdout=subprocess.DEVNULL,
        )
        for _ in range(500):
            try:
                socket.create_connection(("127.0.0.1", port), 0.1).close()
                break
            except OSError:
                time.sleep(0.01)
    try:
        best = {"reference": {}, "rtc": {}}
        for r in range(args.rounds):
            for side, python in (("reference", args.reference_python), ("rtc", sys.executable)):
                out = subprocess.run(
                    [python, __file__, "--worker", "--port", str(port), "--namespace", f"{side}-{r}",
                     "--seconds", str(args.seconds)],
                    check=True, capture_output=True, text=True, cwd=tmp,
                ).stdout
                got = json.loads(out)
                best[side]["module"] = got.pop("module")
                for op, v in got.items():
                    best[side][op] = max(best[side].get(op, 0.0), v)
        print(f"reference: {best['reference'].pop('module')}")
        print(f"rtc:       {best['rtc'].pop('module')}")
        print(f"best of {args.rounds} rounds of {args.seconds:g} s, one thread, one redis-server on loopback\n")
        print(f"| operation | reference ops/s | rtc ops/s | rtc / reference |")
        print(f"|---|---:|---:|---:|")
        for op in OPS:
            ref, ours = best["reference"][op], best["rtc"][op]
            print(f"| {op} | {ref:,.0f} | {ours:,.0f} | {ours / ref:.1f}x |")
        if "get hit, near cache" in best["rtc"]:
            ref, ours = best["reference"]["get hit"], best["rtc"]["get hit, near cache"]
            print(f"| get hit, near cache (vs the reference's get hit) | {ref:,.0f} | {ours:,.0f} | {ours / ref:.1f}x |")
    finally:
        if server is not None:
            server.kill()
            server.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
