"""Shared fixtures: the reference organisation, one staff member per role, customers in two units."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from billing import services as billing_services
from billing.models import Invoice, RebateBand, RebateProgramme
from crm.models import Role, Unit
from crm.reference_data import wards
from crm.services import export_log_record, organisation_load_reference, staff_create
from customers import services
from customers.models import MeterKind
from tickets import services as services_t
from tickets.models import Category
from tickets.services import catalogue_load_reference, ticket_open

_badges = itertools.count(1000)


@pytest.fixture(scope="session", autouse=True)
def no_session_left_on_the_test_database(django_db_setup, django_db_blocker):
    """On PostgreSQL the test database is dropped at the end, which fails while another session uses it. The
    browser tests' live server answers in threads of its own, and one of them can still hold an idle
    connection then; those sessions are ended before the drop, so the run leaves no test database behind."""
    yield
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture(autouse=True)
def language_of_the_settings():
    """Each test starts in the settings' language: a request that chose another one (``LocaleMiddleware``)
    leaves it active in the thread, and texts stored by services would follow it into the next test."""
    from django.conf import settings
    from django.utils import translation

    translation.activate(settings.LANGUAGE_CODE)
    yield
    translation.activate(settings.LANGUAGE_CODE)


@pytest.fixture(autouse=True)
def empty_shared_cache():
    """Each test starts with nothing in the shared cache of scopes, the catalogue and the throttles' counts: a
    test that turns the cache on must not read rows an earlier test's rolled-back transaction made."""
    from django.core.cache import caches

    for cache in caches.all():
        cache.clear()
    yield
    for cache in caches.all():
        cache.clear()


@pytest.fixture
def org(db):
    organisation_load_reference()
    return {
        "home": Unit.objects.get(code="PE0100"),  # EVNHCMC, Công ty Điện lực Sài Gòn
        "sibling": Unit.objects.filter(company__code="PE01").exclude(code="PE0100").order_by("code").first(),
        "other_company": Unit.objects.filter(company__code="PE02")
        .order_by("code")
        .first(),  # same corporation
        "other_corporation": Unit.objects.get(name="Điện lực Sơn Hòa").successor,  # EVNCPC, Phú Yên
    }


@pytest.fixture
def make_staff(db):
    def make(role: str, units=(), username: str | None = None):
        username = username or f"{role}-{next(_badges)}"
        return staff_create(
            actor=None,
            username=username,
            password="s3cret-pass-word",
            role=role,
            badge_number=str(next(_badges)),
            units=list(units),
            first_name="Test",
            last_name=role,
        )

    return make


@pytest.fixture
def staff(org, make_staff):
    """One user per role, all serving the home unit (the administrator serves none: sees everything)."""
    home = [org["home"]]
    return {
        Role.AGENT: make_staff(Role.AGENT, home),
        Role.SUPERVISOR: make_staff(Role.SUPERVISOR, home),
        Role.DISPATCHER: make_staff(Role.DISPATCHER, home),
        Role.FIELD_CREW: make_staff(Role.FIELD_CREW, home),
        Role.BILLING_CLERK: make_staff(Role.BILLING_CLERK, home),
        Role.MANAGER: make_staff(Role.MANAGER, home),
        Role.ADMINISTRATOR: make_staff(Role.ADMINISTRATOR, []),
    }


@pytest.fixture
def make_customer(org):
    counter = itertools.count(1)

    def make(
        unit=None,
        name="Nguyễn Văn An",
        street="12 Lê Lợi",
        ward=None,
        phones=("0903 123 456",),
        **kw,
    ):
        unit = unit or org["home"]
        if ward is None:  # the first ward of the unit's list (Phường Bến Nghé for the home unit)
            ward = (wards().get(unit.code) or ["Phường Bến Nghé"])[0]
        customer = services.customer_create(
            actor=None, unit=unit, full_name=name, street=street, ward=ward, phones=list(phones), **kw
        )
        n = next(counter)
        contract = services.contract_create(
            actor=None,
            customer=customer,
            purpose="Sinh hoạt",
            start_date=dt.date(2020, 1, 1),
            status="active",
        )
        meter = services.meter_register(
            actor=None, unit=unit, serial=f"T{customer.pk:05d}{n:04d}", kind=MeterKind.REMOTE_READ
        )
        services.meter_install(
            actor=None,
            meter=meter,
            contract=contract,
            at=timezone.make_aware(dt.datetime(2020, 1, 1)),
            reading=0,
        )
        return customer

    return make


@pytest.fixture
def catalogue(db):
    catalogue_load_reference()
    return {c.code: c for c in Category.objects.all()}


