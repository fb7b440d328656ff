from django.db.models import Count

from customers import demo
from customers.models import Customer, CustomerPhone, DemoDataset, Meter, MeterAssignment
from customers.services import customer_search_text


def fingerprint():
    return (
        list(
            Customer.objects.order_by("code").values_list(
                "code", "full_name", "street", "ward", "customer_type"
            )
        ),
        list(
            CustomerPhone.objects.order_by("customer__code", "number").values_list("customer__code", "number")
        ),
        list(Meter.objects.order_by("serial").values_list("kind", "status", "phases")),
    )


def test_demo_data_is_deterministic_and_loading_twice_adds_nothing(org):
    units = org["home"].company.units.active()
    first = demo.seed(customers=300, seed=5, units=units)
    assert first["loaded"] == 300
    snapshot = fingerprint()
    again = demo.seed(customers=300, seed=5, units=units)
    assert again["loaded"] == 0
    assert fingerprint() == snapshot
    assert DemoDataset.objects.get(seed=5).customers == 300


def test_a_larger_size_extends_the_same_data(org):
    units = org["home"].company.units.active()
    demo.seed(customers=120, seed=9, units=units)
    demo.seed(customers=250, seed=9, units=units)
    stepwise = fingerprint()
    MeterAssignment.objects.all().delete()
    Meter.objects.all().delete()
    from customers.models import Contract, CustomerEvent

    CustomerEvent.objects.all().delete()
    Contract.objects.all().delete()
    Customer.objects.all().delete()
    DemoDataset.objects.all().delete()
    demo.seed(customers=250, seed=9, units=units)
    # Meter ids differ between the two histories, so compare everything but the serials.
    assert fingerprint()[:2] == stepwise[:2]


def test_demo_rows_are_what_the_services_would_write(org):
    demo.seed(customers=200, seed=3, units=org["home"].company.units.active())
    for customer in Customer.objects.all():
        assert customer.search_text == customer_search_text(customer), customer.code
        customer.full_clean()
    assert Customer.objects.filter(code__startswith="PE01").count() == 200


def test_demo_meters_are_about_46_percent_remote_read_with_history(org):
    demo.seed(customers=3000, seed=1, units=org["home"].company.units.active())
    installed = Meter.objects.filter(status="installed")
    share = installed.filter(kind="remote_read").count() / installed.count()
    assert 0.43 < share < 0.50
    assert MeterAssignment.objects.filter(removed_at__isnull=False).count() > 300
    per_meter = MeterAssignment.objects.values("meter").annotate(n=Count("id")).filter(n__gt=1)
    assert not per_meter.exists()
    assert Customer.objects.filter(phones__isnull=True).count() < 150
