import pytest

from crm.models import Role
from tickets.models import Category
from tickets.services import catalogue_load_reference


@pytest.fixture
def catalogue(db):
    catalogue_load_reference()
    return {c.code: c for c in Category.objects.all()}


@pytest.fixture
def dispatcher(org, make_staff):
    user = make_staff(Role.DISPATCHER, [org["home"]])
    user.staff_profile.phone = "+84903999888"
    user.staff_profile.save()
    return user
