"""librtc, loaded through cffi's ABI mode, and the conversions every call needs.

cffi releases the GIL around each call into librtc, so Redis round trips of
one thread never block the others. Buffers handed to librtc are kept alive by
the caller's locals for the duration of the call only: librtc copies what it
keeps.
"""

import os
import threading
from time import monotonic_ns
from typing import Any, Iterable, List, Optional, Sequence, Tuple

from rtc._ffi import ffi

lib = ffi.dlopen(os.path.join(os.path.dirname(__file__), "librtc.so"))

OK = lib.RTC_RESULT_OK
MISS = lib.RTC_RESULT_MISS
COMPUTE_FAILED = lib.RTC_RESULT_COMPUTE_FAILED
LIFETIME_DEFAULT = lib.RTC_LIFETIME_DEFAULT
LIFETIME_FOREVER = lib.RTC_LIFETIME_FOREVER

# librtc refuses longer lifetimes (100 years) and lock timeouts (one day).
MAX_LIFETIME = 3153600000
MAX_LOCK_TIMEOUT_S = 86400

NULL = ffi.NULL


class CacheError(Exception):
    """A librtc call failed (Redis down or slow, a refused value, ...).

    Never raised to the user: it is what the warning of a bypassed operation
    carries as its cause (``exc_info``), as the reference's CacheException is.
    """

    def __init__(self, code: int, message: str):
        self.code = code
        self.name = result_name(code)
        super().__init__(f"{self.name}: {message}")


def result_name(code: int) -> str:
    """Returns the name of a result code, e.g. RTC_RESULT_TIMEOUT."""
    return ffi.string(lib.rtc_result_name(code)).decode("ascii", "replace")


def last_error(code: int) -> CacheError:
    """Returns the error of the last librtc call of this thread."""
    message = ffi.string(lib.rtc_last_error_message()).decode("utf-8", "replace")
    return CacheError(code, message)


def text(what: str, value: Any) -> bytes:
    """Encodes a key or tag (str, or UTF-8 bytes) for librtc."""
    if isinstance(value, str):
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError as e:
            raise ValueError(f"rtc: the {what} {value!r} cannot be encoded as UTF-8 ({e})") from None
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value)
        try:
            value.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"rtc: the {what} {value!r} is not UTF-8 ({e})") from None
        return value
    raise TypeError(f"rtc: a {what} must be a str, not {type(value).__name__} ({value!r})")


def c_string(what: str, value: Any) -> bytes:
    """Encodes a NUL-terminated setting (namespace, host) for librtc."""
    if not isinstance(value, str):
        raise TypeError(f"rtc: {what} must be a str, not {type(value).__name__} ({value!r})")
    if "\0" in value:
        raise ValueError(f"rtc: {what} must not contain a NUL character ({value!r})")
    return text(what, value)


def buffer(data: bytes) -> Any:
    """Returns a `const uint8_t *` view of `data` (alive as long as the result)."""
    return ffi.from_buffer("uint8_t[]", data)


def tag_names(tags: Optional[Iterable[str]]) -> List[str]:
    """Lists the tags of a call as the reference reads them (None: no tags)."""
    if tags is None:
        return []
    try:
        return list(tags)
    except TypeError:
        raise TypeError(f"rtc: tags must be an iterable of str, not {type(tags).__name__} ({tags!r})") from None


# Tag arrays already built, by tag tuple: tag lists repeat, and building one
# costs more than the near cache's whole lookup. Read-only once built (librtc
# only reads them), so threads share them; bounded by clearing when full.
_TAG_ARRAYS: dict = {}
_TAG_ARRAYS_MAX = 4096


def tag_array(tags: Sequence[Any]) -> Tuple[Any, int, List[Any]]:
    """Returns (rtc_bytes array, length, buffers to keep alive) for librtc."""
    if not tags:
        return NULL, 0, []
    # Only tuples of str are ever stored, and a str never equals bytes, so a
    # hit is the same tags; unhashable tags (a bytearray) are never cached.
    try:
        key: Optional[tuple] = tuple(tags)
        cached = _TAG_ARRAYS.get(key)
    except TypeError:
        key, cached = None, None
    if cached is not None:
        return cached
    built = _build_tag_array(tags)
    if key is not None and all(type(t) is str for t in tags):
        if len(_TAG_ARRAYS) >= _TAG_ARRAYS_MAX:
            _TAG_ARRAYS.clear()
        _TAG_ARRAYS[key] = built
    return built


