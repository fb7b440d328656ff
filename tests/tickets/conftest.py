import pytest

from crm.models import Role


@pytest.fixture
def dispatcher(org, make_staff):
    user = make_staff(Role.DISPATCHER, [org["home"]])
    user.staff_profile.phone = "+84903999888"
    user.staff_profile.save()
    return user
