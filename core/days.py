"""The days a typed date may name, wherever one is typed: a day off in the calendar, a dashboard's period.

Beyond them the working-day arithmetic (a deadline a day past the last) and the period's end (the day after)
leave the calendar; a day outside is refused on its field, naming the range."""

from __future__ import annotations

import datetime as dt

FIRST_DAY, LAST_DAY = dt.date(1900, 1, 1), dt.date(2999, 12, 31)