def call_tags(tags: Optional[Iterable[str]]) -> Tuple[Any, int, List[Any]]:
    """``tag_array(tag_names(tags))`` in one step: a list or tuple goes to
    ``tag_array`` as it is (its cache finds one already built), so a call
    copies no list of tags."""
    if tags is None:
        return NULL, 0, []
    return tag_array(tags if type(tags) is tuple or type(tags) is list else tag_names(tags))


def key_bytes(key: Any) -> bytes:
    """``text("key", key)``, an ASCII str (most keys) encoded at once."""
    if type(key) is str and key.isascii():
        return key.encode("ascii")
    return text("key", key)


def _build_tag_array(tags: Sequence[Any]) -> Tuple[Any, int, List[Any]]:
    array = ffi.new("rtc_bytes[]", len(tags))
    keep = [array]
    for i, tag in enumerate(tags):
        data = buffer(text("tag", tag))
        keep.append(data)
        array[i].data = data
        array[i].len = len(data)
    return array, len(tags), keep


def lifetime(value: Optional[int], what: str = "lifetime") -> int:
    """Converts a lifetime as the reference reads it: None is the default, 0 forever."""
    if value is None:
        return LIFETIME_DEFAULT
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"rtc: {what} must be an int number of seconds or None, not {type(value).__name__} ({value!r})")
    if value < 0 or value > MAX_LIFETIME:
        raise ValueError(f"rtc: {what} must be None, 0 (no expiry) or 1 to {MAX_LIFETIME} seconds, not {value}")
    return value


def value_bytes(value: Any) -> bytes:
    """Returns what a serializer produced as bytes, encoding str and numbers as redis-py does."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value).encode()
    if isinstance(value, float):
        return repr(value).encode()
    raise TypeError(f"the serializer returned {type(value).__name__}, not bytes")


READ_BUFFER_SIZE = 64 * 1024
"""Values up to this size are read into the thread's buffer (rtc_cache_get_into)."""


class _ReadBuffers(threading.local):
    """Per thread: the buffer rtc_cache_get_into copies a value into, and its
    out-parameters, made once (a get then makes no cdata of its own)."""

    def __init__(self) -> None:
        self.chars = ffi.new("char[]", READ_BUFFER_SIZE)
        self.buf = ffi.cast("uint8_t *", self.chars)
        self.len = ffi.new("size_t *")
        self.value = ffi.new("rtc_value **")
        self.lease = ffi.new("rtc_near_lease *")


READ = _ReadBuffers()


def read_result(read: _ReadBuffers) -> bytes:
    """The value rtc_cache_get_into returned: a copy of the thread's buffer,
    or the rtc_value it made for a value too big for it (freed here)."""
    size = read.len[0]
    if size <= READ_BUFFER_SIZE:
        return ffi.unpack(read.chars, size)
    return take_value(read.value)


# The most entries a NearMemo keeps: a memo clears when full, so a working
# set larger than this is served by librtc's near cache instead.
NEAR_MEMO_MAX_ENTRIES = 16384


