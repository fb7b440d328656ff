"""FilterSets of the tickets API: categories, units, customers and crews by their codes (``core.api.filters``)."""

import django_filters
from django.contrib.auth import get_user_model
from django.utils.translation import gettext_lazy as _

from core.api.filters import CodeFilter, IntegerFilter, scoped
from crm.models import StaffProfile, Unit
from customers.models import Customer
from tickets.models import Category, Interaction, Ticket, WorkOrder


def _staff_seen(request):
    """The users serving the units the request's user sees."""
    profiles = StaffProfile.objects.for_user(getattr(request, "user", None))
    return get_user_model().objects.filter(staff_profile__in=profiles)


class TicketFilter(django_filters.FilterSet):
    category = CodeFilter(queryset=Category.objects.all(), upper=False, lookup="iexact", what=_("request category"),
                          help_text="A category's code: outage, billing, …")  # fmt: skip
    unit = CodeFilter(queryset=scoped(Unit), what=_("unit"), help_text="A unit's code, e.g. PE0101.")
    customer = CodeFilter(queryset=scoped(Customer), what=_("customer"), help_text="A customer's code.")
    escalation_level = IntegerFilter(help_text="0 to 3.")

    class Meta:
        model = Ticket
        fields = ["status", "unit", "category", "customer", "channel", "escalation_level"]


class WorkOrderFilter(django_filters.FilterSet):
    unit = CodeFilter(queryset=scoped(Unit), what=_("unit"), help_text="A unit's code, e.g. PE0101.")
    crew = CodeFilter(
        queryset=_staff_seen,
        to_field_name="username",
        upper=False,
        lookup="iexact",  # a username is one person whatever its case, as the body field ``crew`` reads it
        unknown=_("No crew member with the username %(value)s among those you may see."),
        help_text="The crew member's username (in any case).",
    )

    class Meta:
        model = WorkOrder
        fields = ["status", "unit", "crew"]


class InteractionFilter(django_filters.FilterSet):
    unit = CodeFilter(queryset=scoped(Unit), what=_("unit"), help_text="A unit's code, e.g. PE0101.")

    class Meta:
        model = Interaction
        fields = ["channel", "disposition", "unit"]
