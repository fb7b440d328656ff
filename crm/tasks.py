"""django-q2 entry points of the crm app: each calls a service and is safe to run twice."""

from crm.outbox import outbox_deliver_due


def deliver_outbox() -> int:
    return outbox_deliver_due()
