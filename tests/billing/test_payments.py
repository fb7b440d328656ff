"""Payments against issued invoices: recorded by a billing clerk in the admin or by a bank's or collection
partner's integration through the API, each under its channel's transaction reference. The payments that
cover the amount due make the invoice paid; nothing is ever paid twice over, a retried transaction finds the
first payment, and a recorded payment is never changed or deleted."""

from __future__ import annotations

import datetime as dt
from unittest import mock

import pytest
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.urls import reverse
from django.utils import timezone

from billing import services as billing
from billing.models import AuditRecord, Invoice, Payment
from billing.money import money
from crm.models import Role
from tests.billing.conftest import OCT
from tests.concurrency import in_thread

on_postgres = pytest.mark.skipif(
    "postgresql" not in settings.DATABASES["default"]["ENGINE"], reason="two connections at once: PostgreSQL"
)

PAYMENTS_API = "/api/v1/invoices/{}/payments/"


@pytest.fixture
def clerk(staff):
    return staff[Role.BILLING_CLERK]


@pytest.fixture
def second_clerk(org, make_staff):
    return make_staff(Role.BILLING_CLERK, [org["home"]])


def issue(customer, read, kwh=250, *, hours_ago=2) -> Invoice:
    """The customer's October bill, issued ``hours_ago`` hours ago."""
    read(customer, OCT, kwh)
    billing.billing_run(actor=None, period=OCT, unit=customer.unit)
    with mock.patch("django.utils.timezone.now", return_value=timezone.now() - dt.timedelta(hours=hours_ago)):
        billing.invoices_issue(actor=None, period=OCT, unit=customer.unit)
    return Invoice.objects.get(customer=customer, period=OCT)


@pytest.fixture
def invoice(make_customer, read) -> Invoice:
    return issue(make_customer(), read)


def post(client, invoice, **body):
    body.setdefault("paid_at", timezone.now().isoformat())
    body.setdefault("source", "bank_transfer")
    return client.post(PAYMENTS_API.format(invoice.pk), body, content_type="application/json")


def state(invoice) -> tuple:
    """The invoice's status and time paid, its payments and the audit records: what a refusal leaves alone."""
    invoice = Invoice.objects.get(pk=invoice.pk)
    payments = list(Payment.objects.filter(invoice=invoice).order_by("pk").values())
    return invoice.status, invoice.paid_at, payments, AuditRecord.objects.count()


def pay_url(invoice) -> str:
    return reverse("admin:billing_invoice_pay", args=[invoice.pk])


def form_of(invoice, **typed) -> dict:
    paid_at = timezone.localtime(typed.pop("paid_at", timezone.now()))
    return {"amount": invoice.amount_due, "paid_at": paid_at.strftime("%Y-%m-%dT%H:%M:%S"), "source": "counter",
            "reference": "BL-0001", **typed}  # fmt: skip


# The whole amount, or in parts ------------------------------------------------------------------------------


def test_a_payment_of_the_whole_amount_in_the_admin_makes_the_invoice_paid(client, clerk, invoice):
    client.force_login(clerk)
    page = client.get(reverse("admin:billing_invoice_change", args=[invoice.pk]))
    assert pay_url(invoice) in page.content.decode()  # "Record a payment"
    form = client.get(pay_url(invoice))
    assert form.status_code == 200
    assert form.context["form"].initial["amount"] == invoice.amount_due > 0  # prefilled with what is owed
    paid_at = timezone.now().replace(microsecond=0) - dt.timedelta(minutes=30)
    done = client.post(pay_url(invoice), form_of(invoice, paid_at=paid_at, reference="BL-2025-0042"))
    assert done.status_code == 302
    assert done["Location"] == reverse("admin:billing_invoice_change", args=[invoice.pk])
    invoice.refresh_from_db()
    assert (invoice.status, invoice.paid_at) == ("paid", paid_at)
    payment = Payment.objects.get(invoice=invoice)
    assert (payment.amount, payment.source, payment.reference, payment.recorded_by, payment.unit_id) == (
        invoice.amount_due,
        "counter",
        "BL-2025-0042",
        clerk,
        invoice.unit_id,
    )
    assert list(AuditRecord.objects.filter(object_id__in=[payment.pk, invoice.pk],
                                           action__in=["payment.record", "invoice.paid"])
                .order_by("pk").values_list("action", "actor")) == [("payment.record", clerk.pk),
                                                                   ("invoice.paid", clerk.pk)]  # fmt: skip
    shown = client.get(reverse("admin:billing_invoice_change", args=[invoice.pk]))
    assert "BL-2025-0042" in shown.content.decode()  # the invoice's payments, on its page
    assert pay_url(invoice) not in shown.content.decode()  # paid: nothing left to record


