"""RedisTaggedCache: the reference's controller, over one librtc cache."""

import logging
import os
import pickle
from dataclasses import dataclass, field
from threading import Lock
from typing import Any, Callable, Iterable, Optional, Sequence, Union

from rtc import _native as n
from rtc._decorator import cache_decorator
from rtc._native import ffi, lib
from rtc._types import CacheHook, CacheMiss

# The reference's logger names, so logging configured for it keeps working.
LOGGER = logging.getLogger("rtc.app.service")

DEFAULT_SERIALIZER: Callable[[Any], Optional[bytes]] = pickle.dumps
DEFAULT_UNSERIALIZER: Callable[[bytes], Any] = pickle.loads


# A forked child must not use its parent's Redis connections (replies would
# cross between the two processes): after a fork, each cache builds a new
# librtc cache on its next call, as redis-py resets its pool. The parent's
# handles are kept, never freed, in the child: freeing could wait on a lock a
# parent thread held at the fork, and their sockets belong to the parent.
_fork_generation = 0

# near_cache_tracking's names, as on every surface, and librtc's codes.
_NEAR_TRACKING = {"per-reader": lib.RTC_NEAR_TRACKING_PER_READER, "broadcast": lib.RTC_NEAR_TRACKING_BROADCAST}
_inherited: list = []


def _fork_generation_now() -> int:
    """How many forks this process descends from (0 in the first process)."""
    return _fork_generation


