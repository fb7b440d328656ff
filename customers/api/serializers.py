"""Output shapes of the customers API (input goes through the services, not through serializers)."""

from rest_framework import serializers

from customers import privacy
from customers.models import Contract, Customer, CustomerPhone, Meter, MeterAssignment


class CustomerSerializer(serializers.ModelSerializer):
    unit_code = serializers.CharField(source="unit.code", read_only=True)
    address = serializers.CharField(read_only=True)

    class Meta:
        model = Customer
        fields = [
            "id", "code", "full_name", "address", "street", "ward", "district", "province", "unit", "unit_code",
            "customer_type", "households", "email", "is_nuisance",
        ]  # fmt: skip


class LookupCandidateSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    code = serializers.CharField()
    full_name = serializers.CharField()
    address = serializers.CharField()
    unit_code = serializers.CharField(source="unit.code")
    customer_type = serializers.CharField()
    is_nuisance = serializers.BooleanField()
    match = serializers.ChoiceField(choices=["code", "phone", "serial", "accents", "text"])


class LookupResponseSerializer(serializers.Serializer):
    query = serializers.CharField()
    count = serializers.IntegerField()
    truncated = serializers.BooleanField(help_text="More customers match than are listed.")
    results = LookupCandidateSerializer(many=True)


class PhoneSerializer(privacy.MaskedRepresentationMixin, serializers.ModelSerializer):
    masked_fields = {"number": privacy.PHONE}

    class Meta:
        model = CustomerPhone
        fields = ["number", "is_primary", "label"]


class MeterSerializer(serializers.ModelSerializer):
    unit_code = serializers.CharField(source="unit.code", read_only=True)

    class Meta:
        model = Meter
        fields = ["id", "serial", "kind", "phases", "status", "unit", "unit_code", "manufacturer"]


class AssignmentSerializer(serializers.ModelSerializer):
    meter = serializers.CharField(source="meter.serial")
    meter_kind = serializers.CharField(source="meter.kind")
    remote_read = serializers.BooleanField(source="meter.is_remote_read")

    class Meta:
        model = MeterAssignment
        fields = [
            "meter", "meter_kind", "remote_read", "installed_at", "reading_at_install", "removed_at",
            "reading_at_removal",
        ]  # fmt: skip


class ContractSerializer(serializers.ModelSerializer):
    customer_code = serializers.CharField(source="customer.code", read_only=True)

    class Meta:
        model = Contract
        fields = [
            "id", "number", "customer", "customer_code", "tariff_category", "purpose", "start_date", "end_date",
            "status",
        ]  # fmt: skip


class CardContractSerializer(ContractSerializer):
    meters = AssignmentSerializer(source="current_assignments", many=True)
    past_meters = AssignmentSerializer(source="past_assignments", many=True)

    class Meta(ContractSerializer.Meta):
        fields = [*ContractSerializer.Meta.fields, "meters", "past_meters"]


class CardSectionSerializer(serializers.Serializer):
    key = serializers.CharField()
    title = serializers.CharField()
    columns = serializers.ListField(child=serializers.CharField())
    rows = serializers.ListField(child=serializers.ListField())


class CustomerCardSerializer(privacy.MaskedRepresentationMixin, serializers.Serializer):
    """The card as the user of the request may see it (phones and national ID: ``customers.privacy``)."""

    masked_fields = {"national_id": privacy.NATIONAL_ID}
    customer = CustomerSerializer()
    national_id = serializers.CharField(source="customer.national_id")
    nuisance_reason = serializers.CharField(source="customer.nuisance_reason")
    nuisance_set_at = serializers.DateTimeField(source="customer.nuisance_set_at")
    phones = PhoneSerializer(many=True)
    contracts = CardContractSerializer(many=True)
    sections = CardSectionSerializer(many=True)
