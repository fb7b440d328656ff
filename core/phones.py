"""Phone numbers in +84 form: the one rule for every phone the product stores (customers', callers', staff's),
and how a stored number is read out.

``normalise_phone`` accepts the spellings callers and clerks type and returns ``+84`` and the national number,
or refuses with ``InvalidPhone`` saying why; ``display_phone`` turns the stored form back into ``0903 123 456``;
``is_mobile`` tells a stored mobile (which takes an SMS) from a landline (which does not).
"""

from __future__ import annotations

import re

from django.utils.translation import gettext as _

# Mobile prefixes renumbered in 2018 (11-digit 01xx numbers became 10-digit 0xx numbers).
_OLD_MOBILE_PREFIXES = {
    "0120": "070", "0121": "079", "0122": "077", "0126": "076", "0128": "078",
    "0123": "083", "0124": "084", "0125": "085", "0127": "081", "0129": "082",
    "0162": "032", "0163": "033", "0164": "034", "0165": "035", "0166": "036",
    "0167": "037", "0168": "038", "0169": "039", "0186": "056", "0188": "058",
    "0199": "059",
}  # fmt: skip

#: What may stand between the digits of a typed number, as the inside of a regular expression's character class:
#: any space (a non-breaking one too), dots, dashes, slashes and the brackets around an area code.
PHONE_SEPARATORS = r"\s().\-/"
_PHONE_CHARS = re.compile(rf"^[0-9+{PHONE_SEPARATORS}]+$")


class InvalidPhone(ValueError):
    """The text is not a Vietnamese phone number."""


def normalise_phone(raw: str) -> str:
    """Return ``raw`` as +84 followed by the national number, or raise InvalidPhone.

    Accepts the spellings callers and clerks use: ``0903 123 456``, ``+84903123456``, ``84-903-123-456``,
    ``(028) 3822 1234``, ``0084 903 123 456``, the country code in brackets (``(+84) 903 123 456``), the trunk
    0 kept after it (``+84 (0) 903 123 456``) and old 11-digit mobile numbers (``0168…`` → ``038…``).
    """
    text = (raw or "").strip()
    if not text or not _PHONE_CHARS.match(text):
        raise InvalidPhone(
            _("A phone number has only digits, spaces, dots, dashes, brackets and a leading +.")
        )
    signed = text.removeprefix("(")  # "(+84) 903 123 456": the + opens the bracket the number starts with
    if "+" in signed[1:]:
        raise InvalidPhone(_("A + may only start a phone number."))
    digits = re.sub(r"\D", "", text)
    if signed.startswith("+"):
        if not digits.startswith("84"):
            raise InvalidPhone(_("Only Vietnamese numbers (+84) are accepted."))
        national = _after_country_code(digits[2:])
    elif digits.startswith("0084"):
        national = _after_country_code(digits[4:])
    elif digits.startswith("84") and (len(digits) in (11, 12) or (len(digits) == 13 and digits[2] == "0")):
        national = _after_country_code(digits[2:])
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


def _after_country_code(rest: str) -> str:
    """The national number (with its leading 0) from the digits typed after +84 or 0084: the trunk 0 some
    write there as well ("+84 (0) 903 123 456") is the national number's own, taken once."""
    return "0" + rest.removeprefix("0")


def looks_like_phone(text: str) -> bool:
    try:
        normalise_phone(text)
    except InvalidPhone:
        return False
    return True


_STORED_MOBILE = re.compile(r"^\+84[1-9][0-9]{8}$")


def is_mobile(number: str) -> bool:
    """Whether a stored number (+84 form, ``normalise_phone``) is a mobile, the only kind an SMS reaches: +84 and
    a 9-digit national number (10 digits with the leading 0). A landline (02x…, 10 digits after +84) is not,
    nor is anything not in +84 form (a work phone stored as typed before the rule)."""
    return bool(_STORED_MOBILE.match(number or ""))


def display_phone(number: str) -> str:
    """+84903123456 → 0903 123 456, the way agents read numbers out."""
    if not number.startswith("+84"):
        return number
    national = "0" + number[3:]
    if len(national) == 10:
        return f"{national[:4]} {national[4:7]} {national[7:]}"
    return f"{national[:3]} {national[3:7]} {national[7:]}"
