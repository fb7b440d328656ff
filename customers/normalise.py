"""Normal forms for what callers say: folded text for search, phone numbers in +84 form (the rule is
``core.phones``, shared with the staff's phones; its names are here too, for the customers' code).

Folding removes case and Vietnamese diacritics and turns đ/Đ into d, so "Nguyễn Văn Đạt, Quận 1" and
"nguyen van dat quan 1" meet. The same function computes the stored ``search_text`` column and folds the
query, so both sides always agree.
"""

from __future__ import annotations

import re
import unicodedata

from core.phones import InvalidPhone, display_phone, looks_like_phone, normalise_phone

__all__ = [
    "PHONE_LIST_SEPARATORS", "InvalidPhone", "display_phone", "fold", "has_diacritics", "looks_like_phone",
    "normalise_code", "normalise_phone", "search_document", "split_phones",
]  # fmt: skip

# What separates the phones of one field or cell (besides the comma): the admin's new-customer form and the
# customers import split them alike (``split_phones``).
PHONE_LIST_SEPARATORS = (";", "\n", "|")

_NON_WORD = re.compile(r"[^0-9a-z]+")


def normalise_code(value: str | None) -> str:
    """A customer code, a meter serial or a contract number as stored: trimmed and in capitals, so that
    ``pe01000000123-01`` is ``PE01000000123-01``. Every path that stores one (the services, the admin's forms,
    the imports' ``UpperCodeWidget``) or looks one up (``customers.selectors.contract_numbered``, the APIs, the
    reading file) reads it this way."""
    return (value or "").strip().upper()


def split_phones(value) -> list[str]:
    """The phones of a field or a cell, separated by commas, semicolons, bars or new lines (any spelling of
    each number), in the order written."""
    raw = "" if value is None else str(value)
    for separator in PHONE_LIST_SEPARATORS:
        raw = raw.replace(separator, ",")
    return [p.strip() for p in raw.split(",") if p.strip()]


def fold(text: str) -> str:
    """Lower-case, accent-free, đ→d, punctuation to single spaces: the search form of a text."""
    if not text:
        return ""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()
    return _NON_WORD.sub(" ", stripped).strip()


def search_document(name: str, *address: str) -> str:
    """The stored search column: the folded name and address, padded with spaces so every word has a left
    edge, then the name's words joined into one token ("nguyenvanan").

    The joined token gives the trigram index trigrams that span two words of a name ("nva", "vaa"), which
    are rare even when the words are common: a query that types a name in order finds it through them
    (see ``customers.selectors``).
    """
    folded_name = fold(name)
    words = " ".join(p for p in (folded_name, *(fold(part) for part in address)) if p)
    joined = folded_name.replace(" ", "")
    return f" {words} {joined} " if joined and joined != folded_name else f" {words} "


def has_diacritics(text: str) -> bool:
    return fold(text) != _NON_WORD.sub(" ", text.lower()).strip()
