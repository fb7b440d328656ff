"""Who sees a customer's national ID and phone numbers in full, and what everybody else sees.

Two permissions, granted per role in ``crm.roles``, decide it:

- ``customers.view_full_phone``: the whole number. Without it only the last 3 digits show, always in the
  form people read numbers in (``+84903123456`` and ``0903 123 456`` → ``**** *** 456``);
- ``customers.view_national_id``: the whole national ID. Without it only the last 4 digits show
  (``079123456789`` → ``********6789``), enough to check the digits a caller reads out.

Everything that shows these values asks here (``visibility(user)``): the customer card, the admin's lists
and forms, the API's serializers and the exports, so the rule lives in one place. Searching is not
affected: an agent who types a whole number still finds the customer, whose card then shows what the agent
may see. A masked value is never written back: a form shows it read-only, an import reads a masked cell
as "unchanged" (``is_masked``), and the services refuse it (a national ID or a phone is digits only).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from core.phones import PHONE_SEPARATORS
from customers.normalise import display_phone

MASK = "*"
PHONE, NATIONAL_ID, RECORD = "phone", "national_id", "record"  # what a value is, for ``Visibility.show``
PHONE_VISIBLE_DIGITS = 3
NATIONAL_ID_VISIBLE_DIGITS = 4
FULL_PHONE = "customers.view_full_phone"
FULL_NATIONAL_ID = "customers.view_national_id"

_DIGITS = "0123456789"
_NO_DIGITS = str.maketrans(dict.fromkeys(_DIGITS))
_MASKED_DIGITS = str.maketrans(dict.fromkeys(_DIGITS, MASK))
_STORED_PHONE = re.compile(r"^\+84[0-9]{9,10}$")


def mask_digits(value: str, keep: int) -> str:
    """Every digit of ``value`` but the last ``keep`` replaced by ``*``; other characters stay."""
    if not value:
        return value or ""
    if value.isascii() and value.isdigit():  # the usual shape of an ID: digits only
        return MASK * (len(value) - keep) + value[len(value) - keep :] if len(value) > keep else value
    tail = value[len(value) - keep :] if 0 < keep <= len(value) else ""
    if tail.isascii() and tail.isdigit():  # a phone as read: ends with the kept digits
        return value[: len(value) - keep].translate(_MASKED_DIGITS) + tail
    if len(value) - len(value.translate(_NO_DIGITS)) <= keep:
        return value
    cut, kept = len(value), 0
    while kept < keep:  # back over the last ``keep`` digits: the rest of them is masked
        cut -= 1
        kept += value[cut] in _DIGITS
    return value[:cut].translate(_MASKED_DIGITS) + value[cut:]


def mask_phone(value: str) -> str:
    """A phone as people read it, all but its last digits masked: ``+84903123456`` → ``**** *** 456``
    (never starting with +, which a spreadsheet would take for a formula)."""
    if value.startswith("+84") and value.isascii() and value[1:].isdigit():
        prefix = _masked_phone_prefix(len(value))  # a stored number: its shape depends on its length only
        if prefix is not None:
            return prefix + value[len(value) - PHONE_VISIBLE_DIGITS :]
    return mask_digits(display_phone(value), PHONE_VISIBLE_DIGITS)


@functools.cache
def _masked_phone_prefix(length: int) -> str | None:
    """What comes before the kept digits of a stored number of ``length`` characters once read and masked
    (None when its last group is shorter than the digits kept): exports mask a million numbers this way."""
    shown = mask_digits(display_phone("+84" + "0" * (length - 3)), PHONE_VISIBLE_DIGITS)
    tail = shown[len(shown) - PHONE_VISIBLE_DIGITS :]
    return shown[: len(shown) - PHONE_VISIBLE_DIGITS] if tail.isdigit() else None


def mask_national_id(value: str) -> str:
    return mask_digits(value, NATIONAL_ID_VISIBLE_DIGITS)


def is_masked(value) -> bool:
    """Whether ``value`` is a masked value as this module writes it (never a real phone or ID)."""
    return isinstance(value, str) and MASK in value


@dataclass(frozen=True)
class Visibility:
    """What one user may see of customers' identifiers; ``phone``/``national_id`` give the value to show."""

    full_phones: bool
    full_national_id: bool

    def phone(self, value: str) -> str:
        return value if self.full_phones or not value else mask_phone(value)

    def shows_whole(self, kind: str) -> bool:
        """Whether values of ``kind`` (PHONE, NATIONAL_ID, or a RECORD holding both) are seen unmasked."""
        if kind == PHONE:
            return self.full_phones
        if kind == NATIONAL_ID:
            return self.full_national_id
        return self.full_phones and self.full_national_id

    def national_id(self, value: str) -> str:
        return value if self.full_national_id or not value else mask_national_id(value)

    def record(self, data: Any) -> Any:
        """A snapshot kept in a history row (before/after), with its national ID and phone numbers as this
        user may see them: the ``national_id`` key, and any text that is a stored phone number."""
        if isinstance(data, dict):
            return {
                key: self.national_id(value)
                if key == "national_id" and isinstance(value, str)
                else self.record(value)
                for key, value in data.items()
            }
        if isinstance(data, list):
            return [self.record(value) for value in data]
        if isinstance(data, str) and _STORED_PHONE.match(data):
            return self.phone(data)
        return data

    def show(self, kind: str, value):
        """``value`` as shown to this user, ``kind`` being ``PHONE``, ``NATIONAL_ID`` or ``RECORD``."""
        if kind == PHONE:
            return self.phone(value)
        if kind == NATIONAL_ID:
            return self.national_id(value)
        if kind == RECORD:
            return self.record(value)
        raise ValueError(f"unknown kind {kind!r}")


