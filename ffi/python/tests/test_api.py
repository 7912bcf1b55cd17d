"""The public API is the reference's, name for name: fields, defaults,
argument names and kinds, return values; checked against the installed
reference itself, so a difference fails here."""

import dataclasses
import inspect
import time
from typing import Any, List, Tuple

import pytest
import redis

import rtc
from rtc import CacheHook, CacheInfo, CacheMiss, RedisTaggedCache
from rtc._native import ffi, lib
from rtc.app.hash import short_hash

METHODS = ["set", "get", "delete", "invalidate", "invalidate_all", "decorator", "function_decorator", "method_decorator"]

# The reference's own introspection, evaluated in its process.
PARAMS = "[(p.name, repr(p.default), str(p.kind)) for p in __import__('inspect').signature({}).parameters.values()]"
FIELDS = "[(f.name, repr(f.default) if f.default is not __import__('dataclasses').MISSING else getattr(f.default_factory, '__name__', 'factory')) for f in __import__('dataclasses').fields({}) if f.init]"


def params(obj: Any) -> List[Tuple[str, str, str]]:
    return [(p.name, repr(p.default), str(p.kind)) for p in inspect.signature(obj).parameters.values()]


def fields(cls: Any) -> List[Tuple[str, str]]:
    return [
        (f.name, repr(f.default) if f.default is not dataclasses.MISSING else getattr(f.default_factory, "__name__", "factory"))
        for f in dataclasses.fields(cls)
        if f.init
    ]


def test_public_names(reference: Any) -> None:
    assert sorted(rtc.__all__) == sorted(reference.eval("rtc.__all__"))
    assert issubclass(CacheMiss, Exception) and CacheHook is not None


def test_redis_tagged_cache_fields_and_defaults(reference: Any) -> None:
    ours = fields(RedisTaggedCache)
    theirs = reference.eval(FIELDS.format("RedisTaggedCache"))
    # The reference's fields, in its order (positional construction works
    # unchanged), then rtc's own near-cache, fail-safe and Sentinel options.
    assert ours[: len(theirs)] == theirs
    assert [name for name, _ in ours[len(theirs) :]] == [
        "near_cache_max_entries", "near_cache_max_bytes", "near_cache_max_lifetime",
        "fail_safe_max_duration", "fail_safe_max_bytes", "near_cache_tracking",
        "sentinel_nodes", "sentinel_master_name",
    ]
    ours = ours[: len(theirs)]
    assert [name for name, _ in ours] == [
        "namespace", "host", "port", "db", "ssl", "socket_timeout", "socket_connect_timeout", "default_lifetime",
        "lifetime_for_tags", "disabled", "in_local_memory", "cache_hook", "serializer", "unserializer",
    ]


def test_cache_info_fields_and_defaults(reference: Any) -> None:
    assert fields(CacheInfo) == reference.eval(FIELDS.format("rtc.CacheInfo"))


@pytest.mark.parametrize("method", METHODS)
def test_method_signatures(reference: Any, method: str) -> None:
    ours = params(getattr(RedisTaggedCache, method))
    theirs = reference.eval(PARAMS.format(f"RedisTaggedCache.{method}"))
    if method == "decorator":
        # rtc adds one keyword at the end (path-independent keys); all else is the reference's.
        assert ours[:-1] == theirs and ours[-1] == ("portable_key", "False", "POSITIONAL_OR_KEYWORD")
    else:
        assert ours == theirs


def test_positional_construction_matches(redis_server: Any) -> None:
    """Fields in the reference's order, so positional construction means the same."""
    c = RedisTaggedCache("ns", "127.0.0.1", redis_server.port, 0, False, 2, 3, 60, 120)
    assert (c.namespace, c.host, c.port, c.socket_timeout, c.socket_connect_timeout) == ("ns", "127.0.0.1", redis_server.port, 2, 3)
    assert (c.default_lifetime, c.lifetime_for_tags) == (60, 120)
    assert c.set("k", 1) is True and c.get("k") == 1


def test_return_values(cache: RedisTaggedCache) -> None:
    assert cache.set("k", {"v": 1}) is True
    assert cache.get("k") == {"v": 1}
    assert cache.delete("k") is True
    assert cache.delete("k") is False
    assert cache.invalidate("t") is True
    assert cache.invalidate(["t", "u"]) is True
    assert cache.invalidate([]) is True
    assert cache.invalidate_all() is True
    with pytest.raises(CacheMiss):
        cache.get("k")


