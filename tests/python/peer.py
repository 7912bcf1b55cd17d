"""The Python side of rtc's interop tests: the real redis-tagged-cache 0.12.1,
driven one JSON line at a time by tests/tests/python_interop.rs.

usage: peer.py PORT NAMESPACE [lifetime_for_tags=N|none]

The cache is RedisTaggedCache(host="127.0.0.1", port=PORT, namespace=NAMESPACE)
with an identity bytes serializer, so values cross as raw bytes. Each line of
stdin is one command, a JSON object with "op"; each answer is one JSON line on
stdout. Values are hex strings (any bytes cross), keys and tags JSON strings.

  {"op": "set", "key": K, "value": HEX, "tags": [T...]}        -> {"ok": bool}
  {"op": "get", "key": K, "tags": [T...]}                      -> {"hit": bool, "value": HEX|null}
  {"op": "delete", "key": K, "tags": [T...]}                   -> {"ok": bool}
  {"op": "invalidate", "tags": [T...]}                         -> {"ok": bool}
  {"op": "invalidate_all"}                                     -> {"ok": bool}
  {"op": "compute", "key": K, "tags": [T...], "value": HEX,
   "lock": bool, "lock_timeout": S, "hold": bool}
      The decorator (key= a function returning K) around a function that
      returns HEX's bytes. With "hold", the function first prints
      {"event": "locked"} and waits for a line on stdin before returning.
      -> {"value": HEX, "computed": bool, "info": {...the hook's CacheInfo}}
  {"op": "pause_tag_creation", "on": bool}
      While on, each time the reference reads tag values (its MGET) and finds
      some missing, it prints {"event": "tags_missing", "n": N} and waits for
      a line on stdin before it creates them (its plain SET).
      -> {"ok": true}

The first line out is {"ready": true, "version": the installed reference's version}.
"""

import json
import sys
from importlib.metadata import version

from rtc import CacheMiss, RedisTaggedCache


def identity(value):
    return value


def reply(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def wait_for_line(what):
    line = sys.stdin.readline()
    if not line:
        sys.exit(f"peer.py: stdin closed while {what}")


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: peer.py PORT NAMESPACE [lifetime_for_tags=N|none]")
    options = {}
    for arg in sys.argv[3:]:
        name, _, value = arg.partition("=")
        if name != "lifetime_for_tags":
            sys.exit(f"peer.py: unknown option {arg}")
        options[name] = None if value == "none" else int(value)
    infos = []

    def hook(key, tags, cache_info, userdata=None):
        infos.append(cache_info)

    cache = RedisTaggedCache(
        host="127.0.0.1",
        port=int(sys.argv[1]),
        namespace=sys.argv[2],
        serializer=identity,
        unserializer=identity,
        cache_hook=hook,
        **options,
    )
    reply({"ready": True, "version": version("redis-tagged-cache")})
    paused = [False]

    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd["op"]
        tags = cmd.get("tags", [])
        if op == "set":
            reply({"ok": cache.set(cmd["key"], bytes.fromhex(cmd["value"]), tags=tags)})
        elif op == "get":
            try:
                value = cache.get(cmd["key"], tags=tags)
                reply({"hit": True, "value": value.hex()})
            except CacheMiss:
                reply({"hit": False, "value": None})
        elif op == "delete":
            reply({"ok": cache.delete(cmd["key"], tags=tags)})
        elif op == "invalidate":
            reply({"ok": cache.invalidate(tags)})
        elif op == "invalidate_all":
            reply({"ok": cache.invalidate_all()})
        elif op == "compute":
            computed = []
            value = bytes.fromhex(cmd["value"])
            hold = cmd.get("hold", False)

            @cache.decorator(
                key=lambda: cmd["key"],
                tags=tags,
                lock=cmd.get("lock", False),
                lock_timeout=cmd.get("lock_timeout", 5),
            )
            def compute():
                computed.append(True)
                if hold:
                    reply({"event": "locked"})
                    wait_for_line("holding the lock")
                return value

            del infos[:]
            result = compute()
            info = infos[-1] if infos else None
            reply({
                "value": result.hex(),
                "computed": bool(computed),
                "info": None if info is None else {
                    "hit": info.hit,
                    "lock_full_hit": info.lock_full_hit,
                    "lock_full_miss": info.lock_full_miss,
                    "lock_waiting_ms": info.lock_waiting_ms,
                },
            })
        elif op == "pause_tag_creation":
            client = cache._service.metadata_service.adapter.redis_client
            if "mget" not in vars(client):  # wrap the client's bound method once
                real_mget = client.mget

                def paused_mget(keys, *args):
                    values = real_mget(keys, *args)
                    missing = sum(1 for v in values if v is None)
                    if missing and paused[0]:
                        reply({"event": "tags_missing", "n": missing})
                        wait_for_line("paused before creating tags")
                    return values

                client.mget = paused_mget
            paused[0] = cmd["on"]
            reply({"ok": True})
        else:
            sys.exit(f"peer.py: unknown op {op!r}")


if __name__ == "__main__":
    main()
