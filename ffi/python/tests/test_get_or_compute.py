"""The decorator runs core's one get-or-compute (rtc_cache_get_or_compute,
with a cffi callback), so it has core's guarantees: single-flight (with
lock=True the callers of one key in this process compute once, also with
Redis unreachable), fail-safe, the function's exception raised as is once
core has given up the ticket, and one report per call to the hook."""

import logging
import threading
import time
from typing import Any, List

import pytest

from conftest import RedisServer
from rtc import CacheInfo, RedisTaggedCache
from rtc._native import lib
from rtc.app.hash import short_hash

THREADS = 16


def recording(cache: RedisTaggedCache) -> List[CacheInfo]:
    infos: List[CacheInfo] = []
    cache.cache_hook = lambda key, tags, cache_info, userdata=None: infos.append(cache_info)
    return infos


def until(what: str, ready: Any) -> None:
    """Polls `ready` with a deadline: an event librtc cannot tell us about."""
    end = time.monotonic() + 20
    while not ready():
        assert time.monotonic() < end, f"timed out waiting until {what}"
        time.sleep(0.001)


def storm(call: Any) -> List[Any]:
    """THREADS callers of `call` at once; returns what each got (or raised)."""
    start = threading.Barrier(THREADS)
    results: List[Any] = [None] * THREADS

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = call()
        except BaseException as e:  # checked by the test
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


# Single-flight has no outside sign (no Redis to ask): the followers wait in
# librtc. `rtc_cache_single_flight_waiters` (core's Cache::single_flight_waiters)
# says how many; without it no test can know when they all follow.
waiters = getattr(lib, "rtc_cache_single_flight_waiters", None)
needs_waiters = pytest.mark.skipif(
    waiters is None, reason="librtc does not export rtc_cache_single_flight_waiters (ffi/src: not this package's)"
)


@needs_waiters
def test_sixteen_callers_compute_once_with_redis_unreachable(closed_port: int, caplog: Any) -> None:
    cache = RedisTaggedCache(host="127.0.0.1", port=closed_port, socket_timeout=1, socket_connect_timeout=1)
    infos = recording(cache)
    caplog.set_level(logging.WARNING)
    computed: List[int] = []

    @cache.decorator(key=lambda: "cold", tags=["t"], lock=True, lock_timeout=20)
    def cold() -> str:
        computed.append(1)
        # Computes until every other caller follows this computation.
        until("15 callers follow", lambda: waiters(cache._cache) == THREADS - 1)
        return "computed once"

    results = storm(cold)
    assert computed == [1], "one computation for 16 callers, Redis unreachable"
    assert results == ["computed once"] * THREADS
    # Every call reported once, the followers' too, each saying Redis was unreachable.
    assert len(infos) == THREADS
    assert sum(1 for i in infos if not i.hit) == 1
    assert all(not i.lock_full_hit and not i.lock_full_miss for i in infos if i.hit)
    warnings = [r for r in caplog.records if r.name.startswith("rtc") and "BACKEND_UNAVAILABLE" in r.getMessage()]
    assert len(warnings) == THREADS


@needs_waiters
def test_when_the_leader_raises_a_follower_computes_and_the_rest_reuse_its_value(closed_port: int) -> None:
    cache = RedisTaggedCache(host="127.0.0.1", port=closed_port, socket_timeout=1, socket_connect_timeout=1)
    failure = ValueError("the first computation fails")
    computed: List[int] = []

    @cache.decorator(key=lambda: "cold", lock=True, lock_timeout=20)
    def cold() -> str:
        n = len(computed)
        computed.append(1)
        # The first leader fails once all others follow; the next leads with
        # one caller fewer (the failed one has returned).
        until("the others follow", lambda: waiters(cache._cache) == THREADS - 1 - n)
        if n == 0:
            raise failure
        return "computed by a follower"

    results = storm(cold)
    assert [r for r in results if isinstance(r, BaseException)] == [failure], "raised as is, to its own caller"
    assert results.count("computed by a follower") == THREADS - 1
    assert computed == [1, 1]