def test_partial_payments_then_the_last_make_the_invoice_paid(client, clerk, invoice):
    client.force_login(clerk)
    first_part = invoice.amount_due // 3
    early = timezone.now() - dt.timedelta(hours=1)
    first = post(client, invoice, amount=first_part, paid_at=early.isoformat(), reference="FT25300001")
    assert first.status_code == 201, first.content
    assert (first.json()["amount"], first.json()["invoice_number"]) == (first_part, invoice.number)
    invoice.refresh_from_db()
    assert (invoice.status, invoice.paid_at, billing.payment_owed(invoice)) == (
        "issued",
        None,
        invoice.amount_due - first_part,
    )
    later = timezone.now() - dt.timedelta(minutes=5)
    last = post(client, invoice, amount=invoice.amount_due - first_part, paid_at=later.isoformat(),
                source="e_wallet", reference="MOMO-88812")  # fmt: skip
    assert last.status_code == 201, last.content
    invoice.refresh_from_db()
    assert (invoice.status, invoice.paid_at, billing.payment_owed(invoice)) == ("paid", later, 0)
    listed = client.get(PAYMENTS_API.format(invoice.pk))
    assert listed.status_code == 200
    assert [(row["reference"], row["amount"]) for row in listed.json()] == [
        ("FT25300001", first_part), ("MOMO-88812", invoice.amount_due - first_part)
    ]  # fmt: skip


# Refusals: nothing changes ---------------------------------------------------------------------------------


def test_an_overpayment_is_refused_with_what_is_owed_and_nothing_changes(client, clerk, invoice):
    client.force_login(clerk)
    assert post(client, invoice, amount=1000, reference="FT-1").status_code == 201
    before = state(invoice)
    refused = post(client, invoice, amount=invoice.amount_due, reference="FT-2")
    assert refused.status_code == 400
    assert refused.json() == {"amount": [
        f"{money(invoice.amount_due)} is more than is still owed on invoice {invoice.number} "
        f"({money(invoice.amount_due - 1000)})."
    ]}  # fmt: skip
    page = client.post(pay_url(invoice), form_of(invoice, reference="BL-3"))
    assert page.status_code == 200  # the form again, with what was typed and the reason beside the amount
    assert page.context["form"].errors["amount"] == refused.json()["amount"]
    assert page.context["form"]["reference"].value() == "BL-3"
    assert state(invoice) == before


@pytest.mark.parametrize("status", ["draft", "held"])
def test_a_draft_or_held_invoice_is_not_paid(client, clerk, make_customer, read, status):
    customer = make_customer()
    read(customer, OCT, 250)
    billing.billing_run(actor=None, period=OCT)
    invoice = Invoice.objects.get(customer=customer)
    if status == "held":
        billing.invoice_hold(actor=None, invoice=invoice, reason="Kiểm tra lại")
    before = state(invoice)
    client.force_login(clerk)
    refused = post(client, invoice, amount=1000, reference="FT-1")
    assert refused.status_code == 400
    assert refused.json()["invoice"] == [
        f"Only an issued invoice is paid ({invoice.number} is {'Draft' if status == 'draft' else 'Held for review'})."
    ]
    page = client.post(pay_url(invoice), form_of(invoice, amount=1000))
    assert page.status_code == 200 and page.context["form"].non_field_errors() == refused.json()["invoice"]
    assert state(invoice) == before