EVERYTHING = Visibility(full_phones=True, full_national_id=True)
NOTHING = Visibility(full_phones=False, full_national_id=False)


def visibility(user) -> Visibility:
    """What ``user`` may see (nobody, without a user: a caller that forgot to say who asks sees masks).
    Django keeps the user's permissions on the user object, so asking again costs nothing."""
    if user is None or not getattr(user, "is_authenticated", False):
        return NOTHING
    return Visibility(full_phones=user.has_perm(FULL_PHONE), full_national_id=user.has_perm(FULL_NATIONAL_ID))


def shown_phone(user, value: str) -> str:
    return visibility(user).phone(value)


def shown_national_id(user, value: str) -> str:
    return visibility(user).national_id(value)


def check_national_id_change(actor) -> None:
    """Refuse (``ValidationError`` on ``national_id``) any national ID typed to change a customer's by ``actor``
    who sees only its last digits: they would overwrite a number they cannot check. Decided by the permission
    alone, before anything is compared with the stored number, so that the answer (a dry-run import's too)
    never tells whether a typed number is the customer's. Work done for nobody (no ``actor``) may."""
    if getattr(actor, "pk", None) and not visibility(actor).full_national_id:
        raise ValidationError(
            {"national_id": _("Only staff who may see national IDs in full may change them.")}
        )


class ShownField:
    """An admin column or read-only field that shows ``attribute`` of a row as ``seen`` allows.

    The admin lets a ``list_display``, ``fields`` or ``readonly_fields`` entry be a callable taking the row;
    this one is made per request (``shown_field``), so it knows who is looking. Two made for the same user
    are equal, which is how the admin matches the entries of ``get_fields`` with those of
    ``get_readonly_fields``. It is never a form input, so what it shows is never submitted. A list sorts by it
    only for a user who sees it whole."""

    def __init__(self, model, attribute: str, kind: str, seen: Visibility) -> None:
        self.model, self.attribute, self.kind, self.seen = model, attribute, kind, seen
        self.__name__ = attribute  # the admin names the column's CSS class and finds the help text by it
        self.short_description = model._meta.get_field(attribute).verbose_name
        if seen.shows_whole(kind):
            # Sorting by a value shown masked would tell its hidden digits' order (a shared prefix, a carrier):
            # for everybody else the column is not sortable, and the admin ignores ``?o=`` on it.
            self.admin_order_field = attribute

    def __call__(self, obj) -> str:
        value = self.seen.show(self.kind, getattr(obj, self.attribute))
        if isinstance(value, dict | list):
            return json.dumps(value, ensure_ascii=False)
        return value

    def _key(self) -> tuple:
        return (self.model, self.attribute, self.kind, self.seen)

    def __eq__(self, other) -> bool:
        return isinstance(other, ShownField) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


