"""The billing API: scoped invoices with their lines, readings from the metering systems, disputes."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing import services as billing
from billing.models import AuditRecord, Dispute, Invoice, MeterReading, Reinspection
from crm.models import Role
from tests.billing.conftest import NOV, OCT
from tests.billing.test_import_readings import FULL, csv_bytes, run
from tickets.services import ticket_open


def test_invoices_are_listed_in_scope_with_a_bounded_number_of_queries(
    client, staff, make_customer, read, org
):
    for _ in range(3):
        read(make_customer(), OCT, 120)
    read(make_customer(org["other_corporation"]), OCT, 120)
    billing.billing_run(actor=None, period=OCT)
    client.force_login(staff[Role.BILLING_CLERK])
    client.get("/api/v1/invoices/")
    with CaptureQueriesContext(connection) as few:
        listed = client.get("/api/v1/invoices/")
    assert listed.status_code == 200
    assert {row["unit_code"] for row in listed.json()["results"]} == {org["home"].code}
    assert len(listed.json()["results"]) == 3
    for _ in range(5):
        read(make_customer(), OCT, 80)
    billing.billing_run(actor=None, period=OCT)
    with CaptureQueriesContext(connection) as more:
        assert len(client.get("/api/v1/invoices/").json()["results"]) == 8
    assert len(more) == len(few)
    one = Invoice.objects.filter(unit=org["home"]).first()
    detail = client.get(f"/api/v1/invoices/{one.pk}/").json()
    assert sum(line["amount"] for line in detail["lines"]) == one.subtotal
    foreign = Invoice.objects.exclude(unit=org["home"]).get()
    assert client.get(f"/api/v1/invoices/{foreign.pk}/").status_code == 404


def test_a_reading_is_taken_through_the_api_and_bad_input_writes_nothing(
    client, staff, make_customer, tariffs
):
    customer = make_customer()
    contract = customer.contracts.get()
    client.force_login(staff[Role.BILLING_CLERK])
    payload = {"contract_number": contract.number, "period": "2025-10-01", "value": 250, "source": "handheld"}
    taken = client.post("/api/v1/readings/", payload, content_type="application/json")
    assert taken.status_code == 201, taken.content
    assert (taken.json()["kwh"], taken.json()["status"]) == (250, "valid")
    before = (MeterReading.objects.count(), AuditRecord.objects.count())
    for bad, field in [
        ({**payload, "period": "2025-11-01", "value": 100}, "value"),  # below the previous register
        ({**payload, "period": "2025-11-15"}, "period"),
        ({**payload, "contract_number": "nope"}, "contract_number"),
        ({**payload, "period": "2025-11-01", "source": "reinspection"}, "source"),
        ({**payload, "period": "2025-11-01", "value": -3}, "value"),
    ]:
        response = client.post("/api/v1/readings/", bad, content_type="application/json")
        assert response.status_code == 400, (bad, response.content)
        assert field in str(response.json())
    assert (MeterReading.objects.count(), AuditRecord.objects.count()) == before
    client.force_login(staff[Role.AGENT])
    assert client.post("/api/v1/readings/", {**payload, "period": "2025-11-01", "value": 400},
                       content_type="application/json").status_code == 403  # fmt: skip
    assert MeterReading.objects.count() == before[0]


@pytest.mark.parametrize("path", ["/api/v1/readings/", "/api/v1/readings/estimate/"])
def test_the_last_month_of_the_calendar_is_a_400_on_period_not_a_server_error(client, staff, make_customer, tariffs,
                                                                              path):  # fmt: skip
    """December 9999 has no next month a date can hold: refused on ``period`` (400), nothing written."""
    contract = make_customer().contracts.get()
    client.force_login(staff[Role.BILLING_CLERK])
    client.raise_request_exception = False
    body = {"contract_number": contract.number, "period": "9999-12-01", "value": 10, "source": "handheld"}
    before = (MeterReading.objects.count(), AuditRecord.objects.count())
    response = client.post(path, body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json() == {"period": ["The period is out of range (the last month is 11/9999)."]}
    after_that = client.post(path, {**body, "period": "9999-11-01"}, content_type="application/json")
    future = {"period": ["A period in the future cannot be read."]}
    assert (after_that.status_code, after_that.json()) == (400, future)
    assert (MeterReading.objects.count(), AuditRecord.objects.count()) == before


# The readings API reads what a reading file (``billing.imports``) and the admin's estimate form take ----------


def test_a_period_written_yyyy_mm_is_taken_by_the_api_as_by_the_reading_file(
    client, staff, make_customer, tariffs
):
    by_file, by_api = make_customer(), make_customer()
    _result, refused = run(csv_bytes([["", by_file.contracts.get().number, "2025-10", "250", "", "handheld"]],
                                    header=FULL))  # fmt: skip
    assert refused == []
    assert MeterReading.objects.get(contract__customer=by_file).period == OCT

    client.force_login(staff[Role.BILLING_CLERK])
    payload = {"contract_number": by_api.contracts.get().number, "period": "2025-10", "value": 250,
               "source": "handheld"}  # fmt: skip
    response = client.post("/api/v1/readings/", payload, content_type="application/json")
    assert response.status_code == 201, response.content
    assert (response.json()["period"], response.json()["kwh"]) == ("2025-10-01", 250)
    assert MeterReading.objects.get(contract__customer=by_api).period == OCT


@pytest.mark.parametrize(
    ("typed", "refusal"),
    [
        ("2025-10-15", "A billing period is the first day of a month (YYYY-MM-01)."),
        ("15/10/2025", "A billing period is the first day of a month (YYYY-MM-01)."),
        ("October", "A billing period is a month: YYYY-MM (e.g. 2025-10), MM/YYYY or YYYY-MM-01."),
        ("2025-13", "A billing period is a month: YYYY-MM (e.g. 2025-10), MM/YYYY or YYYY-MM-01."),
    ],
)
def test_a_period_that_is_not_a_month_is_refused_with_the_spellings_taken(
    client, staff, make_customer, tariffs, typed, refusal
):
    client.force_login(staff[Role.BILLING_CLERK])
    payload = {"contract_number": make_customer().contracts.get().number, "period": typed, "value": 250,
               "source": "handheld"}  # fmt: skip
    response = client.post("/api/v1/readings/", payload, content_type="application/json")
    assert (response.status_code, response.json()) == (400, {"period": [refusal]})
    assert not MeterReading.objects.exists()


@pytest.mark.parametrize("typed", ["2025-10", "10/2025", "2025-10-01"])
def test_a_month_the_admin_estimate_form_takes_is_taken_by_the_api_estimate(
    client, staff, make_customer, read, typed
):
    from billing.admin import EstimateForm

    number = make_customer().contracts.get().number
    clerk = staff[Role.BILLING_CLERK]
    form = EstimateForm({"contract": number, "period": typed}, user=clerk)
    assert form.is_valid(), form.errors
    assert form.cleaned_data["period"] == OCT

    client.force_login(clerk)
    for month, value in (("2025-07", 100), ("08/2025", 200), ("2025-09-01", 300)):
        taken = client.post("/api/v1/readings/", {"contract_number": number, "period": month, "value": value,
                                                  "source": "handheld"}, content_type="application/json")  # fmt: skip
        assert taken.status_code == 201, taken.content
    response = client.post("/api/v1/readings/estimate/", {"contract_number": number, "period": typed},
                           content_type="application/json")  # fmt: skip
    assert response.status_code == 201, response.content
    assert (response.json()["period"], response.json()["source"]) == ("2025-10-01", "estimated")
    listed = client.get("/api/v1/readings/", {"period": typed})
    assert [r["period"] for r in listed.json()["results"]] == ["2025-10-01"]


def test_a_metering_systems_own_estimate_is_taken_alike_by_the_api_and_the_reading_file(
    client, staff, make_customer, tariffs
):
    """README: an estimated register is recorded (``reading_record``) and trues nothing up, by the API and the
    import alike: a reading file's line with ``source: estimated`` is taken as the API takes it."""
    by_file, by_api = make_customer(), make_customer()
    _result, refused = run(
        csv_bytes([["", by_file.contracts.get().number, "2025-10-01", "900", "", "estimated"]], header=FULL)
    )
    assert refused == []
    client.force_login(staff[Role.BILLING_CLERK])
    payload = {"contract_number": by_api.contracts.get().number, "period": "2025-10-01", "value": 900,
               "source": "estimated"}  # fmt: skip
    response = client.post("/api/v1/readings/", payload, content_type="application/json")
    assert response.status_code == 201, response.content
    for customer in (by_file, by_api):
        reading = MeterReading.objects.get(contract__customer=customer)
        assert (reading.period, reading.value, reading.kwh, reading.source) == (OCT, 900, 900, "estimated")


