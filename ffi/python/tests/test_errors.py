"""Failures behave as in the reference, and no worse: a Redis that is down or
hung never raises anything but CacheMiss from get (set, delete and
invalidations return False, the decorator computes), within the configured
timeouts, each failure logged with its cause; bad arguments raise clear
exceptions; failing serializers, unserializers and hooks bypass the cache with
a warning."""

import logging
import time
from typing import Any, Callable, List

import pytest
from rtc import CacheMiss, RedisTaggedCache


def all_operations(c: RedisTaggedCache) -> List[Any]:
    """Runs every operation once; returns what each returned (CacheMiss for get)."""
    calls: List[int] = []

    @c.decorator(tags=["t"])
    def plain(x: int) -> int:
        calls.append(x)
        return x * 2

    @c.decorator(tags=lambda x: [f"t:{x}"], lock=True, lock_timeout=1)
    def locked(x: int) -> int:
        calls.append(x)
        return x * 3

    out: List[Any] = []
    try:
        c.get("k", tags=["t"])
        out.append("hit?")
    except CacheMiss:
        out.append("miss")
    out += [
        c.set("k", "v", tags=["t"]),
        c.delete("k", tags=["t"]),
        c.invalidate("t"),
        c.invalidate(["t", "u"]),
        c.invalidate_all(),
        plain(1),
        locked(2),
        calls,
    ]
    return out


EXPECTED = ["miss", False, False, False, False, False, 2, 6, [1, 2]]


def test_redis_down(closed_port: int, caplog: Any) -> None:
    # Timeouts far above what refused connections take: a call that waited
    # for one (instead of bypassing at once) shows, whatever the machine's load.
    timeout = 20
    c = RedisTaggedCache(host="127.0.0.1", port=closed_port, socket_timeout=timeout, socket_connect_timeout=timeout)
    caplog.set_level(logging.WARNING)
    before = time.monotonic()
    assert all_operations(c) == EXPECTED
    assert time.monotonic() - before < timeout, "a refused connection was waited for"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name.startswith("rtc")]
    # One warning per failed operation (the two decorated calls: the lookup), each with its cause.
    assert len(warnings) == 8
    for record in warnings:
        assert "BACKEND_UNAVAILABLE" in record.getMessage() and "refused" in record.getMessage()
        assert record.exc_info is not None


def test_redis_hung_answers_nothing_within_the_timeouts(silent_server: Any, caplog: Any) -> None:
    c = RedisTaggedCache(host="127.0.0.1", port=silent_server.port, socket_timeout=0.3, socket_connect_timeout=0.3)
    caplog.set_level(logging.WARNING)
    times: List[float] = []
    connections: List[int] = []
    for op in (lambda: c.set("k", 1), lambda: c.invalidate("t"), lambda: c.delete("k"), lambda: c.get("k")):
        before = time.monotonic()
        try:
            assert op() is False
        except CacheMiss:
            pass  # get's answer
        times.append(time.monotonic() - before)
        connections.append(silent_server.connections())
    # One round trip per call, ended by socket_timeout (the server never
    # answers, and its TIMEOUT is what each warning says): each call waited
    # it out once, on one connection of its own (a timed-out connection is
    # never reused), and never a second time.
    assert connections == [1, 2, 3, 4], connections
    assert min(times) >= 0.3, times
    assert all("TIMEOUT" in r.getMessage() for r in caplog.records if r.name.startswith("rtc")), [
        r.getMessage() for r in caplog.records
    ]
    assert len([r for r in caplog.records if r.name.startswith("rtc")]) == 4


def test_every_operation_on_a_hung_redis_returns_within_its_timeouts(silent_server: Any) -> None:
    c = RedisTaggedCache(host="127.0.0.1", port=silent_server.port, socket_timeout=0.2, socket_connect_timeout=0.2)
    before = time.monotonic()
    assert all_operations(c) == EXPECTED
    # Eight calls reach Redis, each waits one socket timeout, on one connection of its own: never more.
    assert silent_server.connections() == 8
    assert time.monotonic() - before >= 8 * 0.2


def test_redis_coming_back_is_used_again(redis_server: Any, namespace: str) -> None:
    c = RedisTaggedCache(host="127.0.0.1", port=redis_server.port, namespace=namespace, socket_timeout=1)
    assert c.set("k", 1) is True
    client = redis_server.client()
    client.client_kill_filter(_type="normal", skipme=True)  # drops rtc's pooled connections
    assert c.get("k") == 1  # reconnects


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda c: c.set(42, "v"), TypeError),
        (lambda c: c.get(None), TypeError),
        (lambda c: c.set("k", "v", tags=[1, 2]), TypeError),
        (lambda c: c.set("k", "v", tags=5), TypeError),
        (lambda c: c.get("k", tags=[b"\xff"]), ValueError),
        (lambda c: c.set("\ud800", "v"), ValueError),
        (lambda c: c.set("k", "v", lifetime=-5), ValueError),
        (lambda c: c.set("k", "v", lifetime="1h"), TypeError),
        (lambda c: c.set("k", "v", lifetime=10**12), ValueError),
        (lambda c: c.invalidate(3), TypeError),
        (lambda c: c.invalidate([None]), TypeError),
        (lambda c: c.decorator(lock_timeout=-1), ValueError),
        (lambda c: c.decorator(lock_timeout="5"), TypeError),
        (lambda c: c.decorator(lifetime=-1), ValueError),
        (lambda c: c.decorator(key="not callable"), TypeError),
        (lambda c: c.decorator(key=lambda: 42)(lambda: 1)(), TypeError),
    ],
)
def test_bad_arguments_raise_clear_exceptions(cache: RedisTaggedCache, call: Callable, error: type) -> None:
    with pytest.raises(error, match="rtc: "):
        call(cache)


