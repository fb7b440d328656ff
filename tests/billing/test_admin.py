"""The billing admin: queues that do not grow in queries, actions through the services (four eyes included),
the billing run and anomaly scan views, the customer card's invoices and dispute warning, the roles, and the
streamed exports of invoices and disputes."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal
from unittest import mock

import openpyxl
import pytest
from django.contrib.messages import get_messages
from django.core.management import call_command
from django.db import connection
from django.db.models.query import QuerySet
from django.http import StreamingHttpResponse
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billing import services as billing
from billing.models import (
    Adjustment,
    AnomalyBandCount,
    AuditRecord,
    BillingJob,
    BillingRun,
    Dispute,
    Invoice,
    MeterReading,
    PriceStep,
    PriceTable,
    RebateApplication,
    RebateBand,
    RebateProgramme,
    Refund,
    Reinspection,
    VatRate,
)
from billing.money import money
from billing.resources import DisputeResource, InvoiceResource
from billing.selectors import CARD_INVOICES
from core import exports
from crm.models import Role
from tests.billing.conftest import NOV, OCT
from tests.conftest import _bill
from tests.exported import by_column
from tickets.services import ticket_open

ACTION_CHECKBOX = "_selected_action"


def changelist(model) -> str:
    return reverse(f"admin:billing_{model._meta.model_name}_changelist")


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def billing_ticket(customer, catalogue):
    return ticket_open(
        actor=None,
        category=catalogue["billing"],
        channel="phone",
        description="Hóa đơn cao",
        customer=customer,
    ).ticket


def history(customers, catalogue, make_staff) -> None:
    """The shared fixture's billing history (readings, runs, issue, a dispute, an approved adjustment with its
    refund, a rebate) for more customers."""
    _bill(customers, {c.pk: billing_ticket(c, catalogue) for c in customers}, make_staff)


@pytest.fixture
def clerk(staff):
    return staff[Role.BILLING_CLERK]


@pytest.fixture
def second_clerk(org, make_staff):
    return make_staff(Role.BILLING_CLERK, [org["home"]])


def issued_invoice(customer, read, kwh=250):
    read(customer, OCT, kwh)
    billing.billing_run(actor=None, period=OCT, unit=customer.unit)
    billing.invoices_issue(actor=None, period=OCT, unit=customer.unit)
    return Invoice.objects.get(customer=customer, period=OCT)


# Queues: a bounded number of queries that does not grow with rows ----------------------------------------


@pytest.mark.parametrize(
    "model", [Invoice, Dispute, Reinspection, Adjustment, AuditRecord, Refund, MeterReading]
)
def test_a_clerks_queue_takes_the_same_few_queries_for_few_and_many_rows(
    client, clerk, make_customer, catalogue, make_staff, org, model
):
    history([make_customer(phones=["0903 700 001"])], catalogue, make_staff)
    client.force_login(clerk)
    url = changelist(model)
    client.get(url)  # warm the caches (content types, the session)
    with CaptureQueriesContext(connection) as few:
        response = client.get(url)
    assert response.status_code == 200
    listed_few = len(response.context["cl"].result_list)
    assert listed_few == model.objects.for_user(clerk).count() > 0
    history(
        [make_customer(phones=[f"0903 700 10{i}"]) for i in range(3)]
        + [make_customer(org["other_corporation"], phones=["0903 700 200"])],
        catalogue,
        make_staff,
    )
    with CaptureQueriesContext(connection) as many:
        response = client.get(url)
    listed = {obj.pk for obj in response.context["cl"].result_list}
    in_scope = model.objects.for_user(clerk).count()
    assert len(listed) == min(in_scope, response.context["cl"].list_per_page) and in_scope > listed_few
    assert listed.isdisjoint(
        model.objects.in_units([org["other_corporation"].pk]).values_list("pk", flat=True)
    )
    assert len(many) == len(few), [q["sql"][:150] for q in many.captured_queries]
    # The audit list also reads each kind of record on its page once, to name the records by number or code.
    kinds = AuditRecord.objects.for_user(clerk).exclude(object_id=None).values("object_type").distinct().count()
    bound = 12 + (kinds if model is AuditRecord else 0)
    assert len(few) <= bound, [q["sql"][:150] for q in few.captured_queries]


def test_the_queues_filter_what_waits(client, clerk, make_customer, catalogue, make_staff):
    customer = make_customer()
    history([customer], catalogue, make_staff)
    client.force_login(clerk)
    open_disputes = client.get(changelist(Dispute), {"queue": "open"}).context["cl"].result_list
    assert {d.pk for d in open_disputes} == set(Dispute.objects.open().values_list("pk", flat=True))
    to_inspect = client.get(changelist(Reinspection), {"queue": "open"}).context["cl"].result_list
    assert {r.pk for r in to_inspect} == set(Reinspection.objects.open().values_list("pk", flat=True))
    assert to_inspect
    awaiting = client.get(changelist(Adjustment), {"queue": "awaiting"}).context["cl"].result_list
    assert list(awaiting) == []  # the fixture's adjustment was approved
    invoices = client.get(changelist(Invoice), {"period": NOV.isoformat(), "status": "held"}).context["cl"]
    assert {i.pk for i in invoices.result_list} == set(
        Invoice.objects.filter(period=NOV, status="held").values_list("pk", flat=True)
    )


# Adjustments: four eyes ----------------------------------------------------------------------------------


def test_the_proposer_cannot_approve_their_own_adjustment_and_another_clerk_can(
    client, clerk, second_clerk, make_customer, read
):
    invoice = issued_invoice(make_customer(), read, kwh=250)
    client.force_login(clerk)
    proposed = client.post(
        reverse("admin:billing_adjustment_add"),
        {
            "original": invoice.pk,
            "dispute": "",
            "corrected_reading": "",
            "kwh": "180",
            "record": "Đọc nhầm số",
        },
    )
    assert proposed.status_code == 302, proposed.content.decode()[:2000]
    adjustment = Adjustment.objects.get()
    expected = billing.charge_for(category="residential", period=OCT, kwh=180).total - invoice.total
    assert (adjustment.proposed_by, adjustment.kwh, adjustment.delta_total) == (clerk, 180, expected)

    refused = client.post(changelist(Adjustment), {"action": "approve", ACTION_CHECKBOX: [adjustment.pk]})
    assert refused.status_code == 302
    assert any("another billing clerk" in m for m in texts(refused))
    adjustment.refresh_from_db()
    assert (adjustment.status, adjustment.decided_by, adjustment.invoice) == ("proposed", None, None)
    assert not Invoice.objects.filter(kind="adjustment").exists() and not Refund.objects.exists()

    client.force_login(second_clerk)
    approved = client.post(changelist(Adjustment), {"action": "approve", ACTION_CHECKBOX: [adjustment.pk]})
    assert approved.status_code == 302
    adjustment.refresh_from_db()
    assert (adjustment.status, adjustment.decided_by) == ("approved", second_clerk)
    made = adjustment.invoice
    assert (made.kind, made.status, made.adjusts, made.total) == ("adjustment", "issued", invoice, expected)
    assert Refund.objects.filter(adjustment=adjustment, amount=-expected).count() == (
        1 if expected < 0 else 0
    )
    # The original's page shows the chain: the adjustment invoice and the correction record.
    page = client.get(reverse("admin:billing_invoice_change", args=[invoice.pk]))
    assert page.status_code == 200
    assert made.number in page.content.decode()


def test_a_service_refusal_in_the_add_form_comes_back_on_the_form(client, clerk, make_customer, read):
    read(make_customer(), OCT, 120)
    billing.billing_run(actor=None, period=OCT)
    draft = Invoice.objects.get()
    client.force_login(clerk)
    response = client.post(
        reverse("admin:billing_adjustment_add"),
        {"original": draft.pk, "dispute": "", "corrected_reading": "", "kwh": "100", "record": "Sai"},
    )
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert any("Only an issued bill is adjusted" in e for e in form.non_field_errors())
    assert (form["kwh"].value(), form["record"].value()) == ("100", "Sai")  # what the clerk typed
    assert not Adjustment.objects.exists()


def test_an_adjustment_refuses_a_reading_or_dispute_of_another_bill(
    client, clerk, make_customer, read, catalogue
):
    mine, other = make_customer(phones=["0903 720 001"]), make_customer(phones=["0903 720 002"])
    invoice = issued_invoice(mine, read)
    read(other, OCT, 90)
    billing.billing_run(actor=None, period=OCT)
    stranger = Invoice.objects.get(customer=other)
    dispute = billing.dispute_open(
        actor=None, ticket=billing_ticket(other, catalogue), invoice=stranger, claim="x"
    )
    client.force_login(clerk)
    response = client.post(
        reverse("admin:billing_adjustment_add"),
        {
            "original": invoice.pk, "dispute": dispute.pk, "corrected_reading": stranger.reading_id, "kwh": "",
            "record": "Sai",
        },
    )  # fmt: skip
    assert response.status_code == 200
    assert set(response.context["adminform"].form.errors) == {"dispute", "corrected_reading"}
    assert not Adjustment.objects.exists()


def test_a_rejection_asks_for_a_note_first(client, clerk, second_clerk, make_customer, read):
    invoice = issued_invoice(make_customer(), read)
    adjustment = billing.adjustment_propose(actor=clerk, invoice=invoice, record="Sai", kwh=invoice.kwh + 40)
    client.force_login(second_clerk)
    asked = client.post(changelist(Adjustment), {"action": "reject", ACTION_CHECKBOX: [adjustment.pk]})
    assert asked.status_code == 200 and "note" in asked.context["form"].fields
    adjustment.refresh_from_db()
    assert adjustment.status == "proposed"
    done = client.post(
        changelist(Adjustment),
        {
            "action": "reject",
            ACTION_CHECKBOX: [adjustment.pk],
            "_confirmed": "1",
            "note": "Không có biên bản",
        },
    )
    assert done.status_code == 302
    adjustment.refresh_from_db()
    assert (adjustment.status, adjustment.decision_note, adjustment.decided_by) == (
        "rejected",
        "Không có biên bản",
        second_clerk,
    )


# Invoice actions, re-inspections, refunds ----------------------------------------------------------------


def test_a_clerk_holds_releases_and_issues_drafts(client, clerk, make_customer, read):
    customer = make_customer()
    read(customer, OCT, 120)
    billing.billing_run(actor=None, period=OCT)
    invoice = Invoice.objects.get()
    client.force_login(clerk)
    client.post(changelist(Invoice), {"action": "hold", ACTION_CHECKBOX: [invoice.pk]})
    invoice.refresh_from_db()
    assert (invoice.status, invoice.hold_reason) == ("held", "Held by a billing clerk")
    refused = client.post(changelist(Invoice), {"action": "issue", ACTION_CHECKBOX: [invoice.pk]})
    assert any(invoice.number in m for m in texts(refused))  # a held bill is not issued: a message, no 500
    client.post(changelist(Invoice), {"action": "release", ACTION_CHECKBOX: [invoice.pk]})
    client.post(changelist(Invoice), {"action": "issue", ACTION_CHECKBOX: [invoice.pk]})
    invoice.refresh_from_db()
    assert invoice.status == "issued" and invoice.issued_at is not None
    assert list(
        AuditRecord.objects.filter(object_type="invoice", object_id=invoice.pk).values_list(
            "action", flat=True
        )
    ) == ["invoice.hold", "invoice.release", "invoice.issue"]


def test_the_re_inspection_outcome_is_recorded_on_an_intermediate_page(client, clerk, make_customer, read):
    customer = make_customer()
    read(customer, OCT, 100)
    rise = read(customer, NOV, 100 + 400)
    billing.billing_run(actor=None, period=NOV)
    billing.anomaly_scan(actor=None, period=NOV)
    item = Reinspection.objects.get(reading=rise)
    assert Invoice.objects.get(period=NOV).status == "held"
    client.force_login(clerk)
    queue = changelist(Reinspection) + "?queue=open"
    asked = client.post(queue, {"action": "record_outcome", ACTION_CHECKBOX: [item.pk]})
    assert asked.status_code == 200 and set(asked.context["form"].fields) == {
        "outcome",
        "reread_value",
        "evidence",
    }
    assert f'action="{queue}"' in asked.content.decode()  # the queue the clerk was working in
    done = client.post(
        queue,
        {
            "action": "record_outcome", ACTION_CHECKBOX: [item.pk], "_confirmed": "1", "outcome": "confirmed",
            "reread_value": str(rise.value), "evidence": "Ảnh công tơ, niêm phong còn",
        },
    )  # fmt: skip
    assert done.status_code == 302 and done["Location"].endswith("?queue=open")  # back to the same queue
    item.refresh_from_db()
    assert (item.outcome, item.reread_value, item.inspector) == ("confirmed", rise.value, clerk)
    assert Invoice.objects.get(period=NOV).status == "draft"  # the rise was real: the bill goes on


def test_a_refund_is_settled_with_its_payment_reference(client, clerk, second_clerk, make_customer, read):
    from django.utils import timezone

    # October paid in full, then corrected down: the credit was overpaid, and is paid back.
    invoice = issued_invoice(make_customer(), read, kwh=350)
    billing.payment_record(actor=clerk, invoice=invoice, amount=invoice.amount_due, paid_at=timezone.now(),
                           source="counter", reference="BL-1")  # fmt: skip
    adjustment = billing.adjustment_propose(actor=clerk, invoice=invoice, kwh=300, record="Biên bản")
    billing.adjustment_decide(actor=second_clerk, adjustment=adjustment, approve=True)
    refund = Refund.objects.for_user(clerk).get()
    client.force_login(clerk)
    client.post(
        changelist(Refund),
        {
            "action": "settle_by_refund",
            ACTION_CHECKBOX: [refund.pk],
            "_confirmed": "1",
            "reference": "UNC-0042",
        },
    )
    refund.refresh_from_db()
    assert (refund.method, refund.reference, refund.settled_by) == ("refund", "UNC-0042", clerk)


def test_a_cash_refund_of_a_credit_on_a_bill_not_paid_is_refused_with_the_amounts(
    client, clerk, make_customer, catalogue, make_staff
):
    history([make_customer()], catalogue, make_staff)  # 1,000 đồng paid on the bill before its credit
    refund = Refund.objects.for_user(clerk).get()
    original = refund.adjustment.original
    client.force_login(clerk)
    response = client.post(
        changelist(Refund),
        {"action": "settle_by_refund", ACTION_CHECKBOX: [refund.pk], "_confirmed": "1", "reference": "UNC-0043"},
    )
    assert response.status_code == 302
    (message,) = [str(m) for m in get_messages(response.wsgi_request)]
    assert message == (
        f"{refund}: {money(refund.amount)} is more than the customer overpaid on bill {original.number} (0 ₫: "
        f"paid {money(1000)} of the {money(billing.corrected_due(original))} it comes to with its adjustments). A "
        "credit first comes off what is still owed on the bill and its adjustments: only what was overpaid is paid "
        "back (or offset the refund on a next bill)."
    )
    refund.refresh_from_db()
    assert (refund.method, refund.reference, refund.settled_at) == ("", "", None)


def test_a_dispute_is_opened_from_the_billing_ticket_in_the_admin(
    client, clerk, make_customer, read, catalogue
):
    customer = make_customer()
    read(customer, OCT, 120)
    billing.billing_run(actor=None, period=OCT)
    invoice = Invoice.objects.get()
    ticket = billing_ticket(customer, catalogue)
    client.force_login(clerk)
    response = client.post(
        reverse("admin:billing_dispute_add"),
        {"ticket": ticket.pk, "invoice": invoice.pk, "reading": "", "claim": "Nhà đi vắng cả tháng"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    dispute = Dispute.objects.get()
    assert (dispute.customer, dispute.status, dispute.opened_by) == (customer, "open", clerk)
    invoice.refresh_from_db()
    assert invoice.status == "held"  # a bill not yet issued waits for the dispute


# The billing run and the anomaly scan --------------------------------------------------------------------


def test_the_billing_run_view_bills_the_clerks_units_only(
    client, clerk, make_customer, read, org, django_capture_on_commit_callbacks
):
    home = [make_customer(phones=[f"0903 800 00{i}"]) for i in range(3)]
    for i, customer in enumerate(home):
        read(customer, OCT, 100 + 10 * i)
    foreign = make_customer(org["other_corporation"], phones=["0903 800 100"])
    read(foreign, OCT, 100)
    client.force_login(clerk)
    listing = client.get(changelist(Invoice))
    assert reverse("admin:billing_invoice_run") in listing.content.decode()
    assert reverse("admin:billing_invoice_anomaly_scan") in listing.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:billing_invoice_run"), {"period": "2025-10", "unit": ""})
    assert response.status_code == 302
    job = BillingJob.objects.get()
    assert (job.status, job.result["totals"]["invoices"]) == ("done", len(home))
    assert set(Invoice.objects.values_list("customer_id", flat=True)) == {c.pk for c in home}
    assert set(BillingRun.objects.values_list("unit_id", flat=True)) == {org["home"].pk}
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("admin:billing_invoice_run"), {"period": "2025-10", "unit": org["home"].pk})
    again = BillingJob.objects.latest("id")
    assert again.result["totals"]["invoices"] == 0 and Invoice.objects.count() == len(home)
    outside = client.post(
        reverse("admin:billing_invoice_run"), {"period": "2025-10", "unit": org["other_corporation"].pk}
    )
    assert "unit" in outside.context["form"].errors
    assert not Invoice.objects.filter(customer=foreign).exists()


def test_an_anomaly_threshold_out_of_range_is_refused_beside_it(client, clerk):
    from billing.models import BillingJob

    client.force_login(clerk)
    before = BillingJob.objects.count()
    response = client.post(reverse("admin:billing_invoice_anomaly_scan"),
                           {"period": "2025-11", "unit": "", "threshold": "1"})  # fmt: skip
    assert response.status_code == 200
    form = response.context["form"]
    assert list(form.errors) == ["threshold"] and form["threshold"].value() == "1"
    assert BillingJob.objects.count() == before


def test_the_anomaly_scan_view_opens_re_inspections(
    client, clerk, make_customer, read, django_capture_on_commit_callbacks
):
    steady, rising = make_customer(phones=["0903 810 001"]), make_customer(phones=["0903 810 002"])
    for customer, (october, november) in ((steady, (100, 200)), (rising, (100, 500))):
        read(customer, OCT, october)
        read(customer, NOV, november)
    client.force_login(clerk)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:billing_invoice_anomaly_scan"), {"period": "2025-11", "unit": ""})
    assert response.status_code == 302
    page = client.get(response["Location"])
    assert page.context["job"].status == "done" and page.context["totals"]["compared"] == 2
    assert list(Reinspection.objects.values_list("reading__contract__customer", flat=True)) == [rising.pk]
    counts = AnomalyBandCount.objects.get(period=NOV)
    assert (
        counts.compared,
        counts.below_30 + counts.from_30 + counts.from_50 + counts.from_100 + counts.from_300,
    ) == (
        2,
        2,
    )


# The customer card ---------------------------------------------------------------------------------------


def test_the_card_shows_the_last_invoices_and_an_open_dispute(client, staff, make_customer, read, catalogue):
    customer = make_customer()
    months = [dt.date(2025, m, 1) for m in range(3, 11)]  # eight months: more than the card shows
    for n, period in enumerate(months, 1):
        read(customer, period, 150 * n)
        billing.billing_run(actor=None, period=period)
    url = reverse("admin:customers_customer_card", args=[customer.pk])
    client.force_login(staff[Role.AGENT])
    page = client.get(url)
    section = next(s for s in page.context["card"].sections if s.key == "invoices")
    latest = list(Invoice.objects.filter(customer=customer).order_by("-period")[:CARD_INVOICES])
    assert [row[0] for row in section.rows] == [i.number for i in latest]
    assert [row[1] for row in section.rows] == [i.period.strftime("%m/%Y") for i in latest]
    # the charge and what the customer pays (the same while no refund is offset on the bill)
    assert [(row[3], row[4]) for row in section.rows] == [(money(i.total), money(i.amount_due)) for i in latest]
    assert "Open billing dispute" not in page.content.decode()

    billing.dispute_open(
        actor=None,
        ticket=billing_ticket(customer, catalogue),
        invoice=latest[0],
        claim="Không dùng nhiều vậy",
    )
    page = client.get(url)
    html = page.content.decode()
    assert "Open billing dispute: do not cut supply" in html
    assert latest[0].number in html and latest[-1].number in html
    assert Invoice.objects.filter(customer=customer).order_by("period").first().number not in html


def test_a_dispute_before_the_first_bill_warns_on_the_card_without_a_query_of_its_own(
    client, staff, make_customer, read, catalogue
):
    """The dispute comes before any bill (about a reading): the card still warns, and the warning comes with the
    card's customer query, not from a query on the disputes of its own."""
    customer = make_customer()
    reading = read(customer, OCT, 150)
    url = reverse("admin:customers_customer_card", args=[customer.pk])
    client.force_login(staff[Role.AGENT])
    assert "Open billing dispute" not in client.get(url).content.decode()

    billing.dispute_open(
        actor=None, ticket=billing_ticket(customer, catalogue), reading=reading, claim="Chỉ số sai"
    )
    assert not Invoice.objects.filter(customer=customer).exists()
    with CaptureQueriesContext(connection) as queries:
        page = client.get(url)
    section = next(s for s in page.context["card"].sections if s.key == "invoices")
    assert [getattr(row, "notice", None) for row in section.rows] == ["Open billing dispute: do not cut supply"]
    assert "Open billing dispute: do not cut supply" in page.content.decode()
    asked = [q["sql"] for q in queries.captured_queries if "billing_dispute" in q["sql"]]
    assert len(asked) == 1 and "customers_customer" in asked[0], asked

    # Resolved: the warning goes at once (the flag is read with each card, not kept).
    billing.dispute_resolve(actor=None, dispute=Dispute.objects.get(customer=customer), outcome="withdrawn")
    assert "Open billing dispute" not in client.get(url).content.decode()


