"""Every state change of billing: keyword-only, one transaction, an audit record each, and first the
permission of the actor (``crm.permissions.require``; ``actor=None`` is the system itself).

Runs over a whole city (the billing run, the anomaly scan, rebate rounds) are set-based: the charge of each
distinct (tariff category, households, kWh) is computed once by the pure function in ``billing.tariff``, and
the database joins those results to every contract in a few statements.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import BigIntegerField, Case, F, Max, Min, OuterRef, Q, Subquery, Sum, Value, When
from django.db.models.functions import Coalesce, Concat, Greatest, Least, Substr
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from billing import reference, rules, tariff
from billing.models import (
    ISSUED_STATUSES,
    RECORDED_SOURCES,
    Adjustment,
    AdjustmentStatus,
    AnomalyBandCount,
    AuditRecord,
    BillingRun,
    Dispute,
    DisputeOutcome,
    DisputeStatus,
    HoldKind,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    InvoiceStatus,
    MeterReading,
    Payment,
    PaymentSource,
    PriceStep,
    PriceTable,
    ReadingSource,
    ReadingStatus,
    RebateApplication,
    RebateProgramme,
    RebateStatus,
    Refund,
    RefundMethod,
    Reinspection,
    ReinspectionReason,
    VatRate,
)
from billing.money import FLAGGED_HOLD_PREFIX, money
from billing.selectors import tables_for, vat_rates
from core.errors import renamed
from core.text import DESCRIPTION_MAX_CHARS, column_length, typed_text
from crm.models import Unit
from crm.permissions import require, require_everything
from crm.scoping import scope_for, units_served_today
from customers.models import Contract, ContractStatus, Customer, MeterAssignment

# Audit --------------------------------------------------------------------------------------------------


def audit(*, actor, action: str, obj=None, object_type: str = "", unit_id=None, before=None, after=None,
          reason: str = "", rows: int = 1) -> AuditRecord:  # fmt: skip
    return AuditRecord.objects.create(
        at=timezone.now(),
        actor=actor if getattr(actor, "pk", None) else None,
        unit_id=unit_id if unit_id is not None else getattr(obj, "unit_id", None),
        action=action,
        object_type=object_type or (obj._meta.model_name if obj is not None else ""),
        object_id=getattr(obj, "pk", None),
        rows=rows,
        before=before or {},
        after=after or {},
        reason=reason,
    )


def _actor(actor):
    return actor if getattr(actor, "pk", None) else None


# Tariffs ------------------------------------------------------------------------------------------------


@transaction.atomic
def tariffs_load_reference() -> dict[str, int]:
    """Load the public price tables and VAT rates (idempotent: existing dates are left as they are)."""
    created = {"tables": 0, "vat": 0}
    for category, tables in reference.TABLES_BY_CATEGORY.items():
        for table in tables:
            row, was_created = PriceTable.objects.get_or_create(
                tariff_category=category,
                valid_from=table.valid_from,
                defaults={"kind": table.kind, "legal_basis": reference.LEGAL_BASIS.get(table.valid_from, "")},
            )
            if was_created:
                _store_steps(row, table)
                created["tables"] += 1
    for rate in reference.VAT_RATES:
        _row, was_created = VatRate.objects.get_or_create(
            valid_from=rate.valid_from, defaults={"percent": rate.percent}
        )
        created["vat"] += was_created
    return created


def _store_steps(row: PriceTable, table: tariff.PriceTable) -> None:
    steps = [
        PriceStep(table=row, position=i, upper_kwh=t.upper_kwh, price=t.price)
        for i, t in enumerate(table.tiers, 1)
    ] + [
        PriceStep(table=row, position=len(table.tiers) + i, register=name, price=price)
        for i, (name, price) in enumerate(table.tou_prices, 1)
    ]
    PriceStep.objects.bulk_create(steps)


@transaction.atomic
def price_table_create(*, actor, tariff_category: str, kind: str, valid_from: dt.date, tiers=(), tou_prices=(),
                       legal_basis: str = "") -> PriceTable:  # fmt: skip
    """A new price from a date: checked by the pure model (any number of tiers), stored, audited."""
    require_everything(actor, "billing.add_pricetable")  # national reference data
    try:
        shape = tariff.PriceTable(
            kind=kind, valid_from=valid_from, tiers=tuple(tariff.Tier(u, p) for u, p in tiers),
            tou_prices=tuple(tou_prices),
        )  # fmt: skip
    except ValueError as exc:
        raise ValidationError(str(exc)) from exc
    if PriceTable.objects.filter(tariff_category=tariff_category, valid_from=valid_from).exists():
        raise ValidationError({"valid_from": _("A price table of this category already starts on that day.")})
    # A price from a day issued bills cover would change what their adjustments compute (and the database
    # would refuse the prices of a table such bills use): it starts after them.
    lock_reference(exclusive=True)
    refuse_if_billed(since=valid_from, category=tariff_category)
    row = PriceTable.objects.create(
        tariff_category=tariff_category, kind=kind, valid_from=valid_from, legal_basis=legal_basis
    )
    _store_steps(row, shape)
    audit(actor=actor, action="price_table.create", obj=row, after={"kind": kind, "valid_from": str(valid_from),
          "tiers": list(tiers), "tou": list(tou_prices)})  # fmt: skip
    return row


def price_table_in_use(table: PriceTable) -> bool:
    """Whether an issued bill of a contract of the table's category covers a day the table applied to: such a
    table is history (the database refuses to change it, migration 0010)."""
    following = (
        PriceTable.objects.filter(tariff_category=table.tariff_category, valid_from__gt=table.valid_from)
        .order_by("valid_from")
        .values_list("valid_from", flat=True)
        .first()
    )
    bills = Invoice.objects.filter(
        status__in=ISSUED_STATUSES,
        period_end__gt=table.valid_from,
        contract__tariff_category=table.tariff_category,
    )
    return (bills.filter(period_start__lt=following) if following else bills).exists()


def vat_rate_in_use(rate: VatRate) -> bool:
    """Whether an issued bill covers a day the rate applied to: such a rate is history."""
    following = (
        VatRate.objects.filter(valid_from__gt=rate.valid_from)
        .order_by("valid_from")
        .values_list("valid_from", flat=True)
        .first()
    )
    bills = Invoice.objects.filter(status__in=ISSUED_STATUSES, period_end__gt=rate.valid_from)
    return (bills.filter(period_start__lt=following) if following else bills).exists()


@transaction.atomic
def vat_rate_create(*, actor, valid_from: dt.date, percent: int, legal_basis: str = "") -> VatRate:
    """A new VAT rate from a date (a correction of a rate bills used is one too): stored, audited."""
    require_everything(actor, "billing.add_vatrate")  # national reference data
    if not 0 <= percent <= 100:
        raise ValidationError({"percent": _("A VAT rate is a percentage from 0 to 100.")})
    if VatRate.objects.filter(valid_from=valid_from).exists():
        raise ValidationError({"valid_from": _("A VAT rate already starts on that day.")})
    lock_reference(exclusive=True)
    refuse_if_billed(since=valid_from)
    rate = VatRate.objects.create(valid_from=valid_from, percent=percent, legal_basis=legal_basis)
    audit(actor=actor, action="vat_rate.create", obj=rate, object_type="vatrate",
          after={"valid_from": str(valid_from), "percent": percent, "legal_basis": legal_basis})  # fmt: skip
    return rate


@transaction.atomic
def vat_rate_change(
    *, actor, rate: VatRate, percent: int, legal_basis: str = "", reason: str = ""
) -> VatRate:
    """Correct a rate no issued bill used yet (a future one): audited. A rate bills used is never changed."""
    require_everything(actor, "billing.change_vatrate")  # national reference data
    lock_reference(exclusive=True)
    rate = VatRate.objects.select_for_update().get(pk=rate.pk)
    if vat_rate_in_use(rate):
        raise ValidationError(_("Issued bills used this VAT rate: a correction is a new rate from a date."))
    following = VatRate.objects.filter(valid_from__gt=rate.valid_from).order_by("valid_from").first()
    refuse_if_billed(since=rate.valid_from, until=following.valid_from if following else None, field="percent")
    if not 0 <= percent <= 100:
        raise ValidationError({"percent": _("A VAT rate is a percentage from 0 to 100.")})
    before = {"percent": rate.percent, "legal_basis": rate.legal_basis}
    rate.percent, rate.legal_basis = percent, legal_basis
    rate.save(update_fields=["percent", "legal_basis"])
    audit(actor=actor, action="vat_rate.change", obj=rate, object_type="vatrate", before=before,
          after={"percent": percent, "legal_basis": legal_basis}, reason=reason)  # fmt: skip
    return rate


def period_bounds(period: dt.date) -> tuple[dt.date, dt.date]:
    """A billing period is a calendar month: [first day, first day of the next month)."""
    if period.day != 1:
        raise ValidationError({"period": _("A billing period starts on the first day of a month.")})
    try:
        end = rules.month_end(period)
    except OverflowError:  # December 9999: its month has no end a date can hold
        message = _("The period is out of range (the last month is 11/9999).")
        raise ValidationError({"period": message}) from None
    return period, end


def charge_for(*, category: str, period: dt.date, kwh: int, households: int = 1, rebates=()) -> tariff.Charge:
    """The charge of a bill by the one rule of ``billing.tariff`` (VAT once per rate; ``rebates`` the
    percentages of the rebates on it, in the order they were applied)."""
    start, end = period_bounds(period)
    try:
        return tariff.compute_charge(
            start=start, end=end, consumption=kwh, tables=tables_for(category), vat_rates=vat_rates(),
            households=households, rebates=tuple(rebates),
        )  # fmt: skip
    except ValueError as exc:
        raise ValidationError(str(exc)) from exc


# Locks --------------------------------------------------------------------------------------------------

PERIOD_LOCK = 15_001  # the first key of the period locks (PostgreSQL advisory locks, per transaction)
REFERENCE_LOCK = (15_002, 0)  # the lock of the VAT rates and price tables against the bills computed from them


def lock_period(period: dt.date, *, exclusive: bool = False) -> None:
    """What a period's bills depend on changes one way at a time. The billing run and a rebate round (apply or
    reverse, each of its months) take the period's lock exclusively; a reading recorded, corrected or re-based, a dispute or a re-inspection opened take it shared.
    An issue (``invoices_issue``, ``invoice_issue``) takes it shared too, before its bills' rows.
    So a correction made while the run is open waits for it, then finds the run's draft and recomputes it; a
    run started while a correction is open waits for it and bills the corrected reading. Held to the end of the
    transaction (PostgreSQL; SQLite has one writer at a time anyway)."""
    if connection.vendor != "postgresql":
        return
    function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {function}(%s, %s)", [PERIOD_LOCK, period.year * 100 + period.month])


def lock_periods(first: dt.date, last: dt.date) -> None:
    """A rebate round's months, each locked exclusively as the billing run locks its month, from the earliest
    (the order every path takes them in): a correction, reading, dispute or scan of one of them finishes first,
    and the round then reduces the bills as they stand; one started during the round waits for it."""
    month = first.replace(day=1)
    while month <= last:
        lock_period(month, exclusive=True)
        month = rules.month_end(month)


def lock_reference(*, exclusive: bool = False) -> None:
    """The VAT rates and price tables change one way at a time against the bills computed from them. A new
    rate or price, or a change of a future rate, takes this lock exclusively; a billing run and an issue take
    it shared. So a change made while a run or an issue is open waits for it, then finds its bills and is
    refused; a run started during a change waits for it and computes with the new rates. Held to the end of
    the transaction (PostgreSQL; SQLite has one writer at a time anyway)."""
    if connection.vendor != "postgresql":
        return
    function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {function}(%s, %s)", list(REFERENCE_LOCK))


def lock_contract(contract_id: int) -> Contract:
    """A contract's readings change one at a time: a reading recorded or estimated, a correction (and the
    re-base of the later month it makes) and a readings file import (``billing.imports``, the same lock on
    its contracts at once, by id) lock the contract's row first, so each computes a month's advance from the
    registers the other one committed. The contract, with its customer.

    Lock order: the contract's row before any period lock (``lock_period``) and any reading or bill row,
    one contract per transaction except an import (by id). ``FOR NO KEY UPDATE``: it waits for another change
    of the contract's readings and for a change of the contract (``customers.services``, which takes no period
    lock), but not for the key checks of the rows that point at the contract. So a holder of a period's lock
    (the billing run, a rebate round, an issue) never waits for this lock, and a reading waiting for a
    period's lock while holding it cannot close a cycle."""
    return (
        Contract.objects.select_for_update(of=("self",), no_key=True)
        .select_related("customer")
        .get(pk=contract_id)
    )


def refuse_if_billed(
    *, since: dt.date, until: dt.date | None = None, field: str = "valid_from", category: str | None = None
) -> None:
    """Refuse a change of the rates or prices in force from ``since`` (to ``until``) when bills already cover
    those days: an issued bill's charge is history; a draft or held bill was computed with the rates before
    the change, and issuing it would bill what the tables no longer say. Called under ``lock_reference``.
    ``category``: a price table's tariff category, whose bills only it prices (as ``price_table_in_use``); a
    VAT rate applies to every category and passes none."""
    bills = Invoice.objects.filter(period_end__gt=since)
    if category is not None:
        bills = bills.filter(contract__tariff_category=category)
    if until is not None:
        bills = bills.filter(period_start__lt=until)
    if bills.filter(status__in=ISSUED_STATUSES).exists():
        raise ValidationError({field: _("Issued bills already cover that day: a change starts after them.")})
    pending = (
        bills.filter(status__in=(InvoiceStatus.DRAFT, InvoiceStatus.HELD))
        .order_by("period")
        .values_list("period", flat=True)
        .first()
    )
    if pending is not None:
        raise ValidationError(
            {
                field: _(
                    "The bills of %(m)s are made and not yet issued: they were computed with the rates and "
                    "prices in force, so a change starts after the days they cover."
                )
                % {"m": f"{pending:%m/%Y}"}
            }
        )


# What holds a bill -------------------------------------------------------------------------------------

# The contracts whose reading of %(period)s is under review: an open re-inspection of it, or an open dispute
# about it (a superseded reading of the period counts too). The billing run holds their bills.
UNDER_REVIEW_SQL = (
    "SELECT xr.contract_id FROM billing_reinspection x JOIN billing_meterreading xr ON xr.id = x.reading_id "
    "WHERE x.done_at IS NULL AND xr.period = %(period)s "
    "UNION ALL SELECT dr.contract_id FROM billing_dispute d JOIN billing_meterreading dr ON dr.id = d.reading_id "
    "WHERE d.status = 'open' AND dr.period = %(period)s"
)


def under_review_hold() -> str:
    return _("Disputed or under re-inspection: held until that is closed.")


def review_reason(*, contract_id: int, period: dt.date) -> str:
    """Why a contract's bill of ``period`` cannot be issued ('' when nothing holds it): an open dispute about
    the bill or its reading, or an open re-inspection of its reading, whatever came first."""
    readings = MeterReading.objects.filter(contract_id=contract_id, period=period).values("pk")
    if (
        Dispute.objects.open()
        .filter(Q(reading__in=readings) | Q(invoice__contract_id=contract_id, invoice__period=period))
        .exists()
    ):
        return _("A dispute on this invoice is still open.")
    if Reinspection.objects.open().filter(reading__in=readings).exists():
        return _("A re-inspection of its reading is still open.")
    return ""


def flagged_hold(reading: MeterReading) -> str:
    """The hold reason of a bill whose reading is flagged as an implausible jump (as the billing run words it)."""
    return f"{FLAGGED_HOLD_PREFIX}{reading.flag_reason}"[:200]


def _hold_drafts(*, actor, contract_id: int, period: dt.date, reason: str) -> None:
    for invoice in Invoice.objects.filter(
        contract_id=contract_id, period=period, kind=InvoiceKind.REGULAR, status=InvoiceStatus.DRAFT
    ):
        _hold_if_draft(actor=actor, invoice=invoice, reason=reason)


def _hold_if_draft(*, actor, invoice: Invoice, reason: str) -> None:
    """Hold ``invoice`` for review when it is still a draft, read under its row lock: a bill issued meanwhile
    (its issue committed while a dispute was being opened) is left issued, as a dispute of an issued bill."""
    locked = Invoice.objects.select_for_update().filter(pk=invoice.pk, status=InvoiceStatus.DRAFT).first()
    if locked is not None:
        invoice_hold(actor=actor, invoice=locked, reason=reason, kind=HoldKind.REVIEW)


def _release_drafts(
    *, actor, contract_id: int, period: dt.date, reason: str, kinds: tuple[str, ...], verified: bool
) -> None:
    """Release the held bill of a contract and period once no dispute or re-inspection holds it any more, when
    it is held for one of ``kinds`` (see ``_release_held``). The month's bill not issued is locked, draft or held,
    and decided on the status read under the lock: an issue holding the draft meanwhile (``invoices_issue``, an
    ``UPDATE`` under the same shared period lock) commits first and its hold is then seen and released."""
    if review_reason(contract_id=contract_id, period=period):
        return
    for invoice in Invoice.objects.select_for_update(of=("self",)).filter(  # an issued bill is never held again
        contract_id=contract_id, period=period, kind=InvoiceKind.REGULAR,
        status__in=(InvoiceStatus.DRAFT, InvoiceStatus.HELD),
    ):  # fmt: skip
        if invoice.status == InvoiceStatus.HELD:
            _release_held(actor=actor, invoice=invoice, reason=reason, kinds=kinds, verified=verified)


def _release_held(*, actor, invoice: Invoice, reason: str, kinds: tuple[str, ...], verified: bool) -> None:
    """The automatic release of a held bill when what held it closes. Only a hold of one of ``kinds`` is
    released (a clerk's own hold waits for the clerk's release), and only once no dispute or re-inspection
    holds it. Its reading, still flagged as an implausible jump, keeps it held unless ``verified`` (read again
    on site): the hold becomes the flagged reading's, for a clerk to review."""
    require(actor, "billing.change_invoice", unit=invoice.unit_id)
    invoice = Invoice.objects.select_for_update(of=("self",)).select_related("reading").get(pk=invoice.pk)
    if invoice.status != InvoiceStatus.HELD or invoice.hold_kind not in kinds:
        return
    if review_reason(contract_id=invoice.contract_id, period=invoice.period):
        return
    reading = invoice.reading
    if reading is not None and reading.status == ReadingStatus.FLAGGED:
        if not verified:
            if invoice.hold_kind != HoldKind.FLAGGED:
                _set_hold(actor=actor, invoice=invoice, reason=flagged_hold(reading), kind=HoldKind.FLAGGED)
            return
        _accept_reading(actor=actor, reading=reading, reason=reason)
    _release(actor=actor, invoice=invoice, reason=reason)


def _set_hold(*, actor, invoice: Invoice, reason: str, kind: str) -> None:
    """Hold a bill (locked by the caller, not issued) for ``reason`` of ``kind``, with its audit record."""
    before = {"status": invoice.status, "hold_kind": invoice.hold_kind}
    invoice.status, invoice.hold_reason, invoice.hold_kind = InvoiceStatus.HELD, reason, kind
    invoice.save(update_fields=["status", "hold_reason", "hold_kind"])
    audit(actor=actor, action="invoice.hold", obj=invoice, before=before,
          after={"status": "held", "hold_kind": kind}, reason=reason)  # fmt: skip


