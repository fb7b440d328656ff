"""JSON from outside, read with a bound on its nesting: a body nested thousands deep is refused with the reason (a
400 on the API, a form error in the admin) instead of exhausting Python's recursion in the parser (a 500).

The one rule (``TONGDAI_JSON_MAX_DEPTH`` levels of arrays and objects, 64 by default) is checked here, before
the text is parsed, by ``loads``; the API's parser (``JSONParser``, the default parser of every API view) and the
admin's JSON form field (``JSONFormField``) both go through it, and so must any other view that reads JSON.

JSON may also spell half of a UTF-16 pair on its own (``"\\ud800"``, a truncated emoji): valid JSON, but no
text, which no answer can echo and no column can keep. ``loads`` and ``JSONFormField`` refuse it wherever it
sits in the document (``check_whole_characters``), before a field sees it: a 400 naming where it is on the API,
a form error in the admin.
"""

from __future__ import annotations

import codecs
import json
import re
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.forms.fields import InvalidJSONInput
from django.utils.translation import gettext as _
from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.utils import json as drf_json

from core.numbers import WholeNumberField

# A JSON string (its escapes included): brackets inside one are text, not nesting.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_A_BRACKET = re.compile(r"[^\[\]{}]+")
# Half of a UTF-16 pair: in parsed text (a pair spelt as two escapes is read as the one character it makes), and
# what may spell one in JSON text (an escape from \ud800 to \udfff, or the character itself).
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_MAY_SPELL_A_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]|[\ud800-\udfff]")


class JsonTooDeep(ValueError):
    """The text nests arrays and objects deeper than the limit; its message says so, for the user."""


class UnpairedSurrogate(ValueError):
    """A string of the document (a value or a key) holds half of a UTF-16 pair; the message says so, for the
    user, without the character itself (no answer could be encoded with it). ``path`` is where it is: the keys
    and positions down to the value, or down to the object whose key holds it."""

    def __init__(self, path: list[str | int], code_point: int):
        self.path = path
        super().__init__(unpaired_surrogate_message(code_point))

    @property
    def detail(self) -> str | dict:
        """The refusal as the API words a field's: under the field's name (nested as the document is), or
        alone when it is not in an object's value."""
        if not self.path:
            return str(self)
        detail: Any = [str(self)]
        for step in reversed(self.path):
            detail = {step: detail}
        return detail


def unpaired_surrogate_message(code_point: int) -> str:
    return _(
        "The text holds half of a character (U+%(code)04X, one half of a UTF-16 pair, e.g. of a cut emoji): "
        "send the whole character or leave it out."
    ) % {"code": code_point}


def check_whole_characters(value: Any) -> None:
    """Raise ``UnpairedSurrogate`` when a string of the parsed JSON ``value`` (a value or a key, at any depth)
    holds half of a UTF-16 pair: the first one, in the document's order."""
    pending: list[tuple[list[str | int], Any]] = [([], value)]
    while pending:
        path, item = pending.pop()
        if isinstance(item, str):
            found = _SURROGATE.search(item)
            if found:
                raise UnpairedSurrogate(path, ord(found.group()))
        elif isinstance(item, dict):
            for key in item:
                found = _SURROGATE.search(key) if isinstance(key, str) else None
                if found:  # the key cannot be named: the refusal is the object's
                    raise UnpairedSurrogate(path, ord(found.group()))
            pending.extend(([*path, key], child) for key, child in reversed(item.items()))
        elif isinstance(item, list):
            pending.extend(([*path, i], child) for i, child in reversed(list(enumerate(item))))


def max_depth() -> int:
    return settings.TONGDAI_JSON_MAX_DEPTH


def too_deep_message() -> str:
    return _("The JSON is nested too deep: at most %(n)d levels of arrays and objects.") % {"n": max_depth()}