def test_the_function_s_exception_is_raised_as_is_after_the_lock_is_freed(
    cache: RedisTaggedCache, redis_client: Any
) -> None:
    failure = KeyError("as is")
    holding: List[int] = []
    locks = f"rtc:{short_hash(cache.namespace)}:l:*"  # this test's lock keys

    @cache.decorator(key=lambda: "fragile", lock=True, lock_timeout=30)
    def fragile() -> None:
        holding.append(len(redis_client.keys(locks)))  # the lock, while computing
        raise failure

    with pytest.raises(KeyError) as raised:
        fragile()
    assert raised.value is failure
    assert holding == [1] and redis_client.keys(locks) == []


def test_with_redis_down_the_last_confirmed_value_is_returned(namespace: str, caplog: Any) -> None:
    server = RedisServer()
    try:
        settings = dict(host="127.0.0.1", port=server.port, namespace=namespace, socket_timeout=1, socket_connect_timeout=1)
        safe = RedisTaggedCache(**settings, fail_safe_max_duration=60)
        plain = RedisTaggedCache(**settings)
        infos = recording(safe)
        computed: List[str] = []

        def decorate(cache: RedisTaggedCache) -> Any:
            @cache.decorator(key=lambda: "user:1", tags=["users"], lock=True)
            def load() -> dict:
                computed.append(cache.namespace)
                return {"name": "Ada", "computed": len(computed)}

            return load

        load, load_plain = decorate(safe), decorate(plain)
        assert load() == {"name": "Ada", "computed": 1}
        assert load_plain() == {"name": "Ada", "computed": 1}  # a hit: the same entry
        assert len(computed) == 1
    finally:
        server.stop()
    caplog.set_level(logging.WARNING)
    assert load() == {"name": "Ada", "computed": 1}, "the fail-safe value, not a computation"
    assert len(computed) == 1
    assert infos[-1].hit and len(infos) == 2
    assert "BACKEND_UNAVAILABLE" in caplog.text  # never silent
    assert load_plain() == {"name": "Ada", "computed": 2}, "fail-safe is off by default: computed"


def test_a_raising_function_gets_the_last_confirmed_value_unless_this_process_invalidated_it(
    redis_server: Any, namespace: str, redis_client: Any, caplog: Any
) -> None:
    cache = RedisTaggedCache(host="127.0.0.1", port=redis_server.port, namespace=namespace, fail_safe_max_duration=60)
    infos = recording(cache)
    failure = RuntimeError("the database is down")
    state = {"fail": False}

    @cache.decorator(key=lambda: "user:1", tags=["users"])
    def load() -> str:
        if state["fail"]:
            raise failure
        return "Ada"

    assert load() == "Ada"
    # The entry goes from Redis (evicted, say; this process cannot know) and the function raises.
    assert redis_client.delete(*redis_client.keys(f"rtc:{short_hash(namespace)}:s:*")) == 1
    state["fail"] = True
    caplog.set_level(logging.WARNING)
    assert load() == "Ada", "the fail-safe value instead of the exception"
    assert infos[-1].hit and "the fail-safe value is returned" in caplog.text and "the database is down" in caplog.text
    # This process invalidates the tag: the value is known invalidated, never served.
    cache.invalidate("users")
    with pytest.raises(RuntimeError) as raised:
        load()
    assert raised.value is failure


@pytest.mark.parametrize("setting", [{"fail_safe_max_duration": -1}, {"fail_safe_max_duration": "1m"},
                                     {"fail_safe_max_duration": 1, "fail_safe_max_bytes": 0}])
def test_bad_fail_safe_settings_raise_clear_exceptions(setting: Any) -> None:
    with pytest.raises((TypeError, ValueError), match="rtc: "):
        RedisTaggedCache(**setting)
