"""rtc.asyncio: the coroutine API over librtc's non-blocking API, against a real Redis."""

import asyncio
import dataclasses
import logging
import threading
from typing import Any, List

import pytest

import rtc
import rtc.asyncio as rtc_asyncio
from rtc import CacheMiss
from rtc._native import lib
from rtc.app.hash import short_hash

from conftest import free_port


def make(redis_server: Any, namespace: str, **options: Any) -> rtc_asyncio.RedisTaggedCache:
    return rtc_asyncio.RedisTaggedCache(host="127.0.0.1", port=redis_server.port, namespace=namespace, **options)


def test_the_fields_are_the_sync_class_fields() -> None:
    names = [f.name for f in dataclasses.fields(rtc.RedisTaggedCache) if f.init]
    assert [f.name for f in dataclasses.fields(rtc_asyncio.RedisTaggedCache) if f.init] == names
    assert not isinstance(rtc_asyncio.RedisTaggedCache(in_local_memory=True), rtc.RedisTaggedCache)
    with pytest.raises(ValueError, match="near_cache_tracking"):
        rtc_asyncio.RedisTaggedCache(near_cache_tracking="nope")


def test_operations_are_coroutines_with_the_sync_results(redis_server: Any, namespace: str) -> None:
    cache = make(redis_server, namespace)
    sync = rtc.RedisTaggedCache(host="127.0.0.1", port=redis_server.port, namespace=namespace)

    async def main() -> None:
        assert await cache.set("k", {"v": 1}, tags=["a", "b"]) is True
        assert await cache.get("k", tags=["a", "b"]) == {"v": 1}
        assert sync.get("k", tags=["a", "b"]) == {"v": 1}  # one layout: the sync class reads it
        with pytest.raises(CacheMiss):
            await cache.get("k", tags=["a"])
        assert await cache.invalidate("b") is True
        with pytest.raises(CacheMiss):
            await cache.get("k", tags=["a", "b"])
        sync.set("s", "from sync", tags=["a"])
        assert await cache.get("s", tags=["a"]) == "from sync"
        assert await cache.delete("s", tags=["a"]) is True
        assert await cache.delete("s", tags=["a"]) is False
        await cache.set("x", 1)
        assert await cache.invalidate_all() is True
        with pytest.raises(CacheMiss):
            await cache.get("x")

    asyncio.run(main())


def test_many_tasks_share_one_context_and_never_block_the_loop(redis_server: Any, namespace: str) -> None:
    cache = make(redis_server, namespace)

    async def main() -> None:
        await asyncio.gather(*(cache.set(f"k{i}", i, tags=["t"]) for i in range(64)))
        ticks = 0
        done = False

        async def ticker() -> None:
            nonlocal ticks
            while not done:
                ticks += 1
                await asyncio.sleep(0)

        tick = asyncio.ensure_future(ticker())
        values = await asyncio.gather(*(cache.get(f"k{i}", tags=["t"]) for i in range(64)))
        done = True
        await tick
        assert values == list(range(64))
        assert ticks > 0  # the loop ran other tasks while the gets were in flight
        assert threading.active_count() >= 1

    asyncio.run(main())


def test_the_decorator_wraps_async_functions_and_shares_keys_with_the_sync_one(redis_server: Any, namespace: str) -> None:
    cache = make(redis_server, namespace)
    sync = rtc.RedisTaggedCache(host="127.0.0.1", port=redis_server.port, namespace=namespace)
    calls: List[int] = []

    def price_sync(x: int) -> int:
        calls.append(x)
        return x * 10

    async def price_async(x: int) -> int:
        calls.append(-x)
        return x * 10

    # The same name in the same file: the keys the reference derives are equal.
    price_sync.__name__ = price_async.__name__ = "price"
    sync_price = sync.decorator(tags=["prices"])(price_sync)
    async_price = cache.decorator(tags=["prices"])(price_async)

    async def main() -> None:
        assert sync_price(3) == 30
        assert await async_price(3) == 30  # the sync call's entry
        assert await async_price(4) == 40
        assert await async_price(4) == 40
        assert sync_price(4) == 40  # the async call's entry
        assert calls == [3, -4]
        await cache.invalidate("prices")
        assert await async_price(4) == 40
        assert calls == [3, -4, -4]

    asyncio.run(main())


def test_methods_hooks_and_the_lock_compute_once(redis_server: Any, namespace: str) -> None:
    seen: List[Any] = []
    cache = make(redis_server, namespace, cache_hook=lambda key, tags, cache_info, userdata: seen.append((cache_info, userdata)))
    computed: List[int] = []

    class Shop:
        @cache.decorator(tags=lambda self, n: [f"shop:{n}"], lock=True, hook_userdata="ud")
        async def report(self, n: int) -> str:
            computed.append(n)
            await asyncio.sleep(0.05)  # the others wait on librtc's threads meanwhile
            return f"report {n}"

    async def main() -> None:
        shop = Shop()
        results = await asyncio.gather(*(shop.report(7) for _ in range(20)))
        assert results == ["report 7"] * 20
        assert computed == [7]
        assert len(seen) == 20
        assert all(ud == "ud" for _, ud in seen)
        assert sum(1 for info, _ in seen if info.hit) == 19
        assert all(info.method_decorator and info.class_name == "Shop" for info, _ in seen)

    asyncio.run(main())


