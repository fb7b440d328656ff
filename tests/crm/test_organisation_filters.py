"""The organisation's list pages offer, in their filters, only the corporations of the rows the user may see."""

import pytest
from django.urls import reverse

from crm.models import Corporation, Role


@pytest.mark.parametrize("url_name", ["admin:crm_unit_changelist", "admin:crm_company_changelist"])
def test_the_corporation_filter_offers_only_the_users_corporations(client, staff, org, url_name, admin_user):
    agent = staff[Role.AGENT]
    theirs = org["other_corporation"].company.corporation
    mine = org["home"].company.corporation
    assert not Corporation.objects.for_user(agent).filter(pk=theirs.pk).exists()


    def offered(user):
        client.force_login(user)
        page = client.get(reverse(url_name))
        assert page.status_code == 200
        changelist = page.context["cl"]
        shown = {str(c["display"]) for spec in changelist.filter_specs for c in spec.choices(changelist)}
        return shown, page.content.decode()

    shown, content = offered(agent)  # one corporation: no choice to offer, and never another one's
    assert str(theirs) not in shown and theirs.name not in content
    shown, _content = offered(admin_user)  # every corporation
    assert {str(mine), str(theirs)} <= shown
