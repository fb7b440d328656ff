"""API throttles (DRF's, on the cache every process shares), with their rates read from the settings at each
request (DRF reads them once, when the class is defined)."""

from __future__ import annotations

from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle, UserRateThrottle


class UserThrottle(UserRateThrottle):
    """Requests per user (per client address for anonymous ones): ``DEFAULT_THROTTLE_RATES["user"]``."""

    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)


class FailedTokenThrottle(SimpleRateThrottle):
    """Failed token authentications per client address: ``DEFAULT_THROTTLE_RATES["failed_token"]``. Only
    failures are recorded (``record_failure``); ``blocks`` tells whether the address is over its rate."""

    scope = "failed_token"

    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def get_cache_key(self, request, view=None):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def blocks(self, request) -> bool:
        """True while the address's failures within the window reach the rate (nothing is recorded)."""
        if self.rate is None:
            return False
        self.key = self.get_cache_key(request)
        self.now = self.timer()
        num_requests, duration = self.parse_rate(self.rate)
        self.history = [t for t in self.cache.get(self.key, []) if t > self.now - (duration or 0)]
        return len(self.history) >= (num_requests or 0)

    def record_failure(self, request) -> None:
        if self.rate is not None:
            # Records the attempt while under the rate; the throttle reads no view.
            self.allow_request(request, None)  # type: ignore[arg-type]