# Roles ---------------------------------------------------------------------------------------------------


def test_a_manager_sees_billing_but_changes_nothing(client, staff, clerk, second_clerk, make_customer, read):
    invoice = issued_invoice(make_customer(phones=["0903 900 001"]), read)
    adjustment = billing.adjustment_propose(actor=clerk, invoice=invoice, record="Sai", kwh=invoice.kwh - 30)
    other = make_customer(phones=["0903 900 002"])
    read(other, OCT, 90)
    billing.billing_run(actor=None, period=OCT)
    draft = Invoice.objects.get(customer=other)
    before = (
        list(Invoice.objects.order_by("pk").values()),
        list(Adjustment.objects.values()),
        AuditRecord.objects.count(),
    )
    client.force_login(staff[Role.MANAGER])
    listing = client.get(changelist(Invoice))
    assert listing.status_code == 200
    assert {i.pk for i in listing.context["cl"].result_list} == {invoice.pk, draft.pk}
    assert reverse("admin:billing_invoice_run") not in listing.content.decode()
    for action in ("issue", "hold"):
        client.post(changelist(Invoice), {"action": action, ACTION_CHECKBOX: [draft.pk]})
    client.post(changelist(Adjustment), {"action": "approve", ACTION_CHECKBOX: [adjustment.pk]})
    client.post(
        changelist(Adjustment),
        {"action": "reject", ACTION_CHECKBOX: [adjustment.pk], "_confirmed": "1", "note": "x"},
    )
    assert client.get(reverse("admin:billing_invoice_run")).status_code == 403
    assert client.post(reverse("admin:billing_invoice_run"), {"period": "2025-10"}).status_code == 403
    assert (
        client.post(reverse("admin:billing_invoice_anomaly_scan"), {"period": "2025-10"}).status_code == 403
    )
    assert client.get(reverse("admin:billing_adjustment_add")).status_code == 403
    assert (
        list(Invoice.objects.order_by("pk").values()),
        list(Adjustment.objects.values()),
        AuditRecord.objects.count(),
    ) == before
    assert client.get(changelist(Adjustment)).status_code == 200


