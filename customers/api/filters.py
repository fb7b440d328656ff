"""FilterSets of the customers API; the admin's list filters offer the same fields."""

import django_filters
from django.utils.translation import gettext_lazy as _

from core.api.filters import CodeFilter, StrictBooleanFilter, scoped
from crm.models import Unit
from customers.models import Contract, Customer, Meter
from customers.normalise import InvalidPhone, normalise_phone


class CustomerFilter(django_filters.FilterSet):
    unit = CodeFilter(queryset=scoped(Unit), what=_("unit"), help_text="A unit's code, e.g. PE0101.")
    code = CodeFilter(queryset=scoped(Customer), what=_("customer"), help_text="A customer's code.")
    phone = django_filters.CharFilter(method="filter_phone", label="phone (any spelling)")
    is_nuisance = StrictBooleanFilter(help_text="true or false.")

    class Meta:
        model = Customer
        fields = ["unit", "customer_type", "is_nuisance", "code"]

    def filter_phone(self, queryset, name, value):
        try:
            return queryset.filter(phones__number=normalise_phone(value))
        except InvalidPhone:
            return queryset.none()


class ContractFilter(django_filters.FilterSet):
    customer = CodeFilter(queryset=scoped(Customer), what=_("customer"), help_text="A customer's code.")
    number = CodeFilter(queryset=scoped(Contract), to_field_name="number", what=_("contract"),
                        help_text="A contract's number.")  # fmt: skip

    class Meta:
        model = Contract
        fields = ["customer", "status", "tariff_category", "number"]


class MeterFilter(django_filters.FilterSet):
    unit = CodeFilter(queryset=scoped(Unit), what=_("unit"), help_text="A unit's code, e.g. PE0101.")
    serial = CodeFilter(
        queryset=scoped(Meter),
        to_field_name="serial",
        unknown=_("No meter with the serial %(value)s among those you may see."),
        help_text="A meter's serial.",
    )

    class Meta:
        model = Meter
        fields = ["unit", "kind", "status", "serial"]
