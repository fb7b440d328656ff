"""Import and export columns of customers, contracts and meters: natural keys only, rows written through
``customers.services`` (see ``core.exports.ServiceResource``)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import connections
from django.db.models import Case, CharField, F, OuterRef, StringAgg, Subquery, Value, When
from django.db.models.functions import Cast, Concat, LPad
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from import_export import fields, widgets

from core.db import InValues
from core.errors import renamed
from core.exports import (
    ChoiceWidget,
    DayWidget,
    MomentWidget,
    ScopedNaturalKeyWidget,
    ServiceResource,
    UpperCodeWidget,
    WholeNumberWidget,
    YesNoWidget,
    text,
)
from crm.models import Unit
from customers import privacy, services
from customers.models import (
    Contract,
    ContractStatus,
    Customer,
    CustomerPhone,
    Meter,
    MeterAssignment,
    MeterStatus,
)
from customers.normalise import InvalidPhone, normalise_phone, split_phones

PHONE_KEY_WIDTH = 21  # an exported phone's sort key where the database cannot order an aggregate: 0/1 and the id


def unit_field() -> fields.Field:
    return fields.Field(
        attribute="unit",
        column_name="unit",
        widget=ScopedNaturalKeyWidget(Unit, "code", label=gettext_lazy("unit")),
    )


class PhonesWidget(widgets.Widget):
    """The phones of a cell, normalised, in the order written, each once; a number as exported to somebody
    who sees only its last digits is left out (it is already there). A number that is not one is an error
    of its row, listed with the row's other bad cells."""

    def clean(self, value, row=None, **kwargs):
        phones, bad = [], []
        for raw in split_phones(value):
            if privacy.is_masked(raw):
                continue
            try:
                number = normalise_phone(raw)
            except InvalidPhone as exc:
                bad.append(f"{raw}: {exc}")
                continue
            if number not in phones:
                phones.append(number)
        if bad:
            raise ValueError("; ".join(bad))
        return phones


