"""Serializer helpers shared by the apps' APIs."""

from __future__ import annotations

import copy


class CachedFieldsMixin:
    """Build a ModelSerializer's fields from the model once per class, then copy them for each instance.

    DRF introspects the model for every serializer it makes; on the busiest endpoints (intake, lists) that
    was a large share of each request.
    """

    def get_fields(self):
        cls = type(self)
        cached = cls.__dict__.get("_tongdai_fields")
        if cached is None:
            cached = super().get_fields()
            cls._tongdai_fields = cached
        return copy.deepcopy(cached)
