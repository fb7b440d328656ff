"""How the interface shows money and invoice lines: one rule, used by the admin's displays, the customer card
and the printable invoice. Exports and the API keep numbers as numbers.

Money is whole đồng written the Vietnamese way whatever the interface's language: the thousands grouped by
dots and the sign ₫ after a space, ``1.369.721 ₫`` (a negative amount ``-45.000 ₫``).
"""

from __future__ import annotations

import re

from django.utils.translation import gettext as _

CURRENCY = "₫"


def money(amount) -> str:
    """``1369721`` → ``1.369.721 ₫``; nothing (``None`` or empty) → an empty text."""
    if amount is None or amount == "":
        return ""
    value = int(amount)
    grouped = f"{abs(value):,}".replace(",", ".")
    return f"{'-' if value < 0 else ''}{grouped} {CURRENCY}"


def kwh(value) -> str:
    """A quantity of kWh grouped the same way, without a unit: ``12.345``."""
    if value is None or value == "":
        return ""
    number = int(value)
    return f"{'-' if number < 0 else ''}{abs(number):,}".replace(",", ".")


# The labels the tariff and the services store on invoice lines (in English, or in the language of whoever
# made the line), read back in the interface's language. An unknown label is shown as stored.
_TIER = re.compile(r"^Tier (?P<n>\d+) \((?:(?P<low>\d+)(?P<plus>\+)?(?:–(?P<high>\d+))? kWh|all kWh)\)$")
_REBATE = re.compile(r"^Rebate #\d+: (?P<name>.*)$")
_ADJUSTMENT = re.compile(r"^Adjustment of (?P<number>\S+)$")
_OFFSET = re.compile(r"^Refund offset \(adjustment (?P<ref>[^)]+)\)$")
# The stored (English) start of the hold reason of a bill whose reading is flagged: ``services.flagged_hold``, the
# billing run's SQL and ``invoices_issue`` write it from here, and ``hold_reason_label`` reads it back below.
FLAGGED_HOLD_PREFIX = "Reading flagged: "
_FLAGGED = re.compile(rf"^{re.escape(FLAGGED_HOLD_PREFIX)}(?P<reason>.*)$", re.S)


def line_label(label: str) -> str:
    """An invoice line's label in the interface's language (tiers, time-of-use registers, flat price, rebates,
    adjustments and refund offsets)."""
    fixed = {"Flat": _("Flat price"), "Normal": _("Normal hours"), "Peak": _("Peak hours"),
             "Off-peak": _("Off-peak hours")}  # fmt: skip
    if label in fixed:
        return fixed[label]
    if match := _TIER.match(label):
        n, low, high = match["n"], match["low"], match["high"]
        if low is None:
            return _("Tier %(n)s (all kWh)") % {"n": n}
        if match["plus"]:
            return _("Tier %(n)s (from %(low)s kWh)") % {"n": n, "low": low}
        return _("Tier %(n)s (%(low)s–%(high)s kWh)") % {"n": n, "low": low, "high": high}
    if match := _REBATE.match(label):
        return _("Rebate: %(name)s") % {"name": match["name"]}
    if match := _ADJUSTMENT.match(label):
        return _("Adjustment of %(n)s") % {"n": match["number"]}
    if match := _OFFSET.match(label):
        return _("Refund offset (adjustment %(n)s)") % {"n": match["ref"]}
    return label


def hold_reason_label(reason: str) -> str:
    """A bill's hold reason in the interface's language. The billing run stores a flagged reading's reason
    after an English prefix (``services.flagged_hold``; the flag's own text is in the language of whoever
    recorded the reading); any other reason is shown as stored."""
    if match := _FLAGGED.match(reason):
        return _("Reading flagged: %(r)s") % {"r": match["reason"]}
    return reason
