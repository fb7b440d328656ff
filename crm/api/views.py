"""API of the organisation: the units a staff member may see."""

import django_filters
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from core.api.filters import CodeFilter, scoped
from core.api.scoped import ScopedReadOnlyViewSet
from crm.models import Company, Unit


class UnitSerializer(serializers.ModelSerializer):
    company_code = serializers.CharField(source="company.code", read_only=True)

    class Meta:
        model = Unit
        fields = ["id", "code", "name", "district", "company_code", "valid_from", "valid_to", "successor"]


class UnitFilter(django_filters.FilterSet):
    company = CodeFilter(queryset=scoped(Company), what=_("company"), help_text="A company's code, e.g. PE01.")

    class Meta:
        model = Unit
        fields = ["company"]


class UnitViewSet(ScopedReadOnlyViewSet):
    queryset = Unit.objects.select_related("company")
    serializer_class = UnitSerializer
    filterset_class = UnitFilter