def test_a_contract_number_in_small_letters_is_read_alike_by_the_api_and_the_reading_file(
    client, staff, make_customer, tariffs
):
    by_file, by_api = make_customer(), make_customer()
    _result, refused = run(
        csv_bytes([["", f" {by_file.contracts.get().number.lower()}", "2025-10", "250", "", ""]], header=FULL)
    )
    assert refused == []
    client.force_login(staff[Role.BILLING_CLERK])
    payload = {"contract_number": f"{by_api.contracts.get().number.lower()} ", "period": "2025-10", "value": 250,
               "source": "handheld"}  # fmt: skip
    assert client.post("/api/v1/readings/", payload, content_type="application/json").status_code == 201
    for customer in (by_file, by_api):
        assert MeterReading.objects.get(contract__customer=customer).value == 250


def test_a_dispute_from_an_outage_ticket_is_refused_on_the_ticket_number(client, staff, make_customer, read,
                                                                         catalogue):  # fmt: skip
    customer = make_customer()
    read(customer, OCT, 180)
    billing.billing_run(actor=None, period=OCT, unit=customer.unit)
    invoice = Invoice.objects.get(customer=customer)
    outage = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                         customer=customer).ticket  # fmt: skip
    client.force_login(staff[Role.BILLING_CLERK])
    refused = client.post("/api/v1/disputes/", {"ticket_number": outage.number, "invoice_number": invoice.number,
                          "claim": "Chỉ số không đúng"}, content_type="application/json")  # fmt: skip
    assert refused.status_code == 400
    assert refused.json() == {"ticket_number": ["A dispute comes from a billing or reading complaint ticket."]}
    assert not Dispute.objects.exists()


