"""Walks every state-changing service of billing (and the outbox retry) as every role: a role that holds the
permission the service requires does it; any other is refused with PermissionDenied and the database is left
exactly as it was. The services are the rule (``crm.permissions.require``), so the admin, the API, the
commands and the background jobs cannot differ."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pytest
from django.apps import apps
from django.core.exceptions import PermissionDenied
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.utils import timezone

import billing.imports
import billing.jobs
import billing.services
import crm.outbox
from billing import services as billing_services
from billing.models import (
    Adjustment,
    Dispute,
    Invoice,
    MeterReading,
    RebateBand,
    RebateProgramme,
    Refund,
    VatRate,
)
from crm.models import OutboxChannel, OutboxMessage, OutboxStatus, Role
from customers.models import Contract
from tests.billing.conftest import NOV, OCT
from tests.test_permissions_everywhere import writes_with_an_actor
from tickets.services import ticket_open

MODULES = [billing.services, billing.imports, billing.jobs, crm.outbox]
# Take an actor but are no service of their own: the audit writer, the check of a run's reach, and the
# export of a list (a read of what the admin's list shows its user).
NOT_WRITES = {"audit", "check_reach", "job_start_export"}
LATER = dt.date(2031, 1, 1)

# service name -> (the permission it requires, the keyword arguments from the fixture ``world``)
CASES = {
    "reading_record": ("billing.add_meterreading", lambda w: {
        "contract": w["contract"]["a"], "period": NOV, "value": 500, "source": "handheld"}),
    "reading_estimate": ("billing.add_meterreading", lambda w: {"contract": w["contract"]["a"], "period": NOV}),
    "reading_correct": ("billing.change_meterreading", lambda w: {
        "reading": w["reading"]["a"], "value": 300, "reason": "Đọc nhầm chỉ số"}),
    "billing_run": ("billing.add_billingrun", lambda w: {"period": NOV, "unit": w["home"]}),
    "invoices_issue": ("billing.issue_invoice", lambda w: {"period": OCT, "unit": w["home"]}),
    "invoice_issue": ("billing.issue_invoice", lambda w: {"invoice": w["invoice"]["a"]}),
    "invoice_hold": ("billing.change_invoice", lambda w: {"invoice": w["invoice"]["a"], "reason": "Kiểm tra"}),
    "invoice_release": ("billing.change_invoice", lambda w: {"invoice": w["invoice"]["held"]}),
    "payment_record": ("billing.add_payment", lambda w: {
        "invoice": w["invoice"]["issued"], "amount": 1000, "paid_at": timezone.now(), "source": "counter",
        "reference": "BL-0001"}),
    "invoice_recompute": ("billing.change_invoice", lambda w: {
        "invoice": w["invoice"]["a"], "reading": w["reading"]["a"], "reason": "Tính lại"}),
    "dispute_open": ("billing.add_dispute", lambda w: {
        "ticket": w["ticket"], "invoice": w["invoice"]["a"], "claim": "Chỉ số sai"}),
    "reinspection_record": ("billing.change_reinspection", lambda w: {
        "item": w["dispute"].reinspections.get(), "outcome": "confirmed", "reread_value": 350, "evidence": "Ảnh"}),
    "dispute_resolve": ("billing.change_dispute", lambda w: {"dispute": w["dispute"], "outcome": "withdrawn"}),
    "adjustment_propose": ("billing.propose_adjustment", lambda w: {
        "invoice": w["invoice"]["issued"], "kwh": 300, "record": "Biên bản số 1"}),
    "adjustment_decide": ("billing.approve_adjustment", lambda w: {"adjustment": w["adjustment"], "approve": True}),
    "refund_settle": ("billing.change_refund", lambda w: {
        "refund": w["refund"], "method": "refund", "reference": "UNC-1"}),
    "rebate_apply": ("billing.apply_rebateprogramme", lambda w: {"programme": w["programme"]["draft"]}),
    "rebate_reverse": ("billing.apply_rebateprogramme", lambda w: {"programme": w["programme"]["applied"]}),
    "anomaly_scan": ("billing.add_anomalybandcount", lambda w: {"period": OCT, "unit": w["home"]}),
    "vat_rate_create": ("billing.add_vatrate", lambda w: {"valid_from": LATER, "percent": 10}),
    "vat_rate_change": ("billing.change_vatrate", lambda w: {"rate": w["future_rate"], "percent": 8}),
    "price_table_create": ("billing.add_pricetable", lambda w: {
        "tariff_category": "business", "kind": "flat", "valid_from": LATER, "tiers": [(None, 3300)]}),
    "import_readings": ("billing.add_meterreading", lambda w: {
        "stream": io.BytesIO(f"contract_number,period,value\n{w['contract']['a'].number},2025-11,500\n".encode()),
        "unit": w["home"]}),
    "reading_import_create": ("billing.add_readingimport", lambda w: {
        "upload": SimpleUploadedFile("chi-so.csv", b"contract_number,period,value\n", content_type="text/csv"),
        "unit": w["home"]}),
    "job_start_billing_run": ("billing.add_billingrun", lambda w: {"period": NOV, "units": [w["home"]]}),
    "job_start_anomaly_scan": ("billing.add_anomalybandcount", lambda w: {"period": OCT, "units": [w["home"]]}),
    "job_start_rebate": ("billing.apply_rebateprogramme", lambda w: {"programme": w["programme"]["draft"]}),
    "outbox_retry": ("crm.retry_outboxmessage", lambda w: {"source": "admin", "message_ids": [w["failed"].pk]}),
}  # fmt: skip


def test_every_billing_write_with_an_actor_is_walked():
    assert writes_with_an_actor(MODULES, NOT_WRITES) == set(CASES)


def _state():
    """Every row of billing and of the outbox as it is, and how many rows every other table holds."""
    state: dict = {}
    for label in ("crm", "customers", "tickets", "billing"):
        for model in apps.get_app_config(label).get_models():
            manager = model._default_manager
            if label == "billing" or model is OutboxMessage:
                state[model._meta.label] = list(manager.order_by("pk").values())
            else:
                state[model._meta.label] = manager.count()
    return state


def _service(name):
    return next(getattr(m, name) for m in MODULES if hasattr(m, name))


def _bill(customer, read, kwh):
    read(customer, OCT, kwh)
    billing_services.billing_run(actor=None, period=OCT)
    return Invoice.objects.get(customer=customer, period=OCT)


@pytest.fixture
def world(org, read, make_customer, make_staff, catalogue):
    """A home unit with a bill in each state the services start from, a dispute, an adjustment waiting for
    its decision, a refund to settle, a rebate programme to apply and one to reverse, a future VAT rate and
    a failed message."""
    people = {key: make_customer(org["home"]) for key in ("a", "held", "issued", "disputed", "adjusted", "pending")}
    invoices = {key: _bill(customer, read, 350) for key, customer in people.items()}
    billing_services.invoice_hold(actor=None, invoice=invoices["held"], reason="Kiểm tra")
    for key in ("issued", "adjusted", "pending"):
        billing_services.invoice_issue(actor=None, invoice=invoices[key])
    complaints = {
        key: ticket_open(actor=None, category=catalogue["billing"], channel="phone", description="Hóa đơn cao",
                         customer=people[key]).ticket
        for key in ("a", "disputed")
    }  # fmt: skip
    dispute = billing_services.dispute_open(
        actor=None, ticket=complaints["disputed"], invoice=invoices["disputed"], claim="Chỉ số sai"
    )
    proposer, approver = make_staff(Role.BILLING_CLERK, [org["home"]]), make_staff(Role.BILLING_CLERK, [org["home"]])
    # The round is applied before the adjustments are proposed: an adjustment takes the applied rounds that
    # cover its bill, and one proposed before a round is applied is refused at its approval.
    programmes = {}
    for key in ("applied", "draft"):
        programmes[key] = RebateProgramme.objects.create(
            name=f"Giảm tiền điện {key}", legal_basis="Nghị quyết 55/NQ-CP", customer_types=["residential"],
            period_from=OCT, period_to=OCT,
        )  # fmt: skip
        RebateBand.objects.create(programme=programmes[key], from_kwh=0, to_kwh=None, percent=Decimal("5"))
        programmes[key].units.set([org["home"]])  # the home unit's round: its billing clerks run it
    billing_services.rebate_apply(actor=None, programme=programmes["applied"])
    # Paid before its credit: the refund is money the customer overpaid, paid back in cash.
    billing_services.payment_record(
        actor=None, invoice=invoices["adjusted"], amount=Invoice.objects.get(pk=invoices["adjusted"].pk).amount_due,
        paid_at=timezone.now(), source="counter", reference="BL-adjusted",
    )
    settled = billing_services.adjustment_propose(
        actor=proposer, invoice=invoices["adjusted"], kwh=300, record="Biên bản số 2"
    )
    billing_services.adjustment_decide(actor=approver, adjustment=settled, approve=True)
    waiting = billing_services.adjustment_propose(
        actor=proposer, invoice=invoices["pending"], kwh=250, record="Biên bản số 3"
    )
    failed = OutboxMessage.objects.create(channel=OutboxChannel.SMS, recipient="0903123456", body="Thông báo")
    OutboxMessage.objects.filter(pk=failed.pk).update(status=OutboxStatus.FAILED, attempts=8, last_error="503")
    return {
        "home": org["home"],
        "contract": {key: Contract.objects.get(customer=customer) for key, customer in people.items()},
        "reading": {key: MeterReading.objects.get(pk=invoice.reading_id) for key, invoice in invoices.items()},
        "invoice": {key: Invoice.objects.get(pk=invoice.pk) for key, invoice in invoices.items()},
        "ticket": complaints["a"],
        "dispute": Dispute.objects.get(pk=dispute.pk),
        "adjustment": Adjustment.objects.get(pk=waiting.pk),
        "refund": Refund.objects.get(adjustment=settled),
        "programme": {key: RebateProgramme.objects.get(pk=p.pk) for key, p in programmes.items()},
        "future_rate": VatRate.objects.create(valid_from=dt.date(2032, 1, 1), percent=10),
        "failed": failed,
    }


@pytest.mark.django_db
def test_each_role_holds_the_permission_and_succeeds_or_is_refused_and_nothing_changes(staff, world):
    refused, allowed = [], []
    for role, user in staff.items():
        for name, (perm, arguments) in CASES.items():
            kwargs = arguments(world)
            holds = user.has_perm(perm)
            before = _state()
            with transaction.atomic():
                try:
                    _service(name)(actor=user, **kwargs)
                except PermissionDenied:
                    assert not holds, f"{role} holds {perm} but {name} refused"
                    assert _state() == before, f"{name} refused {role} but changed the database"
                    refused.append((role, name))
                    continue
                finally:
                    transaction.set_rollback(True)  # each call starts from the same world
            assert holds, f"{role} lacks {perm} but {name} let them"
            allowed.append((role, name))
    # Billing clerks work every billing record and run their units' rebate rounds; reference data and the
    # outbox are the administrator's.
    assert {name for role, name in allowed if role == Role.BILLING_CLERK} == set(CASES) - {
        "vat_rate_create", "vat_rate_change", "price_table_create", "outbox_retry",
    }  # fmt: skip
    assert {name for role, name in allowed if role == Role.ADMINISTRATOR} == set(CASES)
    for role in (Role.AGENT, Role.SUPERVISOR, Role.DISPATCHER, Role.FIELD_CREW, Role.MANAGER):
        assert {name for r, name in refused if r == role} == set(CASES)


@pytest.mark.django_db
def test_a_billing_clerk_of_another_unit_is_refused_and_nothing_changes(org, make_staff, world):
    stranger = make_staff(Role.BILLING_CLERK, [org["other_corporation"]])
    before = _state()
    with pytest.raises(PermissionDenied):
        billing_services.invoice_hold(actor=stranger, invoice=world["invoice"]["a"], reason="Kiểm tra")
    with pytest.raises(PermissionDenied):
        billing_services.reading_record(
            actor=stranger, contract=world["contract"]["a"], period=NOV, value=500, source="handheld"
        )
    with pytest.raises(PermissionDenied):
        billing_services.dispute_open(
            actor=stranger, ticket=world["ticket"], invoice=world["invoice"]["a"], claim="Chỉ số sai"
        )
    assert _state() == before


@pytest.mark.django_db
def test_the_system_itself_may_write(world):
    held = billing_services.invoice_hold(actor=None, invoice=world["invoice"]["a"], reason="Kiểm tra")
    assert Invoice.objects.get(pk=held.pk).status == "held"
    assert crm.outbox.outbox_retry(actor=None, source="command") == [world["failed"].pk]
