"""The longest validity the settings take for TONGDAI_API_TOKEN_DAYS is one a token may have: the admin's form
and api_token_create accept it, and refuse a day more."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from crm.models import ApiToken, Role
from crm.tokens import MAX_DAYS, api_token_create


def _days(token) -> int:
    return round((token.expiry - token.created).total_seconds() / 86400)


def test_auth_the_longest_default_validity_makes_a_token_without_days(staff, settings):
    # given: the settings' longest default
    settings.TONGDAI_API_TOKEN_DAYS = MAX_DAYS
    # when: a script makes a token without saying its days
    token, _secret = api_token_create(actor=None, user=staff[Role.AGENT], name="website")
    # then
    assert _days(token) == MAX_DAYS


def test_auth_a_day_more_than_the_longest_is_refused_and_nothing_is_made(staff):
    with pytest.raises(ValidationError) as refused:
        api_token_create(actor=None, user=staff[Role.AGENT], name="website", days=MAX_DAYS + 1)
    assert refused.value.message_dict == {"days": [f"A token lasts from 1 to {MAX_DAYS} days."]}
    assert not ApiToken.objects.exists()


def test_auth_the_admin_form_accepts_its_own_longest_default(client, staff, settings):
    # given: the longest default proposed on the token form
    settings.TONGDAI_API_TOKEN_DAYS = MAX_DAYS
    client.force_login(staff[Role.ADMINISTRATOR])
    form = client.get(reverse("admin:crm_apitoken_add")).context["adminform"].form
    proposed = form["days"].value()
    assert proposed == MAX_DAYS
    # when: sent as proposed
    page = client.post(
        reverse("admin:crm_apitoken_add"), {"user": staff[Role.AGENT].pk, "name": "Zalo", "days": str(proposed)}
    )
    # then
    assert page.status_code == 200
    assert _days(ApiToken.objects.get()) == MAX_DAYS
