"""Internal notes apart from messages to the customer, attachments served only in scope, and assignment."""

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings

from crm.models import OutboxMessage, Role
from tickets import services
from tickets.models import EventKind, TicketAttachment, TicketEvent, TicketNote


@pytest.fixture
def ticket(make_customer, catalogue):
    customer = make_customer(phones=["0903 555 666"])
    return services.ticket_open(
        actor=None,
        category=catalogue["billing"],
        channel="phone",
        description="Hóa đơn cao",
        customer=customer,
    ).ticket


def _photo(name="meter.jpg", data=b"\xff\xd8\xff photo of the meter"):
    return SimpleUploadedFile(name, data, content_type="image/jpeg")


def test_an_internal_note_is_never_sent_and_a_message_goes_to_the_customers_phone(ticket, staff):
    agent = staff[Role.AGENT]
    sent_before = OutboxMessage.objects.count()
    note = services.ticket_add_note(actor=agent, ticket=ticket, body="  Khách nóng tính  ")
    assert (note.to_customer, note.body, note.recipient) == (False, "Khách nóng tính", "")
    assert OutboxMessage.objects.count() == sent_before

    message = services.ticket_add_note(
        actor=agent, ticket=ticket, body="Chúng tôi đang kiểm tra", to_customer=True
    )
    assert message.recipient == "+84903555666"
    sms = OutboxMessage.objects.get(dedupe_key=f"ticket-note:{message.pk}")
    assert (sms.channel, sms.recipient) == ("sms", "+84903555666")
    assert sms.body == f"{ticket.number}: Chúng tôi đang kiểm tra"
    kinds = list(TicketEvent.objects.filter(ticket=ticket).order_by("id").values_list("kind", "actor"))
    assert kinds[-2:] == [(EventKind.NOTE, agent.pk), (EventKind.MESSAGE, agent.pk)]


def test_a_message_to_a_customer_with_only_a_landline_goes_to_their_email(make_customer, catalogue, staff):
    # given a customer whose only phone is a landline (no SMS reaches it), with an e-mail on file
    customer = make_customer(phones=["(028) 3822 1234"], email="an.nguyen@example.vn")
    ticket = services.ticket_open(
        actor=None, category=catalogue["billing"], channel="email", description="Hóa đơn cao", customer=customer
    ).ticket
    # when an agent sends them a message
    note = services.ticket_add_note(
        actor=staff[Role.AGENT], ticket=ticket, body="Chúng tôi đang kiểm tra", to_customer=True
    )
    # then it goes by e-mail
    message = OutboxMessage.objects.get(dedupe_key=f"ticket-note:{note.pk}")
    assert (note.recipient, message.channel, message.recipient) == (
        "an.nguyen@example.vn", "email", "an.nguyen@example.vn",
    )  # fmt: skip


def test_a_message_goes_to_a_customers_mobile_when_the_caller_and_the_primary_phone_are_landlines(
    make_customer, catalogue, staff
):
    # given a customer whose primary phone is a landline and who has a mobile too, calling from a landline
    customer = make_customer(phones=["028 3822 1234", "0903 555 777"], email="an.nguyen@example.vn")
    assert customer.phones.get(is_primary=True).number == "+842838221234"
    ticket = services.ticket_open(
        actor=None, category=catalogue["billing"], channel="phone", description="Hóa đơn cao", customer=customer,
        caller_phone="024 3933 0000",
    ).ticket  # fmt: skip
    # when an agent sends them a message
    note = services.ticket_add_note(actor=staff[Role.AGENT], ticket=ticket, body="Đã kiểm tra", to_customer=True)
    # then it goes by SMS to their mobile
    message = OutboxMessage.objects.get(dedupe_key=f"ticket-note:{note.pk}")
    assert (message.channel, message.recipient) == ("sms", "+84903555777")


def test_a_customer_with_only_a_landline_and_no_email_is_not_sent_a_message(make_customer, catalogue, staff):
    customer = make_customer(phones=["(028) 3822 1234"])
    ticket = services.ticket_open(
        actor=None, category=catalogue["billing"], channel="phone", description="Hóa đơn cao", customer=customer
    ).ticket
    before = (TicketNote.objects.count(), OutboxMessage.objects.count())
    with pytest.raises(ValidationError, match="no mobile phone or e-mail"):
        services.ticket_add_note(actor=staff[Role.AGENT], ticket=ticket, body="Xin chào", to_customer=True)
    assert (TicketNote.objects.count(), OutboxMessage.objects.count()) == before