def test_lifetimes_reach_redis(cache: RedisTaggedCache, redis_client: Any, redis_server: Any) -> None:
    """default_lifetime, a per-call lifetime, 0 (no expiry) and lifetime_for_tags land as TTLs."""

    def ttls() -> List[int]:
        # The TTLs of the entries. After a FLUSHALL, rtc may also write the
        # entry under the tag values it remembered, where no reader looks.
        keys = redis_client.keys("rtc:*:s:*")
        return sorted(set(redis_client.ttl(k) for k in keys))

    redis_client.flushall()
    cache.set("default", 1)
    assert len(ttls()) == 1 and 3590 < ttls()[0] <= 3600
    redis_client.flushall()
    cache.set("short", 1, lifetime=10)
    assert len(ttls()) == 1 and 0 < ttls()[0] <= 10
    redis_client.flushall()
    cache.set("forever", 1, lifetime=0)
    assert ttls() == [-1]
    redis_client.flushall()
    c = RedisTaggedCache(host="127.0.0.1", port=redis_server.port, default_lifetime=None, lifetime_for_tags=500)
    c.set("none", 1, tags=["t"])
    assert ttls() == [-1]
    tag_ttls = [redis_client.ttl(k) for k in redis_client.keys("rtc:*:t:*")]
    assert tag_ttls and all(490 < t <= 500 for t in tag_ttls)


def test_decorator_lifetime(cache: RedisTaggedCache, redis_client: Any) -> None:
    redis_client.flushall()

    @cache.decorator(lifetime=42)
    def f(x: int) -> int:
        return x

    f(1)
    (key,) = redis_client.keys("rtc:*:s:*")
    assert 0 < redis_client.ttl(key) <= 42


def test_in_local_memory_touches_no_redis() -> None:
    c = RedisTaggedCache(port=1, in_local_memory=True)  # nothing listens on port 1
    assert c.set("k", "v", tags=["t"]) is True
    assert c.get("k", tags=["t"]) == "v"
    assert c.invalidate("t") is True
    with pytest.raises(CacheMiss):
        c.get("k", tags=["t"])


def test_disabled_decorator_always_computes() -> None:
    c = RedisTaggedCache(port=1, disabled=True)
    calls: List[int] = []

    @c.decorator()
    def f(x: int) -> int:
        calls.append(x)
        return x

    assert f(1) == 1 and f(1) == 1 and calls == [1, 1]
    assert c.set("k", 1) is True  # as the reference's black hole: accepted, not stored
    with pytest.raises(CacheMiss):
        c.get("k")


def test_portable_key_ignores_the_file_path(cache: RedisTaggedCache) -> None:
    keys: List[str] = []
    cache.cache_hook = lambda key, tags, cache_info, userdata=None: keys.append(key)

    def f(x: int) -> int:
        return x

    cache.decorator(portable_key=True)(f)(1)
    cache.decorator()(f)(1)
    from rtc.app.hash import short_hash
    import json

    assert keys[0] == short_hash(json.dumps([[__name__, "", "f"], [1], {}], sort_keys=True))
    assert keys[1] == short_hash(json.dumps([[__file__, "", "f"], [1], {}], sort_keys=True))


