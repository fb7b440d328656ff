"""Billing clerks run the government's rebate rounds of their units: Apply and Reverse in the programme admin
(``billing.apply_rebateprogramme``), started as a background job that runs as the clerk; a programme that
reaches a unit they do not serve (or every unit) is refused naming the units, and nothing changes. What a
programme is (its name, months, kWh and bands) stays the administrators' to change."""

from __future__ import annotations

from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal

import pytest
from django.contrib.messages import get_messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils import translation

from billing import jobs
from billing import services as billing
from billing.models import BillingJob, Invoice, InvoiceLine, RebateApplication, RebateBand, RebateProgramme
from crm.models import Role
from tests.billing.conftest import OCT

ACTION_CHECKBOX = "_selected_action"
CHANGELIST = "admin:billing_rebateprogramme_changelist"


def _half_up(value: Decimal) -> int:
    return int(value.quantize(Decimal("1"), rounding=ROUND_HALF_UP))


def _expected(invoice: Invoice, percent: Decimal) -> tuple[int, int]:
    """The reduction of a bill by ``percent`` and the VAT it takes off, computed here from the bill's lines:
    per VAT rate, base × percent / 100 half up; its VAT, VAT(base) − VAT(base − reduction)."""
    bases: dict = defaultdict(int)
    for amount, rate in InvoiceLine.objects.filter(invoice=invoice).values_list("amount", "vat_percent"):
        bases[Decimal(rate)] += amount
    amount = vat = 0
    for rate, base in bases.items():
        if base <= 0:
            continue
        cut = _half_up(Decimal(base) * percent / 100)
        amount += cut
        vat += _half_up(Decimal(base) * rate / 100) - _half_up(Decimal(base - cut) * rate / 100)
    return amount, vat


def _snapshot():
    return (
        list(Invoice.objects.order_by("pk").values_list("pk", "subtotal", "vat", "total")),
        InvoiceLine.objects.count(),
        list(RebateApplication.objects.values_list("pk", flat=True)),
        list(RebateProgramme.objects.order_by("pk").values_list("pk", "status", "applied_at")),
        BillingJob.objects.count(),
    )


def _programme(units, name="Giảm tiền điện đợt 1"):
    programme = RebateProgramme.objects.create(
        name=name, legal_basis="Nghị quyết 55/NQ-CP", customer_types=["residential"], period_from=OCT,
        period_to=OCT,
    )  # fmt: skip
    RebateBand.objects.create(programme=programme, from_kwh=0, to_kwh=100, percent=Decimal("15"))
    RebateBand.objects.create(programme=programme, from_kwh=100, to_kwh=None, percent=Decimal("10"))
    programme.units.set(units)
    return programme


@pytest.fixture
def bills(org, make_customer, read):
    """October's bills: two of the home unit (80 and 150 kWh) and one of another company's unit (120 kWh)."""
    home = [make_customer(org["home"], phones=[f"0903 710 00{i}"]) for i in range(2)]
    away = make_customer(org["other_company"], phones=["0903 710 009"])
    for customer, kwh in ((home[0], 80), (home[1], 150), (away, 120)):
        read(customer, OCT, kwh)
    billing.billing_run(actor=None, period=OCT)
    return {
        "home80": Invoice.objects.get(customer=home[0], period=OCT),
        "home150": Invoice.objects.get(customer=home[1], period=OCT),
        "away": Invoice.objects.get(customer=away, period=OCT),
    }


@pytest.fixture
def clerk(staff):
    return staff[Role.BILLING_CLERK]


def _post(client, action, programme, capture):
    with capture(execute=True):
        return client.post(reverse(CHANGELIST), {"action": action, ACTION_CHECKBOX: [programme.pk]})


def test_a_clerk_applies_and_reverses_a_round_of_their_unit_through_the_admin(
    client, clerk, org, bills, django_capture_on_commit_callbacks
):
    programme = _programme([org["home"]])
    before = {key: Invoice.objects.get(pk=invoice.pk) for key, invoice in bills.items()}
    expected = {"home80": _expected(bills["home80"], Decimal("15")),
                "home150": _expected(bills["home150"], Decimal("10"))}  # fmt: skip
    assert all(amount > 0 for amount, _vat in expected.values())
    client.force_login(clerk)
    page = client.get(reverse(CHANGELIST))
    offered = {name for name, _label in page.context["action_form"].fields["action"].choices}
    assert {"dry_run", "apply_programme", "reverse_programme"} <= offered

    response = _post(client, "apply_programme", programme, django_capture_on_commit_callbacks)
    job = BillingJob.objects.get(kind="rebate_apply")
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:billing_billingjob_status", args=[job.pk])
    assert (job.status, job.started_by, job.error) == ("done", clerk, "")
    assert job.result == {
        "invoices": 2,
        "amount": sum(amount for amount, _vat in expected.values()),
        "vat": sum(vat for _amount, vat in expected.values()),
    }
    for key, (amount, vat) in expected.items():
        application = RebateApplication.objects.get(programme=programme, invoice=bills[key])
        assert (application.amount, application.vat) == (amount, vat)
        now, then = Invoice.objects.get(pk=bills[key].pk), before[key]
        assert (now.subtotal, now.vat, now.total) == (
            then.subtotal - amount,
            then.vat - vat,
            then.total - amount - vat,
        )
    away = Invoice.objects.get(pk=bills["away"].pk)  # another company's bill, outside the programme
    assert (away.subtotal, away.total) == (before["away"].subtotal, before["away"].total)
    programme.refresh_from_db()
    assert programme.status == "applied"

    response = _post(client, "reverse_programme", programme, django_capture_on_commit_callbacks)
    undone = BillingJob.objects.get(kind="rebate_reverse")
    assert (undone.status, undone.started_by, undone.result) == (
        "done",
        clerk,
        {"reversed": 2, "kept_on_issued": 0},
    )
    assert not RebateApplication.objects.exists()
    for then in before.values():
        now = Invoice.objects.get(pk=then.pk)
        assert (now.subtotal, now.vat, now.total) == (then.subtotal, then.vat, then.total)
    programme.refresh_from_db()
    assert programme.status == "reversed"


