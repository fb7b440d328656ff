"""The card's sections: an app fills a slot and may ask values of the card's customer query, under names that
two apps cannot share."""

from __future__ import annotations

import pytest
from django.db.models import Value

from customers import card_sections


def test_an_annotation_asked_by_two_sections_is_refused_and_changes_nothing():
    before = card_sections.customer_annotations()
    tickets_provider = card_sections._providers["tickets"]
    invoices = card_sections.customer_annotations().keys() & {"card_open_dispute"}
    assert invoices == {"card_open_dispute"}  # billing's, asked for the invoices' section

    with pytest.raises(ValueError, match="card_open_dispute"):
        card_sections.provide(
            "tickets", lambda **kw: {}, annotations={"card_open_dispute": Value(True)}
        )

    assert card_sections.customer_annotations() == before
    assert card_sections.customer_annotations()["card_open_dispute"] is before["card_open_dispute"]
    assert card_sections._providers["tickets"] is tickets_provider  # the tickets' section is still theirs


def test_an_annotation_named_outside_the_cards_namespace_is_refused():
    before = card_sections.customer_annotations()
    with pytest.raises(ValueError, match="card_"):
        card_sections.provide("outages", lambda **kw: {}, annotations={"open_dispute": Value(True)})
    assert card_sections.customer_annotations() == before
