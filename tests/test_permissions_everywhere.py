"""Walks every state-changing service of tickets, customers and crm as every role: either the role holds the
permission the service requires, or the call raises PermissionDenied and changed nothing. The services are
the rule (``crm.permissions.require``): the admin, the API, the commands and the tasks cannot differ."""

from __future__ import annotations

import datetime as dt
import inspect

import pytest
from django.apps import apps
from django.core.exceptions import PermissionDenied
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.utils import timezone

import crm.services
import customers.services
import tickets.models
import tickets.services
from crm.models import Role
from customers.models import MeterKind

MODULES = [tickets.services, customers.services, crm.services]
# Services that take an actor but change nothing themselves: a read, and a wrapper of ``ticket_assign``.
NOT_WRITES = {"interaction_unit", "interaction_check", "ticket_assign_to_taker"}  # they check, write nothing


def _now():
    return timezone.now()


# service name -> (the permission it requires, the keyword arguments from the fixture ``world``)
CASES = {
    "sla_policy_create": ("tickets.add_slapolicy", lambda w: {
        "category": w["catalogue"]["billing"], "valid_from": _now() + dt.timedelta(days=1), "resolve_minutes": 60}),
    "holiday_save": ("tickets.add_holiday", lambda w: {"day": dt.date(2031, 3, 3), "name": "Nghỉ bù"}),
    "holiday_delete": ("tickets.delete_holiday", lambda w: {"holiday": tickets.models.Holiday.objects.first()}),
    "suspension_create": ("tickets.add_suspension", lambda w: {
        "category": w["catalogue"]["billing"], "units": [w["home"]], "starts_at": _now(),
        "ends_at": _now() + dt.timedelta(hours=1), "reason": "Bảo trì"}),
    "ticket_open": ("tickets.add_ticket", lambda w: {
        "category": w["catalogue"]["billing"], "channel": "phone", "description": "Hóa đơn", "customer": w["customer"]}),
    "ticket_change_status": ("tickets.change_ticket", lambda w: {"ticket": w["ticket"], "to": "acknowledged"}),
    "ticket_record_contact": ("tickets.change_ticket", lambda w: {"ticket": w["ticket"]}),
    "ticket_reroute": ("tickets.reroute_ticket", lambda w: {
        "ticket": w["ticket"], "unit": w["sibling"], "reason": "Sai đơn vị"}),
    "ticket_assign": ("tickets.change_ticket", lambda w: {"ticket": w["ticket"], "assignee": w["actor"]}),
    "ticket_add_note": ("tickets.add_ticketnote", lambda w: {"ticket": w["ticket"], "body": "Ghi chú"}),
    "ticket_attach": ("tickets.add_ticketattachment", lambda w: {
        "ticket": w["ticket"], "upload": SimpleUploadedFile("a.jpg", b"\xff\xd8\xff", content_type="image/jpeg")}),
    "incident_open": ("tickets.add_incident", lambda w: {"unit": w["home"], "cause": "Sự cố", "started_at": _now()}),
    "ticket_link_incident": ("tickets.change_ticket", lambda w: {"ticket": w["ticket"], "incident": w["incident"]}),
    "incident_restore": ("tickets.change_incident", lambda w: {"incident": w["incident"]}),
    "callback_record": ("tickets.add_callback", lambda w: {"ticket": w["ticket"], "reached": False}),
    "interaction_log": ("tickets.add_interaction", lambda w: {
        "channel": "phone", "started_at": _now(), "ended_at": _now(), "disposition": "ticket", "unit": w["home"],
        "customer": w["customer"], "ticket": w["ticket"]}),
    "interaction_record": ("tickets.add_interaction", lambda w: {
        "channel": "phone", "started_at": _now(), "ended_at": _now(), "disposition": "ticket", "unit": w["home"],
        "customer": w["customer"]}),
    "work_order_create": ("tickets.add_workorder", lambda w: {"ticket": w["ticket"]}),
    "work_order_assign": ("tickets.add_workorder", lambda w: {"order": w["order"], "crew": None}),
    "work_order_advance": ("tickets.change_workorder", lambda w: {"order": w["order"], "to": "dispatched"}),
    "meter_replace": ("customers.change_contract", lambda w: {
        "contract": w["customer"].contracts.first(), "at": _now(), "removal_reading": 1, "reason": "Thay",
        "new_meter": w["meter"], "install_reading": 0}),
    "customer_create": ("customers.add_customer", lambda w: {
        "unit": w["home"], "full_name": "Lê Văn Bình", "street": "1 Lê Lợi", "ward": "Phường Bến Nghé"}),
    "customer_update": ("customers.change_customer", lambda w: {
        "customer": w["customer"], "changes": {"full_name": "Lê Văn Bình"}, "reason": "Sai tên"}),
    "customer_flag_nuisance": ("customers.flag_nuisance", lambda w: {"customer": w["customer"], "reason": "Gọi quấy"}),
    "customer_clear_nuisance": ("customers.flag_nuisance", lambda w: {"customer": w["customer"], "reason": "Hết"}),
    "customer_add_phone": ("customers.add_customerphone", lambda w: {
        "customer": w["customer"], "number": "0903 999 888"}),
    "customer_remove_phone": ("customers.delete_customerphone", lambda w: {
        "phone": w["customer"].phones.first()}),
    "contract_create": ("customers.add_contract", lambda w: {
        "customer": w["customer"], "purpose": "Sinh hoạt", "start_date": dt.date(2024, 1, 1)}),
    "contract_set_status": ("customers.change_contract", lambda w: {
        "contract": w["customer"].contracts.first(), "status": "suspended"}),
    "meter_register": ("customers.add_meter", lambda w: {
        "unit": w["home"], "serial": "P0000001", "kind": MeterKind.REMOTE_READ}),
    "meter_install": ("customers.change_meter", lambda w: {
        "meter": w["meter"], "contract": w["customer"].contracts.first(), "at": _now(), "reading": 0}),
    "meter_remove": ("customers.change_meter", lambda w: {
        "meter": w["meter"], "at": _now(), "reading": 1, "reason": "Hỏng"}),
    "staff_delete": ("crm.delete_staffprofile", lambda w: {"profile": w["colleague"].staff_profile}),
    "staff_update": ("crm.change_staffprofile", lambda w: {"user": w["colleague"], "role": Role.AGENT}),
    "staff_create": ("crm.add_staffprofile", lambda w: {
        "username": f"nv-{w['actor'].pk}", "password": "Dien-luc-9-Ben-Nghe", "role": Role.AGENT,
        "badge_number": f"NV-{w['actor'].pk}", "units": [w["home"]]}),
}  # fmt: skip


