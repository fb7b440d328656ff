"""List filters of the API take the codes people use (``?unit=PE0101``, ``?category=outage``,
``?customer=PE01000000001``), never internal ids. A code that names nothing the caller may see is a 400
naming the parameter and the code, not an empty list."""

from __future__ import annotations

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field


class CodeField(forms.CharField):
    """A code typed as text (never a list of every choice: the browsable API renders a text box), cleaned
    to the one row of ``queryset`` whose ``to_field_name`` it is."""

    def __init__(
        self, *, queryset=None, to_field_name="code", upper=True, lookup="exact", what="", unknown=None, **kwargs
    ):
        self.queryset, self.to_field_name, self.upper, self.lookup = queryset, to_field_name, upper, lookup
        self.what, self.unknown = what, unknown
        super().__init__(**kwargs)

    def clean(self, value):
        value = super().clean(value)
        if not value:
            return None
        value = value.upper() if self.upper else value
        found = self.queryset.filter(**{f"{self.to_field_name}__{self.lookup}": value}).first()
        if found is None:
            # The values go in ``params``, never into the message: django-filter formats the message with them,
            # and a ``%`` typed in the value would break a pre-formatted one.
            raise ValidationError(
                self.unknown or _("No %(what)s with the code %(value)s among those you may see."),
                code="unknown_code",
                params={"what": self.what, "value": value},
            )
        return found


@extend_schema_field(OpenApiTypes.STR)  # a code as typed, whatever field it names (the schema cannot guess it)
class CodeFilter(django_filters.Filter):
    """``queryset`` may be a callable taking the request (to scope it to the user). A code is upper-cased
    (``upper``) and matched with ``lookup`` (``"iexact"`` for a username, read in any case); ``unknown`` is the
    refusal when it names nothing, with ``%(value)s`` (and ``%(what)s``) in it. A code of the list's own rows
    (``customers/?code=``) filters by that row."""

    field_class = CodeField

    def __init__(self, *args, queryset, to_field_name="code", upper=True, lookup="exact", what="", unknown=None,
                 **kwargs):  # fmt: skip
        self.queryset = queryset
        super().__init__(
            *args, to_field_name=to_field_name, upper=upper, lookup=lookup, what=what, unknown=unknown, **kwargs
        )

    def filter(self, qs, value):
        if isinstance(value, qs.model):
            return qs.filter(pk=value.pk)
        return super().filter(qs, value)

    @property
    def field(self):
        field = super().field
        request = getattr(self.parent, "request", None)
        field.queryset = self.queryset(request) if callable(self.queryset) else self.queryset
        return field


def scoped(model):
    """The rows of ``model`` the request's user may see (its manager's ``for_user``)."""

    def rows(request):
        return model.objects.for_user(getattr(request, "user", None))

    return rows


class StrictBooleanFilter(django_filters.TypedChoiceFilter):
    """``true`` or ``false`` (``1`` or ``0``); any other value is refused (400), where django-filter's boolean
    filter reads it as no filter at all and answers with every row."""

    def __init__(self, *args, **kwargs):
        choices = [(v, v) for v in ("true", "false", "1", "0")]
        super().__init__(*args, choices=choices, coerce=lambda v: v in ("true", "1"), **kwargs)


class IntegerFilter(django_filters.NumberFilter):
    """A whole number (``?escalation_level=2``); ``1.5`` is refused, where django-filter's number filter takes
    it and answers with an empty list."""

    field_class = forms.IntegerField