def test_reference_data_is_read_by_clerks_and_changed_by_administrators(client, staff, tariffs):
    table = PriceTable.objects.filter(tariff_category="residential").order_by("-valid_from").first()
    client.force_login(staff[Role.BILLING_CLERK])
    assert client.get(changelist(PriceTable)).status_code == 200
    assert client.get(reverse("admin:billing_pricetable_add")).status_code == 403
    client.force_login(staff[Role.ADMINISTRATOR])
    # A stored table is history: its page is read-only and nothing posted changes it.
    assert (
        client.post(
            reverse("admin:billing_pricetable_change", args=[table.pk]), {"legal_basis": "x"}
        ).status_code
        == 403
    )
    created = client.post(
        reverse("admin:billing_pricetable_add"),
        {
            "tariff_category": "residential", "kind": "tiered", "valid_from": "2027-01-01", "legal_basis": "QĐ mới",
            "tiers": "50 2000\n100 2100\n3500", "tou_prices": "",
        },
    )  # fmt: skip
    assert created.status_code == 302, created.content.decode()[:2000]
    new = PriceTable.objects.get(valid_from=dt.date(2027, 1, 1))
    assert list(
        PriceStep.objects.filter(table=new).order_by("position").values_list("upper_kwh", "price")
    ) == [
        (50, 2000),
        (100, 2100),
        (None, 3500),
    ]
    assert AuditRecord.objects.filter(action="price_table.create", object_id=new.pk).exists()
    assert client.get(changelist(VatRate)).status_code == 200