def test_bad_notes_are_refused_and_write_nothing(ticket, staff, catalogue):
    before = (TicketNote.objects.count(), TicketEvent.objects.count(), OutboxMessage.objects.count())
    with pytest.raises(ValidationError):
        services.ticket_add_note(actor=None, ticket=ticket, body="   ")
    with pytest.raises(ValidationError):
        services.ticket_add_note(actor=None, ticket=ticket, body="x" * 481, to_customer=True)
    unknown = services.ticket_open(
        actor=None, category=catalogue["information"], channel="website", description="?", caller_name="Ẩn danh",
        unit=ticket.unit,
    ).ticket  # fmt: skip
    before = (TicketNote.objects.count(), TicketEvent.objects.count(), OutboxMessage.objects.count())
    with pytest.raises(ValidationError, match="no mobile phone or e-mail"):
        services.ticket_add_note(actor=None, ticket=unknown, body="Xin chào", to_customer=True)
    assert (TicketNote.objects.count(), TicketEvent.objects.count(), OutboxMessage.objects.count()) == before


def test_attachments_check_type_and_size_and_keep_the_uploaded_name(ticket, staff):
    attachment = services.ticket_attach(actor=staff[Role.AGENT], ticket=ticket, upload=_photo("Đồng hồ.JPG"))
    assert (attachment.name, attachment.size, attachment.content_type) == ("Đồng hồ.JPG", 22, "image/jpeg")
    assert attachment.file.name.startswith("tickets/") and "Đồng" not in attachment.file.name
    assert attachment.file.read() == b"\xff\xd8\xff photo of the meter"
    count = TicketAttachment.objects.count()
    with pytest.raises(ValidationError, match="not taken"):
        services.ticket_attach(actor=None, ticket=ticket, upload=_photo("virus.exe"))
    with pytest.raises(ValidationError, match="empty"):
        services.ticket_attach(actor=None, ticket=ticket, upload=_photo(data=b""))
    with override_settings(TONGDAI_ATTACHMENT_MAX_BYTES=10), pytest.raises(ValidationError, match="larger"):
        services.ticket_attach(actor=None, ticket=ticket, upload=_photo())
    assert TicketAttachment.objects.count() == count


def test_attachment_download_is_scoped(client, staff, two_customers, make_staff, org):
    mine, theirs = two_customers
    own = TicketAttachment.objects.get(ticket__customer=mine)
    foreign = TicketAttachment.objects.get(ticket__customer=theirs)
    client.force_login(staff[Role.AGENT])
    response = client.get(f"/tickets/attachments/{own.pk}/")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"\xff\xd8\xff photo"
    assert "meter.jpg" in response["Content-Disposition"]
    assert client.get(f"/tickets/attachments/{foreign.pk}/").status_code == 404
    client.logout()
    assert client.get(f"/tickets/attachments/{own.pk}/").status_code == 302  # to the login page


def test_api_notes_and_attachments(client, staff, ticket):
    client.force_login(staff[Role.AGENT])
    url = f"/api/v1/tickets/{ticket.pk}/notes/"
    created = client.post(url, {"body": "Đã gọi khách", "to_customer": True}, content_type="application/json")
    assert created.status_code == 201, created.content
    assert created.json()["recipient"] == "+84903555666"
    assert client.post(url, {"body": ""}, content_type="application/json").status_code == 400
    listed = client.get(url).json()
    assert [(n["body"], n["to_customer"], n["author"]) for n in listed] == [
        ("Đã gọi khách", True, staff[Role.AGENT].username)
    ]
    files = f"/api/v1/tickets/{ticket.pk}/attachments/"
    uploaded = client.post(files, {"file": _photo()})
    assert uploaded.status_code == 201, uploaded.content
    assert client.get(uploaded.json()["download"]).status_code == 200
    refused = client.post(files, {"file": _photo("a.exe")})
    assert refused.status_code == 400 and "not taken" in str(refused.json())
    assert [a["name"] for a in client.get(files).json()] == ["meter.jpg"]
    client.force_login(staff[Role.MANAGER])  # managers read but do not write on tickets
    assert client.post(url, {"body": "x"}, content_type="application/json").status_code == 403
    assert client.post(files, {"file": _photo()}).status_code == 403
    assert len(client.get(url).json()) == 1
    assert TicketNote.objects.count() == 1 and TicketAttachment.objects.count() == 1


