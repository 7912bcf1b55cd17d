"""rtc.asyncio: ``RedisTaggedCache`` for asyncio, as ``redis.asyncio`` is to redis.

The same fields as ``rtc.RedisTaggedCache``; ``set``, ``get``, ``delete``,
``invalidate`` and ``invalidate_all`` are coroutines with the same return
values and exceptions (``CacheMiss``), and ``decorator`` wraps ``async def``
functions and methods, deriving keys as the sync decorator does (both share
entries).

Driven by librtc's non-blocking API: each call starts an operation, which
runs on librtc's own threads, and awaits its completion; completions arrive
through a descriptor the event loop watches (``loop.add_reader``). No thread
per call, no blocking of the loop. Cancelling a task cancels its operation
(a get-or-compute under the lock still releases the lock).

Example:
    ```python
    from rtc.asyncio import RedisTaggedCache

    cache = RedisTaggedCache(host="localhost", port=6379)

    @cache.decorator(tags=["users"], lock=True)
    async def load_user(user_id: int) -> dict:
        ...

    await cache.set("key", "value", tags=["tag1"])
    assert await cache.get("key", tags=["tag1"]) == "value"
    await cache.invalidate("tag1")
    ```
"""

import asyncio
import inspect
import logging
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Dict, Iterable, Optional, Tuple, Union

import wrapt

from rtc import _native as n
from rtc._cache import _fork_generation_now, _set_bytes, _Settings
from rtc._decorator import _apply_report, _call_hook, _get_full_tag_names, _get_key, _options
from rtc._native import ffi, lib
from rtc._types import CacheInfo, CacheMiss

__all__ = ["CacheMiss", "RedisTaggedCache"]

LOGGER = logging.getLogger("rtc.app.service")
DECORATOR_LOGGER = logging.getLogger("rtc.app.decorator")

# librtc's threads per cache, and its bound on operations in flight (a
# program with more concurrent tasks than this gets bypassed calls, logged).
_THREADS = 2
_MAX_IN_FLIGHT = 65536
# Completions taken per call of rtc_async_take.
_BATCH = 64

# What an operation's completion carries: its result code, the value of a
# hit, the ticket of a get-or-lock miss, and the error message.
_Completion = Tuple[int, Optional[bytes], Any, str]


