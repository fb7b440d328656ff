"""API throttles (DRF's, on the cache every process shares), with their rates read from the settings at each
request (DRF reads them once, when the class is defined)."""

from __future__ import annotations

from rest_framework.settings import api_settings
from rest_framework.throttling import UserRateThrottle


class UserThrottle(UserRateThrottle):
    """Requests per user (per client address for anonymous ones): ``DEFAULT_THROTTLE_RATES["user"]``."""

    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)
