"""Reports and exports read from a PostgreSQL replica when one is configured (``DATABASE_REPLICA_URL``): a
dashboard of a year of tickets or an export of a million invoices then takes nothing from the primary that
serves the agents. Everything else, and every write, stays on ``default``.

The reads that may go there say so with ``replica_reads()`` (a context manager) or ``on_replica(chunks)`` (for
a streamed response, whose rows are read while it is sent); the router sends the reads made inside to the
``replica`` alias while ``TONGDAI_REPLICA_READS`` is on. A replica is a second or so behind: a report or an
export does not need the write made a moment ago, an agent's screen does, so nothing else reads there.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from django.conf import settings

REPLICA = "replica"
_reporting: contextvars.ContextVar[bool] = contextvars.ContextVar("tongdai_replica_reads", default=False)


def in_replica_reads() -> bool:
    """Whether the code running now is inside ``replica_reads()`` (its reads go to the replica when in use)."""
    return _reporting.get()


def replica_in_use() -> bool:
    return settings.TONGDAI_REPLICA_READS and REPLICA in settings.DATABASES


@contextmanager
def replica_reads() -> Iterator[None]:
    """The reads made inside go to the replica (when one is in use)."""
    token = _reporting.set(True)
    try:
        yield
    finally:
        _reporting.reset(token)


def on_replica[T](chunks: Iterable[T]) -> Iterator[T]:
    """``chunks`` produced with their reads on the replica: for a streamed response, read while it is sent."""
    with replica_reads():
        yield from chunks


class ReplicaRouter:
    """Reads inside ``replica_reads()`` go to the replica; all else to ``default``; migrations to ``default``
    only (the replica follows the primary's schema by replication)."""

    def db_for_read(self, model, **hints) -> str | None:
        if in_replica_reads() and replica_in_use():
            return REPLICA
        return None

    def db_for_write(self, model, **hints) -> str | None:
        return None

    def allow_relation(self, obj1, obj2, **hints) -> bool | None:
        return True  # the same data on both

    def allow_migrate(self, db, app_label, model_name=None, **hints) -> bool | None:
        return db != REPLICA
