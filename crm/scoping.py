"""The one row-level scoping rule: which units' data a staff member may see.

- unit staff (agent, dispatcher, field crew, billing clerk) see the units they serve;
- a supervisor sees every unit of the companies of the units they serve;
- a manager sees every unit of those units' corporations;
- an administrator (or a superuser) sees everything;
- anyone else (no profile, inactive, anonymous) sees nothing.

Units merged into one of the visible units stay visible once the merge has taken effect
(``units_served_today``), so old records keep their unit and remain reachable. Every scoped model's queryset
inherits ``ScopedQuerySet`` and names the path from the model to its unit in ``scope_path``; admin and API both
call ``for_user(user)``, and nothing else decides.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import models
from django.utils import timezone

from core.db import InValues
from crm import shared_cache


@dataclass(frozen=True)
class Scope:
    everything: bool
    unit_ids: frozenset[int]

    def allows_unit(self, unit_id: int | None) -> bool:
        return self.everything or (unit_id is not None and unit_id in self.unit_ids)

    def within(self, other: Scope) -> bool:
        """True when everything this scope shows, ``other`` shows too."""
        return other.everything or (not self.everything and self.unit_ids <= other.unit_ids)


NOTHING = Scope(everything=False, unit_ids=frozenset())
EVERYTHING = Scope(everything=True, unit_ids=frozenset())

_CACHE_ATTR = "_tongdai_scope"


def scope_for(user) -> Scope:
    """The scope of ``user``: computed once per user object (so once per request) and kept in the shared cache
    for ``TONGDAI_AUTH_CACHE_SECONDS`` (0: not kept), so a busy API does not recompute it on every request. A
    change of role, units or merges reaches every process at once (``crm.shared_cache``)."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return NOTHING
    cached = getattr(user, _CACHE_ATTR, None)
    if cached is not None:
        return cached
    scope = account_scope(user)
    setattr(user, _CACHE_ATTR, scope)
    return scope


def account_scope(user) -> Scope:
    """What ``user``'s account shows whether or not it is active now (reactivated, it shows this again): the
    scope of their role and units, as ``scope_for`` keeps it in the shared cache."""
    if user is None or user.pk is None:
        return NOTHING
    return shared_cache.remember(
        f"scope:{user.pk}:{user.is_superuser}",
        (shared_cache.STAFF, shared_cache.ORGANISATION),
        lambda: _compute_scope(user),
    )


def forget_scope(user) -> None:
    """Drop the scope kept on ``user`` and, in every process, the staff's cached scopes and permissions (after
    the user's role or units changed)."""
    if hasattr(user, _CACHE_ATTR):
        delattr(user, _CACHE_ATTR)
    shared_cache.changed(shared_cache.STAFF)


def unit_cached(unit_id: int):
    """A unit with its company and corporation, from the shared cache: the busiest pages and endpoints (the
    customer card, intake) show a customer's unit on every request."""
    from crm.models import Unit

    return shared_cache.remember(
        f"unit:{unit_id}",
        (shared_cache.ORGANISATION,),
        lambda: Unit.objects.select_related("company__corporation").get(pk=unit_id),
    )


def _compute_scope(user) -> Scope:
    from crm.models import StaffProfile, Unit

    if user.is_superuser:
        return EVERYTHING
    profile = StaffProfile.objects.filter(user=user).only("id", "role").first()
    if profile is None:
        return NOTHING
    return role_scope(profile.role, Unit.objects.filter(staff=profile))


def role_scope(role: str, served) -> Scope:
    """The scope of a staff profile of ``role`` serving ``served`` (a queryset of units, or their ids): the
    rule in the module's docstring. What a role would give someone is asked here before it is granted
    (``crm.staff_access.check_grant``)."""
    from crm.models import Role, Unit

    if role == Role.ADMINISTRATOR:
        return EVERYTHING
    if not isinstance(served, models.QuerySet):
        served = Unit.objects.filter(pk__in=[getattr(unit, "pk", unit) for unit in served])
    if role == Role.SUPERVISOR:
        units = Unit.objects.filter(company__in=served.values("company_id"))
    elif role == Role.MANAGER:
        units = Unit.objects.filter(company__corporation__in=served.values("company__corporation_id"))
    else:
        units = served
    # Follow merges backwards: the staff of a successor unit see its predecessors' records, once merged.
    return Scope(everything=False, unit_ids=units_served_today(units.values_list("id", flat=True)))


