"""Errors the plumbing and the services share."""

from django.core.exceptions import PermissionDenied, ValidationError


class NotAllowed(PermissionDenied):
    """A service's refusal of its actor. The API answers it 403 with its reason; in the admin it comes back
    as a message on the page the user acted from (``core.middleware.ServiceRefusalMiddleware``), whereas the
    admin's own checks (a page the user may not open) stay a 403."""


def renamed(exc: ValidationError, names: dict[str, str]) -> ValidationError:
    """The same refusal, its fields named as the caller names them (a form's field, a file's column): a service
    names its own arguments (``value``, ``at``), a page or an import shows the refusal beside what it called it."""
    if not hasattr(exc, "error_dict"):
        return exc
    keyed: dict[str, list] = {}
    for field, errors in exc.error_dict.items():  # two of the service's names may be one of the caller's
        keyed.setdefault(names.get(field, field), []).extend(errors)
    return ValidationError(keyed)