def test_a_paid_invoice_takes_no_more_payments(client, clerk, invoice):
    client.force_login(clerk)
    assert post(client, invoice, amount=invoice.amount_due, reference="FT-1").status_code == 201
    before = state(invoice)
    refused = post(client, invoice, amount=1, reference="FT-2")
    assert (refused.status_code, refused.json()) == (
        400,
        {"invoice": [f"Invoice {invoice.number} is already paid."]},
    )
    assert state(invoice) == before


def test_a_payment_before_the_issue_or_in_the_future_is_refused(client, clerk, invoice):
    client.force_login(clerk)
    before = state(invoice)
    for paid_at in (invoice.issued_at - dt.timedelta(minutes=1), timezone.now() + dt.timedelta(hours=1)):
        refused = post(client, invoice, amount=1000, paid_at=paid_at.isoformat(), reference="FT-1")
        assert refused.status_code == 400 and list(refused.json()) == ["paid_at"], refused.content
        page = client.post(pay_url(invoice), form_of(invoice, amount=1000, paid_at=paid_at))
        assert page.context["form"].errors["paid_at"] == refused.json()["paid_at"]
    issued = f"{timezone.localtime(invoice.issued_at):%d/%m/%Y %H:%M}"
    assert post(client, invoice, amount=1000, paid_at=(invoice.issued_at - dt.timedelta(days=1)).isoformat(),
                reference="FT-1").json() == {"paid_at": [f"A bill is paid after it is issued ({issued})."]}  # fmt: skip
    assert state(invoice) == before
    assert (
        post(
            client, invoice, amount=1000, paid_at=invoice.issued_at.isoformat(), reference="FT-1"
        ).status_code
        == 201
    )


def test_bad_input_names_its_field_and_writes_nothing(client, clerk, invoice):
    client.force_login(clerk)
    before = state(invoice)
    for body, field in [
        ({"amount": 0, "reference": "FT-1"}, "amount"),
        ({"amount": 1.5, "reference": "FT-1"}, "amount"),
        ({"amount": 1000, "reference": "   "}, "reference"),
        ({"amount": 1000, "reference": "FT-1", "source": "cash_in_a_drawer"}, "source"),
        ({"amount": 1000, "reference": "x" * 101}, "reference"),
        ({"amount": 1000, "reference": "FT-1", "paid_at": "hôm qua"}, "paid_at"),
    ]:
        refused = post(client, invoice, **body)
        assert refused.status_code == 400 and field in refused.json(), (body, refused.content)
    with pytest.raises(ValidationError) as caught:  # the service itself, whoever calls it
        billing.payment_record(actor=clerk, invoice=invoice, amount=0, paid_at=timezone.now(), source="app",
                               reference="APP-1")  # fmt: skip
    assert list(caught.value.message_dict) == ["amount"]
    assert state(invoice) == before


# Retries of one transaction ---------------------------------------------------------------------------------


def test_a_retry_with_the_same_reference_from_another_user_returns_the_first_payment(client, clerk, second_clerk,
                                                                                    invoice):  # fmt: skip
    body = {"amount": 50_000, "paid_at": (timezone.now() - dt.timedelta(minutes=3)).isoformat(),
            "source": "partner", "reference": "VNPOST-7731"}  # fmt: skip
    client.force_login(clerk)
    first = post(client, invoice, **body)
    assert first.status_code == 201
    before = state(invoice)
    client.force_login(second_clerk)
    again = post(client, invoice, **body)
    assert again.status_code == 200
    assert again.json() == first.json()
    assert again.json()["recorded_by"] == clerk.username
    assert state(invoice) == before
    assert billing.payment_owed(invoice) == invoice.amount_due - 50_000


