"""Reads that need care: the caller lookup (search) and the customer card.

The lookup answers in tiers, each a bounded query that stops at the limit:
1. exact matches: a customer code, a phone number in any spelling, a meter serial (point lookups);
2. name or address matching with the accents as typed ("Ngọc Hân" before "Ngọc Hằng");
3. accent-free matches of every word (the folded ``search_text`` column; a pg_trgm GIN index on PostgreSQL).
Rows inside a tier are sorted by name for display; the tiers never mix.

Every word must start a word of the name or address (numbers match whole). How the trigram index is asked:
Vietnamese names are made of a few very common words, and every trigram of "nguyen", "van" or "thi" is in
half the table, so asking the index for all of them costs a read of most of it. Agents type names in order,
so the lookup first assumes the leading words are consecutive words of the name: ``search_text`` ends with
the name's words joined ("nguyenvanan"), and the index is asked only for the trigrams that span two typed
words ("enva", "vaan"), which are rare; the exact conditions are then checked on those few rows. Only when
no name matches in order (fewer leading words are tried first) does the lookup ask for every word anywhere.
"""

from __future__ import annotations

import functools
import itertools
import re
import time
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, connections
from django.db.models import Func, TextField, Value
from django.db.models.functions import Concat, StrIndex
from django.utils.translation import gettext as _

from crm.models import Unit
from crm.scoping import unit_cached
from customers import card_sections
from customers.models import Contract, Customer, CustomerPhone, MeterAssignment, SearchTrigram
from customers.normalise import InvalidPhone, fold, has_diacritics, normalise_code, normalise_phone

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


def _word_pattern(word: str) -> str:
    """How a folded word must appear in ``search_text``: a whole number, or the start of a word."""
    return f" {word} " if word.isdigit() else f" {word}"


def _text_filter(queryset, words: list[str]):
    """Every word anywhere: one LIKE per word, each served by the trigram index."""
    for word in words:
        queryset = queryset.filter(search_text__contains=_word_pattern(word))
    return queryset


def _junctions(run: list[str]) -> list[str]:
    """For each pair of adjacent words, the last two letters of one and the first two of the next."""
    return [j for a, b in itertools.pairwise(run) if len(j := a[-2:] + b[:2]) >= 3]


_STATS_TTL_SECONDS = 600
_stats: dict = {"loaded_at": None, "shares": {}, "rows": 0}
MAX_INDEX_SHARE = 0.25
MAX_INDEX_TRIGRAMS = 8
MIN_INDEX_TRIGRAMS = 2


def _trigram_shares() -> tuple[dict[str, float], int]:
    """How common each trigram is (``SearchTrigram``, refreshed daily), cached in the process for 10 minutes."""
    now = time.monotonic()
    if _stats["loaded_at"] is None or now - _stats["loaded_at"] > _STATS_TTL_SECONDS:
        from core import db

        _stats["shares"] = dict(SearchTrigram.objects.values_list("trigram", "share"))
        _stats["rows"] = db.estimated_row_count(Customer._meta.db_table) or 0
        _stats["loaded_at"] = now
    return _stats["shares"], _stats["rows"]


def index_trigrams(words: list[str], k: int, shares: dict[str, float], rows: int) -> list[str]:
    """The trigrams to ask the index for when the first ``k`` words are a name typed in order.

    Candidates are the trigrams that span two typed words in the joined name, and those inside each word.
    Reading a posting list costs little next to fetching a row the index could have ruled out, so every
    candidate rarer than ``MAX_INDEX_SHARE`` is taken (the rarest ``MAX_INDEX_TRIGRAMS`` of them), and at
    least ``MIN_INDEX_TRIGRAMS``. Without statistics, the junctions alone.
    """
    run = words[:k]
    if not shares:
        return _junctions(run)
    candidates = {
        t for a, b in itertools.pairwise(run) for t in (a[-2:] + b[:1], a[-1:] + b[:2]) if len(t) == 3
    }
    for word in words:
        if word.isdigit():
            if len(word) >= 2:
                candidates.add(word[-2:] + " ")  # LIKE '%16 %': a number's end, e.g. "Phường 16"
        elif len(word) >= 3:
            candidates.update(word[i : i + 3] for i in range(len(word) - 2))
    ranked = sorted(candidates, key=lambda t: (shares.get(t, 0.0), t))
    rare = [t for t in ranked if shares.get(t, 0.0) <= MAX_INDEX_SHARE][:MAX_INDEX_TRIGRAMS]
    return rare if len(rare) >= MIN_INDEX_TRIGRAMS else ranked[:MIN_INDEX_TRIGRAMS]


