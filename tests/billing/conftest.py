import datetime as dt

import pytest

from billing import services as billing
from customers.models import Contract


@pytest.fixture
def tariffs(db):
    billing.tariffs_load_reference()


@pytest.fixture
def read(tariffs):
    """Record a reading for a customer's contract: read(customer, period, value, **kw)."""

    def do(customer, period, value, **kw):
        contract = Contract.objects.get(customer=customer)
        kw.setdefault("source", "handheld")
        return billing.reading_record(actor=None, contract=contract, period=period, value=value, **kw)

    return do


OCT, NOV, DEC = dt.date(2025, 10, 1), dt.date(2025, 11, 1), dt.date(2025, 12, 1)