def _after_fork_in_child() -> None:
    global _fork_generation
    _fork_generation += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _seconds_to_ms(what: str, value: Any) -> int:
    """Converts a timeout in seconds (None: none) to librtc's milliseconds (0: none)."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"rtc: {what} must be a number of seconds or None, not {type(value).__name__} ({value!r})")
    if value < 0:
        raise ValueError(f"rtc: {what} must not be negative ({value})")
    return max(1, round(value * 1000)) if value else 0


def _set_bytes(serializer: Callable[[Any], Any], value: Any) -> Optional[bytes]:
    """What `set` stores for `value`: the serializer's output as bytes, or
    None (with the reference's warning logged) when it cannot be stored."""
    try:
        data = serializer(value)
    except Exception:
        LOGGER.warning("error when serializing provided data => cache bypassed", exc_info=True)
        return None
    if data is None:
        LOGGER.warning("serializer returned None => cache bypassed")
        return None
    try:
        return n.value_bytes(data)
    except TypeError:
        LOGGER.warning("error when serializing provided data => cache bypassed", exc_info=True)
        return None


def _check(what: str, code: int) -> None:
    """Raises ValueError for a configuration librtc refused."""
    if code != n.OK:
        raise ValueError(f"rtc: {what}: {n.last_error(code)}")


@dataclass
class _Settings:
    """The fields of ``RedisTaggedCache`` (the reference's, then rtc's own),
    their checks, and the librtc builder made from them: shared by the sync
    class and ``rtc.asyncio.RedisTaggedCache``."""

    namespace: str = "default"
    """Namespace prefix for all cache entries to avoid key collisions."""

    host: str = "localhost"
    """Redis server hostname or IP address."""

    port: int = 6379
    """Redis server port number."""

    db: int = 0
    """Redis database number (0-15)."""

    ssl: bool = False
    """Whether to use SSL/TLS for Redis connection."""

    socket_timeout: int = 5
    """Socket timeout in seconds for Redis operations."""

    socket_connect_timeout: int = 5
    """Socket connection timeout in seconds when establishing Redis connection."""

    default_lifetime: Optional[int] = 3600  # 1h
    """Default lifetime for cache entries in seconds (None: no expiration)."""

    lifetime_for_tags: Optional[int] = 86400  # 24h
    """Lifetime for tag entries in seconds (None: no expiration).

    When a tag expires or is invalidated, all cache entries associated with that
    tag are also invalidated.
    """

    disabled: bool = False
    """If True, disables all caching operations while maintaining the API interface."""

    in_local_memory: bool = False
    """If True, uses process-local memory instead of Redis (for tests)."""

    cache_hook: Optional[CacheHook] = None
    """Optional callback called after each decorated call: (key, tags, cache_info, userdata)."""

    serializer: Callable[[Any], Optional[bytes]] = DEFAULT_SERIALIZER
    """Serializes values before storing them (None: cache bypassed)."""

    unserializer: Callable[[bytes], Any] = DEFAULT_UNSERIALIZER
    """Deserializes data read from the cache back into Python objects."""

    # rtc's own options, after the reference's (which keep their positions).

    near_cache_max_entries: int = 0
    """rtc only: the near cache (0: off). Up to this many entries are served
    from this process's memory with no round trip, kept coherent by Redis's
    invalidation pushes (one server or a cluster; see "The near cache" in
    core/README.md for the promise)."""

    near_cache_max_bytes: int = 64 * 1024 * 1024
    """rtc only: memory for near-cache entries, in bytes."""

    near_cache_max_lifetime: float = 60.0
    """rtc only: the longest a near-cache entry is served, in seconds (also
    never past its TTL in Redis)."""

    fail_safe_max_duration: Optional[float] = None
    """rtc only: fail-safe for decorated calls (None or 0: off). When Redis
    fails, or the decorated function raises, a decorated call returns the
    last value this process confirmed current for its entry, if confirmed at
    most this many seconds ago, instead of computing or raising; never a
    value this process knows to be invalidated (see "Fail-safe, in detail" in
    core/README.md)."""

    fail_safe_max_bytes: int = 64 * 1024 * 1024
    """rtc only: memory for fail-safe values, in bytes (least recently used go first)."""

    near_cache_tracking: str = "per-reader"
    """rtc only: how the near cache learns of changes. ``"per-reader"`` (the
    default): Redis pushes a change of an entry only to the processes that
    hold it, so pushes grow with the readers of an entry, not with the fleet.
    ``"broadcast"``: every process hears of every entry written in the
    namespace (no tracking table in Redis). See "The near cache" in
    core/README.md."""

    sentinel_nodes: Optional[Sequence[str]] = None
    """rtc only: Redis Sentinel nodes (``"redis://[user:password@]host:port"``,
    the sentinels' own credentials; ``"rediss://..."`` for TLS). With
    ``sentinel_master_name``, the cache asks them where the master is and
    follows it across failovers; ``host`` and ``port`` are then ignored, ``db``
    and ``ssl`` apply to the master (see "Redis Sentinel" in core/README.md)."""

    sentinel_master_name: Optional[str] = None
    """rtc only: the name of the master the Sentinel nodes monitor (required
    with ``sentinel_nodes``)."""

    _internal_lock: Lock = field(init=False, repr=False, compare=False, default_factory=Lock)
    _native_cache: Any = field(init=False, repr=False, compare=False, default=None)
    _native_generation: int = field(init=False, repr=False, compare=False, default=0)
    _native_memo: Optional[n.NearMemo] = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        self._check_config()

    def _check_config(self) -> None:
        """Raises TypeError/ValueError for a setting rtc cannot use."""
        n.c_string("namespace", self.namespace)
        n.c_string("host", self.host)
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 0 < self.port < 65536:
            raise ValueError(f"rtc: port must be an int from 1 to 65535, not {self.port!r}")
        if isinstance(self.db, bool) or not isinstance(self.db, int) or self.db < 0:
            raise ValueError(f"rtc: db must be a non-negative int, not {self.db!r}")
        _seconds_to_ms("socket_timeout", self.socket_timeout)
        if not isinstance(self.near_cache_tracking, str) or self.near_cache_tracking not in _NEAR_TRACKING:
            raise ValueError(
                f"rtc: near_cache_tracking must be 'per-reader' or 'broadcast', not {self.near_cache_tracking!r}"
            )
        _seconds_to_ms("socket_connect_timeout", self.socket_connect_timeout)
        if _seconds_to_ms("fail_safe_max_duration", self.fail_safe_max_duration):
            size = self.fail_safe_max_bytes
            if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
                raise ValueError(f"rtc: fail_safe_max_bytes must be a positive int with fail-safe on, not {size!r}")
        for name in ("default_lifetime", "lifetime_for_tags"):
            value = getattr(self, name)
            if value is not None:
                n.lifetime(value, name)
        for name in ("serializer", "unserializer"):
            if not callable(getattr(self, name)):
                raise TypeError(f"rtc: {name} must be callable, not {getattr(self, name)!r}")
        if self.sentinel_nodes is not None:
            if isinstance(self.sentinel_nodes, (str, bytes)):
                raise TypeError("rtc: sentinel_nodes must be a sequence of URLs, not one string")
            for node in self.sentinel_nodes:
                n.c_string("sentinel_nodes", node)
        if self.sentinel_master_name is not None:
            n.c_string("sentinel_master_name", self.sentinel_master_name)
        if bool(self.sentinel_nodes) != (self.sentinel_master_name is not None):
            raise ValueError("rtc: sentinel_nodes and sentinel_master_name go together: set both or neither")
        if self.cache_hook is not None and not callable(self.cache_hook):
            raise TypeError(f"rtc: cache_hook must be callable or None, not {self.cache_hook!r}")

    def _configured_builder(self) -> Any:
        """A librtc builder holding every field (the caller frees it): what
        the sync class and ``rtc.asyncio``'s both build from."""
        self._check_config()
        builder = lib.rtc_cache_builder_new()
        if builder == ffi.NULL:
            raise RuntimeError("rtc: rtc_cache_builder_new failed")
        try:
            _check("namespace", lib.rtc_cache_builder_set_namespace(builder, n.c_string("namespace", self.namespace)))
            _check("host", lib.rtc_cache_builder_set_host(builder, n.c_string("host", self.host)))
            _check("port", lib.rtc_cache_builder_set_port(builder, self.port))
            _check("db", lib.rtc_cache_builder_set_db(builder, self.db))
            _check("ssl", lib.rtc_cache_builder_set_ssl(builder, bool(self.ssl)))
            _check(
                "socket_timeout",
                lib.rtc_cache_builder_set_socket_timeout_ms(builder, _seconds_to_ms("socket_timeout", self.socket_timeout)),
            )
            connect_ms = _seconds_to_ms("socket_connect_timeout", self.socket_connect_timeout)
            _check("socket_connect_timeout", lib.rtc_cache_builder_set_socket_connect_timeout_ms(builder, connect_ms))
            # None and 0 both mean "no expiration", as in the reference (`or 0`).
            _check("default_lifetime", lib.rtc_cache_builder_set_default_lifetime(builder, self.default_lifetime or 0))
            _check("lifetime_for_tags", lib.rtc_cache_builder_set_lifetime_for_tags(builder, self.lifetime_for_tags or 0))
            _check("disabled", lib.rtc_cache_builder_set_disabled(builder, bool(self.disabled)))
            _check("in_local_memory", lib.rtc_cache_builder_set_in_local_memory(builder, bool(self.in_local_memory)))
            if self.near_cache_max_entries:
                _check(
                    "near_cache_max_entries",
                    lib.rtc_cache_builder_set_near_cache(
                        builder,
                        int(self.near_cache_max_entries),
                        int(self.near_cache_max_bytes),
                        _seconds_to_ms("near_cache_max_lifetime", self.near_cache_max_lifetime),
                    ),
                )
                _check(
                    "near_cache_tracking",
                    lib.rtc_cache_builder_set_near_cache_tracking(builder, _NEAR_TRACKING[self.near_cache_tracking]),
                )
            for node in self.sentinel_nodes or ():
                _check("sentinel_nodes", lib.rtc_cache_builder_add_sentinel_node(builder, n.c_string("sentinel_nodes", node)))
            if self.sentinel_master_name is not None:
                name = n.c_string("sentinel_master_name", self.sentinel_master_name)
                _check("sentinel_master_name", lib.rtc_cache_builder_set_sentinel_master_name(builder, name))
            fail_safe_ms = _seconds_to_ms("fail_safe_max_duration", self.fail_safe_max_duration)
            if fail_safe_ms:
                _check(
                    "fail_safe_max_duration",
                    lib.rtc_cache_builder_set_fail_safe(builder, fail_safe_ms, int(self.fail_safe_max_bytes)),
                )
            # Always: librtc's report of each decorated call (see
            # _native.c_hook), which the decorator hands to cache_hook (which
            # may be set later, so the hook is never left out).
            _check("cache_hook", lib.rtc_cache_builder_set_hook(builder, n.c_hook, ffi.NULL))
            return builder
        except BaseException:
            lib.rtc_cache_builder_free(builder)
            raise


@dataclass
class RedisTaggedCache(_Settings):
    """A Redis-based caching system with tag-based invalidation support.

    The API of ``redis-tagged-cache`` 0.12.1, served by librtc: entries,
    invalidations and stampede locks are shared with the reference on one
    Redis. Thread-safe: share one instance between threads.

    Example:
        ```python
        cache = RedisTaggedCache(host="localhost", port=6379)
        cache.set("key", "value", tags=["tag1", "tag2"])
        assert cache.get("key", tags=["tag1", "tag2"]) == "value"
        cache.invalidate("tag1")  # invalidates all entries with tag1
        cache.get("key", tags=["tag1", "tag2"])  # raises CacheMiss
        ```
    """

    @property
    def _cache(self) -> Any:
        """The librtc cache, built at first use from the fields (as the reference's service)."""
        cache = self._native_cache
        if cache is not None and self._native_generation == _fork_generation:
            return cache
        with self._internal_lock:
            if self._native_cache is None or self._native_generation != _fork_generation:
                if self._native_cache is not None:
                    _inherited.append(self._native_cache)  # the parent's: never freed here
                self._native_memo = None
                cache = self._make_cache()
                self._native_cache = cache
                self._native_generation = _fork_generation
                self._native_memo = n.NearMemo.of(cache, self.near_cache_max_entries, self.near_cache_max_bytes)
            return self._native_cache

    def _make_cache(self) -> Any:
        builder = self._configured_builder()
        try:
            out = ffi.new("rtc_cache **")
            _check(f"cannot build a cache for {self.host}:{self.port}", lib.rtc_cache_new(builder, out))
            return ffi.gc(out[0], lib.rtc_cache_free)
        finally:
            lib.rtc_cache_builder_free(builder)

    @property
    def _service(self) -> "_Service":
        """The reference's internal service, for code that reaches for its bytes API."""
        return _Service(self)

    def _rebuild_service(self) -> None:
        """Forgets the librtc cache, so the next call builds one from the current fields."""
        with self._internal_lock:
            self._native_memo = None
            self._native_cache = None

    def _bypassed(self, what: str, code: int) -> None:
        error = n.last_error(code)
        LOGGER.warning("cache exception %s => cache bypassed (%s)", what, error, exc_info=(CacheError, error, None))

    def set(self, key: str, value: Any, tags: Optional[Iterable[str]] = None, lifetime: Optional[int] = None) -> bool:
        """Store a value in the cache with optional tags and lifetime.

        Args:
            key: Unique identifier for the cache entry
            value: Any Python object to store (must be serializable)
            tags: Optional list of tags for invalidation
            lifetime: Optional TTL in seconds (overrides default_lifetime, 0 means no expiration)

        Returns:
            bool: True if the value was stored; False if it was not (Redis
            down or slow, a serializer that failed or returned None), with a
            warning logged.
        """
        key_b = n.key_bytes(key)
        tags_c, tags_len, _keep = n.call_tags(tags)
        life = n.lifetime(lifetime)
        data = _set_bytes(self.serializer, value)
        if data is None:
            return False
        code = lib.rtc_cache_set(self._cache, key_b, len(key_b), n.buffer(data), len(data), tags_c, tags_len, life)
        if code == n.OK:
            return True
        self._bypassed("when setting a key", code)
        return False

    def get(self, key: str, tags: Optional[Iterable[str]] = None) -> Any:
        """Retrieve a value from the cache.

        Raises:
            CacheMiss: if the key doesn't exist, has expired, was invalidated,
            cannot be unserialized, or Redis could not be read (then with a
            warning logged).
        """
        cache = self._cache
        # A near-cache hit seen before, whose lease still holds: no call at
        # all (the memo of this very librtc cache: `_cache` above rebuilt it
        # after a fork).
        memo = self._native_memo
        data = None if memo is None else memo.recall(key, tags)
        if data is None:
            key_b = n.key_bytes(key)
            tags_c, tags_len, _keep = n.call_tags(tags)
            read = n.READ
            started = n.monotonic_ns()
            code = lib.rtc_cache_get_leased_into(
                cache, key_b, len(key_b), tags_c, tags_len, read.buf, n.READ_BUFFER_SIZE, read.len, read.value, read.lease
            )
            if code == n.MISS:
                raise CacheMiss()
            if code != n.OK:
                self._bypassed("when reading a key", code)
                raise CacheMiss()
            data = n.read_result(read)
            if memo is not None:
                memo.keep(key, tags, started, read.lease, data)
        try:
            return self.unserializer(data)
        except Exception:
            LOGGER.warning("error when unserializing cached data => cache bypassed", exc_info=True)
            raise CacheMiss() from None

    def delete(self, key: str, tags: Optional[Iterable[str]] = None) -> bool:
        """Remove an entry from the cache.

        Returns:
            bool: True if the key was found and deleted, False if it didn't
            exist (or Redis could not be reached, with a warning logged).
        """
        key_b = n.key_bytes(key)
        tags_c, tags_len, _keep = n.call_tags(tags)
        deleted = ffi.new("bool *")
        code = lib.rtc_cache_delete(self._cache, key_b, len(key_b), tags_c, tags_len, deleted)
        if code == n.OK:
            return bool(deleted[0])
        self._bypassed("when deleting a key", code)
        return False

    def invalidate(self, tags: Union[str, Iterable[str]]) -> bool:
        """Invalidate all cache entries associated with the given tag(s), in O(1).

        Args:
            tags: Single tag string or iterable of tags to invalidate

        Returns:
            bool: True if the invalidation was successful (False, with a
            warning logged, if Redis could not be reached)
        """
        names = [tags] if isinstance(tags, str) else n.tag_names(tags)
        tags_c, tags_len, _keep = n.tag_array(names)
        code = lib.rtc_cache_invalidate(self._cache, tags_c, tags_len)
        if code == n.OK:
            return True
        self._bypassed("during a tag invalidation", code)
        return False

    def invalidate_all(self) -> bool:
        """Invalidate all cache entries in the current namespace, in O(1).

        Returns:
            bool: True if the invalidation was successful
        """
        code = lib.rtc_cache_invalidate_all(self._cache)
        if code == n.OK:
            return True
        self._bypassed("during a tag invalidation", code)
        return False

    def decorator(
        self,
        tags: Optional[Union[Iterable[str], Callable[..., Iterable[str]]]] = None,
        lifetime: Optional[int] = None,
        key: Optional[Callable[..., str]] = None,
        hook_userdata: Optional[Any] = None,
        lock: bool = False,
        lock_timeout: int = 5,
        serializer: Optional[Callable[[Any], Optional[bytes]]] = None,
        unserializer: Optional[Callable[[bytes], Any]] = None,
        portable_key: bool = False,
    ) -> Callable:
        """Decorator for automatically caching function (or method) results.

        Without ``key``, the key is derived as the reference derives it: a hash
        of JSON of the function's file path, class name and name and its
        arguments (which must be JSON-serializable); ``self`` is not part of
        it. ``portable_key=True`` (an rtc addition) uses the module's name in
        place of the file path, so the key does not depend on where the code
        is installed (the reference cannot read such entries).

        Args:
            tags: Static list of tags or a function that generates tags dynamically
            lifetime: Optional TTL in seconds (overrides default_lifetime)
            key: Optional function to generate custom cache keys
            hook_userdata: Optional data passed to cache hooks
            lock: If True, uses distributed locking to prevent cache stampede
            lock_timeout: Lock timeout in seconds (default: 5)
            serializer: Optional custom serializer for this function
            unserializer: Optional custom unserializer for this function
            portable_key: Derive keys from the module name, not the file path

        If the decorated function raises, the exception propagates, nothing is
        cached and the lock is released at once.
        """
        if isinstance(lock_timeout, bool) or not isinstance(lock_timeout, (int, float)):
            raise TypeError(f"rtc: lock_timeout must be a number of seconds, not {lock_timeout!r}")
        if not 0 <= lock_timeout <= n.MAX_LOCK_TIMEOUT_S:
            raise ValueError(f"rtc: lock_timeout must be 0 to {n.MAX_LOCK_TIMEOUT_S} seconds, not {lock_timeout}")
        if key is not None and not callable(key):
            raise TypeError(f"rtc: key must be a callable returning the key, not {key!r}")
        return cache_decorator(
            native=lambda: self._cache,
            hook=lambda: self.cache_hook,
            tags=tags,
            lifetime=n.lifetime(lifetime),
            key=key,
            hook_userdata=hook_userdata,
            serializer=serializer if serializer else self.serializer,
            unserializer=unserializer if unserializer else self.unserializer,
            lock=bool(lock),
            lock_timeout_ms=round(lock_timeout * 1000),
            portable_key=portable_key,
        )

    def function_decorator(self, *args: Any, **kwargs: Any) -> Callable:
        """DEPRECATED: Use `decorator()` instead."""
        return self.decorator(*args, **kwargs)

    def method_decorator(self, *args: Any, **kwargs: Any) -> Callable:
        """DEPRECATED: Use `decorator()` instead."""
        return self.decorator(*args, **kwargs)


CacheError = n.CacheError


class _Service:
    """The raw-bytes part of the reference's Service (get_bytes, set_bytes), no serializer."""

    def __init__(self, cache: RedisTaggedCache):
        self._cache = cache

    def get_bytes(self, key: str, tag_names: Optional[Iterable[str]] = None) -> Optional[bytes]:
        """Returns the stored bytes, or None on a miss (or a failure, logged)."""
        try:
            return self._with(lambda b: b).get(key, tag_names)
        except CacheMiss:
            return None

    def set_bytes(
        self, key: str, value: bytes, tag_names: Optional[Iterable[str]] = None, lifetime: Optional[int] = None
    ) -> bool:
        """Stores bytes as they are; False on a failure (logged)."""
        return self._with(lambda b: b).set(key, value, tag_names, lifetime)

    def _with(self, identity: Callable[[Any], Any]) -> "_Bytes":
        return _Bytes(self._cache, identity)


class _Bytes:
    """RedisTaggedCache's set/get over the same librtc cache with an identity serializer."""

    def __init__(self, cache: RedisTaggedCache, identity: Callable[[Any], Any]):
        self._owner = cache
        self.serializer = self.unserializer = identity

    @property
    def _cache(self) -> Any:
        return self._owner._cache

    @property
    def _native_memo(self) -> Optional[n.NearMemo]:
        return self._owner._native_memo

    _bypassed = RedisTaggedCache._bypassed
    set = RedisTaggedCache.set
    get = RedisTaggedCache.get
