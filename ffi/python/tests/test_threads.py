"""One RedisTaggedCache shared by many threads, and the GIL released during
every call into librtc (a thread waiting on Redis never stops the others)."""

import threading
import time
from typing import Any, List

from rtc import CacheMiss, RedisTaggedCache


def test_many_threads_share_one_cache(cache: RedisTaggedCache) -> None:
    errors: List[BaseException] = []
    counts = [0] * 16

    @cache.decorator(tags=lambda n: [f"n:{n % 4}"])
    def square(n: int) -> int:
        return n * n

    def work(i: int) -> None:
        try:
            for j in range(100):
                key = f"t{i}:{j % 10}"
                assert cache.set(key, (i, j), tags=["all", f"thread:{i}"]) is True
                assert cache.get(key, tags=[f"thread:{i}", "all"]) == (i, j)
                assert square(j % 20) == (j % 20) ** 2
                if j % 25 == 0:
                    assert cache.invalidate(f"n:{i % 4}") is True
                counts[i] += 1
            assert cache.invalidate(f"thread:{i}") is True
            try:
                cache.get(f"t{i}:0", tags=["all", f"thread:{i}"])
                raise AssertionError("an invalidated entry was read")
            except CacheMiss:
                pass
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and counts == [100] * 16


def test_the_gil_is_released_while_librtc_waits(silent_server: Any) -> None:
    """A thread blocked in librtc (a hung Redis) lets this thread run Python."""
    # The call can only end by its timeout (far away) or when the server
    # closes its connection, which this test does once it has run Python.
    hung = RedisTaggedCache(host="127.0.0.1", port=silent_server.port, socket_timeout=60, socket_connect_timeout=60)
    results: List[bool] = []
    blocked = threading.Thread(target=lambda: results.append(hung.set("k", 1)))
    blocked.start()
    end = time.monotonic() + 10
    while not silent_server.conns:  # the call is in librtc once it has connected
        assert time.monotonic() < end
        time.sleep(0.01)
    spins = sum(1 for _ in range(200_000))  # pure Python: needs the GIL
    # Had librtc kept the GIL, this thread could only run after the call returned.
    assert spins == 200_000 and blocked.is_alive() and results == []
    silent_server.close()
    blocked.join()
    assert results == [False]  # the closed connection ended the call: bypassed


def test_a_forked_child_uses_its_own_connections(cache: RedisTaggedCache) -> None:
    """As redis-py resets its pool after a fork (gunicorn, multiprocessing):
    parent and child use one cache object at once and never read each other's replies."""
    import os

    assert cache.set("k", "parent") is True
    pid = os.fork()
    if pid == 0:  # the child: no pytest here, only an exit code
        ok = True
        try:
            for i in range(300):
                ok = ok and cache.set(f"child:{i}", i) is True and cache.get(f"child:{i}") == i
        finally:
            os._exit(0 if ok else 1)
    wrong = sum(1 for _ in range(300) if cache.get("k") != "parent")
    _, status = os.waitpid(pid, 0)
    assert wrong == 0 and os.waitstatus_to_exitcode(status) == 0
    assert cache.get("child:299") == 299
