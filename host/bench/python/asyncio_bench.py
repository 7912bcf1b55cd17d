"""Benchmark: rtc.asyncio's get hit against redis.asyncio's plain GET, the sync
package at 8 threads and the reference's get hit, on one Redis, in one run.

    target/py-pkg-venv/bin/python host/bench/python/asyncio_bench.py [--seconds 2] [--rounds 3] [--port PORT]

Starts its own redis-server on a free loopback port unless --port is given.
Rounds interleave the workloads (each `--seconds` long, in this process except
the reference, which runs in its own venv, target/py-venv); the best round of
each is reported. Values: a 2-tag entry of about 250 bytes (pickled), as
package.py's.
"""

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
TAGS = ["users", "user:42"]
VALUE = {"id": 42, "name": "Ada", "roles": ["admin", "dev"], "bio": "x" * 200}


async def tasks_loop(n_tasks: int, seconds: float, op) -> float:
    """Runs `op` (a coroutine function) in `n_tasks` tasks for `seconds`; ops/s."""
    deadline = time.perf_counter() + seconds
    counts = [0] * n_tasks

    async def task(i: int) -> None:
        while time.perf_counter() < deadline:
            for _ in range(20):
                await op()
            counts[i] += 20

    start = time.perf_counter()
    await asyncio.gather(*(task(i) for i in range(n_tasks)))
    return sum(counts) / (time.perf_counter() - start)


def threads_loop(n_threads: int, seconds: float, op) -> float:
    deadline = time.perf_counter() + seconds
    counts = [0] * n_threads

    def run(i: int) -> None:
        while time.perf_counter() < deadline:
            for _ in range(20):
                op()
            counts[i] += 20

    start = time.perf_counter()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - start)


def reference_worker(port: int, seconds: float) -> None:
    """The reference's get hit, one thread (run with the reference's Python)."""
    from rtc import RedisTaggedCache

    cache = RedisTaggedCache(host="127.0.0.1", port=port, namespace="bench-reference")
    cache.set("user:42", VALUE, tags=TAGS)
    print(json.dumps({"reference get hit": threads_loop(1, seconds, lambda: cache.get("user:42", tags=TAGS))}))


def measure_round(port: int, seconds: float, reference_python: str, tmp: str) -> dict:
    import redis
    import redis.asyncio as redis_asyncio

    import rtc
    import rtc.asyncio as rtc_asyncio

    results = {}
    sync = rtc.RedisTaggedCache(host="127.0.0.1", port=port, namespace="bench")
    sync.set("user:42", VALUE, tags=TAGS)
    results["rtc sync get hit, 8 threads"] = threads_loop(8, seconds, lambda: sync.get("user:42", tags=TAGS))

    async def async_side() -> None:
        cache = rtc_asyncio.RedisTaggedCache(host="127.0.0.1", port=port, namespace="bench")
        assert await cache.get("user:42", tags=TAGS) == VALUE
        for n in (1, 64):
            results[f"rtc.asyncio get hit, {n} task(s)"] = await tasks_loop(
                n, seconds, lambda: cache.get("user:42", tags=TAGS)
            )
        client = redis_asyncio.Redis(host="127.0.0.1", port=port, max_connections=64)
        await client.set("bench:plain", b"x" * 250)
        for n in (1, 64):
            results[f"redis.asyncio plain GET, {n} task(s)"] = await tasks_loop(
                n, seconds, lambda: client.get("bench:plain")
            )
        await client.aclose()

    asyncio.run(async_side())
    plain = redis.Redis(host="127.0.0.1", port=port)
    results["redis-py plain GET, 1 thread"] = threads_loop(1, seconds, lambda: plain.get("bench:plain"))
    out = subprocess.run(
        [reference_python, __file__, "--reference-worker", "--port", str(port), "--seconds", str(seconds)],
        check=True, capture_output=True, text=True, cwd=tmp,
    ).stdout
    results.update(json.loads(out))
    return results


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--port", type=int)
    parser.add_argument(
        "--reference-python",
        default=str(Path(os.environ.get("RTC_PY_VENV") or ROOT / "target/py-venv") / "bin/python"),
    )
    parser.add_argument("--reference-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reference_worker:
        return reference_worker(args.port, args.seconds)

    server = None
    port = args.port
    tmp = tempfile.mkdtemp(prefix="rtc-asyncio-bench-")
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
        best: dict = {}
        for _ in range(args.rounds):
            for name, ops in measure_round(port, args.seconds, args.reference_python, tmp).items():
                best[name] = max(best.get(name, 0.0), ops)
        floor = best["redis.asyncio plain GET, 64 task(s)"]
        print(f"best of {args.rounds} rounds of {args.seconds:g} s each, one redis-server on loopback\n")
        print("| workload | ops/s | / redis.asyncio GET, 64 tasks |")
        print("|---|---:|---:|")
        for name, ops in best.items():
            print(f"| {name} | {ops:,.0f} | {ops / floor:.2f}x |")
        print("\nJSON: " + json.dumps(best))
    finally:
        if server is not None:
            server.kill()
            server.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