def merged_away(unit, *, today=None) -> bool:
    """Whether ``unit``'s merge into its successor has taken effect: its last day (``valid_to``) has passed. A
    merge entered ahead of its day changes nothing until then (scope, routing and billing alike)."""
    today = today or timezone.localdate()
    return bool(unit.successor_id and unit.valid_to and unit.valid_to < today)


def units_served_today(unit_ids) -> frozenset[int]:
    """The units whose records the units ``unit_ids`` serve today: themselves and the units merged into them
    whose merge has taken effect (``merged_away``), following chains (A merged into B, B into C: C serves A's
    records). The one rule for the scope, the billing run of a unit and the outages a unit's incident covers."""
    from crm.models import Unit

    today = timezone.localdate()
    ids = {int(unit_id) for unit_id in unit_ids}
    frontier = set(ids)
    while frontier:
        older = Unit.objects.filter(successor_id__in=sorted(frontier), valid_to__lt=today)
        frontier = set(older.values_list("id", flat=True)) - ids
        ids |= frontier
    return frozenset(ids)


def profiles_seeing_beyond(scope: Scope):
    """The staff profiles whose scope (``role_scope``) shows a unit that ``scope`` does not show: the same rule
    as a query, for the lists of accounts. ``scope`` is one ``scope_for`` gives, so it holds the predecessors
    of its units: a profile's own units (and their companies' or corporations' units) decide."""
    from crm.models import Company, Corporation, Role, StaffProfile, Unit

    if scope.everything:
        return StaffProfile.objects.none()
    outside = Unit.objects.exclude(pk__in=sorted(scope.unit_ids))
    companies = Company.objects.filter(units__in=outside).values("pk")
    corporations = Corporation.objects.filter(companies__units__in=outside).values("pk")
    profiles = StaffProfile.objects.all()
    return profiles.filter(
        models.Q(role=Role.ADMINISTRATOR)
        | models.Q(pk__in=profiles.filter(units__in=outside).values("pk"))
        | models.Q(role=Role.SUPERVISOR, pk__in=profiles.filter(units__company__in=companies).values("pk"))
        | models.Q(
            role=Role.MANAGER,
            pk__in=profiles.filter(units__company__corporation__in=corporations).values("pk"),
        )
    )


class ScopedQuerySet(models.QuerySet):
    """A queryset that knows the path from its model to ``crm.Unit``."""

    scope_path: str = "unit"
    # True where the path crosses a to-many relation: filter through a subquery so rows are not repeated.
    scope_through_many: bool = False

    @classmethod
    def scope_lookup(cls) -> str:
        """The lookup on the scope's unit ids. A foreign key to the unit is compared on its column
        (``unit_id__in``): the same SQL, without the related lookup's work on each of the ids."""
        if cls.scope_path == "unit" or cls.scope_path.endswith("__unit"):
            return f"{cls.scope_path}_id__in"
        return f"{cls.scope_path}__in"

    def for_user(self, user):
        scope = scope_for(user)
        if scope.everything:
            return self
        if not scope.unit_ids:
            return self.none()
        if self.scope_through_many:
            condition = {self.scope_lookup(): sorted(scope.unit_ids)}
            return self.filter(pk__in=self.model._base_manager.filter(**condition).values("pk"))
        # The ids as one parameter (``core.db.InValues``): a scope holds dozens of units once merges and
        # predecessors count, and every scoped query would otherwise build a placeholder for each.
        return self.filter(InValues(models.F(self.scope_lookup().removesuffix("__in")), sorted(scope.unit_ids)))

    def in_units(self, unit_ids):
        return self.filter(**{self.scope_lookup(): list(unit_ids)})