def _release(*, actor, invoice: Invoice, reason: str) -> None:
    """Back to draft (the bill locked by the caller, held), with its audit record."""
    before = {"status": "held", "hold_reason": invoice.hold_reason, "hold_kind": invoice.hold_kind}
    invoice.status, invoice.hold_reason, invoice.hold_kind = InvoiceStatus.DRAFT, "", HoldKind.NONE
    invoice.save(update_fields=["status", "hold_reason", "hold_kind"])
    audit(actor=actor, action="invoice.release", obj=invoice, before=before, after={"status": "draft"},
          reason=reason)  # fmt: skip


def _accept_reading(*, actor, reading: MeterReading, reason: str) -> None:
    """A reading flagged as an implausible jump is reviewed and accepted (by the clerk who releases its bill,
    or confirmed on site): it is valid from here on, its flag's reason kept."""
    if MeterReading.objects.filter(pk=reading.pk, status=ReadingStatus.FLAGGED).update(status=ReadingStatus.VALID):
        reading.status = ReadingStatus.VALID
        audit(actor=actor, action="reading.accept", obj=reading,
              before={"status": "flagged", "flag": reading.flag_reason}, after={"status": "valid"},
              reason=reason)  # fmt: skip


# Readings -----------------------------------------------------------------------------------------------


def reading_assignment(contract: Contract, period: dt.date) -> MeterAssignment:
    """The meter that served the contract in ``period``, which the month is read on: the one on it now when it
    was installed before the month ended; else the last one taken off during or after the month (the final
    month of a customer who moved out, read after the meter came off: its removal register is the most it
    reads, ``billing.rules.removal_refusal``; taken off at the month's very start, it served none of it). Else
    the one on it now (a month before it was installed, refused as such), or none. The readings import sends
    the lines of such contracts through ``reading_record``."""
    current = None
    served = None
    for assignment in (
        MeterAssignment.objects.filter(
            Q(removed_at__isnull=True) | Q(removed_at__gt=rules.month_start_at(period)), contract=contract
        )
        .select_related("meter")
        .order_by("-installed_at", "-pk")
    ):
        if assignment.removed_at is None:
            current = assignment
        elif served is None and assignment.installed_at < rules.month_end_at(period):
            served = assignment
    if current is not None and (served is None or current.installed_at < rules.month_end_at(period)):
        return current
    if served is not None:
        return served
    raise ValidationError(_("The contract has no meter installed."))


def _refuse_another_meter(contract: Contract, period: dt.date, meter_id: int) -> None:
    """A register given for a meter that did not serve the contract in ``period`` (a file's serial): refused,
    saying why."""
    stays = MeterAssignment.objects.filter(meter_id=meter_id)
    if stays.filter(contract=contract, installed_at__gte=rules.month_end_at(period)).exists():
        rules.check(rules.install_refusal(rules.month_end_at(period), period), field="period")
    if not stays.filter(removed_at__isnull=True).exists():
        raise ValidationError(_("The meter is not installed on any contract."))
    raise ValidationError(_("The meter is not installed on that contract."))


def _previous_reading(contract: Contract, period: dt.date) -> MeterReading | None:
    return (
        MeterReading.objects.current()
        .filter(contract=contract, period__lt=period)
        .order_by("-period")
        .first()
    )


def _history(contract: Contract, period: dt.date, cycles: int = 3) -> tuple[int, int] | None:
    """(kWh, days) of the last ``cycles`` non-estimated readings before ``period`` (None without history): what
    an implausible jump (``rules.jump_reason``) and an estimate are measured against, summed as the readings
    import sums them (``billing.imports._Dialect.history``)."""
    rows = list(
        MeterReading.objects.current()
        .filter(contract=contract, period__lt=period)
        .exclude(source=ReadingSource.ESTIMATED)
        .order_by("-period")
        .values_list("period", "kwh")[:cycles]
    )
    if not rows:
        return None
    return sum(k for _p, k in rows), sum((period_bounds(p)[1] - p).days for p, _kwh in rows)


def _same_stay(previous: MeterReading, assignment: MeterAssignment) -> bool:
    """Whether ``previous`` was read in ``assignment``'s stay on the contract (``_assignment_read``): on the same
    meter, installed before the previous reading's month ended. A meter taken off and put back later (after a
    stand-in, say) starts a new stay: a reading of its earlier stay is before a swap, like one of another meter.
    No query; the readings import compares the same in SQL (``billing.imports._calc_sql``)."""
    return previous.meter_id == assignment.meter_id and assignment.installed_at < rules.month_end_at(previous.period)


def _advance_base(*, contract, assignment: MeterAssignment, previous) -> tuple[int, int | None]:
    """Where the advance of a register on ``assignment``'s meter starts, and what the meters taken off since
    ``previous`` carry: (the previous register, None) when ``previous`` was read in the same stay; else (the
    reading at install, ``_advance_of_meters_off``): the first reading of the contract, or a meter swapped
    since the previous one. The one rule of a month's kWh across installations: a register read
    (``_consumption``) and an estimate (``reading_estimate``) split it the same way."""
    if previous is not None and _same_stay(previous, assignment):
        return previous.value, None
    return assignment.reading_at_install, _advance_of_meters_off(
        contract=contract, assignment=assignment, previous=previous
    )


def _consumption(*, contract, assignment, previous, value: int, rolled_over: bool) -> tuple[int | None, int]:
    """(previous register, kWh) for a new register ``value``, across a meter replacement or a roll-over."""
    base, carried = _advance_base(contract=contract, assignment=assignment, previous=previous)
    if carried is not None:
        # The first reading, or the meter was replaced since the previous one: what every meter advanced, up
        # to the current one's advance from its reading at install.
        if value < base:
            message = (
                _("The register is below the reading at install (%(v)s).") % {"v": base}
                if previous is None
                else _("The register is below the new meter's reading at install.")
            )
            raise ValidationError({"value": message})
        return base, carried + value - base
    if value >= previous.value:
        return previous.value, value - previous.value
    if not rolled_over:
        raise ValidationError(
            {"value": _("The register (%(v)s) is below the previous reading (%(p)s). If the meter rolled over, "
                        "say so.") % {"v": value, "p": previous.value}}
        )  # fmt: skip
    digits = max(len(str(previous.value)), 5)
    return previous.value, value + 10**digits - previous.value


def _advance_of_meters_off(*, contract, assignment: MeterAssignment, previous: MeterReading | None) -> int:
    """kWh read on the meters taken off the contract since ``previous`` (a reading of another stay than the
    current ``assignment``, ``_same_stay``): the tail of the stay it was read in (its reading at removal − the
    previous register), plus the whole advance (reading at removal − reading at install) of each meter
    installed and taken off after it, before the current one. No previous reading (the contract's first):
    the whole advance of every meter before the current one. A contract's meters follow one another (each
    installed after the one before came off), so they are in the order of their assignments: one query reads
    them all, from the previous reading's stay (none found: nothing). A meter that came off below where it
    started (faulty) adds nothing. The readings import computes the same in SQL (``billing.imports._calc_sql``)."""
    stays = MeterAssignment.objects.filter(contract=contract, pk__lt=assignment.pk)
    if previous is not None:
        stay_read = (
            stays.filter(meter_id=previous.meter_id, installed_at__lt=rules.month_end_at(previous.period))
            .order_by("-pk")
            .values("pk")[:1]
        )
        stays = stays.filter(pk__gte=Subquery(stay_read))
    advance = 0
    for position, (at_install, at_removal) in enumerate(
        stays.order_by("pk").values_list("reading_at_install", "reading_at_removal")
    ):
        start = previous.value if position == 0 and previous is not None else at_install
        advance += max((at_removal if at_removal is not None else start) - start, 0)
    return advance


MAX_KWH = 2**31 - 1  # the largest consumption the readings' kwh column holds


def _refuse_impossible_kwh(kwh: int) -> None:
    """A consumption no meter reads (a register typed with digits too many): refused, not left to overflow the
    column."""
    if kwh > MAX_KWH:
        raise ValidationError(
            {"value": _("The register gives %(k)s kWh, more than any meter reads: check it.") % {"k": kwh}}
        )


def _jump_reason(contract: Contract, period: dt.date, kwh: int) -> str:
    """Why ``kwh`` read for ``period`` is an implausible jump against the contract's last cycles ('' when it is
    not): ``rules.jump_reason``, the one rule the readings import compares in SQL too."""
    hist_kwh, hist_days = _history(contract, period) or (None, None)
    start, end = period_bounds(period)
    return rules.jump_reason(kwh, hist_kwh, hist_days, (end - start).days, settings.TONGDAI_READING_JUMP_FACTOR)


def _later_reading(contract_id: int, period: dt.date) -> MeterReading | None:
    return (
        MeterReading.objects.current()
        .filter(contract_id=contract_id, period__gt=period)
        .order_by("period")
        .first()
    )


def _refuse_contract_not_read(contract: Contract, period: dt.date) -> None:
    """The contract is in force for ``period`` (``billing.rules.contract_refusal``), or the reading is refused."""
    rules.check(rules.contract_refusal(contract.status, end_date=contract.end_date, period=period), field=None)


def _placed(
    *, contract: Contract, assignment: MeterAssignment, period: dt.date, value: int,
    taken_at: dt.datetime | None = None,
) -> MeterReading | None:  # fmt: skip
    """The reading rules (``billing.rules``) for a register of ``period`` on the meter that served the contract
    then: the contract is read, the meter was there (and on when the register was ``taken_at``), and the
    register is not above a later month's (nor above the meter's register when it came off). Locks the
    periods whose bills the reading changes; returns the later reading it re-bases (or None)."""
    _refuse_contract_not_read(contract, period)
    rules.check(rules.install_refusal(assignment.installed_at, period), field="period")
    rules.check(rules.taken_refusal(taken_at, assignment), field="taken_at")
    rules.check(rules.register_refusal(value), rules.removal_refusal(value, assignment))
    lock_period(period)
    later = _later_reading(contract.pk, period)
    if later is not None:
        lock_period(later.period)
        if later.meter_id == assignment.meter_id:
            rules.check(rules.later_refusal(value, later))
    return later


@transaction.atomic
def reading_record(*, actor, contract: Contract, period: dt.date, value: int, source: str,
                   taken_at: dt.datetime | None = None, rolled_over: bool = False,
                   meter_id: int | None = None) -> MeterReading:  # fmt: skip
    """Take a period's reading: validated by the reading rules against its neighbours, implausible jumps
    flagged. A reading for a month before one already read is placed between them: the later reading's
    advance is re-based on it. ``meter_id``: the meter the register was read on (a file's serial), refused
    when it is not the one that served the contract that month."""
    require(actor, "billing.add_meterreading")
    period_bounds(period)
    if source not in RECORDED_SOURCES:
        raise ValidationError({"source": _("Unknown reading source.")})
    if value is None or int(value) < 0:
        raise ValidationError({"value": _("A register is a whole number of kWh, not negative.")})
    contract = lock_contract(contract.pk)  # first: its readings change one at a time (``lock_contract``)
    require(actor, "billing.add_meterreading", unit=contract.customer.unit_id)
    rules.check(rules.future_refusal(period), field="period")
    _refuse_contract_not_read(contract, period)
    assignment = reading_assignment(contract, period)
    if meter_id is not None and assignment.meter_id != meter_id:
        _refuse_another_meter(contract, period, meter_id)
    later = _placed(contract=contract, assignment=assignment, period=period, value=int(value), taken_at=taken_at)
    if MeterReading.objects.current().filter(contract=contract, period=period).exists():
        raise ValidationError(
            _("This period is already read for the contract: correct that reading instead.")
        )
    previous = _previous_reading(contract, period)
    if not rolled_over and later is None and source != ReadingSource.ESTIMATED:
        # a real register of the newest month read: an estimate before it may be trued up
        previous = _true_up_estimate(actor=actor, assignment=assignment, previous=previous, value=int(value),
                                     period=period)  # fmt: skip
    previous_value, kwh = _consumption(
        contract=contract, assignment=assignment, previous=previous, value=int(value), rolled_over=rolled_over
    )
    _refuse_impossible_kwh(kwh)
    reason = _jump_reason(contract, period, kwh)
    reading = MeterReading.objects.create(
        contract=contract, meter=assignment.meter, unit_id=contract.customer.unit_id, period=period, value=value,
        previous_value=previous_value, kwh=kwh, source=source,
        status=ReadingStatus.FLAGGED if reason else ReadingStatus.VALID, flag_reason=reason[:200],
        reader=_actor(actor), taken_at=taken_at or timezone.now(),
    )  # fmt: skip
    audit(actor=actor, action="reading.record", obj=reading,
          after={"period": str(period), "value": value, "kwh": kwh, "source": source, "flag": reason})  # fmt: skip
    if later is not None:
        _rebase(actor=actor, later=later, previous=reading,
                reason=_("Reading of %(m)s entered late") % {"m": f"{period:%m/%Y}"})  # fmt: skip
    return reading


def _true_up_estimate(
    *, actor, assignment: MeterAssignment, previous: MeterReading | None, value: int, period: dt.date
) -> MeterReading | None:
    """A real register below the estimated one of the month before: the estimate overshot, since the meter
    cannot have read more then than it reads now. The estimated month is corrected down to this register
    (``reading_correct``, still an estimate): its bill is recomputed before issue, and after issue an adjustment
    is proposed (the customer is refunded what was billed too much). The month read then advances from it.
    Returns the reading the month advances from. A register below the estimate's own base is no true-up: it
    is refused as below the previous reading. Across a swap (the estimate was read in an earlier stay,
    ``_same_stay``) the real register is the one its meter came off with: an estimate above it is trued up to
    it the same way (a meter that came off below the estimate's base, faulty, trues nothing up)."""
    if previous is None or previous.source != ReadingSource.ESTIMATED:
        return previous
    reason, serial = _("True-up: %(m)s read %(v)s, below the estimate for %(e)s (%(x)s)"), ""
    if not _same_stay(previous, assignment):
        stay = _assignment_read(previous)
        if stay is None or stay.reading_at_removal is None:
            return previous
        reason = _("True-up: meter %(s)s came off at %(v)s, below the estimate for %(e)s (%(x)s)")
        value, serial = stay.reading_at_removal, stay.meter.serial
    if value >= previous.value:
        return previous
    if value < (previous.previous_value or 0):
        _refuse_below_an_earlier_estimate(previous, value)
        return previous  # below a real reading: refused as below the previous reading
    reason = reason % {
        "m": f"{period:%m/%Y}", "v": value, "e": f"{previous.period:%m/%Y}", "x": previous.value,
        "s": serial,
    }  # fmt: skip
    # Its issued bill gets its adjustment from ``reading_correct`` (proposed, or asked for).
    return reading_correct(
        actor=actor, reading=previous, value=value, reason=reason, source=ReadingSource.ESTIMATED
    )


def _refuse_below_an_earlier_estimate(estimate: MeterReading, value: int) -> None:
    """Months estimated in a row are trued up one at a time, from the earliest: a register below the month
    before ``estimate``, itself an estimate, is refused with what to do."""
    earlier = _previous_reading(estimate.contract, estimate.period)
    if (
        earlier is None
        or earlier.source != ReadingSource.ESTIMATED
        or earlier.meter_id != estimate.meter_id
        or value < (earlier.previous_value or 0)
    ):
        return
    raise ValidationError({"value": _(
        "The register (%(v)s) is below the estimates of %(e)s and %(l)s: months estimated in a row are trued up "
        "from the earliest. Correct the estimate of %(e)s (a re-inspection) first."
    ) % {"v": value, "e": f"{earlier.period:%m/%Y}", "l": f"{estimate.period:%m/%Y}"}})  # fmt: skip


def _rebase(*, actor, later: MeterReading, previous: MeterReading, reason: str) -> MeterReading | None:
    """The advance of ``later`` (the next current reading) follows ``previous``, a reading entered late or
    corrected before it: ``later`` is superseded by the same register with its new previous register and kWh.
    A bill not yet issued on it is recomputed; an issued one gets an adjustment proposal (a billing clerk
    proposes, another approves). No entry of its own: its callers (a reading recorded or estimated late, a
    correction) already hold the contract's lock (``lock_contract``) and the later month's period lock."""
    assignment = _assignment_read(later)  # the stay it was read in: a meter put back on has several
    contract = Contract.objects.select_related("customer").get(pk=later.contract_id)
    previous_value, kwh = _consumption(
        contract=contract, assignment=assignment, previous=previous, value=later.value,
        rolled_over=rules.later_rolled_over(later),
    )  # fmt: skip
    _refuse_impossible_kwh(kwh)
    if (previous_value, kwh) == (later.previous_value, later.kwh):
        return None
    later = MeterReading.objects.select_for_update().get(pk=later.pk)
    later.status = ReadingStatus.SUPERSEDED
    later.save(update_fields=["status"])
    flag = _jump_reason(contract, later.period, kwh)
    new = MeterReading.objects.create(
        contract_id=later.contract_id, meter_id=later.meter_id, unit_id=later.unit_id, period=later.period,
        value=later.value, previous_value=previous_value, kwh=kwh, source=later.source,
        status=ReadingStatus.FLAGGED if flag else ReadingStatus.VALID, flag_reason=flag[:200],
        reader=later.reader, taken_at=later.taken_at, corrects=later,
    )  # fmt: skip
    audit(actor=actor, action="reading.rebase", obj=new, before={"reading": later.pk,
          "previous_value": later.previous_value, "kwh": later.kwh},
          after={"previous_value": previous_value, "kwh": kwh}, reason=reason)  # fmt: skip
    _follow_reading(actor=actor, old=later, new=new, reason=reason)
    return new


def _follow_reading(
    *, actor, old: MeterReading, new: MeterReading, reason: str, propose: bool = True
) -> None:
    """The bills on a superseded reading follow the one in force: recomputed before issue; after issue an
    adjustment is proposed by the clerk who made the change, and when nobody may propose it (the system's own
    changes, a clerk without the right) or it cannot be proposed now (one already pending) an audit record
    ``adjustment.needed`` asks for it. Not ``propose``: an open dispute carries the issued bill, and its
    clerk proposes the adjustment that closes it (``reading_correct``).

    A bill not yet issued always points at its month's reading in force (each change recomputes it onto the
    new one). An issued bill never changes: it still points at the reading it was issued from, even after
    that reading was corrected and the bill adjusted, so it is found by its contract and month (one regular
    bill each), whichever reading of the month is superseded now."""
    issued = Q(contract_id=old.contract_id, period=old.period, status__in=ISSUED_STATUSES)
    pending = Q(reading=old) & ~Q(status__in=ISSUED_STATUSES)
    for invoice in Invoice.objects.filter(issued | pending, kind=InvoiceKind.REGULAR):
        if invoice.status not in ISSUED_STATUSES:
            invoice_recompute(actor=actor, invoice=invoice, reading=new, reason=reason)
            continue
        if propose:
            _propose_or_ask(actor=actor, invoice=invoice, reading=new, reason=reason)


