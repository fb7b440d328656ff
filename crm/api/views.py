"""API of the organisation: the units a staff member may see."""

from rest_framework import serializers

from crm.api.scoped import ScopedReadOnlyViewSet
from crm.models import Unit


class UnitSerializer(serializers.ModelSerializer):
    company_code = serializers.CharField(source="company.code", read_only=True)

    class Meta:
        model = Unit
        fields = ["id", "code", "name", "district", "company_code", "valid_from", "valid_to", "successor"]


class UnitViewSet(ScopedReadOnlyViewSet):
    queryset = Unit.objects.select_related("company")
    serializer_class = UnitSerializer
    filterset_fields = ["company"]
