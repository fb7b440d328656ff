"""Sections of the customer card that other apps fill, so that ``customers`` never imports them.

``customers`` declares the slots (open tickets, last invoices, outages in the area) in the order the agent
reads them; an app that owns the data registers a provider for a slot in its ``AppConfig.ready``. A slot
without a provider is shown empty, with its title, so the card's layout does not move when one arrives.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext_lazy as _

SLOTS: list[tuple[str, Any]] = [
    ("tickets", _("Open tickets")),
    ("invoices", _("Last invoices")),
    ("outages", _("Outages in the area")),
]

# A provider takes (customer=, user=) and returns {"columns": [...], "rows": [[...], ...], "actions": [(label, url, method)]}.
Provider = Callable[..., dict[str, Any]]
_providers: dict[str, Provider] = {}
# Values a provider asks of the card's customer query (name -> expression over the customer, such as an
# ``Exists``), read back from the customer: a flag about the customer costs no query of its own.
_annotations: dict[str, Any] = {}
_annotation_slots: dict[str, str] = {}  # the slot whose provider asked for each annotation


@dataclass
class Section:
    key: str
    title: Any
    columns: list[Any] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    actions: list[tuple[Any, str, str]] = field(default_factory=list)  # (label, url, "get" or "post")
    provided: bool = False


def provide(slot: str, provider: Provider, *, annotations: dict[str, Any] | None = None) -> None:
    """``provider`` fills ``slot``; ``annotations`` (name -> expression) are computed by the card's customer
    query and found on the customer the provider is given (absent when the customer was read elsewhere)."""
    if slot not in dict(SLOTS):
        raise KeyError(f"No card slot named {slot!r}")
    for name in annotations or {}:
        if not name.startswith("card_"):
            raise ValueError(f"A card annotation's name starts with card_: {name!r}")
        owner = _annotation_slots.get(name)
        if owner is not None and owner != slot:  # two apps' flags under one name: one would read the other's
            raise ValueError(f"The card annotation {name!r} is already the {owner!r} section's")
    _providers[slot] = provider
    _annotations.update(annotations or {})
    _annotation_slots.update(dict.fromkeys(annotations or {}, slot))


def customer_annotations() -> dict[str, Any]:
    """What the sections ask of the card's customer query."""
    return dict(_annotations)


def render_all(*, customer, user) -> list[Section]:
    sections = []
    for key, title in SLOTS:
        provider = _providers.get(key)
        section = Section(key=key, title=title)
        if provider is not None:
            data = provider(customer=customer, user=user)
            section.columns = data.get("columns", [])
            section.rows = data.get("rows", [])
            section.actions = data.get("actions", [])
            section.provided = True
        sections.append(section)
    return sections