def test_a_rebate_programme_dry_run_apply_and_reverse(
    client, staff, make_customer, read, django_capture_on_commit_callbacks
):
    customers = [make_customer(phones=[f"0903 950 00{i}"]) for i in range(3)]
    for customer, kwh in zip(customers, (80, 150, 400), strict=True):
        read(customer, OCT, kwh)
    billing.billing_run(actor=None, period=OCT)
    programme = RebateProgramme.objects.create(
        name="Hỗ trợ", legal_basis="NQ", customer_types=["residential"], period_from=OCT, period_to=OCT
    )
    RebateBand.objects.create(programme=programme, from_kwh=0, to_kwh=100, percent=Decimal("15"))
    RebateBand.objects.create(programme=programme, from_kwh=100, to_kwh=300, percent=Decimal("10"))
    preview = billing.rebate_dry_run(programme=programme)
    client.force_login(staff[Role.ADMINISTRATOR])
    url = changelist(RebateProgramme)
    dry = client.post(url, {"action": "dry_run", ACTION_CHECKBOX: [programme.pk]})
    assert dry.status_code == 200
    assert money(preview["amount"]) in dry.content.decode()  # "1.234 ₫"
    (result,) = dry.context["results"]
    assert (
        (result["invoices"], result["amount"])
        == (preview["invoices"], preview["amount"])
        == (2, preview["amount"])
    )
    assert not RebateApplication.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url, {"action": "apply_programme", ACTION_CHECKBOX: [programme.pk]})
    assert RebateApplication.objects.count() == 2
    assert sum(RebateApplication.objects.values_list("amount", flat=True)) == preview["amount"]
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url, {"action": "reverse_programme", ACTION_CHECKBOX: [programme.pk]})
    programme.refresh_from_db()
    assert programme.status == "reversed" and not RebateApplication.objects.exists()


