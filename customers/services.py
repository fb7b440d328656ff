"""Every state change of customers, contracts and meters: keyword-only, one transaction, one event row each.

Admin forms, API views, imports and the demo loader call these; nothing else writes these tables, except
the bulk demo loader, which writes the same columns through COPY for speed (``customers.demo``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from core.errors import renamed
from core.text import column_length, composed, typed_text
from crm.models import Unit
from crm.permissions import require
from crm.scoping import units_served_today
from customers import privacy, rules
from customers.models import (
    Contract,
    ContractStatus,
    Customer,
    CustomerEvent,
    CustomerEventKind,
    CustomerPhone,
    Meter,
    MeterAssignment,
    MeterStatus,
)
from customers.normalise import InvalidPhone, normalise_code, normalise_phone, search_document

EDITABLE_FIELDS = (
    "full_name",
    "national_id",
    "email",
    "street",
    "ward",
    "district",
    "province",
    "customer_type",
    "households",
)


def customer_search_text(customer: Customer) -> str:
    """Name and address without the province: a word every row of a company shares narrows nothing."""
    return search_document(customer.full_name, customer.street, customer.ward, customer.district)


def _snapshot(customer: Customer, fields=EDITABLE_FIELDS) -> dict[str, Any]:
    return {field: getattr(customer, field) for field in fields}


def _event(customer, kind, actor, *, before=None, after=None, reason="") -> CustomerEvent:
    return CustomerEvent.objects.create(
        customer=customer,
        kind=kind,
        actor=actor if getattr(actor, "pk", None) else None,
        before=before or {},
        after=after or {},
        reason=reason,
    )


def customer_next_code(*, unit: Unit) -> str:
    """The next free code of a unit: its 6-character code and a 7-digit sequence. Call inside a lock."""
    last = (
        Customer.objects.filter(code__gte=unit.code + "0000000", code__lte=unit.code + "9999999")
        .order_by("-code")
        .values_list("code", flat=True)
        .first()
    )
    number = int(last[6:]) + 1 if last else 1
    if number > 9_999_999:
        raise ValidationError(_("Unit %(unit)s has no customer codes left.") % {"unit": unit.code})
    return f"{unit.code}{number:07d}"


def _moment(at: dt.datetime) -> str:
    return rules.moment_text(at)


def check_unit_current(unit: Unit, field: str = "unit", *, merged: str | None = None) -> None:
    """New records are born in a unit of today: a unit merged away (or closed) keeps only its old records.
    ``merged``: the refusal for a merged unit, naming ``%(unit)s`` and ``%(successor)s`` (an outage's says where
    to enter it); by default, to register new records in the successor."""
    if unit.is_active_on(timezone.localdate()):
        return
    successor = unit.successor if unit.successor_id else None
    if successor is not None:
        default = _("Unit %(unit)s was merged into %(successor)s; register new records in %(successor)s.")
        message = (merged or default) % {
            "unit": unit.code,
            "successor": successor.code,
        }
    else:
        message = _("Unit %(unit)s is not in service today.") % {"unit": unit.code}
    raise ValidationError({field: message})


def _check_code_belongs_to_unit(code: str, unit: Unit) -> None:
    # the unit's own codes, and those of the units merged into it once merged (chains included)
    allowed = set(Unit.objects.filter(pk__in=units_served_today([unit.pk])).values_list("code", flat=True))
    if code[:6] not in allowed:
        raise ValidationError(
            {"code": _("A customer code of unit %(unit)s starts with %(unit)s.") % {"unit": unit.code}}
        )


@transaction.atomic
def customer_create(
    *,
    actor,
    unit: Unit,
    full_name: str,
    street: str,
    ward: str,
    district: str = "",
    province: str = "",
    code: str | None = None,
    national_id: str = "",
    email: str = "",
    customer_type: str = "residential",
    households: int = 1,
    phones: list[str] | tuple[str, ...] = (),
    token: str | None = None,
) -> Customer:
    """Register a customer in a unit; the code is the unit's next one unless given. Phones in any spelling.

    ``token``: the one-time token of the clerk's form (kept with the customer's "created" event). The same form
    posted again registers nothing and returns the customer it registered; without a token every call
    registers one."""
    require(actor, "customers.add_customer", unit=unit)
    unit = Unit.objects.select_for_update().get(pk=unit.pk)  # serialises code allocation per unit
    token = (token or "").strip()[:64] or None
    if token is not None:
        first = _registered_from_form(unit=unit, token=token)
        if first is not None:
            return first
    check_unit_current(unit)
    normalised = []
    errors = []
    for raw in phones:
        try:
            number = normalise_phone(raw)
        except InvalidPhone as exc:
            errors.append(f"{raw}: {exc}")
            continue
        if number not in normalised:
            normalised.append(number)
    if errors:
        raise ValidationError({"phones": errors})
    code = customer_next_code(unit=unit) if code is None else normalise_code(code)
    customer = Customer(
        code=code,
        unit=unit,
        full_name=composed(full_name).strip(),
        national_id=national_id.strip(),
        email=composed(email).strip(),
        street=composed(street).strip(),
        ward=composed(ward).strip(),
        district=composed(district or unit.district).strip(),
        province=composed(province or unit.company.province).strip(),
        customer_type=customer_type,
        households=households,
    )
    customer.full_clean(exclude=["search_text"], validate_constraints=False)
    _check_code_belongs_to_unit(customer.code, unit)
    if Customer.objects.filter(code=customer.code).exists():
        raise ValidationError(
            {"code": _("Customer code %(code)s is already in use.") % {"code": customer.code}}
        )
    # in the unit's spelling; a ward the unit does not serve is refused (after the code: one refusal at a time)
    customer.ward = rules.unit_ward(unit, customer.ward)
    customer.search_text = customer_search_text(customer)
    customer.save()
    CustomerPhone.objects.bulk_create(
        CustomerPhone(customer=customer, number=number, is_primary=(i == 0))
        for i, number in enumerate(normalised)
    )
    _event(
        customer,
        CustomerEventKind.CREATED,
        actor,
        after={
            **_snapshot(customer), "code": customer.code, "phones": normalised,
            **({"submission_token": token} if token else {}),
        },
    )  # fmt: skip
    return customer


# How many of a unit's newest customers a repeated form is looked for among: a repeat follows its first post
# within seconds, under the same unit lock, so its customer is among the unit's last registered.
REPEAT_LOOKBACK = 50


def _registered_from_form(*, unit: Unit, token: str) -> Customer | None:
    """The customer the form with ``token`` registered in ``unit``, if it did (call under the unit's lock)."""
    newest = list(Customer.objects.filter(unit=unit).order_by("-pk").values_list("pk", flat=True)[:REPEAT_LOOKBACK])
    event = (
        CustomerEvent.objects.filter(
            customer__in=newest, kind=CustomerEventKind.CREATED, after__submission_token=token
        )
        .select_related("customer")
        .first()
    )
    return event.customer if event is not None else None


@transaction.atomic
def customer_update(
    *,
    actor,
    customer: Customer,
    changes: dict[str, Any],
    reason: str = "",
    seen_updated_at: dt.datetime | None = None,
) -> Customer:
    """Change a customer's details; only ``EDITABLE_FIELDS``, validated, with before/after recorded.

    ``seen_updated_at`` is the customer's ``updated_at`` on the page the changes were made on: when the record
    has changed since (another clerk saved it meanwhile), nothing is written and the page is to be reloaded,
    so a save never puts back what the page showed over somebody else's change.
    """
    require(actor, "customers.change_customer", unit=customer.unit_id)
    reason = typed_text(reason, field="reason")
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValidationError(
            _("These fields cannot be changed here: %(fields)s") % {"fields": ", ".join(sorted(unknown))}
        )
    if "national_id" in changes:
        # Before any comparison: whether the number is the stored one is never told to who may not see it.
        privacy.check_national_id_change(actor)
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    if seen_updated_at is not None and customer.updated_at != seen_updated_at:
        raise ValidationError(
            _(
                "Somebody else changed this customer after you opened the page; nothing was saved. "
                "Reload the page to see their change, then make yours again."
            ),
            code="stale",
        )
    before = _snapshot(customer, changes.keys())
    for field, value in changes.items():
        setattr(customer, field, composed(value).strip() if isinstance(value, str) else value)
    if "ward" in changes:  # in the unit's spelling; a ward it does not serve is refused
        customer.ward = rules.unit_ward(customer.unit, customer.ward, kept=before["ward"])
    after = _snapshot(customer, changes.keys())
    if before == after:
        return customer
    customer.full_clean(exclude=["search_text"], validate_constraints=False)
    customer.search_text = customer_search_text(customer)
    customer.save()
    changed = [f for f in changes if before[f] != after[f]]
    _event(
        customer,
        CustomerEventKind.UPDATED,
        actor,
        before={f: before[f] for f in changed},
        after={f: after[f] for f in changed},
        reason=reason,
    )
    return customer


@transaction.atomic
def customer_flag_nuisance(*, actor, customer: Customer, reason: str) -> Customer:
    """Mark a customer as a nuisance caller; the record and its history stay."""
    require(actor, "customers.flag_nuisance", unit=customer.unit_id)
    reason = typed_text(reason, field="nuisance_reason")
    if not reason:
        raise ValidationError({"nuisance_reason": _("Say why the caller is flagged.")})
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    if customer.is_nuisance:
        raise ValidationError(_("This customer is already flagged as a nuisance caller."))
    customer.is_nuisance = True
    customer.nuisance_reason = reason
    customer.nuisance_set_by = actor
    customer.nuisance_set_at = timezone.now()
    customer.save(
        update_fields=["is_nuisance", "nuisance_reason", "nuisance_set_by", "nuisance_set_at", "updated_at"]
    )
    _event(customer, CustomerEventKind.NUISANCE_FLAGGED, actor, after={"is_nuisance": True}, reason=reason)
    return customer


@transaction.atomic
def customer_clear_nuisance(*, actor, customer: Customer, reason: str) -> Customer:
    require(actor, "customers.flag_nuisance", unit=customer.unit_id)
    reason = typed_text(reason, field="reason")
    if not reason:
        raise ValidationError({"reason": _("Say why the flag is cleared.")})
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    if not customer.is_nuisance:
        raise ValidationError(_("This customer is not flagged."))
    before = {
        "is_nuisance": True,
        "nuisance_reason": customer.nuisance_reason,
        "nuisance_set_by": customer.nuisance_set_by_id,
        "nuisance_set_at": customer.nuisance_set_at.isoformat() if customer.nuisance_set_at else None,
    }
    customer.is_nuisance = False
    customer.nuisance_reason = ""
    customer.nuisance_set_by = None
    customer.nuisance_set_at = None
    customer.save(
        update_fields=["is_nuisance", "nuisance_reason", "nuisance_set_by", "nuisance_set_at", "updated_at"]
    )
    _event(
        customer,
        CustomerEventKind.NUISANCE_CLEARED,
        actor,
        before=before,
        after={"is_nuisance": False},
        reason=reason,
    )
    return customer


@transaction.atomic
def customer_add_phone(
    *, actor, customer: Customer, number: str, primary: bool = False, label: str = ""
) -> CustomerPhone:
    require(actor, "customers.add_customerphone", unit=customer.unit_id)
    try:
        normalised = normalise_phone(number)
    except InvalidPhone as exc:
        raise ValidationError({"number": str(exc)}) from None
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    if customer.phones.filter(number=normalised).exists():
        raise ValidationError({"number": _("The customer already has this number.")})
    has_primary = customer.phones.filter(is_primary=True).exists()
    if primary and has_primary:
        customer.phones.filter(is_primary=True).update(is_primary=False)
    phone = CustomerPhone.objects.create(
        customer=customer, number=normalised, is_primary=primary or not has_primary, label=label.strip()
    )
    _phones_changed(customer)
    _event(
        customer,
        CustomerEventKind.PHONE_ADDED,
        actor,
        after={"number": normalised, "primary": phone.is_primary},
    )
    return phone


def _phones_changed(customer: Customer) -> None:
    """A change of the customer's phones (a number added or removed, the primary one moved) is a change of the
    customer: its ``updated_at`` moves on, so a page or an exported file read before it is refused as stale
    (``customer_update``'s ``seen_updated_at``, the customers import) rather than put the old phones back.
    The caller holds the customer's row lock."""
    customer.updated_at = timezone.now()
    Customer.objects.filter(pk=customer.pk).update(updated_at=customer.updated_at)


@transaction.atomic
def customer_remove_phone(*, actor, phone: CustomerPhone, reason: str = "") -> None:
    require(actor, "customers.delete_customerphone", unit=phone.customer.unit_id)
    reason = typed_text(reason, field="reason")
    customer = Customer.objects.select_for_update().get(pk=phone.customer_id)
    phone = CustomerPhone.objects.get(pk=phone.pk)
    was_primary = phone.is_primary
    phone.delete()
    if was_primary:
        successor = customer.phones.order_by("id").first()
        if successor is not None:
            CustomerPhone.objects.filter(pk=successor.pk).update(is_primary=True)
    _phones_changed(customer)
    _event(customer, CustomerEventKind.PHONE_REMOVED, actor, before={"number": phone.number}, reason=reason)


# Contracts --------------------------------------------------------------------------------------------

CONTRACT_TRANSITIONS: dict[str, set[str]] = {
    ContractStatus.PENDING: {ContractStatus.ACTIVE, ContractStatus.TERMINATED},
    ContractStatus.ACTIVE: {ContractStatus.SUSPENDED, ContractStatus.TERMINATED},
    ContractStatus.SUSPENDED: {ContractStatus.ACTIVE, ContractStatus.TERMINATED},
    ContractStatus.TERMINATED: set(),
}


def _next_contract_number(customer: Customer) -> str:
    """The customer code and the first 2-digit sequence after its contracts' count that no contract holds (a
    number typed by hand may have taken the next one). The customer's row is locked by the caller."""
    prefix = f"{customer.code}-"
    taken = set(Contract.objects.filter(number__startswith=prefix).values_list("number", flat=True))
    sequence = customer.contracts.count() + 1
    while f"{prefix}{sequence:02d}" in taken:
        sequence += 1
    return f"{prefix}{sequence:02d}"


@transaction.atomic
def contract_create(
    *,
    actor,
    customer: Customer,
    purpose: str,
    start_date: dt.date,
    tariff_category: str = "residential",
    number: str | None = None,
    status: str = ContractStatus.PENDING,
) -> Contract:
    """Sign a service agreement; its number is the customer code and a 2-digit sequence unless given."""
    require(actor, "customers.add_contract", unit=customer.unit_id)
    if status not in (ContractStatus.PENDING, ContractStatus.ACTIVE):
        raise ValidationError({"status": _("A new contract is pending or active.")})
    rules.check_contract_day(start_date, "start_date")
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    # Stored as the imports store it (trimmed, in capitals), so that every lookup by number finds it.
    number = normalise_code(number) if number is not None else ""
    if not number:
        number = _next_contract_number(customer)
    contract = Contract(
        number=number,
        customer=customer,
        tariff_category=tariff_category,
        purpose=purpose.strip(),
        start_date=start_date,
        status=status,
    )
    contract.full_clean(validate_constraints=False)
    try:
        with transaction.atomic():
            contract.save()
    except IntegrityError:
        raise ValidationError(
            {"number": _("Contract number %(n)s is already in use.") % {"n": number}}
        ) from None
    _event(customer, CustomerEventKind.CONTRACT_CREATED, actor, after={"contract": number, "status": status})
    return contract


@transaction.atomic
def contract_set_status(
    *, actor, contract: Contract, status: str, on: dt.date | None = None, reason: str = ""
) -> Contract:
    """Move a contract along pending → active ⇄ suspended → terminated; terminating sets its end date.

    The end date is ``on``, or today; a contract that has not started yet (its start date is after today) is
    cancelled: without ``on``, it ends on its start date, having never run.
    """
    require(actor, "customers.change_contract", unit=contract.customer.unit_id)
    reason = typed_text(reason, field="reason")
    if on is not None:
        rules.check_contract_day(on, "end_date")
    contract = Contract.objects.select_for_update().get(pk=contract.pk)
    if status not in CONTRACT_TRANSITIONS.get(contract.status, set()):
        raise ValidationError(
            _("A contract that is %(old)s cannot become %(new)s.")
            % {"old": ContractStatus(contract.status).label, "new": ContractStatus(status).label}
        )
    before = {"status": contract.status}
    contract.status = status
    if status == ContractStatus.TERMINATED:
        today = timezone.localdate()
        contract.end_date = on or (contract.start_date if contract.start_date > today else today)
        if contract.end_date < contract.start_date:
            raise ValidationError(
                {
                    "end_date": _("A contract cannot end before it starts (%(start)s).")
                    % {"start": rules.day_text(contract.start_date)}
                }
            )
        _check_meters_off(contract, ends=contract.end_date)
    contract.save(update_fields=["status", "end_date"])
    _event(
        contract.customer,
        CustomerEventKind.CONTRACT_STATUS,
        actor,
        before={**before, "contract": contract.number},
        after={"status": status, "contract": contract.number},
        reason=reason,
    )
    return contract


def _check_meters_off(contract: Contract, *, ends: dt.date) -> None:
    """A contract ends after its meter came off with the final reading (``meter_remove``): terminating it with
    the meter still on would leave a meter installed on a dead contract, its last kWh read by nobody."""
    assignments = MeterAssignment.objects.filter(contract=contract).select_related("meter")
    current = assignments.filter(removed_at__isnull=True).first()
    if current is not None:
        raise ValidationError(
            _(
                "Meter %(s)s is still installed on contract %(c)s: remove it with its final reading first, "
                "then terminate the contract."
            )
            % {"s": current.meter.serial, "c": contract.number}
        )
    last = assignments.filter(removed_at__isnull=False).order_by("-removed_at").first()
    removed_at = last.removed_at if last is not None else None
    if removed_at is not None and ends < timezone.localdate(removed_at):
        raise ValidationError(
            {
                "end_date": _("Contract %(c)s cannot end before its meter was removed (%(at)s).")
                % {"c": contract.number, "at": _moment(removed_at)}
            }
        )


# Meters -----------------------------------------------------------------------------------------------


@transaction.atomic
def meter_register(
    *, actor, unit: Unit, serial: str, kind: str, phases: int = 1, manufacturer: str = ""
) -> Meter:
    """Take a meter into a unit's stock."""
    require(actor, "customers.add_meter", unit=unit)
    check_unit_current(unit)
    meter = Meter(
        serial=normalise_code(serial), unit=unit, kind=kind, phases=phases, manufacturer=manufacturer
    )
    meter.full_clean(validate_constraints=False)
    if Meter.objects.filter(serial=meter.serial).exists():
        raise ValidationError({"serial": _("A meter with serial %(s)s exists.") % {"s": meter.serial}})
    meter.save()
    return meter


# The most a meter's register reads (kWh; the removal register's column holds it, and the install register's the
# same), and the words refusing a register above it: the meter moves below and the readings
# (``billing.rules.register_refusal``) refuse the same registers with the same message.
LARGEST_REGISTER = MeterAssignment.largest_register("reading_at_removal")
REGISTER_ABOVE_LARGEST = gettext_lazy(
    "A meter's register reads at most %(max)s kWh; %(r)s cannot be its reading: check the digits."
)


def _check_register(reading: int, *, column: str) -> None:
    """A meter's register at install or removal, refused under ``reading`` unless its column (``column`` of
    ``MeterAssignment``) holds it: never negative, never above ``MeterAssignment.largest_register``, so that
    PostgreSQL neither refuses the row nor, binding on the server, wraps the number, and SQLite keeps nothing
    PostgreSQL could not (a digit too many typed on a register, caught here, would otherwise bound every later
    reading and the removal of the meter)."""
    if reading < 0:
        raise ValidationError({"reading": _("A reading cannot be negative.")})
    largest = MeterAssignment.largest_register(column)
    if reading > largest:
        raise ValidationError({"reading": str(REGISTER_ABOVE_LARGEST) % {"max": largest, "r": reading}})


@transaction.atomic
def meter_install(
    *, actor, meter: Meter, contract: Contract, at: dt.datetime, reading: int
) -> MeterAssignment:
    """Hang a meter on a contract from ``at``, with its reading then.

    A contract has one meter at a time and a meter one contract at a time, over the whole history: the
    install comes after the meter's last removal and after the removal of the contract's previous meter,
    within the contract's dates. The actor changes both the meter (its unit) and the contract (its
    customer's unit).
    """
    require(actor, "customers.change_meter", unit=meter.unit_id)
    require(actor, "customers.change_contract", unit=contract.customer.unit_id)
    contract = Contract.objects.select_for_update(of=("self",)).select_related("customer").get(pk=contract.pk)
    meter = Meter.objects.select_for_update().get(pk=meter.pk)
    if meter.status != MeterStatus.IN_STOCK:
        raise ValidationError(
            _("Meter %(s)s is not in stock (it is %(st)s).")
            % {"s": meter.serial, "st": MeterStatus(meter.status).label}
        )
    _check_register(reading, column="reading_at_install")
    rules.check_move_moment(at)
    if contract.status == ContractStatus.TERMINATED:
        raise ValidationError(_("A meter cannot be installed on a terminated contract."))
    current = (
        MeterAssignment.objects.filter(contract=contract, removed_at__isnull=True)
        .select_related("meter")
        .first()
    )
    if current is not None:
        raise ValidationError(
            {
                "contract": _("Contract %(c)s already has meter %(s)s installed; remove it first.")
                % {"c": contract.number, "s": current.meter.serial}
            }
        )
    if timezone.localdate(at) < contract.start_date:
        raise ValidationError(
            {
                "at": _("A meter is installed while its contract runs: contract %(c)s starts on %(start)s.")
                % {"c": contract.number, "start": contract.start_date.strftime("%d/%m/%Y")}
            }
        )
    removed = MeterAssignment.objects.filter(removed_at__isnull=False).order_by("-removed_at")
    last_of_meter = removed.filter(meter=meter).select_related("contract").first()
    until = last_of_meter.removed_at if last_of_meter is not None else None
    if last_of_meter is not None and until is not None and at < until:
        raise ValidationError(
            {
                "at": _("Meter %(s)s served contract %(c)s until %(at)s; it cannot be installed before then.")
                % {
                    "s": meter.serial,
                    "c": last_of_meter.contract.number,
                    "at": _moment(until),
                }
            }
        )
    removal_reading = last_of_meter.reading_at_removal if last_of_meter is not None else None
    # A meter back from stock kept its register (a faulty one never returns to stock).
    if last_of_meter is not None and removal_reading is not None and reading < removal_reading:
        raise ValidationError(
            {
                "reading": _("Meter %(s)s came off contract %(c)s reading %(r)s kWh; its register cannot read less now.")
                % {"s": meter.serial, "c": last_of_meter.contract.number, "r": removal_reading}
            }
        )
    last_of_contract = removed.filter(contract=contract).select_related("meter").first()
    until = last_of_contract.removed_at if last_of_contract is not None else None
    if last_of_contract is not None and until is not None and at < until:
        raise ValidationError(
            {
                "at": _("Contract %(c)s had meter %(s)s until %(at)s; a new meter is installed after that.")
                % {
                    "c": contract.number,
                    "s": last_of_contract.meter.serial,
                    "at": _moment(until),
                }
            }
        )
    assignment = MeterAssignment.objects.create(
        meter=meter, contract=contract, installed_at=at, reading_at_install=reading
    )
    meter.status = MeterStatus.INSTALLED
    meter.save(update_fields=["status"])
    _event(
        contract.customer,
        CustomerEventKind.METER_INSTALLED,
        actor,
        after={"meter": meter.serial, "contract": contract.number, "reading": reading, "at": at.isoformat()},
    )
    return assignment


def _last_reading(assignment: MeterAssignment):
    """The current reading of the latest month read on the meter while it served the assignment's contract, or
    None. An estimate is left out: only a real register shows what the meter read, and a removal register
    below an estimate that overshot is taken (billing trues the estimate up to it, as the next real reading
    would: ``billing.services._true_up_estimate``).

    Readings belong to billing, above this app: the model is looked up by name, never imported.
    """
    try:
        reading_model = apps.get_model("billing", "MeterReading")
    except LookupError:
        return None
    return (
        reading_model.objects.filter(
            meter_id=assignment.meter_id,
            contract_id=assignment.contract_id,
            period__gte=timezone.localdate(assignment.installed_at).replace(day=1),
        )
        .exclude(status="superseded")
        .exclude(source="estimated")
        .order_by("-period", "-taken_at", "-id")
        .first()
    )


def _read_since(reading) -> tuple[dt.datetime, str]:
    """From when the register of ``reading`` was on the meter, and how to say it.

    A reading taken within its month (or before) gives the moment of the read; one keyed in after its month
    (its ``taken_at`` is when it was entered) vouches only for the month.
    """
    month_start = timezone.make_aware(dt.datetime.combine(reading.period, dt.time()))
    next_month = (reading.period.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    if reading.taken_at < timezone.make_aware(dt.datetime.combine(next_month, dt.time())):
        return reading.taken_at, _moment(reading.taken_at)
    return month_start, reading.period.strftime("%m/%Y")


@transaction.atomic
def meter_remove(
    *, actor, meter: Meter, at: dt.datetime, reading: int, reason: str, faulty: bool = False
) -> MeterAssignment:
    """Take a meter off its contract at ``at`` with its last reading; back to stock, or faulty."""
    require(actor, "customers.change_meter", unit=meter.unit_id)
    reason = typed_text(reason, field="reason", limit=column_length(MeterAssignment, "removal_reason"))
    meter = Meter.objects.select_for_update().get(pk=meter.pk)
    assignment = (
        MeterAssignment.objects.select_for_update().filter(meter=meter, removed_at__isnull=True).first()
    )
    if assignment is None:
        raise ValidationError(_("Meter %(s)s is not installed.") % {"s": meter.serial})
    rules.check_move_moment(at)
    if at < assignment.installed_at:
        raise ValidationError({"at": _("A meter cannot be removed before it was installed.")})
    _check_register(reading, column="reading_at_removal")
    if reading < assignment.reading_at_install and not faulty:
        raise ValidationError({"reading": _("The removal reading is below the reading at install.")})
    last = _last_reading(assignment)
    if last is not None:
        read_at, read_when = _read_since(last)
        if at < read_at:
            raise ValidationError(
                {
                    "at": _("Meter %(s)s was read on %(at)s; it cannot be removed before that reading.")
                    % {"s": meter.serial, "at": read_when}
                }
            )
        if reading < last.value and not faulty:
            raise ValidationError(
                {
                    "reading": _(
                        "The removal reading %(r)s is below the meter's last reading, %(last)s kWh for %(period)s."
                    )
                    % {"r": reading, "last": last.value, "period": last.period.strftime("%m/%Y")}
                }
            )
    assignment.removed_at = at
    assignment.reading_at_removal = reading
    assignment.removal_reason = reason
    assignment.save(update_fields=["removed_at", "reading_at_removal", "removal_reason"])
    meter.status = MeterStatus.FAULTY if faulty else MeterStatus.IN_STOCK
    meter.save(update_fields=["status"])
    _event(
        assignment.contract.customer,
        CustomerEventKind.METER_REMOVED,
        actor,
        after={"meter": meter.serial, "reading": reading, "at": at.isoformat()},
        reason=reason,
    )
    return assignment


@transaction.atomic
def meter_replace(
    *,
    actor,
    contract: Contract,
    at: dt.datetime,
    removal_reading: int,
    reason: str,
    faulty: bool = False,
    new_meter: Meter,
    install_reading: int,
) -> MeterAssignment:
    """Swap a contract's meter at ``at``: the meter on it comes off with its final reading (``meter_remove``),
    back to stock or faulty, and ``new_meter``, from stock, goes on with its own register (``meter_install``).

    Both moves or neither: a refusal of the install (the new meter is not in stock, belongs to a unit the
    actor does not serve…) leaves the old meter on its contract. The refusals name the fields ``at``,
    ``removal_reading``, ``install_reading``, ``reason`` and ``new_meter``.
    """
    require(actor, "customers.change_contract", unit=contract.customer.unit_id)
    contract = Contract.objects.select_for_update(of=("self",)).select_related("customer").get(pk=contract.pk)
    current = (
        MeterAssignment.objects.filter(contract=contract, removed_at__isnull=True)
        .select_related("meter")
        .first()
    )
    if current is None:
        raise ValidationError(
            _("Contract %(c)s has no meter installed; install one instead of replacing.")
            % {"c": contract.number}
        )
    if new_meter.pk == current.meter_id:
        raise ValidationError(
            {
                "new_meter": _("Meter %(s)s is the one being taken off; choose another meter.")
                % {"s": new_meter.serial}
            }
        )
    try:
        meter_remove(
            actor=actor, meter=current.meter, at=at, reading=removal_reading, reason=reason, faulty=faulty
        )
    except ValidationError as exc:
        raise renamed(exc, {"reading": "removal_reading"}) from None
    try:
        return meter_install(actor=actor, meter=new_meter, contract=contract, at=at, reading=install_reading)
    except ValidationError as exc:
        raise renamed(exc, {"reading": "install_reading", "contract": "new_meter"}) from None


# Search statistics ------------------------------------------------------------------------------------

SEARCH_SAMPLE_ROWS = 30_000


def search_statistics_refresh(*, sample_rows: int = SEARCH_SAMPLE_ROWS) -> int:
    """Recount how common each trigram of ``search_text`` is, from a sample of about ``sample_rows`` rows.

    PostgreSQL only (the statistics steer the trigram index, which SQLite does not have); returns the
    number of trigrams stored. Idempotent: it replaces the previous counts in one transaction.
    """
    from django.db import connection

    from core import db
    from customers.models import SearchTrigram

    if not db.is_postgres():
        return 0
    total = db.estimated_row_count(Customer._meta.db_table) or Customer.objects.count()
    if total == 0:
        SearchTrigram.objects.all().delete()
        return 0
    percent = min(100.0, 100.0 * sample_rows / total)
    with transaction.atomic(), connection.cursor() as cursor:
        # Two refreshes at once (the daily job beside the command) take turns: the second recounts after the
        # first has committed, instead of failing on the trigrams the first inserted. Readers are not blocked.
        cursor.execute("LOCK TABLE customers_searchtrigram IN SHARE ROW EXCLUSIVE MODE")
        cursor.execute("DELETE FROM customers_searchtrigram")
        cursor.execute(
            "WITH sample AS (SELECT search_text FROM customers_customer TABLESAMPLE SYSTEM (%s) REPEATABLE (1)), "
            "n AS (SELECT GREATEST(count(*), 1)::float AS rows FROM sample) "
            "INSERT INTO customers_searchtrigram (trigram, share) "
            "SELECT t, count(*) / (SELECT rows FROM n) FROM sample, unnest(show_trgm(search_text)) AS t "
            "WHERE length(t) = 3 GROUP BY t",
            [percent],
        )
        return cursor.rowcount