def test_the_same_reference_for_another_amount_or_invoice_is_refused_with_the_first(client, clerk, invoice,
                                                                                   make_customer, read):  # fmt: skip
    client.force_login(clerk)
    assert post(client, invoice, amount=50_000, reference="FT25300777").status_code == 201
    other = issue(make_customer(), read, kwh=180)
    before = (state(invoice), state(other))
    for target, amount in ((invoice, 60_000), (other, 50_000)):
        refused = post(client, target, amount=amount, reference="FT25300777")
        assert refused.status_code == 400
        assert list(refused.json()) == ["reference"]
        assert refused.json()["reference"][0].startswith(
            f"Reference FT25300777 of Bank transfer is already recorded: a payment of {money(50_000)} on "
            f"{invoice.number}"
        )
    assert (state(invoice), state(other)) == before
    # Another channel's reference of the same text is another transaction.
    assert post(client, other, amount=50_000, reference="FT25300777", source="counter").status_code == 201
    assert Payment.objects.filter(invoice=other).count() == 1


def test_a_reference_taken_in_another_unit_is_refused_without_telling_that_payment(client, clerk, invoice, org,
                                                                                    make_staff, make_customer, read):  # fmt: skip
    client.force_login(clerk)
    assert post(client, invoice, amount=50_000, reference="FT25300888").status_code == 201
    theirs = issue(make_customer(org["other_corporation"]), read, kwh=180)
    before = (state(invoice), state(theirs))
    client.force_login(make_staff(Role.BILLING_CLERK, [org["other_corporation"]]))
    refused = post(client, theirs, amount=50_000, reference="FT25300888")
    assert refused.status_code == 400
    assert refused.json() == {"reference": [
        "Reference FT25300888 of Bank transfer is already recorded, for an invoice of another unit. Another payment "
        "has its own reference."
    ]}  # fmt: skip
    assert (state(invoice), state(theirs)) == before


# Who may -----------------------------------------------------------------------------------------------


def test_a_clerk_of_another_unit_neither_sees_nor_pays_the_invoice(client, clerk, org, make_staff, invoice):
    client.force_login(clerk)
    assert post(client, invoice, amount=1000, reference="FT-1").status_code == 201
    payment = Payment.objects.get()
    before = state(invoice)
    client.force_login(make_staff(Role.BILLING_CLERK, [org["other_corporation"]]))
    assert client.get(PAYMENTS_API.format(invoice.pk)).status_code == 404
    assert post(client, invoice, amount=1000, reference="FT-2").status_code == 404
    assert client.get(pay_url(invoice)).status_code == 404
    assert client.post(pay_url(invoice), form_of(invoice, amount=1000)).status_code == 404
    listed = client.get(reverse("admin:billing_payment_changelist"))
    assert listed.status_code == 200 and list(listed.context["cl"].result_list) == []
    assert client.get(reverse("admin:billing_payment_change", args=[payment.pk])).status_code in (302, 404)
    with pytest.raises(PermissionDenied):  # the service refuses too, whatever page calls it
        billing.payment_record(actor=make_staff(Role.BILLING_CLERK, [org["other_corporation"]]), invoice=invoice,
                               amount=1000, paid_at=timezone.now(), source="app", reference="APP-2")  # fmt: skip
    assert state(invoice) == before


@pytest.mark.parametrize("role", [Role.AGENT, Role.MANAGER])
def test_staff_without_the_payment_permission_do_not_record_one(client, staff, invoice, role):
    client.force_login(staff[role])
    before = state(invoice)
    assert post(client, invoice, amount=1000, reference="FT-1").status_code == 403
    assert client.get(pay_url(invoice)).status_code == 403
    assert client.post(pay_url(invoice), form_of(invoice, amount=1000)).status_code == 403
    assert (
        pay_url(invoice)
        not in client.get(reverse("admin:billing_invoice_change", args=[invoice.pk])).content.decode()
    )
    assert state(invoice) == before