class CustomerResource(ServiceResource):
    """Customers by code. A new row is registered by ``customer_create`` (a blank code takes the unit's
    next one), an existing one changed by ``customer_update``; phones are added, never removed. The nuisance
    flag is set on the customer card only."""

    code = fields.Field(attribute="code", column_name="code", widget=UpperCodeWidget())
    unit = unit_field()
    phones = fields.Field(column_name="phones", readonly=True, widget=PhonesWidget())
    is_nuisance = fields.Field(
        attribute="is_nuisance", column_name="is_nuisance", widget=YesNoWidget(), readonly=True
    )
    created_at = fields.Field(
        attribute="created_at", column_name="created_at", widget=MomentWidget(), readonly=True
    )
    # When the row was last changed, as exported: a file imported back refuses a row whose customer somebody
    # changed since (their change would be put back), as the customer's page does.
    updated_at = fields.Field(
        attribute="updated_at", column_name="updated_at", widget=MomentWidget(), readonly=True
    )

    optional_key_columns = ("code",)
    export_select_related = ("unit",)
    export_reads = ("national_id", "phone_list")  # dehydrate_national_id, dehydrate_phones
    column_labels = {"phones": gettext_lazy("phones")}

    class Meta(ServiceResource.Meta):
        model = Customer
        fields = (
            "code", "unit", "full_name", "national_id", "email", "street", "ward", "district", "province",
            "customer_type", "households", "phones", "is_nuisance", "created_at", "updated_at",
        )  # fmt: skip
        import_id_fields = ("code",)

    def __init__(self, user=None, **kwargs):
        super().__init__(user=user, **kwargs)
        self.seen = privacy.visibility(user)
        self.changed_here: set[int] = set()  # customers an earlier row of this file changed

    def keeps_value(self, field, value) -> bool:
        # A masked national ID (an export of somebody who sees only its last digits) leaves it as it is.
        return super().keeps_value(field, value) or privacy.is_masked(value)

    def sets_national_id(self, row) -> bool:
        """Whether ``row`` types a national ID (not blank, not masked): for an existing customer, a change asked
        of ``customer_update``, whatever the number is."""
        return self.sets(row, "national_id")

    def sets(self, row, name: str) -> bool:
        """Whether ``row`` gives field ``name`` a value (its column is there, its cell is not one that keeps the
        record's value): the fields an update of an existing customer asks ``customer_update`` to set."""
        field = self.fields.get(name)
        return field is not None and field.column_name in row and not self.keeps_value(field, row[field.column_name])

    def dehydrate_national_id(self, customer) -> str:
        return self.seen.national_id(customer.national_id)

    def annotate_export(self, queryset):
        # The phones of each row joined by the database (a subquery per row, no query per chunk), shown masked
        # or whole per cell by ``dehydrate_phones``. Primary first, then in the order they were added: by the
        # aggregate's ORDER BY where the database has one (PostgreSQL), else each number comes with its sort
        # key (SQLite before 3.44), which ``_phone_numbers`` sorts by and drops.
        if connections[queryset.db].features.supports_aggregate_order_by_clause:
            joined = StringAgg("number", delimiter=Value(","), order_by=("-is_primary", "id"))
            self.phone_keys = False
        else:
            key = Concat(
                Case(When(is_primary=True, then=Value("0")), default=Value("1")),
                LPad(Cast("id", CharField()), PHONE_KEY_WIDTH - 1, Value("0")),
                "number",
                output_field=CharField(),
            )
            joined = StringAgg(key, delimiter=Value(","))
            self.phone_keys = True
        phones = CustomerPhone.objects.filter(customer=OuterRef("pk")).values("customer").annotate(
            numbers=joined
        )
        return queryset.annotate(phone_list=Subquery(phones.values("numbers")))

    def _phone_numbers(self, joined: str | None) -> list[str]:
        if not joined:
            return []
        numbers = joined.split(",")
        if getattr(self, "phone_keys", False):
            numbers = [keyed[PHONE_KEY_WIDTH:] for keyed in sorted(numbers)]
        return numbers

    def dehydrate_phones(self, customer) -> str:
        if customer.pk is None:
            return ""
        try:
            joined = customer.phone_list  # read with the row (``annotate_export``)
        except AttributeError:
            numbers = list(customer.phones.order_by("-is_primary", "id").values_list("number", flat=True))
        else:
            numbers = self._phone_numbers(joined)
        return ", ".join(map(self.seen.phone, numbers))

    def check_row(self, instance, row, *, new, before):
        errors = {}
        if new and instance.unit_id is None:
            errors["unit"] = [_("Give the code of the customer's unit.")]
        if not new and instance.unit_id != before["unit"].pk:
            errors["unit"] = [_("A customer cannot move to another unit by an import.")]
        exported = None if new else self.cell(row, "updated_at")
        if exported is not None and instance.pk not in self.changed_here and _changed_since(instance, exported):
            errors["updated_at"] = [
                _("Somebody changed this customer at %(at)s, after the file was exported; nothing of this row "
                  "was written. Export the customer again and make the change there.")
                % {"at": timezone.localtime(instance.updated_at).strftime("%d/%m/%Y %H:%M:%S")}
            ]  # fmt: skip
        nuisance = self.cell(row, "is_nuisance")
        if nuisance is not None and nuisance != instance.is_nuisance:
            errors["is_nuisance"] = [
                _("The nuisance flag is set and cleared on the customer card, not by an import.")
            ]
        if not new and self.sets_national_id(row):
            try:  # refused by the permission alone, whether or not the number is the customer's
                privacy.check_national_id_change(self.user)
            except ValidationError as exc:
                errors.update(exc.message_dict)
        phones = self.cell(row, "phones") or []
        if errors:
            raise ValidationError(errors)
        if new:
            return {"phones": phones}
        have = set(instance.phones.values_list("number", flat=True))
        added = [p for p in phones if p not in have]
        return {"phones": added, "extra": bool(added)}

    def create_object(self, instance, row, plan):
        return services.customer_create(
            actor=self.user,
            unit=instance.unit,
            code=instance.code or None,
            full_name=text(instance.full_name),
            national_id=text(instance.national_id),
            email=text(instance.email),
            street=text(instance.street),
            ward=text(instance.ward),
            district=text(instance.district),
            province=text(instance.province),
            customer_type=text(instance.customer_type) or "residential",
            households=1 if instance.households is None else instance.households,
            phones=plan["phones"],
        )

    def update_object(self, instance, row, plan):
        # Only the fields the row sets (a cell kept as it is changes nothing, ``keeps_value``), each as the row
        # gives it, and only if nobody changed the customer since the import read it: a change saved meanwhile
        # (another clerk, the API) is never put back, the row is refused instead (``customer_update``'s check).
        changes = {name: getattr(instance, name) for name in services.EDITABLE_FIELDS if self.sets(row, name)}
        customer = instance
        if changes:
            try:
                customer = services.customer_update(
                    actor=self.user, customer=instance, changes=changes, reason=_("Import"),
                    seen_updated_at=instance.updated_at,
                )  # fmt: skip
            except ValidationError as exc:
                if getattr(exc, "code", None) != "stale":
                    raise
                raise ValidationError({"updated_at": [_changed_meanwhile(instance)]}, code="stale") from exc
        self.changed_here.add(customer.pk)
        for number in plan["phones"]:
            services.customer_add_phone(actor=self.user, customer=customer, number=number)
        if plan["phones"]:
            # A phone added moved its ``updated_at``: a later row of this customer in the file sees this write.
            customer.refresh_from_db(fields=["updated_at"])
        return customer


