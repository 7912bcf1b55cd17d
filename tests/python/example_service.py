"""A Python service caching with redis-tagged-cache 0.12.1 in a cache it
shares with rtc (the example of ffi/python/README.md, whose transcript
tests/tests/python_interop.rs runs).

usage: example_service.py REDIS_PORT USER_ID
"""
import sys

from rtc import RedisTaggedCache

cache = RedisTaggedCache(
    host="127.0.0.1",
    port=int(sys.argv[1]),
    namespace="shop",  # the same namespace as the C program and the rtc command
    serializer=lambda value: value,  # identity: values are bytes, stored as they are,
    unserializer=lambda data: data,  # so rtc (C, Rust, the rtc command) reads them
)


@cache.decorator(
    key=lambda user_id: f"user:{user_id}",  # a key rtc can name (not one derived from this file's path)
    tags=lambda user_id: ["users", f"user:{user_id}"],
    lock=True,
)
def load_user(user_id: int) -> bytes:
    print(f"python: loading user {user_id} from the database")
    return f'{{"id": {user_id}, "name": "Ada"}}'.encode()


print("python:", load_user(int(sys.argv[2])).decode())
