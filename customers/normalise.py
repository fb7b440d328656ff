"""Normal forms for what callers say: folded text for search, phone numbers in +84 form.

Folding removes case and Vietnamese diacritics and turns đ/Đ into d, so "Nguyễn Văn Đạt, Quận 1" and
"nguyen van dat quan 1" meet. The same function computes the stored ``search_text`` column and folds the
query, so both sides always agree.
"""

from __future__ import annotations

import re
import unicodedata

from django.utils.translation import gettext as _

_NON_WORD = re.compile(r"[^0-9a-z]+")


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


# Mobile prefixes renumbered in 2018 (11-digit 01xx numbers became 10-digit 0xx numbers).
_OLD_MOBILE_PREFIXES = {
    "0120": "070", "0121": "079", "0122": "077", "0126": "076", "0128": "078",
    "0123": "083", "0124": "084", "0125": "085", "0127": "081", "0129": "082",
    "0162": "032", "0163": "033", "0164": "034", "0165": "035", "0166": "036",
    "0167": "037", "0168": "038", "0169": "039", "0186": "056", "0188": "058",
    "0199": "059",
}  # fmt: skip

_PHONE_CHARS = re.compile(r"^[0-9+\s().\-/]+$")


class InvalidPhone(ValueError):
    """The text is not a Vietnamese phone number."""


def normalise_phone(raw: str) -> str:
    """Return ``raw`` as +84 followed by the national number, or raise InvalidPhone.

    Accepts the spellings callers and clerks use: ``0903 123 456``, ``+84903123456``, ``84-903-123-456``,
    ``(028) 3822 1234``, ``0084 903 123 456`` and old 11-digit mobile numbers (``0168…`` → ``038…``).
    """
    text = (raw or "").strip()
    if not text or not _PHONE_CHARS.match(text):
        raise InvalidPhone(
            _("A phone number has only digits, spaces, dots, dashes, brackets and a leading +.")
        )
    if "+" in text[1:]:
        raise InvalidPhone(_("A + may only start a phone number."))
    digits = re.sub(r"\D", "", text)
    if text.startswith("+"):
        if not digits.startswith("84"):
            raise InvalidPhone(_("Only Vietnamese numbers (+84) are accepted."))
        national = "0" + digits[2:]
    elif digits.startswith("0084"):
        national = "0" + digits[4:]
    elif digits.startswith("84") and len(digits) in (11, 12):
        national = "0" + digits[2:]
    elif digits.startswith("0"):
        national = digits
    elif len(digits) in (9, 10):
        national = "0" + digits
    else:
        raise InvalidPhone(_("This does not look like a Vietnamese phone number."))
    if len(national) == 11 and national[:4] in _OLD_MOBILE_PREFIXES:
        national = _OLD_MOBILE_PREFIXES[national[:4]] + national[4:]
    if len(national) not in (10, 11) or national[1] == "0":
        raise InvalidPhone(
            _("A Vietnamese phone number has 10 digits (mobile) or 11 (landline), counting the leading 0.")
        )
    return "+84" + national[1:]


def looks_like_phone(text: str) -> bool:
    try:
        normalise_phone(text)
    except InvalidPhone:
        return False
    return True


def display_phone(number: str) -> str:
    """+84903123456 → 0903 123 456, the way agents read numbers out."""
    if not number.startswith("+84"):
        return number
    national = "0" + number[3:]
    if len(national) == 10:
        return f"{national[:4]} {national[4:7]} {national[7:]}"
    return f"{national[:3]} {national[3:7]} {national[7:]}"