def test_a_dispute_is_opened_from_a_billing_ticket(client, staff, make_customer, read, catalogue):
    customer = make_customer()
    read(customer, NOV, 300)
    billing.billing_run(actor=None, period=NOV)
    invoice = Invoice.objects.get()
    ticket = ticket_open(actor=None, category=catalogue["billing"], channel="zalo", description="Hóa đơn cao",
                         customer=customer).ticket  # fmt: skip
    client.force_login(staff[Role.BILLING_CLERK])
    opened = client.post("/api/v1/disputes/", {"ticket_number": ticket.number, "invoice_number": invoice.number,
                         "claim": "Chỉ số không đúng"}, content_type="application/json")  # fmt: skip
    assert opened.status_code == 201, opened.content
    assert opened.json()["status"] == "open"
    invoice.refresh_from_db()
    assert invoice.status == "held"
    again = client.post("/api/v1/disputes/", {"ticket_number": "2099-0000000", "invoice_number": invoice.number,
                        "claim": "x"}, content_type="application/json")  # fmt: skip
    assert again.status_code == 400 and Dispute.objects.count() == 1
    # The same request retried, or a second complaint about the same bill: joined to the open dispute.
    first = Dispute.objects.get()
    for number in (ticket.number, ticket_open(actor=None, category=catalogue["billing"], channel="phone",
                                              description="Lại hỏi", customer=customer).ticket.number):  # fmt: skip
        retried = client.post("/api/v1/disputes/", {"ticket_number": number, "invoice_number": invoice.number,
                              "claim": "Chỉ số không đúng"}, content_type="application/json")  # fmt: skip
        assert retried.status_code == 400
        assert retried.json() == {"detail": [
            f"A dispute about this bill is already open (ticket {first.ticket.number}): add this complaint to it."
        ]}  # fmt: skip
    assert (Dispute.objects.count(), Reinspection.objects.count()) == (1, 1)


def test_invoices_tell_what_is_still_owed_after_a_credit_and_a_part_payment(
    client, org, make_staff, make_customer, read
):
    # October 350 kWh: 907,000 + VAT 72,560 = 979,560; 500,000 paid at the counter; corrected to 300 kWh
    # (739,500 + 59,160 = 798,660): a credit of 180,900. 979,560 − 180,900 − 500,000 = 298,660 is still owed.
    clerk, approver = (make_staff(Role.BILLING_CLERK, [org["home"]]) for _ in range(2))
    read(make_customer(), OCT, 350)
    read(make_customer(), OCT, 120)
    billing.billing_run(actor=None, period=OCT)
    invoice, draft = Invoice.objects.order_by("-kwh")
    billing.invoice_issue(actor=None, invoice=invoice)
    billing.payment_record(actor=clerk, invoice=invoice, amount=500_000, paid_at=timezone.now(), source="counter",
                           reference="Q-5")  # fmt: skip
    adjustment = billing.adjustment_propose(actor=clerk, invoice=invoice, record="Biên bản", kwh=300)
    billing.adjustment_decide(actor=approver, adjustment=adjustment, approve=True)
    client.force_login(clerk)
    detail = client.get(f"/api/v1/invoices/{invoice.pk}/").json()
    assert (detail["amount_due"], detail["owed"]) == (979_560, 298_660)
    rows = {row["number"]: row for row in client.get("/api/v1/invoices/").json()["results"]}
    adjustment.refresh_from_db()
    assert (rows[invoice.number]["owed"], rows[draft.number]["owed"]) == (298_660, None)  # null before issue
    assert rows[adjustment.invoice.number]["owed"] == 0  # a credit: nothing to collect
    # A partner collecting it is accepted, and the bill is then paid with nothing owed.
    paid = client.post(f"/api/v1/invoices/{invoice.pk}/payments/", {
        "amount": 298_660, "paid_at": timezone.now().isoformat(), "source": "bank_transfer", "reference": "FT-9",
    }, content_type="application/json")  # fmt: skip
    assert paid.status_code == 201, paid.content
    assert client.get(f"/api/v1/invoices/{invoice.pk}/").json()["owed"] == 0
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    owed = schema["components"]["schemas"]["Invoice"]["properties"]["owed"]
    assert (owed["type"], owed["nullable"], owed["readOnly"]) == ("integer", True, True)
    assert owed["description"].startswith("What may still be paid on the invoice")
