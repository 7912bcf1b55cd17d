"""The reference's own test suite (redis-tagged-cache 0.12.1, tests/infra/test_lib.py),
scenario for scenario, run against this package: in process memory as the
reference runs it, and on a real Redis. Code written for the reference must
pass unchanged, so these use only what that suite uses: the public API, plus
`rtc.app.hash.get_random_bytes`, `_rebuild_service()` and `_service.get_bytes`."""

import pickle
import time
from threading import Event, Thread
from typing import Any, Iterable, List, Optional

import pytest

from rtc import CacheInfo, CacheMiss, RedisTaggedCache
from rtc.app.hash import get_random_bytes


@pytest.fixture(params=["local-memory", "redis"])
def make(request: Any) -> Any:
    """Builds caches as the reference's suite does, in memory or on the test Redis."""

    def make(**kwargs: Any) -> RedisTaggedCache:
        kwargs.setdefault("namespace", get_random_bytes().hex())
        if request.param == "local-memory":
            kwargs.setdefault("in_local_memory", True)
        else:
            server = request.getfixturevalue("redis_server")
            kwargs.setdefault("host", "127.0.0.1")
            kwargs.setdefault("port", server.port)
        return RedisTaggedCache(**kwargs)

    return make


@pytest.fixture
def inst(make: Any) -> RedisTaggedCache:
    return make()


def test_set_get_delete(inst: RedisTaggedCache) -> None:
    assert inst.set("foo", b"value", tags=["tag1", "tag2"]) is True
    assert inst.get("foo", tags=["tag1", "tag2"]) == b"value"
    assert inst.delete("foo", tags=["tag1", "tag2"]) is True
    with pytest.raises(CacheMiss):
        inst.get("foo", tags=["tag1", "tag2"])
    assert inst.delete("foo", tags=["tag1", "tag2"]) is False


def test_disabled_cache_stores_nothing(make: Any) -> None:
    off = make(disabled=True)
    off.set("foo", b"value", tags=["tag1", "tag2"])
    with pytest.raises(CacheMiss):
        off.get("foo", tags=["tag1", "tag2"])
    off.delete("foo", tags=["tag1", "tag2"])
    off.invalidate("tag2")
    with pytest.raises(CacheMiss):
        off.get("foo", tags=["tag1", "tag2"])


def _recorded(inst: RedisTaggedCache) -> bytes:
    return inst.get("called", tags=[])


@pytest.mark.parametrize("alias", ["decorator", "function_decorator"])
def test_function_decorator_caches_per_arguments(inst: RedisTaggedCache, alias: str) -> None:
    @getattr(inst, alias)(tags=["tag1", "tag2"])
    def decorated(*args: Any, **kwargs: Any) -> List[Any]:
        inst.set("called", b"called", tags=[])
        return [args, kwargs]

    assert decorated(1, "2", foo="bar") == [(1, "2"), {"foo": "bar"}]
    assert _recorded(inst) == b"called"
    inst.delete("called", tags=[])
    assert decorated(1, "2", foo="bar") == [(1, "2"), {"foo": "bar"}]  # cached: not called
    with pytest.raises(CacheMiss):
        _recorded(inst)
    assert decorated(1, 2, foo="bar") == [(1, 2), {"foo": "bar"}]  # other arguments: called
    assert _recorded(inst) == b"called"


@pytest.mark.parametrize("alias", ["decorator", "method_decorator"])
def test_method_decorator_and_invalidation(inst: RedisTaggedCache, alias: str) -> None:
    class A:
        @getattr(inst, alias)(tags=["tag1", "tag2"])
        def decorated(self, *args: Any, **kwargs: Any) -> List[Any]:
            inst.set("called", b"called", tags=[])
            return [args, kwargs]

    a = A()
    assert a.decorated(1, "2", foo="bar") == [(1, "2"), {"foo": "bar"}]
    inst.delete("called", tags=[])
    assert A().decorated(1, "2", foo="bar") == [(1, "2"), {"foo": "bar"}]  # self is not in the key
    with pytest.raises(CacheMiss):
        _recorded(inst)
    inst.invalidate("tag2")
    assert a.decorated(1, "2", foo="bar") == [(1, "2"), {"foo": "bar"}]
    assert _recorded(inst) == b"called"


