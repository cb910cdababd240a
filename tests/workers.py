"""Real Celery worker processes on Redis, for tests that prove restartability.

``celery_worker`` starts ``celery worker`` as a child process against the test database
(committed data: use ``transactional_db``) and the Redis broker, on a queue private to the
test, and stops it afterwards.  ``celery_worker.kill()`` SIGKILLs it mid-task, as an
out-of-memory killer would; ``celery_worker.restart()`` starts a fresh one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from heatutility.celery import app as celery_app

ROOT = Path(__file__).resolve().parent.parent


class WorkerProcess:
    def __init__(self, *, queue: str, concurrency: int, env: dict[str, str], log_dir: Path):
        self.queue = queue
        self.concurrency = concurrency
        self.env = env
        self.log_dir = log_dir
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = open(self.log_dir / f"worker-{self.starts}.log", "w")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "heatutility",
                "worker",
                "--pool",
                "prefork",
                "--concurrency",
                str(self.concurrency),
                "--queues",
                self.queue,
                "--hostname",
                f"{self.queue}-{self.starts}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel",
                "INFO",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        name = f"{self.queue}-{self.starts}@"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"celery worker exited: {self.log()}")
            replies = celery_app.control.ping(timeout=0.5) or []
            if any(next(iter(r)).startswith(name) for r in replies):
                return
        raise RuntimeError(f"celery worker did not start: {self.log()}")

    def log(self) -> str:
        return (self.log_dir / f"worker-{self.starts}.log").read_text()[-4000:]

    def kill(self) -> None:
        """SIGKILL the worker and its pool children at once, mid-task."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)

    def restart(self) -> None:
        self.kill()
        self.start()


@pytest.fixture
def celery_worker(transactional_db, tmp_path):
    """A real worker process on Redis, consuming a queue private to this test."""
    queue = f"test-{uuid.uuid4().hex[:10]}"
    db = connection.settings_dict
    env = os.environ.copy()
    env.update(
        {
            "DATABASE_URL": (
                f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
            ),
            "REDIS_URL": settings.REDIS_URL,
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "HEATUTILITY_MEDIA_ROOT": str(settings.MEDIA_ROOT),
            # the test's retention window (tests.retention), not the default's
            "HEATUTILITY_READINGS_RETENTION_YEARS": str(settings.READINGS_RETENTION_YEARS),
            "PYTHONPATH": str(ROOT),
        }
    )
    if db.get("PASSWORD"):
        env["PGPASSWORD"] = db["PASSWORD"]
    previous = (celery_app.conf.task_always_eager, celery_app.conf.task_default_queue)
    celery_app.conf.task_always_eager = False
    celery_app.conf.task_default_queue = queue
    worker = WorkerProcess(queue=queue, concurrency=2, env=env, log_dir=tmp_path)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()
        celery_app.conf.task_always_eager, celery_app.conf.task_default_queue = previous
        with celery_app.connection_for_write() as conn:
            conn.default_channel.queue_purge(queue)
