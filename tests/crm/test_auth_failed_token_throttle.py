"""The failed-token throttle blocks an address only for failures it recorded: an address that sent no bad token
is never refused, whatever rate reaches the throttle."""

import pytest
from rest_framework.settings import api_settings
from rest_framework.test import APIRequestFactory

from crm.auth import FailedTokenThrottle
from crm.models import ApiToken, Role
from crm.tokens import api_token_create

URL = "/api/v1/units/"


def _get(client, secret, address):
    return client.get(URL, HTTP_AUTHORIZATION=f"Token {secret}", REMOTE_ADDR=address)


@pytest.fixture
def failed_token_rate(monkeypatch):
    def set_rate(rate):
        monkeypatch.setitem(api_settings.DEFAULT_THROTTLE_RATES, "failed_token", rate)

    return set_rate


def test_auth_a_good_token_is_not_throttled_when_no_bad_token_was_sent(client, staff, failed_token_rate):
    # given: a rate of 0 (the start refuses it now; the throttle must not block on it either)
    failed_token_rate("0/min")
    _token, secret = api_token_create(actor=None, user=staff[Role.AGENT], name="website")
    # when: the first request of the address, with a good token
    response = _get(client, secret, "10.9.9.9")
    # then
    assert response.status_code == 200, (response.status_code, response.content)


@pytest.mark.parametrize("rate", ["0/min", "1/min", "10/min"])
def test_auth_an_address_with_no_recorded_failure_is_never_blocked(db, failed_token_rate, rate):
    failed_token_rate(rate)
    request = APIRequestFactory().get(URL, REMOTE_ADDR="10.9.9.8")
    throttle = FailedTokenThrottle()
    assert throttle.blocks(request) is False
    assert throttle.history == []


def test_auth_one_bad_token_at_a_rate_of_one_blocks_that_address_only(client, staff, failed_token_rate):
    # given: one bad token a minute tolerated
    failed_token_rate("1/min")
    _token, secret = api_token_create(actor=None, user=staff[Role.AGENT], name="website")
    # when: a good token first, then a bad one, then the good one again, from the same address
    first = _get(client, secret, "10.9.9.7")
    bad = _get(client, "tongdai_" + "0" * 64, "10.9.9.7")
    after = _get(client, secret, "10.9.9.7")
    # then: the good token passed before the failure, the failure is a 401, then the address is refused
    assert (first.status_code, bad.status_code, after.status_code) == (200, 401, 429)
    assert 1 <= int(after["Retry-After"]) <= 60
    # another address is not concerned, and the refusals deleted no token
    assert _get(client, secret, "10.9.9.6").status_code == 200
    assert ApiToken.objects.count() == 1
