"""A billing clerk corrects a mistyped reading from the readings admin ("Correct this reading…", through
``billing.services.reading_correct``): the bill not yet issued is recomputed; a refusal changes nothing and
comes back beside its field with what was typed; another unit's clerk and an agent are refused."""

import pytest
from django.urls import reverse

from billing.models import Adjustment, AuditRecord, Invoice, MeterReading
from crm.models import Role
from tests.billing.conftest import NOV, OCT

pytestmark = pytest.mark.django_db


@pytest.fixture
def flagged(two_customers):
    """The home customer's November reading, 750 typed for about 150 + 145: flagged, its bill held."""
    mine, _theirs = two_customers
    return MeterReading.objects.get(contract__customer=mine, period=NOV, status="flagged")


def _url(reading):
    return reverse("admin:billing_meterreading_correct", args=[reading.pk])


def _state(reading):
    bill = Invoice.objects.get(contract_id=reading.contract_id, period=NOV, kind="regular")
    readings = list(MeterReading.objects.filter(contract_id=reading.contract_id).values_list("pk", "value", "status"))
    return readings, (bill.kwh, bill.total, bill.status, bill.reading_id), AuditRecord.objects.count()


def test_the_change_page_and_the_list_link_to_the_correction(client, flagged, make_staff):
    clerk = make_staff(Role.BILLING_CLERK, [flagged.unit])
    client.force_login(clerk)
    url = _url(flagged)
    assert url in client.get(reverse("admin:billing_meterreading_change", args=[flagged.pk])).content.decode()
    assert url in client.get(reverse("admin:billing_meterreading_changelist")).content.decode()
    page = client.get(url)
    assert page.status_code == 200
    assert 'value="750"' in page.content.decode()  # the register as read, to be corrected


def test_a_clerk_corrects_a_mistyped_reading_and_the_held_bill_is_recomputed(client, flagged, make_staff):
    clerk = make_staff(Role.BILLING_CLERK, [flagged.unit])
    client.force_login(clerk)
    response = client.post(_url(flagged), {"value": "290", "reason": "Gõ nhầm 750 thay cho 290"}, follow=True)
    assert response.status_code == 200
    flagged.refresh_from_db()
    new = MeterReading.objects.get(corrects=flagged)
    assert flagged.status == "superseded"
    assert (new.value, new.previous_value, new.kwh, new.reader_id) == (290, 150, 140, clerk.pk)
    bill = Invoice.objects.get(contract_id=flagged.contract_id, period=NOV, kind="regular")
    assert (bill.reading_id, bill.kwh) == (new.pk, 140)  # recomputed from the corrected reading, as the service does
    assert response.redirect_chain[-1][0] == reverse("admin:billing_meterreading_change", args=[new.pk])
    text = response.content.decode()
    assert "register 750 → 290, 140 kWh" in text
    assert "Its bill is recomputed: 140 kWh" in text
    audit = AuditRecord.objects.filter(action="reading.correct").latest("pk")
    assert audit.reason == "Gõ nhầm 750 thay cho 290"


@pytest.mark.parametrize(
    ("typed", "field", "words"),
    [
        ({"value": "5", "reason": "Gõ nhầm"}, "value", "The corrected register is below the previous reading."),
        ({"value": "290", "reason": "   "}, "reason", "This field is required."),
        ({"value": "10000000000000", "reason": "Gõ nhầm"}, "value", "more than any meter reads"),
        ({"value": "2.90", "reason": "Gõ nhầm"}, "value", "digits"),
    ],
)
def test_a_refused_correction_changes_nothing_and_keeps_what_was_typed(client, flagged, make_staff, typed, field, words):
    clerk = make_staff(Role.BILLING_CLERK, [flagged.unit])
    client.force_login(clerk)
    before = _state(flagged)
    response = client.post(_url(flagged), typed)
    assert response.status_code == 400
    form = response.context["form"]
    assert field in form.errors and words in " ".join(form.errors[field])
    assert not form.non_field_errors()
    assert f'value="{typed["value"]}"' in response.content.decode()
    assert _state(flagged) == before


def test_a_reading_already_corrected_is_refused_in_words(client, flagged, make_staff):
    clerk = make_staff(Role.BILLING_CLERK, [flagged.unit])
    client.force_login(clerk)
    client.post(_url(flagged), {"value": "290", "reason": "Gõ nhầm"})
    before = _state(flagged)
    response = client.post(_url(flagged), {"value": "300", "reason": "Lần nữa"})
    assert response.status_code == 400
    assert "This reading was already corrected." in response.content.decode()
    assert _state(flagged) == before


def test_another_units_clerk_is_refused_and_nothing_changes(client, two_customers, flagged, make_staff):
    _mine, theirs = two_customers
    other = make_staff(Role.BILLING_CLERK, [theirs.unit])
    client.force_login(other)
    before = _state(flagged)
    assert client.get(_url(flagged)).status_code == 404
    assert client.post(_url(flagged), {"value": "290", "reason": "Gõ nhầm"}).status_code == 404
    assert _state(flagged) == before


def test_an_agent_is_refused_and_nothing_changes(client, flagged, make_staff):
    agent = make_staff(Role.AGENT, [flagged.unit])
    client.force_login(agent)
    before = _state(flagged)
    assert client.get(_url(flagged)).status_code == 403
    assert client.post(_url(flagged), {"value": "290", "reason": "Gõ nhầm"}).status_code == 403
    assert _state(flagged) == before


def test_correcting_the_reading_of_an_issued_bill_says_the_adjustment_follows(client, two_customers, make_staff):
    mine, _theirs = two_customers
    october = MeterReading.objects.get(contract__customer=mine, period=OCT, status__in=["accepted", "valid"])
    clerk = make_staff(Role.BILLING_CLERK, [october.unit])
    client.force_login(clerk)
    issued = Invoice.objects.get(contract_id=october.contract_id, period=OCT, kind="regular")
    before = (issued.kwh, issued.total, issued.status)
    response = client.post(_url(october), {"value": "140", "reason": "Gõ nhầm"}, follow=True)
    issued.refresh_from_db()
    assert (issued.kwh, issued.total, issued.status) == before  # an issued bill never changes
    assert f"Its bill {issued.number} was issued" in response.content.decode()
    new = MeterReading.objects.get(corrects=october)
    proposal = Adjustment.objects.get(original=issued, corrected_reading=new)
    assert (proposal.kwh, proposal.status, proposal.proposed_by_id) == (140, "proposed", clerk.pk)


def test_a_link_edited_by_hand_is_not_found(client, flagged, make_staff):
    client.force_login(make_staff(Role.BILLING_CLERK, [flagged.unit]))
    url = _url(flagged).replace(f"/{flagged.pk}/", "/abc/")
    assert client.get(url).status_code == 404
    assert client.post(url, {"value": "290", "reason": "Gõ nhầm"}).status_code == 404