def test_load_tariffs_is_idempotent(db, capsys):
    call_command("load_tariffs")
    first = (PriceTable.objects.count(), VatRate.objects.count())
    assert first[0] > 0 and first[1] > 0
    assert f"{first[0]} price tables, {first[1]} VAT rates new" in capsys.readouterr().out
    call_command("load_tariffs")
    assert "0 price tables, 0 VAT rates new" in capsys.readouterr().out
    assert (PriceTable.objects.count(), VatRate.objects.count()) == first


def test_readings_are_searched_by_contract_number(client, clerk, make_customer, read):
    wanted, other = make_customer(phones=["0903 960 001"]), make_customer(phones=["0903 960 002"])
    read(wanted, OCT, 10)
    read(other, OCT, 20)
    client.force_login(clerk)
    number = wanted.contracts.get().number
    found = client.get(changelist(MeterReading), {"q": number}).context["cl"].result_list
    assert [r.contract.number for r in found] == [number]


# Exports of invoices and disputes ------------------------------------------------------------------------


def export(client, model, query: str = "", file_format: str = "csv"):
    url = reverse(f"admin:billing_{model._meta.model_name}_export_all")
    return client.post(url + query, {"file_format": file_format})


def read_csv(response) -> list[dict]:
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff")
    return by_column(csv.DictReader(io.StringIO(body.removeprefix("\ufeff"))))


