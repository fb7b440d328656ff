"""Errors the services raise become 400 responses with their messages, never 500s; a record not found is a 404
"not found" in the caller's language, whichever the endpoint; a request Django refuses to read (a body over
``DATA_UPLOAD_MAX_MEMORY_SIZE``, too many fields or files) gets the API's JSON answer with the reason, not the
site's HTML error page."""

import logging

from django.conf import settings
from django.core.exceptions import (
    PermissionDenied,
    RequestDataTooBig,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from django.utils.translation import gettext as _
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


def exception_handler(exc, context):
    if isinstance(exc, Http404):
        # Django's own text ("No Ticket matches the given query.") is English and names the model: the API's
        # 404 says "not found" in the caller's language
        exc = NotFound()
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        return Response(detail, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, PermissionDenied) and str(exc):
        # a service refused the caller (crm.permissions.require): 403 with the service's reason
        return Response({"detail": str(exc)}, status=status.HTTP_403_FORBIDDEN)
    if isinstance(exc, RequestDataTooBig | TooManyFieldsSent | TooManyFilesSent):
        # Logged where Django logs them (its security logger), answered as the API answers.
        logging.getLogger(f"django.security.{exc.__class__.__name__}").warning("%s", exc)
        if isinstance(exc, RequestDataTooBig):
            message = _("The request body is larger than %(n)s bytes; send less.") % {
                "n": f"{settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,}"
            }
            return Response({"detail": message}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        return Response(
            {"detail": _("The request has too many fields or files.")}, status=status.HTTP_400_BAD_REQUEST
        )
    return drf_exception_handler(exc, context)
