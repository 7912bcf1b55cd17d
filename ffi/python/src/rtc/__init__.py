"""rtc: the API of redis-tagged-cache 0.12.1, served by librtc.

A drop-in for the Python library ``redis-tagged-cache`` (import name ``rtc``):
the same ``RedisTaggedCache``, ``CacheMiss``, ``CacheInfo`` and ``CacheHook``,
the same keys in Redis, so both share one cache; the work is done by rtc's C
library (librtc), called through cffi with the GIL released.
"""

from rtc._cache import RedisTaggedCache
from rtc._types import CacheHook, CacheInfo, CacheMiss

__all__ = ["CacheHook", "CacheInfo", "CacheMiss", "RedisTaggedCache"]

__version__ = "0.1.0"
"""This package's version: rtc's (the Cargo workspace's, librtc's), which
tests/tests/one_version.rs keeps equal everywhere it is written."""
