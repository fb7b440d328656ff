"""How a month is written, wherever one is typed or sent: a billing period in the admin's forms and in the API."""

from __future__ import annotations

# ``2025-10``, ``10/2025``, ``2025-10-01`` or ``01/10/2025`` (never the American month-first reading): what the
# admin's month fields take, what the readings API takes, and a superset of a reading file's period
# (``YYYY-MM`` or ``YYYY-MM-01``, ``billing.imports``).
MONTH_INPUT_FORMATS = ("%Y-%m", "%m/%Y", "%Y-%m-%d", "%d/%m/%Y")
