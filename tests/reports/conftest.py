import pytest

from crm.models import Role
from crm.services import staff_create


@pytest.fixture
def manager(org):
    """A manager of the home unit's corporation, with an e-mail for the monthly report."""
    return staff_create(
        actor=None,
        username="manager-hcm", password="s3cret-pass-word", role=Role.MANAGER, badge_number="M-1",
        units=[org["home"]], first_name="Lan", last_name="Trần", email="lan@example.vn",
    )  # fmt: skip
