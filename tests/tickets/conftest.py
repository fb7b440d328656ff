import pytest

from crm.models import Role


@pytest.fixture
def dispatcher(org, make_staff):
    user = make_staff(Role.DISPATCHER, [org["home"]])
    user.staff_profile.phone = "+84903999888"
    user.staff_profile.save()
    return user


@pytest.fixture
def outage_ticket(catalogue, make_customer):
    """An outage call of a customer of the home unit, just taken."""
    from tickets.services import ticket_open

    return ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                       customer=make_customer()).ticket  # fmt: skip