def test_hook_lock_fields(cache: RedisTaggedCache, redis_client: Any) -> None:
    """With lock=True: the computing call is a full miss, a later hit a full
    hit, and a caller that waited for another's lock neither, with its wait."""
    import threading
    import time

    infos: List[Any] = []
    cache.cache_hook = lambda key, tags, cache_info, userdata=None: infos.append(cache_info)
    computing, release = threading.Event(), threading.Event()

    @cache.decorator(tags=["t"], lock=True, lock_timeout=20)
    def f(x: int) -> int:
        computing.set()
        release.wait()
        return x

    holder = threading.Thread(target=f, args=(1,))
    holder.start()
    assert computing.wait(10)
    waiter = threading.Thread(target=f, args=(1,))
    waiter.start()
    end = time.monotonic() + 10
    while int(redis_client.info("clients")["blocked_clients"]) < 1:
        assert time.monotonic() < end
        time.sleep(0.01)
    time.sleep(0.05)  # let the wait be measurable (whole milliseconds)
    release.set()
    holder.join()
    waiter.join()
    f(1)
    # The holder and the waiter report from their own threads, and nothing
    # orders the two reports (set-and-unlock wakes the waiter before the
    # holder's hook runs): tell them apart by what they report, not by
    # their order. The third call ran after both threads ended: it is last.
    assert len(infos) == 3
    *concurrent, hit = infos
    computed = [i for i in concurrent if not i.hit]
    waited = [i for i in concurrent if i.hit]
    assert len(computed) == 1 and len(waited) == 1, concurrent
    (computed,), (waited,) = computed, waited
    assert (computed.hit, computed.lock_full_miss, computed.lock_full_hit) == (False, True, False)
    assert (waited.hit, waited.lock_full_miss, waited.lock_full_hit) == (True, False, False)
    assert waited.lock_waiting_ms >= 50 and waited.decorated_elapsed == 0.0
    assert (hit.hit, hit.lock_full_hit, hit.lock_full_miss, hit.lock_waiting_ms) == (True, True, False, 0)


def test_db_selects_the_redis_database(redis_server: Any, namespace: str) -> None:
    c = RedisTaggedCache(host="127.0.0.1", port=redis_server.port, namespace=namespace, db=3)
    assert c.set("k", 1) is True
    db3 = redis.Redis(host="127.0.0.1", port=redis_server.port, db=3)
    db0 = redis_server.client()
    prefix = f"rtc:{short_hash(namespace)}:s:*"
    assert len(db3.keys(prefix)) == 1 and db0.keys(prefix) == []


def test_ssl_is_used(redis_server: Any, caplog: Any) -> None:
    """ssl=True speaks TLS: a plain-text Redis cannot be used (a warning, False)."""
    c = RedisTaggedCache(host="127.0.0.1", port=redis_server.port, ssl=True, socket_timeout=1, socket_connect_timeout=1)
    assert c.set("k", 1) is False
    assert "cache bypassed" in caplog.text


def near_cache_live(redis_server: Any, namespace: str, **options: Any) -> RedisTaggedCache:
    """A cache with a near cache, once its tracking connection is up."""
    near = RedisTaggedCache(
        host="127.0.0.1", port=redis_server.port, namespace=namespace, near_cache_max_entries=1000, **options
    )
    stats = ffi.new("rtc_near_stats *")
    deadline = time.monotonic() + 10
    while not (lib.rtc_cache_near_stats(near._cache, stats, ffi.sizeof("rtc_near_stats")) == 0 and stats.live):
        assert time.monotonic() < deadline, "the tracking connection never came up"
    return near


