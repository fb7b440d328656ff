"""State changes of the organisation and the staff: each one a keyword-only function in one transaction."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator, validate_email
from django.db import transaction
from django.db.models.signals import post_save
from django.utils import timezone
from django.utils.translation import gettext as _

from core.phones import InvalidPhone, normalise_phone
from crm import reference_data, shared_cache, staff_access
from crm.models import (
    ApiToken,
    ClusterHeartbeat,
    Company,
    Corporation,
    ExportKind,
    ExportLog,
    ExportStatus,
    Role,
    StaffProfile,
    Unit,
)
from crm.permissions import require
from crm.roles import ROLE_GROUP_NAMES, group_name
from crm.scoping import forget_scope

security_log = logging.getLogger("tongdai.security")


def _load_by_code(model, rows: dict[str, dict]) -> tuple[dict, int]:
    """Make ``model``'s rows match ``rows`` (code → column values by attribute name), in a few statements:
    the missing rows are created, the rows that differ are updated, the others are left as they are.
    Returns the rows by code and how many were created."""
    existing = {row.code: row for row in model.objects.filter(code__in=list(rows))}
    missing = [model(code=code, **values) for code, values in rows.items() if code not in existing]
    model.objects.bulk_create(missing)
    changed = []
    fields: set[str] = set()
    for code, row in existing.items():
        differing = [name for name, value in rows[code].items() if getattr(row, name) != value]
        for name in differing:
            setattr(row, name, rows[code][name])
        if differing:
            changed.append(row)
            fields.update(differing)
    if changed:
        model.objects.bulk_update(changed, sorted(fields))
    return {**existing, **{row.code: row for row in missing}}, len(missing)


@transaction.atomic
def organisation_load_reference() -> dict[str, int]:
    """Create or update the five corporations, their companies and units from ``crm.reference_data``.

    Idempotent: a second run changes nothing (and reads three tables to know it). Rows are matched by code;
    nothing is deleted.
    """
    corporations, corporations_created = _load_by_code(
        Corporation,
        {code: {"name": name, "code_prefix": prefix} for code, name, prefix in reference_data.CORPORATIONS},
    )
    companies, companies_created = _load_by_code(
        Company,
        {
            code: {"corporation_id": corporations[corporation].pk, "name": name, "province": province}
            for corporation, code, name, province in reference_data.COMPANIES
        },
    )
    unit_rows = {
        code: {
            "company_id": companies[company].pk,
            "name": name,
            "district": district,
            "valid_from": valid_from,
            "valid_to": valid_to,
        }
        for company, code, name, district, valid_from, valid_to, _successor in reference_data.UNITS
    }
    units, units_created = _load_by_code(Unit, unit_rows)
    # The successors once every unit has its id (a unit may succeed one listed after it).
    successors = {
        code: {"successor_id": units[successor].pk if successor else None}
        for _company, code, _name, _district, _from, _to, successor in reference_data.UNITS
    }
    _load_by_code(Unit, successors)
    shared_cache.changed(shared_cache.ORGANISATION)  # bulk writes send no signal
    return {"corporations": corporations_created, "companies": companies_created, "units": units_created}


@transaction.atomic
def staff_create(
    *,
    actor,
    username: str,
    password: str,
    role: str,
    badge_number: str,
    units: Iterable[Unit] = (),
    first_name: str = "",
    last_name: str = "",
    email: str = "",
    phone: str = "",
):
    """Create a staff user with a profile, the group of their role and the units they serve.

    ``actor`` (None for the command line) must be allowed to add staff, to grant the role's group (an
    administrator cannot make anyone more than they are), to serve each of the units given, and must see
    whatever the role over those units will show (a company's local administrator makes no manager). The username
    is unique whatever its case; the password must pass the site's password rules (``AUTH_PASSWORD_VALIDATORS``,
    refused on the ``password`` field); the work phone is stored in +84 form (``staff_phone``). The username and
    the e-mail are held to the rules of the admin's staff form (``staff_username_check``, ``staff_email``)."""
    require(actor, "crm.add_staffprofile")
    units = list(units)
    for unit in units:
        require(actor, "crm.add_staffprofile", unit=unit)
    staff_access.check_grant(actor, groups=[role_group(role)], role=role, units=units)
    user_model = get_user_model()
    staff_username_check(username, user_model)
    if user_model.objects.filter(username__iexact=username).exists():  # "Lan" and "lan" read as one person
        raise ValidationError({"username": _("A user with this username already exists.")})
    email = staff_email(email)
    phone = staff_phone(phone)
    if StaffProfile.objects.filter(badge_number=badge_number).exists():
        raise ValidationError({"badge_number": _("This badge number is already in use.")})
    staff_password_check(
        password, user_model(username=username, first_name=first_name, last_name=last_name, email=email)
    )
    user = user_model.objects.create_user(
        username=username,
        password=password,
        first_name=first_name,
        last_name=last_name,
        email=email,
        is_staff=True,
    )
    profile = StaffProfile(user=user, role=role, badge_number=badge_number, phone=phone)
    profile.full_clean(exclude=["user"])
    profile.save()
    profile.units.set(units)
    user.groups.add(role_group(role))
    return user


