"""Real processes for the Celery and fault tests: Celery workers and gunicorn,
started as subprocesses on the test database and a Redis broker, and stopped by
their pid.

A test that needs a service it cannot find is skipped and says which; the
README's ``make test`` (SQLite, no Redis) skips them all.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
#: How long a real process may take to do what a test waits for.
DEADLINE = 60.0


def wait_for(condition: Callable[[], Any], what: str, timeout: float = DEADLINE) -> Any:
    """Poll ``condition`` until it returns something true, or fail saying
    ``what`` did not happen."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def require_redis() -> str:
    if not settings.REDIS_URL:
        pytest.skip("needs Redis as the Celery broker: set REDIS_URL=redis://...")
    import redis

    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis is not reachable at REDIS_URL: {type(exc).__name__}")
    return str(settings.REDIS_URL)


def require_postgres() -> None:
    if connection.vendor != "postgresql":
        pytest.skip(
            "needs PostgreSQL shared by several processes: set "
            "DATABASE_URL=postgres://..."
        )


def closed_port() -> int:
    """A local TCP port where nothing listens (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """Stop a process this module started, by its pid: SIGTERM (a worker's warm
    shutdown), SIGKILL if it does not exit in time."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


class FaultEnv:
    """One fault test's processes: its own queue and Redis prefix, the test
    database, and the workers and servers it starts."""

    def __init__(self, redis_url: str) -> None:
        import redis

        tag = uuid.uuid4().hex[:10]
        self.redis_url = redis_url
        self.queue = f"payments-ru-faults-{tag}"
        self.prefix = f"payments-ru-faults:{tag}"
        self.redis = redis.Redis.from_url(redis_url, decode_responses=True)
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def environ(self, **options: Any) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="tests.fault_settings",
            FAULTS_DB_NAME=str(connection.settings_dict["NAME"]),
            FAULTS_BROKER_URL=options.get("broker_url", self.redis_url),
            FAULTS_QUEUE=self.queue,
            FAULTS_PREFIX=self.prefix,
            FAULTS_REDIS_URL=self.redis_url,
            FAULTS_TRANSPORT_OPTIONS=json.dumps(options.get("transport", {})),
            PYTHONPATH=os.pathsep.join(
                filter(None, [str(ROOT), str(ROOT / "example_project"), env_path()])
            ),
        )
        return env

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> Any:
        log = Path(f"/tmp/{self.prefix.replace(':', '-')}-{name}.log")
        self.logs.append(log)
        with log.open("wb") as out:
            process = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        self.processes.append(process)
        return process

    def worker(
        self, pool: str = "solo", concurrency: int = 1, **options: Any
    ) -> subprocess.Popen[bytes]:
        """A Celery worker on the test's queue, ready when this returns."""
        name = f"worker{len(self.processes)}"
        process = self._spawn(
            name,
            [
                str(BIN / "celery"),
                "-A",
                "tests.fault_worker",
                "worker",
                "--pool",
                pool,
                "--concurrency",
                str(concurrency),
                "--queues",
                self.queue,
                "--hostname",
                f"{name}@{self.prefix}",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel",
                "info",
            ],
            self.environ(**options),
        )
        wait_for(
            lambda: self._ready(process),
            f"the Celery worker to start (log: {self.logs[-1]})",
        )
        return process

    def _ready(self, process: subprocess.Popen[bytes]) -> bool:
        if process.poll() is not None:
            pytest.fail(f"the worker exited: {self.logs[-1].read_text()[-3000:]}")
        return bool(self.redis.sismember(f"{self.prefix}:ready", process.pid))

    def gunicorn(self, workers: int = 4) -> str:
        """gunicorn serving the test URLs; returns its base URL once it answers."""
        port = closed_port()
        process = self._spawn(
            "gunicorn",
            [
                str(BIN / "gunicorn"),
                "--workers",
                str(workers),
                "--bind",
                f"127.0.0.1:{port}",
                "--log-level",
                "warning",
                "tests.fault_wsgi:application",
            ],
            self.environ(),
        )

        def answers() -> bool:
            if process.poll() is not None:
                pytest.fail(f"gunicorn exited: {self.logs[-1].read_text()[-3000:]}")
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", port)) == 0

        wait_for(answers, "gunicorn to listen")
        return f"http://127.0.0.1:{port}"

    def signals(self, invoice: Any) -> list[str]:
        """The ``invoice_status_changed`` the workers sent for ``invoice``."""
        return list(self.redis.lrange(f"{self.prefix}:signals:{invoice.uuid}", 0, -1))

    def queue_drained(self) -> bool:
        """No message of the test's queue is waiting or being worked on."""
        if self.redis.llen(self.queue):
            return False
        # kombu's Redis transport keeps the messages taken but not yet
        # acknowledged in one hash for the whole virtual host.
        return all(self.queue not in raw for raw in self.redis.hvals("unacked"))

    def close(self) -> None:
        for process in reversed(self.processes):
            stop(process)
        self.redis.delete(self.queue)
        keys = list(self.redis.scan_iter(f"{self.prefix}:*"))
        if keys:
            self.redis.delete(*keys)


def env_path() -> str:
    return os.environ.get("PYTHONPATH", "")


@contextmanager
def fault_env() -> Iterator[FaultEnv]:
    env = FaultEnv(require_redis())
    try:
        yield env
    finally:
        env.close()