def _propose_or_ask(*, actor, invoice: Invoice, reading: MeterReading, reason: str) -> Adjustment | None:
    """The adjustment of the issued ``invoice`` to ``reading``, proposed by ``actor``; when nobody may propose it
    (the system's own changes, a clerk without the right) or it cannot be proposed now (one already pending, the
    same amount), an audit record ``adjustment.needed`` asks for it, with the reason."""
    if _actor(actor) is None or not actor.has_perm("billing.propose_adjustment"):
        audit(actor=actor, action="adjustment.needed", obj=invoice, after={"reading": reading.pk,
              "kwh": reading.kwh}, reason=reason)  # fmt: skip
        return None
    try:
        return adjustment_propose(actor=actor, invoice=invoice, reading=reading, record=reason)
    except ValidationError as exc:  # already pending, or the same amount
        audit(actor=actor, action="adjustment.needed", obj=invoice, after={"reading": reading.pk,
              "kwh": reading.kwh}, reason=f"{reason}: {'; '.join(exc.messages)}")  # fmt: skip
        return None


@transaction.atomic
def reading_estimate(*, actor, contract: Contract, period: dt.date) -> MeterReading:
    """A stopped meter: the period is estimated from the average daily use of the previous 3 cycles."""
    require(actor, "billing.add_meterreading")
    start, end = period_bounds(period)
    contract = lock_contract(contract.pk)  # first: its readings change one at a time (``lock_contract``)
    require(actor, "billing.add_meterreading", unit=contract.customer.unit_id)
    rules.check(rules.future_refusal(period), field="period")
    _refuse_contract_not_read(contract, period)
    if MeterReading.objects.current().filter(contract=contract, period=period).exists():
        raise ValidationError(
            _("This period is already read for the contract: correct that reading instead.")
        )
    history = _history(contract, period)
    if history is None:
        raise ValidationError(_("No earlier readings to estimate from."))
    hist_kwh, hist_days = history
    daily = Decimal(hist_kwh) / hist_days  # for the audit record only
    # hist_kwh × days / hist_days rounded half up, exactly (whole numbers, no rounded division)
    kwh = (2 * hist_kwh * (end - start).days + hist_days) // (2 * hist_days)
    assignment = reading_assignment(contract, period)
    previous = _previous_reading(contract, period)
    # Split as a register read is (``_advance_base``): the meters taken off since the previous reading carry
    # what they really advanced; the current meter's register takes only what is left of the estimate.
    base, carried = _advance_base(contract=contract, assignment=assignment, previous=previous)
    register = base + max(kwh - (carried or 0), 0)
    removal = assignment.reading_at_removal  # set once the meter came off: it read no more on the contract
    if removal is not None and base <= removal:
        register = min(register, removal)
    kwh = (carried or 0) + register - base
    later = _placed(contract=contract, assignment=assignment, period=period, value=register)
    reading = MeterReading.objects.create(
        contract=contract, meter=assignment.meter, unit_id=contract.customer.unit_id, period=period,
        value=register, previous_value=base, kwh=kwh, source=ReadingSource.ESTIMATED, reader=_actor(actor),
        taken_at=timezone.now(),
    )  # fmt: skip
    audit(actor=actor, action="reading.estimate", obj=reading, after={"period": str(period), "kwh": kwh,
          "daily": str(daily.quantize(Decimal("0.01")))})  # fmt: skip
    if later is not None:
        _rebase(actor=actor, later=later, previous=reading,
                reason=_("Reading of %(m)s estimated late") % {"m": f"{period:%m/%Y}"})  # fmt: skip
    return reading


def _assignment_read(reading: MeterReading) -> MeterAssignment | None:
    """The stay of ``reading``'s meter on its contract that the reading was taken in."""
    return (
        MeterAssignment.objects.filter(
            contract_id=reading.contract_id,
            meter_id=reading.meter_id,
            installed_at__lt=rules.month_end_at(reading.period),
        )
        .select_related("meter")
        .order_by("-installed_at", "-pk")
        .first()
    )


def _disputed_month(reading: MeterReading) -> list[Dispute]:
    """The open disputes about the bill of ``reading``'s contract and month, or any reading of it. The
    disputes are locked: one closed meanwhile (``dispute_resolve``) is seen closed, and one closed after this
    correction sees the corrected reading (``_adjust_after_dispute``), so one of the two proposes the bill's
    adjustment, or asks for it."""
    return list(_open_disputes(reading.contract_id, reading.period).select_for_update(of=("self",)))


def _close_corrected_before_issue(*, actor, reading: MeterReading, disputes: list[Dispute], reason: str) -> None:
    """A correction of a disputed month whose bill is not issued (a draft recomputed, held, or not made yet)
    answers the dispute: closed as corrected, and the bill released once nothing else holds it (held for
    review, or for the flag of the reading it was recomputed from, as ``_follow_flag``). After issue the
    dispute stays open for the adjustment its clerk proposes. The caller holds the contract's and the month's
    locks and the disputes' rows (``_disputed_month``)."""
    issued = Invoice.objects.filter(contract_id=reading.contract_id, period=reading.period,
                                    kind=InvoiceKind.REGULAR, status__in=ISSUED_STATUSES)  # fmt: skip
    if not disputes or issued.exists():
        return
    for dispute in disputes:
        _close_dispute(actor=actor, dispute=dispute, outcome=DisputeOutcome.CORRECTED)
    _release_drafts(actor=actor, contract_id=reading.contract_id, period=reading.period, reason=reason,
                    kinds=(HoldKind.REVIEW, HoldKind.FLAGGED), verified=False)  # fmt: skip


@transaction.atomic
def reading_correct(*, actor, reading: MeterReading, value: int, reason: str,
                    source: str = ReadingSource.REINSPECTION) -> MeterReading:  # fmt: skip
    """Replace a reading by a corrected one (the old one is kept, superseded). A bill not yet issued is
    recomputed from it; an issued bill is corrected only by an adjustment invoice: proposed by the clerk who
    corrects (or asked for by an ``adjustment.needed`` record), unless an open dispute of the month carries
    it, whose clerk proposes the adjustment that closes the dispute."""
    require(actor, "billing.change_meterreading", unit=reading.unit_id)
    reason = typed_text(reason, field="reason")
    if not reason:
        raise ValidationError({"reason": _("Say why the reading is corrected.")})
    # The contract first (``lock_contract``): a later month's reading being recorded meanwhile commits, and is
    # then seen below and re-based; one started meanwhile waits for this correction and advances from it.
    lock_contract(reading.contract_id)
    lock_period(reading.period)
    old = MeterReading.objects.select_for_update().get(pk=reading.pk)
    if old.status == ReadingStatus.SUPERSEDED:
        raise ValidationError(_("This reading was already corrected."))
    if value is not None and int(value) == old.value:  # a correction changes the register (on site: confirmed)
        raise ValidationError({"value": _("The corrected register is the reading's: nothing to correct.")})
    rolled_over = rules.later_rolled_over(old)  # the register passed its last digit since the previous reading
    if value is None or (int(value) < (old.previous_value or 0) and not rolled_over):
        raise ValidationError({"value": _("The corrected register is below the previous reading.")})
    later = _later_reading(old.contract_id, old.period)
    if later is not None:
        lock_period(later.period)
        if later.meter_id == old.meter_id:
            rules.check(rules.later_refusal(int(value), later))
    rules.check(rules.removal_refusal(int(value), _assignment_read(old)))
    kwh = old.kwh + int(value) - old.value
    if rolled_over and old.previous_value is not None and int(value) >= old.previous_value:
        kwh -= 10 ** max(len(str(old.previous_value)), 5)  # the corrected register did not roll over after all
    if kwh < 0:
        raise ValidationError({"value": _("The corrected register gives a negative consumption.")})
    _refuse_impossible_kwh(kwh)
    rules.check(rules.register_refusal(int(value)))  # a register no meter reads (its kWh may fit)
    old.status = ReadingStatus.SUPERSEDED
    old.save(update_fields=["status"])
    new = MeterReading.objects.create(
        contract_id=old.contract_id, meter_id=old.meter_id, unit_id=old.unit_id, period=old.period, value=value,
        previous_value=old.previous_value, kwh=kwh, source=source, reader=_actor(actor), taken_at=timezone.now(),
        corrects=old,
    )  # fmt: skip
    audit(actor=actor, action="reading.correct", obj=new, before={"reading": old.pk, "value": old.value,
          "kwh": old.kwh}, after={"value": value, "kwh": kwh}, reason=reason)  # fmt: skip
    # The issued bill of the month is adjusted: by the clerk of the open dispute that carries it (its
    # adjustment closes the dispute), else proposed now (or asked for) like any change after issue. Before
    # issue the correction closes the month's dispute. Lock order: contract, period (above), disputes, bills.
    disputes = _disputed_month(old)
    _follow_reading(actor=actor, old=old, new=new, reason=reason, propose=not disputes)
    _close_corrected_before_issue(actor=actor, reading=old, disputes=disputes, reason=reason)
    if later is not None:
        _rebase(actor=actor, later=later, previous=new,
                reason=_("Reading of %(m)s corrected: %(r)s") % {"m": f"{old.period:%m/%Y}", "r": reason})  # fmt: skip
    return new


# Invoices -----------------------------------------------------------------------------------------------


def _take_numbers(year: int, count: int) -> int:
    """Reserve ``count`` invoice numbers of ``year`` in one statement; returns the first."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO billing_invoicecounter (year, last) VALUES (%s, %s) "
            "ON CONFLICT (year) DO UPDATE SET last = billing_invoicecounter.last + EXCLUDED.last RETURNING last",
            [year, count],
        )
        (last,) = cursor.fetchone()
    return last - count + 1


def invoice_number(year: int, n: int) -> str:
    return f"HD{year}-{n:08d}"


def _lines(
    invoice_id: int, charge: tariff.Charge, *, sign: int = 1, start_position: int = 1
) -> list[InvoiceLine]:
    return [
        InvoiceLine(
            invoice_id=invoice_id,
            position=start_position + i,
            label=line.label[:100],
            segment_start=line.valid_from,
            tier=line.tier,
            kwh=sign * line.kwh,
            price=line.price,
            amount=sign * line.amount,
            vat_percent=line.vat_percent,
        )
        for i, line in enumerate(charge.lines)
    ]


@dataclass
class RunResult:
    run: BillingRun
    invoices: int
    without_reading: int
    held: int


def check_reach(actor, unit: Unit | None) -> None:
    """Work over every unit is for those who see every unit; anyone else names one of theirs."""
    if actor is None:
        return  # the system itself (tasks, commands)
    scope = scope_for(actor)
    if unit is None and not scope.everything:
        raise ValidationError({"unit": _("Choose one of your units.")})
    if unit is not None and not scope.allows_unit(unit.pk):
        raise ValidationError({"unit": _("This unit is not one of yours.")})


def unit_reach(unit: Unit | None) -> list[int] | None:
    """The units whose records a run, issue or scan of ``unit`` covers (None: every unit): the unit and the
    units merged into it once the merge has taken effect (``crm.scoping.units_served_today``). Their records
    keep their unit and are worked by the successor's staff; a merge dated ahead changes nothing until then.
    A bill stays one per contract and period, so a run of the merged unit itself cannot bill twice."""
    return None if unit is None else sorted(units_served_today([unit.pk]))


def units_sql(column: str, unit_ids: list[int] | None) -> str:
    """``AND column IN (…)`` over ``unit_ids`` (ids read from the database, written out), '' for every unit."""
    if unit_ids is None:
        return ""
    return f"AND {column} IN ({', '.join(str(int(i)) for i in unit_ids) or 'NULL'})"


def billing_run(*, actor, period: dt.date, unit: Unit | None = None) -> RunResult:
    """Bill a period for one unit or all: one invoice (with its lines) per contract in force during the period
    (active, or terminated on or after its first day: its final bill) that has a current reading and no invoice
    yet for the period. A month read while the contract was in force is billed even when the contract was
    suspended since (a suspension stops the reading, not the bill of what was read). Set-based; safe to run
    again (makes the missing ones).
    """
    require(actor, "billing.add_billingrun")
    start, end = period_bounds(period)
    check_reach(actor, unit)
    try:
        return _billing_run(actor=actor, period=period, unit=unit, start=start, end=end)
    except IntegrityError as exc:  # a bill made meanwhile by another run (the period lock makes it rare)
        raise ValidationError(
            _(
                "Another billing run of %(m)s made some of these bills meanwhile: nothing was changed. Start the "
                "run again to make the missing ones."
            )
            % {"m": f"{period:%m/%Y}"}
        ) from exc


def _billing_run(*, actor, period: dt.date, unit: Unit | None, start: dt.date, end: dt.date) -> RunResult:
    with transaction.atomic():
        # One run of a period at a time, and no reading, dispute or re-inspection of it changes meanwhile: a
        # second clerk's run waits and then finds the bills made; a correction waits and then recomputes them.
        lock_period(period, exclusive=True)
        lock_reference()  # the rates and prices stay as they are until the bills computed with them are made
        now = timezone.now()
        run = BillingRun.objects.create(period=period, unit=unit, started_at=now, started_by=_actor(actor))
        params = {"period": period, "start": start, "active": ContractStatus.ACTIVE,
                  "terminated": ContractStatus.TERMINATED}  # fmt: skip
        unit_ids = unit_reach(unit)
        with connection.cursor() as cursor:
            bulk_work_memory(cursor)
            _run_collect_todo(cursor, params, unit_ids=unit_ids)
            _run_compute_charges(cursor, start=start, end=end)
            cursor.execute("SELECT COUNT(*) FROM billing_run_todo")
            (count,) = cursor.fetchone()
            first = _take_numbers(period.year, count) if count else 0
            insert_params = {**params, "year": str(period.year), "first": first, "start": start, "end": end,
                             "run": run.pk, "now": now, "review": under_review_hold()[:200],
                             "flagged": FLAGGED_HOLD_PREFIX}  # fmt: skip
            _run_insert_invoices(cursor, insert_params, count=count)
            # The applied rounds of the month reach the bills made now, as they reached those made before.
            rebates = _run_apply_rebates(cursor, actor=actor, period=period, run_id=run.pk, now=now) if count else {}
            without_reading, held = _run_count_left_out(cursor, params, unit_ids=unit_ids)
            for table in ("billing_run_todo", "billing_run_charge", "billing_run_line"):
                cursor.execute(f"DROP TABLE {table}")
        run.invoices, run.without_reading, run.held = count, without_reading, held
        run.finished_at = timezone.now()
        run.save(update_fields=["invoices", "without_reading", "held", "finished_at"])
        audit(actor=actor, action="billing.run", obj=run, unit_id=unit.pk if unit else None, rows=count,
              after={"period": str(period), "invoices": count, "held": held, "without_reading": without_reading,
                     **({"rebates": rebates} if rebates else {})})  # fmt: skip
    return RunResult(run=run, invoices=count, without_reading=without_reading, held=held)


# The contract ``c`` is in force now for the period: active, or terminated on or after the period's first day
# (the month of its end is billed from its final reading). Its month not read yet is counted as left out.
IN_FORCE_SQL = "(c.status = %(active)s OR (c.status = %(terminated)s AND c.end_date >= %(start)s))"

# The contract ``c`` was in force when its reading of the period was taken: the reading rules read a contract
# only while it is in force (``billing.rules.contract_refusal``), so a current reading of the month is billed
# whatever the contract's status now. A contract suspended after its month was read is billed for that month
# (a suspension stops the reading, not the bill of what was read); a month after a terminated contract's end
# never is.
READ_IN_FORCE_SQL = "(c.status <> %(terminated)s OR c.end_date >= %(start)s)"


def _run_collect_todo(cursor, params: dict, *, unit_ids: list[int] | None) -> None:
    """The run's work list (temporary table ``billing_run_todo``): each current reading of the period (of the
    units ``unit_ids``, ``unit_reach``) of a contract read while in force (``READ_IN_FORCE_SQL``) without a
    regular bill for it, numbered in contract order."""
    where_unit = units_sql("r.unit_id", unit_ids)
    cursor.execute("DROP TABLE IF EXISTS billing_run_todo")
    cursor.execute(
        f"""
        CREATE TEMP TABLE billing_run_todo AS
        SELECT r.id AS reading_id, r.contract_id, c.customer_id, r.unit_id, r.kwh, cu.households,
               c.tariff_category, r.status AS reading_status, r.flag_reason,
               CASE WHEN r.contract_id IN ({UNDER_REVIEW_SQL}) THEN 1 ELSE 0 END AS under_review,
               ROW_NUMBER() OVER (ORDER BY r.contract_id) AS n
        FROM billing_meterreading r
        JOIN customers_contract c ON c.id = r.contract_id
        JOIN customers_customer cu ON cu.id = c.customer_id
        WHERE r.period = %(period)s AND r.status <> 'superseded' AND {READ_IN_FORCE_SQL} {where_unit}
          AND NOT EXISTS (SELECT 1 FROM billing_invoice i WHERE i.contract_id = r.contract_id
                          AND i.period = %(period)s AND i.kind = 'regular')
        """,
        params,
    )


def _run_compute_charges(cursor, *, start: dt.date, end: dt.date) -> None:
    """The charge of each distinct (tariff category, households, kWh) of the work list, computed once by the
    pure tariff model, into temporary tables ``billing_run_charge`` (totals) and ``billing_run_line`` (lines).
    """
    cursor.execute("SELECT DISTINCT tariff_category, households, kwh FROM billing_run_todo")
    combos = cursor.fetchall()
    charges = {}
    tables = {category: tables_for(category) for category in {c[0] for c in combos}}
    rates = vat_rates() if combos else []
    for category, households, kwh in combos:
        try:
            charges[(category, households, kwh)] = tariff.compute_charge(
                start=start, end=end, consumption=kwh, tables=tables[category], vat_rates=rates,
                households=households,
            )  # fmt: skip
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc
    cursor.execute("DROP TABLE IF EXISTS billing_run_charge")
    cursor.execute("DROP TABLE IF EXISTS billing_run_line")
    cursor.execute(
        "CREATE TEMP TABLE billing_run_charge (tariff_category varchar(16), households integer, "
        "kwh integer, subtotal bigint, vat bigint, total bigint)"
    )
    cursor.execute(
        "CREATE TEMP TABLE billing_run_line (tariff_category varchar(16), households integer, kwh integer, "
        "position integer, label varchar(100), segment_start date, tier integer, line_kwh integer, "
        "price integer, amount bigint, vat_percent integer)"
    )
    _insert_rows(cursor, "billing_run_charge", [
        (cat, hh, kwh, ch.subtotal, ch.vat, ch.total) for (cat, hh, kwh), ch in charges.items()
    ])  # fmt: skip
    _insert_rows(cursor, "billing_run_line", [
        (cat, hh, kwh, i, line.label[:100], line.valid_from, line.tier, line.kwh, line.price, line.amount,
         line.vat_percent)
        for (cat, hh, kwh), ch in charges.items() for i, line in enumerate(ch.lines, 1)
    ])  # fmt: skip
    if connection.vendor == "postgresql":  # temporary tables are never analysed by autovacuum
        cursor.execute("CREATE INDEX billing_run_todo_n ON billing_run_todo (n)")
        for table in ("billing_run_todo", "billing_run_charge", "billing_run_line"):
            cursor.execute(f"ANALYZE {table}")


def _run_invoices_sql() -> str:
    """The INSERT of a chunk of the run's bills (numbered from ``first`` in work-list order)."""
    return f"""
    INSERT INTO billing_invoice (number, kind, contract_id, customer_id, unit_id, period, period_start,
        period_end, reading_id, kwh, households, subtotal, vat, total, status, hold_reason, hold_kind,
        adjusts_id, run_id, created_at, issued_at, paid_at)
    SELECT 'HD' || %(year)s || '-' || {_pad8("(%(first)s - 1 + t.n)")},
           'regular', t.contract_id, t.customer_id, t.unit_id, %(period)s, %(start)s, %(end)s,
           t.reading_id, t.kwh, t.households, ch.subtotal, ch.vat, ch.total,
           CASE WHEN t.reading_status = 'flagged' OR t.under_review = 1 THEN 'held' ELSE 'draft' END,
           CASE WHEN t.under_review = 1 THEN %(review)s
                WHEN t.reading_status = 'flagged' THEN substr(%(flagged)s || t.flag_reason, 1, 200)
                ELSE '' END,
           CASE WHEN t.under_review = 1 THEN 'review' WHEN t.reading_status = 'flagged' THEN 'flagged'
                ELSE '' END,
           NULL, %(run)s, %(now)s, NULL, NULL
    FROM billing_run_todo t
    JOIN billing_run_charge ch ON ch.tariff_category = t.tariff_category
         AND ch.households = t.households AND ch.kwh = t.kwh
    WHERE t.n BETWEEN %(low)s AND %(high)s
    """  # fmt: skip


