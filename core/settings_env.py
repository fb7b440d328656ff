"""Checks of settings read from the environment that can only be made once the apps are loaded: the outbox's
backends (``TONGDAI_SMS_BACKEND``, ``TONGDAI_EMAIL_BACKEND``) must name a class that can be imported, or no SMS
or e-mail would ever leave, each message failing its attempts over hours while the product seems well."""

from __future__ import annotations

from django.conf import settings
from django.core import checks
from django.utils.module_loading import import_string

# The environment variable behind each channel's backend (``TONGDAI_NOTIFY_BACKENDS``).
BACKEND_VARIABLES = {"sms": "TONGDAI_SMS_BACKEND", "email": "TONGDAI_EMAIL_BACKEND"}
KNOWN_BACKENDS = "crm.outbox.LoggingBackend, crm.outbox.HttpSmsBackend or crm.outbox.EmailBackend"


def notify_backends_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """An error for each channel whose backend cannot be imported, naming its variable and what it takes."""
    errors: list[checks.CheckMessage] = []
    backends = settings.TONGDAI_NOTIFY_BACKENDS
    for channel, variable in BACKEND_VARIABLES.items():
        path = backends.get(channel)
        if path is None:
            continue
        try:
            import_string(path)
        except ImportError as exc:
            errors.append(
                checks.Error(
                    f"{variable} names a backend that cannot be imported: {path!r} ({exc}).",
                    hint=f"Set {variable} to {KNOWN_BACKENDS}.",
                    id="tongdai.E001",
                )
            )
    return errors
