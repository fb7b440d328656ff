"""django-q2 entry points of the tickets app: each calls a service and is safe to run twice."""

from tickets.sla import callback_sweep, sla_sweep


def sweep_sla() -> dict[str, int]:
    return sla_sweep()


def sweep_callbacks() -> dict[str, int]:
    return callback_sweep()
