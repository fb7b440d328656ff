"""Reading exported files back in tests: exports head their columns in the interface's language; these
helpers key each row by the columns' names (``code``, ``number``), which is what an import reads too."""

from __future__ import annotations


def column_names() -> dict[str, str]:
    from billing.resources import DisputeResource, InvoiceResource
    from customers.resources import ContractResource, CustomerResource, MeterResource
    from tickets.resources import TicketResource

    names: dict[str, str] = {}
    for resource in (InvoiceResource, DisputeResource, CustomerResource, ContractResource, MeterResource,
                     TicketResource):  # fmt: skip
        names.update(resource().column_for_heading())
    return names


def by_column(rows) -> list[dict]:
    """Each row (a dict keyed by the headings) keyed by the columns' names."""
    names = column_names()
    return [{names.get(str(heading).lower(), heading): value for heading, value in row.items()} for row in rows]


def exported_customer_row(client) -> dict:
    """The one customer row of the customers list exported as CSV by ``client``'s user, keyed by column names."""
    import csv
    import io

    from django.urls import reverse

    response = client.post(reverse("admin:customers_customer_export_all"), {"file_format": "csv"})
    body = b"".join(response.streaming_content).decode("utf-8").removeprefix("\ufeff")
    (row,) = by_column(csv.DictReader(io.StringIO(body)))
    return row
