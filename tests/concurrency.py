"""Two connections at once in a test (PostgreSQL's row locks, a clerk's save during an import): work run in a
thread of its own, which opens its own database connection and closes it when done."""

from __future__ import annotations

import threading

from django.db import connection


def in_thread(work) -> tuple[threading.Thread, dict]:
    """Start ``work`` in a thread; its outcome dict gets ``result``, or the ``error`` it raised, for the test."""
    outcome: dict = {}

    def run():
        try:
            outcome["result"] = work()
        except Exception as exc:  # reported to the test
            outcome["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def in_another_connection(work, *, timeout: float = 30) -> dict:
    """Run ``work`` in a thread and wait for it (at most ``timeout`` seconds): its outcome dict."""
    thread, outcome = in_thread(work)
    thread.join(timeout)
    assert not thread.is_alive()
    return outcome
