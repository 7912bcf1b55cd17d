"""The decorator: the reference's key and tag derivation, over librtc's
get-or-lock / set-and-unlock pair.

Python computes between the two C calls, so no C callback into Python is
needed; the value is stored under the tag values read before computing (an
invalidation during the computation is not hidden, unlike the reference).
"""

import inspect
import json
import logging
import time
from typing import Any, Callable, Dict, Iterable, Optional, Tuple, Union

import wrapt

from rtc import _native as n
from rtc._native import ffi, lib
from rtc._types import CacheHook, CacheInfo
from rtc.app.hash import short_hash

LOGGER = logging.getLogger("rtc.app.decorator")
SERVICE_LOGGER = logging.getLogger("rtc.app.service")


def _get_key(
    cache_info: CacheInfo,
    key: Optional[Callable[..., str]],
    instance: Any,
    module: Optional[str],
    *decorated_args: Any,
    **decorated_kwargs: Any,
) -> Optional[str]:
    if key is not None:
        try:
            if instance is None:
                return key(*decorated_args, **decorated_kwargs)
            return key(instance, *decorated_args, **decorated_kwargs)
        except Exception:
            LOGGER.warning("error while computing dynamic key => cache bypassed", exc_info=True)
        return None
    try:
        identity = cache_info._dump() if module is None else [module, cache_info.class_name, cache_info.function_name]
        serialized_args = json.dumps([identity, decorated_args, decorated_kwargs], sort_keys=True).encode("utf-8")
        return short_hash(serialized_args)
    except Exception:
        LOGGER.warning("arguments are not JSON serializable => cache bypassed", exc_info=True)
        return None


def _get_full_tag_names(
    tags: Optional[Union[Iterable[str], Callable[..., Iterable[str]]]],
    instance: Any,
    *decorated_args: Any,
    **decorated_kwargs: Any,
) -> Optional[Iterable[str]]:
    if callable(tags):
        try:
            if instance is None:
                return tags(*decorated_args, **decorated_kwargs)
            return tags(instance, *decorated_args, **decorated_kwargs)
        except Exception:
            LOGGER.warning("error while computing dynamic tag names => cache bypassed", exc_info=True)
            return None
    return tags or []


def _call_hook(
    current_hook: Callable[[], Optional[CacheHook]], key: str, tags: Iterable[str], info: CacheInfo, userdata: Any
) -> None:
    hook = current_hook()
    if not hook:
        return
    try:
        hook(key, tags, userdata=userdata, cache_info=info)
    except Exception:
        SERVICE_LOGGER.warning(f"Error while calling hook {hook}", exc_info=True)


def _options(ckey: str, tags: list, lock: bool, lock_timeout_ms: int, lifetime: int) -> Any:
    """Builds librtc's compute options; raises ValueError/TypeError on a bad key or tag."""
    key_b = n.buffer(n.text("key", ckey))
    tags_c, tags_len, _keep = n.tag_array(tags)
    out = ffi.new("rtc_compute_options **")
    code = lib.rtc_compute_options_new(key_b, len(key_b), out)
    if code != n.OK:
        raise ValueError(f"rtc: {n.last_error(code)}")
    options = ffi.gc(out[0], lib.rtc_compute_options_free)
    for code in (
        lib.rtc_compute_options_set_tags(options, tags_c, tags_len),
        lib.rtc_compute_options_set_lock(options, lock),
        lib.rtc_compute_options_set_lock_timeout_ms(options, lock_timeout_ms),
        lib.rtc_compute_options_set_lifetime(options, lifetime),
    ):
        if code != n.OK:
            raise ValueError(f"rtc: {n.last_error(code)}")
    return options