# Adjustment invoices ------------------------------------------------------------------------------------


def test_a_credit_adjustment_is_settled_by_its_refund_and_a_charge_adjustment_is_paid(client, clerk, second_clerk,
                                                                                     make_customer, read):  # fmt: skip
    client.force_login(clerk)
    adjustments = {}
    for name, kwh in (("credit", 200), ("charge", 320)):
        original = issue(make_customer(), read, kwh=250)
        proposed = billing.adjustment_propose(
            actor=clerk, invoice=original, kwh=kwh, record="Biên bản phúc tra"
        )
        adjustments[name] = billing.adjustment_decide(
            actor=second_clerk, adjustment=proposed, approve=True
        ).invoice
    credit, charge = adjustments["credit"], adjustments["charge"]
    assert credit.total < 0 < charge.total
    before = state(credit)
    refused = post(client, credit, amount=-credit.total, reference="FT-1")  # what it credits, as if paid
    assert refused.status_code == 400
    assert refused.json()["invoice"] == [
        f"Adjustment invoice {credit.number} credits the customer: it is settled by its refund, not paid."
    ]
    assert state(credit) == before
    assert post(client, charge, amount=charge.total, reference="FT-2").status_code == 201
    charge.refresh_from_db()
    assert charge.status == "paid"


# A recorded payment stays as it was -----------------------------------------------------------------------


def test_a_recorded_payment_is_never_changed_or_deleted(client, clerk, invoice):
    recorded = billing.payment_record(actor=clerk, invoice=invoice, amount=1000, paid_at=timezone.now(),
                                      source="counter", reference="BL-1")  # fmt: skip
    payment = recorded.payment
    kept = list(Payment.objects.filter(pk=payment.pk).values())
    payment.amount = 2000
    for change in (payment.save, payment.delete, lambda: Payment.objects.filter(pk=payment.pk).update(amount=1),
                   lambda: Payment.objects.filter(pk=payment.pk).delete()):  # fmt: skip
        with pytest.raises(ValidationError):
            change()
    for sql in (
        "UPDATE billing_payment SET amount = 2000 WHERE id = %s",
        "DELETE FROM billing_payment WHERE id = %s",
    ):
        with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [payment.pk])
    client.force_login(clerk)
    change_url = reverse("admin:billing_payment_change", args=[payment.pk])
    assert client.get(change_url).status_code == 200  # shown, read only
    assert client.post(change_url, {"amount": 2000, "reference": "BL-9"}).status_code == 403
    assert (
        client.post(reverse("admin:billing_payment_delete", args=[payment.pk]), {"post": "yes"}).status_code
        == 403
    )
    assert list(Payment.objects.filter(pk=payment.pk).values()) == kept


def test_the_database_refuses_a_payment_of_nothing_and_a_reference_twice(clerk, invoice):
    row = {"invoice": invoice, "unit_id": invoice.unit_id, "paid_at": timezone.now(), "source": "bank_transfer",
           "created_at": timezone.now()}  # fmt: skip
    for bad in ({"amount": 0, "reference": "FT-0"}, {"amount": 1000, "reference": ""},
                {"amount": 1000, "reference": "FT-0", "source": "cheque"}):  # fmt: skip
        with pytest.raises(IntegrityError), transaction.atomic():
            Payment.objects.create(**{**row, **bad})
    Payment.objects.create(**row, amount=1000, reference="FT-1")
    with pytest.raises(IntegrityError), transaction.atomic():
        Payment.objects.create(**row, amount=1000, reference="FT-1")
    assert list(Payment.objects.values_list("reference", flat=True)) == ["FT-1"]


# The payments list ------------------------------------------------------------------------------------------