def read_xlsx(response) -> tuple[tuple, list[dict]]:
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == exports.XLSX_CONTENT_TYPE
    rows = list(openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content))).worksheets[0].values)
    return rows[0], by_column(dict(zip(rows[0], row, strict=True)) for row in rows[1:])


def numbers(queryset) -> list[str]:
    """Invoice numbers in the changelist's order (newest first)."""
    return list(queryset.order_by("-id").values_list("number", flat=True))


@pytest.fixture
def billed(org, make_customer, read):
    """Two customers of the home unit, one of a sibling unit and one of another corporation, each with an
    October bill issued and a November bill in draft."""
    made = {
        "home": [make_customer(org["home"], phones=[f"0903 730 00{i}"]) for i in range(2)],
        "sibling": make_customer(org["sibling"], phones=["0903 730 100"]),
        "foreign": make_customer(org["other_corporation"], phones=["0903 730 200"]),
    }
    for n, customer in enumerate([*made["home"], made["sibling"], made["foreign"]]):
        read(customer, OCT, 100 + 20 * n)
        read(customer, NOV, 250 + 40 * n)
    billing.billing_run(actor=None, period=OCT)
    billing.invoices_issue(actor=None, period=OCT)
    billing.billing_run(actor=None, period=NOV)
    return made


