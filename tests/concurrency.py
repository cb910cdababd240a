"""Two real database connections in one test: a function run in a thread, and a check
that PostgreSQL shows that thread's session waiting for a lock.

For tests that force an interleaving (``@pytest.mark.django_db(transaction=True)``):
one side is paused inside its transaction (:class:`Pause`, monkeypatched), the other is
started with :func:`in_thread`, :func:`waits_for_a_lock` confirms it queues behind the
first, and :func:`finish` waits for both threads.
"""

from __future__ import annotations

import threading
import time

from django.db import connection, connections


def in_thread(function, **arguments) -> tuple[threading.Thread, dict]:
    """``function(**arguments)`` started in a thread with its own connection; the dict
    gets its ``value`` or the ``error`` it raised once the thread ends."""
    outcome: dict = {}

    def run():
        try:
            outcome["value"] = function(**arguments)
        except Exception as exc:  # the test looks at it
            outcome["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def waits_for_a_lock(thread: threading.Thread, statement: str, *, seconds: float = 30) -> bool:
    """Whether PostgreSQL shows a session waiting for a lock in ``statement`` (a part of
    its text; "" for any) while ``thread`` is still at it, within ``seconds``."""
    deadline = time.monotonic() + seconds
    while thread.is_alive() and time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query LIKE %s",
                [f"%{statement}%"],
            )
            if cursor.fetchone()[0]:
                return True
        time.sleep(0.02)
    return False


class Pause:
    """Stop a thread inside ``function`` (before or after it runs) until released."""

    def __init__(self, monkeypatch, owner, name: str, *, after: bool = False):
        self.reached, self.released = threading.Event(), threading.Event()
        real = getattr(owner, name)

        def paused(*args, **kwargs):
            result = real(*args, **kwargs) if after else None
            if not self.reached.is_set():
                self.reached.set()
                assert self.released.wait(30), "never released"
            return result if after else real(*args, **kwargs)

        monkeypatch.setattr(owner, name, paused)

    def wait(self) -> None:
        assert self.reached.wait(30), "the paused side never got there"


def finish(*threads: threading.Thread) -> None:
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive()
