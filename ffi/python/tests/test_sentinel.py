"""Redis Sentinel from Python: a real sentinel (``redis-server --sentinel``)
monitoring the session's redis-server names the master, and the package
finds it there (its host and port set to an address nothing listens on).
The failover itself is tested once, in core (tests/tests/sentinel.rs): the
package hands the same fields to the same librtc."""

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import redis

from conftest import DEADLINE, RedisServer, free_port
from rtc import CacheMiss, RedisTaggedCache


class Sentinel:
    """One sentinel monitoring `master` as "m", with its own config file."""

    def __init__(self, master: RedisServer) -> None:
        exe = os.environ.get("RTC_REDIS_SERVER") or shutil.which("redis-server")
        assert exe, "redis-server is not installed"
        self.dir = tempfile.mkdtemp(prefix="rtc-py-sentinel-")
        self.port = free_port()
        conf = Path(self.dir) / "sentinel.conf"
        conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\nprotected-mode no\ndir {self.dir}\n"
            f"logfile {self.dir}/sentinel.log\nsentinel monitor m 127.0.0.1 {master.port} 1\n"
        )
        # The configuration file must come first.
        self.proc = subprocess.Popen([exe, str(conf), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=DEADLINE)
        end = time.monotonic() + DEADLINE
        while True:  # no event tells when a sentinel has judged its master: poll
            try:
                if client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "m"):
                    return
            except redis.ConnectionError:
                pass
            assert self.proc.poll() is None and time.monotonic() < end, "the sentinel did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def sentinel(redis_server: RedisServer) -> Iterator[Sentinel]:
    s = Sentinel(redis_server)
    yield s
    s.stop()


def test_the_master_is_found_through_sentinel(sentinel: Sentinel, redis_client: Any, namespace: str) -> None:
    cache = RedisTaggedCache(
        namespace=namespace,
        host="127.0.0.1",
        port=free_port(),  # ignored with Sentinel: nothing listens there
        sentinel_nodes=[f"redis://127.0.0.1:{sentinel.port}"],
        sentinel_master_name="m",
    )
    cache.set("k", {"v": 1}, tags=["t"])
    assert cache.get("k", tags=["t"]) == {"v": 1}
    # The entry is on the master the sentinel names, beside the tag key.
    assert any(redis_client.scan_iter(match="rtc:*:t:*"))
    cache.invalidate("t")
    with pytest.raises(CacheMiss):
        cache.get("k", tags=["t"])
