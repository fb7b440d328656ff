"""The base of every API viewset over a scoped model: the queryset is always ``for_user(request.user)``."""

from rest_framework import viewsets


class ScopedReadOnlyViewSet(viewsets.ReadOnlyModelViewSet):
    def get_queryset(self):
        return super().get_queryset().for_user(self.request.user)
