"""The admin site's registered models, read through the site's public methods."""

from __future__ import annotations

from django.apps import apps
from django.contrib import admin


def registered_admins() -> list[tuple]:
    """``(model, model_admin)`` for every model registered in the admin site, by model label."""
    return sorted(
        ((model, admin.site.get_model_admin(model)) for model in apps.get_models() if admin.site.is_registered(model)),
        key=lambda item: item[0]._meta.label,
    )