class _Driver:
    """One librtc non-blocking context, watched by one event loop."""

    def __init__(self, ctx: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.ctx = ctx
        self.loop = loop
        self.waiting: Dict[int, "asyncio.Future[_Completion]"] = {}
        self.batch = ffi.new(f"rtc_completion[{_BATCH}]")
        self.size = ffi.sizeof("rtc_completion")
        self.op = ffi.new("rtc_op *")
        loop.add_reader(lib.rtc_async_fd(ctx), self._ready)

    def close(self) -> None:
        """Stops watching the descriptor (the loop may be closed already)."""
        try:
            self.loop.remove_reader(lib.rtc_async_fd(self.ctx))
        except Exception:
            pass

    def _ready(self) -> None:
        """The descriptor is readable: hands every completion to its future."""
        while True:
            count = lib.rtc_async_take(self.ctx, self.batch, _BATCH, self.size)
            for i in range(count):
                c = self.batch[i]
                value = None
                if c.value != ffi.NULL:
                    try:
                        value = bytes(ffi.buffer(lib.rtc_value_data(c.value), lib.rtc_value_len(c.value)))
                    finally:
                        lib.rtc_value_free(c.value)
                ticket = ffi.gc(c.ticket, lib.rtc_ticket_free) if c.ticket != ffi.NULL else None
                future = self.waiting.pop(c.op, None)
                if future is None or future.done():
                    if ticket is not None:  # nobody awaits it: give the lock back now
                        lib.rtc_ticket_free(_detached(ticket))
                    continue
                message = ffi.string(c.error_message).decode("utf-8", "replace") if c.error_message else ""
                future.set_result((c.result, value, ticket, message))
            if count < _BATCH:
                return

    async def run(self, start: Callable[[Any], int]) -> _Completion:
        """Starts an operation (`start` gets the out-pointer of its id and
        returns librtc's code) and waits for its completion."""
        code = start(self.op)
        if code != n.OK:
            return (code, None, None, n.last_error(code).args[0])
        op = int(self.op[0])
        future: "asyncio.Future[_Completion]" = self.loop.create_future()
        self.waiting[op] = future
        try:
            return await future
        except asyncio.CancelledError:
            self.waiting.pop(op, None)
            lib.rtc_async_cancel(self.ctx, op)
            raise


@dataclass
class RedisTaggedCache(_Settings):
    """``rtc.RedisTaggedCache`` for asyncio: the same fields, coroutine methods.

    Use it from coroutines; one instance may serve several event loops (each
    gets its own librtc context).
    """

    _drivers: Any = field(init=False, repr=False, compare=False, default_factory=weakref.WeakKeyDictionary)
    _generation: int = field(init=False, repr=False, compare=False, default=-1)

    def _driver(self) -> _Driver:
        """This event loop's librtc context, made at first use (and again after a fork)."""
        loop = asyncio.get_running_loop()
        if self._generation != _fork_generation_now():
            self._drivers = weakref.WeakKeyDictionary()  # the parent's contexts: never used here
            self._generation = _fork_generation_now()
        driver = self._drivers.get(loop)
        if driver is None:
            builder = self._configured_builder()
            try:
                out = ffi.new("rtc_async **")
                code = lib.rtc_async_new(builder, _THREADS, _MAX_IN_FLIGHT, out)
                if code != n.OK:
                    raise ValueError(f"rtc: cannot build a cache for {self.host}:{self.port}: {n.last_error(code)}")
                driver = _Driver(ffi.gc(out[0], lib.rtc_async_free), loop)
            finally:
                lib.rtc_cache_builder_free(builder)
            self._drivers[loop] = driver
        return driver

    def _bypassed(self, what: str, code: int, message: str) -> None:
        error = n.CacheError(code, message)
        LOGGER.warning("cache exception %s => cache bypassed (%s)", what, error, exc_info=(n.CacheError, error, None))

    async def set(self, key: str, value: Any, tags: Optional[Iterable[str]] = None, lifetime: Optional[int] = None) -> bool:
        """Store a value with optional tags and lifetime; as ``rtc.RedisTaggedCache.set``.

        Returns:
            bool: True if stored; False (with a warning logged) if not.
        """
        key_b = n.key_bytes(key)
        tags_c, tags_len, _keep = n.call_tags(tags)
        life = n.lifetime(lifetime)
        data = _set_bytes(self.serializer, value)
        if data is None:
            return False
        driver = self._driver()
        buf = n.buffer(data)
        code, _, _, message = await driver.run(
            lambda op: lib.rtc_async_set(
                driver.ctx, key_b, len(key_b), buf, len(data), tags_c, tags_len, life, ffi.NULL, op
            )
        )
        if code == n.OK:
            return True
        self._bypassed("when setting a key", code, message)
        return False

    async def get(self, key: str, tags: Optional[Iterable[str]] = None) -> Any:
        """Retrieve a value; as ``rtc.RedisTaggedCache.get``.

        Raises:
            CacheMiss: the entry is not there, expired, was invalidated,
            cannot be unserialized, or Redis could not be read (logged).
        """
        key_b = n.key_bytes(key)
        tags_c, tags_len, _keep = n.call_tags(tags)
        driver = self._driver()
        code, data, _, message = await driver.run(
            lambda op: lib.rtc_async_get(driver.ctx, key_b, len(key_b), tags_c, tags_len, ffi.NULL, op)
        )
        if code == n.MISS:
            raise CacheMiss()
        if code != n.OK or data is None:
            self._bypassed("when reading a key", code, message)
            raise CacheMiss()
        try:
            return self.unserializer(data)
        except Exception:
            LOGGER.warning("error when unserializing cached data => cache bypassed", exc_info=True)
            raise CacheMiss() from None

    async def delete(self, key: str, tags: Optional[Iterable[str]] = None) -> bool:
        """Remove an entry: True if it was there and deleted, else False."""
        key_b = n.key_bytes(key)
        tags_c, tags_len, _keep = n.call_tags(tags)
        driver = self._driver()
        code, _, _, message = await driver.run(
            lambda op: lib.rtc_async_delete(driver.ctx, key_b, len(key_b), tags_c, tags_len, ffi.NULL, op)
        )
        if code in (n.OK, n.MISS):
            return code == n.OK
        self._bypassed("when deleting a key", code, message)
        return False

    async def invalidate(self, tags: Union[str, Iterable[str]]) -> bool:
        """Invalidate every entry carrying any of the tag(s), in O(1); False (logged) on a failure."""
        names = [tags] if isinstance(tags, str) else n.tag_names(tags)
        tags_c, tags_len, _keep = n.tag_array(names)
        driver = self._driver()
        code, _, _, message = await driver.run(
            lambda op: lib.rtc_async_invalidate(driver.ctx, tags_c, tags_len, ffi.NULL, op)
        )
        if code == n.OK:
            return True
        self._bypassed("during a tag invalidation", code, message)
        return False

    async def invalidate_all(self) -> bool:
        """Invalidate every entry of the namespace, in O(1); False (logged) on a failure."""
        driver = self._driver()
        code, _, _, message = await driver.run(lambda op: lib.rtc_async_invalidate_all(driver.ctx, ffi.NULL, op))
        if code == n.OK:
            return True
        self._bypassed("during a tag invalidation", code, message)
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
        """Caches the results of an ``async def`` function or method; the
        arguments of ``rtc.RedisTaggedCache.decorator``, and the same keys.

        If the function raises, the exception propagates, nothing is cached
        and the lock is released at once.
        """
        if isinstance(lock_timeout, bool) or not isinstance(lock_timeout, (int, float)):
            raise TypeError(f"rtc: lock_timeout must be a number of seconds, not {lock_timeout!r}")
        if not 0 <= lock_timeout <= n.MAX_LOCK_TIMEOUT_S:
            raise ValueError(f"rtc: lock_timeout must be 0 to {n.MAX_LOCK_TIMEOUT_S} seconds, not {lock_timeout}")
        if key is not None and not callable(key):
            raise TypeError(f"rtc: key must be a callable returning the key, not {key!r}")
        life = n.lifetime(lifetime)
        lock_ms = round(lock_timeout * 1000)
        dump = serializer if serializer else self.serializer
        load = unserializer if unserializer else self.unserializer
        cache = self

        @wrapt.decorator
        async def wrapper(wrapped: Callable[..., Awaitable[Any]], instance: Any, args: Tuple, kwargs: Dict) -> Any:
            before = time.perf_counter()
            class_name = ""
            if instance is not None:
                try:
                    class_name = instance.__class__.__name__
                except Exception:
                    pass
            info = CacheInfo(
                filepath=inspect.getfile(wrapped),
                class_name=class_name,
                function_name=wrapped.__name__,
                function_args=args,
                function_kwargs=kwargs,
                method_decorator=instance is not None,
            )
            module = (getattr(wrapped, "__module__", None) or "") if portable_key else None
            ckey = _get_key(info, key, instance, module, *args, **kwargs)
            full_tags = _get_full_tag_names(tags, instance, *args, **kwargs)
            if ckey is None or full_tags is None:
                started = time.perf_counter()
                res = await wrapped(*args, **kwargs)
                if ckey:
                    info.decorated_elapsed = time.perf_counter() - started
                    info.elapsed = time.perf_counter() - before
                    _call_hook(lambda: cache.cache_hook, ckey, [], info, hook_userdata)
                return res
            report_to = _Report()
            handle = ffi.new_handle(report_to)  # alive until core's reports are taken
            options = _options(ckey, n.tag_names(full_tags), lock, lock_ms, life, handle)
            driver = cache._driver()
            code, value, ticket, message = await driver.run(
                lambda op: lib.rtc_async_get_or_lock(driver.ctx, options, ffi.NULL, op)
            )
            res: Any = None
            computed = False
            if code == n.OK and value is not None:
                try:
                    res = load(value)
                except Exception:
                    DECORATOR_LOGGER.warning("error while unserializing cache value => cache bypassed", exc_info=True)
                    res = await wrapped(*args, **kwargs)
                    computed = True
                    await cache._store(ckey, full_tags, life, res, dump)
            elif code == n.MISS and ticket is not None:
                started = time.perf_counter()
                try:
                    res = await wrapped(*args, **kwargs)
                except Exception as raised:
                    # As the sync decorator: the fail-safe value if fail-safe
                    # keeps one (logged), else the exception; the lock goes
                    # back at once either way.
                    stale = await _fail_safe_value(driver, ticket)
                    if stale is None:
                        raise
                    try:
                        res = load(stale)
                    except Exception:
                        DECORATOR_LOGGER.warning("error while unserializing cache value => cache bypassed", exc_info=True)
                        raise raised from None  # the fail-safe value is unreadable too
                    DECORATOR_LOGGER.warning(
                        "the decorated function raised => the fail-safe value is returned", exc_info=raised
                    )
                    _finish(info, report_to.report, computed=False, lock=lock, before=before)
                    _call_hook(lambda: cache.cache_hook, ckey, full_tags, info, hook_userdata)
                    del handle
                    return res
                except BaseException:
                    # An interrupt or a cancellation: re-raised whatever fail-safe holds.
                    lib.rtc_ticket_free(_detached(ticket))
                    raise
                computed = True
                info.decorated_elapsed = time.perf_counter() - started
                data = _serialized(dump, res)
                if data is None:
                    lib.rtc_ticket_free(_detached(ticket))
                else:
                    info.serialized_size = len(data)
                    buf = n.buffer(data)
                    stored = await driver.run(
                        lambda op: lib.rtc_async_set_and_unlock(
                            driver.ctx, _detached(ticket), buf, len(data), life, ffi.NULL, op
                        )
                    )
                    if stored[0] != n.OK:
                        cache._bypassed("when setting a key", stored[0], stored[3])
            else:
                cache._bypassed("during a decorated call", code, message)
                res = await wrapped(*args, **kwargs)
                computed = True
            report = report_to.report
            if report is not None and report.error is not None:
                cache._bypassed("during a decorated call", report.error.code, str(report.error))
            _finish(info, report, computed=computed, lock=lock, before=before)
            _call_hook(lambda: cache.cache_hook, ckey, full_tags, info, hook_userdata)
            del handle
            return res

        return wrapper

    async def _store(self, ckey: str, tags: Iterable[str], life: int, res: Any, dump: Callable[[Any], Any]) -> None:
        """Stores a value computed again (bytes this unserializer cannot read) with a plain set."""
        data = _serialized(dump, res)
        if data is None:
            return
        key_b = n.text("key", ckey)
        tags_c, tags_len, _keep = n.call_tags(tags)
        driver = self._driver()
        buf = n.buffer(data)
        code, _, _, message = await driver.run(
            lambda op: lib.rtc_async_set(driver.ctx, key_b, len(key_b), buf, len(data), tags_c, tags_len, life, ffi.NULL, op)
        )
        if code != n.OK:
            self._bypassed("when setting a key", code, message)


def _finish(info: CacheInfo, report: Optional[n.Report], computed: bool, lock: bool, before: float) -> None:
    """Fills the call's CacheInfo from core's report (or, without one, from what this call saw)."""
    if report is not None:
        _apply_report(info, report)
        if computed:
            # This call ran the function (a miss, core failing, or a value
            # it could not read): a miss, whatever core's get-or-lock saw.
            info.hit = False
    else:
        info.hit = not computed
        info.elapsed = time.perf_counter() - before
        info.lock_full_miss = lock and computed


async def _fail_safe_value(driver: _Driver, ticket: Any) -> Optional[bytes]:
    """Ends the ticket of a computation that raised: the fail-safe value of
    its entry, or None (the ticket released, its lock back at once)."""
    # Cancelled meanwhile, the operation still ends the ticket on librtc's threads.
    code, value, _, _ = await driver.run(
        lambda op: lib.rtc_async_fail_and_unlock(driver.ctx, _detached(ticket), ffi.NULL, op)
    )
    return value if code == n.OK else None


class _Report:
    """Where librtc's hook (``_native.c_hook``) leaves core's report of a call."""

    __slots__ = ("report",)

    def __init__(self) -> None:
        self.report: Optional[n.Report] = None


def _detached(ticket: Any) -> Any:
    """The ticket, no longer freed by the garbage collector: for the librtc
    call that consumes it."""
    ffi.gc(ticket, None)
    return ticket


def _serialized(dump: Callable[[Any], Any], value: Any) -> Optional[bytes]:
    """The value as bytes, or None (logged) when it cannot be stored."""
    try:
        produced = dump(value)
        return None if produced is None else n.value_bytes(produced)
    except Exception:
        DECORATOR_LOGGER.warning("error while serializing cache value => cache bypassed", exc_info=True)
        return None
