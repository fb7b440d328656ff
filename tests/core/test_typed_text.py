"""Free text staff type is held to one limit on every path (the admin's forms, the ticket page's moves, the
API, the services), and a text too long is refused whole, never cut."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from billing import services as billing_services
from billing.models import Invoice
from core.text import DESCRIPTION_MAX_CHARS, NOTE_MAX_CHARS
from crm.models import Role
from customers import services as customer_services
from customers.models import MeterAssignment
from tickets import services
from tickets.models import Status, Ticket, TicketEvent


@pytest.fixture
def client(client):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "vi"
    return client


def _ticket(catalogue, customer):
    return services.ticket_open(
        actor=None, category=catalogue["outage"], channel="phone", description="Mất điện", customer=customer
    ).ticket


def test_the_admins_new_ticket_refuses_a_description_the_api_refuses_and_keeps_one_at_the_limit(
    client, staff, make_customer, catalogue
):
    customer = make_customer()
    client.force_login(staff[Role.AGENT])
    data = {"customer": customer.pk, "category": catalogue["outage"].pk, "channel": "phone", "priority": "normal"}
    url = reverse("admin:tickets_ticket_add")
    response = client.post(url, {**data, "description": "x" * (DESCRIPTION_MAX_CHARS + 1)})
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["description"] == [
        f"Giá trị này chỉ có tối đa {DESCRIPTION_MAX_CHARS} kí tự (hiện có {DESCRIPTION_MAX_CHARS + 1})"
    ]
    assert not Ticket.objects.exists()
    api = client.post(
        "/api/v1/tickets/",
        {"category": "outage", "channel": "app", "description": "x" * (DESCRIPTION_MAX_CHARS + 1),
         "customer_code": customer.code},
        content_type="application/json",
    )  # fmt: skip
    assert api.status_code == 400 and "description" in api.json()
    assert not Ticket.objects.exists()
    client.post(url, {**data, "description": "y" * DESCRIPTION_MAX_CHARS})
    assert Ticket.objects.get().description == "y" * DESCRIPTION_MAX_CHARS


def test_a_reason_too_long_on_the_ticket_page_is_refused_with_its_length_and_changes_nothing(
    client, staff, make_customer, catalogue
):
    ticket = _ticket(catalogue, make_customer())
    client.force_login(staff[Role.AGENT])
    response = client.post(
        reverse("admin:tickets_ticket_move", args=[ticket.pk]),
        {"move": "cancel", "note": "z" * (NOTE_MAX_CHARS + 5)},
        follow=True,
    )
    said = [str(m) for m in response.context["messages"]]
    assert f"Tối đa {NOTE_MAX_CHARS} ký tự (văn bản này có {NOTE_MAX_CHARS + 5})." in said[-1]
    ticket.refresh_from_db()
    assert (ticket.status, TicketEvent.objects.filter(ticket=ticket).count()) == (Status.NEW, 1)


def test_the_api_and_the_service_refuse_the_same_long_note(client, staff, make_customer, catalogue):
    ticket = _ticket(catalogue, make_customer())
    agent = staff[Role.AGENT]
    client.force_login(agent)
    api = client.post(
        f"/api/v1/tickets/{ticket.pk}/status/",
        {"status": "cancelled", "note": "z" * (NOTE_MAX_CHARS + 1)},
        content_type="application/json",
    )
    assert api.status_code == 400 and "note" in api.json()
    with pytest.raises(ValidationError) as refused:
        services.ticket_change_status(actor=agent, ticket=ticket, to=Status.CANCELLED, note="z" * (NOTE_MAX_CHARS + 1))
    assert list(refused.value.message_dict) == ["note"]
    ticket.refresh_from_db()
    assert ticket.status == Status.NEW
    # at the limit, the whole text is kept
    services.ticket_change_status(actor=agent, ticket=ticket, to=Status.CANCELLED, note="z" * NOTE_MAX_CHARS)
    assert ticket.events.get(kind="status").note == "z" * NOTE_MAX_CHARS


def test_holding_an_invoice_refuses_a_reason_its_column_cannot_keep_instead_of_cutting_it(
    make_customer, make_staff, org
):
    billing_services.tariffs_load_reference()
    customer = make_customer()
    clerk = make_staff(Role.BILLING_CLERK, [org["home"]])
    contract = customer.contracts.get()
    period = dt.date(2025, 10, 1)
    billing_services.reading_record(actor=clerk, contract=contract, period=period, value=150, source="handheld")
    billing_services.billing_run(actor=clerk, period=period, unit=org["home"])
    invoice = Invoice.objects.get(customer=customer)
    limit = Invoice._meta.get_field("hold_reason").max_length
    with pytest.raises(ValidationError) as refused:
        billing_services.invoice_hold(actor=clerk, invoice=invoice, reason="r" * (limit + 1))
    assert list(refused.value.message_dict) == ["reason"]
    invoice.refresh_from_db()
    assert (invoice.status, invoice.hold_reason) == ("draft", "")
    billing_services.invoice_hold(actor=clerk, invoice=invoice, reason="r" * limit)
    invoice.refresh_from_db()
    assert (invoice.status, invoice.hold_reason) == ("held", "r" * limit)


def test_a_meter_removal_reason_longer_than_its_column_is_refused_not_a_database_error(make_customer):
    customer = make_customer()
    assignment = MeterAssignment.objects.get(contract__customer=customer)
    limit = MeterAssignment._meta.get_field("removal_reason").max_length
    with pytest.raises(ValidationError) as refused:
        customer_services.meter_remove(
            actor=None, meter=assignment.meter, at=timezone.now(), reading=10, reason="m" * (limit + 1)
        )
    assert list(refused.value.message_dict) == ["reason"]
    assignment.refresh_from_db()
    assert assignment.removed_at is None


def test_a_callback_comment_too_long_is_refused_before_the_attempt_is_counted(staff, make_customer, catalogue):
    ticket = _ticket(catalogue, make_customer())
    services.ticket_change_status(actor=None, ticket=ticket, to=Status.ACKNOWLEDGED)
    services.ticket_change_status(actor=None, ticket=ticket, to=Status.RESOLVED)
    with pytest.raises(ValidationError) as refused:
        services.callback_record(
            actor=staff[Role.AGENT], ticket=ticket, reached=True, fix_score=5, attitude_score=5,
            comment="c" * (NOTE_MAX_CHARS + 1),
        )  # fmt: skip
    assert list(refused.value.message_dict) == ["comment"]
    assert not ticket.events.filter(kind="callback").exists()


def test_a_reason_typed_in_decomposed_unicode_is_counted_and_kept_by_its_letters(make_customer):
    import unicodedata

    # given a reason typed with a keyboard that writes each accent as a code point of its own
    reason = unicodedata.normalize("NFD", "Khách báo công tơ cháy, thay mới ") * 6
    assert len(reason.strip()) > 200 >= len(unicodedata.normalize("NFC", reason).strip())
    assignment = MeterAssignment.objects.get(contract__customer=make_customer())
    # when the meter comes off with it, then it is taken (200 letters fit the column) and kept composed
    customer_services.meter_remove(actor=None, meter=assignment.meter, at=timezone.now(), reading=10, reason=reason)
    assignment.refresh_from_db()
    assert assignment.removal_reason == unicodedata.normalize("NFC", reason).strip()


@pytest.mark.parametrize("text", ["Khách gọi\x00 nhầm", "\x00", "  nhầm\x00  "])
def test_a_nul_character_is_refused_on_its_field_with_djangos_own_words(text):
    from django.core.validators import ProhibitNullCharactersValidator

    from core.text import typed_text

    with pytest.raises(ValidationError) as refused:
        typed_text(text, field="note")
    assert refused.value.message_dict == {"note": [str(ProhibitNullCharactersValidator.message)]}


def test_a_nul_character_in_a_services_note_is_refused_in_vietnamese_and_changes_nothing(
    staff, make_customer, catalogue
):
    from django.utils import translation

    ticket = _ticket(catalogue, make_customer())
    events = ticket.events.count()
    with pytest.raises(ValidationError) as refused:
        services.ticket_change_status(actor=staff[Role.SUPERVISOR], ticket=ticket, to=Status.CANCELLED,
                                      note="Khách gọi\x00 nhầm")  # fmt: skip
    with translation.override("vi"):  # the reason is read in the language of whoever is told
        assert refused.value.message_dict == {"note": ["Không được chứa ký tự rỗng (null)."]}
    ticket.refresh_from_db()
    assert (ticket.status, ticket.events.count()) == (Status.NEW, events)


# Text typed in decomposed Unicode is counted by its letters on the API's and the admin's intake too ---------

WRITTEN = ("Mất điện từ sáng, cột điện đầu hẻm bị nghiêng, dây võng xuống sát mái tôn. " * 60)[:DESCRIPTION_MAX_CHARS]


def test_api_takes_a_description_of_4000_letters_typed_in_decomposed_unicode(client, staff, make_customer, catalogue):
    import unicodedata

    customer = make_customer()
    typed = unicodedata.normalize("NFD", WRITTEN)
    assert len(WRITTEN) == DESCRIPTION_MAX_CHARS < len(typed)
    client.force_login(staff[Role.AGENT])
    answer = client.post("/api/v1/tickets/", {"category": "billing", "channel": "app", "description": typed,
                                              "customer_code": customer.code}, content_type="application/json")  # fmt: skip
    assert answer.status_code == 201, answer.content
    assert Ticket.objects.get().description == WRITTEN
    # one letter more is still refused, by its letters
    longer = unicodedata.normalize("NFD", WRITTEN + "ố")
    refused = client.post("/api/v1/tickets/", {"category": "billing", "channel": "app", "description": longer,
                                               "customer_code": customer.code}, content_type="application/json")  # fmt: skip
    assert refused.status_code == 400 and list(refused.json()) == ["description"]
    assert Ticket.objects.count() == 1


def test_api_takes_a_caller_name_of_200_letters_typed_in_decomposed_unicode(client, staff, catalogue, org):
    import unicodedata

    written = ("Nguyễn Thị Hồng Nhung " * 10)[:200]
    typed = unicodedata.normalize("NFD", written)
    assert len(written) == 200 < len(typed)
    client.force_login(staff[Role.AGENT])
    answer = client.post("/api/v1/tickets/", {"category": "billing", "channel": "app", "description": "Hỏi hoá đơn",
                                              "caller_name": typed, "caller_phone": "0903 123 456",
                                              "unit_code": org["home"].code}, content_type="application/json")  # fmt: skip
    assert answer.status_code == 201, answer.content
    assert Ticket.objects.get().caller_name == written


def test_admin_new_ticket_takes_a_description_of_4000_letters_typed_in_decomposed_unicode(
    client, staff, make_customer, catalogue
):
    import unicodedata

    customer = make_customer()
    client.force_login(staff[Role.AGENT])
    data = {"customer": customer.pk, "category": catalogue["billing"].pk, "channel": "phone", "priority": "normal"}
    url = reverse("admin:tickets_ticket_add")
    refused = client.post(url, {**data, "description": unicodedata.normalize("NFD", WRITTEN + "ố")})
    assert refused.status_code == 200
    # the length the agent is told is the letters they typed
    assert refused.context["adminform"].form.errors["description"] == [
        f"Giá trị này chỉ có tối đa {DESCRIPTION_MAX_CHARS} kí tự (hiện có {DESCRIPTION_MAX_CHARS + 1})"
    ]
    client.post(url, {**data, "description": unicodedata.normalize("NFD", WRITTEN)})
    assert list(Ticket.objects.values_list("description", flat=True)) == [WRITTEN]