@pytest.mark.parametrize(
    "options",
    [
        {"port": 70000},
        {"port": "6379"},
        {"namespace": "a\0b"},
        {"host": None},
        {"db": -1},
        {"socket_timeout": -1},
        {"default_lifetime": -1},
        {"lifetime_for_tags": "1d"},
        {"serializer": None},
        {"cache_hook": 3},
        {"sentinel_nodes": "redis://127.0.0.1:26379", "sentinel_master_name": "m"},
        {"sentinel_nodes": ["redis://127.0.0.1:26379"]},
        {"sentinel_master_name": "m"},
        {"sentinel_nodes": [3], "sentinel_master_name": "m"},
        {"sentinel_nodes": ["redis://127.0.0.1:26379"], "sentinel_master_name": b"m"},
    ],
)
def test_bad_settings_raise_clear_exceptions(options: Any) -> None:
    with pytest.raises((TypeError, ValueError), match="rtc: "):
        RedisTaggedCache(**options)


def test_bad_setting_changed_after_construction_raises_at_first_use() -> None:
    c = RedisTaggedCache(in_local_memory=True)
    c.namespace = 3  # type: ignore[assignment]
    with pytest.raises(TypeError, match="namespace"):
        c.set("k", 1)


def boom(*_: Any) -> Any:
    raise RuntimeError("boom")


def test_failing_serializer_bypasses_with_a_warning(cache: RedisTaggedCache, caplog: Any) -> None:
    caplog.set_level(logging.WARNING)
    cache.serializer = boom
    assert cache.set("k", 1) is False
    assert "serializing" in caplog.text and "boom" in caplog.text
    caplog.clear()
    cache.serializer = lambda v: None
    assert cache.set("k", 1) is False
    assert "returned None" in caplog.text
    caplog.clear()
    cache.serializer = lambda v: object()
    assert cache.set("k", 1) is False
    assert "serializing" in caplog.text


def test_serializer_output_as_redis_py_encodes_it(cache: RedisTaggedCache) -> None:
    """str, int and float from a serializer are stored as redis-py stores them."""
    cache.unserializer = lambda b: b
    for produced, stored in (("é", "é".encode()), (12, b"12"), (1.5, b"1.5"), (bytearray(b"ab"), b"ab")):
        cache.serializer = lambda v, p=produced: p
        assert cache.set("k", None) is True
        assert cache.get("k") == stored


def test_failing_unserializer_is_a_miss_with_a_warning(cache: RedisTaggedCache, caplog: Any) -> None:
    caplog.set_level(logging.WARNING)
    cache.set("k", 1)
    cache.unserializer = boom
    with pytest.raises(CacheMiss):
        cache.get("k")
    assert "unserializing" in caplog.text and "boom" in caplog.text


def test_decorator_with_failing_serializers(cache: RedisTaggedCache, caplog: Any) -> None:
    caplog.set_level(logging.WARNING)
    calls: List[int] = []

    @cache.decorator(serializer=boom)
    def f(x: int) -> int:
        calls.append(x)
        return x

    assert f(1) == 1 and f(1) == 1 and calls == [1, 1]  # never cached
    assert "serializing" in caplog.text

    @cache.decorator(serializer=lambda v: None)
    def g(x: int) -> int:
        calls.append(x)
        return x

    calls.clear()
    assert g(1) == 1 and g(1) == 1 and calls == [1, 1]

    @cache.decorator(unserializer=boom)
    def h(x: int) -> int:
        calls.append(x)
        return x

    calls.clear()
    caplog.clear()
    assert h(1) == 1 and h(1) == 1 and calls == [1, 1]  # the hit cannot be read: recomputed
    assert "unserializing" in caplog.text


def test_failing_hook_never_fails_the_call(cache: RedisTaggedCache, caplog: Any) -> None:
    caplog.set_level(logging.WARNING)
    cache.cache_hook = boom

    @cache.decorator()
    def f(x: int) -> int:
        return x

    assert f(1) == 1 and f(1) == 1
    assert caplog.text.count("Error while calling hook") == 2


def test_failing_key_or_tags_function_bypasses_with_a_warning(cache: RedisTaggedCache, caplog: Any) -> None:
    caplog.set_level(logging.WARNING)
    calls: List[int] = []

    @cache.decorator(key=boom)
    def f(x: int) -> int:
        calls.append(x)
        return x

    @cache.decorator(tags=boom)
    def g(x: int) -> int:
        calls.append(x)
        return x

    @cache.decorator()
    def h(x: Any) -> Any:
        calls.append(1)
        return 1

    assert f(1) == 1 and f(1) == 1 and g(2) == 2 and g(2) == 2 and h(object()) == 1
    assert calls == [1, 1, 2, 2, 1]
    assert "dynamic key" in caplog.text and "dynamic tag names" in caplog.text and "JSON" in caplog.text
