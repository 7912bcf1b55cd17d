"""Decorated functions that this package and the reference both define from
this one file, as two versions of one service would: the reference derives a
decorator's key from the function's file path, class and name, so the same
file must give the same keys on both sides."""

from typing import Any, Callable, Dict, List, Tuple

CALLS: List[Tuple[str, Any]] = []


def build(cache: Any, lock: bool = False) -> Dict[str, Callable]:
    """Returns the service's decorated functions over `cache` (either package's)."""

    @cache.decorator(tags=lambda user_id, detail=False: ["users", f"user:{user_id}"], lock=lock)
    def load_user(user_id: int, detail: bool = False) -> Dict[str, Any]:
        CALLS.append(("load_user", user_id))
        return {"id": user_id, "detail": detail, "name": f"user {user_id}"}

    @cache.decorator(tags=["catalog"])
    def price(sku: str, *, currency: str = "EUR") -> float:
        CALLS.append(("price", sku))
        return 9.5

    class Repository:
        """`self` is not part of the key: any instance shares the entries."""

        def __init__(self, shard: int) -> None:
            self.shard = shard

        @cache.decorator(tags=lambda self, name: ["repo", f"repo:{name}"])
        def find(self, name: str) -> List[str]:
            CALLS.append(("find", name))
            return [name, "found"]

    class Catalog:
        @classmethod
        @cache.decorator(tags=["catalog"])
        def count(cls, kind: str) -> int:
            CALLS.append(("count", kind))
            return 3

        @staticmethod
        @cache.decorator(tags=["catalog"])
        def label(kind: str) -> str:
            CALLS.append(("label", kind))
            return kind.upper()

    return {"load_user": load_user, "price": price, "Repository": Repository, "Catalog": Catalog}