def test_a_clerk_is_refused_a_round_reaching_another_companys_unit_and_nothing_is_applied(
    client, clerk, org, bills, django_capture_on_commit_callbacks
):
    programme = _programme([org["home"], org["other_company"]])
    before = _snapshot()
    client.force_login(clerk)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse(CHANGELIST), {"action": "apply_programme", ACTION_CHECKBOX: [programme.pk]}, follow=True
        )
    assert response.status_code == 200
    shown = " ".join(str(m) for m in get_messages(response.wsgi_request)) or response.content.decode()
    assert org["other_company"].code in shown and org["home"].code not in shown.split(programme.name, 1)[-1]
    assert _snapshot() == before  # no job, no rebate, the programme still a draft
    with translation.override("en"), pytest.raises(ValidationError) as refused:
        billing.rebate_apply(actor=clerk, programme=programme)
    assert refused.value.messages == [
        f"This programme covers units you do not serve: {org['other_company']}. Nothing was applied or reversed."
    ]
    with pytest.raises(ValidationError):
        jobs.job_start_rebate(actor=clerk, programme=programme)
    assert _snapshot() == before


def test_a_round_of_every_unit_is_only_for_those_who_see_everything(clerk, staff, bills):
    programme = _programme([])  # no units named: every unit
    before = _snapshot()
    with translation.override("en"), pytest.raises(ValidationError) as refused:
        billing.rebate_apply(actor=clerk, programme=programme)
    assert "covers every unit" in refused.value.messages[0]
    assert _snapshot() == before
    outcome = billing.rebate_apply(actor=staff[Role.ADMINISTRATOR], programme=programme)
    assert outcome["invoices"] == 3


def test_a_clerk_is_refused_to_reverse_a_round_reaching_another_unit(
    client, clerk, staff, org, bills, django_capture_on_commit_callbacks
):
    programme = _programme([org["home"], org["other_company"]])
    applied = billing.rebate_apply(actor=staff[Role.ADMINISTRATOR], programme=programme)
    assert applied["invoices"] == 3
    before = _snapshot()
    client.force_login(clerk)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse(CHANGELIST), {"action": "reverse_programme", ACTION_CHECKBOX: [programme.pk]}, follow=True
        )
    shown = " ".join(str(m) for m in get_messages(response.wsgi_request)) or response.content.decode()
    assert org["other_company"].code in shown
    assert _snapshot() == before  # still applied on all three bills
    with pytest.raises(ValidationError):
        billing.rebate_reverse(actor=clerk, programme=programme)
    assert _snapshot() == before
    assert RebateApplication.objects.filter(programme=programme).count() == 3


def test_a_clerk_cannot_change_what_a_programme_is(client, clerk, org, bills):
    programme = _programme([org["home"]])
    client.force_login(clerk)
    change = reverse("admin:billing_rebateprogramme_change", args=[programme.pk])
    assert client.get(change).status_code == 200  # read only
    response = client.post(change, {
        "name": "Đổi tên", "legal_basis": "NQ", "customer_types": "[]", "units": [org["home"].pk],
        "period_from": "2025-10-01", "period_to": "2025-10-01", "min_kwh": "0", "max_kwh": "",
        "bands-TOTAL_FORMS": "0", "bands-INITIAL_FORMS": "0",
    })  # fmt: skip
    assert response.status_code == 403
    assert client.get(reverse("admin:billing_rebateprogramme_add")).status_code == 403
    programme.refresh_from_db()
    assert programme.name == "Giảm tiền điện đợt 1"
    assert list(programme.bands.order_by("from_kwh").values_list("from_kwh", "percent")) == [
        (0, Decimal("15")),
        (100, Decimal("10")),
    ]
    assert clerk.has_perm("billing.apply_rebateprogramme")
    assert not clerk.has_perm("billing.change_rebateprogramme")
    assert not clerk.has_perm("billing.change_rebateband")


@pytest.mark.parametrize("role", [Role.AGENT, Role.SUPERVISOR, Role.MANAGER])
def test_other_roles_cannot_apply_or_reverse(
    client, staff, org, bills, role, django_capture_on_commit_callbacks
):
    user = staff[role]
    draft = _programme([org["home"]])
    applied = _programme([org["home"]], name="Giảm tiền điện đợt 2")
    billing.rebate_apply(actor=None, programme=applied)
    before = _snapshot()
    assert not user.has_perm("billing.apply_rebateprogramme")
    with pytest.raises(PermissionDenied):
        billing.rebate_apply(actor=user, programme=draft)
    with pytest.raises(PermissionDenied):
        billing.rebate_reverse(actor=user, programme=applied)
    with pytest.raises(PermissionDenied):
        jobs.job_start_rebate(actor=user, programme=draft)
    client.force_login(user)
    page = client.get(reverse(CHANGELIST))
    if page.status_code == 200:  # those who read the programmes are not offered Apply or Reverse
        offered = {name for name, _label in page.context["action_form"].fields["action"].choices}
        assert not offered & {"apply_programme", "reverse_programme"}
    else:
        assert page.status_code == 403
    for action, programme in (("apply_programme", draft), ("reverse_programme", applied)):
        with django_capture_on_commit_callbacks(execute=True):
            client.post(reverse(CHANGELIST), {"action": action, ACTION_CHECKBOX: [programme.pk]})
    assert _snapshot() == before
