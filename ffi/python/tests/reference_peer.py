"""The reference side of the tests: runs in the venv holding redis-tagged-cache
0.12.1 from PyPI (``import rtc`` is the reference there), driven by
``conftest.Reference`` one line at a time.

usage: reference_peer.py

Each line of stdin is base64 of a pickled (mode, source) pair: mode "exec"
runs the statements, "eval" evaluates the expression, in one namespace shared
by all lines (it starts with ``rtc``, ``RedisTaggedCache``, ``CacheMiss``,
``fleet``, ``time``, ``threading`` and ``say``). Each answer is one line,
base64 of a pickled ("ok", value) or ("error", "Type: message"). ``say(obj)``
writes an extra ("event", obj) line at once, for a test waiting on the peer.
The first line out is ("ok", the installed reference's version).
"""

import base64
import os
import pickle
import sys
import threading
import time
import traceback
from importlib.metadata import version

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fleet  # noqa: E402  (the decorated functions both sides share, by file path)
import rtc  # noqa: E402
from rtc import CacheMiss, RedisTaggedCache  # noqa: E402

OUT = threading.Lock()


def send(obj):
    line = base64.b64encode(pickle.dumps(obj)).decode() + "\n"
    with OUT:
        sys.stdout.write(line)
        sys.stdout.flush()


def say(obj):
    send(("event", obj))


def main():
    env = {
        "rtc": rtc,
        "RedisTaggedCache": RedisTaggedCache,
        "CacheMiss": CacheMiss,
        "fleet": fleet,
        "time": time,
        "threading": threading,
        "say": say,
    }
    if "site-packages" not in rtc.__file__ or version("redis-tagged-cache") != "0.12.1":
        sys.exit(f"reference_peer.py: rtc is {rtc.__file__}, not redis-tagged-cache 0.12.1")
    send(("ok", version("redis-tagged-cache")))
    for line in sys.stdin:
        mode, source = pickle.loads(base64.b64decode(line))
        try:
            if mode == "exec":
                exec(source, env)
                result = None
            else:
                result = eval(source, env)
            send(("ok", result))
        except Exception as e:
            traceback.print_exc()
            send(("error", f"{type(e).__name__}: {e}"))


if __name__ == "__main__":
    main()
