"""Whole numbers typed by people: digits only, on every path (the admin's forms, the API, the imports).

The admin writes money and registers with dots between thousands (``10.000 ₫``), as Vietnamese does; Django's
and DRF's integer fields read ``10.000`` as ten (a decimal point followed by zeros), so a clerk copying an
amount from the page would record a thousandth of it. A dot, a comma or a space in a whole number is refused
with the reason, never guessed (``1.000`` could be one or a thousand); the imports' widget keeps the same rule
(``core.exports.WholeNumberWidget``).
"""

from __future__ import annotations

import re

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

WHOLE_NUMBER = re.compile(r"[+-]?[0-9]{1,18}")

DIGITS_ONLY = _("Type the number with digits only, without dots, commas or spaces (10000).")


class WholeNumberField(forms.IntegerField):
    """Django's integer form field, refusing what it would otherwise read as a decimal (``10.000``)."""

    default_error_messages = {"invalid": DIGITS_ONLY}

    def to_python(self, value):
        if isinstance(value, str) and value.strip() and not WHOLE_NUMBER.fullmatch(value.strip()):
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        return super().to_python(value)


class WholeNumberSerializerField(serializers.IntegerField):
    """DRF's integer field for the API's input: a JSON number without a fraction, or a string of digits;
    ``"10.000"`` is a 400, not ten."""

    default_error_messages = {"invalid": DIGITS_ONLY}

    def to_internal_value(self, data):
        if isinstance(data, str) and not WHOLE_NUMBER.fullmatch(data.strip()):
            self.fail("invalid")
        if isinstance(data, float) and not data.is_integer():
            self.fail("invalid")
        return super().to_internal_value(data)
