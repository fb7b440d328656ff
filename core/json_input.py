"""JSON from outside, read with a bound on its nesting: a body nested thousands deep is refused with the reason (a
400 on the API, a form error in the admin) instead of exhausting Python's recursion in the parser (a 500).

The one rule (``TONGDAI_JSON_MAX_DEPTH`` levels of arrays and objects, 64 by default) is checked here, before
the text is parsed, by ``loads``; the API's parser (``JSONParser``, the default parser of every API view) and the
admin's JSON form field (``JSONFormField``) both go through it, and so must any other view that reads JSON.
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


class JsonTooDeep(ValueError):
    """The text nests arrays and objects deeper than the limit; its message says so, for the user."""


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
    deeper than the limit."""
    if isinstance(text, bytes | bytearray):
        text = text.decode(kwargs.pop("encoding", None) or "utf-8")
    check_depth(text)
    try:
        return json.loads(text, **kwargs)
    except RecursionError:  # not reached under the limit; kept so no depth ever ends in a 500
        raise JsonTooDeep(too_deep_message()) from None


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
        except ValueError as exc:
            raise ParseError(_("The request body is not valid JSON: %(error)s") % {"error": exc}) from None


class JSONFormField(forms.JSONField):
    """Django's JSON form field with the nesting bound: a value nested too deep is a form error."""

    def to_python(self, value):
        if isinstance(value, str) and not self.disabled:
            try:
                check_depth(value)
            except JsonTooDeep as exc:
                raise ValidationError(str(exc), code="too_deep") from None
        return super().to_python(value)

    def bound_data(self, data, initial):
        """The value typed, shown again with the error as it was typed (Django would parse it once more)."""
        if isinstance(data, str) and not self.disabled:
            try:
                check_depth(data)
            except JsonTooDeep:
                return InvalidJSONInput(data)
        return super().bound_data(data, initial)


# A ModelAdmin's ``formfield_overrides``: every JSON field of the model's form is a ``JSONFormField``, and every
# integer field (its subclasses too: Django looks the field's classes up in order) a ``WholeNumberField``.
ADMIN_FORMFIELD_OVERRIDES: dict[type[models.Field], dict[str, Any]] = {
    models.JSONField: {"form_class": JSONFormField},
    models.IntegerField: {"form_class": WholeNumberField},
}