class NearMemo:
    """Near-cache hits kept in Python, by key and tags as the caller gave
    them, so that a repeated get makes no call into librtc at all.

    librtc says how long each hit holds (rtc_cache_get_leased_into's lease):
    while the near cache's stamp (rtc_cache_near_stamp) reads the lease's and
    its time has not run out. Every invalidation push, flush, own write and
    loss of the tracking connection moves the stamp, so the memo is exactly
    as coherent as the near cache: the rule is core's, this only compares
    two numbers. It holds the bytes, never the unserialized value, so every
    get returns a fresh object, as without it.
    """

    __slots__ = ("cache", "stamp", "held", "max_entries", "max_bytes", "bytes")

    def __init__(self, cache: Any, stamp: Any, max_entries: int, max_bytes: int) -> None:
        self.cache = cache  # the librtc cache: the stamp lives as long as it
        self.stamp = stamp
        self.held: dict = {}
        self.max_entries = max(1, min(max_entries, NEAR_MEMO_MAX_ENTRIES))
        self.max_bytes = max_bytes
        self.bytes = 0

    @classmethod
    def of(cls, cache: Any, max_entries: int, max_bytes: int) -> "Optional[NearMemo]":
        """The memo of a librtc cache; None when it has no near cache."""
        stamp = lib.rtc_cache_near_stamp(cache)
        return None if stamp == NULL else cls(cache, stamp, max_entries, max_bytes)

    def recall(self, key: Any, tags: Any) -> Optional[bytes]:
        """The bytes held for `key` under `tags` if their lease still holds.

        One call, inlined, on the path that matters (a call costs a tenth
        of a memo hit): the key is built as `asked` builds it."""
        if type(tags) is list:
            asked: Any = (key, tuple(tags))
        elif tags is None or type(tags) is tuple:
            asked = (key, tags)
        else:
            return None
        try:
            held = self.held.get(asked)
        except TypeError:  # an unhashable key or tag (a bytearray): never kept
            return None
        if held is not None and held[0] == self.stamp[0] and monotonic_ns() < held[1]:
            return held[2]  # type: ignore[no-any-return]
        return None

    def keep(self, key: Any, tags: Any, started_ns: int, lease: Any, data: bytes) -> None:
        """Keeps `data` for `key` under `tags` under `lease` (read by a call
        that started at `started_ns`, so the deadline is never late)."""
        stamp = lease.stamp
        asked = self.asked(key, tags)
        if not stamp or asked is None:
            return
        if len(self.held) >= self.max_entries or self.bytes + len(data) > self.max_bytes:
            self.held.clear()
            self.bytes = 0
        try:
            self.held[asked] = (stamp, started_ns + lease.valid_ns, data)
        except TypeError:
            return
        self.bytes += len(data)

    @staticmethod
    def asked(key: Any, tags: Any) -> Any:
        """What a get is found by: the key and tags as given, when they can
        be looked up as they are (None, a tuple or a list of tags; not a
        one-shot iterator, which only librtc reads); else None."""
        if type(tags) is list:
            return (key, tuple(tags))
        if tags is None or type(tags) is tuple:
            return (key, tags)
        return None


def take_value(out: Any) -> bytes:
    """Copies an rtc_value into Python bytes and frees it."""
    value = out[0]
    try:
        return bytes(ffi.buffer(lib.rtc_value_data(value), lib.rtc_value_len(value)))
    finally:
        lib.rtc_value_free(value)


class Report:
    """Core's report of one get-or-compute, as its hook received it (copied:
    the rtc_cache_info is valid only during the hook call)."""

    __slots__ = (
        "hit",
        "stale",
        "elapsed",
        "decorated_elapsed",
        "lock_waiting_ms",
        "lock_full_hit",
        "lock_full_miss",
        "serialized_size",
        "error",
    )

    def __init__(self, info: Any) -> None:
        self.hit = bool(lib.rtc_cache_info_hit(info))
        self.stale = bool(lib.rtc_cache_info_stale(info))
        self.elapsed = lib.rtc_cache_info_elapsed_ns(info) / 1e9
        self.decorated_elapsed = lib.rtc_cache_info_decorated_elapsed_ns(info) / 1e9
        self.lock_waiting_ms = int(lib.rtc_cache_info_lock_waiting_ms(info))
        self.lock_full_hit = bool(lib.rtc_cache_info_lock_full_hit(info))
        self.lock_full_miss = bool(lib.rtc_cache_info_lock_full_miss(info))
        self.serialized_size = int(lib.rtc_cache_info_serialized_size(info))
        code = lib.rtc_cache_info_error(info)
        self.error: Optional[CacheError] = None
        if code != OK:
            message = ffi.string(lib.rtc_cache_info_error_message(info)).decode("utf-8", "replace")
            self.error = CacheError(code, message)


# The hook of every librtc cache the package builds. librtc calls it once per
# get-or-compute, on the calling thread, during rtc_cache_get_or_compute; the
# call's userdata (rtc_compute_options_set_hook_userdata) is a cffi handle to
# the object that keeps the report (an attribute `report`). The user's hook
# runs later, in plain Python, where its exceptions are caught and logged.
@ffi.callback("void(void *, const rtc_cache_info *)")
def c_hook(_userdata: Any, info: Any) -> None:
    try:
        call = lib.rtc_cache_info_call_userdata(info)
        if call != NULL:
            ffi.from_handle(call).report = Report(info)
    except BaseException:  # nothing may unwind into librtc
        pass