def test_the_invoice_export_holds_the_clerks_units_with_the_list_filters(client, clerk, billed):
    client.force_login(clerk)
    mine = Invoice.objects.for_user(clerk)
    foreign = Invoice.objects.get(customer=billed["foreign"], period=OCT)

    everything = read_csv(export(client, Invoice))
    assert [r["number"] for r in everything] == numbers(mine)
    assert set(numbers(mine)) == set(
        numbers(Invoice.objects.filter(customer__in=billed["home"]))
    )  # the home unit's bills only: not the sibling unit's, not the other corporation's
    assert foreign.number not in {r["number"] for r in everything}

    october = read_csv(export(client, Invoice, f"?period={OCT.isoformat()}"))
    assert [r["number"] for r in october] == numbers(mine.filter(period=OCT))
    assert len(october) == len(billed["home"])
    assert {r["status"] for r in october} == {"issued"}
    assert {r["customer"] for r in october} == {c.code for c in billed["home"]}
    by_number = {i.number: i for i in mine}
    assert all(r["total"] == str(by_number[r["number"]].total) for r in october)
    assert all(r["period"] == OCT.isoformat() for r in october)

    drafts = read_csv(export(client, Invoice, "?status__exact=draft"))
    assert (
        [r["number"] for r in drafts]
        == numbers(mine.filter(status="draft"))
        == numbers(mine.filter(period=NOV))
    )
    searched = read_csv(export(client, Invoice, f"?q={foreign.number}"))
    assert searched == []  # another corporation's bill is not found even by its number


def test_the_invoice_export_honours_the_unit_filter_within_a_wider_scope(client, org, make_staff, billed):
    supervisor = make_staff(Role.SUPERVISOR, [org["home"]])  # sees every unit of the company
    client.force_login(supervisor)
    company = read_csv(export(client, Invoice))
    assert [r["number"] for r in company] == numbers(Invoice.objects.for_user(supervisor))
    assert {r["unit"] for r in company} == {org["home"].code, org["sibling"].code}
    sibling_october = read_csv(export(client, Invoice, f"?unit={org['sibling'].pk}&period={OCT.isoformat()}"))
    assert [r["number"] for r in sibling_october] == numbers(
        Invoice.objects.filter(customer=billed["sibling"], period=OCT)
    )
    # a unit outside the scope as a filter gives nothing, not the other unit's bills
    assert read_csv(export(client, Invoice, f"?unit={org['other_corporation'].pk}")) == []


def test_the_invoice_xlsx_export_opens_in_openpyxl_with_the_filtered_rows(client, clerk, billed):
    client.force_login(clerk)
    response = export(client, Invoice, f"?period={OCT.isoformat()}", file_format="xlsx")
    assert response["Content-Disposition"].startswith('attachment; filename="invoices-')
    headers, rows = read_xlsx(response)
    assert headers == tuple(InvoiceResource().get_export_headers())
    expected = {i.number: i for i in Invoice.objects.for_user(clerk).filter(period=OCT)}
    assert [r["number"] for r in rows] == numbers(Invoice.objects.for_user(clerk).filter(period=OCT))
    assert {r["number"] for r in rows} == set(expected)
    assert Invoice.objects.get(customer=billed["foreign"], period=OCT).number not in expected
    for row in rows:
        invoice = expected[row["number"]]
        assert (row["kwh"], row["subtotal"], row["vat"], row["total"]) == (
            invoice.kwh,
            invoice.subtotal,
            invoice.vat,
            invoice.total,
        )
        assert (row["customer"], row["contract"], row["unit"], row["status"]) == (
            invoice.customer.code,
            invoice.contract.number,
            invoice.unit.code,
            "issued",
        )
        assert row["period"] == dt.datetime.combine(invoice.period, dt.time())  # a date cell
        assert row["adjusts"] is None


