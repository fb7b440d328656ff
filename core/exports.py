"""Exports and imports shared by the admins, built on django-import-export resources.

Exports stream. django-import-export builds a whole ``tablib.Dataset`` in memory, which a million rows do
not fit; here the columns still come from the app's ``Resource`` (``get_export_headers``, and each cell is
what ``export_field`` gives: the column's dehydrate method, else its widget's ``render``), but the rows are
read with ``QuerySet.iterator(chunk_size=…)`` as plain values of exactly the exported columns (natural keys
joined in; ``ScopedResource.export_rows``), each column rendered by its widget once per distinct value, and
written out as they come: CSV on a small buffer (``csv_chunks``), XLSX through a small SpreadsheetML writer
that streams the zip archive (an ``openpyxl`` workbook, even write-only, only gives its first byte once every
row is written, which for a million rows is minutes: longer than any proxy waits). Memory stays flat
whatever the number of rows, and bytes flow from the first chunk on. The same code serves the admin's
download and the background export job (``billing.jobs``). Figures: ``bench/README.md``. Every export is recorded in the export log when it
starts (``crm.services.export_log_start``) and completed with its row count when its stream ends
(``LoggedExport``): the log is the organisation's record (``crm.ExportLog``), whose writers the ``crm`` app
registers here at start-up (``register_export_log``), so this plumbing imports nothing above it.

Imports go through the services, row by row, each row in a savepoint: ``ServiceResource`` turns a row into
a call of the app's service (never ``.save()``), scoped to the units of the user, with natural keys only;
``ServiceImportMixin`` is django-import-export's admin import flow (upload, dry-run preview, confirm) with
per-row errors, an all-or-nothing confirm and a "skip the bad rows" choice whose skipped rows are listed on
the result page. A cell that is not what its column holds (a number, a date, one of the choices, yes/no) is
an error of its row, named by the column's heading in the clerk's language (``WholeNumberWidget``,
``DecimalNumberWidget``, ``ChoiceWidget``, ``YesNoWidget``, ``DayWidget``, ``MomentWidget``): never a guess
(``1,5`` is not 1 household) nor an error of the whole file. A clerk's own export imports back unchanged:
the quote the CSV export puts before a formula is taken off again (``unquote_formula``).
"""

from __future__ import annotations

import contextlib
import copy
import csv
import datetime as dt
import decimal
import functools
import io
import itertools
import math
import operator
import queue
import re
import threading
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, TYPE_CHECKING, Any, cast
from xml.sax.saxutils import escape

import tablib
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import NON_FIELD_ERRORS, FieldDoesNotExist, PermissionDenied, ValidationError
from django.core.validators import ProhibitNullCharactersValidator
from django.db import IntegrityError, connections, transaction
from django.http import HttpResponseRedirect, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone, translation
from django.utils.http import content_disposition_header
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from import_export import fields, resources, widgets
from import_export.admin import ImportMixin
from import_export.formats import base_formats
from import_export.forms import ConfirmImportForm
from import_export.instance_loaders import ModelInstanceLoader
from import_export.results import RowResult
from import_export.signals import post_import

from core.db import is_postgres
from core.numbers import WHOLE_NUMBER
from core.routers import on_replica

# The kinds of export this module starts (the log's own choices name them too).
LIST, SELECTION = "list", "selection"


class _ExportLog:
    """The two writers of the export log, registered by the app that keeps it (``register_export_log``)."""

    start: Any = None
    finish: Any = None


def register_export_log(*, start, finish) -> None:
    """Name the functions that record an export's start (returning its log row) and its end with the rows."""
    _ExportLog.start, _ExportLog.finish = start, finish


def export_log_start(**kwargs):
    if _ExportLog.start is None:
        raise RuntimeError("No export log is registered: the crm app records every export.")
    return _ExportLog.start(**kwargs)


def export_log_finish(**kwargs):
    return _ExportLog.finish(**kwargs)


# The sizes below are settings (tongdai/settings.py, the README's configuration table): TONGDAI_EXPORT_CHUNK_SIZE rows
# fetched per round trip while exporting, TONGDAI_EXPORT_BUFFER_BYTES gathered before a chunk is sent,
# TONGDAI_IMPORT_MAX_ROWS rows per admin import (~180 rows/s through services).

CSV = "csv"
XLSX = "xlsx"
FORMATS = [(CSV, "CSV"), (XLSX, "Excel (XLSX)")]


def export_chunk_size() -> int:
    return settings.TONGDAI_EXPORT_CHUNK_SIZE


def export_buffer_bytes() -> int:
    return settings.TONGDAI_EXPORT_BUFFER_BYTES


def import_max_rows() -> int:
    return settings.TONGDAI_IMPORT_MAX_ROWS


def _blank(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _has_null(value) -> bool:
    return isinstance(value, str) and "\x00" in value


def text(value) -> str:
    """A cell as text for a service argument: never None."""
    return "" if value is None else str(value).strip()


# Widgets -----------------------------------------------------------------------------------------------


class UpperCodeWidget(widgets.CharWidget):
    """A code or serial: trimmed and in capitals, so ``pe01000000123`` finds ``PE01000000123``."""

    def clean(self, value, row=None, **kwargs):
        value = super().clean(value, row, **kwargs)
        return value.strip().upper() if value else ""


class DayWidget(widgets.DateWidget):
    """A date written 2025-01-31 or 31/01/2025 (never the American month-first reading), or a spreadsheet
    date."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.formats = ("%Y-%m-%d", "%d/%m/%Y")

    def clean(self, value, row=None, **kwargs):
        if isinstance(value, dt.datetime):
            return value.date()
        try:
            return super().clean(value.strip() if isinstance(value, str) else value, row, **kwargs)
        except (TypeError, ValueError):
            raise ValueError(_("%(value)s is not a date (write 2025-01-31).") % {"value": value}) from None


class MomentWidget(widgets.DateTimeWidget):
    """A time in Vietnam written 2025-01-31 08:30 or 31/01/2025 08:30 (seconds optional), or a spreadsheet
    date-time."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.formats = (
            "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M",
        )  # fmt: skip

    def clean(self, value, row=None, **kwargs):
        try:
            return super().clean(value.strip() if isinstance(value, str) else value, row, **kwargs)
        except (TypeError, ValueError):
            raise ValueError(
                _("%(value)s is not a date and time (write 2025-01-31 08:30).") % {"value": value}
            ) from None


def _shown(value) -> str:
    """A cell as the clerk typed it, for an error message."""
    return str(value).strip()


def _integral(value):
    """A spreadsheet's number as an ``int`` when it has no fractional part (``2.0`` → ``2``), else as is."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, decimal.Decimal) and value.is_finite() and value == value.to_integral_value():
        return int(value)
    return value


_DECIMAL_NUMBER = re.compile(r"([+-]?)([0-9]{1,18})(?:([.,])([0-9]{1,18}))?")


class WholeNumberWidget(widgets.IntegerWidget):
    """A whole number written with digits only, or a spreadsheet number without decimals. ``1,5``, ``1.5``,
    ``1.000`` and ``abc`` are errors of their row: ``1,5`` is never read as 1 (nor ``1.000`` as 1 or 1000)."""

    def clean(self, value, row=None, **kwargs):
        if self.is_empty(value):
            return None
        value = _integral(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and WHOLE_NUMBER.fullmatch(value.strip()):
            return int(value.strip())
        raise ValueError(_("must be a whole number, not “%(value)s”.") % {"value": _shown(value)})


class DecimalNumberWidget(widgets.DecimalWidget):
    """A number with decimals, written with a point (1.5) or, as in Vietnamese, a comma (1,5), or a
    spreadsheet number. No thousands separators: ``1,500`` or ``1.500`` could be 1.5 or 1500 and is an
    error of its row, as is ``1.234,5``."""

    def clean(self, value, row=None, **kwargs):
        if self.is_empty(value):
            return None
        if isinstance(value, float) and math.isfinite(value):
            return decimal.Decimal(str(value))
        if (
            isinstance(value, int | decimal.Decimal)
            and not isinstance(value, bool)
            and decimal.Decimal(value).is_finite()
        ):
            return decimal.Decimal(value)
        match = _DECIMAL_NUMBER.fullmatch(value.strip()) if isinstance(value, str) else None
        if match is None:
            raise ValueError(_("must be a number, not “%(value)s”.") % {"value": _shown(value)})
        sign, whole, separator, decimals = match.groups()
        if separator and len(decimals) == 3 and not whole.startswith("0"):
            raise ValueError(
                _(
                    "“%(value)s” can be read two ways: write thousands without a separator (1500) and the "
                    "decimals after one comma or point (1,5)."
                )
                % {"value": _shown(value)}
            )
        return decimal.Decimal(f"{sign}{whole}.{decimals}" if separator else f"{sign}{whole}")


class FloatNumberWidget(DecimalNumberWidget):
    """``DecimalNumberWidget``'s reading, as a float."""

    def clean(self, value, row=None, **kwargs):
        number = super().clean(value, row, **kwargs)
        return None if number is None else float(number)