def test_assignment_rules(client, staff, ticket, make_staff, org):
    agent, supervisor = staff[Role.AGENT], staff[Role.SUPERVISOR]
    client.force_login(agent)
    url = f"/api/v1/tickets/{ticket.pk}/assign/"
    taken = client.post(url, {"assignee": agent.username}, content_type="application/json")
    assert taken.status_code == 200 and taken.json()["assignee"] == agent.pk
    # An agent cannot hand a ticket to somebody else; nothing changes.
    refused = client.post(url, {"assignee": supervisor.username}, content_type="application/json")
    assert refused.status_code == 400
    ticket.refresh_from_db()
    assert ticket.assignee_id == agent.pk
    client.force_login(supervisor)
    outsider = make_staff(Role.AGENT, [org["other_company"]])
    refused = client.post(url, {"assignee": outsider.username}, content_type="application/json")
    assert refused.status_code == 400 and "unit" in str(refused.json())
    given = client.post(url, {"assignee": supervisor.username}, content_type="application/json")
    assert given.json()["assignee"] == supervisor.pk
    events = TicketEvent.objects.filter(ticket=ticket, kind=EventKind.ASSIGNED).order_by("id")
    assert [(e.before, e.after) for e in events] == [
        ({"assignee": None}, {"assignee": agent.pk}),
        ({"assignee": agent.pk}, {"assignee": supervisor.pk}),
    ]
    assert client.post(url, {"assignee": "nobody"}, content_type="application/json").status_code == 400


def test_admin_change_page_writes_notes_and_files_through_the_services(client, staff, ticket):
    client.force_login(staff[Role.AGENT])
    url = f"/admin/tickets/ticket/{ticket.pk}/change/"
    page = client.get(url)
    assert page.status_code == 200
    form = {
        "notes-TOTAL_FORMS": "1", "notes-INITIAL_FORMS": "0", "notes-MIN_NUM_FORMS": "0", "notes-MAX_NUM_FORMS": "1",
        "notes-0-body": "Hẹn 15h", "notes-0-to_customer": "on",
        "attachments-TOTAL_FORMS": "1", "attachments-INITIAL_FORMS": "0", "attachments-MIN_NUM_FORMS": "0",
        "attachments-MAX_NUM_FORMS": "1", "attachments-0-file": _photo(),
    }  # fmt: skip
    prefixes = {f.prefix for f in page.context["inline_admin_formsets"] for f in [f.formset]}
    # The read-only history inlines and the add inlines share a model; Django numbers their prefixes.
    add_note = next(p for p in prefixes if p.startswith("notes") and p != "notes")
    add_file = next(p for p in prefixes if p.startswith("attachments") and p != "attachments")
    data = {}
    for key, value in form.items():
        data[key.replace("notes-", f"{add_note}-").replace("attachments-", f"{add_file}-")] = value
    for prefix in ("notes", "attachments"):
        data.update({f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"})
    response = client.post(url, data)
    assert response.status_code == 302, response.context and response.context.get("errors")
    note = TicketNote.objects.get(ticket=ticket)
    assert (note.body, note.to_customer, note.recipient, note.author) == (
        "Hẹn 15h",
        True,
        "+84903555666",
        staff[Role.AGENT],
    )
    assert OutboxMessage.objects.filter(dedupe_key=f"ticket-note:{note.pk}").exists()
    assert TicketAttachment.objects.get(ticket=ticket).name == "meter.jpg"
    ticket.refresh_from_db()
    assert ticket.status == "new"  # saving the page changed nothing else
    page = client.get(url)
    assert "Hẹn 15h" in page.content.decode() and "meter.jpg" in page.content.decode()


def test_admin_take_and_assign_actions(client, staff, ticket):
    supervisor, agent = staff[Role.SUPERVISOR], staff[Role.AGENT]
    client.force_login(agent)
    changelist = "/admin/tickets/ticket/"
    client.post(changelist, {"action": "take", "_selected_action": [ticket.pk]})
    ticket.refresh_from_db()
    assert ticket.assignee == agent
    page = client.get(changelist)
    assert "assign" not in [a[0] for a in page.context["action_form"].fields["action"].choices]
    client.force_login(supervisor)
    form = client.post(changelist, {"action": "assign", "_selected_action": [ticket.pk]})
    assert form.status_code == 200 and ticket.number in form.content.decode()
    assert set(form.context["form"].fields["assignee"].queryset) >= {agent, supervisor}
    client.post(changelist, {"action": "assign", "_selected_action": [ticket.pk], "assignee": supervisor.pk})
    ticket.refresh_from_db()
    assert ticket.assignee == supervisor
