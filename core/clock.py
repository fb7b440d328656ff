"""The one allowance for clocks that run ahead of the server's: a softphone's, a handheld's. A time typed or sent
that far ahead of now is taken as it is; further ahead, it is in the future and refused (an interaction is logged
once over, a meter move recorded once done)."""

from __future__ import annotations

import datetime as dt

CLOCK_SKEW = dt.timedelta(minutes=1)
