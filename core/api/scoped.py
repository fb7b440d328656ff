"""The base of every API viewset over a scoped model: the queryset is always ``for_user(request.user)``, and a
body sent with a write is read before the action runs, so one the API cannot read (not JSON, nested deeper than
``TONGDAI_JSON_MAX_DEPTH``) is a 400 with the reason even where the action takes no body, and nothing is done."""

from rest_framework import viewsets

WRITES = {"POST", "PUT", "PATCH"}


class ScopedReadOnlyViewSet(viewsets.ReadOnlyModelViewSet):
    def get_queryset(self):
        return super().get_queryset().for_user(self.request.user)

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # authentication, permissions, throttles first
        if request.method in WRITES and hasattr(self, request.method.lower()):  # a method it takes (else 405)
            _ = request.data  # parsed here: a ParseError answers 400 before the action
