"""Middleware of the project."""

from __future__ import annotations

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