def test_the_invoice_export_reads_nothing_until_sent_and_then_one_joined_query(client, clerk, billed):
    client.force_login(clerk)
    chunk_sizes = []
    iterator = QuerySet.iterator

    def spy(queryset, chunk_size=None):
        if queryset.model is Invoice:
            chunk_sizes.append(chunk_size)
        return iterator(queryset, chunk_size=chunk_size)

    with override_settings(TONGDAI_EXPORT_CHUNK_SIZE=3), mock.patch.object(QuerySet, "iterator", spy):
        with CaptureQueriesContext(connection) as asked:
            response = export(client, Invoice)
        assert not [q for q in asked if 'FROM "billing_invoice"' in q["sql"]]
        with CaptureQueriesContext(connection) as sent:
            rows = read_csv(response)
    assert [r["number"] for r in rows] == numbers(Invoice.objects.for_user(clerk))
    assert chunk_sizes == [3]
    reads = [q["sql"] for q in sent if 'FROM "billing_invoice"' in q["sql"]]
    assert len(reads) == 1, reads  # every column joined in: no query per row
    assert all(table in reads[0] for table in ('"customers_contract"', '"customers_customer"', '"crm_unit"'))


def test_the_export_selected_actions_export_the_chosen_invoices_of_the_clerks_units(client, clerk, billed):
    chosen = Invoice.objects.get(customer=billed["home"][0], period=OCT)
    foreign = Invoice.objects.get(customer=billed["foreign"], period=OCT)
    client.force_login(clerk)
    response = client.post(
        changelist(Invoice), {"action": "export_selected_xlsx", ACTION_CHECKBOX: [chosen.pk, foreign.pk]}
    )
    _headers, rows = read_xlsx(response)
    assert [r["number"] for r in rows] == [chosen.number]  # a foreign id in the post is ignored
    as_csv = client.post(changelist(Invoice), {"action": "export_selected_csv", ACTION_CHECKBOX: [chosen.pk]})
    assert [r["number"] for r in read_csv(as_csv)] == [chosen.number]


def test_the_invoice_list_links_the_export_with_its_filters_next_to_the_billing_run(client, clerk, billed):
    client.force_login(clerk)
    html = client.get(changelist(Invoice) + "?status__exact=draft").content.decode()
    assert reverse("admin:billing_invoice_export_all") + "?status__exact=draft" in html
    assert reverse("admin:billing_invoice_run") in html
    assert reverse("admin:billing_invoice_anomaly_scan") in html
    page = client.get(reverse("admin:billing_invoice_export_all") + "?status__exact=draft")
    assert page.status_code == 200
    assert page.context["columns"] == InvoiceResource().get_export_headers()


def test_the_dispute_export_holds_the_clerks_open_disputes_with_the_queue_filter(
    client, clerk, billed, catalogue
):
    def dispute(customer, claim):
        invoice = Invoice.objects.get(customer=customer, period=OCT)
        return billing.dispute_open(
            actor=None, ticket=billing_ticket(customer, catalogue), invoice=invoice, claim=claim
        )

    open_one = dispute(billed["home"][0], "Chỉ số đọc sai")
    withdrawn = dispute(billed["home"][1], "Nhà đi vắng")
    billing.dispute_resolve(actor=None, dispute=withdrawn, outcome="withdrawn")
    foreign = dispute(billed["foreign"], "Không dùng nhiều vậy")
    client.force_login(clerk)

    rows = read_csv(export(client, Dispute, "?queue=open"))
    assert [r["invoice"] for r in rows] == [open_one.invoice.number]
    (row,) = rows
    assert (row["ticket"], row["customer"], row["unit"], row["status"], row["claim"]) == (
        open_one.ticket.number,
        open_one.customer.code,
        open_one.unit.code,
        "open",
        "Chỉ số đọc sai",
    )
    everything = read_csv(export(client, Dispute))
    expected = Dispute.objects.for_user(clerk).order_by("-id")
    assert [r["invoice"] for r in everything] == [d.invoice.number for d in expected]
    assert {r["invoice"] for r in everything} == {open_one.invoice.number, withdrawn.invoice.number}
    assert foreign.invoice.number not in {r["invoice"] for r in everything}
    assert foreign.ticket.number not in {r["ticket"] for r in everything}

    headers, from_xlsx = read_xlsx(export(client, Dispute, "?queue=resolved", file_format="xlsx"))
    assert headers == tuple(DisputeResource().get_export_headers())
    assert [(r["invoice"], r["status"], r["outcome"]) for r in from_xlsx] == [
        (withdrawn.invoice.number, "resolved", "withdrawn")
    ]
    selected = client.post(
        changelist(Dispute), {"action": "export_selected_csv", ACTION_CHECKBOX: [open_one.pk, foreign.pk]}
    )
    assert [r["ticket"] for r in read_csv(selected)] == [open_one.ticket.number]
    html = client.get(changelist(Dispute) + "?queue=open").content.decode()
    assert reverse("admin:billing_dispute_export_all") + "?queue=open" in html


def test_the_billing_exports_need_the_view_permission(client, org, make_staff, billed):
    dispatcher = make_staff(Role.DISPATCHER, [org["home"]])  # no billing permissions
    client.force_login(dispatcher)
    for model in (Invoice, Dispute):
        assert client.get(reverse(f"admin:billing_{model._meta.model_name}_export_all")).status_code == 403
        assert export(client, model).status_code == 403
