"""Whoever sees national IDs masked (a supervisor) cannot learn one by guessing: a typed national ID is refused by
the permission alone, before it is compared with the stored one, so a dry-run import refuses the right guess as it
refuses the wrong ones (``customers.privacy.check_national_id_change``, asked by ``customer_update`` and the
customers import)."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from crm.models import Role
from customers import services
from customers.models import Customer, CustomerEvent, CustomerEventKind
from tests.exported import exported_customer_row

NATIONAL_ID = "079123456789"
REFUSAL = "National ID: Only staff who may see national IDs in full may change them."


@pytest.fixture
def customer(make_customer, org):
    return make_customer(org["home"], phones=["0903 123 456"], national_id=NATIONAL_ID)


def preview(client, rows: list[dict]):
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    response = client.post(
        reverse("admin:customers_customer_import"),
        {
            "import_file": SimpleUploadedFile("guess.csv", out.getvalue().encode()),
            "format": "0",
            "resource": "0",
        },
    )
    return response.context["problems"], dict(response.context["totals"])


def test_a_dry_run_refuses_a_supervisors_right_guess_as_it_refuses_a_wrong_one(client, staff, customer):
    # given: the supervisor's export, the ID masked
    client.force_login(staff[Role.SUPERVISOR])
    row = exported_customer_row(client)
    assert row["national_id"] == "********6789"

    # when: the same row with the right number, then with a wrong one
    right = preview(client, [{**row, "national_id": NATIONAL_ID}])
    wrong = preview(client, [{**row, "national_id": "079999996789"}])

    # then: the same answer, naming the permission only
    assert right == wrong
    assert right[0] == [{"row": 2, "messages": [REFUSAL]}]
    assert Customer.objects.get(pk=customer.pk).national_id == NATIONAL_ID


def test_one_dry_run_of_many_guesses_refuses_every_row_alike(client, staff, customer):
    client.force_login(staff[Role.SUPERVISOR])
    row = exported_customer_row(client)
    guesses = ["079123406789", "079123416789", NATIONAL_ID, "079123476789"]

    problems, totals = preview(client, [{**row, "national_id": guess} for guess in guesses])

    assert problems == [{"row": n, "messages": [REFUSAL]} for n in (2, 3, 4, 5)]
    assert (totals["update"], totals["skip"]) == (0, 0)


def test_a_supervisors_masked_export_still_imports_back(client, staff, customer):
    # the masked cell (and a blank one) leaves the ID as it is: no change is asked, none refused
    client.force_login(staff[Role.SUPERVISOR])
    row = exported_customer_row(client)

    corrected = preview(client, [{**row, "street": "99 Lê Lợi"}])
    blank = preview(client, [{**row, "national_id": ""}])

    assert (corrected[0], corrected[1]["update"]) == ([], 1)
    assert (blank[0], blank[1]["skip"]) == ([], 1)


def test_who_sees_ids_whole_still_corrects_one_by_import(client, staff, customer):
    clerk = staff[Role.BILLING_CLERK]
    client.force_login(clerk)
    row = exported_customer_row(client)
    assert row["national_id"] == NATIONAL_ID

    previewed = client.post(
        reverse("admin:customers_customer_import"),
        {
            "import_file": SimpleUploadedFile(
                "fix.csv", _csv([{**row, "national_id": "079123456780"}]).encode()
            ),
            "format": "0",
            "resource": "0",
        },
    )
    assert previewed.context["problems"] == []
    client.post(
        reverse("admin:customers_customer_process_import"), dict(previewed.context["confirm_form"].initial)
    )

    assert Customer.objects.get(pk=customer.pk).national_id == "079123456780"


def _csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


@pytest.mark.parametrize("typed", [NATIONAL_ID, "079999996789"])
def test_customer_update_refuses_a_supervisors_national_id_whatever_it_is(staff, customer, typed):
    # when
    with pytest.raises(ValidationError) as refused:
        services.customer_update(
            actor=staff[Role.SUPERVISOR],
            customer=customer,
            changes={"national_id": typed, "street": "99 Lê Lợi"},
        )

    # then: the same refusal for the stored number and another, and nothing changed
    assert refused.value.message_dict == {
        "national_id": ["Only staff who may see national IDs in full may change them."]
    }
    customer.refresh_from_db()
    assert (customer.national_id, customer.street) == (NATIONAL_ID, "12 Lê Lợi")
    assert not CustomerEvent.objects.filter(customer=customer, kind=CustomerEventKind.UPDATED).exists()
