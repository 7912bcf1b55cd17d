"""A small typed user program of rtc: test.sh checks it with `mypy --strict`
(the package ships py.typed and type hints for its public API) and runs it."""
import asyncio
from typing import Any, Dict, Iterable

import rtc
import rtc.asyncio
from rtc import CacheInfo, CacheMiss, RedisTaggedCache

cache = RedisTaggedCache(in_local_memory=True, namespace="typed")


def hook(cache_key: str, cache_tags: Iterable[str], cache_info: CacheInfo, userdata: Any = None) -> None:
    print("hook:", cache_key, list(cache_tags), cache_info.hit, userdata)


cache.cache_hook = hook


@cache.decorator(tags=["users"], lifetime=60, lock=True)
def load_user(user_id: int) -> Dict[str, int]:
    return {"id": user_id}


class Shop:
    @cache.decorator(tags=lambda self, n: [f"shop:{n}"])
    def report(self, n: int) -> str:
        return f"report {n}"


def main() -> None:
    ok: bool = cache.set("k", "v", tags=["t"], lifetime=10)
    value: object = cache.get("k", tags=["t"])
    assert value == "v"
    try:
        cache.get("absent")
    except CacheMiss:
        pass
    deleted: bool = cache.delete("k", tags=["t"])
    cache.invalidate("t")
    cache.invalidate(["a", "b"])
    cache.invalidate_all()
    user: Dict[str, int] = load_user(1)
    text: str = Shop().report(3)
    assert ok and deleted and user["id"] == 1 and text == "report 3"
    print("typed user program: ok")


async def amain() -> None:
    acache = rtc.asyncio.RedisTaggedCache(in_local_memory=True)

    @acache.decorator(tags=["a"])
    async def compute(n: int) -> int:
        return n * 2

    stored: bool = await acache.set("k", 1)
    doubled: int = await compute(2)
    assert stored and doubled == 4 and await acache.get("k") == 1


main()
asyncio.run(amain())
