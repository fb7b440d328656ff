"""The managers' dashboard: what the centre did in a period, within the user's scope, and small SVG charts.

The widgets belong to the apps that own their data and are registered by them (``tickets.dashboard``,
``billing.dashboard``, each in its ``AppConfig.ready``) with the registry in ``crm.dashboard_widgets``, which
also holds the building blocks: the page's context (``Board``), ``Widget``, ``Table`` and the SVG charts. This
module is what the page (``reports.admin_views``) and the monthly workbook (``reports.monthly``) use: the
widgets in page order (``WIDGETS``, ``WIDGETS_BY_KEY``), each widget's ``widget_table`` and every one's
``tables``, and how a cell is shown (``display``).

``Dashboard(user, start, end, unit)`` is one page: ``start`` and ``end`` are dates, both included, read as local
days (Asia/Ho_Chi_Minh); ``unit`` (a ``Unit`` or its id) narrows to one unit, and a unit outside the user's scope
gives nothing. What several widgets share is read once per page. A widget's data is ``board.data(widget)``, or
by the name of its query, ``board.requests_by_channel()``; the module-level ``requests_by_channel(user, start,
end, unit=None)`` (and so for every registered widget's query) makes a one-off ``Dashboard``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import partial
from typing import Any

from crm.dashboard_widgets import (
    WIDGETS,
    WIDGETS_BY_KEY,
    Board,
    Table,
    Widget,
    bar_chart,
    donut_chart,
    month_bounds,
    number,
    register,
    unregister,
    widget_table,
)

__all__ = [
    "WIDGETS",
    "WIDGETS_BY_KEY",
    "Dashboard",
    "Table",
    "Widget",
    "bar_chart",
    "display",
    "donut_chart",
    "month_bounds",
    "register",
    "tables",
    "unregister",
    "widget_table",
]


def _widget_named(method: str) -> Widget | None:
    return next((w for w in WIDGETS if w.method == method), None)


class Dashboard(Board):
    """The dashboard of one user for one period (and optionally one unit); each registered widget's data is
    also a method named as its query (``board.requests_by_channel()``)."""

    def __getattr__(self, name: str) -> Callable[[], Any]:
        widget = _widget_named(name)
        if widget is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return partial(widget.data, self)


def __getattr__(name: str) -> Callable[..., Any]:
    """A one-off selector for every registered widget's query: ``requests_by_channel(user, start, end,
    unit=None)``."""
    widget = _widget_named(name)
    if widget is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

    def select(user, start: dt.date, end: dt.date, unit=None):
        return widget.data(Dashboard(user, start, end, unit))

    select.__name__ = select.__qualname__ = name
    select.__doc__ = widget.data.__doc__
    return select


def tables(user, start: dt.date, end: dt.date, unit=None) -> list[Table]:
    """Every widget's table for the user's scope, in page order (the monthly workbook's sheets)."""
    board = Dashboard(user, start, end, unit)
    return [widget_table(board, widget) for widget in WIDGETS]


def display(value) -> str:
    """A table cell as the page shows it: numbers grouped (with the decimals they were rounded to), a dash for
    nothing."""
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    decimals = 0 if isinstance(value, int) else max(1, len(repr(value).partition(".")[2]))
    return number(value, min(decimals, 2))