class ChoiceWidget(widgets.CharWidget):
    """One of a model field's choices, written as its stored value (as exported) or as its label in any
    language of the interface, in any case. Anything else is an error of its row naming the choices."""

    def __init__(self, choices, **kwargs):
        super().__init__(**kwargs)
        self.choices = list(choices)
        self._known_cells: dict[str, Any] | None = None

    def _known(self) -> dict[str, Any]:
        if self._known_cells is None:
            self._known_cells = self._read_choices()
        return self._known_cells

    def _read_choices(self) -> dict[str, Any]:
        known: dict[str, Any] = {}
        for language, _name in settings.LANGUAGES:
            with translation.override(language):
                for choice, label in self.choices:
                    known.setdefault(str(label).strip().lower(), choice)
        for choice, _label in self.choices:
            known[str(choice).lower()] = choice
        return known

    def clean(self, value, row=None, **kwargs):
        if _blank(value):
            return "" if self.allow_blank else None
        choice = self._known().get(str(_integral(value)).strip().lower())
        if choice is not None:
            return choice
        raise ValueError(
            _("“%(value)s” is not one of: %(choices)s.")
            % {
                "value": _shown(value),
                "choices": ", ".join(f"{choice} ({label})" for choice, label in self.choices),
            }
        )

    def render(self, value, obj=None, **kwargs):
        if kwargs.get("force_native_type"):
            return value
        return super().render(value, obj, **kwargs)


class YesNoWidget(widgets.BooleanWidget):
    """A yes/no column: 1 or 0 as exported (also true/false, yes/no, có/không, or a spreadsheet's
    TRUE/FALSE). Anything else is an error of its row, never read as "no"."""

    YES = {"1", "true", "yes", "có"}
    NO = {"0", "false", "no", "không"}

    def clean(self, value, row=None, **kwargs):
        if _blank(value):
            return None
        if isinstance(value, bool):
            return value
        word = str(_integral(value)).strip().lower()
        if word in self.YES:
            return True
        if word in self.NO:
            return False
        raise ValueError(_("must be 1 (yes) or 0 (no), not “%(value)s”.") % {"value": _shown(value)})


class ScopedNaturalKeyWidget(widgets.ForeignKeyWidget):
    """A foreign key written as its natural key (a code, a number, a serial), looked up among the rows the
    importing user may see, with one query for all the keys of the file (``prepare``) instead of one per row.

    A key that exists outside the user's units reads as "not one of your units"; an unknown one as unknown.
    """

    def __init__(self, model, field, *, label, **kwargs):
        super().__init__(model, field=field, **kwargs)
        self.label = label
        self.user = None
        self._cache: dict[str, Any] = {}

    def scoped(self):
        return self.model._default_manager.for_user(self.user)

    def prepare(self, keys: Iterable) -> None:
        # A key with a NUL character is nobody's (its row is refused): the database would refuse the query.
        keys = {str(k).strip().upper() for k in keys if not _blank(k) and not _has_null(k)} - set(self._cache)
        if keys:
            found = self.scoped().filter(**{f"{self.field}__in": sorted(keys)})
            self._cache.update({str(getattr(obj, self.field)): obj for obj in found})

    def clean(self, value, row=None, **kwargs):
        if _blank(value):
            return None
        key = str(value).strip().upper()
        if key not in self._cache:
            self.prepare([key])
        obj = self._cache.get(key)
        if obj is not None:
            return obj
        if self.model._default_manager.filter(**{self.field: key}).exists():
            raise ValueError(_("%(key)s is not in your units.") % {"key": key})
        raise ValueError(_("There is no %(what)s %(key)s.") % {"what": self.label, "key": key})


def natural_key_field(model, attribute: str, key: str, column_name: str | None = None) -> fields.Field:
    """An export column showing the related row of ``attribute`` by its natural key (``key`` on the related
    model: a code, a number, a username), read from a join (list ``attribute`` in
    ``export_select_related``)."""
    return fields.Field(
        attribute=attribute,
        column_name=column_name or attribute,
        widget=widgets.ForeignKeyWidget(model._meta.get_field(attribute).related_model, field=key),
        readonly=True,
    )


# Resources ---------------------------------------------------------------------------------------------

#: distinct values a column remembers the rendering of (then it starts again): memory stays bounded
EXPORT_MEMO_SIZE = 50_000
# Types whose equal values render the same (not Decimal: 1.0 == 1.00; a column holds one type).
_MEMO_TYPES = frozenset({type(None), str, int, bool, dt.date, dt.datetime})


class _RenderMemo(dict):
    """A column's cells by value: its ``render`` runs once per distinct value (a unit code, a status, a
    period, an amount) until ``EXPORT_MEMO_SIZE`` values are held, then the memo starts again."""

    def __init__(self, render) -> None:
        super().__init__()
        self.render = render

    def __missing__(self, value):
        if len(self) >= EXPORT_MEMO_SIZE:
            self.clear()
        cell = self[value] = self.render(value)
        return cell


def _memo_safe(values) -> bool:
    """Whether equal values among ``values`` are sure to render the same (never ``True`` beside ``1``)."""
    types = set(map(type, values))
    return types <= _MEMO_TYPES and not (bool in types and int in types)


class _ColumnRenderer:
    """A column's ``render`` over a batch of its values, remembered per distinct value while that pays:
    not for a column whose values are mostly distinct (decided on its first ``_MEMO_SAMPLE`` values)."""

    def __init__(self, render) -> None:
        self.render = render
        self.memo: _RenderMemo | None = _RenderMemo(render)
        self.seen = 0

    def __call__(self, values) -> list:
        memo = self.memo
        if memo is None or not _memo_safe(values):
            return list(map(self.render, values))
        cells = list(map(memo.__getitem__, values))
        if self.seen < _MEMO_SAMPLE:
            self.seen += len(values)
            if self.seen >= _MEMO_SAMPLE and len(memo) > self.seen // 2:
                self.memo = None  # mostly new values: remembering them costs more than it saves
        return cells


_MEMO_SAMPLE = 4096


class _ExportColumn:
    """How one export column's cells are made from a chunk of rows read as values: a dehydrate method
    called with each row's record, a constant, or the widget's rendering of one of the values."""

    def __init__(
        self, *, index: int = 0, render=None, method=None, constant: Any = None, text: bool = False
    ) -> None:
        self.index = index
        self.method = method
        self.constant = constant
        self.renderer = _ColumnRenderer(render) if render is not None else None
        self.text = text

    def cells(self, transposed: list[tuple], records: list | None) -> Iterable:
        if self.method is not None:
            return list(map(self.method, records or ()))
        if self.renderer is None:
            return itertools.repeat(self.constant, len(transposed[0]) if transposed else 0)
        values = transposed[self.index]
        if self.text and set(map(type, values)) == {str}:
            return values  # text that the widget renders as itself (``_renders_text_as_itself``)
        return self.renderer(values)


def _renders_text_as_itself(widget) -> bool:
    """Whether ``widget`` renders a ``str`` as that very string for CSV: django-import-export's ``CharWidget``
    whose ``render`` is its own (``force_str`` of a ``str`` is the string). A column of such a widget whose
    values in a chunk are all strings is written as read, without a call per cell."""
    return type(widget).render is widgets.CharWidget.render and widget.coerce_to_string


_END = object()


