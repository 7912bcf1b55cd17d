"""Fixtures: a real redis-server per session on a free loopback port, the
reference (redis-tagged-cache 0.12.1 from PyPI, in its own venv) driven as a
subprocess, and unique namespaces so tests never see each other's entries."""

import base64
import os
import pickle
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterator, List, Optional

import pytest
import redis

from rtc import RedisTaggedCache

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parents[2]  # ffi/python/tests -> the workspace
REFERENCE_VENV = Path(os.environ.get("RTC_PY_VENV") or ROOT / "target" / "py-venv")
DEADLINE = 10.0  # seconds for a server or peer to start or answer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A redis-server on a free loopback port, no persistence, killed at the end."""

    def __init__(self) -> None:
        exe = os.environ.get("RTC_REDIS_SERVER") or shutil.which("redis-server")
        if not exe:
            pytest.fail("redis-server is not installed: run tests/run.sh, which installs it")
        self.dir = tempfile.mkdtemp(prefix="rtc-py-redis-")
        self.port = free_port()
        self.log = Path(self.dir) / "redis.log"
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.dir, "--logfile", str(self.log)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        client = self.client()
        end = time.monotonic() + DEADLINE
        while True:
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                pass
            if self.proc.poll() is not None or time.monotonic() > end:
                self.stop()
                pytest.fail(f"redis-server did not start; log:\n{self.log.read_text() if self.log.exists() else ''}")
            time.sleep(0.02)

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=DEADLINE)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Reference:
    """One reference process (tests/reference_peer.py in the reference's venv)."""

    def __init__(self) -> None:
        python = REFERENCE_VENV / "bin" / "python"
        if not python.exists():
            pytest.fail(f"no reference venv at {REFERENCE_VENV}: run `bash tests/python/setup.sh`")
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [str(python), str(TESTS / "reference_peer.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            cwd=str(TESTS),
        )
        self.answers: "queue.Queue[Any]" = queue.Queue()
        self.events: "queue.Queue[Any]" = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.version = self._answer()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            kind, value = pickle.loads(base64.b64decode(line))
            (self.events if kind == "event" else self.answers).put((kind, value))
        self.answers.put(("error", "the reference process exited"))

    def _stderr(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode("utf-8", "replace")

    def _answer(self, timeout: float = DEADLINE) -> Any:
        try:
            kind, value = self.answers.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"the reference did not answer within {timeout}s; stderr:\n{self._stderr()}")
        if kind != "ok":
            pytest.fail(f"the reference failed: {value}\n{self._stderr()}")
        return value

    def send(self, mode: str, source: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(base64.b64encode(pickle.dumps((mode, source))) + b"\n")
        self.proc.stdin.flush()

    def run(self, source: str) -> None:
        """Executes statements in the reference's namespace."""
        self.send("exec", source)
        self._answer()

    def eval(self, source: str, timeout: float = DEADLINE) -> Any:
        """Evaluates an expression in the reference and returns its (pickled) value."""
        self.send("eval", source)
        return self._answer(timeout)

    def answer(self, timeout: float = DEADLINE) -> Any:
        """Waits for the answer of a command sent with `send`."""
        return self._answer(timeout)

    def event(self, timeout: float = DEADLINE) -> Any:
        """Waits for the next say(obj) of the reference."""
        try:
            return self.events.get(timeout=timeout)[1]
        except queue.Empty:
            pytest.fail(f"no event from the reference within {timeout}s; stderr:\n{self._stderr()}")

    def log(self) -> str:
        """What the reference wrote to stderr (its logged warnings)."""
        return self._stderr()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    yield server
    server.stop()


@pytest.fixture
def redis_client(redis_server: RedisServer) -> redis.Redis:
    return redis_server.client()


@pytest.fixture
def namespace() -> str:
    return "ns-" + uuid.uuid4().hex


@pytest.fixture
def cache(redis_server: RedisServer, namespace: str) -> RedisTaggedCache:
    return RedisTaggedCache(host="127.0.0.1", port=redis_server.port, namespace=namespace)


@pytest.fixture
def reference_factory(redis_server: RedisServer, namespace: str) -> Iterator[Any]:
    """Starts reference processes, each with `cache` on the test's server and namespace."""
    started: List[Reference] = []

    def start(**options: Any) -> Reference:
        ref = Reference()
        started.append(ref)
        args = ", ".join(f"{k}={v!r}" for k, v in options.items())
        ref.run(
            f"cache = RedisTaggedCache(host='127.0.0.1', port={redis_server.port}, "
            f"namespace={namespace!r}{', ' + args if args else ''})"
        )
        return ref

    yield start
    for ref in started:
        ref.close()


@pytest.fixture
def reference(reference_factory: Any) -> Any:
    """The reference, with `cache` on the test's server and namespace."""
    return reference_factory()


class SilentServer:
    """A TCP server that accepts connections and never answers: a hung Redis."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns: List[socket.socket] = []
        self.peers: List[Any] = []  # the address each accepted connection came from
        self._probes: List[socket.socket] = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            self.peers.append(peer)

    def connections(self) -> int:
        """Returns how many connections clients have made so far, all of them
        accepted: the accept thread may lag behind the kernel, so a probe
        connection is made and waited for (the backlog is accepted in order),
        and not counted."""
        probe = socket.create_connection(("127.0.0.1", self.port), timeout=DEADLINE)
        self._probes.append(probe)
        mine = probe.getsockname()
        end = time.monotonic() + DEADLINE
        while mine not in self.peers:
            assert time.monotonic() < end, "the silent server never accepted its probe"
            time.sleep(0.001)
        probes = {p.getsockname() for p in self._probes}
        return sum(1 for peer in self.peers if peer not in probes)

    def close(self) -> None:
        """Stops listening and closes every connection: a client waiting for
        an answer gets an end of file at once."""
        self.closed = True
        self.sock.close()
        for c in self.conns + self._probes:
            c.close()


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on: a Redis that is down."""
    return free_port()


def python_executable() -> Optional[str]:
    return sys.executable