def _changed_since(customer, exported) -> bool:
    """Whether ``customer`` was changed after the moment its row was exported, compared to the precision the
    file kept: the second as exported, the minute when a spreadsheet program dropped the seconds."""
    changed = customer.updated_at.replace(microsecond=0)
    if exported.second == 0:
        changed = changed.replace(second=0)
    return changed > exported


def _changed_meanwhile(customer) -> str:
    """The refusal of a row whose customer somebody changed after the import read it, with the time of it."""
    changed = Customer.objects.filter(pk=customer.pk).values_list("updated_at", flat=True).first()
    return _(
        "Somebody changed this customer at %(at)s, while this file was being imported; nothing of this row was "
        "written. Export the customer again and make the change there."
    ) % {"at": timezone.localtime(changed or customer.updated_at).strftime("%d/%m/%Y %H:%M:%S")}


class ContractResource(ServiceResource):
    """Contracts by number, signed by ``contract_create`` (a blank number takes the customer's next one).
    A contract is new (pending or active) or left as it is: its status moves only through its actions."""

    number = fields.Field(attribute="number", column_name="number", widget=UpperCodeWidget())
    customer = fields.Field(
        attribute="customer",
        column_name="customer",
        widget=ScopedNaturalKeyWidget(Customer, "code", label=gettext_lazy("customer")),
    )
    status = fields.Field(
        attribute="status", column_name="status", widget=ChoiceWidget(ContractStatus.choices)
    )
    start_date = fields.Field(attribute="start_date", column_name="start_date", widget=DayWidget())
    end_date = fields.Field(attribute="end_date", column_name="end_date", widget=DayWidget(), readonly=True)

    optional_key_columns = ("number",)
    export_select_related = ("customer",)

    class Meta(ServiceResource.Meta):
        model = Contract
        fields = ("number", "customer", "tariff_category", "purpose", "start_date", "end_date", "status")
        import_id_fields = ("number",)

    def check_row(self, instance, row, *, new, before):
        errors = {}
        end_date = self.cell(row, "end_date")
        if new:
            if instance.customer_id is None:
                errors["customer"] = [_("Give the customer code.")]
            if instance.status and instance.status not in (ContractStatus.PENDING, ContractStatus.ACTIVE):
                errors["status"] = [
                    _(
                        "A new contract is pending or active; suspend or terminate it with the contract actions."
                    )
                ]
            if end_date is not None:
                errors["end_date"] = [_("The end date is set when the contract is terminated.")]
        else:
            errors.update(
                self.unchangeable(
                    instance,
                    before,
                    ["customer", "tariff_category", "purpose", "start_date"],
                    _("A signed contract cannot be changed by an import."),
                )
            )
            if instance.status != before["status"]:
                errors["status"] = [
                    _("A contract's status changes through the contract actions, not by an import.")
                ]
            if end_date is not None and end_date != before["end_date"]:
                errors["end_date"] = [_("The end date is set when the contract is terminated.")]
        if errors:
            raise ValidationError(errors)
        return {}

    def create_object(self, instance, row, plan):
        return services.contract_create(
            actor=self.user,
            customer=instance.customer,
            number=instance.number or None,
            tariff_category=text(instance.tariff_category) or "residential",
            purpose=text(instance.purpose),
            start_date=instance.start_date,
            status=instance.status or ContractStatus.PENDING,
        )


