"""Customers, their phones, service agreements (contracts), meters and which meter served which contract when.

Every write goes through ``customers.services``; the constraints below are the part the database guarantees
whatever the path.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.backends.base.operations import BaseDatabaseOperations
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from core.text import NOTE_MAX_CHARS
from core.times import local_stamp
from crm.models import Unit
from crm.scoping import ScopedQuerySet
from customers.privacy import mask_phone

CUSTOMER_CODE_RE = r"^[A-Z]{2}[0-9]{11}$"
CUSTOMER_CODE_VALIDATOR = RegexValidator(
    CUSTOMER_CODE_RE,
    _("A customer code has 13 characters: the 6-character unit code and 7 digits, e.g. PE01000000123."),
)
NATIONAL_ID_RE = r"^([0-9]{9}|[0-9]{12})$"
NATIONAL_ID_VALIDATOR = RegexValidator(
    NATIONAL_ID_RE, _("A national ID has 12 digits (citizen ID) or 9 digits (old ID card).")
)
PHONE_RE = r"^\+84[1-9][0-9]{8,9}$"
METER_SERIAL_VALIDATOR = RegexValidator(
    r"^[A-Z0-9][A-Z0-9-]{3,19}$", _("A meter serial has 4 to 20 capital letters, digits or dashes.")
)


class CustomerType(models.TextChoices):
    RESIDENTIAL = "residential", _("Residential")
    BUSINESS = "business", _("Business")
    PRODUCTION = "production", _("Production")
    ADMINISTRATIVE = "administrative", _("Administrative")
    OTHER = "other", _("Other")


class CustomerQuerySet(ScopedQuerySet):
    scope_path = "unit"

    def nuisance(self):
        return self.filter(is_nuisance=True)


class Customer(models.Model):
    """A customer of the utility: who pays for the electricity at one address."""

    # Not a column: the primary phone, set by the readers that fetch it with the customer (intake, lookup).
    primary_phone: str | None

    code = models.CharField(_("customer code"), max_length=13, validators=[CUSTOMER_CODE_VALIDATOR])
    # Indexed by customers_unit_id_idx (unit, -id), whose leading column serves every lookup by unit.
    unit = models.ForeignKey(
        Unit, on_delete=models.PROTECT, related_name="customers", verbose_name=_("unit"), db_index=False
    )
    full_name = models.CharField(_("full name"), max_length=200)
    national_id = models.CharField(
        _("national ID"), max_length=12, blank=True, validators=[NATIONAL_ID_VALIDATOR]
    )
    email = models.EmailField(_("email"), blank=True)
    street = models.CharField(_("house number and street"), max_length=200)
    ward = models.CharField(_("ward or commune"), max_length=100)
    district = models.CharField(_("district"), max_length=100)
    province = models.CharField(_("province or city"), max_length=100)
    customer_type = models.CharField(
        _("customer type"), max_length=16, choices=CustomerType.choices, default=CustomerType.RESIDENTIAL
    )
    households = models.PositiveSmallIntegerField(
        _("households sharing the meter"), default=1, validators=[MinValueValidator(1)]
    )
    is_nuisance = models.BooleanField(_("nuisance caller"), default=False)
    nuisance_reason = models.TextField(_("why flagged as nuisance"), blank=True, max_length=NOTE_MAX_CHARS)
    nuisance_set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("flagged by"),
    )
    nuisance_set_at = models.DateTimeField(_("flagged at"), null=True, blank=True)
    # Folded (lower-case, accent-free) name and address, padded with spaces; written by the services.
    search_text = models.TextField(_("search text"), editable=False, default="")
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    objects = CustomerQuerySet.as_manager()

    class Meta:
        verbose_name = _("customer")
        verbose_name_plural = _("customers")
        permissions = [
            ("flag_nuisance", _("Can flag or clear a nuisance caller")),
            # Who sees these in full, and what the others see: customers.privacy.
            ("view_full_phone", _("Can see customers' phone numbers in full")),
            ("view_national_id", _("Can see and change customers' national ID numbers in full")),
        ]
        constraints = [
            models.UniqueConstraint(fields=["code"], name="customers_customer_code_unique"),
            # Digits only: a masked value (customers.privacy) can never be stored in its place.
            models.CheckConstraint(
                condition=Q(national_id="") | Q(national_id__regex=NATIONAL_ID_RE),
                name="customers_customer_national_id_form",
            ),
            models.CheckConstraint(
                condition=Q(code__regex=CUSTOMER_CODE_RE), name="customers_customer_code_form"
            ),
            models.CheckConstraint(condition=Q(households__gte=1), name="customers_customer_households_min"),
            models.CheckConstraint(
                condition=Q(customer_type__in=CustomerType.values), name="customers_customer_type_valid"
            ),
            models.CheckConstraint(
                condition=Q(is_nuisance=False, nuisance_set_at__isnull=True)
                | Q(is_nuisance=True, nuisance_set_at__isnull=False) & ~Q(nuisance_reason=""),
                name="customers_customer_nuisance_complete",
            ),
            models.CheckConstraint(condition=~Q(full_name=""), name="customers_customer_name_present"),
        ]
        indexes = [
            # The changelist: a unit's customers, newest first, optionally by type.
            models.Index(fields=["unit", "-id"], name="customers_unit_id_idx"),
            models.Index(fields=["unit", "customer_type", "-id"], name="customers_unit_type_id_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.code} – {self.full_name}"

    @property
    def street_address(self) -> str:
        """Street, ward and district: what an agent reads to confirm a caller (the lists show it)."""
        return ", ".join(p for p in (self.street, self.ward, self.district) if p)

    @property
    def address(self) -> str:
        return ", ".join(p for p in (self.street_address, self.province) if p)


class CustomerPhoneQuerySet(ScopedQuerySet):
    scope_path = "customer__unit"


class CustomerPhone(models.Model):
    """A phone number a customer is reached on, stored as +84…; one customer may have several."""

    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="phones", verbose_name=_("customer")
    )
    number = models.CharField(
        _("phone number"),
        max_length=13,
        validators=[RegexValidator(PHONE_RE, _("Stored as +84 followed by 9 or 10 digits."))],
    )
    is_primary = models.BooleanField(_("primary"), default=False)
    label = models.CharField(_("label"), max_length=50, blank=True)

    objects = CustomerPhoneQuerySet.as_manager()

    class Meta:
        verbose_name = _("customer phone")
        verbose_name_plural = _("customer phones")
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "number"], name="customers_phone_unique_per_customer"
            ),
            models.UniqueConstraint(
                fields=["customer"], condition=Q(is_primary=True), name="customers_phone_one_primary"
            ),
            models.CheckConstraint(condition=Q(number__regex=PHONE_RE), name="customers_phone_form"),
        ]
        indexes = [models.Index(fields=["number"], name="customers_phone_number_idx")]

    def __str__(self) -> str:
        # A phone's name (page titles, the admin's log, deletion pages) never shows the whole number: the
        # pages that show it ask customers.privacy whether the reader may see it.
        return mask_phone(self.number)


class TariffCategory(models.TextChoices):
    RESIDENTIAL = "residential", _("Residential (tiered)")
    BUSINESS = "business", _("Business")
    PRODUCTION = "production", _("Production")
    ADMINISTRATIVE = "administrative", _("Administrative and public services")


class ContractStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    ACTIVE = "active", _("Active")
    SUSPENDED = "suspended", _("Suspended")
    TERMINATED = "terminated", _("Terminated")


class ContractQuerySet(ScopedQuerySet):
    scope_path = "customer__unit"

    def active(self):
        return self.filter(status=ContractStatus.ACTIVE)


class Contract(models.Model):
    """A service agreement (*hợp đồng mua bán điện*) between the utility and a customer."""

    number = models.CharField(_("contract number"), max_length=20)
    customer = models.ForeignKey(
        Customer, on_delete=models.PROTECT, related_name="contracts", verbose_name=_("customer")
    )
    tariff_category = models.CharField(
        _("tariff category"),
        max_length=16,
        choices=TariffCategory.choices,
        default=TariffCategory.RESIDENTIAL,
    )
    purpose = models.CharField(_("purpose of use"), max_length=200)
    start_date = models.DateField(_("start date"))
    end_date = models.DateField(_("end date"), null=True, blank=True)
    status = models.CharField(
        _("status"), max_length=12, choices=ContractStatus.choices, default=ContractStatus.PENDING
    )

    objects = ContractQuerySet.as_manager()

    class Meta:
        verbose_name = _("contract")
        verbose_name_plural = _("contracts")
        constraints = [
            models.UniqueConstraint(fields=["number"], name="customers_contract_number_unique"),
            models.CheckConstraint(
                condition=Q(end_date__isnull=True) | Q(end_date__gte=models.F("start_date")),
                name="customers_contract_dates",
            ),
            models.CheckConstraint(
                condition=Q(status__in=ContractStatus.values), name="customers_contract_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(tariff_category__in=TariffCategory.values), name="customers_contract_tariff_valid"
            ),
            models.CheckConstraint(
                condition=~Q(status=ContractStatus.TERMINATED) | Q(end_date__isnull=False),
                name="customers_contract_terminated_has_end",
            ),
        ]

    def __str__(self) -> str:
        return self.number


class MeterKind(models.TextChoices):
    MECHANICAL = "mechanical", _("Mechanical")
    ELECTRONIC = "electronic", _("Electronic")
    REMOTE_READ = "remote_read", _("Remote-read electronic")


class MeterStatus(models.TextChoices):
    IN_STOCK = "in_stock", _("In stock")
    INSTALLED = "installed", _("Installed")
    FAULTY = "faulty", _("Faulty")
    RETIRED = "retired", _("Retired")


class MeterQuerySet(ScopedQuerySet):
    scope_path = "unit"

    def remote_read(self):
        return self.filter(kind=MeterKind.REMOTE_READ)


class Meter(models.Model):
    """An electricity meter, owned by a unit whether installed or in stock."""

    serial = models.CharField(_("serial number"), max_length=20, validators=[METER_SERIAL_VALIDATOR])
    unit = models.ForeignKey(
        Unit, on_delete=models.PROTECT, related_name="meters", verbose_name=_("unit"), db_index=False
    )  # indexed by customers_meter_unit_id_idx
    kind = models.CharField(_("kind"), max_length=12, choices=MeterKind.choices)
    phases = models.PositiveSmallIntegerField(
        _("phases"), choices=[(1, _("Single-phase")), (3, _("Three-phase"))]
    )
    status = models.CharField(
        _("status"), max_length=10, choices=MeterStatus.choices, default=MeterStatus.IN_STOCK
    )
    manufacturer = models.CharField(_("manufacturer"), max_length=100, blank=True)

    objects = MeterQuerySet.as_manager()

    class Meta:
        verbose_name = _("meter")
        verbose_name_plural = _("meters")
        constraints = [
            models.UniqueConstraint(fields=["serial"], name="customers_meter_serial_unique"),
            models.CheckConstraint(condition=Q(phases__in=[1, 3]), name="customers_meter_phases_valid"),
            models.CheckConstraint(condition=Q(kind__in=MeterKind.values), name="customers_meter_kind_valid"),
            models.CheckConstraint(
                condition=Q(status__in=MeterStatus.values), name="customers_meter_status_valid"
            ),
        ]
        indexes = [models.Index(fields=["unit", "-id"], name="customers_meter_unit_id_idx")]

    def __str__(self) -> str:
        return self.serial

    @property
    def is_remote_read(self) -> bool:
        return self.kind == MeterKind.REMOTE_READ


class MeterAssignmentQuerySet(ScopedQuerySet):
    scope_path = "contract__customer__unit"

    def current(self):
        return self.filter(removed_at__isnull=True)


class MeterAssignment(models.Model):
    """Which meter served which contract from when to when, with the readings at install and removal."""

    meter = models.ForeignKey(
        Meter, on_delete=models.PROTECT, related_name="assignments", verbose_name=_("meter")
    )
    contract = models.ForeignKey(
        Contract,
        on_delete=models.PROTECT,
        related_name="meter_assignments",
        verbose_name=_("contract"),
        db_index=False,  # indexed by customers_assign_contract_idx (contract, -installed_at)
    )
    installed_at = models.DateTimeField(_("installed at"))
    reading_at_install = models.PositiveIntegerField(_("reading at install (kWh)"))
    removed_at = models.DateTimeField(_("removed at"), null=True, blank=True)
    reading_at_removal = models.PositiveIntegerField(_("reading at removal (kWh)"), null=True, blank=True)
    removal_reason = models.CharField(_("removal reason"), max_length=200, blank=True)

    objects = MeterAssignmentQuerySet.as_manager()

    class Meta:
        verbose_name = _("meter assignment")
        verbose_name_plural = _("meter assignments")
        constraints = [
            # A meter hangs on one contract at a time.
            models.UniqueConstraint(
                fields=["meter"], condition=Q(removed_at__isnull=True), name="customers_assignment_one_open"
            ),
            # A contract has one meter at a time (billing reads "the" meter of a contract).
            models.UniqueConstraint(
                fields=["contract"],
                condition=Q(removed_at__isnull=True),
                name="customers_assignment_one_open_per_contract",
            ),
            models.CheckConstraint(
                condition=Q(removed_at__isnull=True, reading_at_removal__isnull=True)
                | Q(removed_at__isnull=False, reading_at_removal__isnull=False),
                name="customers_assignment_removal_complete",
            ),
            models.CheckConstraint(
                condition=Q(removed_at__isnull=True) | Q(removed_at__gte=models.F("installed_at")),
                name="customers_assignment_dates",
            ),
        ]
        indexes = [models.Index(fields=["contract", "-installed_at"], name="customers_assign_contract_idx")]

    def __str__(self) -> str:
        return f"{self.meter} → {self.contract}"

    @classmethod
    def largest_register(cls, column: str) -> int:
        """The largest register (kWh) the column ``column`` (``reading_at_install``, ``reading_at_removal``)
        holds: the range of its type as PostgreSQL, the production database, keeps it (2,147,483,647 for a
        ``PositiveIntegerField``), so that it follows the column. SQLite takes any 64-bit number: it is held
        to the same bound, so that what one database keeps the other does too."""
        internal_type = cls._meta.get_field(column).get_internal_type()
        return BaseDatabaseOperations.integer_field_ranges[internal_type][1]


class CustomerEventKind(models.TextChoices):
    CREATED = "created", _("Created")
    UPDATED = "updated", _("Updated")
    NUISANCE_FLAGGED = "nuisance_flagged", _("Flagged as nuisance caller")
    NUISANCE_CLEARED = "nuisance_cleared", _("Nuisance flag cleared")
    PHONE_ADDED = "phone_added", _("Phone added")
    PHONE_REMOVED = "phone_removed", _("Phone removed")
    CONTRACT_CREATED = "contract_created", _("Contract created")
    CONTRACT_STATUS = "contract_status", _("Contract status changed")
    METER_INSTALLED = "meter_installed", _("Meter installed")
    METER_REMOVED = "meter_removed", _("Meter removed")


class CustomerEventQuerySet(ScopedQuerySet):
    scope_path = "customer__unit"


class CustomerEvent(models.Model):
    """One change to a customer's record: who, when, what before and after, and why. Never edited."""

    customer = models.ForeignKey(
        Customer,
        on_delete=models.CASCADE,
        related_name="events",
        verbose_name=_("customer"),
        db_index=False,  # indexed by customers_event_customer_idx (customer, -at)
    )
    kind = models.CharField(_("kind"), max_length=20, choices=CustomerEventKind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("by"),
    )
    at = models.DateTimeField(_("at"), auto_now_add=True)
    before = models.JSONField(_("before"), default=dict, blank=True)
    after = models.JSONField(_("after"), default=dict, blank=True)
    reason = models.TextField(_("reason"), blank=True)

    objects = CustomerEventQuerySet.as_manager()

    class Meta:
        verbose_name = _("customer event")
        verbose_name_plural = _("customer events")
        indexes = [models.Index(fields=["customer", "-at"], name="customers_event_customer_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} @ {local_stamp(self.at)}"


class DemoDataset(models.Model):
    """How many demo customers ``manage.py seed_demo`` has loaded for a seed, so a rerun loads only the rest."""

    seed = models.IntegerField(_("seed"), unique=True)
    customers = models.PositiveIntegerField(_("customers loaded"), default=0)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("demo dataset")
        verbose_name_plural = _("demo datasets")

    def __str__(self) -> str:
        return f"seed {self.seed}: {self.customers}"


class SearchTrigram(models.Model):
    """How common a trigram is in ``Customer.search_text`` (share of rows, from a sample).

    The lookup asks the trigram index for the rarest trigrams of what was typed and checks the rest on the
    rows they leave; these shares tell it which are rare. Refreshed by ``search_statistics_refresh``
    (after a bulk load and daily). PostgreSQL only; empty elsewhere.
    """

    trigram = models.CharField(_("trigram"), max_length=3, primary_key=True)
    share = models.FloatField(_("share of customers"))

    class Meta:
        verbose_name = _("search trigram")
        verbose_name_plural = _("search trigrams")

    def __str__(self) -> str:
        return f"{self.trigram!r}: {self.share:.4f}"