class CountingLib:
    """librtc with its leased reads counted (the memo's hits make none)."""

    def __init__(self) -> None:
        self.reads = 0

    def rtc_cache_get_leased_into(self, *args: Any) -> Any:
        self.reads += 1
        return lib.rtc_cache_get_leased_into(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(lib, name)


def reads_until_memoized(near: RedisTaggedCache, counting: CountingLib, key: str, tags: List[str], value: Any) -> None:
    """Gets `key` until a get makes no call into librtc (its near-cache
    hit is in the memo), each returning `value`."""
    deadline = time.monotonic() + 10
    while True:
        before = counting.reads
        assert near.get(key, tags=tags) == value
        if counting.reads == before:
            return
        assert time.monotonic() < deadline, "a near-cache hit was never kept in the memo"


def test_the_memo_serves_repeated_near_hits_with_no_call_until_a_change(
    redis_server: Any, namespace: str, reference: Any, monkeypatch: Any
) -> None:
    """A near-cache hit is kept in Python (its lease from librtc): the same
    get again makes no call into librtc, returns a fresh object each time,
    and stops being served by every change the near cache hears of: an own
    write, and another process's invalidation (the reference's)."""
    near = near_cache_live(redis_server, namespace)
    counting = CountingLib()
    monkeypatch.setattr(rtc._cache, "lib", counting)
    assert near.set("k", ["v"], tags=["t"]) is True
    reads_until_memoized(near, counting, "k", ["t"], ["v"])
    before = counting.reads
    first, second = near.get("k", tags=["t"]), near.get("k", tags=("t",))
    assert first == second == ["v"] and first is not second, "unserialized afresh, tags as a list or a tuple"
    assert counting.reads == before, "served from the memo"
    with pytest.raises(CacheMiss):
        near.get("k", tags=["t", "t2"])  # other tags: another entry
    assert counting.reads == before + 1

    assert near.set("elsewhere", 1, tags=["u"]) is True  # an own write moves the stamp
    before = counting.reads
    assert near.get("k", tags=["t"]) == ["v"]
    assert counting.reads == before + 1, "the memo was not trusted after an own write"

    reads_until_memoized(near, counting, "k", ["t"], ["v"])
    assert reference.eval("cache.invalidate('t')") is True
    changed = time.monotonic()
    while True:
        try:
            near.get("k", tags=["t"])
        except CacheMiss:
            break
        assert time.monotonic() - changed < 2.5, "a value the reference invalidated was served beyond the bound"

    # Keys and tags that cannot be kept by value (a bytearray) are read as ever.
    assert near.set("b", 2, tags=[bytearray(b"t")]) is True  # type: ignore[list-item]
    before = counting.reads
    for _ in range(3):
        assert near.get("b", tags=[bytearray(b"t")]) == 2  # type: ignore[list-item]
    assert counting.reads == before + 3


def test_a_forked_child_never_serves_its_parent_s_memo(redis_server: Any, namespace: str) -> None:
    """The parent's memo is copied into a forked child, whose copy of the
    parent's near cache no push ever reaches again: the child's first call
    builds its own cache and memo, so its own invalidation is seen."""
    import os

    near = near_cache_live(redis_server, namespace)
    counting = CountingLib()
    rtc._cache.lib = counting  # type: ignore[attr-defined]
    try:
        assert near.set("k", "parent", tags=["t"]) is True
        reads_until_memoized(near, counting, "k", ["t"], "parent")
    finally:
        rtc._cache.lib = lib  # type: ignore[attr-defined]
    pid = os.fork()
    if pid == 0:  # the child: no pytest here, only an exit code
        ok = False
        try:
            ok = near.invalidate("t") is True
            try:
                near.get("k", tags=["t"])
                ok = False
            except CacheMiss:
                pass
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child served its parent's memo after its own invalidation"


@pytest.mark.parametrize("mode", ["per-reader", "broadcast"])
def test_near_cache_serves_locally_and_sees_the_reference_invalidate(
    redis_server: Any, namespace: str, reference: Any, mode: str
) -> None:
    """rtc's near cache, opt-in: hits stay in the process, and an invalidation
    by another process (the reference itself) reaches it within the bound, in
    both tracking modes."""
    near = near_cache_live(redis_server, namespace, near_cache_tracking=mode)
    native = near._cache
    stats = ffi.new("rtc_near_stats *")
    assert lib.rtc_cache_near_stats(native, stats, ffi.sizeof("rtc_near_stats")) == 0
    deadline = time.monotonic() + 10
    codes = {"per-reader": lib.RTC_NEAR_TRACKING_PER_READER, "broadcast": lib.RTC_NEAR_TRACKING_BROADCAST}
    assert stats.tracking == codes[mode]
    near.set("k", "v", tags=["t"])
    while stats.hits == 0:
        assert near.get("k", tags=["t"]) == "v"
        lib.rtc_cache_near_stats(native, stats, ffi.sizeof("rtc_near_stats"))
        assert time.monotonic() < deadline, "never served from the near cache"
    assert reference.eval("cache.invalidate('t')") is True
    changed = time.monotonic()
    while True:
        try:
            near.get("k", tags=["t"])
        except CacheMiss:
            break
        assert time.monotonic() - changed < 2.5, "a value the reference invalidated was served beyond the bound"
    # The stats are read again: the invalidation came as a push.
    while lib.rtc_cache_near_stats(native, stats, ffi.sizeof("rtc_near_stats")) == 0 and stats.pushes == 0:
        assert time.monotonic() - changed < 2.5, "no push was ever received"
    assert stats.pushes >= 1
    with pytest.raises(ValueError):
        RedisTaggedCache(host="127.0.0.1", port=redis_server.port, near_cache_max_entries=10, near_cache_max_bytes=0).set("k", 1)
    for bad in ("bcast", "", None, 1):
        with pytest.raises(ValueError, match="near_cache_tracking"):
            RedisTaggedCache(host="127.0.0.1", port=redis_server.port, near_cache_tracking=bad)
