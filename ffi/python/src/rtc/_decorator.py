"""The decorator: the reference's key and tag derivation, over librtc's one
get-or-compute (`rtc_cache_get_or_compute`), which calls the decorated
function back through a cffi callback.

So the flow is core's, with its guarantees: single-flight (with `lock=True`,
the callers of one key in this process compute once, also when Redis is
down), fail-safe (when the cache has it on), the value stored under the tag
values read before computing (an invalidation during the computation is not
hidden, unlike the reference), the lock released at once when the function
raises, and one report per call to the hook, made by core. This module keeps
only what Python must do itself: derive the key and tags as the reference
does, (un)serialize, re-raise the function's exception, and hand core's
report to the user's hook.
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


def _apply_report(info: CacheInfo, report: n.Report) -> None:
    """Copies core's report of a decorated call into its CacheInfo.

    One copy for the sync and the asyncio decorator, so both report a call
    alike. What the decorator measured itself (the function's time, the
    serialized size) wins over core's figure: core did not see those when
    the decorator computed or serialized outside its get-or-compute.
    """
    info.hit = report.hit
    info.elapsed = report.elapsed
    info.decorated_elapsed = info.decorated_elapsed or report.decorated_elapsed
    info.lock_waiting_ms = report.lock_waiting_ms
    info.lock_full_hit = report.lock_full_hit
    info.lock_full_miss = report.lock_full_miss
    info.serialized_size = info.serialized_size or report.serialized_size


def _options(ckey: str, tags: list, lock: bool, lock_timeout_ms: int, lifetime: int, call: Any) -> Any:
    """Builds librtc's compute options, reporting to `call` (a cffi handle);
    raises ValueError/TypeError on a bad key or tag."""
    key_b = n.text("key", ckey)
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
        lib.rtc_compute_options_set_hook_userdata(options, call),
    ):
        if code != n.OK:
            raise ValueError(f"rtc: {n.last_error(code)}")
    return options


_NOTHING = object()


class _Call:
    """One decorated call, as core's callbacks see it (through a cffi handle):
    the function to compute, what computing gave, and core's report."""

    __slots__ = ("wrapped", "args", "kwargs", "serializer", "result", "raised", "decorated_elapsed", "report")

    def __init__(self, wrapped: Callable, args: Tuple, kwargs: Dict, serializer: Callable[[Any], Any]) -> None:
        self.wrapped = wrapped
        self.args = args
        self.kwargs = kwargs
        self.serializer = serializer
        self.result: Any = _NOTHING  # the function's value, once it returned
        self.raised: Optional[BaseException] = None  # what the function (or serializer) raised
        self.decorated_elapsed = 0.0  # for the one call core does not report (see the wrapper)
        self.report: Optional[n.Report] = None  # set by n.c_hook

    def compute(self, output: Any) -> int:
        """Calls the function and writes its serialized value to `output`:
        0 to store it; 1 when nothing can be stored (the function raised, or
        its value cannot be serialized), which makes core give the ticket up."""
        started = time.perf_counter()
        try:
            self.result = self.wrapped(*self.args, **self.kwargs)
        except BaseException as e:  # re-raised to the caller once core has given up
            self.raised = e
            return 1
        self.decorated_elapsed = time.perf_counter() - started
        try:
            produced = self.serializer(self.result)
            serialized = None if produced is None else n.value_bytes(produced)
        except Exception:
            LOGGER.warning("error while serializing cache value => cache bypassed", exc_info=True)
            return 1
        except BaseException as e:  # an interrupt: re-raised too
            self.raised = e
            return 1
        if serialized is None:
            return 1
        return 0 if lib.rtc_output_write(output, n.buffer(serialized), len(serialized)) == n.OK else 1


@ffi.callback("int(void *, rtc_output *)", error=1)
def _compute(userdata: Any, output: Any) -> int:
    return ffi.from_handle(userdata).compute(output)


