"""A preview is imported by one confirmation: a second one (the back button, a double click, a reload of the
confirmation, a confirmation reaching a machine without the upload) writes nothing and tells the clerk so on
the import page, never a server error (``ServiceImportMixin.process_import``)."""

from __future__ import annotations

import pytest
from django.test import override_settings
from django.urls import reverse
from import_export.tmp_storages import TempFolderStorage

from crm.models import Role
from customers.models import Customer, CustomerEvent
from tests.customers.test_import_export import csv_bytes, preview

IMPORT_URL = reverse("admin:customers_customer_import")
CONFIRM_URL = reverse("admin:customers_customer_process_import")
GONE = (
    "This preview was already confirmed, or it has expired: nothing was written now. See the list for what an "
    "earlier confirmation wrote, or upload the file again."
)
ROWS = [
    {"code": "", "unit": "PE0100", "full_name": "Lê Văn Bình", "street": "1 Hai Bà Trưng",
     "ward": "Phường Bến Nghé", "phones": "0903 222 333"},
]  # fmt: skip


@pytest.fixture
def clerk_client(client, staff):
    client.force_login(staff[Role.BILLING_CLERK])
    client.raise_request_exception = False  # a 500 is an answer these tests check, not an exception
    return client


def written():
    return sorted(Customer.objects.values_list("code", "full_name")), CustomerEvent.objects.count()


def refused_again(client, data) -> None:
    """``data`` confirmed again: back on the import page with the reason, nothing written."""
    before = written()
    again = client.post(CONFIRM_URL, data, follow=True)
    assert again.redirect_chain == [(IMPORT_URL, 302)]
    assert [str(m) for m in again.context["messages"]] == [GONE]
    assert written() == before


def test_confirming_the_same_preview_twice_writes_once_and_says_so_the_second_time(clerk_client, org):
    previewed = preview(clerk_client, "customer", csv_bytes(ROWS))
    data = dict(previewed.context["confirm_form"].initial)
    first = clerk_client.post(CONFIRM_URL, data)
    assert (first.status_code, first.context["written"]) == (200, True)
    assert list(Customer.objects.filter(full_name="Lê Văn Bình").values_list("unit__code", flat=True)) == [
        "PE0100"
    ]
    refused_again(clerk_client, data)  # the back button and "Confirm import" again
    refused_again(clerk_client, data)  # and once more
    assert Customer.objects.filter(full_name="Lê Văn Bình").count() == 1


class TakenByAnotherConfirmation(TempFolderStorage):
    """The upload as a second confirmation sent at the same moment sees it: another request removes the file
    just after this one read it."""

    race = False

    def read(self):
        data = super().read()
        if TakenByAnotherConfirmation.race:
            super().remove()
        return data


def test_of_two_confirmations_at_once_only_the_one_that_takes_the_file_writes(clerk_client, org, monkeypatch):
    with override_settings(IMPORT_EXPORT_TMP_STORAGE_CLASS=TakenByAnotherConfirmation):
        previewed = preview(clerk_client, "customer", csv_bytes(ROWS))
        data = dict(previewed.context["confirm_form"].initial)
        monkeypatch.setattr(TakenByAnotherConfirmation, "race", True)
        refused_again(clerk_client, data)
    assert not Customer.objects.filter(full_name="Lê Văn Bình").exists()


def test_a_preview_kept_in_the_cache_is_confirmed_once_too(clerk_client, org):
    with override_settings(IMPORT_EXPORT_TMP_STORAGE_CLASS="import_export.tmp_storages.CacheStorage"):
        previewed = preview(clerk_client, "customer", csv_bytes(ROWS))
        data = dict(previewed.context["confirm_form"].initial)
        assert clerk_client.post(CONFIRM_URL, data).context["written"] is True
        refused_again(clerk_client, data)
    assert Customer.objects.filter(full_name="Lê Văn Bình").count() == 1
