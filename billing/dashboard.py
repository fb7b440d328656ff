"""The billing widgets on the managers' dashboard: consumption rises by band, refunds and bill reductions.
Registered with ``crm.dashboard_widgets`` in ``BillingConfig.ready``.

Which date puts a row in the period: refunds by ``created_at``, rebates by ``applied_at``, consumption bands by
their billing ``period`` (the months that overlap the period).
"""

from __future__ import annotations

from collections import Counter

from django.db.models import Count, Q, Sum
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from billing.models import AnomalyBandCount, RebateApplication, Refund
from billing.money import CURRENCY
from crm.dashboard_widgets import Board, Widget, bar_chart, register

# Queries ----------------------------------------------------------------------------------------------


def anomaly_bands(board: Board) -> dict:
    """The consumption rises counted by the anomaly job for the billing periods (months) that overlap
    the period, summed: ``{"periods", "compared", "below_30", "from_30", "from_50", "from_100",
    "from_300", "held"}``."""
    fields = ("compared", "below_30", "from_30", "from_50", "from_100", "from_300", "held")
    row = board.scoped(
        AnomalyBandCount.objects.filter(period__gte=board.start.replace(day=1), period__lte=board.end)
    ).aggregate(periods=Count("period", distinct=True), **{f"sum_{f}": Sum(f) for f in fields})
    return {"periods": row["periods"], **{f: row[f"sum_{f}"] or 0 for f in fields}}


def refunds(board: Board) -> dict:
    """Refunds owed after adjustments made in the period: ``{"count", "amount", "settled",
    "settled_amount"}`` (đồng)."""
    row = board.scoped(
        Refund.objects.filter(created_at__gte=board.begin, created_at__lt=board.stop)
    ).aggregate(
        n=Count("id"),
        total=Sum("amount"),
        n_settled=Count("id", filter=Q(settled_at__isnull=False)),
        total_settled=Sum("amount", filter=Q(settled_at__isnull=False)),
    )
    return {
        "count": row["n"],
        "amount": row["total"] or 0,
        "settled": row["n_settled"],
        "settled_amount": row["total_settled"] or 0,
    }


def rebates(board: Board) -> dict:
    """Bill reductions applied in the period, per programme: ``{"count", "amount", "vat", "by_programme":
    [{"programme", "count", "amount", "vat"}]}`` (đồng, before VAT and the VAT on it). Each programme is a row of
    its own, named by its name; two rounds of the same name are told apart by their legal basis (and, sharing
    that too, by their number, as on the bill)."""
    rows = list(
        board.scoped(
            RebateApplication.objects.filter(applied_at__gte=board.begin, applied_at__lt=board.stop),
            "invoice__unit",
        )
        .values("programme_id", "programme__name", "programme__legal_basis")
        .annotate(n=Count("id"), total=Sum("amount"), total_vat=Sum("vat"))
        .order_by("programme__name", "programme__legal_basis", "programme_id")
    )
    by_programme = [
        {"programme": label, "count": r["n"], "amount": r["total"], "vat": r["total_vat"]}
        for r, label in zip(rows, _programme_labels(rows), strict=True)
    ]
    return {
        "count": sum(r["count"] for r in by_programme),
        "amount": sum(r["amount"] for r in by_programme),
        "vat": sum(r["vat"] for r in by_programme),
        "by_programme": by_programme,
    }


def _programme_labels(rows: list[dict]) -> list[str]:
    """Each programme's name; with its legal basis where another row has the same name, and its number where
    another has the same name and basis."""
    names = Counter(r["programme__name"] for r in rows)
    labels = [
        f"{r['programme__name']} ({r['programme__legal_basis']})" if names[r["programme__name"]] > 1
        else r["programme__name"]
        for r in rows
    ]  # fmt: skip
    counts = Counter(labels)
    return [
        f"{label} #{r['programme_id']}" if counts[label] > 1 else label
        for r, label in zip(rows, labels, strict=True)
    ]


# Tables -----------------------------------------------------------------------------------------------

_BANDS = (
    ("below_30", gettext_lazy("< 30%")),
    ("from_30", gettext_lazy("30–50%")),
    ("from_50", gettext_lazy("50–100%")),
    ("from_100", gettext_lazy("100–300%")),
    ("from_300", gettext_lazy("≥ 300%")),
)


def _anomaly_table(data):
    columns = [
        _("billing periods"),
        _("customers compared"),
        *[str(label) for _k, label in _BANDS],
        _("invoices held"),
    ]
    return columns, [[data["periods"], data["compared"], *[data[k] for k, _l in _BANDS], data["held"]]]


def _refund_table(data):
    return (
        [_("refunds"), _("amount (đồng)"), _("settled"), _("settled amount (đồng)")],
        [[data["count"], data["amount"], data["settled"], data["settled_amount"]]],
    )


def _rebate_table(data):
    rows = [[r["programme"], r["count"], r["amount"], r["vat"]] for r in data["by_programme"]]
    if data["by_programme"]:
        rows.append([_("All programmes"), data["count"], data["amount"], data["vat"]])
    return [
        _("programme"),
        _("invoices"),
        _("reduction before VAT (đồng)"),
        _("VAT on the reduction (đồng)"),
    ], rows


# Charts -----------------------------------------------------------------------------------------------


def _anomaly_chart(data, title):
    return bar_chart([(str(label), data[k]) for k, label in _BANDS] if data["compared"] else [], title=title)


# Money on the charts: whole đồng with the sign the rest of the product writes (``billing.money``).
MONEY_SUFFIX = f" {CURRENCY}"


def _refund_chart(data, title):
    return bar_chart(
        [(_("Settled"), data["settled_amount"]), (_("Not settled"), data["amount"] - data["settled_amount"])]
        if data["count"]
        else [],
        title=title,
        suffix=MONEY_SUFFIX,
    )


def _rebate_chart(data, title):
    return bar_chart([(r["programme"], r["amount"]) for r in data["by_programme"]], title=title, suffix=MONEY_SUFFIX)


WIDGETS: list[Widget] = [
    Widget("anomalies", gettext_lazy("Consumption rises by band"), 110, anomaly_bands, _anomaly_table,
           _anomaly_chart, gettext_lazy("Billing periods overlapping the period.")),
    Widget("refunds", gettext_lazy("Refunds"), 120, refunds, _refund_table, _refund_chart),
    Widget("rebates", gettext_lazy("Bill reductions"), 130, rebates, _rebate_table, _rebate_chart),
]  # fmt: skip


def register_widgets() -> None:
    """Put the billing widgets on the dashboard (``BillingConfig.ready``)."""
    for widget in WIDGETS:
        register(widget)
