"""The reference's public types, field for field: CacheMiss, CacheInfo, CacheHook."""

from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Protocol, Tuple


class CacheMiss(Exception):
    """Exception raised when a cache miss occurs."""


@dataclass
class CacheInfo:
    """Class containing location infos about the cache call.

    This is only used in cache hit/miss hooks.

    """

    filepath: str = ""
    """File path of the decorated function."""

    class_name: str = ""
    """Class name (empty for functions) of the decorated function."""

    function_name: str = ""
    """Function name of the decorated function/method."""

    function_args: Tuple[Any, ...] = field(default_factory=tuple)
    """Decorated function/method arguments (*args; without self for methods)."""

    function_kwargs: Dict[str, Any] = field(default_factory=dict)
    """Decorated function/method keyword arguments (**kwargs)."""

    method_decorator: bool = False
    """If True, we decorated a method (and not a simple function)."""

    hit: bool = False
    """Cache hit (the value was found in the cache)."""

    elapsed: float = 0.0
    """Total elapsed time (in seconds), the decorated call included on a miss, hooks excluded."""

    decorated_elapsed: float = 0.0
    """Elapsed time of the decorated function call (in seconds), only in case of cache miss."""

    lock_waiting_ms: int = 0
    """Lock waiting time (in ms), only when used with cache decorators and lock=True."""

    lock_full_hit: bool = False
    """The value was cached before any lock was involved (decorators with lock=True)."""

    lock_full_miss: bool = False
    """No value even after locking, so this call computed it (decorators with lock=True)."""

    serialized_size: int = 0
    """Serialized size of the value (in bytes)."""

    # With lock=True, neither lock_full_hit nor lock_full_miss means: the value
    # was missing, this call waited for the lock, and another caller cached it.

    def _dump(self) -> List[str]:
        # What the decorator's derived key is made of, as in the reference.
        return [self.filepath, self.class_name, self.function_name]


class CacheHook(Protocol):
    """Signature of cache hooks: called after each decorated call."""

    def __call__(
        self,
        cache_key: str,
        cache_tags: Iterable[str],
        cache_info: CacheInfo,
        userdata: Any = None,
    ) -> None:
        """Signature of cache hooks."""
