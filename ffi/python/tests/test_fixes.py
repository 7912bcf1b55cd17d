"""The reference's bugs that rtc fixes, seen from Python: each test shows the
reference's behaviour next to this package's, on one Redis."""

from typing import Any, List

import pytest
import redis

from rtc import CacheMiss, RedisTaggedCache
from rtc.app.hash import short_hash


def test_an_invalidated_tag_keeps_its_lifetime(cache: RedisTaggedCache, reference: Any, redis_client: redis.Redis) -> None:
    """Reference bug 1: its invalidation drops the tag's expiry for good."""

    def tag_key(tag: str) -> str:
        return f"rtc:{short_hash(cache.namespace)}:t:{short_hash(tag)}"

    reference.run("cache.invalidate('theirs')")
    assert cache.invalidate("mine") is True
    assert redis_client.ttl(tag_key("theirs")) == -1
    assert 86000 < redis_client.ttl(tag_key("mine")) <= 86400
    # rtc's next invalidation gives the reference's tag its lifetime back.
    assert cache.invalidate("theirs") is True
    assert 86000 < redis_client.ttl(tag_key("theirs")) <= 86400


def test_lifetime_for_tags_none_works(redis_server: Any, namespace: str, reference_factory: Any) -> None:
    """Reference bug 2: with lifetime_for_tags=None it can neither create nor invalidate a tag."""
    mine = RedisTaggedCache(host="127.0.0.1", port=redis_server.port, namespace=namespace, lifetime_for_tags=None)
    assert mine.set("k", 1, tags=["fresh"]) is True
    assert mine.get("k", tags=["fresh"]) == 1
    assert mine.invalidate("fresh") is True
    with pytest.raises(CacheMiss):
        mine.get("k", tags=["fresh"])
    ref = reference_factory(lifetime_for_tags=None)
    assert ref.eval("cache.set('k2', 1, tags=['other-fresh'])") is False


def test_a_raising_function_releases_the_lock_at_once(
    cache: RedisTaggedCache, redis_client: redis.Redis, reference: Any
) -> None:
    """The exception propagates, nothing is cached, the lock is gone at once.
    The reference keeps its lock until it expires (shown here too)."""
    attempts: List[int] = []

    @cache.decorator(key=lambda: "fragile", lock=True, lock_timeout=30)
    def fragile() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("database down")
        return "ok"

    with pytest.raises(ValueError, match="database down"):
        fragile()
    locks = f"rtc:{short_hash(cache.namespace)}:l:*"  # this test's lock keys
    assert redis_client.keys(locks) == []
    with pytest.raises(CacheMiss):
        cache.get("fragile")
    assert fragile() == "ok" and attempts == [1, 1]  # computed at once: no lock to wait for

    reference.run(
        "@cache.decorator(key=lambda: 'fragile-ref', lock=True, lock_timeout=30)\n"
        "def fragile():\n"
        "    raise ValueError('database down')\n"
        "try:\n"
        "    fragile()\n"
        "except ValueError:\n"
        "    pass\n"
    )
    assert len(redis_client.keys(locks)) == 1  # the reference's lock outlives the call


def test_an_invalidation_during_the_computation_is_not_hidden(cache: RedisTaggedCache, reference: Any) -> None:
    """Reference bug 5: it stores a value computed before an invalidation as current."""
    version = [1]

    @cache.decorator(tags=["prices"])
    def price() -> int:
        seen = version[0]
        version[0] += 1
        cache.invalidate("prices")  # the data changes while we compute
        return seen

    assert price() == 1
    assert price() == 2  # recomputed: the first value was stale when stored

    reference.run(
        "version = [1]\n"
        "@cache.decorator(tags=['ref-prices'])\n"
        "def price():\n"
        "    seen = version[0]\n"
        "    version[0] += 1\n"
        "    cache.invalidate('ref-prices')\n"
        "    return seen\n"
    )
    assert reference.eval("(price(), price())") == (1, 1)  # the reference serves the stale value


class Interrupt(BaseException):
    """Like KeyboardInterrupt: not an Exception, so no bypass catches it."""


def test_an_interrupt_while_storing_releases_the_lock_too(cache: RedisTaggedCache, redis_client: redis.Redis) -> None:
    def interrupted(_: Any) -> bytes:
        raise Interrupt()

    @cache.decorator(key=lambda: "interrupted", lock=True, lock_timeout=30, serializer=interrupted)
    def f() -> int:
        return 1

    with pytest.raises(Interrupt):
        f()
    assert redis_client.keys(f"rtc:{short_hash(cache.namespace)}:l:*") == []
