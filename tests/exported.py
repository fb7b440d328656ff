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