def test_invalidate_all(inst: RedisTaggedCache) -> None:
    inst.set("key", b"value1", ["tag1", "tag2"])
    inst.set("key", b"value2", ["tag3"])
    inst.set("key", b"value3", [])
    assert inst.get("key", ["tag1", "tag2"]) == b"value1"
    assert inst.get("key", ["tag3"]) == b"value2"
    assert inst.get("key", []) == b"value3"
    assert inst.invalidate_all() is True
    for tags in (["tag1", "tag2"], ["tag3"], []):
        with pytest.raises(CacheMiss):
            inst.get("key", tags)


def _tags_of(self: Any, *args: Any, **kwargs: Any) -> List[str]:
    assert args == (1, "2")
    return ["tag1", "tag2", "tag3"]


def _key_of(self: Any, *args: Any, **kwargs: Any) -> str:
    assert args == (1, "2")
    return "fookey"


def test_computed_tags_and_key(inst: RedisTaggedCache) -> None:
    class A:
        @inst.method_decorator(tags=_tags_of, key=_key_of)
        def decorated(self, *args: Any, **kwargs: Any) -> List[Any]:
            inst.set("called", b"called", tags=[])
            return [args, kwargs]

    a = A()
    assert a.decorated(1, "2", foo="bar") == [(1, "2"), {"foo": "bar"}]
    assert inst.get("fookey", tags=["tag1", "tag2", "tag3"]) == [(1, "2"), {"foo": "bar"}]
    inst.delete("called", tags=[])
    inst.invalidate(["tag3"])
    a.decorated(1, "2", foo="bar")
    assert _recorded(inst) == b"called"


@pytest.mark.parametrize("method", [False, True])
def test_hook_sees_cache_info(inst: RedisTaggedCache, method: bool) -> None:
    seen: List[CacheInfo] = []

    def hook(cache_key: str, cache_tags: Iterable[str], cache_info: CacheInfo, userdata: Any = None) -> None:
        assert userdata == "foo"
        seen.append(cache_info)

    inst.cache_hook = hook

    def decorated(*args: Any, **kwargs: Any) -> List[Any]:
        return [args, kwargs]

    if method:

        class A:
            @inst.decorator(tags=["tag1", "tag2"], hook_userdata="foo")
            def decorated(self, *args: Any, **kwargs: Any) -> List[Any]:
                return [args, kwargs]

        call = A().decorated
    else:
        call = inst.decorator(tags=["tag1", "tag2"], hook_userdata="foo")(decorated)
    call(1, "2", foo="bar")
    call(1, "2", foo="bar")
    assert [i.hit for i in seen] == [False, True]
    for info in seen:
        assert info.elapsed > 0.0
        assert info.filepath == __file__
        assert info.class_name == ("A" if method else "")
        assert info.function_name == "decorated"
        assert info.method_decorator is method
        assert info.function_args == (1, "2") and info.function_kwargs == {"foo": "bar"}
        assert info.serialized_size == len(pickle.dumps([(1, "2"), {"foo": "bar"}]))
    assert seen[0].decorated_elapsed > 0.0 and seen[1].decorated_elapsed == 0.0


def _waiting(inst: RedisTaggedCache, request: Any, callers: int, entered: List[Any]) -> None:
    """Waits until `callers` callers wait for the lock: on Redis, until the
    server reports them blocked on its wake-up list; in memory (where
    nothing tells), until they have entered the call, after which each
    waits or, arriving after the value, hits: both reuse the value."""
    end = time.monotonic() + 10
    if inst.in_local_memory:
        while len(entered) < callers:
            assert time.monotonic() < end, f"only {len(entered)} of {callers} callers started"
            time.sleep(0.001)
        return
    client = request.getfixturevalue("redis_server").client()
    while int(client.info("clients")["blocked_clients"]) < callers:
        assert time.monotonic() < end, "the callers never waited for the lock"
        time.sleep(0.001)


def _reused(inst: RedisTaggedCache, info: CacheInfo) -> bool:
    """A call that did not compute but reused the holder's value: on Redis
    (where `_waiting` saw it wait), after waiting, so not a first-read hit."""
    return info.hit and not info.lock_full_miss and (inst.in_local_memory or not info.lock_full_hit)


