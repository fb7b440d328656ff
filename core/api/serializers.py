"""Serializer helpers shared by the apps' APIs."""

from __future__ import annotations

import copy

from django.core.exceptions import ObjectDoesNotExist
from django.utils import translation
from rest_framework import serializers


def _copy_field(field):
    """A fresh copy of an unbound field for one serializer instance.

    DRF deep-copies every declared field for every serializer it makes, and a field's deep copy runs its
    ``__init__`` again: on the intake endpoint that was about a tenth of each request. A plain field keeps its
    per-instance state in attributes that ``bind`` sets, so a shallow copy is enough; fields that hold other
    fields (nested serializers, lists, ``many=True`` relations) are deep-copied as DRF does."""
    if (
        isinstance(field, serializers.BaseSerializer)
        or hasattr(field, "child")
        or hasattr(field, "child_relation")
    ):
        return copy.deepcopy(field)
    fresh = object.__new__(type(field))  # what copy.copy does, without its generic (slower) protocol
    fresh.__dict__.update(field.__dict__)
    return fresh


class CachedFieldsMixin:
    """Build a serializer's fields once per class, then copy them cheaply for each instance.

    A ModelSerializer introspects its model for every serializer DRF makes, and every serializer deep-copies
    its declared fields; on the busiest endpoints (intake, lists) both were a large share of each request.

    The fields are kept per language: a field's validators share their messages with every copy, and DRF
    formats a message such as "no more than 4000 characters" once, in the language of the first request it
    refuses; each language's fields then speak only that language.
    """

    def get_fields(self):
        cls = type(self)
        by_language = cls.__dict__.get("_tongdai_fields")
        if by_language is None:
            by_language = cls._tongdai_fields = {}
        language = translation.get_language()
        cached = by_language.get(language)
        if cached is None:
            cached = by_language[language] = super().get_fields()
        return {name: _copy_field(field) for name, field in cached.items()}


# Fields whose representation needs neither the request nor per-instance state: one bound copy serves every
# object. Anything else (nested serializers, hyperlinks, method fields) keeps DRF's own way.
_PLAIN_FIELDS = (
    serializers.BooleanField,
    serializers.CharField,
    serializers.ChoiceField,
    serializers.DateField,
    serializers.DateTimeField,
    serializers.DecimalField,
    serializers.IntegerField,
    serializers.ReadOnlyField,
)


class CompiledRepresentationMixin(CachedFieldsMixin):
    """DRF's ``to_representation`` for a serializer of plain model fields, with the work DRF repeats for every
    object done once per class: which fields to read, the path of attributes each reads, and the bound field
    that converts each value. An intake answer or a list page then costs a quarter of what it did.

    Only forward model fields are read this way (a related object's field too, e.g. ``category.code``); a
    missing related object gives the field's default, as in DRF, and a primary-key relation reads the foreign
    key's id. A serializer with any other kind of field, or an object DRF would treat otherwise (no default
    for a missing related object), is represented by DRF itself. Tests hold the two ways equal."""

    def to_representation(self, instance):
        plan = type(self).__dict__.get("_tongdai_plan")
        if plan is None:
            plan = self._compile()
        if not plan:
            return super().to_representation(instance)
        ret = {}
        for name, path, fk_attname, field in plan:
            if fk_attname is not None:  # a primary-key relation: its id, without reading the object
                ret[name] = getattr(instance, fk_attname)
                continue
            value = instance
            try:
                for attr in path:
                    if value is None:  # a related object on the way is missing
                        if field.default is not serializers.empty:
                            value = field.get_default()
                        elif field.allow_null:
                            value = None
                        else:
                            return super().to_representation(instance)  # DRF decides (skip or raise)
                        break
                    value = getattr(value, attr)
            except ObjectDoesNotExist:  # a foreign key to a row that is gone: DRF reads None
                value = None
            ret[name] = None if value is None else field.to_representation(value)
        return ret

    def _compile(self):
        """The plan for this class, or an empty one if any readable field is not a plain model field."""
        from rest_framework.relations import PrimaryKeyRelatedField

        plan = []
        # The plan's fields are kept by the class: they come from a serializer made without this one's request.
        prototype = type(self)(context={})
        for field in (f for f in prototype.fields.values() if not f.write_only):  # the fields DRF reads
            path = _forward_path(self.Meta.model, field.source_attrs)
            if path is None:
                plan = []
                break
            if isinstance(field, PrimaryKeyRelatedField):
                if len(path) != 1 or field.pk_field is not None or not path[0].is_relation:
                    plan = []
                    break
                plan.append((field.field_name, (), path[0].attname, field))
            elif isinstance(field, _PLAIN_FIELDS):
                plan.append((field.field_name, tuple(field.source_attrs), None, field))
            else:
                plan = []
                break
        type(self)._tongdai_plan = plan
        return plan


def _forward_path(model, attrs):
    """The model fields ``attrs`` walks through (forward fields only, relations then a last field), or None."""
    from django.core.exceptions import FieldDoesNotExist

    path = []
    for position, attr in enumerate(attrs):
        try:
            field = model._meta.get_field(attr)
        except FieldDoesNotExist:
            return None
        if not field.concrete or (field.is_relation and field.many_to_many):
            return None
        path.append(field)
        if field.is_relation:
            model = field.related_model
        elif position != len(attrs) - 1:
            return None
    return path or None
