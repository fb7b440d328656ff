"""Audit (review): the contract row lock taken first by a reading path against a rebate round taken back."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.conf import settings

from billing import services as billing
from billing.models import MeterReading, RebateBand, RebateProgramme
from crm.models import Role
from tests.billing.conftest import OCT
from tests.concurrency import in_thread

on_postgres = pytest.mark.skipif(
    "postgresql" not in settings.DATABASES["default"]["ENGINE"], reason="two connections at once: PostgreSQL"
)


def _round(name, percent):
    programme = RebateProgramme.objects.create(name=name, legal_basis="NQ (test)", period_from=OCT, period_to=OCT)
    RebateBand.objects.create(programme=programme, from_kwh=0, percent=Decimal(percent))
    return programme


@on_postgres
def test_a_correction_while_a_round_is_taken_back_from_a_bill_with_another_round_is_not_a_deadlock(
    transactional_db, make_customer, read, org, make_staff, monkeypatch
):
    # October's draft carries two rounds; taking the first back recomputes the bill (``_recompute``), whose
    # ``select_for_update().select_related("contract")`` locks the contract row FOR UPDATE while the round holds
    # October's period lock exclusively. A correction of October holds the contract's row (``lock_contract``,
    # taken first since today) and waits for October's period lock: a cycle.
    customer = make_customer()
    read(customer, OCT, 300)
    billing.billing_run(actor=None, period=OCT)
    first, second = _round("Giảm giá đợt 1", "10"), _round("Giảm giá đợt 2", "5")
    billing.rebate_apply(actor=None, programme=first)
    billing.rebate_apply(actor=None, programme=second)
    clerk = make_staff(Role.BILLING_CLERK, [org["home"]])
    reading = MeterReading.objects.get(contract__customer=customer, period=OCT)

    real_lock_period = billing.lock_period
    main = threading.current_thread()
    started: dict = {}

    def lock_period(period, *, exclusive=False):
        # The correction has its contract's lock; the manager takes the first round back at that moment.
        if threading.current_thread() is main and "thread" not in started:
            started["thread"], started["outcome"] = in_thread(
                lambda: billing.rebate_reverse(actor=None, programme=first)
            )
            started["thread"].join(1.5)
        return real_lock_period(period, exclusive=exclusive)

    monkeypatch.setattr(billing, "lock_period", lock_period)
    correction_error = None
    try:
        billing.reading_correct(actor=clerk, reading=reading, value=150, reason="Đọc sai")
    except Exception as exc:  # a deadlock detected in this connection
        correction_error = exc
    started["thread"].join(30)
    assert not started["thread"].is_alive()
    assert correction_error is None, correction_error
    assert "error" not in started["outcome"], started["outcome"].get("error")