def test_an_exception_propagates_and_releases_the_lock(redis_server: Any, namespace: str) -> None:
    cache = make(redis_server, namespace)
    attempts: List[int] = []

    @cache.decorator(key=lambda: "flaky", lock=True, lock_timeout=30)
    async def flaky() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("first time")
        return "ok"

    async def main() -> None:
        with pytest.raises(RuntimeError, match="first time"):
            await flaky()
        # The lock went back at once: the next call computes without waiting 30 s.
        assert await asyncio.wait_for(flaky(), timeout=10) == "ok"
        assert await flaky() == "ok"
        assert len(attempts) == 2

    asyncio.run(main())


def test_a_raising_function_gets_the_fail_safe_value_as_in_the_sync_class(
    redis_server: Any, namespace: str, redis_client: Any, caplog: Any
) -> None:
    infos: List[Any] = []
    cache = make(redis_server, namespace, fail_safe_max_duration=60,
                 cache_hook=lambda key, tags, cache_info, userdata: infos.append(cache_info))
    failure = RuntimeError("the database is down")
    state = {"fail": False}
    locks = f"rtc:{short_hash(namespace)}:l:*"

    @cache.decorator(key=lambda: "user:1", tags=["users"], lock=True, lock_timeout=30)
    async def load() -> str:
        if state["fail"]:
            raise failure
        return "Ada"

    async def main() -> None:
        assert await load() == "Ada"
        # The entry goes from Redis (evicted, say; this process cannot know) and the function raises.
        assert redis_client.delete(*redis_client.keys(f"rtc:{short_hash(namespace)}:s:*")) == 1
        state["fail"] = True
        caplog.set_level(logging.WARNING)
        assert await load() == "Ada", "the fail-safe value instead of the exception"
        assert infos[-1].hit and "the fail-safe value is returned" in caplog.text and "the database is down" in caplog.text
        assert redis_client.keys(locks) == []  # the lock went back at once
        # This process invalidates the tag: the value is known invalidated, never served.
        assert await cache.invalidate("users") is True
        with pytest.raises(RuntimeError) as raised:
            await load()
        assert raised.value is failure
        assert redis_client.keys(locks) == []

    asyncio.run(main())


def test_cancelling_a_task_cancels_its_operation(redis_server: Any, namespace: str) -> None:
    cache = make(redis_server, namespace)

    async def main() -> None:
        gate = asyncio.Event()

        @cache.decorator(key=lambda: "slow", lock=True, lock_timeout=30)
        async def slow() -> str:
            await gate.wait()
            return "done"

        leader = asyncio.ensure_future(slow())
        await asyncio.sleep(0.2)  # the leader holds the lock (nothing is asserted on this timing)
        follower = asyncio.ensure_future(slow())
        await asyncio.sleep(0.05)
        follower.cancel()
        with pytest.raises(asyncio.CancelledError):
            await follower
        gate.set()
        assert await leader == "done"
        driver = cache._driver()
        assert lib.rtc_async_in_flight(driver.ctx) == 0
        assert await slow() == "done"  # a hit

    asyncio.run(main())


def test_redis_down_gives_the_sync_outcomes_within_the_timeouts() -> None:
    cache = rtc_asyncio.RedisTaggedCache(host="127.0.0.1", port=free_port(), socket_timeout=1, socket_connect_timeout=1)
    computed: List[int] = []

    @cache.decorator(tags=["t"])
    async def f(x: int) -> int:
        computed.append(x)
        return x + 1

    async def main() -> None:
        assert await asyncio.wait_for(cache.set("k", 1), timeout=10) is False
        with pytest.raises(CacheMiss):
            await asyncio.wait_for(cache.get("k"), timeout=10)
        assert await asyncio.wait_for(cache.delete("k"), timeout=10) is False
        assert await asyncio.wait_for(cache.invalidate("t"), timeout=10) is False
        assert await asyncio.wait_for(cache.invalidate_all(), timeout=10) is False
        assert await asyncio.wait_for(f(1), timeout=10) == 2  # bypassed: computed
        assert computed == [1]

    asyncio.run(main())


def test_the_near_cache_works_as_in_the_sync_class(redis_server: Any, namespace: str) -> None:
    cache = make(redis_server, namespace, near_cache_max_entries=100)
    writer = rtc.RedisTaggedCache(host="127.0.0.1", port=redis_server.port, namespace=namespace)

    async def main() -> None:
        await cache.set("k", "v1", tags=["t"])
        for _ in range(50):
            assert await cache.get("k", tags=["t"]) == "v1"
        writer.invalidate("t")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2.5
        while True:
            try:
                await cache.get("k", tags=["t"])
            except CacheMiss:
                break
            assert loop.time() < deadline, "an invalidated value was served beyond the bound"
            await asyncio.sleep(0.001)

    asyncio.run(main())
