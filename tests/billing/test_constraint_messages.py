"""A billing constraint a form can reach refuses in words, never by its name, and writes nothing."""

import datetime as dt

from django.urls import reverse

from billing.models import RebateProgramme, VatRate
from crm.models import Role


def test_a_rebate_programme_with_its_months_reversed_is_refused_in_words(client, staff):
    client.force_login(staff[Role.ADMINISTRATOR])
    before = RebateProgramme.objects.count()
    answer = client.post(reverse("admin:billing_rebateprogramme_add"), {
        "name": "Giảm giá đợt 4", "period_from": "01/11/2026", "period_to": "01/10/2026",
        "bands-TOTAL_FORMS": "0", "bands-INITIAL_FORMS": "0",
    })  # fmt: skip
    page = answer.content.decode()
    assert answer.status_code == 200
    assert "The last month comes after the first." in page and "billing_rebate_periods" not in page
    assert RebateProgramme.objects.count() == before


def test_a_vat_rate_above_100_is_refused_in_words(client, staff):
    client.force_login(staff[Role.ADMINISTRATOR])
    before = VatRate.objects.count()
    answer = client.post(reverse("admin:billing_vatrate_add"),
                         {"valid_from": (dt.date.today() + dt.timedelta(days=30)).strftime("%d/%m/%Y"), "percent": "150"})  # fmt: skip
    page = answer.content.decode()
    assert answer.status_code == 200
    assert "A VAT rate is at most 100 %." in page and "billing_vat_percent" not in page
    assert VatRate.objects.count() == before