def cache_decorator(
    *,
    native: Callable[[], Any],
    hook: Callable[[], Optional[CacheHook]],
    tags: Optional[Union[Iterable[str], Callable[..., Iterable[str]]]],
    lifetime: int,
    key: Optional[Callable[..., str]],
    hook_userdata: Any,
    serializer: Callable[[Any], Optional[bytes]],
    unserializer: Callable[[bytes], Any],
    lock: bool,
    lock_timeout_ms: int,
    portable_key: bool,
) -> Callable:
    """Returns the wrapt decorator caching a function's results in the librtc
    cache `native()` returns, reporting to the hook `hook()` returns.

    Both are read at each call, not once: the cache's owner rebuilds its
    librtc cache after a fork or a change of settings, and its hook may be
    set after the function was decorated.
    """

    @wrapt.decorator
    def wrapper(wrapped: Callable, instance: Any, args: Tuple, kwargs: Dict) -> Any:
        before = time.perf_counter()
        class_name = ""
        if instance is not None:
            try:
                class_name = instance.__class__.__name__
            except Exception:
                pass
        cache_info = CacheInfo(
            filepath=inspect.getfile(wrapped),
            class_name=class_name,
            function_name=wrapped.__name__,
            function_args=args,
            function_kwargs=kwargs,
            method_decorator=instance is not None,
        )
        module = (getattr(wrapped, "__module__", None) or "") if portable_key else None
        ckey = _get_key(cache_info, key, instance, module, *args, **kwargs)
        full_tag_names = _get_full_tag_names(tags, instance, *args, **kwargs)
        ticket = ffi.NULL
        stored = False  # whether the cache answered (a hit or a ticket)
        if ckey is not None and full_tag_names is not None:
            tag_list = n.tag_names(full_tag_names)
            options = _options(ckey, tag_list, lock, lock_timeout_ms, lifetime)
            value_out = ffi.new("rtc_value **")
            ticket_out = ffi.new("rtc_ticket **")
            n.hook_slot.info = None
            code = lib.rtc_cache_get_or_lock(native(), options, value_out, ticket_out)
            if code == n.OK:
                serialized = n.take_value(value_out)
                cache_info.serialized_size = len(serialized)
                measured = n.hook_slot.info
                if measured is not None:
                    cache_info.lock_waiting_ms, cache_info.lock_full_hit, cache_info.lock_full_miss = measured
                try:
                    unserialized = unserializer(serialized)
                    cache_info.hit = True
                    cache_info.elapsed = time.perf_counter() - before
                    _call_hook(hook, ckey, full_tag_names, cache_info, hook_userdata)
                    return unserialized
                except Exception:
                    LOGGER.warning("error while unserializing cache value => cache bypassed", exc_info=True)
                stored = True  # store the recomputed value with a plain set
            elif code == n.MISS:
                ticket = ticket_out[0]
                cache_info.lock_waiting_ms = lib.rtc_ticket_lock_waiting_ms(ticket)
                cache_info.lock_full_miss = lock
                stored = True
            else:
                error = n.last_error(code)
                SERVICE_LOGGER.warning(
                    "cache exception when getting or locking a key => cache bypassed (%s)",
                    error,
                    exc_info=(n.CacheError, error, None),
                )
                cache_info.lock_full_miss = lock
        # A miss: call the decorated function. Whatever escapes (its own
        # exception, or an interrupt), the ticket is given up in `finally`,
        # which releases the lock at once (the reference keeps it until it
        # expires); a consumed ticket is NULL there, a no-op.
        try:
            before_decorated = time.perf_counter()
            res = wrapped(*args, **kwargs)
            cache_info.decorated_elapsed = time.perf_counter() - before_decorated
            if ckey is not None and full_tag_names is not None:
                serialized_res: Optional[bytes] = None
                try:
                    produced = serializer(res)
                    serialized_res = None if produced is None else n.value_bytes(produced)
                except Exception:
                    LOGGER.warning("error while serializing cache value => cache bypassed", exc_info=True)
                if serialized_res is not None and stored:
                    cache_info.serialized_size = len(serialized_res)
                    data = n.buffer(serialized_res)
                    if ticket != ffi.NULL:
                        code = lib.rtc_cache_set_and_unlock(native(), ticket, data, len(serialized_res), lifetime)
                        ticket = ffi.NULL  # consumed whatever the result
                    else:
                        key_b = n.buffer(n.text("key", ckey))
                        tags_c, tags_len, _keep = n.tag_array(n.tag_names(full_tag_names))
                        code = lib.rtc_cache_set(
                            native(), key_b, len(key_b), data, len(serialized_res), tags_c, tags_len, lifetime
                        )
                    if code != n.OK:
                        error = n.last_error(code)
                        SERVICE_LOGGER.warning(
                            "cache exception when setting a key => cache bypassed (%s)",
                            error,
                            exc_info=(n.CacheError, error, None),
                        )
        finally:
            lib.rtc_ticket_free(ticket)
        if ckey:
            cache_info.elapsed = time.perf_counter() - before
            _call_hook(hook, ckey, full_tag_names if full_tag_names else [], cache_info, hook_userdata)
        return res

    return wrapper