def check_depth(text: str) -> None:
    """Raise ``JsonTooDeep`` when ``text`` nests arrays and objects deeper than the limit.

    Counts the brackets outside strings without parsing (no recursion, linear in the text). Text that is not
    JSON at all is left to the parser to refuse."""
    limit = max_depth()
    brackets = _NOT_A_BRACKET.sub("", _STRING.sub("", text))
    if len(brackets) <= limit:
        return
    level = 0
    for bracket in brackets:
        if bracket in "[{":
            level += 1
            if level > limit:
                raise JsonTooDeep(too_deep_message())
        else:
            level -= 1


def loads(text: str | bytes | bytearray, **kwargs):
    """``json.loads`` for text from outside: ``JsonTooDeep`` (a ``ValueError``, like any bad JSON) when it nests
    deeper than the limit, ``UnpairedSurrogate`` (one too) when a string holds half of a UTF-16 pair."""
    if isinstance(text, bytes | bytearray):
        text = text.decode(kwargs.pop("encoding", None) or "utf-8")
    check_depth(text)
    try:
        value = json.loads(text, **kwargs)
    except RecursionError:  # not reached under the limit; kept so no depth ever ends in a 500
        raise JsonTooDeep(too_deep_message()) from None
    if _MAY_SPELL_A_SURROGATE.search(text):  # most bodies have no escape of the kind: nothing to walk
        check_whole_characters(value)
    return value


# The encodings a JSON body may name in its Content-Type (by ``codecs.lookup``'s name): UTF-8, and the UTF-16
# and UTF-32 that RFC 4627 allowed.
JSON_ENCODINGS = frozenset({"utf-8", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"})


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser with the nesting bound: a body nested too deep is a 400 saying the limit."""

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            known = codecs.lookup(encoding).name
        except LookupError:
            known = ""
        if known not in JSON_ENCODINGS:  # JSON is Unicode text (RFC 8259); a charset such as zlib is no text
            raise ParseError(_("A JSON body is UTF-8 text, not %(charset)s.") % {"charset": encoding})
        try:
            text = codecs.getreader(encoding)(stream).read()
            parse_constant = drf_json.strict_constant if self.strict else None
            return loads(text, parse_constant=parse_constant)
        except JsonTooDeep as exc:
            raise ParseError(str(exc)) from None
        except UnpairedSurrogate as exc:
            raise ParseError(exc.detail) from None
        except ValueError as exc:
            raise ParseError(_("The request body is not valid JSON: %(error)s") % {"error": exc}) from None


class JSONFormField(forms.JSONField):
    """Django's JSON form field with the nesting bound, and without half characters: a value nested too deep,
    or with a string holding half of a UTF-16 pair, is a form error."""

    def to_python(self, value):
        typed = isinstance(value, str) and not self.disabled
        if typed:
            try:
                check_depth(value)
            except JsonTooDeep as exc:
                raise ValidationError(str(exc), code="too_deep") from None
        converted = super().to_python(value)
        if typed:
            try:
                check_whole_characters(converted)
            except UnpairedSurrogate as exc:
                raise ValidationError(str(exc), code="unpaired_surrogate") from None
        return converted

    def bound_data(self, data, initial):
        """The value typed, shown again with the error as it was typed (Django would parse it once more, and
        could not write a half character into the page)."""
        if isinstance(data, str) and not self.disabled:
            try:
                check_depth(data)
            except JsonTooDeep:
                return InvalidJSONInput(data)
        value = super().bound_data(data, initial)
        if isinstance(data, str) and not self.disabled and not isinstance(value, InvalidJSONInput):
            try:
                check_whole_characters(value)
            except UnpairedSurrogate:
                return InvalidJSONInput(data)
        return value


# A ModelAdmin's ``formfield_overrides``: every JSON field of the model's form is a ``JSONFormField``, and every
# integer field (its subclasses too: Django looks the field's classes up in order) a ``WholeNumberField``.
ADMIN_FORMFIELD_OVERRIDES: dict[type[models.Field], dict[str, Any]] = {
    models.JSONField: {"form_class": JSONFormField},
    models.IntegerField: {"form_class": WholeNumberField},
}