class MaskedRepresentationMixin:
    """For a DRF serializer: the fields named in ``masked_fields`` ({name: kind}) as the user of the
    request in its context may see them (masked when the context names no request)."""

    masked_fields: dict[str, str] = {}

    def to_representation(self, instance):
        data = super().to_representation(instance)
        seen = getattr(self, "seen", None)
        if seen is None:
            request = self.context.get("request")
            seen = self.seen = visibility(getattr(request, "user", None))
        for name, kind in self.masked_fields.items():
            if data.get(name):
                data[name] = seen.show(kind, data[name])
        return data


def shown_field(model, attribute: str, kind: str, user) -> ShownField:
    return ShownField(model, attribute, kind, visibility(user))


def with_shown_fields(fields, model, masked: dict[str, str], user) -> list:
    """``fields`` (names) with each name of ``masked`` ({name: kind}) replaced by its ``ShownField``."""
    seen = visibility(user)
    return [ShownField(model, f, masked[f], seen) if f in masked else f for f in fields]


# A run of digits as typed into a search or a filter, with anything between them that a typed phone number may
# have (``core.phones.PHONE_SEPARATORS``: any space, dots, dashes, slashes, brackets), so that every spelling the
# search accepts is one run; unless it is a date (``2026-01-31``, with its time) or a ticket's number
# (``2026-0001234``), which are nobody's identifier. Codes (PE01…) and numbers with letters around them are not
# identifiers of a person either.
_DIGIT_RUN = re.compile(
    r"(?<![\w+])(?:(?P<kept>\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2})?)?|(?:19|20)\d{2}-\d{7})(?![\w-])"
    rf"|\+?\(?\d(?:[{PHONE_SEPARATORS}]*\d){{6,}})(?!\w)"
)
# The old identity card has 9 digits, the citizen ID 12: a longer run may hold one, glued to other digits.
_NATIONAL_ID_MIN_DIGITS = 9
_NOT_IDENTIFIERS = {"selected"}  # the ids of the rows ticked in a list


def filters_as_seen(user, filters: str) -> str:
    """A logged export's query string (``crm.ExportLog.filters``) as ``user`` may read it: each filter
    ``name=value``, with what can be a person's identifier masked as ``user`` sees it on the customers' pages
    (``crm.services.export_filters_shown``): the value of a filter on a national ID or a phone, and in any
    other value a run of digits that is a phone number or long enough to hold a national ID (9 digits or
    more). Dates, tickets' numbers, shorter numbers and the ids of the rows selected are shown as typed."""
    from django.http import QueryDict

    seen = visibility(user)

    def shown(name: str, value: str) -> str:
        if "national_id" in name:
            return seen.national_id(value)
        if "phone" in name:
            return seen.phone(value)
        if name in _NOT_IDENTIFIERS:
            return value
        return _DIGIT_RUN.sub(lambda match: _identifier_as_seen(seen, match), value)

    params = QueryDict(filters)
    return "&".join(f"{name}={shown(name, value)}" for name, values in params.lists() for value in values)


def _identifier_as_seen(seen: Visibility, match: re.Match) -> str:
    from core.phones import InvalidPhone, normalise_phone

    typed = match.group()
    if match.group("kept"):
        return typed
    try:
        normalise_phone(typed)
    except InvalidPhone:
        digits = len(typed) - len(typed.translate(_NO_DIGITS))
        return seen.national_id(typed) if digits >= _NATIONAL_ID_MIN_DIGITS else typed
    return seen.phone(typed)