RUN_LINES_SQL = """
    INSERT INTO billing_invoiceline (invoice_id, position, label, segment_start, tier, kwh, price, amount,
        vat_percent)
    SELECT i.id, l.position, l.label, l.segment_start, l.tier, l.line_kwh, l.price, l.amount, l.vat_percent
    FROM {invoices} i
    JOIN billing_run_todo t ON t.contract_id = i.contract_id AND t.n BETWEEN %(low)s AND %(high)s
    JOIN billing_run_line l ON l.tariff_category = t.tariff_category AND l.households = t.households
         AND l.kwh = t.kwh
    {where}
    """


def _run_insert_invoices(cursor, insert_params: dict, *, count: int) -> None:
    """The work list's bills and their lines, joined to the computed charges, in chunks of contracts (one on
    SQLite): each chunk's rows fit in memory, whatever the run's size."""
    chunk = settings.TONGDAI_BILLING_RUN_CHUNK if connection.vendor == "postgresql" else max(count, 1)
    for low in range(1, count + 1, chunk):
        bounds = {"low": low, "high": low + chunk - 1}
        if connection.vendor == "postgresql":
            # One statement: the lines join the invoices as they come out of the INSERT, so the plan
            # never rests on statistics of billing_invoice taken before the run's rows arrived.
            cursor.execute(
                f"WITH ins AS ({_run_invoices_sql()} RETURNING id, contract_id) "
                + RUN_LINES_SQL.format(invoices="ins", where=""),
                {**insert_params, **bounds},
            )
        else:
            cursor.execute(_run_invoices_sql(), {**insert_params, **bounds})
            cursor.execute(
                RUN_LINES_SQL.format(invoices="billing_invoice", where="WHERE i.run_id = %(run)s"),
                {"run": insert_params["run"], **bounds},
            )


def _run_count_left_out(cursor, params: dict, *, unit_ids: list[int] | None) -> tuple[int, int]:
    """How many contracts of the run's reach in force during the period have no reading for it, and how many
    of the bills made were held (a flagged reading or a contract under review)."""
    cursor.execute(
        f"""
        SELECT COUNT(*) FROM customers_contract c JOIN customers_customer cu ON cu.id = c.customer_id
        WHERE {IN_FORCE_SQL} {units_sql("cu.unit_id", unit_ids)}
          AND NOT EXISTS (SELECT 1 FROM billing_meterreading r WHERE r.contract_id = c.id
                          AND r.period = %(period)s AND r.status <> 'superseded')
        """,
        params,
    )
    (without_reading,) = cursor.fetchone()
    cursor.execute("SELECT COUNT(*) FROM billing_run_todo WHERE reading_status = 'flagged' OR under_review = 1")
    (held,) = cursor.fetchone()
    return without_reading, held


def bulk_work_memory(cursor) -> None:
    """A set-based job's hash joins and sorts in memory (PostgreSQL: ``work_mem`` for this transaction)."""
    if connection.vendor == "postgresql":
        cursor.execute("SELECT set_config('work_mem', %s, true)", [settings.TONGDAI_BULK_WORK_MEM])


def _pad8(expr: str) -> str:
    """SQL for ``expr`` as eight digits with leading zeros, on PostgreSQL and SQLite."""
    if connection.vendor == "postgresql":
        return f"lpad(CAST({expr} AS text), 8, '0')"
    return f"substr('00000000' || {expr}, -8, 8)"


def _insert_rows(cursor, table: str, rows: list[tuple], batch: int = 1000) -> None:
    if not rows:
        return
    width = len(rows[0])
    for i in range(0, len(rows), batch):
        chunk = rows[i : i + batch]
        placeholders = ", ".join("(" + ", ".join(["%s"] * width) + ")" for _row in chunk)
        cursor.execute(f"INSERT INTO {table} VALUES {placeholders}", [v for row in chunk for v in row])


@transaction.atomic
def invoices_issue(*, actor, period: dt.date, unit: Unit | None = None) -> int:
    """Issue the period's draft invoices (held ones wait). From here on they cannot change. A draft whose
    reading or bill is disputed or under re-inspection is held instead, with the reason."""
    require(actor, "billing.issue_invoice")
    check_reach(actor, unit)
    lock_period(period)
    lock_reference()
    invoices = Invoice.objects.filter(period=period, status=InvoiceStatus.DRAFT, kind=InvoiceKind.REGULAR)
    if unit is not None:  # the unit's bills and those of the units merged into it (``unit_reach``)
        invoices = invoices.filter(unit_id__in=sorted(units_served_today([unit.pk])))
    reviewed = (
        Q(
            contract_id__in=Reinspection.objects.open()
            .filter(reading__period=period)
            .values("reading__contract_id")
        )
        | Q(
            contract_id__in=Dispute.objects.open()
            .filter(reading__period=period)
            .values("reading__contract_id")
        )
        | Q(pk__in=Dispute.objects.open().filter(invoice__period=period).values("invoice_id"))
    )
    held = invoices.filter(reviewed).update(
        status=InvoiceStatus.HELD, hold_reason=under_review_hold()[:200], hold_kind=HoldKind.REVIEW
    )
    if held:
        audit(actor=actor, action="invoice.hold", object_type="invoice", unit_id=unit.pk if unit else None,
              rows=held, after={"period": str(period), "status": "held"}, reason=under_review_hold())  # fmt: skip
    # A draft whose reading is flagged as an implausible jump (and not reviewed) is never issued: held as the
    # billing run would have held it.
    flag = Substr(
        Concat(Value(FLAGGED_HOLD_PREFIX), Subquery(
            MeterReading.objects.filter(pk=OuterRef("reading_id")).values("flag_reason")[:1]
        )), 1, 200,
    )  # fmt: skip
    flagged = invoices.filter(reading__status=ReadingStatus.FLAGGED).update(
        status=InvoiceStatus.HELD, hold_reason=flag, hold_kind=HoldKind.FLAGGED
    )
    if flagged:
        audit(actor=actor, action="invoice.hold", object_type="invoice", unit_id=unit.pk if unit else None,
              rows=flagged, after={"period": str(period), "status": "held", "hold_kind": HoldKind.FLAGGED})  # fmt: skip
    now = timezone.now()
    # A bill that owes nothing (no charge, or refunds offset on it that cover its total) is settled as issued.
    settled = invoices.filter(total__lte=F("refund_offset")).update(
        status=InvoiceStatus.PAID, issued_at=now, paid_at=now
    )
    count = invoices.update(status=InvoiceStatus.ISSUED, issued_at=now) + settled
    audit(actor=actor, action="invoice.issue", object_type="invoice", unit_id=unit.pk if unit else None,
          rows=count, after={"period": str(period)})  # fmt: skip
    if settled:
        audit(actor=actor, action="invoice.paid", object_type="invoice", unit_id=unit.pk if unit else None,
              rows=settled, after={"period": str(period), "paid_at": now.isoformat()},
              reason=str(NOTHING_OWED))  # fmt: skip
    return count


@transaction.atomic
def invoice_issue(*, actor, invoice: Invoice) -> Invoice:
    require(actor, "billing.issue_invoice", unit=invoice.unit_id)
    # Shared, as ``invoices_issue`` takes it: a rebate round of the month waits for the issue (then leaves the
    # issued bill out), or the issue waits for the round. The period lock first, then the row (lock order:
    # ``refund_settle``).
    lock_period(invoice.period)
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if invoice.status != InvoiceStatus.DRAFT:
        raise ValidationError(
            _("Only a draft invoice can be issued (this one is %(s)s).") % {"s": invoice.get_status_display()}
        )
    held = review_reason(contract_id=invoice.contract_id, period=invoice.period)
    if held and invoice.kind == InvoiceKind.REGULAR:
        raise ValidationError(held)
    if invoice.reading is not None and invoice.reading.status == ReadingStatus.FLAGGED:
        raise ValidationError(
            _("Its reading is flagged as an implausible jump: hold the bill and review the reading first.")
        )
    invoice.status, invoice.issued_at = InvoiceStatus.ISSUED, timezone.now()
    invoice.save(update_fields=["status", "issued_at"])
    audit(
        actor=actor,
        action="invoice.issue",
        obj=invoice,
        before={"status": "draft"},
        after={"status": "issued"},
    )
    if invoice.kind == InvoiceKind.REGULAR and invoice.amount_due <= 0:  # owes nothing: settled as issued
        # (as ``invoices_issue`` settles it; an adjustment invoice that credits is settled by its refund)
        _mark_paid(actor=actor, invoice=invoice, at=invoice.issued_at, reason=str(NOTHING_OWED))
    return invoice


@transaction.atomic
def invoice_hold(*, actor, invoice: Invoice, reason: str, kind: str = HoldKind.CLERK) -> Invoice:
    """Hold a draft: by a clerk for a reason of their own (``kind`` clerk, released only by a clerk), or by a
    dispute (``kind`` review, released when the dispute and its re-inspection close)."""
    require(actor, "billing.change_invoice", unit=invoice.unit_id)
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if invoice.status != InvoiceStatus.DRAFT:
        raise ValidationError(_("Only a draft invoice can be held."))
    reason = typed_text(reason, field="reason", limit=column_length(Invoice, "hold_reason"))
    if not reason:
        raise ValidationError({"reason": _("Say why the invoice is held.")})
    _set_hold(actor=actor, invoice=invoice, reason=reason, kind=kind)
    return invoice


@transaction.atomic
def invoice_release(*, actor, invoice: Invoice, reason: str = "") -> Invoice:
    """A clerk releases a held bill to draft, whatever held it, once no dispute or re-inspection holds it. A
    bill held for its flagged reading is released by the clerk who reviewed the reading: the reading is
    accepted (valid from here on)."""
    require(actor, "billing.change_invoice", unit=invoice.unit_id)
    invoice = Invoice.objects.select_for_update(of=("self",)).select_related("reading").get(pk=invoice.pk)
    if invoice.status != InvoiceStatus.HELD:
        raise ValidationError(_("Only a held invoice can be released."))
    reason_held = review_reason(contract_id=invoice.contract_id, period=invoice.period)
    if reason_held:
        raise ValidationError(reason_held)
    if invoice.reading is not None and invoice.reading.status == ReadingStatus.FLAGGED:
        _accept_reading(actor=actor, reading=invoice.reading, reason=reason or _("Bill released by a clerk"))
    _release(actor=actor, invoice=invoice, reason=reason)
    return invoice


NOTHING_OWED = gettext_lazy("Nothing owed: no charge, or refunds offset on the bill cover its total.")


def _mark_paid(*, actor, invoice: Invoice, at: dt.datetime, reason: str = "") -> Invoice:
    """An issued invoice becomes paid: by ``payment_record``, when its payments cover the amount due (after
    its credits, ``_settle_credits``: also when a credit approved brings it there), at the
    time of the last of them (each checked there: not before the issue, not in the future); or at its issue,
    when it owes nothing (``invoice_issue``; ``invoices_issue`` settles a month's such bills in one statement).
    ``invoice`` is locked by the caller. Nothing marks a bill paid that still owes money."""
    if invoice.status != InvoiceStatus.ISSUED:
        raise ValidationError(_("Only an issued invoice can be paid."))
    invoice.status, invoice.paid_at = InvoiceStatus.PAID, at
    invoice.save(update_fields=["status", "paid_at"])
    audit(actor=actor, action="invoice.paid", obj=invoice, after={"paid_at": invoice.paid_at.isoformat()},
          reason=reason)  # fmt: skip
    return invoice


# Payments -----------------------------------------------------------------------------------------------


@dataclass
class PaymentRecorded:
    """What ``payment_record`` did: the payment, and whether this call recorded it (False: the same
    transaction was recorded before, and this is a retry)."""

    payment: Payment
    created: bool


def _summed(queryset, field: str) -> Coalesce:
    """A subquery: the sum of ``field`` over ``queryset`` (0 when it has no rows)."""
    rows = queryset.order_by().annotate(one=Value(1)).values("one").annotate(s=Sum(field)).values("s")[:1]
    return Coalesce(Subquery(rows), 0, output_field=BigIntegerField())


def with_owed(queryset):
    """``queryset`` of invoices annotated, in the one query, with their bill's account: a regular bill and its
    adjustment invoices are one account. ``account_due``: what the bill comes to (its amount due with every
    adjustment, charges and credits, plus what of its credits was given back otherwise: paid back, or offset
    on another bill); ``account_paid``: the payments on the bill and its adjustments; ``balance``: the one less
    the other (below 0: what was overpaid). ``owed``: what may still be paid on the invoice: on the bill, its
    amount due after its credits less its payments; on a charging adjustment, its own charge less its payments,
    once the bill and the earlier charging adjustments are counted (so a credit that covers it leaves it
    nothing owed); on a credit, 0 (its money goes back through the refund it opened)."""
    root = OuterRef("account_root")
    adjustments = Invoice.objects.filter(adjusts_id=root, kind=InvoiceKind.ADJUSTMENT)
    charges = Payment.objects.filter(invoice__adjusts_id=root, invoice__total__gt=0)
    queryset = queryset.annotate(account_root=Coalesce("adjusts_id", "id")).annotate(
        own_paid=_summed(Payment.objects.filter(invoice_id=OuterRef("pk")), "amount"),
        bill_paid=_summed(Payment.objects.filter(invoice_id=root), "amount"),
        account_paid=_summed(Payment.objects.filter(Q(invoice_id=root) | Q(invoice__adjusts_id=root)), "amount"),
        bill_due=_summed(Invoice.objects.filter(pk=root), "total") - _summed(Invoice.objects.filter(pk=root),
                                                                              "refund_offset"),
        adjusted=_summed(adjustments, "total"),
        credits=_summed(adjustments.filter(total__lt=0), "total"),
        given_back=_summed(
            Refund.objects.filter(adjustment__original_id=root).exclude(method="").exclude(offset_invoice_id=root),
            "amount",
        ),
        earlier=_summed(adjustments.filter(total__gt=0, pk__lt=OuterRef("pk")), "total")
        - _summed(charges.filter(invoice_id__lt=OuterRef("pk")), "amount"),
    )  # fmt: skip
    queryset = queryset.annotate(
        account_due=F("bill_due") + F("adjusted") + F("given_back"),
        bill_left=F("bill_due") + F("credits") + F("given_back") - F("bill_paid"),
    ).annotate(balance=F("account_due") - F("account_paid"))
    # A charging adjustment owes its own charge less its payments, at most what the account owes beyond the bill
    # and the charging adjustments before it.
    beyond = F("balance") - Greatest(F("bill_left"), 0) - F("earlier")
    return queryset.annotate(
        owed=Case(
            When(kind=InvoiceKind.REGULAR, then=Greatest(Least(F("bill_left"), F("balance")), 0)),
            When(total__gt=0, then=Greatest(Least(F("total") - F("own_paid"), beyond), 0)),
            default=Value(0),  # a credit: nothing is owed on it (the customer is owed, through its refund)
            output_field=BigIntegerField(),
        )
    )


def _account(invoice: Invoice) -> dict:
    """``with_owed``'s figures of one invoice: ``owed``, ``balance``, ``account_due``, ``account_paid``."""
    return with_owed(Invoice.objects.filter(pk=invoice.pk)).values(
        "owed", "balance", "account_due", "account_paid"
    ).get()  # fmt: skip


def corrected_due(invoice: Invoice) -> int:
    """What a regular bill comes to with all its approved adjustments (charges and credits), except what of
    its credits was given back otherwise (paid back, or offset on another bill)."""
    return _account(invoice)["account_due"]


def _balance(invoice: Invoice) -> int:
    """What is still owed on a regular bill and its adjustments after their credits and payments (below 0:
    what was overpaid)."""
    return _account(invoice)["balance"]


def payment_owed(invoice: Invoice) -> int:
    """What may still be paid on an issued invoice (``with_owed``): a regular bill's amount due after the
    credits of its approved adjustments, less its payments; a charging adjustment's charge less its payments,
    unless the credits of the bill cover it."""
    return _account(invoice)["owed"]


def overpaid(invoice: Invoice) -> int:
    """What the customer paid on a regular bill and its adjustments above what the bill comes to with all its
    adjustments: the most its refunds pay back in cash."""
    return max(-_balance(invoice), 0)


def _settle_credits(*, actor, invoice: Invoice, at: dt.datetime) -> None:
    """A regular bill (locked by the caller) and its charging adjustments each become paid (at ``at``) once
    nothing is owed on them (paid, or covered by the bill's credits). When the payments reach what the bill
    comes to with all its adjustments, the refunds its credits opened keep only what was overpaid: each
    refund within it stays to be paid back; one above it is cut down to it; the others came off what was owed
    on the bill or its adjustments, and are settled so (as an offset on the bill itself, which its amount due
    does not count)."""
    unpaid = with_owed(Invoice.objects.select_for_update(of=("self",)).filter(
        Q(pk=invoice.pk) | Q(adjusts_id=invoice.pk, kind=InvoiceKind.ADJUSTMENT, total__gt=0),
        status=InvoiceStatus.ISSUED,
    ).order_by("pk"))  # fmt: skip
    for row in unpaid:
        if row.owed <= 0:
            reason = "" if row.pk == invoice.pk else str(TAKEN_OFF_THE_BILL) % {"n": row.number}
            _mark_paid(actor=actor, invoice=invoice if row.pk == invoice.pk else row, at=at, reason=reason)
    balance = _balance(invoice)
    if balance > 0:
        return
    left = -balance
    refunds = Refund.objects.select_for_update(of=("self",)).filter(adjustment__original_id=invoice.pk, method="")
    for refund in refunds.order_by("pk"):
        if refund.amount <= left:
            left -= refund.amount
        elif left > 0:
            audit(actor=actor, action="refund.reduce", obj=refund, before={"amount": refund.amount},
                  after={"amount": left}, reason=str(TAKEN_OFF_THE_BILL) % {"n": invoice.number})  # fmt: skip
            refund.amount, left = left, 0
            refund.save(update_fields=["amount"])
        else:
            refund.method, refund.offset_invoice = RefundMethod.OFFSET, invoice
            refund.settled_at, refund.settled_by = at, _actor(actor)
            refund.save(update_fields=["method", "offset_invoice", "settled_at", "settled_by"])
            audit(actor=actor, action="refund.settle", obj=refund, after={"method": "offset", "amount": refund.amount,
                  "offset_invoice": invoice.number}, reason=str(TAKEN_OFF_THE_BILL) % {"n": invoice.number})  # fmt: skip


