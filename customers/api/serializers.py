"""Output shapes of the customers API (input goes through the services, not through serializers)."""

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from core.numbers import WholeNumberSerializerField
from customers import privacy
from customers.models import Contract, Customer, CustomerPhone, Meter, MeterAssignment
from customers.selectors import contract_numbered


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
    nuisance_set_at = serializers.DateTimeField(source="customer.nuisance_set_at", allow_null=True)
    # who set the flag, as the admin's card says it (read only for a flagged customer: none when not flagged)
    nuisance_set_by = serializers.CharField(source="customer.nuisance_set_by.username", default=None, allow_null=True)
    phones = PhoneSerializer(many=True)
    contracts = CardContractSerializer(many=True)
    sections = CardSectionSerializer(many=True)


class MeterInstallInSerializer(serializers.Serializer):
    """A meter from stock goes on a contract of the caller's units, named by its number."""

    contract = serializers.CharField(
        max_length=Contract._meta.get_field("number").max_length,
        help_text="The contract's number, e.g. PE01000000001-01 (any case, as the meters import reads it).",
    )
    at = serializers.DateTimeField(help_text="When the meter went on (ISO 8601, with its offset).")
    reading = WholeNumberSerializerField(min_value=0, help_text="The register at install, in kWh.")

    def validate_contract(self, value: str) -> Contract:
        # The one lookup by number (``contract_numbered``): trimmed, any case, within the caller's units.
        try:
            return contract_numbered(user=self.context["request"].user, number=value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None


class MeterRemoveInSerializer(serializers.Serializer):
    """A meter comes off its contract with its last register: back to stock, or faulty."""

    at = serializers.DateTimeField(help_text="When the meter came off (ISO 8601, with its offset).")
    reading = WholeNumberSerializerField(min_value=0, help_text="The register at removal, in kWh.")
    reason = serializers.CharField(max_length=200)
    faulty = serializers.BooleanField(
        default=False, help_text="true: the meter goes for repair, not to stock."
    )


class MeterMoveSerializer(serializers.ModelSerializer):
    """One stay of a meter on a contract, as an install or a removal leaves it."""

    meter = serializers.CharField(source="meter.serial")
    meter_status = serializers.CharField(source="meter.status")
    contract = serializers.CharField(source="contract.number")

    class Meta:
        model = MeterAssignment
        fields = [
            "meter", "meter_status", "contract", "installed_at", "reading_at_install", "removed_at",
            "reading_at_removal", "removal_reason",
        ]  # fmt: skip
