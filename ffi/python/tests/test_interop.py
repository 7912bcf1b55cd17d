"""Wire compatibility with the reference on one Redis, in both directions:
entries (pickled by default, as the reference does), deletes, invalidations,
invalidate_all, decorator keys derived from the same code, and the stampede
lock. The reference runs in its own venv (redis-tagged-cache 0.12.1 from PyPI)."""

import threading
import time
from typing import Any, List

import pytest
import redis

import fleet
from rtc import CacheMiss, RedisTaggedCache

VALUES = [
    {"id": 42, "name": "Ada", "tags": ["x", "y"], "score": 1.5, "none": None},
    [1, (2, 3), {"a": b"bytes"}],
    "héllo wörld",
    b"\x00\xffraw",
    12345678901234567890,
]


@pytest.mark.parametrize("value", VALUES, ids=["dict", "list", "str", "bytes", "int"])
def test_entries_cross_both_ways(cache: RedisTaggedCache, reference: Any, value: Any) -> None:
    assert reference.eval(f"cache.set('from-ref', {value!r}, tags=['users', 'user:42'])") is True
    assert cache.get("from-ref", tags=["user:42", "users"]) == value  # tags in any order
    assert cache.set("from-rtc", value, tags=["users", "zone é"]) is True
    assert reference.eval("cache.get('from-rtc', tags=['zone é', 'users'])") == value
    # Without tags, and with another set of tags: another entry.
    assert cache.set("plain", value) is True
    assert reference.eval("cache.get('plain')") == value
    with pytest.raises(CacheMiss):
        cache.get("from-ref", tags=["users"])


def test_overwrite_and_delete_cross_both_ways(cache: RedisTaggedCache, reference: Any) -> None:
    cache.set("k", "one", tags=["t"])
    reference.run("cache.set('k', 'two', tags=['t'])")
    assert cache.get("k", tags=["t"]) == "two"
    assert cache.delete("k", tags=["t"]) is True
    assert reference.eval("cache.delete('k', tags=['t'])") is False
    reference.run("cache.set('k', 'three', tags=['t'])")
    assert reference.eval("cache.delete('k', tags=['t'])") is True
    with pytest.raises(CacheMiss):
        cache.get("k", tags=["t"])


def test_invalidations_cross_both_ways(cache: RedisTaggedCache, reference: Any) -> None:
    reference.run(
        "def _hit(key, tags):\n"
        "    try:\n"
        "        cache.get(key, tags=tags)\n"
        "        return True\n"
        "    except CacheMiss:\n"
        "        return False\n"
    )
    for k in ("a", "b", "c"):
        cache.set(k, k, tags=[f"tag-{k}", "common"])
    # The reference invalidates one tag (a str), then several (a list).
    assert reference.eval("cache.invalidate('tag-a')") is True
    with pytest.raises(CacheMiss):
        cache.get("a", tags=["tag-a", "common"])
    assert cache.get("b", tags=["tag-b", "common"]) == "b"
    assert reference.eval("cache.invalidate(['tag-b', 'unknown'])") is True
    with pytest.raises(CacheMiss):
        cache.get("b", tags=["tag-b", "common"])
    assert cache.get("c", tags=["tag-c", "common"]) == "c"
    # rtc invalidates: the reference's entries go.
    reference.run("cache.set('d', 'd', tags=['tag-d', 'common'])")
    assert reference.eval("_hit('d', ['tag-d', 'common'])") is True
    assert cache.invalidate("common") is True
    assert reference.eval("_hit('d', ['tag-d', 'common'])") is False
    assert reference.eval("_hit('c', ['tag-c', 'common'])") is False
    reference.run("cache.set('e', 'e', tags=['x', 'y'])")
    assert cache.invalidate(iter(["y"])) is True  # any iterable
    assert reference.eval("_hit('e', ['x', 'y'])") is False


def test_invalidate_all_crosses_both_ways_and_spares_other_namespaces(
    cache: RedisTaggedCache, reference: Any, redis_server: Any
) -> None:
    other = RedisTaggedCache(host="127.0.0.1", port=redis_server.port, namespace=cache.namespace + "-other")
    other.set("k", "other", tags=["t"])
    cache.set("k", "mine", tags=["t"])
    reference.run("cache.set('r', 'ref')")
    assert reference.eval("cache.invalidate_all()") is True
    with pytest.raises(CacheMiss):
        cache.get("k", tags=["t"])
    assert other.get("k", tags=["t"]) == "other"
    reference.run("cache.set('r', 'ref')")
    assert cache.get("r") == "ref"
    assert cache.invalidate_all() is True
    with pytest.raises(CacheMiss):
        cache.get("r")
    reference.run(
        "try:\n    cache.get('r')\n    gone = False\nexcept CacheMiss:\n    gone = True\n"
    )
    assert reference.eval("gone") is True
    assert other.get("k", tags=["t"]) == "other"