def _read_ahead(chunks: Iterator, depth: int = 2) -> Iterator:
    """``chunks`` read by a thread up to ``depth`` ahead, so that PostgreSQL finds and sends the next rows
    while Python writes these. The first chunk is read here, which opens the server-side cursor on this
    thread's connection; the thread only fetches from it (psycopg's connection serialises its users, so this
    thread's own queries meanwhile, such as ``load_chunk``'s, wait their turn). Stopping early stops the
    thread after its current fetch."""
    first = next(chunks, _END)
    if first is _END:
        return
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def pump() -> None:
        try:
            for chunk in chunks:
                if not put(chunk):
                    return
            put(_END)
        except BaseException as exc:  # handed to the reader, raised there
            put(exc)

    thread = threading.Thread(target=pump, name="export-read-ahead", daemon=True)
    thread.start()
    try:
        yield first
        while (item := ready.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


def _natural_key_cell(value):
    """A ``ForeignKeyWidget`` column read as its key's value: what the widget renders of the related row
    (nothing when there is none)."""
    return "" if value is None else value


def _record_class(positions: dict[str, int]) -> type:
    """A row read as values, seen by the dehydrate methods and ``load_chunk`` as an object: ``pk`` and the
    resource's ``export_reads`` as attributes, and room for what ``load_chunk`` attaches."""
    attributes = {name: property(operator.itemgetter(index)) for name, index in positions.items()}
    return type("ExportRecord", (tuple,), {**attributes, "__doc__": _record_class.__doc__})


class ScopedResource(resources.ModelResource):
    """A resource whose rows are those the user may see, exported with their related rows joined in."""

    #: joined into every export row (``select_related``); to-many data is read per chunk (``load_chunk``)
    export_select_related: tuple = ()
    #: the heading of each column that is not the model field of its name (``column_name``: its label)
    column_labels: dict[str, Any] = {}
    #: what the dehydrate methods and ``load_chunk`` read from an exported object besides ``pk`` (fields of
    #: the model, or annotations of ``annotate_export``, by name): exports then read plain values instead of model instances; None: they read
    #: model instances (see ``export_rows``)
    export_reads: tuple[str, ...] | None = None

    def column_label(self, field) -> str:
        """A column's heading in the interface's language: its label here, else its model field's name."""
        label = self.column_labels.get(field.column_name)
        if label is None and field.attribute and "__" not in field.attribute:
            with contextlib.suppress(FieldDoesNotExist):
                label = self._meta.model._meta.get_field(field.attribute).verbose_name
        return capfirst(str(label)) if label is not None else field.column_name

    def get_export_headers(self, selected_fields=None):
        """The columns' headings as people read them (an import reads these back, and the column names)."""
        return [self.column_label(field) for field in self.get_export_fields(selected_fields)]

    def column_for_heading(self) -> dict[str, str]:
        """Each column's name by its heading in every language of the interface and by its own name, all
        lower case: a file exported in Vietnamese imports in an English session and the other way round."""
        names: dict[str, str] = {}
        for language, _name in settings.LANGUAGES:
            with translation.override(language):
                for field in self.get_export_fields():
                    names.setdefault(self.column_label(field).lower(), field.column_name)
        for field in self.fields.values():
            names[field.column_name.lower()] = field.column_name
        return names

    def __init__(self, user=None, **kwargs):
        super().__init__(**kwargs)
        self.user = user
        for field in self.fields.values():
            if isinstance(field.widget, ScopedNaturalKeyWidget):
                field.widget.user = user

    def get_queryset(self):
        return self._meta.model._default_manager.for_user(self.user)

    def annotate_export(self, queryset):
        """The rows with what the export reads besides the model's fields, computed by the database per row
        (a customer's phones joined into one value): in ``export_reads`` by their names. Both ways of reading
        an export (plain values, model instances) read them from here."""
        return queryset

    def prepare_export(self, queryset):
        queryset = self.annotate_export(queryset)
        if self.export_select_related:
            queryset = queryset.select_related(*self.export_select_related)
        return queryset

    def load_chunk(self, objects: Sequence[Any]) -> None:
        """Attach to a chunk of exported objects what one query per chunk reads for all of them (a
        customer's phones, a meter's contract). Plain values, not model instances pointing back at their
        object: such reference cycles would outlive the chunk until the garbage collector runs."""

    def filter_export(self, queryset, **kwargs):
        return self.prepare_export(queryset)

    def export_rows(
        self, queryset, *, native: bool = False, chunk_size: int | None = None
    ) -> Iterator[Sequence[Any]]:
        """One row of cell values per object, the queryset read ``chunk_size`` rows at a time from a
        server-side cursor (memory stays flat).

        ``native`` keeps numbers, dates and booleans as Python values (for XLSX); otherwise every cell is
        rendered as text the way django-import-export renders it for CSV. Either way a cell is what
        ``export_field`` gives for its object (the column's dehydrate method, else its widget's ``render``):
        when every column is a model field, a natural key through to-one relations or a dehydrate method
        reading only ``export_reads``, the rows are read as plain values (``values_list`` of exactly those
        columns, the relations joined) and each column rendered by its widget once per distinct value of a
        chunk; otherwise (``export_field`` overridden, a column that is a property) as model instances.
        """
        chunk_size = chunk_size or export_chunk_size()
        plan = self._export_plan(native)
        # In a transaction, PostgreSQL's server-side cursor finds rows as they are fetched (on PostgreSQL a
        # thread fetches the next chunk while Python writes this one: ``_read_ahead``); in autocommit Django
        # declares it WITH HOLD, and PostgreSQL then runs the whole query and stores its rows before the
        # first one is sent. (A read: nothing to roll back.)
        in_autocommit = transaction.get_autocommit(using=queryset.db)
        with transaction.atomic(using=queryset.db) if in_autocommit else contextlib.nullcontext():
            if plan is None:
                yield from self._instance_rows(queryset, native, chunk_size)
                return
            paths, columns, record_class = plan
            values = self.annotate_export(queryset).values_list(*paths).iterator(chunk_size=chunk_size)
            chunks: Iterator[tuple[Any, ...]] = itertools.batched(values, chunk_size)
            if is_postgres(connections[queryset.db]):
                chunks = _read_ahead(chunks)
            load_chunk = self._loads_chunks()
            for chunk in chunks:
                records = list(map(record_class, chunk)) if record_class is not None else None
                if load_chunk and records is not None:
                    self.load_chunk(records)
                transposed = list(zip(*chunk, strict=True))
                yield from zip(*[column.cells(transposed, records) for column in columns], strict=True)

    def _loads_chunks(self) -> bool:
        return type(self).load_chunk is not ScopedResource.load_chunk

    def _export_plan(self, native: bool):
        """``(paths, columns, record class)`` for reading the export as plain values, or None when some
        column needs model instances."""
        if type(self).export_field is not resources.Resource.export_field:
            return None
        paths: list[str] = ["pk"]  # one row per object, whatever DISTINCT the queryset has
        columns: list[_ExportColumn] = []
        needs_records = self._loads_chunks()
        for field in self.get_export_fields():
            method = field.get_dehydrate_method(self.get_field_name(field))
            method = method if callable(method) else getattr(self, method, None)
            if method is not None:
                columns.append(_ExportColumn(method=method))
                needs_records = True
                continue
            path = self._value_path(field)
            if path is None:
                if field.attribute is not None:
                    return None
                columns.append(_ExportColumn(constant=field.widget.render(None, force_native_type=native)))
                continue
            if path not in paths:
                paths.append(path)
            if isinstance(field.widget, widgets.ForeignKeyWidget):
                render = _natural_key_cell  # the related row's key, which is what the widget renders
            elif native:
                render = functools.partial(field.widget.render, force_native_type=True)
            else:
                render = field.widget.render
            text = not native and _renders_text_as_itself(field.widget)
            columns.append(_ExportColumn(index=paths.index(path), render=render, text=text))
        record_class = None
        if needs_records:
            if self.export_reads is None:
                return None
            reads = [name for name in self.export_reads if name != "pk"]
            for name in reads:
                if name not in paths:
                    paths.append(name)
            record_class = _record_class({"pk": 0, **{name: paths.index(name) for name in reads}})
        return paths, columns, record_class

    def _value_path(self, field) -> str | None:
        """The ``values_list`` path of a column read straight from the database (a concrete field of the
        model, or of a row reached through to-one relations; a natural key for a ``ForeignKeyWidget``),
        or None."""
        path = field.attribute
        if path is None:
            return None
        widget = field.widget
        if isinstance(widget, widgets.ForeignKeyWidget):
            if widget.use_natural_foreign_keys or widget.key_is_id:
                return None
            path = f"{path}__{widget.field}"
        model = self._meta.model
        parts = path.split("__")
        for position, part in enumerate(parts, 1):
            try:
                model_field = model._meta.get_field(part)
            except FieldDoesNotExist:
                return None
            if not model_field.concrete:
                return None
            if position == len(parts):
                return None if model_field.is_relation else path
            if not (model_field.many_to_one or model_field.one_to_one):
                return None
            model = model_field.related_model
        return None

    def _instance_rows(self, queryset, native: bool, chunk_size: int) -> Iterator[list]:
        """The rows read as model instances (their relations joined in), a cell being ``export_field``'s."""
        cells = [self._cell_reader(field, native) for field in self.get_export_fields()]
        for chunk in itertools.batched(
            self.prepare_export(queryset).iterator(chunk_size=chunk_size), chunk_size
        ):
            self.load_chunk(chunk)
            for obj in chunk:
                yield [cell(obj) for cell in cells]

    def _cell_reader(self, field, native: bool):
        """What ``export_field`` does for ``field``, with its per-call lookups (which name the field has,
        which dehydrate method it uses) done once per column instead of once per cell."""
        if type(self).export_field is not resources.Resource.export_field:
            return lambda obj: self.export_field(field, obj, force_native_type=native)
        method = field.get_dehydrate_method(self.get_field_name(field))
        method = method if callable(method) else getattr(self, method, None)
        if method is not None:
            return method
        return lambda obj: field.export(obj, force_native_type=native)

    def import_data(self, *args, **kwargs):
        raise NotImplementedError(_("This resource only exports."))


class FileKeysLoader(ModelInstanceLoader):
    """The records a file names in its key column (the resource's one ``import_id_fields``), loaded with one
    query for all of them among the user's. A key with a NUL character is nobody's and is not looked up (its
    row is refused as a bad cell): the database would refuse the query, and with it the whole file."""

    def __init__(self, resource: ServiceResource, dataset=None):
        super().__init__(resource, dataset)
        self.key = resource.fields[resource.get_import_id_fields()[0]]
        self.found: dict = {}
        rows = dataset.dict if dataset is not None and len(dataset) else []
        if rows and self.key.column_name in rows[0]:
            keys = [self.key.clean(row) for row in rows if not _has_null(row[self.key.column_name])]
            found = self.get_queryset().filter(**{f"{self.key.attribute}__in": keys})
            self.found = {self.key.get_value(instance): instance for instance in found}
        resource.file_keys = self

    def get_instance(self, row):
        """A copy of the record as loaded, or as the last row written to it left it: a row refused after its
        cells were set on its copy leaves nothing behind for the next row naming the record."""
        instance = self.found.get(self.key.clean(row)) if self.found else None
        return copy.copy(instance) if instance is not None else None

    def written(self, instance) -> None:
        """``instance`` as a row wrote it: what a later row naming the same record starts from."""
        key = self.key.get_value(instance)
        if key in self.found:
            self.found[key] = instance


_NO_NULL_CHARACTERS = ProhibitNullCharactersValidator()  # what the admin's forms say of a NUL in a text

_INTEGER_FIELDS = (
    "IntegerField", "PositiveIntegerField", "BigIntegerField", "PositiveBigIntegerField",
    "PositiveSmallIntegerField", "SmallIntegerField",
)  # fmt: skip


class ShownDiff(resources.Diff):
    """The import preview's before/after of a row, each cell as the user's export shows it (``export_field``:
    the resource's dehydrate methods, which mask what the user may not see), never the raw model value."""

    def __init__(self, resource, instance, new):
        self.left = self.cells(resource, instance)
        self.right = []
        self.new = new

    def compare_with(self, resource, instance):
        self.right = self.cells(resource, instance)

    @staticmethod
    def cells(resource, instance) -> list:
        fields_ = resource.get_import_fields()
        if instance is None:  # a deleted row
            return [""] * len(fields_)
        return [resource.export_field(field, instance) for field in fields_]


class ServiceResource(ScopedResource):
    """Imports rows through the app's services, never ``.save()``.

    Per row: the natural keys are looked up in the user's units (``ScopedNaturalKeyWidget``), the row is
    checked (``check_row``: permissions, values only services may set), then ``create_object`` or
    ``update_object`` calls the services inside a savepoint, so a row that fails leaves nothing behind and
    reports its reason. A blank cell never changes an existing record. An existing row with nothing to
    change is reported as unchanged (skipped).
    """

    #: columns whose blank key means "a new record, numbered by the service" (filled in if missing)
    optional_key_columns: tuple[str, ...] = ()
    #: the records the file names, loaded for the import under way (``FileKeysLoader``)
    file_keys: FileKeysLoader | None = None

    # A cell that is not a number, a date or one of the choices of its column is an error of its row (with
    # the column and the reason), never a guess (``1,5`` read as 1) or an error of the whole file.
    WIDGETS_MAP = {
        **resources.ModelResource.WIDGETS_MAP,
        **dict.fromkeys(_INTEGER_FIELDS, WholeNumberWidget),
        "DecimalField": DecimalNumberWidget,
        "FloatField": FloatNumberWidget,
        "DateField": DayWidget,
        "DateTimeField": MomentWidget,
        "BooleanField": YesNoWidget,
    }

    @classmethod
    def widget_from_django_field(cls, f, default=widgets.Widget):
        if getattr(f, "choices", None) and not getattr(f, "is_relation", False):
            return functools.partial(ChoiceWidget, f.choices)
        return super().widget_from_django_field(f, default)

    class Meta:
        skip_unchanged = True
        report_skipped = True
        clean_model_instances = False  # the services validate
        use_transactions = True
        instance_loader_class = FileKeysLoader

    def __init__(self, user=None, **kwargs):
        super().__init__(user=user, **kwargs)
        self._plans: dict[int, dict] = {}

    @classmethod
    def get_diff_class(cls):
        return ShownDiff

    # The import flow, hooked where django-import-export lets us.

    def import_data(self, dataset, *args, **kwargs):
        return resources.ModelResource.import_data(self, dataset, *args, **kwargs)

    def before_import(self, dataset, **kwargs):
        names = self.column_for_heading()
        headings = [text(h).strip().lower() for h in (dataset.headers or [])]
        if not set(headings) & set(names) and any(";" in h for h in headings):
            # Excel in a Vietnamese locale saves CSV with semicolons: every row would miss every column.
            raise ValidationError(
                _("The file's columns are separated by semicolons: save it as CSV with commas, or as XLSX.")
            )
        unknown = [
            text(h)
            for h, lower in zip(dataset.headers or [], headings, strict=True)
            if lower and lower not in names
        ]
        if unknown:  # its cells would be dropped without a word, and every row reported unchanged
            raise ValidationError(
                _(
                    "The file has columns this import does not know: %(c)s. "
                    "Head them as the export does (%(known)s)."
                )
                % {"c": ", ".join(unknown), "known": ", ".join(self.get_export_headers())}
            )
        dataset.headers = [names.get(h, h) for h in headings]
        repeated = sorted({h for h in dataset.headers if h and dataset.headers.count(h) > 1})
        if repeated:  # two columns for one field (or an English and a Vietnamese heading): one would be lost
            raise ValidationError(
                _("A column appears twice in the header: %(c)s.") % {"c": ", ".join(repeated)}
            )
        while len(dataset) and all(_blank(v) for v in dataset[-1]):
            del dataset[-1]  # trailing blank lines of a spreadsheet (earlier rows keep their numbers)
        if len(dataset) > import_max_rows():
            raise ValidationError(
                _("The file has %(n)d rows; an import takes at most %(max)d. Split the file.")
                % {"n": len(dataset), "max": import_max_rows()}
            )
        for column in self.optional_key_columns:
            if column not in dataset.headers and len(dataset):
                dataset.append_col([""] * len(dataset), header=column)
        for field in self.fields.values():
            if isinstance(field.widget, ScopedNaturalKeyWidget) and field.column_name in dataset.headers:
                field.widget.prepare(dataset[field.column_name])

    def after_import(self, dataset, result, **kwargs):
        """Nothing to do: ``ModelResource`` resets the id sequences here, which is only needed when ids come
        from the file (never here) and would race with concurrent inserts."""

    def import_row(self, row, instance_loader, **kwargs):
        if all(_blank(v) for v in row.values()):
            # A blank line (or one of empty cells) is no record: neither new, nor updated, nor unchanged (the
            # totals count what has no type of import nowhere); it keeps the file's line numbers.
            return self.get_row_result_class()()
        # A NUL character is a bad cell of its row, as the admin's forms refuse it (PostgreSQL would refuse
        # the row as an error, which cannot be skipped).
        refused = self.null_characters(row)
        if refused:
            result = self.get_row_result_class()()
            result.import_type = RowResult.IMPORT_TYPE_INVALID
            result.validation_error = ValidationError(refused)
            return result
        # A cell the export quoted so that a spreadsheet shows it as text reads back as it was.
        row = {column: unquote_formula(value) for column, value in row.items()}
        return super().import_row(row, instance_loader, **kwargs)

    def null_characters(self, row) -> dict[str, list[str]]:
        """The row's columns whose cell holds a NUL character, each with the forms' reason."""
        refused = {}
        for name, field in self.fields.items():
            try:
                _NO_NULL_CHARACTERS(row.get(field.column_name))
            except ValidationError as exc:
                refused[name] = exc.messages
        return refused

    def keeps_value(self, field, value) -> bool:
        """Whether a cell leaves an existing record's value as it is: a blank one (an app's resource adds
        its own, e.g. a masked value)."""
        return _blank(value)

    def import_field(self, field, instance, row, is_m2m=False, **kwargs):
        if (
            instance.pk is not None
            and field.column_name in row
            and self.keeps_value(field, row[field.column_name])
        ):
            return
        super().import_field(field, instance, row, is_m2m, **kwargs)

    def import_instance(self, instance, row, **kwargs):
        new = instance.pk is None
        before = {name: f.get_value(instance) for name, f in self.fields.items() if f.attribute}
        errors: dict = {}
        try:
            super().import_instance(instance, row, **kwargs)
        except ValidationError as exc:
            errors = exc.update_error_dict(errors)
        # The columns read only by ``check_row`` (a meter's contract, the nuisance flag): a bad cell there is
        # listed with the others of its row.
        for name, field in self.fields.items():
            if field.readonly and name not in errors:
                try:
                    self.cell(row, name)
                except ValidationError as exc:
                    errors = exc.update_error_dict(errors)
        model = self._meta.model._meta
        action = "add" if new else "change"
        if not self.user.has_perm(f"{model.app_label}.{action}_{model.model_name}"):
            errors.setdefault(NON_FIELD_ERRORS, []).append(
                _("You may not add %(what)s.") % {"what": model.verbose_name_plural}
                if new
                else _("You may not change %(what)s.") % {"what": model.verbose_name_plural}
            )
        plan: dict = {}
        if not errors:
            try:
                plan = self.check_row(instance, row, new=new, before=before) or {}
            except ValidationError as exc:
                errors = exc.update_error_dict(errors)
        self._plans[id(instance)] = plan
        if errors:
            raise ValidationError(errors)

    def skip_row(self, instance, original, row, import_validation_errors=None):
        if import_validation_errors:
            return False
        if instance.pk is not None and self._plans.get(id(instance), {}).get("extra"):
            return False  # nothing changes on the record itself, but the services have work to do
        return super().skip_row(instance, original, row, import_validation_errors)

    def save_instance(self, instance, is_create, row, **kwargs):
        plan = self._plans.pop(id(instance), {})
        try:
            with transaction.atomic():  # the row's service calls stand or fall together
                if is_create:
                    saved = self.create_object(instance, row, plan)
                else:
                    saved = self.update_object(instance, row, plan)
        except IntegrityError as exc:
            raise ValidationError(_("The database refused this row: %(reason)s") % {"reason": exc}) from exc
        for field in saved._meta.concrete_fields:  # the record as written, for the preview and the log
            setattr(instance, field.attname, getattr(saved, field.attname))
        if self.file_keys is not None:
            self.file_keys.written(instance)

    def cell(self, row, column: str):
        """The cleaned value of ``column`` in ``row`` (None when the file has no such column or it is blank)."""
        field = self.fields[column]
        if field.column_name not in row or _blank(row[field.column_name]):
            return None
        try:
            return field.clean(row)
        except ValueError as exc:
            raise ValidationError({column: str(exc)}) from exc

    def unchangeable(self, instance, before: dict, names: Iterable[str], message: str) -> dict:
        """Errors for the fields among ``names`` whose value the row would change on an existing record."""
        return {
            name: [message]
            for name in names
            if name in before and before[name] != self.fields[name].get_value(instance)
        }

    # What each resource says.

    def check_row(self, instance, row, *, new: bool, before: dict) -> dict | None:
        """Raise ``ValidationError`` for what no service may be asked to do; return the row's plan (passed
        to ``create_object``/``update_object``; ``{"extra": True}`` means work beyond the record's fields)."""
        return {}

    def create_object(self, instance, row, plan):
        raise NotImplementedError

    def update_object(self, instance, row, plan):
        raise NotImplementedError


# Streaming export ---------------------------------------------------------------------------------------

_FORMULA_START = "=@\t\r"
_TRIGGERS = _FORMULA_START + "+-"
_SIGNED_NUMBERS = re.compile(r"[+-][0-9 .,()/+-]*")
_QUOTE = "'"


def _needs_quote(value: str) -> bool:
    """Whether the CSV export puts a quote before ``value``: a spreadsheet would run it as a formula, or it
    starts with a quote before such a text (so that taking the export's quote away gives it back whole).
    The leading quotes are stripped in one step (a cell of thousands of them must not recurse)."""
    value = value.lstrip(_QUOTE)
    if not value:
        return False
    return value[0] in _TRIGGERS and (value[0] in _FORMULA_START or not _SIGNED_NUMBERS.fullmatch(value))


def csv_cell(value) -> Any:
    """A cell for a CSV file people open in a spreadsheet (``_csv_cell``): for the other CSV writers."""
    return _csv_cell(value)


def _csv_cell(value) -> Any:
    """A text cell that a spreadsheet would run as a formula gets a leading quote; signed numbers and
    phones (+84…, also several in a cell) have nothing to run and stay as they are."""
    if isinstance(value, str) and _needs_quote(value):
        return _QUOTE + value
    return value


def unquote_formula(value) -> Any:
    """A cell as it was before the CSV export quoted it (``_csv_cell``): exactly the quote it added, and
    only where it adds one. Text that merely starts with a quote (``'Bác Ba'``) stays as it is."""
    if isinstance(value, str) and value[:1] == _QUOTE and _needs_quote(value[1:]):
        return value[1:]
    return value


_CELL_SEPARATOR = "\x00"
# A cell after the first of a batch joined by the separator that could start with a trigger of ``_csv_cell``.
# (A quote too: a cell that starts with a quote before such a text gets one more, see ``_needs_quote``.)
_TRIGGER_AFTER_SEPARATOR = re.compile(f"{_CELL_SEPARATOR}[{re.escape(_TRIGGERS + _QUOTE)}]")
_CSV_BATCH_BYTES = 256  # a row's size, roughly: a batch is about a chunk's rows (never read far ahead)
_CSV_BATCH_ROWS = 256


# What makes ``csv.writer`` (QUOTE_MINIMAL, comma, ``\r\n``) quote a text cell; others it writes as they are.
_CSV_QUOTED = re.compile('[,"\r\n]')


def _csv_write(writer, buffer, batch: tuple) -> None:
    """``batch``'s rows written as CSV lines with ``_csv_cell`` applied to every cell. One search of the
    batch's text finds whether any cell may start with a trigger (a separator inside a cell can only make
    it look closer); only then are the batch's cells looked at one by one. A batch of text cells of which
    none needs quoting is written as the writer would write it, joined by commas, without its per-cell work.
    """
    text = _CELL_SEPARATOR + _CELL_SEPARATOR.join(map(str, itertools.chain.from_iterable(batch)))
    if _TRIGGER_AFTER_SEPARATOR.search(text):
        writer.writerows([[_csv_cell(v) for v in row] for row in batch])
        return
    if _CSV_QUOTED.search(text) or min(map(len, batch)) < 2:  # (the writer quotes a lone empty cell)
        writer.writerows(batch)
        return
    try:
        lines = "\r\n".join(map(",".join, batch))
    except TypeError:  # a cell that is not text (None, a number): the writer renders it
        writer.writerows(batch)
        return
    buffer.write(lines)
    buffer.write("\r\n")


def csv_chunks(headers: list[str], rows: Iterable[list]) -> Iterator[bytes]:
    """UTF-8 CSV (with a byte-order mark, so Excel reads Vietnamese right), sent in pieces of about
    ``TONGDAI_EXPORT_BUFFER_BYTES``."""
    limit = export_buffer_bytes()
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")
    writer.writerow(headers)
    batch_rows = max(1, min(_CSV_BATCH_ROWS, limit // _CSV_BATCH_BYTES))
    for batch in itertools.batched(rows, batch_rows):
        _csv_write(writer, buffer, batch)
        if buffer.tell() >= limit:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


class _Sink:
    """What the zip writer writes to: the bytes wait here until the response takes them."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self.size = 0

    def write(self, data) -> int:
        self._parts.append(bytes(data))
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        self.size = 0
        return data


_XML_DECL = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_NS_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_NS_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_NS_PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
_ILLEGAL_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_EXCEL_EPOCH = dt.datetime(1899, 12, 30)
_MAX_CELL_TEXT = 32_767
XLSX_ROWS_PER_SHEET = 1_048_575  # Excel's limit, less the header; more rows continue on a new sheet
XLSX_SHEET_BYTES = 1_500_000_000  # below the zip's 2 GiB member limit (no zip64 needed, which Excel dislikes)
_STYLE_DATETIME, _STYLE_DATE, _STYLE_HEADER = 1, 2, 3
_STYLES = (
    _XML_DECL + f'<styleSheet xmlns="{_NS_MAIN}">'
    '<numFmts count="2"><numFmt numFmtId="164" formatCode="yyyy-mm-dd hh:mm:ss"/>'
    '<numFmt numFmtId="165" formatCode="yyyy-mm-dd"/></numFmts>'
    '<fonts count="2"><font><sz val="11"/><name val="Calibri"/></font>'
    '<font><b/><sz val="11"/><name val="Calibri"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="4"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="165" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/></cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles></styleSheet>'
)
_SHEET_START = (
    _XML_DECL + f'<worksheet xmlns="{_NS_MAIN}"><sheetViews><sheetView workbookViewId="0">'
    '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/></sheetView></sheetViews>'
    "<sheetData>"
).encode()
_SHEET_END = b"</sheetData></worksheet>"


def _xlsx_cell(value, style: int = 0) -> str:
    """A cell's XML. Cells carry no reference: each is in the next column of its row (an empty one is
    ``<c/>``), so the same value makes the same XML in any row and a column renders each value once."""
    if value is None or value == "":
        return "<c/>"
    if type(value) is str:  # the commonest, and what the end of this function does with it
        return _xlsx_text_cell(value, style)
    if isinstance(value, bool):
        return f'<c t="b"><v>{int(value)}</v></c>'
    if isinstance(value, int | decimal.Decimal) or (isinstance(value, float) and math.isfinite(value)):
        return f"<c><v>{value}</v></c>"
    if isinstance(value, dt.datetime):
        if timezone.is_aware(value):
            value = timezone.localtime(value).replace(tzinfo=None)
        serial = (value - _EXCEL_EPOCH).total_seconds() / 86400
        return f'<c s="{_STYLE_DATETIME}"><v>{serial!r}</v></c>'
    if isinstance(value, dt.date):
        return f'<c s="{_STYLE_DATE}"><v>{(value - _EXCEL_EPOCH.date()).days}</v></c>'
    return _xlsx_text_cell(str(value), style)


def xlsx_text(value: str) -> str:
    """Text as an XLSX cell can hold it: without the characters XML refuses (a vertical tab pasted from a
    word processor) and cut at Excel's 32,767 characters. Every XLSX writer passes its text cells here."""
    return _ILLEGAL_XML.sub("", value)[:_MAX_CELL_TEXT]


def _xlsx_text_cell(value: str, style: int) -> str:
    if value[:1] == _QUOTE and _needs_quote(value):
        value = _QUOTE + value  # an import takes a quote away before a formula: this one stays
    content = xlsx_text(value)
    if "&" in content or "<" in content or ">" in content:
        content = escape(content)
    style_attr = f' s="{style}"' if style else ""
    return f'<c t="inlineStr"{style_attr}><is><t xml:space="preserve">{content}</t></is></c>'


_XLSX_BATCH_ROWS = 256


def xlsx_chunks(headers: list[str], rows: Iterable[list], *, sheet_name: str = "Sheet") -> Iterator[bytes]:
    """An XLSX workbook written as it is sent: the rows go into the zip archive as they come (inline
    strings, no shared-string table to hold), so memory stays flat and the first bytes leave at once."""
    sink = _Sink()
    archive = zipfile.ZipFile(cast(IO[bytes], sink), "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1)
    sheets = 0
    member: IO[bytes] = io.BytesIO()  # the sheet being written (open_sheet opens the first)
    written = rows_in_sheet = 0
    batch: list[str] = []
    limit = export_buffer_bytes()

    def open_sheet():
        nonlocal sheets, member, written, rows_in_sheet
        sheets += 1
        member = archive.open(f"xl/worksheets/sheet{sheets}.xml", "w")
        header = "".join(_xlsx_cell(h, _STYLE_HEADER) for h in headers)
        data = _SHEET_START + f'<row r="1">{header}</row>'.encode()
        member.write(data)
        written, rows_in_sheet = len(data), 0

    def flush_batch():
        nonlocal written
        if batch:
            data = "".join(batch).encode()
            member.write(data)
            written += len(data)
            batch.clear()

    renderers: list[_ColumnRenderer] = []
    open_sheet()
    for rows_read in itertools.batched(rows, _XLSX_BATCH_ROWS):
        columns = list(itertools.zip_longest(*rows_read))  # a short row's missing cells are empty
        renderers += [_ColumnRenderer(_xlsx_cell) for _ in range(len(columns) - len(renderers))]
        cells = [renderer(column) for renderer, column in zip(renderers, columns, strict=False)]
        for row_cells in zip(*cells, strict=True) if cells else [()] * len(rows_read):
            if rows_in_sheet >= XLSX_ROWS_PER_SHEET or written >= XLSX_SHEET_BYTES:
                flush_batch()
                member.write(_SHEET_END)
                member.close()
                open_sheet()
            rows_in_sheet += 1
            batch.append(f'<row r="{rows_in_sheet + 1}">{"".join(row_cells)}</row>')
        flush_batch()
        if sink.size >= limit:
            yield sink.take()
    flush_batch()
    member.write(_SHEET_END)
    member.close()

    name = re.sub(r"[\[\]:*?/\\]", " ", sheet_name)[:28] or "Sheet"
    sheet_names = [name if i == 1 else f"{name} {i}" for i in range(1, sheets + 1)]
    archive.writestr("xl/styles.xml", _STYLES)
    archive.writestr(
        "xl/workbook.xml",
        _XML_DECL
        + f'<workbook xmlns="{_NS_MAIN}" xmlns:r="{_NS_REL}"><sheets>'
        + "".join(
            f'<sheet name="{escape(n, {chr(34): "&quot;"})}" sheetId="{i}" r:id="rId{i}"/>'
            for i, n in enumerate(sheet_names, 1)
        )
        + "</sheets></workbook>",
    )
    archive.writestr(
        "xl/_rels/workbook.xml.rels",
        _XML_DECL
        + f'<Relationships xmlns="{_NS_PKG_REL}">'
        + "".join(
            f'<Relationship Id="rId{i}" Type="{_NS_REL}/worksheet" Target="worksheets/sheet{i}.xml"/>'
            for i in range(1, sheets + 1)
        )
        + f'<Relationship Id="rId{sheets + 1}" Type="{_NS_REL}/styles" Target="styles.xml"/>'
        "</Relationships>",
    )
    archive.writestr(
        "_rels/.rels",
        _XML_DECL + f'<Relationships xmlns="{_NS_PKG_REL}"><Relationship Id="rId1" '
        f'Type="{_NS_REL}/officeDocument" Target="xl/workbook.xml"/></Relationships>',
    )
    main = "application/vnd.openxmlformats-officedocument.spreadsheetml"
    archive.writestr(
        "[Content_Types].xml",
        _XML_DECL + '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        f'<Override PartName="/xl/workbook.xml" ContentType="{main}.sheet.main+xml"/>'
        f'<Override PartName="/xl/styles.xml" ContentType="{main}.styles+xml"/>'
        + "".join(
            f'<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="{main}.worksheet+xml"/>'
            for i in range(1, sheets + 1)
        )
        + "</Types>",
    )
    archive.close()
    yield sink.take()


XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class LoggedExport:
    """Counts the rows of a streamed export and completes its export-log row when the stream ends: with the
    count once the last byte has gone, marked interrupted when the stream stops early (the client went away
    and the server closed the response, also before the first byte) or fails. Rows pass through ``rows`` on
    their way to the writer; the writer's bytes pass through ``chunks`` on their way out."""

    def __init__(self, log) -> None:
        self.log = log
        self.count = 0
        self.finished = False
        self.content: Iterator = iter(())

    def rows(self, rows: Iterable[Any]) -> Iterator[Any]:
        for row in rows:
            self.count += 1
            yield row

    def chunks(self, chunks: Iterable) -> LoggedExport:
        """The response's content: ``chunks``, with the log completed at their end (or at ``close``)."""
        self.content = iter(chunks)
        return self

    def __iter__(self) -> LoggedExport:
        return self

    def __next__(self):
        try:
            return next(self.content)
        except StopIteration:
            self.finish(complete=True)
            raise
        except BaseException:
            self.finish(complete=False)
            raise

    def close(self) -> None:
        """Called by the server when the response is done with, sent whole or not."""
        self.finish(complete=False)
        close = getattr(self.content, "close", None)
        if close is not None:
            close()

    def finish(self, *, complete: bool) -> None:
        if not self.finished:
            self.finished = True
            export_log_finish(log=self.log, row_count=self.count, complete=complete)


def export_response(resource: ScopedResource, queryset, file_format: str, basename: str, *, log):
    """A streamed download of ``queryset`` with the columns of ``resource``: nothing is read from the
    database until the response is being sent, and then ``TONGDAI_EXPORT_CHUNK_SIZE`` rows at a time.
    ``log`` (``export_log_start``) is completed with the row count when the stream ends."""
    headers = resource.get_export_headers()
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    logged = LoggedExport(log)
    if file_format == XLSX:
        rows = logged.rows(resource.export_rows(queryset, native=True))
        content = xlsx_chunks(headers, rows, sheet_name=basename)
        content_type = XLSX_CONTENT_TYPE
    elif file_format == CSV:
        content = csv_chunks(headers, logged.rows(resource.export_rows(queryset)))
        content_type = "text/csv; charset=utf-8"
    else:
        raise ValueError(f"unknown export format {file_format!r}")
    # The rows are read while the response is sent: on the read replica when one is in use (core.routers).
    response = StreamingHttpResponse(logged.chunks(on_replica(content)), content_type=content_type)
    response["Content-Disposition"] = content_disposition_header(True, f"{basename}-{stamp}.{file_format}")
    response["X-Accel-Buffering"] = "no"  # let nginx pass the chunks on as they come
    return response


# Admin: streaming export --------------------------------------------------------------------------------

_EXPORTING = "_tongdai_exporting"


def _no_results(self, request):
    """The export reads the queryset itself: no page of results, no count."""


def is_exporting(request) -> bool:
    """True while ``changelist_queryset`` builds an export's queryset from ``request`` (a search that shows the
    best matches on a page exports every match)."""
    return getattr(request, _EXPORTING, False)


def changelist_queryset(model_admin, request):
    """The changelist's queryset for ``request``: the admin's (scoped) queryset with the filters, search and
    ordering of the query string applied, unpaginated and not yet evaluated. May raise
    ``IncorrectLookupParameters``."""
    setattr(request, _EXPORTING, True)
    try:
        return model_admin.get_changelist_instance(request).queryset
    finally:
        delattr(request, _EXPORTING)


class ExportFormatForm(forms.Form):
    file_format = forms.ChoiceField(label=gettext_lazy("Format"), choices=FORMATS, initial=CSV)


if TYPE_CHECKING:  # mixed into model admins: checked as one
    _ModelAdmin = admin.ModelAdmin[Any]
else:
    _ModelAdmin = object


class StreamingExportMixin(_ModelAdmin):
    """A changelist export of every matching row, streamed: "Export (all matching rows)" in the object
    tools (the changelist's filters and search carry over) and "Export selected … as CSV/XLSX" actions.
    Needs the view permission of the model; the rows are the admin's scoped queryset."""

    export_resource_class: type[ScopedResource] | None = None
    change_list_template = "admin/import_export/change_list_streaming_export.html"
    export_all_template = "admin/import_export/export_all.html"

    def get_export_resource(self, request) -> ScopedResource:
        if self.export_resource_class is None:
            raise NotImplementedError(f"{type(self).__name__} names no export_resource_class")
        return self.export_resource_class(user=request.user)

    def has_streaming_export_permission(self, request) -> bool:
        return self.has_view_permission(request)

    def get_changelist(self, request, **kwargs):
        changelist = super().get_changelist(request, **kwargs)
        if is_exporting(request):
            return type("ExportChangeList", (changelist,), {"get_results": _no_results})
        return changelist

    def get_urls(self):
        opts = self.model._meta
        return [
            path(
                "export-all/",
                self.admin_site.admin_view(self.export_all_view),
                name=f"{opts.app_label}_{opts.model_name}_export_all",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "has_streaming_export_permission": self.has_streaming_export_permission(request),
        }
        return super().changelist_view(request, extra_context)

    def export_basename(self) -> str:
        return str(self.model._meta.verbose_name_plural).replace(" ", "-")

    def export_source(self) -> str:
        """The list's name in the export log: ``app_label.model_name``."""
        return self.model._meta.label_lower

    def export_all_view(self, request):
        if not self.has_streaming_export_permission(request):
            raise PermissionDenied
        opts = self.model._meta
        form = ExportFormatForm(request.POST if request.method == "POST" else None)
        if form.is_bound and form.is_valid():
            try:
                queryset = changelist_queryset(self, request)
            except IncorrectLookupParameters:
                changelist = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
                return HttpResponseRedirect(f"{changelist}?e=1")
            file_format = form.cleaned_data["file_format"]
            log = export_log_start(
                user=request.user, kind=LIST, source=self.export_source(),
                file_format=file_format, filters=request.GET.urlencode(),
            )  # fmt: skip
            return export_response(
                self.get_export_resource(request), queryset, file_format, self.export_basename(), log=log
            )
        context = {
            **self.admin_site.each_context(request),
            "title": _("Export all matching %(what)s") % {"what": opts.verbose_name_plural},
            "opts": opts,
            "form": form,
            "filters": [(k, v) for k, v in request.GET.items()],
            "query_string": request.GET.urlencode(),
            "columns": self.get_export_resource(request).get_export_headers(),
        }
        return TemplateResponse(request, self.export_all_template, context)

    def _export_selected(self, request, queryset, file_format):
        if not self.has_streaming_export_permission(request):
            raise PermissionDenied
        # The changelist's filters, and which rows were ticked (or all matching ones).
        filters = request.GET.copy()
        if request.POST.get("select_across") == "1":
            filters["select_across"] = "1"
        else:
            filters.setlist("selected", request.POST.getlist(helpers.ACTION_CHECKBOX_NAME))
        log = export_log_start(
            user=request.user, kind=SELECTION, source=self.export_source(),
            file_format=file_format, filters=filters.urlencode(),
        )  # fmt: skip
        return export_response(
            self.get_export_resource(request), queryset, file_format, self.export_basename(), log=log
        )

    @admin.action(
        description=gettext_lazy("Export selected %(verbose_name_plural)s as CSV"), permissions=["view"]
    )
    def export_selected_csv(self, request, queryset):
        return self._export_selected(request, queryset, CSV)

    @admin.action(
        description=gettext_lazy("Export selected %(verbose_name_plural)s as XLSX"), permissions=["view"]
    )
    def export_selected_xlsx(self, request, queryset):
        return self._export_selected(request, queryset, XLSX)


# Admin: imports through the services --------------------------------------------------------------------


class SkipBadRowsConfirmForm(ConfirmImportForm):
    skip_bad_rows = forms.BooleanField(
        label=gettext_lazy("Skip the bad rows and import the others"),
        required=False,
        help_text=gettext_lazy("Unticked, a file with any bad row writes nothing."),
    )


def column_headings(resource: ScopedResource) -> dict[str, str]:
    """The heading of each column in the interface's language, by the column's field name and by the model
    attribute it fills (an error names either)."""
    headings: dict[str, str] = {}
    for name, field in resource.fields.items():
        heading = resource.column_label(field)
        headings[name] = heading
        if field.attribute:
            headings.setdefault(field.attribute, heading)
    return headings


def row_problems(result, headings: dict[str, str] | None = None) -> list[dict]:
    """Every row that failed, as ``{"row", "messages"}``; ``row`` counts as a spreadsheet does (row 1 is
    the header, so the first data row is row 2). Each message starts with the heading of its column
    (``headings``, by field name) when it is about one."""
    headings = headings or {}
    problems = []
    for invalid in result.invalid_rows:
        found = []
        for field, errors in invalid.field_specific_errors.items():
            found += [f"{headings.get(field, field)}: {e}" for e in errors]
        found += list(invalid.non_field_specific_errors)
        problems.append({"row": invalid.number + 1, "messages": found})
    for error_row in result.error_rows:
        problems.append({"row": error_row.number + 1, "messages": [str(e.error) for e in error_row.errors]})
    return sorted(problems, key=lambda p: p["row"])


def base_problems(result) -> list[str]:
    found = []
    for error in result.base_errors:
        exc = error.error
        found += exc.messages if isinstance(exc, ValidationError) else [str(exc)]
    return found


class FileLinesCSV(base_formats.CSV):
    """CSV read as the readings import reads it (``billing.imports``): strictly UTF-8 (a byte order mark
    allowed), every line as wide as the header, and a blank line kept as a row of empty cells, so that a row
    is named by its line in the file as a spreadsheet numbers it (tablib drops blank lines, and names no line
    of a row too wide). A file that cannot be read so is refused with the reason (``ValidationError``)."""

    def is_binary(self):
        return True  # the upload's bytes, decoded here (a file that is not UTF-8 is refused with the reason)

    def get_read_mode(self):
        return "rb"

    def create_dataset(self, in_stream, **kwargs):
        if isinstance(in_stream, bytes):
            try:
                in_stream = in_stream.decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                raise ValidationError(
                    _("The file is not UTF-8 text: save it as CSV UTF-8 or as XLSX.")
                ) from exc
        rows = csv.reader(io.StringIO(in_stream, newline=""))
        dataset = tablib.Dataset()
        header = next(rows, None)
        if header is None:
            return dataset
        width = len(header)
        # Excel in a Vietnamese locale separates the columns by semicolons, and leaves a comma of a cell
        # unquoted: ``ServiceResource.before_import`` refuses such a file with that reason, whatever its rows.
        semicolons = width == 1 and ";" in header[0]
        dataset.headers = header
        for line, row in enumerate(rows, 2):
            if not any(cell.strip() for cell in row):
                row = [""] * width  # a blank line: a row of the file that imports nothing (``import_row``)
            elif semicolons:
                row = row[:1]
            elif len(row) != width:
                raise ValidationError(
                    _("Line %(n)s has %(c)s columns where the header has %(h)s.")
                    % {"n": line, "c": len(row), "h": width}
                )
            dataset.append(row)
        return dataset


class ServiceImportMixin(ImportMixin):
    """django-import-export's import (upload → dry-run preview → confirm) with the rules of this project.

    - The preview lists every bad row with its number and reasons, and the rows that would be written.
    - Confirming is all or nothing: one bad row and nothing is written, unless "skip the bad rows" is
      ticked; then the others are written and the result page lists the skipped rows and why.
    - The rows are written by the resource through the services, in one transaction, in the user's units.
    """

    import_template_name = "admin/import_export/service_import.html"
    import_result_template_name = "admin/import_export/service_import_result.html"
    # One object-tools template for "Import" and "Export (all matching rows)", on top of Django's changelist.
    import_export_change_list_template = "admin/import_export/change_list_streaming_export.html"
    confirm_form_class = SkipBadRowsConfirmForm
    import_formats = [FileLinesCSV, base_formats.XLSX]

    def init_change_list_template(self):
        self.ie_base_change_list_template = "admin/change_list.html"
        self.change_list_template = self.import_export_change_list_template

    def has_import_permission(self, request) -> bool:
        return self.has_add_permission(request) or self.has_change_permission(request)

    def get_import_resource_kwargs(self, request, **kwargs):
        return {"user": request.user}

    def column_headings(self, request) -> dict[str, str]:
        resource_class = self.get_import_resource_classes(request)[0]
        return column_headings(resource_class(**self.get_import_resource_kwargs(request)))

    def add_data_read_fail_error_to_form(self, form, e):
        """A file that cannot be read is refused with the reason when there is one (``FileLinesCSV``), not
        with the name of the exception."""
        if isinstance(e, ValidationError):
            for message in e.messages:
                form.add_error("import_file", message)
        elif isinstance(e, UnicodeDecodeError):
            form.add_error("import_file", _("The file is not UTF-8 text: save it as CSV UTF-8 or as XLSX."))
        else:
            super().add_data_read_fail_error_to_form(form, e)

    def get_import_data_kwargs(self, **kwargs):
        kwargs.pop("form", None)
        kwargs.pop("request", None)
        return kwargs

    def import_action(self, request, **kwargs):
        response = super().import_action(request, **kwargs)
        context = getattr(response, "context_data", None) or {}
        result = context.get("result")
        if result is not None:
            context["problems"] = row_problems(result, self.column_headings(request))
            context["base_problems"] = base_problems(result)
            context["totals"] = result.totals
            form = context.get("form")
            if result.has_errors():
                self._forget_upload(form)  # no confirm step will read it
            elif result.has_validation_errors():
                # Bad rows: the clerk may still confirm, all or nothing, or tick "skip the bad rows".
                context["confirm_form"] = self.create_confirm_form(request, import_form=form)
        return response

    def _forget_upload(self, form) -> None:
        name = getattr(form.cleaned_data.get("import_file"), "tmp_storage_name", None) if form else None
        if name:
            with contextlib.suppress(OSError):
                self.get_tmp_storage_class()(name=name, **self.get_tmp_storage_class_kwargs()).remove()

    def process_import(self, request, **kwargs):
        """Confirm a preview: its uploaded file is read and taken away (removed) before any row is written, so
        that only one confirmation of a preview imports it. A second one (the back button, a double click, a
        reload of the confirmation) or one whose file is gone (expired, or kept on another machine) writes
        nothing and says so on the import page, instead of a server error."""
        if not self.has_import_permission(request):
            raise PermissionDenied
        confirm_form = self.create_confirm_form(request)
        if not confirm_form.is_valid():
            return super().process_import(request, **kwargs)  # the import page with the form's errors
        input_format = self.get_import_formats()[int(confirm_form.cleaned_data["format"])](
            encoding=self.from_encoding
        )
        upload = self.get_tmp_storage_class()(
            name=confirm_form.cleaned_data["import_file_name"],
            encoding=None if input_format.is_binary() else self.from_encoding,
            read_mode=input_format.get_read_mode(),
            **self.get_tmp_storage_class_kwargs(),
        )
        try:
            data = upload.read()
            upload.remove()  # removing the file succeeds once: two confirmations at once import it once
        except FileNotFoundError:
            data = None
        if data is None:  # (the cache storage reads None for a key that is gone)
            messages.error(
                request,
                _(
                    "This preview was already confirmed, or it has expired: nothing was written now. See the "
                    "list for what an earlier confirmation wrote, or upload the file again."
                ),
            )
            opts = self.model._meta
            return HttpResponseRedirect(reverse(f"admin:{opts.app_label}_{opts.model_name}_import"))
        result = self.process_dataset(input_format.create_dataset(data), confirm_form, request, **kwargs)
        return self.process_result(result, request)

    def process_dataset(self, dataset, form, request, **kwargs):
        skip = bool(form.cleaned_data.get("skip_bad_rows"))
        result = super().process_dataset(
            dataset, form, request, rollback_on_validation_errors=not skip, **kwargs
        )
        result.tongdai_skip_bad_rows = skip
        return result

    def process_result(self, result, request):
        skip = getattr(result, "tongdai_skip_bad_rows", False)
        written = not result.has_errors() and (skip or not result.has_validation_errors())
        if written:
            self.generate_log_entries(result, request)
            post_import.send(sender=None, model=self.model)
            messages.success(
                request,
                _(
                    "Import finished: %(new)d new, %(update)d updated, %(skip)d unchanged, %(bad)d bad rows "
                    "skipped."
                )
                % {
                    "new": result.totals[RowResult.IMPORT_TYPE_NEW],
                    "update": result.totals[RowResult.IMPORT_TYPE_UPDATE],
                    "skip": result.totals[RowResult.IMPORT_TYPE_SKIP],
                    "bad": len(result.invalid_rows),
                },
            )
        opts = self.model._meta
        context = {
            **self.admin_site.each_context(request),
            "title": _("Import result"),
            "opts": opts,
            "result": result,
            "written": written,
            "skip_bad_rows": skip,
            "totals": result.totals,
            "problems": row_problems(result, self.column_headings(request)),
            "base_problems": base_problems(result),
            "changelist_url": reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"),
            "import_url": reverse(f"admin:{opts.app_label}_{opts.model_name}_import"),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.import_result_template_name, context)
