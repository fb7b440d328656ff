"""One Django group per role, with the model permissions that role needs; created idempotently.

The groups grant *what* a role may do; ``crm.scoping`` decides *which rows* it may do it to. Later apps
add their permissions to ``ROLE_PERMISSIONS`` in the same form ("app_label.codename").
"""

from __future__ import annotations

from django.db import transaction

from crm.models import Role

_VIEW_CUSTOMERS = [
    "customers.view_customer",
    "customers.view_customerphone",
    "customers.view_contract",
    "customers.view_meter",
    "customers.view_meterassignment",
    "customers.view_customerevent",
]
# Customers' phones and national IDs in full (customers.privacy; the README's table says who and why): the
# staff who call customers back see the whole number; billing clerks, who correct bills and refund money to
# the right person, and administrators see the whole national ID; the others see the last digits.
_FULL_PHONE = "customers.view_full_phone"
_FULL_NATIONAL_ID = "customers.view_national_id"
_VIEW_ORGANISATION = ["crm.view_corporation", "crm.view_company", "crm.view_unit",
                      "crm.view_apitoken"]  # their own API tokens: the admin lists no one else's  # fmt: skip
_VIEW_TICKETS = [
    "tickets.view_ticket",
    "tickets.view_ticketevent",
    "tickets.view_category",
    "tickets.view_slapolicy",
    "tickets.view_suspension",
    "tickets.view_holiday",
    "tickets.view_incident",
    "tickets.view_callback",
    "tickets.view_interaction",
    "tickets.view_workorder",
    "tickets.view_ticketnote",
    "tickets.view_ticketattachment",
]
_WRITE_ON_TICKETS = ["tickets.add_ticketnote", "tickets.add_ticketattachment"]
_WORK_TICKETS = [*_VIEW_TICKETS, "tickets.add_ticket", "tickets.change_ticket", "tickets.add_callback",
                 "tickets.add_interaction", *_WRITE_ON_TICKETS]  # fmt: skip
# Billing: reference data (prices, VAT, rebate programmes) is read by the billing roles and changed by
# administrators only; the records of a unit's billing are worked by its billing clerks through the services.
# A rebate round is run (applied, taken back) by the billing clerks too, for a programme of their units
# (``billing.apply_rebateprogramme``; administrators hold it with ``billing.*``).
_BILLING_REFERENCE = ["pricetable", "pricestep", "vatrate", "rebateprogramme", "rebateband"]
_BILLING_RECORDS = [
    "meterreading", "invoice", "invoiceline", "billingrun", "dispute", "reinspection", "adjustment", "refund",
    "rebateapplication", "anomalybandcount",
]  # fmt: skip
_VIEW_BILLING = [
    f"billing.view_{m}"
    for m in [*_BILLING_REFERENCE, *_BILLING_RECORDS, "auditrecord", "readingimport", "billingjob", "payment"]
]
_WORK_BILLING = [
    *_VIEW_BILLING,
    *(f"billing.{verb}_{m}" for m in _BILLING_RECORDS for verb in ("add", "change")),
    "billing.add_readingimport",  # the big reading files, imported in the background
    "billing.issue_invoice",
    "billing.propose_adjustment",
    "billing.approve_adjustment",
    "billing.add_payment",
    "billing.apply_rebateprogramme",
]
_RUN_INCIDENTS = [
    "tickets.add_incident",
    "tickets.change_incident",
    "tickets.add_workorder",
    "tickets.change_workorder",
]