def test_decorator_keys_match_the_reference(cache: RedisTaggedCache, reference: Any) -> None:
    """A service migrating to this package keeps its hit rate: what the
    reference's decorator cached is a hit here, and the other way round,
    for functions, keyword-only arguments and methods (self not in the key)."""
    mine = fleet.build(cache)
    reference.run("svc = fleet.build(cache)")
    fleet.CALLS.clear()

    assert reference.eval("svc['load_user'](42, detail=True)") == {"id": 42, "detail": True, "name": "user 42"}
    assert mine["load_user"](42, detail=True) == {"id": 42, "detail": True, "name": "user 42"}
    assert mine["price"]("sku-1", currency="USD") == 9.5
    assert reference.eval("(svc['price']('sku-1', currency='USD'), fleet.CALLS)") == (9.5, [("load_user", 42)])
    assert reference.eval("svc['Repository'](1).find('books')") == ["books", "found"]
    assert mine["Repository"](2).find("books") == ["books", "found"]
    assert fleet.CALLS == [("price", "sku-1")]  # rtc computed only what it cached first

    # Computed tags cross too: rtc invalidates user:42, the reference recomputes.
    assert cache.invalidate("user:42") is True
    reference.run("fleet.CALLS.clear()")
    reference.eval("svc['load_user'](42, detail=True)")
    assert reference.eval("fleet.CALLS") == [("load_user", 42)]
    # Other arguments are other keys.
    mine["load_user"](42)
    assert fleet.CALLS[-1] == ("load_user", 42)


def test_hook_reports_the_reference_key(cache: RedisTaggedCache, reference: Any) -> None:
    keys: List[Any] = []
    cache.cache_hook = lambda key, tags, cache_info, userdata=None: keys.append((key, list(tags)))
    reference.run(
        "ref_keys = []\n"
        "cache.cache_hook = lambda key, tags, cache_info, userdata=None: ref_keys.append((key, list(tags)))\n"
        "cache._rebuild_service()\n"
        "svc = fleet.build(cache)\n"
        "svc['Repository'](7).find('x')\n"
        "svc['load_user'](5)\n"
        "svc['Catalog'].count('books')\n"
        "svc['Catalog'].label('books')\n"
    )
    svc = fleet.build(cache)
    svc["Repository"](8).find("x")
    svc["load_user"](5)
    svc["Catalog"].count("books")
    svc["Catalog"].label("books")
    assert keys == reference.eval("ref_keys")
    assert len(keys) == 4 and len({k for k, _ in keys}) == 4
    assert keys[0][1] == ["repo", "repo:x"] and keys[1][1] == ["users", "user:5"]


def blocked_clients(client: redis.Redis) -> int:
    return int(client.info("clients")["blocked_clients"])


def wait_blocked(client: redis.Redis, n: int = 1, deadline: float = 10.0) -> None:
    """Waits until `n` clients block on a lock's wake-up list (BLPOP)."""
    end = time.monotonic() + deadline
    while blocked_clients(client) < n:
        assert time.monotonic() < end, "no client is waiting for the lock"
        time.sleep(0.01)


def test_reference_holds_the_lock_rtc_waits_and_reuses_its_value(
    cache: RedisTaggedCache, reference: Any, redis_client: redis.Redis
) -> None:
    reference.run(
        "release = threading.Event()\n"
        "got = []\n"
        "@cache.decorator(key=lambda: 'locked-key', tags=['lk'], lock=True, lock_timeout=20)\n"
        "def slow():\n"
        "    say('computing')\n"
        "    release.wait()\n"
        "    return 'from the reference'\n"
        "holder = threading.Thread(target=lambda: got.append(slow()))\n"
        "holder.start()\n"
    )
    assert reference.event() == "computing"
    computed: List[str] = []

    @cache.decorator(key=lambda: "locked-key", tags=["lk"], lock=True, lock_timeout=20)
    def slow() -> str:
        computed.append("rtc")
        return "from rtc"

    results: List[str] = []
    waiter = threading.Thread(target=lambda: results.append(slow()))
    waiter.start()
    wait_blocked(redis_client)
    reference.run("release.set(); holder.join()")
    waiter.join(10)
    assert results == ["from the reference"] and computed == []


def test_rtc_holds_the_lock_the_reference_waits_and_reuses_its_value(
    cache: RedisTaggedCache, reference: Any, redis_client: redis.Redis
) -> None:
    computing, release = threading.Event(), threading.Event()

    @cache.decorator(key=lambda: "locked-key", tags=["lk"], lock=True, lock_timeout=20)
    def slow() -> str:
        computing.set()
        release.wait()
        return "from rtc"

    results: List[str] = []
    holder = threading.Thread(target=lambda: results.append(slow()))
    holder.start()
    assert computing.wait(10)
    reference.run(
        "calls = []\n"
        "@cache.decorator(key=lambda: 'locked-key', tags=['lk'], lock=True, lock_timeout=20)\n"
        "def slow():\n"
        "    calls.append(1)\n"
        "    return 'from the reference'\n"
    )
    reference.send("eval", "(slow(), calls)")
    wait_blocked(redis_client)
    release.set()
    holder.join(10)
    assert results == ["from rtc"]
    assert reference.answer() == ("from rtc", [])