@pytest.fixture
def two_customers(org, make_customer, catalogue, make_staff):
    """A customer in the home unit and one in another corporation, with different phones and serials, each
    with an open ticket, a billing history touching every scoped billing model (see ``_bill``) and an export
    by a member of staff of its unit."""
    mine = make_customer(org["home"], name="Trần Thị Hân", phones=["0903 111 222"])
    theirs = make_customer(org["other_corporation"], name="Trần Thị Hân", phones=["0903 333 444"])
    billing_tickets = {}
    for customer in (mine, theirs):
        incident = services_t.incident_open(
            actor=None, unit=customer.unit, cause="Sự cố", started_at=timezone.now()
        )
        ticket = ticket_open(
            actor=None, category=catalogue["outage"], channel="phone", description="Mất điện", customer=customer,
            incident=incident,
        ).ticket  # fmt: skip
        services_t.ticket_change_status(actor=None, ticket=ticket, to="acknowledged")
        services_t.ticket_change_status(actor=None, ticket=ticket, to="resolved")
        services_t.callback_record(actor=None, ticket=ticket, reached=False)
        now = timezone.now()
        services_t.interaction_log(
            actor=make_staff(Role.AGENT, [customer.unit]), channel="phone", started_at=now, ended_at=now, disposition="ticket",
            unit=customer.unit, customer=customer, ticket=ticket,
        )  # fmt: skip
        billing = ticket_open(
            actor=None, category=catalogue["billing"], channel="app", description="Hóa đơn", customer=customer
        ).ticket
        services_t.work_order_create(actor=None, ticket=billing)
        services_t.ticket_add_note(actor=None, ticket=billing, body="Khách hẹn chiều", to_customer=False)
        services_t.ticket_attach(
            actor=None, ticket=billing,
            upload=SimpleUploadedFile("meter.jpg", b"\xff\xd8\xff photo", content_type="image/jpeg"),
        )  # fmt: skip
        billing_tickets[customer.pk] = billing
    _bill([mine, theirs], billing_tickets, make_staff)
    for customer in (mine, theirs):  # an export by a member of staff of each unit, in the export log
        export_log_record(
            user=make_staff(Role.AGENT, [customer.unit]), kind="list", source="tickets.ticket",
            file_format="csv", row_count=2,
        )  # fmt: skip
    return mine, theirs


BILLED, RISEN = dt.date(2025, 10, 1), dt.date(2025, 11, 1)


def _bill(customers, billing_tickets, make_staff):
    """Through the billing services only, for each customer's unit: two readings with a big rise (a flagged
    reading and an anomaly re-inspection with its band counts), two billing runs, the first month issued,
    a dispute from the billing ticket, an adjustment proposed and approved by two clerks of the unit (a
    refund, as it lowers the bill), then a rebate programme applied to the later, held bills."""
    billing_services.tariffs_load_reference()
    for customer in customers:
        unit, contract = customer.unit, customer.contracts.get()
        proposer = make_staff(Role.BILLING_CLERK, [unit])
        approver = make_staff(Role.BILLING_CLERK, [unit])
        for period, value in ((BILLED, 150), (RISEN, 150 + 600)):
            billing_services.reading_record(
                actor=proposer, contract=contract, period=period, value=value, source="handheld"
            )
        billing_services.billing_run(actor=proposer, period=BILLED, unit=unit)
        billing_services.invoices_issue(actor=proposer, period=BILLED, unit=unit)
        billing_services.billing_run(actor=proposer, period=RISEN, unit=unit)
        billing_services.anomaly_scan(actor=proposer, period=RISEN, unit=unit)
        issued = Invoice.objects.get(customer=customer, period=BILLED)
        billing_services.payment_record(
            actor=proposer, invoice=issued, amount=1000, paid_at=timezone.now(), source="counter",
            reference=f"BL-{customer.code}",
        )
        dispute = billing_services.dispute_open(
            actor=proposer, ticket=billing_tickets[customer.pk], invoice=issued, claim="Chỉ số đọc sai"
        )
        adjustment = billing_services.adjustment_propose(
            actor=proposer, invoice=issued, record="Biên bản phúc tra", kwh=issued.kwh - 50, dispute=dispute
        )
        billing_services.adjustment_decide(actor=approver, adjustment=adjustment, approve=True)
    programme = RebateProgramme.objects.create(
        name="Giảm giá điện", legal_basis="Nghị quyết (test)", period_from=RISEN, period_to=RISEN
    )
    RebateBand.objects.create(programme=programme, from_kwh=0, percent=Decimal("10"))
    billing_services.rebate_apply(actor=None, programme=programme)
    # A reading file uploaded for each unit (queued, through billing.imports) and a billing job of each unit
    # (through billing.jobs, run: it finds the month billed already): the scoping walk needs one of each.
    from billing.imports import reading_import_create
    from billing.jobs import job_run, job_start_billing_run

    for customer in customers:
        job_run(job_id=job_start_billing_run(actor=None, period=BILLED, units=[customer.unit]).pk)

    for customer in customers:
        reading_import_create(
            actor=None, unit=customer.unit,
            upload=SimpleUploadedFile("readings.csv", b"meter_serial,period,value\n", content_type="text/csv"),
        )  # fmt: skip


def _log_agent():
    from django.contrib.auth import get_user_model

    user, _created = get_user_model().objects.get_or_create(username="log-agent")
    return user