def test_lock_one_computation_while_another_thread_waits(inst: RedisTaggedCache, request: Any) -> None:
    # The reference's version sleeps 1 s in the computation, hoping the other
    # thread waits meanwhile, and bounds the whole test's time; here the
    # computation lasts until the other caller waits, and what is promised is
    # checked: one computation, and the waiter reuses its value (a waiter
    # whose lock wait timed out would have computed too).
    calls: List[str] = []
    infos: List[CacheInfo] = []
    inst.cache_hook = lambda key, tags, cache_info, userdata=None: infos.append(cache_info)
    started, release = Event(), Event()
    entered: List[Any] = []

    class A:
        @inst.decorator(tags=["tag1", "tag2"], lock=True, lock_timeout=20)
        def decorated(self, *args: Any, **kwargs: Any) -> List[Any]:
            calls.append("called")
            started.set()
            assert release.wait(20)
            return [args, kwargs]

    results: List[Any] = []
    a = A()

    def waiter() -> None:
        started.wait()
        entered.append(1)
        results.append(a.decorated(1, "2", foo="bar"))

    t = Thread(target=waiter)
    t.start()
    holder = Thread(target=lambda: results.append(a.decorated(1, "2", foo="bar")))
    holder.start()
    assert started.wait(10)
    _waiting(inst, request, 1, entered)
    release.set()
    holder.join()
    t.join()
    assert results == [[(1, "2"), {"foo": "bar"}]] * 2
    assert calls == ["called"]
    assert len(infos) == 2
    assert [(i.hit, i.lock_full_miss) for i in infos].count((False, True)) == 1, infos
    assert sum(1 for i in infos if _reused(inst, i)) == 1, infos


def test_lock_high_concurrency_computes_once(inst: RedisTaggedCache, request: Any) -> None:
    # As above: the computation lasts until the 99 others wait for it (the
    # reference sleeps 1 s and bounds the test's time).
    calls: List[str] = []
    release = Event()
    entered: List[Any] = []

    class A:
        @inst.decorator(tags=["tag1", "tag2"], lock=True, lock_timeout=20)
        def decorated(self, *args: Any, **kwargs: Any) -> List[Any]:
            calls.append("called")
            if args != (0, ""):
                assert release.wait(20)
            return [args, kwargs]

    a = A()
    a.decorated(0, "", foo="bar")  # creates the tags first, as the reference's test does
    calls.clear()
    infos: List[CacheInfo] = []
    inst.cache_hook = lambda key, tags, cache_info, userdata=None: infos.append(cache_info)
    results: List[Any] = []

    def caller() -> None:
        entered.append(1)
        results.append(a.decorated(1, "2", foo="bar"))

    threads = [Thread(target=caller) for _ in range(100)]
    for t in threads:
        t.start()
    end = time.monotonic() + 10
    while not calls:
        assert time.monotonic() < end, "nobody computed"
        time.sleep(0.001)
    _waiting(inst, request, 99, entered)
    release.set()
    for t in threads:
        t.join()
    assert calls == ["called"]
    assert results == [[(1, "2"), {"foo": "bar"}]] * 100
    assert len(infos) == 100
    assert [(i.hit, i.lock_full_miss) for i in infos].count((False, True)) == 1, infos
    assert sum(1 for i in infos if _reused(inst, i)) == 99, infos


def _serializer(value: Any) -> Optional[bytes]:
    return b"xxx" + pickle.dumps(value)


def _unserializer(value_bytes: bytes) -> Any:
    return pickle.loads(value_bytes[3:])


def test_custom_serializer(inst: RedisTaggedCache) -> None:
    inst.serializer = _serializer
    inst.unserializer = _unserializer
    inst._rebuild_service()
    inst.set("foo", "value", tags=["tag1", "tag2"])
    assert inst.get("foo", tags=["tag1", "tag2"]) == "value"
    raw = inst._service.get_bytes("foo", tag_names=["tag1", "tag2"])
    assert raw is not None and raw[:3] == b"xxx"


def test_decorator_with_custom_serializer(inst: RedisTaggedCache) -> None:
    calls: List[str] = []

    @inst.decorator(tags=["tag1", "tag2"], serializer=_serializer, unserializer=_unserializer)
    def decorated(*args: Any, **kwargs: Any) -> List[Any]:
        calls.append("called")
        return [args, kwargs]

    assert decorated(1, 2, foo="bar") == [(1, 2), {"foo": "bar"}]
    assert decorated(1, 2, foo="bar") == [(1, 2), {"foo": "bar"}]
    assert calls == ["called"]