def _settle_released(*, actor, refunds: list[int]) -> None:
    """Refunds whose offset was released count again against the bills their credits correct: such a bill
    whose payments now reach what it comes to is paid (``_settle_credits``)."""
    originals = Adjustment.objects.filter(refund__in=refunds).values_list("original_id", flat=True)
    for original_id in sorted(set(originals)):
        original = Invoice.objects.select_for_update().get(pk=original_id)
        _settle_credits(actor=actor, invoice=original, at=timezone.now())


TAKEN_OFF_THE_BILL = gettext_lazy("The credit came off what was still owed on bill %(n)s.")


def _local(at: dt.datetime) -> str:
    return f"{timezone.localtime(at):%d/%m/%Y %H:%M}"


def _same_transaction(*, actor, invoice: Invoice, amount: int, source: str, reference: str) -> Payment | None:
    """The payment already recorded under this channel's reference: returned when it is this invoice's for this
    amount (a retry, from whichever user or integration), refused with the reason when it is not."""
    first = Payment.objects.select_related("invoice").filter(source=source, reference=reference).first()
    if first is None:
        return None
    if first.invoice_id == invoice.pk and first.amount == amount:
        return first
    if actor is not None and not scope_for(actor).allows_unit(first.unit_id):
        # Another unit's payment: that the reference is taken, nothing of the payment itself.
        raise ValidationError(
            {"reference": _("Reference %(r)s of %(s)s is already recorded, for an invoice of another unit. Another "
                            "payment has its own reference.") % {"r": reference, "s": PaymentSource(source).label}}
        )  # fmt: skip
    raise ValidationError(
        {"reference": _("Reference %(r)s of %(s)s is already recorded: a payment of %(a)s on %(n)s, paid at "
                        "%(t)s. A retry sends the same invoice and amount; another payment has its own "
                        "reference.")
         % {"r": reference, "s": PaymentSource(source).label, "a": money(first.amount), "n": first.invoice.number,
            "t": _local(first.paid_at)}}
    )  # fmt: skip


def _refuse_unpayable(invoice: Invoice) -> None:
    if invoice.status == InvoiceStatus.PAID:
        raise ValidationError({"invoice": _("Invoice %(n)s is already paid.") % {"n": invoice.number}})
    if invoice.status != InvoiceStatus.ISSUED:
        raise ValidationError(
            {"invoice": _("Only an issued invoice is paid (%(n)s is %(s)s).")
             % {"n": invoice.number, "s": invoice.get_status_display()}}
        )  # fmt: skip
    if invoice.amount_due < 0:
        # A credit: the customer is owed money, paid back or offset through the refund the adjustment opened.
        raise ValidationError(
            {"invoice": _("Adjustment invoice %(n)s credits the customer: it is settled by its refund, not paid.")
             % {"n": invoice.number}}
        )  # fmt: skip


@transaction.atomic
def payment_record(*, actor, invoice: Invoice, amount: int, paid_at: dt.datetime, source: str,
                   reference: str) -> PaymentRecorded:  # fmt: skip
    """Record money received against an issued invoice (a bank transfer, the counter, the app, a collection
    partner), under the channel's transaction reference. The invoice becomes paid when its payments cover
    its amount due (for a regular bill, after the credits of its approved adjustments: ``payment_owed``). The
    invoice's row is locked first, so two payments of the last amount at once are taken
    one after the other and the second is refused: nothing is ever paid twice over. The same channel's
    reference sent again for the same invoice and amount returns the first payment (``created`` False); for
    another invoice or amount it is refused with the reason."""
    require(actor, "billing.add_payment", unit=invoice.unit_id)
    if source not in PaymentSource.values:
        raise ValidationError({"source": _("Choose how the payment came in.")})
    reference = typed_text(reference, field="reference", limit=column_length(Payment, "reference"))
    if not reference:
        raise ValidationError({"reference": _("Give the transaction reference (or the counter's receipt number).")})
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise ValidationError({"amount": _("A payment is a whole number of đồng, more than 0.")})
    if paid_at is None or timezone.is_naive(paid_at):
        raise ValidationError({"paid_at": _("Give the time the payment was made.")})
    if invoice.adjusts_id is not None:  # the bill first, as its payments and credits take it: one account
        Invoice.objects.select_for_update().filter(pk=invoice.adjusts_id).first()
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    first = _same_transaction(actor=actor, invoice=invoice, amount=amount, source=source, reference=reference)
    if first is not None:
        return PaymentRecorded(payment=first, created=False)
    _refuse_unpayable(invoice)
    if invoice.issued_at is not None and paid_at < invoice.issued_at:
        raise ValidationError(
            {"paid_at": _("A bill is paid after it is issued (%(t)s).") % {"t": _local(invoice.issued_at)}}
        )
    if paid_at > timezone.now():
        raise ValidationError({"paid_at": _("A payment is recorded once made: its time is not in the future.")})
    owed = payment_owed(invoice)
    if owed <= 0:
        raise ValidationError({"invoice": _("Nothing is owed on invoice %(n)s.") % {"n": invoice.number}})
    if amount > owed:
        raise ValidationError(
            {"amount": _("%(a)s is more than is still owed on invoice %(n)s (%(o)s).")
             % {"a": money(amount), "n": invoice.number, "o": money(owed)}}
        )  # fmt: skip
    try:
        with transaction.atomic():  # a reference taken meanwhile for another invoice: refused below
            payment = Payment.objects.create(
                invoice=invoice, unit_id=invoice.unit_id, amount=amount, paid_at=paid_at, source=source,
                reference=reference, recorded_by=_actor(actor), created_at=timezone.now(),
            )  # fmt: skip
    except IntegrityError:
        first = _same_transaction(actor=actor, invoice=invoice, amount=amount, source=source, reference=reference)
        if first is None:
            raise
        return PaymentRecorded(payment=first, created=False)
    audit(actor=actor, action="payment.record", obj=payment, after={
        "invoice": invoice.number, "amount": amount, "source": source, "reference": reference,
        "paid_at": paid_at.isoformat(), "owed": owed - amount,
    })  # fmt: skip
    if amount == owed:  # settled: paid when the last of its payments was made
        last = max(paid_at, Payment.objects.filter(invoice_id=invoice.pk).aggregate(at=Max("paid_at"))["at"])
        if invoice.kind == InvoiceKind.REGULAR:  # its credits' refunds that came off what it owed are settled
            _settle_credits(actor=actor, invoice=invoice, at=last)
        else:  # a charging adjustment: paid, and the bill's account settled with it
            _mark_paid(actor=actor, invoice=invoice, at=last)
            assert invoice.adjusts_id is not None  # an adjustment invoice corrects a bill
            bill = Invoice.objects.select_for_update().get(pk=invoice.adjusts_id)
            _settle_credits(actor=actor, invoice=bill, at=last)
    return PaymentRecorded(payment=payment, created=True)


@transaction.atomic
def invoice_recompute(*, actor, invoice: Invoice, reading: MeterReading, reason: str) -> Invoice:
    """Before issue: the bill is computed again from a corrected reading (lines replaced, totals updated)."""
    require(actor, "billing.change_invoice", unit=invoice.unit_id)
    return _recompute(actor=actor, invoice=invoice, reading=reading, reason=reason)


def _recompute(*, actor, invoice: Invoice, reading: MeterReading, reason: str) -> Invoice:
    """``invoice_recompute`` without its permission check, for the services that change a bill's inputs (a
    rebate round taken back recomputes the rounds applied after it)."""
    # The bill's row only (``of``): the contract's row is ``lock_contract``'s, taken before any period lock, and a
    # holder of a period's lock (a rebate round) taking it here would close a cycle with a reading correction.
    invoice = Invoice.objects.select_for_update(of=("self",)).select_related("contract").get(pk=invoice.pk)
    if invoice.status in ISSUED_STATUSES:
        raise ValidationError(_("An issued invoice cannot be changed: propose an adjustment."))
    # The reductions follow the corrected amount by the rule of an adjustment (``_corrected_charge``): each
    # programme on the bill at its band for the new kWh (taken off where that kWh is outside it), and each
    # applied programme that now holds the bill put on it.
    charge, rebates = _corrected_charge(invoice, reading.kwh)
    rebanded = {}  # the audit says which reductions moved: programme → [percent before, after] (None: none)
    for programme, application, percent in rebates:
        before_percent = application.percent if application is not None else None
        if percent != before_percent:
            rebanded[programme.pk] = [_percent_text(before_percent), _percent_text(percent)]
        if percent is None and application is not None:
            application.delete()
    before = {"kwh": invoice.kwh, "subtotal": invoice.subtotal, "vat": invoice.vat, "total": invoice.total}
    InvoiceLine.objects.filter(invoice=invoice).delete()
    lines = _lines(invoice.pk, charge)
    applied = [(programme, application, percent) for programme, application, percent in rebates if percent is not None]
    for (programme, application, percent), parts in zip(applied, charge.rebates, strict=True):
        assert percent is not None  # only the programmes on the corrected bill
        application = _store_application(invoice, programme, application, percent, parts)
        lines += _rebate_lines(invoice, application, parts, start_position=len(lines) + 1)
    InvoiceLine.objects.bulk_create(lines)
    invoice.reading, invoice.kwh = reading, reading.kwh
    invoice.subtotal, invoice.vat, invoice.total = charge.subtotal, charge.vat, charge.total
    # The refunds offset on the bill stay, taken against the new amount due; those the new total no longer
    # covers are released (their refund waits to be settled again), the latest first.
    released = _release_offsets(invoice)
    invoice.save(update_fields=["reading", "kwh", "subtotal", "vat", "total", "refund_offset"])
    if released:
        audit(actor=actor, action="refund.unsettle", obj=invoice, rows=len(released),
              after={"refunds": released, "total": invoice.total, "refund_offset": invoice.refund_offset},
              reason=reason)  # fmt: skip
        _settle_released(actor=actor, refunds=released)
    after: dict = {"kwh": invoice.kwh, "subtotal": invoice.subtotal, "vat": invoice.vat, "total": invoice.total}
    if rebanded:  # programme → [percent before, after]
        after["rebates"] = rebanded
    audit(actor=actor, action="invoice.recompute", obj=invoice, before=before, after=after, reason=reason)
    _follow_flag(actor=actor, invoice=invoice, reading=reading, reason=reason)
    return invoice


def _percent_text(percent: Decimal | None) -> str | None:
    return None if percent is None else f"{Decimal(percent):.2f}"


def _store_application(
    invoice: Invoice, programme: RebateProgramme, application: RebateApplication | None, percent: Decimal,
    parts: tuple[tariff.RebatePart, ...],
) -> RebateApplication:
    """A programme's reduction on a recomputed bill (``parts``: ``tariff.rebate_parts`` at ``percent``), its
    application updated, or created when the programme now holds the bill."""
    if application is None:
        application = RebateApplication(programme=programme, invoice=invoice, applied_at=timezone.now())
    application.percent = percent
    application.base = sum(part.base for part in parts)
    application.amount = sum(part.amount for part in parts)
    application.vat = sum(part.vat for part in parts)
    application.save(update_fields=None if application.pk is None else ["percent", "base", "amount", "vat"])
    return application


def _follow_flag(*, actor, invoice: Invoice, reading: MeterReading, reason: str) -> None:
    """A bill recomputed onto another reading is held as the billing run holds it: a draft on a reading flagged
    as an implausible jump is held for it; a bill held only for its old reading's flag goes back to draft when
    the new reading is not flagged (and nothing else holds it)."""
    if invoice.status == InvoiceStatus.DRAFT and reading.status == ReadingStatus.FLAGGED:
        _set_hold(actor=actor, invoice=invoice, reason=flagged_hold(reading), kind=HoldKind.FLAGGED)
    elif (
        invoice.status == InvoiceStatus.HELD
        and invoice.hold_kind == HoldKind.FLAGGED
        and reading.status != ReadingStatus.FLAGGED
        and not review_reason(contract_id=invoice.contract_id, period=invoice.period)
    ):
        _release(actor=actor, invoice=invoice, reason=reason)


# Disputes and re-inspections ----------------------------------------------------------------------------


@transaction.atomic
def dispute_open(*, actor, ticket, claim: str, invoice: Invoice | None = None,
                 reading: MeterReading | None = None) -> Dispute:  # fmt: skip
    """A billing complaint becomes a dispute and a re-inspection item for the unit. A bill not yet issued is
    held; while the dispute is open the customer's supply must not be cut (the card says so).

    A dispute is about a bill as it stands: an adjustment invoice contested is its bill as adjusted (the
    dispute names the bill, which the next adjustment corrects), and the reading re-inspected is the month's
    reading in force (an issued bill keeps the reading it was issued from, superseded once corrected)."""
    require(actor, "billing.add_dispute")
    if invoice is None and reading is None:
        raise ValidationError(_("A dispute is about an invoice or a reading."))
    claim = typed_text(claim, field="claim", limit=DESCRIPTION_MAX_CHARS)
    if not claim:
        raise ValidationError({"claim": _("Write what the customer contests.")})
    if ticket is None or ticket.customer_id is None:
        raise ValidationError({"ticket": _("A dispute comes from a customer's billing complaint ticket.")})
    if ticket.category.code not in settings.TONGDAI_DISPUTE_CATEGORIES:
        raise ValidationError({"ticket": _("A dispute comes from a billing or reading complaint ticket.")})
    contested = invoice
    if invoice is not None:
        if invoice.customer_id != ticket.customer_id:
            raise ValidationError({"invoice": _("The invoice is not the ticket's customer's.")})
        invoice = disputed_bill(invoice)
    if reading is not None and reading.contract.customer_id != ticket.customer_id:
        raise ValidationError({"reading": _("The reading is not the ticket's customer's.")})
    if invoice is not None and reading is not None and (
        (reading.contract_id, reading.period) != (invoice.contract_id, invoice.period)
    ):
        # Only a reading of the bill's own contract and month: an adjustment of the bill closes the dispute.
        raise ValidationError({"reading": _("The reading is not the one of this bill's contract and period.")})
    if invoice is not None:
        reading = reading or invoice.reading
    if reading is not None:
        lock_period(reading.period)  # a billing run of the period finishes first, and its draft is held below
        reading = _reading_in_force(reading)
    customer = ticket.customer
    require(actor, "billing.add_dispute", unit=customer.unit_id)
    # One open dispute a bill: a second complaint (or a retried request) about the same bill or its month's
    # reading (in force or superseded) joins the first, whose re-inspection already runs.
    same = Q(invoice=invoice) if invoice is not None else Q()
    if reading is not None:
        same |= Q(reading__contract_id=reading.contract_id, reading__period=reading.period)
    existing = Dispute.objects.filter(same, status=DisputeStatus.OPEN).select_related("ticket").first()
    if existing is not None:
        raise ValidationError(
            _("A dispute about this bill is already open (ticket %(t)s): add this complaint to it.")
            % {"t": getattr(existing.ticket, "number", "—")}
        )
    dispute = Dispute.objects.create(
        ticket=ticket, customer=customer, unit_id=customer.unit_id, invoice=invoice, reading=reading,
        claim=claim, opened_at=timezone.now(), opened_by=_actor(actor),
    )  # fmt: skip
    item = _reinspect_for(dispute, reading) if reading is not None else None
    if invoice is not None:  # its status read under its lock: a bill issued meanwhile is not held
        _hold_if_draft(actor=actor, invoice=invoice, reason=_("Disputed by the customer"))
    if reading is not None:  # the bill of the disputed reading, whenever it is made, waits too
        _hold_drafts(actor=actor, contract_id=reading.contract_id, period=reading.period,
                     reason=_("Disputed by the customer"))  # fmt: skip
    after = {"invoice": getattr(invoice, "pk", None), "reading": getattr(reading, "pk", None),
             "ticket": ticket.number}  # fmt: skip
    if contested is not None and invoice is not None and contested.pk != invoice.pk:
        after["contested"] = contested.number  # the adjustment invoice the customer pointed at
    if item is not None:
        after["reinspection"] = item.pk
    audit(actor=actor, action="dispute.open", obj=dispute, after=after, reason=claim)
    return dispute


def _reinspect_for(dispute: Dispute, reading: MeterReading) -> Reinspection:
    """The re-inspection of a new dispute: one a contract and month. The open one of a dispute of the month
    withdrawn before (its re-inspection goes on) is taken over by the new dispute, under its row lock (one
    recorded meanwhile is done, and a new one opens); else one opens for the month's reading in force (an
    anomaly's open re-inspection stays the anomaly's). Lock order: the period's lock (``dispute_open``), then
    the item's row, then the bill's."""
    item = (
        Reinspection.objects.open()
        .filter(
            reading__contract_id=reading.contract_id, reading__period=reading.period,
            reason=ReinspectionReason.DISPUTE,
        )
        .select_for_update(of=("self",))
        .order_by("pk")
        .first()
    )
    if item is not None:
        item.dispute = dispute
        item.save(update_fields=["dispute"])
        return item
    return Reinspection.objects.create(
        reading=reading, unit_id=reading.unit_id, dispute=dispute, reason=ReinspectionReason.DISPUTE,
        created_at=timezone.now(),
    )  # fmt: skip


def disputed_bill(invoice: Invoice) -> Invoice:
    """The bill a dispute of ``invoice`` is about: the invoice itself, or for an adjustment invoice the bill it
    adjusts (the customer contests the bill as adjusted; its next adjustment closes the dispute)."""
    if invoice.kind == InvoiceKind.ADJUSTMENT and invoice.adjusts_id is not None:
        return Invoice.objects.select_related("reading").get(pk=invoice.adjusts_id)
    return invoice


def _reading_in_force(reading: MeterReading) -> MeterReading:
    """The reading of ``reading``'s contract and month in force now: ``reading`` itself, or the one that
    superseded it (corrected or re-based). Read from the database: the caller's copy may predate a correction."""
    return (
        MeterReading.objects.current()
        .select_related("contract")
        .filter(contract_id=reading.contract_id, period=reading.period)
        .first()
        or reading
    )