def _in_order_filter(queryset, words: list[str], k: int):
    """The first ``k`` words are consecutive words of the name, as typed; the others appear anywhere.

    The index is asked only for a few rare trigrams (``index_trigrams``): across the typed words' junctions
    in the joined name, or inside a rare word. The exact checks are STRPOS, which the index cannot serve, so
    the planner applies them to the few rows those trigrams leave, instead of reading the posting lists of
    every common trigram.
    """
    shares, rows = _trigram_shares()
    for trigram in index_trigrams(words, k, shares, rows):
        queryset = queryset.filter(search_text__contains=trigram)
    checks = ["".join(words[:k]), *(_word_pattern(w) for w in words)]
    aliases = {f"_at{i}": StrIndex("search_text", Value(pattern)) for i, pattern in enumerate(checks)}
    return queryset.alias(**aliases).filter(**{f"{name}__gt": 0 for name in aliases})


def _name_run(words: list[str]) -> int:
    """How many leading words could be a name typed in order (letters only)."""
    n = 0
    for word in words:
        if word.isdigit():
            break
        n += 1
    return n


def _accented_words(text: str) -> list[str]:
    return [w for w in re.split(r"[\W_]+", text.lower()) if w]


def lookup_customers(*, user, query: str, limit: int | None = None) -> Lookup:
    """Find the caller among the customers ``user`` may see. Raises InvalidQuery for unusable input."""
    text, words = _lookup_words(query)
    limit = limit or settings.TONGDAI_LOOKUP_LIMIT
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

    accented_words = _accented_words(text) if has_diacritics(text) else []
    for kind, candidates in _ways_of_reading(Customer.objects.for_user(user), text, words):
        if kind is None:  # words: the names' tiers, accents as typed first
            _text_tiers(take, candidates, accented_words, limit - len(result.customers))
        else:
            take(candidates[: limit + 1], kind, limit)
        if result.customers:
            break
    _attach_units(result.customers)
    return result


def _attach_units(customers: list[Customer]) -> None:
    """The unit shown beside each candidate, without joining it to the lookup's query: one unit (an exact
    identifier's match, the usual call) from the shared cache, as the card reads it; several in one query."""
    unit_ids = {customer.unit_id for customer in customers}
    if len(unit_ids) == 1:
        units = {unit_id: unit_cached(unit_id) for unit_id in unit_ids}
    elif unit_ids:
        units = Unit.objects.in_bulk(unit_ids)
    for customer in customers:
        customer.unit = units[customer.unit_id]


def customers_matching(*, user, query: str):
    """Every customer the lookup finds for ``query`` among those ``user`` may see, unbounded and unranked (a
    queryset, for "export all matching customers"): the first way of reading the text that finds anyone, as in
    ``lookup_customers``. Raises InvalidQuery for unusable input."""
    text, words = _lookup_words(query)
    visible = Customer.objects.for_user(user)
    for _kind, candidates in _ways_of_reading(visible, text, words):
        if candidates.exists():
            return candidates
    return visible.none()


def _lookup_words(query: str) -> tuple[str, list[str]]:
    text = _clean_query(query)
    words = fold(text).split()
    if not words:
        raise InvalidQuery(_("The search text has no letters or digits."))
    if len(words) > MAX_WORDS:
        raise InvalidQuery(_("Use at most %(n)d words.") % {"n": MAX_WORDS})
    return text, words


def _ways_of_reading(visible, text: str, words: list[str]):
    """The lookup's ways of reading the typed text, in order, each ``(kind, candidates)``; the first that finds
    anyone is the answer. 1. Exact identifiers (each a single indexed lookup): an identifier that matches is the
    answer, its digits are not part of a name. 2. and 3. Words (kind None): names typed in order (the longest
    run of leading words down to two), then the words anywhere."""
    compact = text.replace(" ", "")
    if CODE_QUERY.match(compact):
        yield MatchKind.CODE, visible.filter(code=compact.upper())
    try:
        phone = normalise_phone(text)
    except InvalidPhone:
        phone = None
    if phone:
        yield MatchKind.PHONE, visible.filter(phones__number=phone).order_by("id")
    if SERIAL_QUERY.match(text):
        serial_customers = MeterAssignment.objects.filter(meter__serial=compact.upper()).values(
            "contract__customer_id"
        )
        yield MatchKind.SERIAL, visible.filter(pk__in=serial_customers)
    for k in range(_name_run(words), 1, -1):
        yield None, _in_order_filter(visible, words, k)
    yield None, _text_filter(visible, words)


def _text_tiers(take, candidates, accented_words: list[str], room: int) -> None:
    """Tier 2 (accents as typed) then tier 3 (accent-free) from the same candidates."""
    found: list[int] = []
    if accented_words:
        accented = candidates.alias(
            _accented=UnicodeLower(
                Concat("full_name", Value(" "), "street", Value(" "), "ward", Value(" "), "district",
                       output_field=TextField())
            )
        )  # fmt: skip
        for word in accented_words:
            accented = accented.filter(_accented__contains=word)
        rows = list(accented[: room + 1])
        take(rows, MatchKind.ACCENTS, room)
        found = [c.pk for c in rows[:room]]
        room -= len(found)
        if room <= 0:
            return
    rest = candidates.exclude(pk__in=found) if found else candidates
    take(rest[: room + 1], MatchKind.TEXT, room)