def writes_with_an_actor(modules=MODULES, not_writes=NOT_WRITES) -> set[str]:
    """The public functions of ``modules`` that take an ``actor``: the writes a walk must cover."""
    found = set()
    for module in modules:
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if function.__module__ != module.__name__ or name.startswith("_") or name in not_writes:
                continue
            if "actor" in inspect.signature(function).parameters:
                found.add(name)
    return found


def test_every_write_with_an_actor_is_walked():
    assert writes_with_an_actor() == set(CASES)


def _rows():
    return {
        model._meta.label: model._default_manager.count()
        for label in ("crm", "customers", "tickets")
        for model in apps.get_app_config(label).get_models()
    }


def _service(name):
    return next(getattr(m, name) for m in MODULES if hasattr(m, name))


@pytest.fixture
def world(org, staff, make_customer, make_staff, catalogue):
    customer = make_customer(org["home"])
    ticket = tickets.services.ticket_open(
        actor=None, category=catalogue["billing"], channel="phone", description="Hóa đơn", customer=customer
    ).ticket
    incident = tickets.services.incident_open(actor=None, unit=org["home"], cause="Sự cố", started_at=_now())
    order = tickets.services.work_order_create(actor=None, ticket=ticket)
    meter = customers.services.meter_register(
        actor=None, unit=org["home"], serial="P0000002", kind=MeterKind.REMOTE_READ
    )
    return {
        "home": org["home"], "sibling": org["sibling"], "catalogue": catalogue, "customer": customer,
        "ticket": ticket, "incident": incident, "order": order, "meter": meter,
        "colleague": make_staff(Role.AGENT, [org["home"]]),
    }  # fmt: skip


@pytest.mark.django_db
def test_each_role_holds_the_permission_or_is_refused_and_nothing_changes(staff, world):
    refused, allowed = [], []
    for role, user in staff.items():
        for name, (perm, arguments) in CASES.items():
            kwargs = arguments({**world, "actor": user})
            holds = user.has_perm(perm)
            before = _rows()
            with transaction.atomic():
                try:
                    _service(name)(actor=user, **kwargs)
                except PermissionDenied:
                    assert not holds, f"{role} holds {perm} but {name} refused"
                    assert _rows() == before, f"{name} refused {role} but changed rows"
                    refused.append((role, name))
                    continue
                except Exception:  # a rule of the service (not a permission) refused the call
                    pass
                finally:
                    transaction.set_rollback(True)
            assert holds, f"{role} lacks {perm} but {name} let them"
            allowed.append((role, name))
    # the walk did both: the agent may add notes, the field crew may not reroute
    assert (Role.AGENT, "ticket_add_note") in allowed
    assert (Role.FIELD_CREW, "ticket_reroute") in refused


@pytest.mark.django_db
def test_a_unit_outside_the_scope_is_refused_and_nothing_changes(org, make_staff, world):
    stranger = make_staff(Role.SUPERVISOR, [org["other_corporation"]])
    before = _rows()
    with pytest.raises(PermissionDenied):
        tickets.services.ticket_add_note(actor=stranger, ticket=world["ticket"], body="Ghi chú")
    with pytest.raises(PermissionDenied):
        customers.services.customer_update(
            actor=stranger, customer=world["customer"], changes={"full_name": "X"}
        )
    assert _rows() == before


@pytest.mark.django_db
def test_the_system_itself_may_write(world):
    note = tickets.services.ticket_add_note(actor=None, ticket=world["ticket"], body="Ghi chú của hệ thống")
    assert note.pk is not None
