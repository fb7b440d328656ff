"""The fast path of ``POST /api/v1/tickets/``: the request every channel's integration sends, taken without
DRF's per-request machinery.

Intake is the busiest endpoint. DRF's request wrapping, authentication and permission classes, content
negotiation, serializer fields and rendering were about a quarter of each intake's cost. This path takes the
common request (JSON, a token, every field valid) with the same token cache, the same permission, the same
validation rules, the same service and the same response body and headers as the DRF view (but for "Vary:
Cookie": no session is read).

It never answers an error and never decides anything DRF would decide differently: whatever it does not take
(another content type, a session, a missing or unknown token, no permission, a field of an unexpected type, an
invalid value, a suspended category, an Idempotency-Key that is too long) goes to the DRF view unchanged, which
answers as it always has. A request it gives up on has written nothing: the service refuses before it writes.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from rest_framework import exceptions
from rest_framework.fields import empty
from rest_framework.renderers import JSONRenderer
from rest_framework.settings import api_settings

from crm.auth import CachedTokenAuthentication
from tickets import services
from tickets.api.serializers import (
    TicketInSerializer,
    TicketSerializer,
    active_category,
    resolve_intake_parties,
)

_AUTH = CachedTokenAuthentication()
_RENDERER = JSONRenderer()


def _rules():
    """The intake serializer's fields as (name, kind, required, default, allow_blank, max_length, choices): read
    from ``TicketInSerializer`` so that both paths keep one definition of what a valid request is."""
    rules = []
    for name, field in TicketInSerializer._declared_fields.items():
        default = None if field.default is empty else field.default
        if name == "category":
            kind, choices = "category", None
        elif hasattr(field, "choice_strings_to_values"):
            kind, choices = "choice", field.choice_strings_to_values
        else:
            kind, choices = "text", None
        if field.allow_null or (kind == "text" and not field.trim_whitespace):
            raise TypeError(f"the fast intake path does not know how to take {name!r}")  # pragma: no cover
        rules.append(
            (name, kind, field.required, default, getattr(field, "allow_blank", False),
             getattr(field, "max_length", None), choices)
        )  # fmt: skip
    return rules


_RULES = _rules()


def _validated(payload) -> dict | None:
    """``TicketInSerializer``'s field validation for the values it is sure of (strings only), else None."""
    if not isinstance(payload, dict):
        return None
    data = {}
    for name, kind, required, default, allow_blank, max_length, choices in _RULES:
        value = payload.get(name)
        if value is None:
            if name in payload:  # null: DRF says so
                return None
            if required:
                return None
            if default is not None:
                data[name] = default
            continue
        if not isinstance(value, str) or "\x00" in value:
            return None
        if kind == "category":
            value = active_category(value)
            if value is None:
                return None
        elif kind == "choice":
            if value not in choices:
                return None
            value = choices[value]
        else:
            value = value.strip()
            if not value and not allow_blank:
                return None
            if max_length is not None and len(value) > max_length:
                return None
            try:
                value.encode("utf-8")  # a lone surrogate from a JSON escape: DRF refuses it
            except UnicodeEncodeError:
                return None
        data[name] = value
    return data


def _content_length(request) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def _refuse_constant(name):
    raise ValueError(f"{name} is not JSON")  # NaN and Infinity: DRF's parser refuses them too


def take(request, allow: str) -> HttpResponse | None:
    """Open the ticket a well-formed token request asks for and answer as the DRF view would (``allow``: its
    Allow header); None to leave the request to the DRF view (nothing has been written then)."""
    header = request.headers.get("Authorization", "")
    if (
        request.content_type != "application/json"
        or request.content_params.get("charset", "utf-8").lower() not in ("utf-8", "utf8")
        or not header.startswith("Token ")
        or settings.SESSION_COOKIE_NAME in request.COOKIES  # DRF would try the session (and its CSRF) first
        or api_settings.DEFAULT_THROTTLE_CLASSES  # throttles are DRF's to count
    ):
        return None
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if limit is not None and _content_length(request) > limit:
        return None  # DRF reads such a body as a stream; Django's request.body would refuse it
    token = header[6:].strip()
    if not token or " " in token:
        return None
    key = request.headers.get("Idempotency-Key", "").strip() or None
    if key and len(key) > 100:
        return None
    try:
        user, _token = _AUTH.authenticate_credentials(token)
    except exceptions.APIException:
        return None
    if not user.has_perm("tickets.add_ticket"):
        return None
    try:
        payload = json.loads(request.body.decode("utf-8"), parse_constant=_refuse_constant)
    except ValueError:
        return None
    data = _validated(payload)
    if data is None:
        return None
    try:
        data = resolve_intake_parties(user, data)
        intake = services.ticket_open(actor=user, idempotency_key=key, **data)
    except (exceptions.ValidationError, ValidationError):
        return None  # refused before anything was written: the DRF view gives the refusal in its words
    body = {**TicketSerializer(intake.ticket).data, "warnings": intake.warnings}
    response = HttpResponse(
        _RENDERER.render(body), status=201 if intake.created else 200, content_type="application/json"
    )
    response["Vary"] = "Accept"
    response["Allow"] = allow
    request.user = user  # for what runs after the view (logging, middleware), as DRF leaves it
    return response