class MeterResource(ServiceResource):
    """Meters by serial, taken into stock by ``meter_register`` and, when the row names a contract with the
    install time and reading, hung on it by ``meter_install``. A meter's status follows those services."""

    serial = fields.Field(attribute="serial", column_name="serial", widget=UpperCodeWidget())
    unit = unit_field()
    status = fields.Field(
        attribute="status", column_name="status", widget=ChoiceWidget(MeterStatus.choices), readonly=True
    )
    contract = fields.Field(
        column_name="contract",
        readonly=True,
        widget=ScopedNaturalKeyWidget(Contract, "number", label=gettext_lazy("contract")),
    )
    installed_at = fields.Field(column_name="installed_at", readonly=True, widget=MomentWidget())
    reading_at_install = fields.Field(
        column_name="reading_at_install", readonly=True, widget=WholeNumberWidget()
    )

    export_select_related = ("unit",)
    export_reads = ()  # load_chunk reads the pk
    column_labels = {
        "contract": gettext_lazy("contract"),
        "installed_at": gettext_lazy("installed at"),
        "reading_at_install": gettext_lazy("reading at installation"),
    }

    class Meta(ServiceResource.Meta):
        model = Meter
        fields = (
            "serial", "unit", "kind", "phases", "manufacturer", "status", "contract", "installed_at",
            "reading_at_install",
        )  # fmt: skip
        import_id_fields = ("serial",)

    def load_chunk(self, objects):
        current = {
            a.meter_id: a
            for a in MeterAssignment.objects.filter(
                InValues(F("meter_id"), [m.pk for m in objects]), removed_at__isnull=True
            ).select_related("contract")
        }
        for meter in objects:
            meter.open_assignment = current.get(meter.pk)

    def _open_assignment(self, meter):
        if meter.pk is None:
            return None
        if hasattr(meter, "open_assignment"):
            return meter.open_assignment
        return meter.assignments.filter(removed_at__isnull=True).select_related("contract").first()

    def dehydrate_contract(self, meter):
        assignment = self._open_assignment(meter)
        return assignment.contract.number if assignment else ""

    def dehydrate_installed_at(self, meter):
        assignment = self._open_assignment(meter)
        return self.fields["installed_at"].widget.render(assignment.installed_at) if assignment else ""

    def dehydrate_reading_at_install(self, meter):
        assignment = self._open_assignment(meter)
        return assignment.reading_at_install if assignment else ""

    def check_row(self, instance, row, *, new, before):
        errors = {}
        try:
            contract = self.cell(row, "contract")
            installed_at = self.cell(row, "installed_at")
            reading = self.cell(row, "reading_at_install")
            status = self.cell(row, "status") or ""
        except ValidationError as exc:
            raise ValidationError(exc.message_dict) from exc
        install = None
        if new and instance.unit_id is None:
            errors["unit"] = [_("Give the code of the meter's unit.")]
        if not new:
            errors.update(
                self.unchangeable(
                    instance,
                    before,
                    ["unit", "kind", "phases", "manufacturer"],
                    _("A registered meter cannot be changed by an import."),
                )
            )
        current = None if new else self._open_assignment(instance)
        if contract is not None:
            if current is not None and current.contract_id == contract.pk:
                # Already hung on that contract: nothing to do, unless the row says otherwise of that installation
                # (compared as the file writes it). Its record is kept once: a correction is a move, not an import.
                render = self.fields["installed_at"].widget.render
                if installed_at is not None and render(installed_at) != render(current.installed_at):
                    errors["installed_at"] = [_("The installation is recorded once: this meter was installed on "
                                                "contract %(c)s at %(at)s.") % {"c": contract.number,
                                                                               "at": render(current.installed_at)}]
                if reading is not None and reading != current.reading_at_install:
                    errors["reading_at_install"] = [_("The installation is recorded once: this meter read %(r)s "
                                                      "when it was installed.") % {"r": current.reading_at_install}]
            elif current is not None:
                errors["contract"] = [
                    _("Meter %(s)s is installed on contract %(c)s; remove it first.")
                    % {"s": instance.serial, "c": current.contract.number}
                ]
            else:
                occupant = (
                    MeterAssignment.objects.filter(contract=contract, removed_at__isnull=True)
                    .select_related("meter")
                    .first()
                )
                if occupant is not None:
                    errors["contract"] = [
                        _("Contract %(c)s already has meter %(s)s installed; remove it first.")
                        % {"c": contract.number, "s": occupant.meter.serial}
                    ]
                if installed_at is None:
                    errors["installed_at"] = [_("Give the time the meter was installed.")]
                if reading is None:
                    errors["reading_at_install"] = [_("Give the meter's reading at install.")]
                install = {"contract": contract, "at": installed_at, "reading": reading}
        elif installed_at is not None or reading is not None:
            errors["contract"] = [_("Give the contract the meter is installed on.")]
        expected = MeterStatus.INSTALLED if install else (MeterStatus.IN_STOCK if new else before["status"])
        if status and status != expected:
            errors["status"] = [
                _("A meter's status follows its installation and removal; an import cannot set it.")
            ]
        if errors:
            raise ValidationError(errors)
        return {"install": install, "extra": install is not None}

    def create_object(self, instance, row, plan):
        kwargs = {} if instance.phases is None else {"phases": instance.phases}
        meter = services.meter_register(
            actor=self.user,
            unit=instance.unit,
            serial=instance.serial,
            kind=text(instance.kind),
            manufacturer=text(instance.manufacturer),
            **kwargs,
        )
        self._install(meter, plan)
        meter.refresh_from_db(fields=["status"])
        return meter

    def update_object(self, instance, row, plan):
        self._install(instance, plan)
        return type(instance).objects.get(pk=instance.pk)

    # ``meter_install``'s arguments, as the file's columns name them (its refusals are told under the column).
    install_columns = {"at": "installed_at", "reading": "reading_at_install"}

    def _install(self, meter, plan):
        install = plan.get("install")
        if not install:
            return
        try:
            services.meter_install(
                actor=self.user,
                meter=meter,
                contract=install["contract"],
                at=install["at"],
                reading=install["reading"],
            )
        except ValidationError as exc:
            raise renamed(exc, self.install_columns) from None
