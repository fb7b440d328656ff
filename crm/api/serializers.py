"""Serializer helpers shared by the apps' APIs."""

from __future__ import annotations

import copy

from rest_framework import serializers


def _copy_field(field):
    """A fresh copy of an unbound field for one serializer instance.

    DRF deep-copies every declared field for every serializer it makes, and a field's deep copy runs its
    ``__init__`` again: on the intake endpoint that was about a tenth of each request. A plain field keeps its
    per-instance state in attributes that ``bind`` sets, so a shallow copy is enough; fields that hold other
    fields (nested serializers, lists, ``many=True`` relations) are deep-copied as DRF does."""
    if (
        isinstance(field, serializers.BaseSerializer)
        or hasattr(field, "child")
        or hasattr(field, "child_relation")
    ):
        return copy.deepcopy(field)
    fresh = object.__new__(type(field))  # what copy.copy does, without its generic (slower) protocol
    fresh.__dict__.update(field.__dict__)
    return fresh


class CachedFieldsMixin:
    """Build a serializer's fields once per class, then copy them cheaply for each instance.

    A ModelSerializer introspects its model for every serializer DRF makes, and every serializer deep-copies
    its declared fields; on the busiest endpoints (intake, lists) both were a large share of each request.
    """

    def get_fields(self):
        cls = type(self)
        cached = cls.__dict__.get("_tongdai_fields")
        if cached is None:
            cached = super().get_fields()
            cls._tongdai_fields = cached
        return {name: _copy_field(field) for name, field in cached.items()}