@transaction.atomic
def reinspection_record(*, actor, item: Reinspection, outcome: str, reread_value: int | None = None,
                        evidence: str = "") -> Reinspection:  # fmt: skip
    """The unit's re-inspection result. Corrected: the reading is replaced (and a bill not yet issued recomputed).
    Meter fault: a meter test ticket is opened for the unit."""
    require(actor, "billing.change_reinspection", unit=item.unit_id)
    contract_id, period = MeterReading.objects.filter(pk=item.reading_id).values_list("contract_id", "period").get()
    # Lock order (``lock_contract``): the contract's row, then the month's period lock, then the item's row,
    # the dispute's and the bill's. A correction of the month finishes first (the reading in force is read
    # after it); a billing run or an issue of the month finishes first and its bill is then released.
    lock_contract(contract_id)
    lock_period(period)
    item = Reinspection.objects.select_for_update(of=("self",)).select_related("reading", "dispute").get(pk=item.pk)
    if item.done_at is not None:
        raise ValidationError(_("This re-inspection is already recorded."))
    if outcome not in {DisputeOutcome.CONFIRMED, DisputeOutcome.CORRECTED, DisputeOutcome.METER_FAULT}:
        raise ValidationError({"outcome": _("Choose: confirmed, corrected or meter fault.")})
    if reread_value is None and outcome != DisputeOutcome.METER_FAULT:
        raise ValidationError({"reread_value": _("Write the register read on site.")})
    # The register on site is compared with the month's reading in force (corrected since the item opened,
    # it superseded the one the item names).
    reading = _reading_in_force(item.reading)
    if outcome == DisputeOutcome.CONFIRMED and reread_value is not None and reread_value != reading.value:
        raise ValidationError(
            {"reread_value": _("The register differs from the reading: the outcome is corrected.")}
        )
    if outcome == DisputeOutcome.CORRECTED and reread_value == reading.value:
        raise ValidationError({"reread_value": _("The register is the reading's: the outcome is confirmed.")})
    evidence = typed_text(evidence, field="evidence")
    if not evidence:
        raise ValidationError({"evidence": _("Describe the evidence (photo, seal, witness).")})
    item.outcome, item.reread_value, item.evidence = outcome, reread_value, evidence
    item.inspector, item.done_at = _actor(actor), timezone.now()
    item.save(update_fields=["outcome", "reread_value", "evidence", "inspector", "done_at"])
    audit(actor=actor, action="reinspection.record", obj=item, after={"outcome": outcome, "reread": reread_value},
          reason=evidence)  # fmt: skip
    corrected = None
    if outcome == DisputeOutcome.CORRECTED and reread_value is not None:  # a corrected outcome has its register
        try:  # closes the month's open dispute when its bill is not issued (``reading_correct``)
            corrected = reading_correct(actor=actor, reading=reading, value=reread_value,
                                        reason=_("Re-inspection #%(n)s") % {"n": item.pk})  # fmt: skip
        except ValidationError as exc:  # the register the inspector read: refused beside it
            raise renamed(exc, {"value": "reread_value", "reading": "reread_value"}) from None
    elif outcome == DisputeOutcome.METER_FAULT:
        _open_meter_test(actor=actor, item=item)
    if item.dispute is not None and outcome == DisputeOutcome.CONFIRMED:
        # Closed only if still open (a clerk may have withdrawn it meanwhile: the site result stands).
        _close_dispute(actor=actor, dispute=item.dispute, outcome=outcome)
    elif item.dispute is None and item.reason == ReinspectionReason.ANOMALY and outcome == DisputeOutcome.CONFIRMED:
        _release_if_free(actor, Invoice.objects.filter(reading=reading, status=InvoiceStatus.HELD),
                         _("Rise confirmed on site"))  # fmt: skip
    if corrected is not None and item.reason == ReinspectionReason.ANOMALY:
        _release_if_free(actor, Invoice.objects.filter(reading=corrected, status=InvoiceStatus.HELD),
                         _("Reading corrected on site"))  # fmt: skip
    if outcome in (DisputeOutcome.CONFIRMED, DisputeOutcome.CORRECTED):
        # The reading was read on site: the month's bill goes on once nothing else holds it (a dispute of an
        # issued bill corrected stays open for its adjustment), a hold for its flagged reading too.
        _release_drafts(actor=actor, contract_id=contract_id, period=period,
                        reason=_("Re-inspection #%(n)s recorded") % {"n": item.pk}, kinds=ON_SITE_RELEASES,
                        verified=True)  # fmt: skip
    return item


# What a re-inspection recorded on site releases: the review's own hold, and a flagged reading's (the register
# was read again there). A clerk's own hold is never released by it.
ON_SITE_RELEASES = (HoldKind.REVIEW, HoldKind.FLAGGED)


def _release_if_free(actor, invoices, reason: str) -> None:
    """Release held bills that nothing else keeps held (an open dispute or another open re-inspection), once
    their reading was checked on site."""
    for invoice in invoices:
        _release_held(actor=actor, invoice=invoice, reason=reason, kinds=ON_SITE_RELEASES, verified=True)


def _open_meter_test(*, actor, item: Reinspection) -> None:
    from tickets.models import Category
    from tickets.services import ticket_open

    category = Category.objects.filter(code="meter", is_active=True).first()
    reading = item.reading
    if category is None:
        return
    ticket_open(
        actor=actor, category=category, channel="portal", customer=reading.contract.customer,
        contract=reading.contract,
        description=_("Meter test after re-inspection #%(n)s (meter %(m)s)") % {"n": item.pk, "m": reading.meter.serial},
    )  # fmt: skip


@transaction.atomic
def dispute_resolve(*, actor, dispute: Dispute, outcome: str) -> Dispute:
    """A clerk closes a dispute (withdrawn by the customer). Refused, nothing changed, when it is closed already."""
    require(actor, "billing.change_dispute", unit=dispute.unit_id)
    if outcome not in DisputeOutcome.values:
        raise ValidationError({"outcome": _("Unknown outcome.")})
    month = _dispute_month(dispute)
    if month is not None:  # lock order: the period's lock before the dispute's and the bill's rows
        lock_period(month[1])  # a billing run or issue of the month finishes first; its bill is then released
    closed = _close_dispute(actor=actor, dispute=dispute, outcome=outcome)
    if closed is None:
        raise ValidationError(_("This dispute is already resolved."))
    return closed


def _dispute_month(dispute: Dispute) -> tuple[int, dt.date] | None:
    """The contract and month a dispute is about (of the bill it names, else of its reading)."""
    named = dispute.invoice or dispute.reading
    return None if named is None else (named.contract_id, named.period)


def _open_disputes(contract_id: int, period: dt.date):
    """The open disputes about a contract's bill of ``period`` or any reading of that month (one at most,
    ``dispute_open``)."""
    return Dispute.objects.open().filter(
        Q(reading__contract_id=contract_id, reading__period=period)
        | Q(invoice__contract_id=contract_id, invoice__period=period)
    )


def _close_dispute(*, actor, dispute: Dispute, outcome: str) -> Dispute | None:
    """Close ``dispute`` with ``outcome`` if it is still open, read under its row lock; None when it was closed
    already (a clerk withdrew it meanwhile: that close stands, nothing changed here). Every path that closes
    a dispute comes here: a clerk's ``dispute_resolve``, a re-inspection recorded on site, a correction of the
    month before its bill is issued, an approved adjustment. The month's bill held for review is released once
    nothing else holds it.

    Lock order: the contract's row (``lock_contract``, by the callers that change readings), then the month's
    period lock (``lock_period``, taken by the callers whose month's bill may still be held), then this
    dispute's row, then the bill's."""
    require(actor, "billing.change_dispute", unit=dispute.unit_id)
    dispute = Dispute.objects.select_for_update().get(pk=dispute.pk)
    if dispute.status != DisputeStatus.OPEN:
        return None
    dispute.status, dispute.outcome, dispute.resolved_at = DisputeStatus.RESOLVED, outcome, timezone.now()
    dispute.save(update_fields=["status", "outcome", "resolved_at"])
    month = _dispute_month(dispute)
    if month is not None:
        _release_drafts(actor=actor, contract_id=month[0], period=month[1], reason=_("Dispute resolved"),
                        kinds=(HoldKind.REVIEW,), verified=False)  # fmt: skip
    audit(actor=actor, action="dispute.resolve", obj=dispute, before={"status": "open"},
          after={"status": "resolved", "outcome": outcome})  # fmt: skip
    if outcome != DisputeOutcome.CORRECTED:  # corrected: by its adjustment, or before the bill was issued
        _adjust_after_dispute(actor=actor, dispute=dispute)
    return dispute


def _adjust_after_dispute(*, actor, dispute: Dispute) -> None:
    """A dispute closed other than by its adjustment (withdrawn, or the reading confirmed on site): while it was
    open a correction of its month's reading left the issued bill's adjustment to the dispute's clerk
    (``reading_correct``). When the month's reading in force bills another consumption than the bill with its
    approved adjustments, the adjustment is proposed now by the clerk who closes the dispute, or asked for
    (``_propose_or_ask``), unless one for that consumption already awaits approval."""
    named = dispute.invoice or dispute.reading
    if named is None:
        return
    month = {"contract_id": named.contract_id, "period": named.period}
    invoice = Invoice.objects.filter(**month, kind=InvoiceKind.REGULAR, status__in=ISSUED_STATUSES).first()
    reading = MeterReading.objects.current().filter(**month).order_by("-pk").first()
    if invoice is None or reading is None or reading.kwh == _current_total(invoice)["kwh"]:
        return
    if Adjustment.objects.filter(original=invoice, status=AdjustmentStatus.PROPOSED, kwh=reading.kwh).exists():
        return
    reason = _("Dispute of ticket %(t)s closed (%(o)s): the reading of %(m)s was corrected to %(k)s kWh") % {
        "t": getattr(dispute.ticket, "number", "—"), "o": DisputeOutcome(dispute.outcome).label,
        "m": f"{named.period:%m/%Y}", "k": reading.kwh,
    }  # fmt: skip
    _propose_or_ask(actor=actor, invoice=invoice, reading=reading, reason=reason)


# Adjustments and refunds --------------------------------------------------------------------------------


@transaction.atomic
def adjustment_propose(*, actor, invoice: Invoice, record: str, reading: MeterReading | None = None,
                       kwh: int | None = None, dispute: Dispute | None = None) -> Adjustment:  # fmt: skip
    """After issue, a correction record (*biên bản*) proposes an adjustment invoice for the difference. Two
    clerks proposing on the same bill at once: the second waits for the first, then is told one is pending."""
    require(actor, "billing.propose_adjustment", unit=invoice.unit_id)
    invoice = Invoice.objects.select_for_update(of=("self",)).select_related("contract").get(pk=invoice.pk)
    if invoice.kind == InvoiceKind.ADJUSTMENT and invoice.adjusts_id is not None:  # as ``disputed_bill``
        bill = disputed_bill(invoice).number
        message = _(
            "Invoice %(a)s adjusts bill %(b)s: propose the adjustment on bill %(b)s (a bill and its adjustments "
            "are one account)."
        )
        raise ValidationError({"original": message % {"a": invoice.number, "b": bill}})
    if invoice.kind != InvoiceKind.REGULAR or invoice.status not in ISSUED_STATUSES:
        raise ValidationError(_("Only an issued bill is adjusted; a draft one is recomputed."))
    record = typed_text(record, field="record", limit=DESCRIPTION_MAX_CHARS)
    if not record:
        raise ValidationError({"record": _("Write the correction record.")})
    errors = {}  # both told at once, each beside its field
    if reading is not None and (reading.contract_id != invoice.contract_id or reading.period != invoice.period):
        errors["corrected_reading"] = _("The reading is not the one of this bill's contract and period.")
    elif reading is not None and MeterReading.objects.filter(pk=reading.pk, status=ReadingStatus.SUPERSEDED).exists():
        # Its kWh are no longer the month's: the bill is adjusted to the reading in force.
        errors["corrected_reading"] = _("This reading was corrected since: choose the month's reading in force.")
    if dispute is not None and (
        dispute.customer_id != invoice.customer_id
        or (dispute.invoice_id and dispute.invoice_id != invoice.pk)
        or (
            dispute.reading is not None
            and (dispute.reading.contract_id, dispute.reading.period) != (invoice.contract_id, invoice.period)
        )
    ):
        # A dispute about another bill, or about a reading of another contract or month, is not closed by
        # this bill's adjustment.
        errors["dispute"] = _("The dispute is not about this bill.")
    if errors:
        raise ValidationError(errors)
    if reading is not None:
        kwh = reading.kwh
    if kwh is None or kwh < 0:
        raise ValidationError({"kwh": _("Give the corrected consumption.")})
    if kwh > MAX_KWH:  # the readings' limit: no meter reads more
        raise ValidationError({"kwh": _("%(k)s kWh is more than any meter reads: check it.") % {"k": kwh}})
    if Adjustment.objects.filter(original=invoice, status=AdjustmentStatus.PROPOSED).exists():
        raise ValidationError(_("An adjustment of this invoice is already awaiting approval."))
    if dispute is None:  # the bill's open dispute, left out of the form: its adjustment closes it too
        dispute = _open_disputes(invoice.contract_id, invoice.period).first()
    # The reductions apply to the corrected bill by the same rule as before issue (``_corrected_charge``).
    charge, _rebates = _corrected_charge(invoice, kwh)
    current = _current_total(invoice)
    delta_subtotal, delta_vat = charge.subtotal - current["subtotal"], charge.vat - current["vat"]
    if delta_subtotal == 0 and delta_vat == 0:
        raise ValidationError(_("The corrected consumption gives the same amount: nothing to adjust."))
    try:
        with transaction.atomic():
            adjustment = Adjustment.objects.create(
                original=invoice, unit_id=invoice.unit_id, dispute=dispute, corrected_reading=reading,
                record=record, kwh=kwh, delta_subtotal=delta_subtotal, delta_vat=delta_vat,
                delta_total=delta_subtotal + delta_vat, proposed_by=actor, proposed_at=timezone.now(),
            )  # fmt: skip
    except IntegrityError as exc:  # proposed meanwhile by another clerk
        raise ValidationError(_("An adjustment of this invoice is already awaiting approval.")) from exc
    audit(actor=actor, action="adjustment.propose", obj=adjustment, before=current,
          after={"kwh": kwh, "delta_total": adjustment.delta_total}, reason=record)  # fmt: skip
    return adjustment


def _current_total(invoice: Invoice) -> dict:
    """The original's charge (and kWh) with every approved adjustment so far. Refunds offset on the bill are not
    part of it (they settle money owed, and stay out of ``subtotal``, ``vat`` and ``total``)."""
    totals = {"subtotal": invoice.subtotal, "vat": invoice.vat, "kwh": invoice.kwh}
    for adj in invoice.adjustments.filter(kind=InvoiceKind.ADJUSTMENT):
        totals["subtotal"] += adj.subtotal
        totals["vat"] += adj.vat
        totals["kwh"] += adj.kwh
    return totals


@transaction.atomic
def adjustment_decide(*, actor, adjustment: Adjustment, approve: bool, note: str = "") -> Adjustment:
    """A second billing clerk approves (the adjustment invoice is issued, a refund opened when negative) or
    rejects. The proposer can never decide their own adjustment, and the database refuses it too."""
    require(actor, "billing.approve_adjustment", unit=adjustment.unit_id)
    # Lock order: the disputes an approval closes (``_disputes_closed_by``), then the adjustment's row and its
    # bill's, as a dispute closing (``dispute_resolve``) locks its row before the bill's.
    disputes = _disputes_closed_by(adjustment) if approve else []
    adjustment = Adjustment.objects.select_for_update().select_related("original").get(pk=adjustment.pk)
    if adjustment.status != AdjustmentStatus.PROPOSED:
        raise ValidationError(_("This adjustment is already decided."))
    if getattr(actor, "pk", None) is None or actor.pk == adjustment.proposed_by_id:
        raise ValidationError(
            _("An adjustment is approved by another billing clerk than the one who proposed it.")
        )
    note = typed_text(note, field="note")
    if not approve and not note:
        raise ValidationError({"note": _("Say why the adjustment is rejected.")})
    now = timezone.now()
    adjustment.decided_by, adjustment.decided_at, adjustment.decision_note = actor, now, note
    if not approve:
        adjustment.status = AdjustmentStatus.REJECTED
        adjustment.save(update_fields=["status", "decided_by", "decided_at", "decision_note"])
        audit(actor=actor, action="adjustment.reject", obj=adjustment, reason=note)
        return adjustment
    original = adjustment.original
    parts = _adjustment_parts(original, adjustment)
    year = timezone.localdate(now).year  # the local year (settings.TIME_ZONE), as the bills' periods are
    first = _take_numbers(year, 1)
    invoice = Invoice.objects.create(
        number=invoice_number(year, first), kind=InvoiceKind.ADJUSTMENT, contract_id=original.contract_id,
        customer_id=original.customer_id, unit_id=original.unit_id, period=original.period,
        period_start=original.period_start, period_end=original.period_end,
        reading=adjustment.corrected_reading, kwh=adjustment.kwh - _current_total(original)["kwh"],
        households=original.households,
        subtotal=adjustment.delta_subtotal, vat=adjustment.delta_vat, total=adjustment.delta_total,
        status=InvoiceStatus.DRAFT, adjusts=original, created_at=now,
    )  # fmt: skip
    label = _("Adjustment of %(n)s") % {"n": original.number}
    InvoiceLine.objects.bulk_create(
        InvoiceLine(invoice=invoice, position=position, label=label[:100], segment_start=first_day, tier=None,
                    kwh=kwh, price=0, amount=amount, vat_percent=rate)
        for position, (first_day, rate, amount, kwh) in enumerate(parts, 1)
    )  # fmt: skip
    invoice.status, invoice.issued_at = InvoiceStatus.ISSUED, now
    invoice.save(update_fields=["status", "issued_at"])
    adjustment.status, adjustment.invoice = AdjustmentStatus.APPROVED, invoice
    adjustment.save(update_fields=["status", "decided_by", "decided_at", "decision_note", "invoice"])
    if adjustment.delta_total < 0:  # a credit: first off what is still owed on the bill (``_settle_credits``)
        Refund.objects.create(
            adjustment=adjustment, customer_id=original.customer_id, unit_id=original.unit_id,
            amount=-adjustment.delta_total, created_at=now,
        )  # fmt: skip
    # One account: a credit first comes off what the bill and its charging adjustments still owe; a charge is
    # first covered by what its credits left to pay back (``_settle_credits``).
    original = Invoice.objects.select_for_update().get(pk=original.pk)
    _settle_credits(actor=actor, invoice=original, at=now)
    _record_rebates(original, adjustment, invoice)
    audit(actor=actor, action="adjustment.approve", obj=adjustment, after={"invoice": invoice.number,
          "delta_total": adjustment.delta_total}, reason=note)  # fmt: skip
    for dispute in disputes:
        _close_dispute(actor=actor, dispute=dispute, outcome=DisputeOutcome.CORRECTED)
    return adjustment


def _disputes_closed_by(adjustment: Adjustment) -> list[Dispute]:
    """The disputes an approved adjustment closes, locked: the one it names and the bill's open dispute (the
    adjustment proposed before that dispute opened, or without naming it); each closed only if still open."""
    contract_id, period, dispute_id = (
        Adjustment.objects.filter(pk=adjustment.pk)
        .values_list("original__contract_id", "original__period", "dispute_id")
        .get()
    )
    closes = _open_disputes(contract_id, period) | Dispute.objects.filter(pk=dispute_id)
    return list(closes.select_for_update(of=("self",)).order_by("pk"))


def _adjustment_parts(original: Invoice, adjustment: Adjustment) -> list[tuple[dt.date, int, int, int]]:
    """The lines of an adjustment invoice, one per VAT rate, as (first day at the rate, rate, amount, kWh): the
    corrected charge's base and kWh at that rate less the bill's so far (the original's lines and those of
    the adjustments approved before). So the original and its adjustments add up, rate by rate, to the
    corrected bill, and the VAT of each rate is stated on its own base. Refused when the corrected charge is
    no longer the one proposed (a rebate round applied or taken back meanwhile)."""
    charge, _rebates = _corrected_charge(original, adjustment.kwh)
    current = _current_total(original)
    if (charge.subtotal - current["subtotal"], charge.vat - current["vat"]) != (
        adjustment.delta_subtotal, adjustment.delta_vat,
    ):  # fmt: skip
        raise ValidationError(
            _("The corrected bill's charge changed since this adjustment was proposed (a rebate round applied "
              "or taken back meanwhile): reject it and propose it again.")
        )  # fmt: skip
    by_rate: dict[int, tuple[dt.date, int, int]] = {
        rate: (first_day, base, sum(line.kwh for line in charge.lines if line.vat_percent == rate))
        for first_day, rate, base, _vat in charge.vat_lines
    }
    so_far = (
        InvoiceLine.objects.filter(
            Q(invoice=original) | Q(invoice__adjusts=original, invoice__kind=InvoiceKind.ADJUSTMENT)
        )
        .values("vat_percent")
        .annotate(amount=Sum("amount"), kwh=Sum("kwh"), start=Min("segment_start"))
        .order_by()
    )
    for row in so_far:
        first_day, base, kwh = by_rate.get(row["vat_percent"], (row["start"], 0, 0))
        by_rate[row["vat_percent"]] = (first_day, base - row["amount"], kwh - row["kwh"])
    return sorted(
        (first_day, rate, amount, kwh) for rate, (first_day, amount, kwh) in by_rate.items() if amount or kwh
    )


