"""Free text that staff type (a ticket's description, a reason, a note): how long it may be, and the one check
every path applies. The admin's forms take the limit from the model field (``max_length`` on the field);
the API's serializers and the services name the same constants, and the services refuse what is longer, so
a note typed on the ticket page, sent through the API or written by a job is held to the same rule. Nothing
is cut: a text that is too long is refused with its length, and the user shortens it."""

import unicodedata

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import ProhibitNullCharactersValidator
from django.utils.translation import gettext as _
from rest_framework import serializers

DESCRIPTION_MAX_CHARS = 4000  # what the caller says (a ticket's description, a dispute's claim, a note)
NOTE_MAX_CHARS = 2000  # a reason, a comment, a crew's or an agent's note


def composed(text: str | None) -> str:
    """Typed text in composed Unicode (NFC). Some Vietnamese keyboards (Unikey's "Unicode tổ hợp", macOS) type
    each accent as a code point of its own: the same words would count up to twice as many characters against
    a limit, be cut in the middle of a letter, and be sent to a phone in more SMS parts than they need."""
    return unicodedata.normalize("NFC", text or "")


def name_key(text: str | None) -> str:
    """What two spellings of one name (a ward: "Phường Bến Nghé", "phường  Bến Nghé", typed decomposed) compare
    by: composed, case folded, spaces collapsed. Every comparison of wards uses it (an outage's wards with a
    customer's, the wards picked with those a unit serves)."""
    return " ".join(composed(composed(text).casefold()).split())


class ComposedCharField(forms.CharField):
    """A form's text field that composes what is typed (``composed``) before its length is checked: the
    limit counts letters as the user sees them, whatever the keyboard sent."""

    def to_python(self, value):
        value = super().to_python(value)
        return composed(value) if isinstance(value, str) and value else value


class ComposedSerializerField(serializers.CharField):
    """The API's text field that composes what is sent (``composed``) before ``max_length`` is checked."""

    def to_internal_value(self, data):
        return composed(super().to_internal_value(data))


def typed_text(value: str | None, *, field: str, limit: int = NOTE_MAX_CHARS) -> str:
    """``value`` composed (``composed``) and without surrounding spaces, refused on ``field`` when it holds a
    NUL character (a paste from another program; no text column takes one, and the admin's forms and the API's
    fields refuse it with the same words) or is longer than ``limit`` letters."""
    text = composed(value).strip()
    if "\x00" in text:
        raise ValidationError({field: ProhibitNullCharactersValidator.message})
    if len(text) > limit:
        raise ValidationError(
            {field: _("At most %(limit)d characters (this text has %(n)d).") % {"limit": limit, "n": len(text)}}
        )
    return text


def column_length(model, name: str) -> int:
    """The ``max_length`` of ``model``'s field ``name``: the limit of a text kept in a sized column."""
    length = model._meta.get_field(name).max_length
    if length is None:
        raise ValueError(f"{model.__name__}.{name} has no max_length")
    return length
