"""Who may change whose account, and what they may grant: the one rule behind the user admin, the staff
profiles and the services that change a staff member's role.

Only a superuser grants superuser status or changes a superuser. Anyone else may grant only what they hold
themselves: a group whose permissions are all theirs, a permission of their own, staff status (which they
hold to reach the admin at all). Nobody but a superuser changes an account that holds a permission the actor
lacks, and that includes its password: otherwise an administrator could reset a superuser's password, log in
as them and grant themselves everything. Nor does anyone who does not see everything (``crm.scoping``) change
the account of staff serving a unit outside what they see, or whose role shows more than they see: a local
administrator would otherwise reset the password of another company's agent, or of their corporation's manager,
and read those customers as them. For the same reason a role is granted only when what it would show (the
role over the units given) is within what the actor sees: holding a manager's permissions does not let a
company's local administrator make anyone, themselves included, a manager who sees the whole corporation.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db.models import Q, QuerySet
from django.db.models.functions import Lower
from django.utils.translation import gettext as _

from crm.models import Role, Unit
from crm.permissions import NotAllowed
from crm.scoping import account_scope, profiles_seeing_beyond, role_scope, scope_for


def _label(permission: Permission) -> str:
    return f"{permission.content_type.app_label}.{permission.codename}"


def permissions_held(user) -> set[str]:
    """The permissions ``user`` holds ("app_label.codename"), from their groups and their own, whether or not
    the account is active: an inactive account's grants come back when it is reactivated."""
    held = Permission.objects.filter(Q(group__user=user) | Q(user=user)).select_related("content_type")
    return {_label(p) for p in held}


def actor_permissions(actor) -> set[str]:
    """What ``actor`` may grant: what they hold now (nothing when inactive)."""
    if not actor.is_active:
        return set()
    return set(actor.get_all_permissions())


def units_served(user) -> set[int]:
    """The ids of the units ``user`` serves (none without a staff profile)."""
    return set(Unit.objects.filter(staff__user=user).values_list("pk", flat=True))


def serves_beyond_scope(actor, target) -> bool:
    """True when ``target`` serves a unit that ``actor`` does not see (``crm.scoping``)."""
    scope = scope_for(actor)
    return not scope.everything and not units_served(target) <= scope.unit_ids


def sees_beyond_scope(actor, target) -> bool:
    """True when ``target``'s account shows a unit that ``actor`` does not see (their role over their units,
    whether or not the account is active now)."""
    scope = scope_for(actor)
    return not scope.everything and not account_scope(target).within(scope)


def may_manage_user(actor, target) -> bool:
    """True when ``actor`` may change ``target``'s account (details, password, status, groups, role, units)."""
    return manage_user_refusal(actor, target) is None


def manage_user_refusal(actor, target) -> str | None:
    """Why ``actor`` may not change ``target``'s account (a message for the page), or None when they may."""
    if actor is None:  # the command line and migrations: trusted
        return None
    if not actor.is_active or not actor.is_authenticated:
        return _("You are not allowed to do this.")
    if actor.is_superuser:
        return None
    if target.is_superuser:
        return _("Only a superuser may change a superuser's account.")
    if target.pk is None:
        return None
    if not permissions_held(target) <= actor_permissions(actor):
        return _("%(user)s holds permissions you do not have; only a superuser may change this account.") % {
            "user": target.get_username()
        }
    if serves_beyond_scope(actor, target):
        return _("%(user)s serves units you do not serve; you may not change this account.") % {
            "user": target.get_username()
        }
    if sees_beyond_scope(actor, target):
        return _("%(user)s sees units you do not see; you may not change this account.") % {
            "user": target.get_username()
        }
    return None