def _recompute(
    native: Any, call: _Call, ckey: str, tags: Iterable[str], lifetime: int, info: CacheInfo
) -> Any:
    """Computes the value again and stores it with a plain set: for bytes under
    the key that this unserializer cannot read (another program's, say), as
    the reference does. Fills `info`'s miss fields."""
    started = time.perf_counter()
    res = call.wrapped(*call.args, **call.kwargs)
    info.decorated_elapsed = time.perf_counter() - started
    try:
        produced = call.serializer(res)
        data = None if produced is None else n.value_bytes(produced)
    except Exception:
        LOGGER.warning("error while serializing cache value => cache bypassed", exc_info=True)
        return res
    if data is not None:
        info.serialized_size = len(data)
        key_b = n.text("key", ckey)
        tags_c, tags_len, _keep = n.call_tags(tags)
        code = lib.rtc_cache_set(native, key_b, len(key_b), n.buffer(data), len(data), tags_c, tags_len, lifetime)
        if code != n.OK:
            _bypassed("when setting a key", n.last_error(code))
    return res


def _bypassed(what: str, error: n.CacheError) -> None:
    SERVICE_LOGGER.warning("cache exception %s => cache bypassed (%s)", what, error, exc_info=(n.CacheError, error, None))


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
        if ckey is None or full_tag_names is None:
            # The cache is bypassed before librtc is asked (the warning is
            # logged): the function's value, reported as the reference does.
            before_decorated = time.perf_counter()
            res = wrapped(*args, **kwargs)
            if ckey:
                cache_info.decorated_elapsed = time.perf_counter() - before_decorated
                cache_info.elapsed = time.perf_counter() - before
                _call_hook(hook, ckey, [], cache_info, hook_userdata)
            return res

        call = _Call(wrapped, args, kwargs, serializer)
        handle = ffi.new_handle(call)  # alive until core's callbacks are done
        options = _options(ckey, n.tag_names(full_tag_names), lock, lock_timeout_ms, lifetime, handle)
        value_out = ffi.new("rtc_value **")
        cache = native()
        code = lib.rtc_cache_get_or_compute(cache, options, _compute, handle, value_out)
        value = n.take_value(value_out) if code == n.OK else None
        report = call.report
        if report is not None and report.error is not None:
            _bypassed("during a decorated call", report.error)
        elif code not in (n.OK, n.COMPUTE_FAILED):
            _bypassed("during a decorated call", n.last_error(code))

        # Core has given the ticket up (and freed its lock) by now: what the
        # function raised goes to the caller as is, unless core served the
        # fail-safe value instead (an interrupt is re-raised whatever happened).
        raised = call.raised
        if raised is not None:
            if value is None or not isinstance(raised, Exception) or call.result is not _NOTHING:
                raise raised
            LOGGER.warning("the decorated function raised => the fail-safe value is returned", exc_info=raised)
        after = time.perf_counter()
        if call.result is not _NOTHING:
            res = call.result  # this call computed it (stored or not)
        elif value is not None:  # a hit, another caller's value, or the fail-safe value
            try:
                res = unserializer(value)
                unreadable = False
            except Exception:
                LOGGER.warning("error while unserializing cache value => cache bypassed", exc_info=True)
                unreadable = True
            if unreadable:
                if raised is not None:
                    raise raised  # the fail-safe value is unreadable too
                res = _recompute(cache, call, ckey, full_tag_names, lifetime, cache_info)
                if report is not None:
                    report.hit = False
                    report.elapsed += time.perf_counter() - after
        else:  # librtc failed before computing (logged above): bypassed
            started = time.perf_counter()
            res = wrapped(*args, **kwargs)
            call.decorated_elapsed = time.perf_counter() - started

        if report is not None:
            _apply_report(cache_info, report)
        else:
            # Core reports every call except one it gave up with no error to
            # tell: a value that cannot be stored (its serializer failed or
            # returned None). Reported here, a miss, as the reference does.
            cache_info.decorated_elapsed = call.decorated_elapsed
            cache_info.elapsed = time.perf_counter() - before
            cache_info.lock_full_miss = lock
        _call_hook(hook, ckey, full_tag_names, cache_info, hook_userdata)
        return res

    return wrapper