@transaction.atomic
def refund_settle(*, actor, refund: Refund, method: str, reference: str = "",
                  offset_invoice: Invoice | None = None) -> Refund:  # fmt: skip
    """Money back (with the payment reference) or an offset on the customer's next bill, recorded which. Money
    is paid back only from what the customer overpaid on the bill the credit corrects (``overpaid``): a credit
    on a bill not paid yet comes off what is owed on it instead, or is offset on a next bill (the bill then
    owes it again)."""
    require(actor, "billing.change_refund", unit=refund.unit_id)
    # Lock order of the billing services: a period's lock (``lock_period``) before any row; then the next bill
    # that takes an offset (and the refunds already offset on it), then the bill a credit corrects (with its
    # adjustment invoices), then its refunds not yet settled. A recomputation of the next bill takes them so
    # (``_recompute``, ``_release_offsets``, ``_settle_released``); a payment, the corrected bill then its refunds.
    if method == RefundMethod.OFFSET and offset_invoice is not None:
        offset_invoice = Invoice.objects.select_for_update().get(pk=offset_invoice.pk)
    original = Invoice.objects.select_for_update().get(
        pk=Adjustment.objects.filter(pk=refund.adjustment_id).values("original_id")[:1]
    )
    refund = Refund.objects.select_for_update().get(pk=refund.pk)
    if refund.method:
        raise ValidationError(_("This refund is already settled."))
    reference = typed_text(reference, field="reference", limit=column_length(Refund, "reference"))
    if method == RefundMethod.REFUND:
        if not reference:
            raise ValidationError({"reference": _("Give the payment reference.")})
        _refuse_above_overpaid(refund, original)
    elif method == RefundMethod.OFFSET:
        if offset_invoice is None:
            raise ValidationError({"offset_invoice": _("Choose the next bill to offset.")})
        if offset_invoice.customer_id != refund.customer_id or offset_invoice.kind != InvoiceKind.REGULAR:
            raise ValidationError({"offset_invoice": _("The bill is not the customer's.")})
        if offset_invoice.status not in (InvoiceStatus.DRAFT, InvoiceStatus.HELD):
            raise ValidationError({"offset_invoice": _("Only a bill not yet issued can take an offset.")})
        if refund.amount > offset_invoice.amount_due:
            raise ValidationError(
                {
                    "offset_invoice": _(
                        "The refund (%(r)s) is larger than the amount due on bill %(n)s (%(d)s): offset it on a larger "
                        "bill or pay it back."
                    )
                    % {
                        "r": money(refund.amount),
                        "n": offset_invoice.number,
                        "d": money(offset_invoice.amount_due),
                    }
                }
            )
        # Taken against the amount due: the bill's charge (subtotal, VAT, total) is left as it is.
        offset_invoice.refund_offset += refund.amount
        offset_invoice.save(update_fields=["refund_offset"])
    else:
        raise ValidationError({"method": _("Choose a refund or an offset.")})
    refund.method, refund.reference, refund.offset_invoice = method, reference, offset_invoice
    refund.settled_at, refund.settled_by = timezone.now(), _actor(actor)
    refund.save(update_fields=["method", "reference", "offset_invoice", "settled_at", "settled_by"])
    audit(actor=actor, action="refund.settle", obj=refund, after={"method": method, "amount": refund.amount,
          "offset_invoice": getattr(offset_invoice, "number", None), "reference": reference})  # fmt: skip
    return refund


def _refuse_above_overpaid(refund: Refund, original: Invoice) -> None:
    """A refund paid back in cash is at most what the customer paid on the corrected bill and its adjustments
    above what it comes to with all its adjustments (``overpaid``): refused with the amounts otherwise."""
    account = _account(original)
    above = max(-account["balance"], 0)
    if refund.amount <= above:
        return
    raise ValidationError({"reference": _(
        "%(r)s is more than the customer overpaid on bill %(n)s (%(o)s: paid %(p)s of the %(c)s it comes to with "
        "its adjustments). A credit first comes off what is still owed on the bill and its adjustments: only what "
        "was overpaid is paid back (or offset the refund on a next bill)."
    ) % {"r": money(refund.amount), "n": original.number, "o": money(above), "p": money(account["account_paid"]),
         "c": money(account["account_due"])}})  # fmt: skip


def _release_offsets(invoice: Invoice) -> list[int]:
    """After the bill's total changed: release the refunds offset on it, the latest first, until the rest
    fits in the new total; the released refunds are open again. Returns their ids."""
    released = []
    offsets = list(
        Refund.objects.select_for_update().filter(offset_invoice=invoice).order_by("-settled_at", "-pk")
    )
    invoice.refund_offset = sum(refund.amount for refund in offsets)
    for refund in offsets:
        if invoice.refund_offset <= invoice.total:
            break
        invoice.refund_offset -= refund.amount
        refund.method, refund.offset_invoice, refund.settled_at, refund.settled_by = "", None, None, None
        refund.save(update_fields=["method", "offset_invoice", "settled_at", "settled_by"])
        released.append(refund.pk)
    return released


def offset_label(refund: Refund) -> str:
    """How a bill names a refund offset on it: by the number of the adjustment invoice that opened it."""
    adjustment = refund.adjustment
    number = adjustment.invoice.number if adjustment.invoice is not None else adjustment.original.number
    return _("Refund offset (adjustment %(n)s)") % {"n": number}


# Rebate rounds ------------------------------------------------------------------------------------------


def rebate_label(programme: RebateProgramme) -> str:
    """The line a programme puts on a bill; its number tells two programmes of the same name apart."""
    return f"Rebate #{programme.pk}: {programme.name}"[:100]


def _applications(invoice: Invoice) -> list[RebateApplication]:
    """The rebates on a bill in the order they were applied: those applied before its issue, then those its
    approved adjustments brought onto it (recorded on their adjustment invoices, ``_record_rebates``)."""
    return list(
        RebateApplication.objects.filter(Q(invoice_id=invoice.pk) | Q(invoice__adjusts_id=invoice.pk))
        .select_related("programme")
        .order_by("applied_at", "pk")
    )


def _record_rebates(original: Invoice, adjustment: Adjustment, invoice: Invoice) -> None:
    """The programmes an approved adjustment brings onto an issued bill (its corrected charge has them, the bill
    did not): recorded on the adjustment invoice, at what they take off the corrected bill. The bill has them
    from then on as if applied before its issue: a later adjustment keeps, re-bands or drops them, also once
    their round is reversed (issued bills keep it)."""
    charge, rebates = _corrected_charge(original, adjustment.kwh)
    applied = [rebate for rebate in rebates if rebate[2] is not None]
    for (programme, application, percent), parts in zip(applied, charge.rebates, strict=True):
        if application is None and percent is not None:
            _store_application(invoice, programme, None, percent, parts)


type _Rebate = tuple[RebateProgramme, RebateApplication | None, Decimal | None]


def _rebates_for(invoice: Invoice, kwh: int) -> list[_Rebate]:
    """The rebate programmes of a bill charged again for ``kwh``, in the order they apply: (programme, its
    application on the bill or None, its percent for ``kwh`` or None). First each programme already on the
    bill, at its band for that kWh (None: the kWh is outside it now); then, as a round applied now would,
    each applied programme whose months, customer types and units cover the bill and whose band holds that
    kWh (``_programmes_covering``)."""
    applications = _applications(invoice)
    rebates: list[_Rebate] = [(a.programme, a, a.programme.percent_for(kwh)) for a in applications]
    for programme in _programmes_covering(invoice, exclude={a.programme_id for a in applications}):
        percent = programme.percent_for(kwh)
        if percent is not None:
            rebates.append((programme, None, percent))
    return rebates


def _programmes_covering(invoice: Invoice, *, exclude: set[int]) -> list[RebateProgramme]:
    """The applied programmes (other than ``exclude``) whose months, customer types and units cover a bill,
    as ``_eligible_sql`` selects the bills of a round, in the order they were created; its kWh is checked by
    ``RebateProgramme.percent_for``. For an issued bill, only the rounds that first ran before it was issued
    (a round reaches the bills not yet issued: one issued earlier never had it, whatever its kWh)."""
    # Its months read as months (a first month typed as a later day of it still covers the bill's month), and
    # its units with those merged into them (``_programme_units``), as ``_eligible_sql`` reads them.
    candidates = (
        RebateProgramme.objects.filter(
            status=RebateStatus.APPLIED, period_from__lt=rules.month_end(invoice.period),
            period_to__gte=invoice.period,
        )
        .exclude(pk__in=exclude)
        .prefetch_related("units")
        .order_by("pk")
    )  # fmt: skip
    programmes = [p for p in candidates if (units := _programme_units(p)) is None or invoice.unit_id in units]
    if invoice.issued_at is not None:
        # An issued bill is within the reach of the rounds that ran while it was not yet issued only.
        programmes = [p for p in programmes if p.applied_at is not None and p.applied_at < invoice.issued_at]
    if not any(programme.customer_types for programme in programmes):
        return programmes
    customer_type = Customer.objects.values_list("customer_type", flat=True).get(pk=invoice.customer_id)
    return [p for p in programmes if not p.customer_types or customer_type in p.customer_types]


def _corrected_charge(invoice: Invoice, kwh: int) -> tuple[tariff.Charge, list[_Rebate]]:
    """The charge of ``invoice`` for ``kwh`` with its rebates (``_rebates_for``), and those rebates: what a
    bill not yet issued is recomputed to, and what an adjustment corrects an issued one to."""
    rebates = _rebates_for(invoice, kwh)
    charge = charge_for(category=invoice.contract.tariff_category, period=invoice.period, kwh=kwh,
                        households=invoice.households, rebates=[p for _prog, _app, p in rebates if p is not None])  # fmt: skip
    return charge, rebates


def _rebate_lines(
    invoice: Invoice, application: RebateApplication, parts, *, start_position: int
) -> list[InvoiceLine]:
    """A programme's reduction on a bill: one line per VAT rate it reduces (``tariff.rebate_parts``)."""
    return [
        InvoiceLine(
            invoice_id=invoice.pk, position=start_position + i, label=rebate_label(application.programme),
            segment_start=invoice.period_start, tier=None, kwh=0, price=0, amount=-part.amount,
            vat_percent=part.vat_percent,
        )
        for i, part in enumerate(parts)
    ]  # fmt: skip


def _half_up_sql(numerator: str, denominator: int) -> str:
    """SQL for ``numerator / denominator`` rounded half up, in integer arithmetic that PostgreSQL and SQLite
    compute alike (``numerator`` a whole number ≥ 0, of an integer type): the rounding rule of
    ``billing.tariff`` without floating point."""
    return f"((2 * ({numerator}) + {denominator}) / {2 * denominator})"


def _rebate_amount_sql(base: str, basis_points: str) -> str:
    """A rate's reduction: base × percent / 100 half up, the percent given in hundredths (``tariff.rebate_parts``)."""
    return _half_up_sql(f"({base}) * ({basis_points})", 10_000)


def _vat_sql(base: str, percent: str) -> str:
    """A rate's VAT: base × percent / 100 half up (``tariff.vat_amount``)."""
    return _half_up_sql(f"({base}) * ({percent})", 100)


def _programme_months(programme: RebateProgramme) -> tuple[dt.date, dt.date]:
    """A programme's first and last billed months, each as its first day (a day typed inside a month names
    that month, as ``lock_periods`` reads it): what its bills' ``period`` is compared with."""
    return programme.period_from.replace(day=1), programme.period_to.replace(day=1)


def _programme_units(programme: RebateProgramme) -> list[int] | None:
    """The units a programme reaches (None: every unit): those it names and the units merged into them
    (``crm.scoping.units_served_today``, the reach of a billing run or issue of the unit)."""
    named = [unit.pk for unit in programme.units.all()]
    return sorted(units_served_today(named)) if named else None


def _eligible_sql(
    programme: RebateProgramme, join: str = "", join_params: tuple = (), *, run_id: int | None = None
) -> tuple[str, list]:
    """FROM … WHERE over the invoices a programme applies to (not yet issued, in its months, types, units,
    kWh), with the band's percent as ``pct`` and in hundredths (a whole number) as ``bp``; ``join`` is joined
    to them as it is (``e`` names the invoices). ``run_id``: only the bills that billing run made."""
    bands = list(programme.bands.order_by("from_kwh"))
    if not bands:
        raise ValidationError(_("The programme has no benefit bands."))
    when = " ".join(
        "WHEN i.kwh >= %s" + (" AND i.kwh < %s" if b.to_kwh is not None else "") + " THEN %s" for b in bands
    )
    params: list = []
    for b in bands:
        params += [b.from_kwh] + ([b.to_kwh] if b.to_kwh is not None else []) + [b.percent]
    for b in bands:
        params += [b.from_kwh] + ([b.to_kwh] if b.to_kwh is not None else []) + [int(b.percent * 100)]
    where = [
        "i.kind = 'regular'",
        "i.status IN ('draft', 'held')",
        "i.period >= %s",
        "i.period <= %s",
        "i.kwh >= %s",
    ]
    where_params: list = [*_programme_months(programme), programme.min_kwh]
    if run_id is not None:
        where.append("i.run_id = %s")
        where_params.append(run_id)
    if programme.max_kwh is not None:
        where.append("i.kwh <= %s")
        where_params.append(programme.max_kwh)
    types = list(programme.customer_types or [])
    if types:
        where.append(f"cu.customer_type IN ({', '.join(['%s'] * len(types))})")
        where_params += types
    units = _programme_units(programme)
    if units:
        where.append(f"i.unit_id IN ({', '.join(['%s'] * len(units))})")
        where_params += units
    where.append(
        "NOT EXISTS (SELECT 1 FROM billing_rebateapplication a WHERE a.invoice_id = i.id AND a.programme_id = %s)"
    )
    where_params.append(programme.pk)
    sql = (
        f"FROM (SELECT i.id, i.unit_id, i.subtotal, i.kwh, i.period_start, CASE {when} END AS pct, "
        f"CASE {when} END AS bp FROM billing_invoice i "
        f"JOIN customers_customer cu ON cu.id = i.customer_id WHERE {' AND '.join(where)}) e {join} "
        "WHERE e.pct IS NOT NULL"
    )
    return sql, params + where_params + list(join_params)


# Per bill not yet issued in the programme's months, the sum of its lines at each VAT rate: what a rebate
# reduces (``tariff.rebate_parts``). As a whole number on both databases (PostgreSQL's SUM of bigint is numeric).
RATE_BASES_SQL = (
    "(SELECT l.invoice_id, l.vat_percent, CAST(SUM(l.amount) AS BIGINT) AS base, MAX(l.position) AS last_position "
    "FROM billing_invoiceline l JOIN billing_invoice ri ON ri.id = l.invoice_id "
    "WHERE ri.status IN ('draft', 'held') AND ri.kind = 'regular' AND ri.period >= %s AND ri.period <= %s "
    "GROUP BY l.invoice_id, l.vat_percent)"
)


def rebate_dry_run(*, programme: RebateProgramme, user=None) -> dict:
    """Who would get how much: counts and totals by unit and band, without writing anything (limited to
    ``user``'s units when given)."""
    sql, params = _eligible_sql(programme, f"LEFT JOIN {RATE_BASES_SQL} r ON r.invoice_id = e.id AND r.base > 0",
                                _programme_months(programme))  # fmt: skip
    scope = scope_for(user) if user is not None else None
    if scope is not None and not scope.everything:
        ids = sorted(scope.unit_ids) or [0]
        sql += f" AND e.unit_id IN ({', '.join(['%s'] * len(ids))})"
        params = [*params, *ids]
    amount = _rebate_amount_sql("r.base", "e.bp")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT b.unit_id, b.pct, COUNT(*), SUM(b.amount), SUM(b.subtotal) FROM (SELECT e.id, e.unit_id, "
            f"e.pct, e.subtotal, COALESCE(SUM({amount}), 0) AS amount {sql} "
            "GROUP BY e.id, e.unit_id, e.pct, e.subtotal) b GROUP BY b.unit_id, b.pct ORDER BY b.unit_id, b.pct",
            params,
        )
        rows = cursor.fetchall()
    units = dict(Unit.objects.filter(pk__in={r[0] for r in rows}).values_list("pk", "code"))
    by_unit: dict = defaultdict(lambda: {"invoices": 0, "amount": 0})
    lines = []
    for unit_id, pct, count, total, base in rows:
        lines.append({"unit": units.get(unit_id, unit_id), "percent": Decimal(pct), "invoices": count,
                      "amount": int(total), "base": int(base)})  # fmt: skip
        by_unit[units.get(unit_id, unit_id)]["invoices"] += count
        by_unit[units.get(unit_id, unit_id)]["amount"] += int(total)
    return {
        "lines": lines,
        "by_unit": dict(by_unit),
        "invoices": sum(line["invoices"] for line in lines),
        "amount": sum(line["amount"] for line in lines),
    }


def rebate_check_reach(user, programme: RebateProgramme) -> None:
    """A round is applied or taken back by someone who serves every unit its programme names; a programme that
    names none covers every unit, so only by someone who sees every unit. Refused with the units beyond."""
    if user is None:
        return  # the system itself (tasks, commands)
    scope = scope_for(user)
    if scope.everything:
        return
    units = list(programme.units.order_by("code"))
    if not units:
        raise ValidationError(
            _("This programme covers every unit: only staff who see every unit may apply or reverse it.")
        )
    beyond = [str(unit) for unit in units if not scope.allows_unit(unit.pk)]
    if beyond:
        raise ValidationError(
            _("This programme covers units you do not serve: %(units)s. Nothing was applied or reversed.")
            % {"units": "; ".join(beyond)}
        )


def rebate_check_can_run(programme: RebateProgramme, *, reverse: bool = False) -> None:
    """Whether a programme may be applied (or reversed) now, by its status and bands: checked when its job is
    queued (refused at once, nothing queued) and again when it runs. A reversed programme is never applied
    again; only an applied one is reversed; one without bands reduces nothing."""
    if reverse:
        if programme.status != RebateStatus.APPLIED:
            raise ValidationError(_("Only an applied programme can be reversed."))
        return
    if programme.status == RebateStatus.REVERSED:
        raise ValidationError(_("A reversed programme is not applied again: create a new one."))
    if not programme.bands.exists():
        raise ValidationError(_("The programme has no benefit bands."))