def staff_username_check(username: str, user_model) -> None:
    """Refuse (on the ``username`` field) a username the user admin would refuse: an empty one, one longer than
    the user model's field, or one its ``username_validator`` refuses (a space, a slash): Django's own
    validators, the length said in our words (Django's Vietnamese has none for it)."""
    if not username:
        raise ValidationError({"username": _("A username is needed.")})
    field = user_model._meta.get_field(user_model.USERNAME_FIELD)
    validators = []
    if field.max_length:
        too_long = _("A username has at most %(limit_value)d characters (this one has %(show_value)d).")
        validators.append(MaxLengthValidator(field.max_length, message=too_long))
    validators.append(user_model.username_validator)
    for validator in validators:
        try:
            validator(username)
        except ValidationError as exc:
            raise ValidationError({"username": exc.messages}) from exc


def staff_email(raw: str) -> str:
    """A work e-mail as it is stored (surrounding spaces dropped), or empty for none. Refuses (on the ``email``
    field) what is not an e-mail address, as the admin's staff form does: every message to it would fail."""
    email = (raw or "").strip()
    if not email:
        return ""
    try:
        validate_email(email)
    except ValidationError as exc:
        raise ValidationError(
            {"email": _("“%(email)s” is not an e-mail address (one reads like nv.lan@example.vn).") % {"email": email}}
        ) from exc
    return email


def staff_password_check(password: str, user) -> None:
    """Refuse (on the ``password`` field) a password the site's password rules refuse for ``user``: too short,
    too common, all digits, too like the username or name. An empty password is refused too."""
    if not password:
        raise ValidationError({"password": _("A password is needed.")})
    try:
        password_validation.validate_password(password, user)
    except ValidationError as exc:
        raise ValidationError({"password": exc.messages}) from exc


def staff_phone(raw: str) -> str:
    """A work phone as it is stored and given to the SMS gateway: +84 and the national number (the customers'
    rule, ``core.phones``), or empty for none. Refuses (on the ``phone`` field) what is not a Vietnamese number."""
    if not (raw or "").strip():
        return ""
    try:
        return normalise_phone(raw)
    except InvalidPhone as exc:
        raise ValidationError({"phone": str(exc)}) from exc


def role_group(role: str) -> Group:
    """The group that grants ``role``'s permissions."""
    if role not in Role.values:
        raise ValidationError({"role": _("Unknown role: %(role)s") % {"role": role}})
    return Group.objects.get(name=group_name(role))


@transaction.atomic
def staff_update(
    *,
    actor,
    user,
    role: str,
    units: Iterable[Unit] | None = None,
    phone: str | None = None,
    assign_new_tickets: bool | None = None,
) -> StaffProfile:
    """Change a staff member's role (and, optionally, units and phone); their group follows the role.

    ``actor`` (None for the command line) must be allowed to change ``user``'s account and to grant the
    role's group (``crm.staff_access``): an administrator cannot make anyone, themselves included, more than
    they are, nor change staff serving a unit outside what they see, nor give a role that would show more
    than they see (the role over the units given, or over the units served now). The phone is stored in +84 form
    (``staff_phone``)."""
    require(actor, "crm.change_staffprofile")
    if units is not None:
        units = list(units)
        for unit in units:
            require(actor, "crm.change_staffprofile", unit=unit)
    new_group = role_group(role)
    profile = StaffProfile.objects.select_for_update().get(
        user=user
    )  # their units, as they stand, are checked
    staff_access.check_manage_user(actor, user)
    staff_access.check_grant(
        actor, groups=[new_group], role=role, units=profile.units.all() if units is None else units
    )
    old_group = Group.objects.filter(name=group_name(profile.role)).first()
    profile.role = role
    if phone is not None:
        profile.phone = staff_phone(phone)
    if assign_new_tickets is not None:
        profile.assign_new_tickets = assign_new_tickets
    profile.save(update_fields=["role", "phone", "assign_new_tickets"])
    if units is not None:
        profile.units.set(units)
    if old_group is not None:
        user.groups.remove(old_group)
    user.groups.add(new_group)
    forget_scope(user)
    return profile


