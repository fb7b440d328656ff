"""The service catalogue's reference load: missing rows created in a few statements, nothing an administrator
changed overwritten, a second run a no-op."""

from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext

from tickets import reference
from tickets.models import Category, Holiday, SlaPolicy
from tickets.services import catalogue_load_reference


def test_the_first_load_creates_every_row_and_the_second_changes_nothing(db):
    created = catalogue_load_reference()
    assert created == {
        "categories": len(reference.CATEGORIES),
        "policies": len(reference.CATEGORIES),
        "holidays": len(reference.HOLIDAYS),
    }
    outage = Category.objects.get(code="outage")
    assert outage.is_outage
    assert SlaPolicy.objects.get(category=outage).resolve_minutes == next(
        minutes for code, _n, _o, minutes, _d in reference.CATEGORIES if code == "outage"
    )
    before = (
        list(Category.objects.order_by("pk").values_list()),
        list(SlaPolicy.objects.order_by("pk").values_list()),
        list(Holiday.objects.order_by("pk").values_list()),
    )
    with CaptureQueriesContext(connection) as queries:
        again = catalogue_load_reference()
    assert again == {"categories": 0, "policies": 0, "holidays": 0}
    writes = [q["sql"] for q in queries if q["sql"].split()[0].upper() in ("INSERT", "UPDATE", "DELETE")]
    assert writes == []
    assert before == (
        list(Category.objects.order_by("pk").values_list()),
        list(SlaPolicy.objects.order_by("pk").values_list()),
        list(Holiday.objects.order_by("pk").values_list()),
    )


def test_what_an_administrator_changed_is_kept_and_only_what_is_missing_comes_back(db):
    catalogue_load_reference()
    Category.objects.filter(code="outage").update(name="Mất điện (đổi tên)")
    first_holiday = Holiday.objects.order_by("day").first()
    first_holiday.delete()
    billing = Category.objects.get(code="billing")
    SlaPolicy.objects.filter(category=billing).delete()

    created = catalogue_load_reference()

    assert created == {"categories": 0, "policies": 1, "holidays": 0}
    assert Category.objects.get(code="outage").name == "Mất điện (đổi tên)"
    # a day off the administrator removed stays removed (its year's other days are kept): never put back
    assert not Holiday.objects.filter(day=first_holiday.day).exists()
    assert SlaPolicy.objects.filter(category=billing, valid_from=reference.POLICIES_FROM).count() == 1
