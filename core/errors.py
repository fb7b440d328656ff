"""Errors the plumbing and the services share."""

from django.core.exceptions import PermissionDenied


class NotAllowed(PermissionDenied):
    """A service's refusal of its actor. The API answers it 403 with its reason; in the admin it comes back
    as a message on the page the user acted from (``core.middleware.ServiceRefusalMiddleware``), whereas the
    admin's own checks (a page the user may not open) stay a 403."""
