"""Middleware of the project."""

from __future__ import annotations

import logging
import sys

from django.contrib import messages
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views import defaults

from core.errors import NotAllowed

PRIVATE_NO_STORE = "private, no-store"


def private_no_store(get_response):
    """Every answer the application makes (admin pages, the field page, the API, files on tickets, errors) is
    about people: customers' names, phones and addresses, staff. None may be kept by a shared cache, a proxy or
    the browser's disk, so each carries ``Cache-Control: private, no-store`` unless its view set its own (the
    admin's pages already say ``no-store, private``). Static files are served before this (WhiteNoise, higher
    in ``MIDDLEWARE``) and keep their long caching."""

    def middleware(request):
        response = get_response(request)
        if "Cache-Control" not in response:
            response["Cache-Control"] = PRIVATE_NO_STORE
        return response

    return middleware


class ServiceRefusalMiddleware:
    """A service that refuses its actor (``crm.permissions.NotAllowed``: a permission the role lacks, a unit
    the user does not serve) while the user acts in the admin: the reason comes back as an error message on
    the page they acted from, instead of a bare 403 page. The service refused before writing anything, and
    its transaction rolled back. Pages the admin itself refuses to open stay 403."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exc):
        if not isinstance(exc, NotAllowed) or request.method != "POST":
            return None
        if not request.path.startswith(reverse("admin:index")):
            return None
        messages.error(request, str(exc))
        return HttpResponseRedirect(request.get_full_path())


# Seconds a client is asked to wait before trying again while the database is unavailable.
DATABASE_RETRY_AFTER = 10


def database_unavailable_response(request, exc):
    """The answer while the database cannot be reached (a restart, a failover, a full connection pool): 503 with
    ``Retry-After``, JSON on the API, a short page elsewhere; it renders nothing that needs the database."""
    logging.getLogger("tongdai.database").error(
        "database unavailable during %s %s: %s: %s",
        request.method,
        request.path,
        exc.__class__.__name__,
        exc,
        exc_info=exc,
    )
    message = _("The system is briefly unavailable (database). Please try again in a few seconds.")
    if request.path.startswith("/api/"):
        response = JsonResponse({"detail": message}, status=503)
    else:
        response = HttpResponse(message, status=503, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(DATABASE_RETRY_AFTER)
    response["Cache-Control"] = PRIVATE_NO_STORE
    return response


class DatabaseUnavailableMiddleware:
    """A database error of the connection (``OperationalError``, ``InterfaceError``: the server restarting,
    unreachable, or the connection lost) during a view answers 503 with ``Retry-After`` instead of a 500. The
    drivers raise the same classes for other passing conditions (a statement or lock timeout, a deadlock, SQLite's
    "database is locked"), for which trying again is right too; the full error is logged. An error of the data
    (``IntegrityError``, ``DataError``…) is not this, and stays an error."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, OperationalError | InterfaceError):
            return database_unavailable_response(request, exception)
        return None


def server_error(request):
    """``handler500``: a database connection error raised outside a view (in a middleware: the session, the
    user) answers as ``DatabaseUnavailableMiddleware`` does; any other error gets Django's 500 page."""
    exc = sys.exc_info()[1]
    if isinstance(exc, OperationalError | InterfaceError):
        return database_unavailable_response(request, exc)
    return defaults.server_error(request)
