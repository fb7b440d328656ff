"""The organisation's reference data holds its invariants, and the demo's street names theirs."""

from __future__ import annotations

import unicodedata

from crm import reference_data
from customers.demo import demo_streets


def test_the_reference_organisation_holds_its_invariants():
    reference_data.check()
    active = {unit[1] for unit in reference_data.UNITS if unit[5] is None}
    assert active <= set(reference_data.wards())
    assert "Phường Bến Nghé" in reference_data.wards()["PE0100"]


def test_every_company_has_demo_streets_without_the_word_duong():
    companies = {company[1] for company in reference_data.COMPANIES}
    streets = demo_streets()
    assert set(streets) == companies
    for company, names in streets.items():
        assert 10 <= len(names) <= 25 and len(set(names)) == len(names), company
        for name in names:
            assert unicodedata.normalize("NFC", name) == name == name.strip()
            assert not name.casefold().startswith("đường"), (company, name)
