"""The import preview (dry run) shows each cell as the user's export does: a supervisor, who sees national IDs
masked, never reads a whole one in the preview of a file they exported (``core.exports.ShownDiff``)."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils.html import strip_tags

from crm.models import Role
from customers.models import Customer
from tests.exported import exported_customer_row

NATIONAL_ID = "079123456789"
MASKED_ID = "********6789"


@pytest.fixture
def customer(make_customer, org):
    return make_customer(org["home"], phones=["0903 123 456"], national_id=NATIONAL_ID)


def preview(client, row: dict):
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(row))
    writer.writeheader()
    writer.writerow(row)
    return client.post(
        reverse("admin:customers_customer_import"),
        {
            "import_file": SimpleUploadedFile("back.csv", out.getvalue().encode()),
            "format": "0",
            "resource": "0",
        },
    )


def previewed_cells(response) -> dict[str, str]:
    """The one previewed row's cells, by column heading, as text."""
    result = response.context["result"]
    (row,) = result.valid_rows()
    return dict(zip(result.diff_headers, (strip_tags(cell) for cell in row.diff), strict=True))


def test_the_import_preview_shows_a_supervisor_no_whole_national_id(client, staff, customer):
    # given: a supervisor's export (the ID masked), with the street corrected
    client.force_login(staff[Role.SUPERVISOR])
    row = exported_customer_row(client)
    assert row["national_id"] == MASKED_ID

    # when
    response = preview(client, {**row, "street": "99 Lê Lợi"})

    # then: the preview shows the ID as the export did, and the correction
    assert response.status_code == 200
    assert (response.context["problems"], response.context["totals"]["update"]) == ([], 1)
    assert NATIONAL_ID not in response.content.decode()
    cells = previewed_cells(response)
    # a supervisor sees phones whole, and the ID as the export showed it
    assert (cells["national_id"], cells["phones"]) == (MASKED_ID, "+84903123456")
    assert Customer.objects.get(pk=customer.pk).street == "12 Lê Lợi"  # a preview writes nothing


def test_the_import_preview_shows_whole_ids_to_who_exports_them_whole(client, staff, customer):
    client.force_login(staff[Role.BILLING_CLERK])
    row = exported_customer_row(client)
    assert row["national_id"] == NATIONAL_ID

    cells = previewed_cells(preview(client, {**row, "street": "99 Lê Lợi"}))

    assert cells["national_id"] == NATIONAL_ID