@transaction.atomic
def rebate_apply(*, actor, programme: RebateProgramme) -> dict:
    """Apply a programme to every eligible bill not yet issued, set-based. Running it again changes nothing
    (one application per programme and invoice); ``rebate_reverse`` undoes it on bills still not issued."""
    require(actor, "billing.apply_rebateprogramme")
    programme = RebateProgramme.objects.select_for_update().get(pk=programme.pk)
    rebate_check_reach(actor, programme)
    rebate_check_can_run(programme)
    lock_periods(programme.period_from, programme.period_to)  # its months' corrections finish first
    now = timezone.now()
    with connection.cursor() as cursor:
        bulk_work_memory(cursor)
        count, amount_total, vat_total = _rebate_apply_sql(cursor, programme, actor=actor, now=now)
    if programme.status != RebateStatus.APPLIED:
        programme.status = RebateStatus.APPLIED
        programme.applied_at = programme.applied_at or now
        programme.save(update_fields=["status", "applied_at"])
    totals = {"invoices": count, "amount": amount_total, "vat": vat_total}
    audit(actor=actor, action="rebate.apply", obj=programme, object_type="rebateprogramme", rows=count,
          after=totals)  # fmt: skip
    return totals


def _rebate_apply_sql(cursor, programme: RebateProgramme, *, actor, now, run_id: int | None = None):
    """A programme put on its eligible bills not yet issued (``_eligible_sql``; ``run_id``: only the bills that
    billing run made), set-based: its applications, its lines, the bills' totals. Returns (bills, amount, VAT).
    What a round applies and what the billing run gives the bills it makes in a round's month alike. The
    caller holds the months' locks."""
    sql, params = _eligible_sql(programme, run_id=run_id)
    _rebate_compute(cursor, sql, params)
    cursor.execute(
        "INSERT INTO billing_rebateapplication (programme_id, invoice_id, percent, base, amount, vat, applied_at) "
        "SELECT %s, invoice_id, pct, base, amount, vat, %s FROM billing_rebate_todo",
        [programme.pk, now],
    )
    count = cursor.rowcount
    cursor.execute(
        "INSERT INTO billing_invoiceline (invoice_id, position, label, segment_start, tier, kwh, price, amount, "
        "vat_percent) "
        "SELECT invoice_id, position, %s, period_start, NULL, 0, 0, -amount, vat_percent "
        "FROM billing_rebate_part",
        [rebate_label(programme)],
    )
    _rebate_release_offsets(cursor, actor=actor, programme=programme)
    cursor.execute(
        "UPDATE billing_invoice SET subtotal = billing_invoice.subtotal - t.amount, "
        "vat = billing_invoice.vat - t.vat, total = billing_invoice.total - t.amount - t.vat "
        "FROM billing_rebate_todo t WHERE t.invoice_id = billing_invoice.id"
    )
    cursor.execute("SELECT COALESCE(SUM(amount), 0), COALESCE(SUM(vat), 0) FROM billing_rebate_todo")
    amount_total, vat_total = cursor.fetchone()
    cursor.execute("DROP TABLE billing_rebate_todo")
    cursor.execute("DROP TABLE billing_rebate_part")
    return count, int(amount_total or 0), int(vat_total or 0)


def _run_apply_rebates(cursor, *, actor, period: dt.date, run_id: int, now) -> dict[str, int]:
    """The applied rounds covering ``period`` put on the bills this billing run made, in the order they were
    created (as ``_programmes_covering`` gives a corrected draft): a bill made after a round was applied (its
    month read late, or run again) gets it as the bills billed before it did. Its units and customer types
    and its kWh bands decide, by the round's own rule (``_rebate_apply_sql``). Returns bills per programme.
    The run holds the month's lock; the programme rows are not locked (a round's apply or reverse locks its
    row first, then the months: it waits for the run, then finds its bills)."""
    done: dict[str, int] = {}
    programmes = RebateProgramme.objects.filter(
        status=RebateStatus.APPLIED, period_from__lt=rules.month_end(period), period_to__gte=period
    ).order_by("pk")
    for programme in programmes:
        count, _amount, _vat = _rebate_apply_sql(cursor, programme, actor=actor, now=now, run_id=run_id)
        if count:
            done[str(programme.pk)] = count
    return done


def _rebate_compute(cursor, sql: str, params) -> None:
    """What a programme takes off its eligible bills, into temporary tables: ``billing_rebate_todo`` (one row
    per bill: its percentage, base and the amount and VAT taken off) and ``billing_rebate_part`` (one row per
    bill and VAT rate, the rebate line to add)."""
    # The eligible bills once; then their lines' sums per VAT rate, and what the rebate takes off each
    # (``tariff.rebate_parts`` in integer SQL: the same đồng on PostgreSQL and SQLite); the statements of
    # ``rebate_apply`` are set-based from those tables, each a join the planner can hash.
    cursor.execute("DROP TABLE IF EXISTS billing_rebate_todo")
    cursor.execute("DROP TABLE IF EXISTS billing_rebate_part")
    cursor.execute(
        "CREATE TEMP TABLE billing_rebate_todo AS "
        "SELECT e.id AS invoice_id, e.pct, e.bp, e.subtotal AS base, e.period_start, "
        f"CAST(0 AS BIGINT) AS amount, CAST(0 AS BIGINT) AS vat {sql}",
        params,
    )
    if connection.vendor == "postgresql":  # temporary tables are never analysed by autovacuum
        cursor.execute("CREATE UNIQUE INDEX billing_rebate_todo_invoice ON billing_rebate_todo (invoice_id)")
        cursor.execute("ANALYZE billing_rebate_todo")
    reduction = _rebate_amount_sql("s.base", "s.bp")
    cursor.execute(
        "CREATE TEMP TABLE billing_rebate_part AS "
        f"SELECT s.invoice_id, s.vat_percent, s.period_start, {reduction} AS amount, "
        f"{_vat_sql('s.base', 's.vat_percent')} - {_vat_sql(f's.base - {reduction}', 's.vat_percent')} AS vat, "
        "s.last_position + ROW_NUMBER() OVER (PARTITION BY s.invoice_id ORDER BY s.vat_percent DESC) AS position "
        "FROM (SELECT t.invoice_id, l.vat_percent, t.bp, t.period_start, CAST(SUM(l.amount) AS BIGINT) AS base, "
        "      MAX(MAX(l.position)) OVER (PARTITION BY t.invoice_id) AS last_position "
        "      FROM billing_invoiceline l JOIN billing_rebate_todo t ON t.invoice_id = l.invoice_id "
        "      GROUP BY t.invoice_id, l.vat_percent, t.bp, t.period_start) s "
        "WHERE s.base > 0"
    )
    if connection.vendor == "postgresql":
        cursor.execute("ANALYZE billing_rebate_part")
    cursor.execute(
        "UPDATE billing_rebate_todo SET amount = p.amount, vat = p.vat "
        "FROM (SELECT invoice_id, SUM(amount) AS amount, SUM(vat) AS vat FROM billing_rebate_part "
        "      GROUP BY invoice_id) p "
        "WHERE p.invoice_id = billing_rebate_todo.invoice_id"
    )


def _rebate_release_offsets(cursor, *, actor, programme: RebateProgramme) -> None:
    """A bill whose new total no longer covers the refunds offset on it (rare): those offsets are released."""
    cursor.execute(
        "SELECT i.id, i.total - t.amount - t.vat FROM billing_invoice i JOIN billing_rebate_todo t "
        "ON t.invoice_id = i.id WHERE i.refund_offset > i.total - t.amount - t.vat"
    )
    for invoice_id, new_total in cursor.fetchall():
        invoice = Invoice.objects.select_for_update().get(pk=invoice_id)
        invoice.total = new_total
        released = _release_offsets(invoice)
        Invoice.objects.filter(pk=invoice_id).update(refund_offset=invoice.refund_offset)
        audit(actor=actor, action="refund.unsettle", obj=invoice, rows=len(released),
              after={"refunds": released, "total": new_total, "refund_offset": invoice.refund_offset},
              reason=rebate_label(programme))  # fmt: skip
        _settle_released(actor=actor, refunds=released)


@transaction.atomic
def rebate_reverse(*, actor, programme: RebateProgramme) -> dict:
    """Take a programme back off every bill not yet issued. Bills already issued keep it (an adjustment would
    be needed); they are counted and reported. The programme is reversed from then on: never applied again,
    to any bill (a new programme is created instead)."""
    require(actor, "billing.apply_rebateprogramme")
    programme = RebateProgramme.objects.select_for_update().get(pk=programme.pk)
    rebate_check_reach(actor, programme)
    rebate_check_can_run(programme, reverse=True)
    lock_periods(programme.period_from, programme.period_to)  # as ``rebate_apply``
    label = rebate_label(programme)
    issued = RebateApplication.objects.filter(
        programme=programme, invoice__status__in=ISSUED_STATUSES
    ).count()
    # Rounds apply one after another, each on what the earlier ones left: a bill that got another round after
    # this one is computed again once this one is off it.
    followed = list(
        RebateApplication.objects.filter(
            invoice__rebates__programme=programme, invoice__status__in=[InvoiceStatus.DRAFT, InvoiceStatus.HELD]
        )
        .exclude(programme=programme)
        .values_list("invoice_id", flat=True)
        .distinct()
    )
    with connection.cursor() as cursor:
        bulk_work_memory(cursor)
        cursor.execute("DROP TABLE IF EXISTS billing_rebate_undo")
        cursor.execute(
            "CREATE TEMP TABLE billing_rebate_undo AS SELECT a.id, a.invoice_id, a.amount, a.vat "
            "FROM billing_rebateapplication a JOIN billing_invoice i ON i.id = a.invoice_id "
            "WHERE a.programme_id = %s AND i.status IN ('draft', 'held')",
            [programme.pk],
        )
        if connection.vendor == "postgresql":  # temporary tables are never analysed by autovacuum
            cursor.execute("ANALYZE billing_rebate_undo")
        cursor.execute(
            "UPDATE billing_invoice SET subtotal = billing_invoice.subtotal + u.amount, "
            "vat = billing_invoice.vat + u.vat, total = billing_invoice.total + u.amount + u.vat "
            "FROM billing_rebate_undo u WHERE u.invoice_id = billing_invoice.id"
        )
        reversed_count = cursor.rowcount
        # As joins (USING) on PostgreSQL: the statistics of the lines and applications do not know the rows the
        # programme added, and an IN (…) planned on them can become a scan of the whole set per row.
        if connection.vendor == "postgresql":
            cursor.execute(
                "DELETE FROM billing_invoiceline l USING billing_rebate_undo u "
                "WHERE l.invoice_id = u.invoice_id AND l.label = %s",
                [label],
            )
            cursor.execute(
                "DELETE FROM billing_rebateapplication a USING billing_rebate_undo u WHERE a.id = u.id"
            )
        else:
            cursor.execute(
                "DELETE FROM billing_invoiceline WHERE label = %s "
                "AND invoice_id IN (SELECT invoice_id FROM billing_rebate_undo)",
                [label],
            )
            cursor.execute(
                "DELETE FROM billing_rebateapplication WHERE id IN (SELECT id FROM billing_rebate_undo)"
            )
        cursor.execute("DROP TABLE billing_rebate_undo")
    # Reversed, even when issued bills keep it (counted): applying it again, or a bill recomputed, would put
    # it back on the bills it was just taken off.
    programme.status = RebateStatus.REVERSED
    programme.save(update_fields=["status"])
    for invoice in Invoice.objects.filter(pk__in=followed, reading__isnull=False).select_related("reading"):
        assert invoice.reading is not None  # a bill of the billing run is made from its reading
        _recompute(actor=actor, invoice=invoice, reading=invoice.reading,
                   reason=_("%(r)s taken back") % {"r": rebate_label(programme)})  # fmt: skip
    audit(actor=actor, action="rebate.reverse", obj=programme, object_type="rebateprogramme", rows=reversed_count,
          after={"reversed": reversed_count, "kept_on_issued": issued})  # fmt: skip
    return {"reversed": reversed_count, "kept_on_issued": issued}


# Consumption anomalies ----------------------------------------------------------------------------------

BANDS = (("below_30", None, 30), ("from_30", 30, 50), ("from_50", 50, 100), ("from_100", 100, 300),
         ("from_300", 300, None))  # fmt: skip


def _band_sql(rise_100: str, base: str, lo: int | None, hi: int | None) -> str:
    """SQL: a rise (× 100) over ``base`` is in the band from ``lo`` % (included) to ``hi`` % (excluded)."""
    conditions = [f"{rise_100} >= {lo} * {base}"] if lo is not None else []
    if hi is not None:
        conditions.append(f"{rise_100} < {hi} * {base}")
    return " AND ".join(conditions)


def _anomaly_threshold(threshold: Decimal | None) -> Decimal:
    """The scan's threshold (the configured one when none is given), refused unless the counts can keep it: a
    rise (more than 1×) below 100×, in hundredths."""
    threshold = Decimal(str(threshold or settings.TONGDAI_ANOMALY_THRESHOLD))
    if threshold <= 1:
        raise ValidationError({"threshold": _("The threshold is a rise: more than 1×.")})
    hundredths = threshold * 100
    if hundredths != hundredths.to_integral_value() or threshold >= 100:
        raise ValidationError(
            {"threshold": _("The threshold is below 100×, with at most two decimals (1.35×).")}
        )
    return threshold


def _store_band_counts(period: dt.date, counts, held_by_unit: dict, *, threshold: Decimal, now) -> None:
    """One row per unit scanned: how many contracts were compared, how many fell in each band, how many bills
    are held for an anomaly."""
    for unit_id, compared, *bands in counts:
        AnomalyBandCount.objects.update_or_create(
            period=period, unit_id=unit_id,
            defaults={"compared": compared, **{name: int(n or 0) for (name, _lo, _hi), n in zip(BANDS, bands, strict=True)},
                      "held": held_by_unit.get(unit_id, 0), "threshold": threshold, "computed_at": now},
        )  # fmt: skip


def _anomaly_items_sql(pairs: str, *, rise: str, at_threshold: str) -> str:
    """The scan's INSERT of a re-inspection item for each rise at the threshold (``pairs``: the month's readings
    with the previous month's). One item per contract and month: a month whose reading was corrected since an
    earlier scan (on site, from the admin, or re-based) supersedes the item's reading, yet was looked at. A NOT
    IN over the month's items (one hashed list), not a NOT EXISTS, whose plan would trust the statistics of a
    table this very statement fills (a scan per row if empty); and one item per reading (a unique index)."""
    return (
        "INSERT INTO billing_reinspection (reading_id, unit_id, dispute_id, reason, rise_percent, created_at, "
        "reread_value, evidence, evidence_file, outcome, inspector_id, done_at) "
        f"SELECT c.id, c.unit_id, NULL, 'anomaly', CAST({rise} AS INTEGER), %(now)s, NULL, '', '', '', NULL, NULL "
        f"{pairs} AND {at_threshold} "
        "AND c.contract_id NOT IN (SELECT r.contract_id FROM billing_reinspection x JOIN billing_meterreading r "
        "ON r.id = x.reading_id WHERE x.reason = 'anomaly' AND r.period = %(period)s) "
        "ON CONFLICT (reading_id) WHERE reason = 'anomaly' DO NOTHING"
    )


def anomaly_scan(
    *, actor, period: dt.date, unit: Unit | None = None, threshold: Decimal | None = None
) -> dict:
    """Compare each contract's consumption with the previous period: count the rises per unit in bands, open a
    re-inspection and hold the bill of every customer at ``threshold``× or more. Safe to run again."""
    require(actor, "billing.add_anomalybandcount")
    check_reach(actor, unit)
    threshold = _anomaly_threshold(threshold)
    hundredths = threshold * 100
    start, _end = period_bounds(period)
    previous = (start - dt.timedelta(days=1)).replace(day=1)
    now = timezone.now()
    reach = unit_reach(unit)  # the unit with the units merged into it
    where_unit = units_sql("c.unit_id", reach)
    params: dict[str, dt.date | int] = {"period": period, "previous": previous, "hundredths": int(hundredths),
                                        "now": now}  # fmt: skip
    # Whole numbers on every database (a float's 50 × 1.1 is 55.000000000000007): the rise in percent is
    # compared as (c − p) × 100 against percent × p, the threshold as c × 100 against hundredths × p.
    c_kwh, p_kwh = "CAST(c.kwh AS BIGINT)", "CAST(p.kwh AS BIGINT)"
    rise_100 = f"(({c_kwh} - {p_kwh}) * 100)"
    rise = f"({rise_100} / {p_kwh})"  # whole percent, truncated towards zero on both databases
    at_threshold = f"{c_kwh} * 100 >= {p_kwh} * %(hundredths)s"
    band_sums = ", ".join(
        f"SUM(CASE WHEN {_band_sql(rise_100, p_kwh, lo, hi)} THEN 1 ELSE 0 END)" for _name, lo, hi in BANDS
    )
    pairs = f"""
        FROM billing_meterreading c
        JOIN billing_meterreading p ON p.contract_id = c.contract_id AND p.period = %(previous)s
             AND p.status <> 'superseded'
        WHERE c.period = %(period)s AND c.status <> 'superseded' AND p.kwh > 0 {where_unit}
    """
    with transaction.atomic(), connection.cursor() as cursor:
        lock_period(period)
        bulk_work_memory(cursor)
        cursor.execute(f"SELECT c.unit_id, COUNT(*), {band_sums} {pairs} GROUP BY c.unit_id", params)
        counts = cursor.fetchall()
        cursor.execute(_anomaly_items_sql(pairs, rise=rise, at_threshold=at_threshold), params)
        opened = cursor.rowcount
        # The drafts whose reading has an open anomaly re-inspection (this scan's or an earlier one's): a rise
        # already confirmed on site, its re-inspection closed, holds nothing again.
        cursor.execute(
            "UPDATE billing_invoice SET status = 'held', hold_reason = %(reason)s, hold_kind = 'review' "
            "WHERE status = 'draft' AND kind = 'regular' AND period = %(period)s AND reading_id IN ("
            "SELECT x.reading_id FROM billing_reinspection x JOIN billing_meterreading c ON c.id = x.reading_id "
            f"WHERE x.reason = 'anomaly' AND x.done_at IS NULL AND c.period = %(period)s {where_unit})",
            {
                **params,
                "reason": (_("Consumption rose %(t)s× or more: re-inspection") % {"t": threshold})[:200],
            },
        )
        held_now = cursor.rowcount
        cursor.execute(
            "SELECT i.unit_id, COUNT(*) FROM billing_invoice i JOIN billing_reinspection x ON x.reading_id = i.reading_id "
            "AND x.reason = 'anomaly' WHERE i.period = %(period)s AND i.status = 'held' AND i.kind = 'regular' "
            + units_sql("i.unit_id", reach)
            + " GROUP BY i.unit_id",
            params,
        )
        _store_band_counts(period, counts, dict(cursor.fetchall()), threshold=threshold, now=now)
        audit(actor=actor, action="anomaly.scan", object_type="meterreading", unit_id=unit.pk if unit else None,
              rows=opened, after={"period": str(period), "threshold": str(threshold), "reinspections": opened,
                                  "held": held_now})  # fmt: skip
    return {
        "units": len(counts),
        "compared": sum(r[1] for r in counts),
        "reinspections": opened,
        "held": held_now,
        "bands": {name: sum(int(r[2 + i] or 0) for r in counts) for i, (name, _lo, _hi) in enumerate(BANDS)},
    }