def test_the_payments_list_filters_by_source_and_day_and_finds_a_reference_or_an_invoice(client, clerk,
                                                                                        make_customer, read):  # fmt: skip
    first, second = issue(make_customer(), read, hours_ago=72), issue(make_customer(), read, kwh=180)
    billing.payment_record(actor=clerk, invoice=first, amount=1000, paid_at=timezone.now() - dt.timedelta(days=2),
                           source="counter", reference="BL-1")  # fmt: skip
    billing.payment_record(actor=clerk, invoice=second, amount=2000, paid_at=timezone.now(), source="app",
                           reference="APP-1")  # fmt: skip
    client.force_login(clerk)
    url = reverse("admin:billing_payment_changelist")

    def listed(query=""):
        response = client.get(f"{url}{query}")
        assert response.status_code == 200
        return [p.reference for p in response.context["cl"].result_list], response

    everything, page = listed()
    assert everything == ["APP-1", "BL-1"]
    assert listed("?source=counter")[0] == ["BL-1"]
    assert listed("?q=APP-1")[0] == ["APP-1"]
    assert listed(f"?q={first.number}")[0] == ["BL-1"]
    assert listed("?q=FT-none")[0] == []
    by_day = next(spec for spec in page.context["cl"].filter_specs if spec.title == "paid at")
    today = next(choice for choice in by_day.choices(page.context["cl"]) if choice["display"] == "Today")
    assert listed(today["query_string"])[0] == ["APP-1"]


# Two at once (PostgreSQL) ----------------------------------------------------------------------------------


@on_postgres
def test_two_payments_of_the_last_amount_at_once_leave_exactly_one_accepted(transactional_db, clerk,
                                                                           second_clerk, make_customer, read):  # fmt: skip
    invoice = issue(make_customer(), read)
    billing.payment_record(actor=clerk, invoice=invoice, amount=1000, paid_at=timezone.now(), source="counter",
                           reference="BL-1")  # fmt: skip
    last = invoice.amount_due - 1000
    with transaction.atomic():
        billing.payment_record(actor=clerk, invoice=invoice, amount=last, paid_at=timezone.now(),
                               source="bank_transfer", reference="FT-LAST-1")  # fmt: skip
        thread, outcome = in_thread(lambda: billing.payment_record(
            actor=second_clerk, invoice=invoice, amount=last, paid_at=timezone.now(), source="app",
            reference="APP-LAST-2"))  # fmt: skip
        thread.join(1.5)
        assert thread.is_alive()  # the second waits for the invoice's row
    thread.join(30)
    assert not thread.is_alive()
    assert isinstance(outcome.get("error"), ValidationError), outcome
    assert list(outcome["error"].message_dict) == ["invoice"]  # paid by the first meanwhile
    assert sorted(Payment.objects.values_list("reference", flat=True)) == ["BL-1", "FT-LAST-1"]
    invoice.refresh_from_db()
    assert (invoice.status, billing.payment_owed(invoice)) == ("paid", 0)


@on_postgres
def test_a_retry_racing_its_first_request_returns_the_first_payment(transactional_db, clerk, second_clerk,
                                                                    make_customer, read):  # fmt: skip
    invoice = issue(make_customer(), read)
    paid_at = timezone.now()
    with transaction.atomic():
        first = billing.payment_record(actor=clerk, invoice=invoice, amount=5000, paid_at=paid_at,
                                       source="partner", reference="VNPOST-1").payment  # fmt: skip
        thread, outcome = in_thread(lambda: billing.payment_record(
            actor=second_clerk, invoice=invoice, amount=5000, paid_at=paid_at, source="partner",
            reference="VNPOST-1"))  # fmt: skip
        thread.join(1.5)
        assert thread.is_alive()
    thread.join(30)
    assert "error" not in outcome, outcome
    assert (outcome["result"].payment.pk, outcome["result"].created) == (first.pk, False)
    assert Payment.objects.count() == 1