ROLE_PERMISSIONS: dict[str, list[str]] = {
    Role.AGENT: [
        *_VIEW_ORGANISATION,
        *_VIEW_CUSTOMERS,
        _FULL_PHONE,
        "customers.flag_nuisance",
        *_WORK_TICKETS,
    ],
    Role.SUPERVISOR: [
        *_VIEW_ORGANISATION,
        *_VIEW_CUSTOMERS,
        _FULL_PHONE,
        "customers.flag_nuisance",
        "customers.change_customer",
        "customers.add_customerphone",
        "customers.change_customerphone",
        "customers.delete_customerphone",
        "crm.view_staffprofile",
        *_WORK_TICKETS,
        *_RUN_INCIDENTS,
        "tickets.reroute_ticket",
        "tickets.assign_ticket",
        "crm.view_dashboard",
        *_VIEW_BILLING,
    ],
    Role.DISPATCHER: [
        *_VIEW_ORGANISATION,
        *_VIEW_CUSTOMERS,
        _FULL_PHONE,
        *_VIEW_TICKETS,
        "tickets.change_ticket",
        "tickets.assign_ticket",
        *_WRITE_ON_TICKETS,
        *_RUN_INCIDENTS,
    ],
    Role.FIELD_CREW: [
        *_VIEW_ORGANISATION,
        *_VIEW_CUSTOMERS,
        _FULL_PHONE,
        *_VIEW_TICKETS,
        "tickets.change_ticket",
        "tickets.change_workorder",
        *_WRITE_ON_TICKETS,
    ],
    Role.BILLING_CLERK: [
        *_VIEW_ORGANISATION,
        *_VIEW_CUSTOMERS,
        _FULL_PHONE,
        _FULL_NATIONAL_ID,
        "customers.add_customer",
        "customers.change_customer",
        "customers.add_customerphone",
        "customers.change_customerphone",
        "customers.delete_customerphone",
        "customers.add_contract",
        "customers.change_contract",
        "customers.add_meter",
        "customers.change_meter",
        *_VIEW_TICKETS,
        # They take billing requests on the phone; a phone ticket logs its call (its handling time counts).
        "tickets.add_ticket",
        "tickets.add_interaction",
        *_WORK_BILLING,
    ],
    Role.MANAGER: [
        *_VIEW_ORGANISATION,
        *_VIEW_CUSTOMERS,
        "crm.view_staffprofile",
        "crm.view_dashboard",
        "crm.view_exportlog",  # the export log of the staff of their units
        *_VIEW_TICKETS,
        *_VIEW_BILLING,
    ],
    Role.ADMINISTRATOR: [
        "crm.*",
        "customers.*",
        "tickets.*",
        "billing.*",
        "auth.view_user",
        "auth.add_user",
        "auth.change_user",
        "auth.view_group",
        # The task cluster's records, read-only (only superusers change schedules: crm.admin_accounts).
        "django_q.view_schedule",
        "django_q.view_success",
        "django_q.view_failure",
        "django_q.view_ormq",
        # Login security: see failed logins and lockouts, and unlock (delete the failures of) a user or address.
        "axes.view_accessattempt",
        "axes.delete_accessattempt",
        "axes.view_accessfailurelog",
        "axes.view_accesslog",
    ],
}

ROLE_GROUP_NAMES: dict[str, str] = {role.value: f"tongdai: {role.value}" for role in Role}

GROUP_DESCRIPTIONS = {role.value: role.label for role in Role}


def group_name(role: str) -> str:
    return ROLE_GROUP_NAMES[role]


def group_label(name: str) -> str:
    """How a group reads in the interface: a role's group by the role's name in the interface's language (its
    stored name is a key that stays the same in every language), any other group by its name."""
    for role, stored in ROLE_GROUP_NAMES.items():
        if stored == name:
            return str(GROUP_DESCRIPTIONS[role])
    return name


def _resolve(specs: list[str]):
    from django.contrib.auth.models import Permission

    permissions = []
    for spec in specs:
        app_label, codename = spec.split(".", 1)
        qs = Permission.objects.filter(content_type__app_label=app_label)
        if codename != "*":
            qs = qs.filter(codename=codename)
        found = list(qs)
        if not found:
            raise LookupError(f"Permission {spec} does not exist")
        permissions.extend(found)
    return permissions


@transaction.atomic
def sync_role_groups() -> dict[str, int]:
    """Create or update one group per role so it holds exactly its permissions. Safe to run any time."""
    from django.contrib.auth.models import Group

    counts = {}
    for role, specs in ROLE_PERMISSIONS.items():
        group, _created = Group.objects.get_or_create(name=group_name(role))
        permissions = _resolve(specs)
        group.permissions.set(permissions)
        counts[role] = len(permissions)
    return counts


def sync_role_groups_after_migrate(sender, app_config=None, using="default", **kwargs) -> None:
    """post_migrate hook: the permissions exist once every app has migrated, so sync then."""
    from django.apps import apps
    from django.contrib.auth.management import create_permissions

    # Permissions are created by another post_migrate receiver whose order is not guaranteed: make sure.
    for config in apps.get_app_configs():
        create_permissions(config, verbosity=0, using=using)
    sync_role_groups()