@transaction.atomic
def staff_delete(*, actor, profile: StaffProfile) -> None:
    """Remove a member of staff's profile: they have left. The account keeps its history (tickets, events,
    messages) but no role: the role groups go with the profile, so an account without a profile holds none of
    a role's permissions (and, without units, sees nothing: ``crm.scoping``).

    ``actor`` (None for the command line) must be allowed to delete staff profiles and to change the account
    (``crm.staff_access``), as for changing the role. Their API tokens are revoked, as a deactivation's are
    (``account_tokens_revoke``): somebody who has left calls the API no more, with the rights left on the account."""
    require(actor, "crm.delete_staffprofile")
    profile = StaffProfile.objects.select_for_update().select_related("user").get(pk=profile.pk)
    user = profile.user
    staff_access.check_manage_user(actor, user)
    profile.delete()
    user.groups.remove(*Group.objects.filter(name__in=list(ROLE_GROUP_NAMES.values())))
    account_tokens_revoke(user=user, why="the staff profile was removed")
    forget_scope(user)


def account_tokens_revoke(*, user, why: str = "the account was deactivated") -> int:
    """Revoke every API token of ``user``, whose account is deactivated (or whose staff profile was removed,
    ``why`` says which in the security log): a token of theirs must not work again if the account is
    reactivated or given a profile (a new one is made then). Returns how many went."""
    revoked, _by_model = ApiToken.objects.filter(user=user).delete()
    if revoked:
        security_log.info("%d API token(s) of %s revoked: %s", revoked, user.get_username(), why)
    return revoked


def _revoke_tokens_of_deactivated(sender, instance, update_fields=None, **kwargs) -> None:
    """A user saved inactive (deactivated in the admin, or by a command) loses its API tokens."""
    if instance.is_active or (update_fields is not None and "is_active" not in update_fields):
        return
    account_tokens_revoke(user=instance)


post_save.connect(
    _revoke_tokens_of_deactivated,
    sender=settings.AUTH_USER_MODEL,
    dispatch_uid="tongdai-revoke-deactivated-tokens",
)


# The export log ------------------------------------------------------------------------------------------

# How an export's filters read for a user of the log (a manager reads the exports of their units' staff): the
# customers app registers its identifiers' rule (``customers.privacy.filters_as_seen``), so a phone or a
# national ID typed into a search or a filter is shown as that user sees it everywhere else.
_filters_as_seen: Callable[[Any, str], str] | None = None


def register_export_filters_shown(function: Callable[[Any, str], str]) -> None:
    global _filters_as_seen
    _filters_as_seen = function


def export_filters_shown(user, filters: str) -> str:
    """``filters`` (a logged export's query string) as ``user`` may read them."""
    if _filters_as_seen is None or not filters:
        return filters
    return _filters_as_seen(user, filters)


@transaction.atomic
def export_log_start(*, user, kind: str, source: str, file_format: str, filters: str = "") -> ExportLog:
    """Record that ``user`` starts exporting ``source`` (a list or table) with ``filters``, with the units
    ``user`` serves now (the managers of those units read it, whatever becomes of ``user`` later); the row
    count follows when the last row has been written (``export_log_finish``)."""
    if kind not in ExportKind.values:
        raise ValidationError({"kind": _("Unknown export kind: %(kind)s") % {"kind": kind}})
    author = user if getattr(user, "pk", None) else None
    log = ExportLog.objects.create(
        user=author,
        started_at=timezone.now(),
        kind=kind,
        source=source[:100],
        filters=filters,
        file_format=file_format,
    )
    if author is not None:
        served = StaffProfile.units.through.objects.filter(staffprofile__user=author).values_list(
            "unit_id", flat=True
        )
        ExportLog.units.through.objects.bulk_create(
            [ExportLog.units.through(exportlog_id=log.pk, unit_id=unit_id) for unit_id in served]
        )
    return log


def export_log_finish(*, log: ExportLog, row_count: int, complete: bool = True) -> bool:
    """Complete a started export with the rows written: once (a conditional update; the database refuses
    any other change). ``complete`` False marks it interrupted (the download stopped before its end).
    Returns whether this call completed it."""
    status = ExportStatus.COMPLETE if complete else ExportStatus.INCOMPLETE
    done = ExportLog.objects.filter(pk=log.pk, status=ExportStatus.STARTED).update(
        status=status, row_count=row_count, finished_at=timezone.now()
    )
    if done:
        log.status, log.row_count = status, row_count
    return bool(done)


@transaction.atomic
def export_log_record(
    *, user, kind: str, source: str, file_format: str, row_count: int, filters: str = ""
) -> ExportLog:
    """Record an export made in one go (a workbook built whole, e.g. the monthly report)."""
    log = export_log_start(user=user, kind=kind, source=source, file_format=file_format, filters=filters)
    export_log_finish(log=log, row_count=row_count)
    return log


def cluster_heartbeat_record(*, node: str | None = None) -> ClusterHeartbeat:
    """Record that the task cluster on ``node`` (this host by default) ran a task now."""
    import socket

    heartbeat, _created = ClusterHeartbeat.objects.update_or_create(
        node=node or socket.gethostname(), defaults={"beat_at": timezone.now()}
    )
    return heartbeat
