"""Reads that need care: the caller lookup (search) and the customer card.

The lookup answers in tiers, each a bounded query that stops at the limit:
1. exact matches: a customer code, a phone number in any spelling, a meter serial (point lookups);
2. name or address matching with the accents as typed ("Ngọc Hân" before "Ngọc Hằng");
3. accent-free matches of every word (the folded ``search_text`` column; a pg_trgm GIN index on PostgreSQL).
Rows inside a tier are sorted by name for display; the tiers never mix.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Func, Prefetch, TextField, Value
from django.db.models.functions import Concat
from django.utils.translation import gettext as _

from customers import card_sections
from customers.models import Contract, Customer, MeterAssignment
from customers.normalise import InvalidPhone, fold, has_diacritics, normalise_phone

CODE_QUERY = re.compile(r"^[A-Za-z]{2}[0-9]{11}$")
SERIAL_QUERY = re.compile(r"^(?=.*[0-9])[A-Za-z0-9-]{4,20}$")
MAX_QUERY_LENGTH = 120
MAX_WORDS = 8


class InvalidQuery(ValueError):
    """The lookup text cannot be searched; the message says why, for the agent."""


class UnicodeLower(Func):
    """LOWER() that folds Vietnamese capitals on both databases (SQLite's own folds ASCII only)."""

    function = "LOWER"
    output_field = TextField()

    def as_sqlite(self, compiler, connection, **extra):
        return super().as_sql(compiler, connection, function="tongdai_lower", **extra)


class MatchKind:
    CODE = "code"
    PHONE = "phone"
    SERIAL = "serial"
    ACCENTS = "accents"
    TEXT = "text"


@dataclass
class Lookup:
    """The outcome of a lookup: candidates in rank order, and whether more matched than are shown."""

    query: str
    customers: list[Customer] = field(default_factory=list)
    truncated: bool = False


def _clean_query(raw: str | None) -> str:
    text = unicodedata.normalize("NFC", (raw or "").strip())
    if not text:
        raise InvalidQuery(
            _("Type a phone number, customer code, meter serial or part of a name or address.")
        )
    if len(text) > MAX_QUERY_LENGTH:
        raise InvalidQuery(
            _("The search text is too long (at most %(n)d characters).") % {"n": MAX_QUERY_LENGTH}
        )
    if any(unicodedata.category(ch) in ("Cc", "Cs", "Co") for ch in text):
        raise InvalidQuery(_("The search text contains control characters."))
    return text


def _text_filter(queryset, words: list[str]):
    for word in words:
        queryset = queryset.filter(search_text__contains=(f" {word} " if word.isdigit() else f" {word}"))
    return queryset


def _accented_words(text: str) -> list[str]:
    return [w for w in re.split(r"[\W_]+", text.lower()) if w]


def lookup_customers(*, user, query: str, limit: int | None = None) -> Lookup:
    """Find the caller among the customers ``user`` may see. Raises InvalidQuery for unusable input."""
    text = _clean_query(query)
    limit = limit or settings.TONGDAI_LOOKUP_LIMIT
    words = fold(text).split()
    if not words:
        raise InvalidQuery(_("The search text has no letters or digits."))
    if len(words) > MAX_WORDS:
        raise InvalidQuery(_("Use at most %(n)d words.") % {"n": MAX_WORDS})

    visible = Customer.objects.for_user(user).select_related("unit")
    result = Lookup(query=text)
    seen: set[int] = set()

    def take(rows, kind: str, room: int) -> None:
        rows = list(rows)
        if len(rows) > room:
            result.truncated = True
            rows = rows[:room]
        rows.sort(key=lambda c: (c.full_name, c.code))
        for customer in rows:
            if customer.pk not in seen:
                customer.match = kind
                seen.add(customer.pk)
                result.customers.append(customer)

    # 1. Exact identifiers, tried in order until one matches (each a single indexed lookup).
    compact = text.replace(" ", "")
    if CODE_QUERY.match(compact):
        take(visible.filter(code=compact.upper()), MatchKind.CODE, limit)
    if not seen:
        try:
            phone = normalise_phone(text)
        except InvalidPhone:
            phone = None
        if phone:
            take(visible.filter(phones__number=phone).order_by("id")[: limit + 1], MatchKind.PHONE, limit)
    if not seen and SERIAL_QUERY.match(compact):
        serial_customers = MeterAssignment.objects.filter(meter__serial=compact.upper()).values(
            "contract__customer_id"
        )
        take(visible.filter(pk__in=serial_customers)[: limit + 1], MatchKind.SERIAL, limit)
    if seen:
        return result  # an identifier that matched is the answer: its digits are not part of a name
    room = limit - len(result.customers)
    if room <= 0:
        return result

    # 2. and 3. Words, with accents as typed first, then accent-free.
    candidates = _text_filter(visible, words).exclude(pk__in=seen) if seen else _text_filter(visible, words)
    if has_diacritics(text):
        accented = candidates.annotate(
            _accented=UnicodeLower(
                Concat(
                    "full_name",
                    Value(" "),
                    "street",
                    Value(" "),
                    "ward",
                    Value(" "),
                    "district",
                    output_field=TextField(),
                )
            )
        )
        for word in _accented_words(text):
            accented = accented.filter(_accented__contains=word)
        take(accented[: room + 1], MatchKind.ACCENTS, room)
        room = limit - len(result.customers)
        if room <= 0:
            return result
    rest = candidates.exclude(pk__in=seen) if seen else candidates
    take(rest[: room + 1], MatchKind.TEXT, room)
    return result


@dataclass
class CustomerCard:
    """Everything the agent sees about one customer, plus the sections later apps contribute."""

    customer: Customer
    phones: list
    contracts: list
    sections: list[card_sections.Section]


def customer_card(*, user, customer_id: int) -> CustomerCard | None:
    """The customer card, or None when the customer does not exist or is outside ``user``'s scope."""
    customer = (
        Customer.objects.for_user(user)
        .select_related("unit__company__corporation", "nuisance_set_by")
        .filter(pk=customer_id)[:1]
    )
    customer = next(iter(customer), None)
    if customer is None:
        return None
    phones = list(customer.phones.order_by("-is_primary", "id"))
    contracts = list(
        Contract.objects.filter(customer=customer)
        .order_by("-start_date", "id")
        .prefetch_related(
            Prefetch(
                "meter_assignments",
                queryset=MeterAssignment.objects.select_related("meter").order_by("-installed_at"),
            )
        )
    )
    for contract in contracts:
        assignments = list(contract.meter_assignments.all())
        contract.current_assignments = [a for a in assignments if a.removed_at is None]
        contract.past_assignments = [a for a in assignments if a.removed_at is not None]
    return CustomerCard(
        customer=customer,
        phones=phones,
        contracts=contracts,
        sections=card_sections.render_all(customer=customer, user=user),
    )