@dataclass
class CustomerCard:
    """Everything the agent sees about one customer, plus the sections later apps contribute."""

    customer: Customer
    phones: list
    contracts: list
    sections: list[card_sections.Section]


def customer_card(*, user, customer_id: int) -> CustomerCard | None:
    """The customer card, or None when the customer does not exist or is outside ``user``'s scope.

    One query each for the customer (with what the sections ask of it: ``card_sections.provide``'s
    annotations), the phones, the contracts and their meters (none without contracts), then one per section;
    the unit (with its company and corporation) comes from the shared cache, and who flagged a nuisance caller
    is read only for a flagged one. The phones and contracts are left on the customer (``card_phones``,
    ``card_contracts``) for the sections that read them (the new ticket's prefilled phone and contract) instead
    of asking again."""
    # A slice, not ``first()``: one customer by its key needs no ORDER BY. The phones, contracts and meters
    # (a handful each) are put in their order here rather than by the queries: building an ORDER BY costs
    # the ORM more than sorting a few rows.
    found = list(
        Customer.objects.for_user(user).filter(pk=customer_id).annotate(**card_sections.customer_annotations())[:1]
    )
    if not found:
        return None
    customer = found[0]
    customer.unit = unit_cached(customer.unit_id)  # with its company and corporation, shared by every process
    phones = sorted(CustomerPhone.objects.filter(customer_id=customer.pk), key=lambda p: (not p.is_primary, p.pk))
    contracts: list[Any] = sorted(Contract.objects.filter(customer_id=customer.pk), key=lambda c: c.pk)
    contracts.sort(key=lambda c: c.start_date, reverse=True)  # the latest first; a sort keeps ties by id
    by_contract: dict[int, list[MeterAssignment]] = {contract.pk: [] for contract in contracts}
    if contracts:
        assignments = sorted(
            MeterAssignment.objects.filter(contract_id__in=list(by_contract)).select_related("meter"),
            key=lambda a: (a.installed_at, a.pk),
            reverse=True,
        )
        for assignment in assignments:
            by_contract[assignment.contract_id].append(assignment)
    for contract in contracts:
        contract.current_assignments = [a for a in by_contract[contract.pk] if a.removed_at is None]
        contract.past_assignments = [a for a in by_contract[contract.pk] if a.removed_at is not None]
    customer.card_phones, customer.card_contracts = phones, contracts
    return CustomerCard(
        customer=customer,
        phones=phones,
        contracts=contracts,
        sections=card_sections.render_all(customer=customer, user=user),
    )


def contract_numbered(*, user, number: str) -> Contract:
    """The contract numbered ``number`` (in any case, spaces around it ignored: ``normalise_code``) among
    ``user``'s units, with its customer; else a refusal naming the number. The one lookup of a contract by its
    number: the admin's forms, the APIs (meter install, readings, intake) and the reading file read it so."""
    number = normalise_code(number)
    contract = Contract.objects.for_user(user).select_related("customer").filter(number=number).first()
    if contract is None:
        raise ValidationError(_("No contract numbered “%(n)s” in your units.") % {"n": number})
    return contract


def customer_for_intake(code: str) -> Customer | None:
    """The customer with ``code``, as intake needs them: code, name, address, unit (kept a while by the process,
    ``unit_cached``) and the primary phone (``primary_phone``); other fields load if asked for. One indexed
    query written out, since the intake API asks on every request."""
    fields, sql = _intake_customer_query(connection.alias)
    with connection.cursor() as cursor:
        cursor.execute(sql, [code])
        row = cursor.fetchone()
    if row is None:
        return None
    customer = Customer.from_db(connection.alias, fields, row[: len(fields)])
    customer.primary_phone = row[len(fields)]
    customer.unit = unit_cached(customer.unit_id)
    return customer


@functools.cache
def _intake_customer_query(alias: str) -> tuple[list[str], str]:
    """The fields ``customer_for_intake`` loads (in ``from_db``'s order) and its query, written once."""
    quote = connections[alias].ops.quote_name
    wanted = {"id", "code", "full_name", "street", "ward", "district", "province", "unit_id"}
    fields = [f.attname for f in Customer._meta.concrete_fields if f.attname in wanted]
    sql = (
        f"SELECT {', '.join('c.' + f for f in fields)}, (SELECT p.number FROM "
        f"{quote(CustomerPhone._meta.db_table)} p WHERE p.customer_id = c.id AND p.is_primary LIMIT 1) "
        f"FROM {quote(Customer._meta.db_table)} c WHERE c.code = %s"
    )
    return fields, sql
