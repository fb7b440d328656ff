"""Customers' national IDs and phones, shown in full or masked per role (``customers.privacy``), in the card,
the lists, the forms, the API and the exports; masked values are never written back."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from crm.models import Role
from customers import privacy, services
from customers.models import Customer, CustomerEvent, CustomerEventKind
from tests.exported import by_column
from tickets import services as ticket_services

NATIONAL_ID = "079123456789"
PHONE = "0903 123 456"
STORED = "+84903123456"
MASKED_ID = "********6789"
MASKED_PHONE = "**** *** 456"

# What each role sees of the national ID and the phone (the README's table).
SEEN = {
    Role.AGENT: (MASKED_ID, PHONE),
    Role.SUPERVISOR: (MASKED_ID, PHONE),
    Role.DISPATCHER: (MASKED_ID, PHONE),
    Role.FIELD_CREW: (MASKED_ID, PHONE),
    Role.BILLING_CLERK: (NATIONAL_ID, PHONE),
    Role.MANAGER: (MASKED_ID, MASKED_PHONE),
    Role.ADMINISTRATOR: (NATIONAL_ID, PHONE),
}


@pytest.fixture
def customer(make_customer, org):
    return make_customer(
        org["home"], name="Nguyễn Văn An", phones=[PHONE, "028 3822 1234"], national_id=NATIONAL_ID
    )


def test_masks_keep_only_the_last_digits():
    assert privacy.mask_phone(STORED) == privacy.mask_phone(PHONE) == MASKED_PHONE
    assert privacy.mask_phone("+842838221234") == "*** **** *234"  # a landline, read 028 3822 1234
    assert privacy.mask_national_id(NATIONAL_ID) == MASKED_ID
    assert privacy.mask_national_id("123456789") == "*****6789"  # an old 9-digit ID card
    assert privacy.mask_phone("") == privacy.mask_national_id("") == ""
    assert privacy.NOTHING.record(
        {"national_id": NATIONAL_ID, "phones": [STORED], "to": "an@example.vn", "number": "HD2026-1"}
    ) == {"national_id": MASKED_ID, "phones": [MASKED_PHONE], "to": "an@example.vn", "number": "HD2026-1"}


def test_nobody_named_sees_masks():
    assert privacy.visibility(None) == privacy.NOTHING
    assert privacy.shown_phone(None, STORED) == MASKED_PHONE


@pytest.mark.parametrize("role", list(SEEN))
def test_the_card_shows_each_role_what_it_may_see(client, staff, customer, role):
    national_id, phone = SEEN[role]
    client.force_login(staff[role])

    page = client.get(reverse("admin:customers_customer_card", args=[customer.pk]))
    api = client.get(f"/api/v1/customers/{customer.pk}/card/").json()

    assert page.context["national_id"] == national_id
    assert next(shown for _p, shown in page.context["phones"]) == phone
    html = page.content.decode()
    assert f'<td id="card-national-id">{national_id}</td>' in html
    assert (NATIONAL_ID in html) is (national_id == NATIONAL_ID)
    assert ("903 123" in html) is (phone == PHONE)
    assert api["national_id"] == national_id
    assert api["phones"][0]["number"] == (STORED if phone == PHONE else MASKED_PHONE)
    assert api["phones"][1]["number"] == ("+842838221234" if phone == PHONE else "*** **** *234")


def test_a_manager_finds_a_customer_by_the_whole_number_and_sees_it_masked(client, staff, customer):
    client.force_login(staff[Role.MANAGER])

    found = client.get(reverse("admin:customers_customer_lookup"), {"q": "84-903-123-456"})
    api = client.get("/api/v1/customers/lookup", {"q": PHONE}).json()
    phones = client.get(reverse("admin:customers_customerphone_changelist"), {"q": PHONE})

    assert found["Location"].startswith(reverse("admin:customers_customer_card", args=[customer.pk]))
    assert [r["id"] for r in api["results"]] == [customer.pk]
    html = phones.content.decode()
    assert [p.pk for p in phones.context["cl"].result_list] == [customer.phones.get(number=STORED).pk]
    assert MASKED_PHONE in html and STORED not in html


def test_the_phone_list_and_page_show_masks_to_a_manager_and_numbers_to_an_agent(client, staff, customer):
    phone = customer.phones.get(number=STORED)
    for role, shown in ((Role.MANAGER, MASKED_PHONE), (Role.AGENT, STORED)):
        client.force_login(staff[role])
        listing = client.get(reverse("admin:customers_customerphone_changelist")).content.decode()
        page = client.get(reverse("admin:customers_customerphone_change", args=[phone.pk])).content.decode()
        change = reverse("admin:customers_customerphone_change", args=[phone.pk])
        assert f'<th class="field-number"><a href="{change}">{shown}</a></th>' in listing
        assert f'<div class="readonly">{shown}</div>' in page
        assert (STORED in listing + page) is (role == Role.AGENT)


def submitted(page) -> dict:
    """What the browser would post back from an admin change page, unchanged (its form and inlines)."""
    forms = [page.context["adminform"].form]
    data = {}
    for inline in page.context["inline_admin_formsets"]:
        forms += [inline.formset.management_form, *inline.formset.forms]
    for form in forms:
        data.update({field.html_name: field.value() or "" for field in form})
    return data


def test_a_supervisor_edits_a_customer_without_seeing_or_changing_the_national_id(client, staff, customer):
    supervisor = staff[Role.SUPERVISOR]
    client.force_login(supervisor)
    url = reverse("admin:customers_customer_change", args=[customer.pk])

    page = client.get(url)
    html = page.content.decode()
    assert "national_id" not in page.context["adminform"].form.fields
    assert f'<div class="readonly">{MASKED_ID}</div>' in html and NATIONAL_ID not in html
    saved = client.post(url, {**submitted(page), "full_name": "Nguyễn Văn Ân", "national_id": "012345678901"})

    assert saved.status_code == 302
    customer.refresh_from_db()
    assert (customer.full_name, customer.national_id) == ("Nguyễn Văn Ân", NATIONAL_ID)


def test_a_manager_reads_a_customers_page_with_its_phones_and_national_id_masked(client, staff, customer):
    client.force_login(staff[Role.MANAGER])
    html = client.get(reverse("admin:customers_customer_change", args=[customer.pk])).content.decode()
    assert f'<div class="readonly">{MASKED_ID}</div>' in html
    assert f"<p>{MASKED_PHONE}</p>" in html  # the phones inline
    assert NATIONAL_ID not in html and STORED not in html and "3822 1234" not in html


def test_only_staff_who_see_the_national_id_may_change_it(staff, customer):
    with pytest.raises(ValidationError) as refused:
        services.customer_update(
            actor=staff[Role.SUPERVISOR], customer=customer, changes={"national_id": "012345678901"}
        )
    assert refused.value.message_dict == {
        "national_id": ["Only staff who may see national IDs in full may change them."]
    }
    customer.refresh_from_db()
    assert customer.national_id == NATIONAL_ID
    assert not CustomerEvent.objects.filter(customer=customer, kind=CustomerEventKind.UPDATED).exists()
    services.customer_update(
        actor=staff[Role.BILLING_CLERK], customer=customer, changes={"national_id": "012345678901"}
    )
    customer.refresh_from_db()
    assert customer.national_id == "012345678901"


def test_the_history_of_a_customer_shows_a_manager_no_national_id(client, staff, customer):
    event = CustomerEvent.objects.get(customer=customer, kind=CustomerEventKind.CREATED)
    for role, seen in ((Role.MANAGER, False), (Role.BILLING_CLERK, True)):
        client.force_login(staff[role])
        html = client.get(reverse("admin:customers_customerevent_change", args=[event.pk])).content.decode()
        assert (NATIONAL_ID in html, STORED in html) == (seen, seen)
        assert (MASKED_ID in html) is not seen


def export_rows(client) -> list[dict]:
    response = client.post(reverse("admin:customers_customer_export_all"), {"file_format": "csv"})
    body = b"".join(response.streaming_content).decode("utf-8").removeprefix("\ufeff")
    return by_column(csv.DictReader(io.StringIO(body)))


def test_the_customer_export_masks_what_the_role_may_not_see(client, staff, customer):
    client.force_login(staff[Role.MANAGER])
    (managers,) = export_rows(client)
    client.force_login(staff[Role.BILLING_CLERK])
    (clerks,) = export_rows(client)

    assert (managers["national_id"], managers["phones"]) == (MASKED_ID, f"{MASKED_PHONE}, *** **** *234")
    assert (clerks["national_id"], clerks["phones"]) == (NATIONAL_ID, f"{STORED}, +842838221234")


def test_a_masked_export_imported_back_changes_what_was_edited_and_never_the_national_id(
    client, staff, customer
):
    supervisor = staff[Role.SUPERVISOR]
    client.force_login(supervisor)
    (row,) = export_rows(client)
    assert row["national_id"] == MASKED_ID
    row["street"] = "99 Lê Lợi"
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(row))
    writer.writeheader()
    writer.writerow(row)

    previewed = client.post(
        reverse("admin:customers_customer_import"),
        {
            "import_file": SimpleUploadedFile("back.csv", out.getvalue().encode()),
            "format": "0",
            "resource": "0",
        },
    )
    assert previewed.context["problems"] == [] and previewed.context["totals"]["update"] == 1
    result = client.post(
        reverse("admin:customers_customer_process_import"), dict(previewed.context["confirm_form"].initial)
    )

    assert result.context["written"] is True
    customer.refresh_from_db()
    assert (customer.street, customer.national_id) == ("99 Lê Lợi", NATIONAL_ID)
    update = CustomerEvent.objects.get(customer=customer, kind=CustomerEventKind.UPDATED)
    assert (update.before, update.after) == ({"street": "12 Lê Lợi"}, {"street": "99 Lê Lợi"})


def test_the_database_never_stores_a_masked_national_id(customer):
    from django.db import DatabaseError, transaction

    with pytest.raises(DatabaseError), transaction.atomic():
        Customer.objects.filter(pk=customer.pk).update(national_id=MASKED_ID)
    customer.refresh_from_db()
    assert customer.national_id == NATIONAL_ID


# Tickets: the caller's phone ---------------------------------------------------------------------------


@pytest.fixture
def caller_ticket(org, catalogue):
    ticket = ticket_services.ticket_open(
        actor=None, category=catalogue["billing"], channel="phone", description="Hỏi hóa đơn",
        caller_name="Khách lạ", caller_phone="0912 000 222", unit=org["home"],
    ).ticket  # fmt: skip
    ticket_services.ticket_add_note(actor=None, ticket=ticket, body="Đã nhận", to_customer=True)
    return ticket


@pytest.mark.parametrize(("role", "phone"), [(Role.AGENT, "+84912000222"), (Role.MANAGER, "**** *** 222")])
def test_a_callers_phone_as_each_role_sees_it_in_the_ticket_api_admin_and_export(
    client, staff, caller_ticket, role, phone
):
    client.force_login(staff[role])

    listed = client.get("/api/v1/tickets/").json()["results"]
    detail = client.get(f"/api/v1/tickets/{caller_ticket.pk}/").json()
    notes = client.get(f"/api/v1/tickets/{caller_ticket.pk}/notes/").json()
    page = client.get(reverse("admin:tickets_ticket_change", args=[caller_ticket.pk])).content.decode()
    exported = client.post(reverse("admin:tickets_ticket_export_all"), {"file_format": "csv"})
    (row,) = by_column(
        csv.DictReader(io.StringIO(b"".join(exported.streaming_content).decode().removeprefix("\ufeff")))
    )

    assert [t["caller_phone"] for t in listed] == [detail["caller_phone"]] == [phone]
    assert [n["recipient"] for n in notes] == [phone]
    assert row["caller_phone"] == phone
    assert f'<div class="readonly">{phone}</div>' in page
    assert ("+84912000222" in page) is (role == Role.AGENT)


def test_the_intake_answer_shows_the_phone_as_the_integration_may_see_it(client, staff, org, catalogue):
    client.force_login(staff[Role.AGENT])
    taken = client.post(
        "/api/v1/tickets/",
        {"category": "outage", "channel": "app", "description": "Mất điện", "caller_phone": "0912 000 333",
         "caller_name": "Khách", "unit_code": org["home"].code},
        content_type="application/json",
    )  # fmt: skip
    assert taken.status_code == 201 and taken.json()["caller_phone"] == "+84912000333"


@pytest.mark.parametrize("digits", range(0, 13))
def test_a_stored_number_of_any_length_is_masked_as_it_is_read(digits):
    """Exports mask a stored number by its shape (``_masked_phone_prefix``): the same as masking the number
    as people read it, whatever its length."""
    import random

    from customers.normalise import display_phone
    from customers.privacy import MASK, PHONE_VISIBLE_DIGITS, mask_phone

    number = "+84" + "".join(random.Random(digits).choice("0123456789") for _ in range(digits))
    shown = display_phone(number)
    kept, masked, cut = 0, list(shown), len(shown)
    while cut > 0 and kept < PHONE_VISIBLE_DIGITS:  # the rule spelled out: the last 3 digits stay
        cut -= 1
        kept += shown[cut].isdigit()
    masked[:cut] = [MASK if c.isdigit() else c for c in shown[:cut]]
    expected = "".join(masked) if sum(c.isdigit() for c in shown) > PHONE_VISIBLE_DIGITS else shown
    assert mask_phone(number) == expected


def test_the_admins_masked_lookups_follow_the_privacy_rules_for_every_kind_and_role(staff):
    """The lists' refusal of URL filters on masked values (``crm.admin_base.MaskedLookupsMixin``, which the
    export log shares) says a value is whole exactly when ``customers.privacy`` shows it whole."""
    from crm.admin_base import WHOLE_VALUE_PERMISSIONS

    for user in staff.values():
        shown = privacy.visibility(user)
        for kind in (privacy.PHONE, privacy.NATIONAL_ID, privacy.RECORD):
            assert user.has_perms(WHOLE_VALUE_PERMISSIONS[kind]) == shown.shows_whole(kind), (user, kind)