def manageable_users(actor) -> QuerySet:
    """The accounts ``actor`` may change: ``manage_user_refusal``'s rule as a query, for the lists of accounts
    and of API tokens (every account for the command line and for a superuser)."""
    users = get_user_model().objects.all()
    if actor is None:
        return users
    if not actor.is_active or not actor.is_authenticated:
        return users.none()
    if actor.is_superuser:
        return users
    user_model = get_user_model()
    beyond = Permission.objects.exclude(pk__in=grantable_permissions(actor).values("pk"))
    users = (
        users.filter(is_superuser=False)
        .exclude(pk__in=user_model.objects.filter(user_permissions__in=beyond).values("pk"))
        .exclude(pk__in=user_model.objects.filter(groups__permissions__in=beyond).values("pk"))
    )
    scope = scope_for(actor)
    if not scope.everything:
        users = users.exclude(pk__in=profiles_seeing_beyond(scope).values("user_id"))
    return users


def sign_in_records_within_reach(actor, records: QuerySet) -> QuerySet:
    """The records of sign-ins (django-axes' failed attempts and logs, which have a ``username``) that ``actor``
    may see and unlock: unlocking a username lets the guessing at its password go on, so it is held to the rule
    of changing that account (``manageable_users``: never a superuser's but by a superuser, nor an account
    beyond the actor's reach). A username that names no account (mistyped, or guessed) unlocks only its client
    address, shared by whoever signs in from there: only staff who see everything see those. Usernames read
    as one person whatever their case. Everything for the command line and for a superuser."""
    if actor is None or (actor.is_active and actor.is_superuser):
        return records
    if not actor.is_active or not actor.is_authenticated:
        return records.none()
    accounts = get_user_model().objects.annotate(account=Lower("username")).values("account")
    manageable = manageable_users(actor).annotate(account=Lower("username")).values("account")
    records = records.annotate(account=Lower("username"))
    reach = Q(account__in=manageable)
    if scope_for(actor).everything:
        reach |= Q(username__isnull=True) | ~Q(account__in=accounts)
    return records.filter(reach)


def grantable_permissions(actor) -> QuerySet[Permission]:
    """The permissions ``actor`` may give to someone (all of them for a superuser)."""
    queryset = Permission.objects.select_related("content_type")
    if actor.is_superuser:
        return queryset
    held = actor_permissions(actor)
    ids = [p.pk for p in queryset if _label(p) in held]
    return queryset.filter(pk__in=ids)


def grantable_groups(actor) -> QuerySet[Group]:
    """The groups ``actor`` may put someone in: those whose every permission the actor holds."""
    if actor.is_superuser:
        return Group.objects.all()
    held = actor_permissions(actor)
    ids = [
        group.pk
        for group in Group.objects.prefetch_related("permissions__content_type")
        if {_label(p) for p in group.permissions.all()} <= held
    ]
    return Group.objects.filter(pk__in=ids)


def check_manage_user(actor, target) -> None:
    """Refuse with a clear message when ``actor`` may not change ``target``."""
    reason = manage_user_refusal(actor, target)
    if reason is not None:
        raise NotAllowed(reason)


def check_grant(
    actor,
    *,
    groups: Iterable[Group] = (),
    is_superuser: bool = False,
    role: str | None = None,
    units: Iterable[Unit | int] = (),
) -> None:
    """Refuse with a clear message a grant of superuser status, of a group beyond the actor's own, or of a
    ``role`` over ``units`` (the units the person will serve) that would show a unit the actor does not see."""
    if actor is None or actor.is_superuser:
        return
    if is_superuser:
        raise NotAllowed(_("Only a superuser may grant superuser status."))
    allowed = set(grantable_groups(actor).values_list("pk", flat=True))
    beyond = [group.name for group in groups if group.pk not in allowed]
    if beyond:
        raise NotAllowed(
            _("You may not grant %(groups)s: it holds permissions you do not have.")
            % {"groups": ", ".join(sorted(beyond))}
        )
    if role is not None:
        scope = scope_for(actor)
        if not scope.everything and not role_scope(role, units).within(scope):
            raise NotAllowed(
                _("You may not give the role “%(role)s” for these units: it would see units you do not see.")
                % {"role": Role(role).label}
            )
