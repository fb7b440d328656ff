"""django-q2 entry points of the crm app: each calls a service and is safe to run twice."""

from django.core.exceptions import PermissionDenied
from django.core.management import call_command

from crm.outbox import outbox_deliver_due


def deliver_outbox() -> int:
    return outbox_deliver_due()


def clear_expired_sessions() -> None:
    """Delete the sessions that have expired (Django's ``clearsessions``)."""
    call_command("clearsessions")


def delete_expired_tokens() -> int:
    """Delete the API tokens that have expired (they are refused already; the table keeps only live ones)."""
    from crm.tokens import api_tokens_delete_expired

    return api_tokens_delete_expired()


def cluster_heartbeat() -> None:
    """Record that this host's task cluster runs tasks (every minute; the health check reads it)."""
    from crm.services import cluster_heartbeat_record

    cluster_heartbeat_record()


def refused_task(name: str) -> None:
    """What the cluster runs instead of a task naming a function tongdai does not register
    (``core.task_registry``): it fails, and the failure says why."""
    raise PermissionDenied(f"{name} is not a registered task function of tongdai; it was not run.")
