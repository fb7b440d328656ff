"""Clear refusals: who called, a bad phone, an outage's wards, the API's filters by code, and who a ticket
may be given to. Each refusal says what is wrong, where, and changes nothing."""

from django.urls import reverse
from django.utils import timezone

from crm.models import Role
from tickets import services
from tickets.models import Incident, Ticket, TicketEvent, WorkOrder
from tickets.selectors import unit_wards
from tickets.services import ticket_open

ADD = "admin:tickets_ticket_add"


def _unknown_caller(catalogue, org, **fields):
    return {"category": catalogue["outage"].pk, "channel": "phone", "priority": "normal",
            "description": "Mất điện", "unit": org["home"].pk, **fields}  # fmt: skip


def test_an_unknown_caller_with_no_phone_and_no_name_is_a_clear_form_error(client, staff, catalogue, org):
    client.force_login(staff[Role.AGENT])
    response = client.post(reverse(ADD), _unknown_caller(catalogue, org))
    assert response.status_code == 200  # the form again, with what the agent typed
    page = response.content.decode()
    assert "For an unknown caller, take at least a phone number or a name." in page
    assert "is violated" not in page and "tickets_ticket_who_called" not in page
    assert "Mất điện" in page
    assert Ticket.objects.count() == 0


def test_an_invalid_phone_is_reported_as_invalid_not_missing(client, staff, catalogue, org):
    client.force_login(staff[Role.AGENT])
    response = client.post(reverse(ADD), _unknown_caller(catalogue, org, caller_phone="12"))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["caller_phone"]
    assert "take at least" not in errors["caller_phone"][0]
    assert Ticket.objects.count() == 0
    # The same through the API and the service: the phone is invalid, not missing.
    api = client.post("/api/v1/tickets/", {"category": "outage", "channel": "phone", "description": "x",
                                           "caller_phone": "12", "unit_code": org["home"].code},
                      content_type="application/json")  # fmt: skip
    assert api.status_code == 400 and "take at least" not in api.json()["caller_phone"][0]
    nobody = client.post("/api/v1/tickets/", {"category": "outage", "channel": "phone", "description": "x",
                                              "unit_code": org["home"].code}, content_type="application/json")  # fmt: skip
    assert nobody.status_code == 400
    assert nobody.json()["caller_phone"] == ["For an unknown caller, take at least a phone number or a name."]
    # A phone spelt with +84 and spaces is taken, stored normalised.
    taken = client.post(reverse(ADD), _unknown_caller(catalogue, org, caller_phone="+84 903 123 456"))
    assert taken.status_code == 302, taken.content.decode()[:2000]
    assert Ticket.objects.get().caller_phone == "+84903123456"


def test_an_outages_wards_are_picked_from_the_units_list(client, staff, org):
    from crm.models import Unit

    unit = Unit.objects.get(code="PE0101")  # its wards include Phường 12
    dispatcher = staff[Role.DISPATCHER]
    dispatcher.staff_profile.units.add(unit)
    client.force_login(dispatcher)
    url = reverse("admin:tickets_incident_add")
    form = client.get(url)
    assert form.status_code == 200
    page = form.content.decode()
    assert "<textarea" not in page.split('name="wards"')[0][-300:]
    assert '<select name="wards"' in page and '<option value="Phường 12">' in page
    data = {"unit": unit.pk, "wards": ["Phường 12"], "cause": "Sự cố trạm biến áp",
            "started_at_0": timezone.localtime().strftime("%Y-%m-%d"), "started_at_1": "08:00:00"}  # fmt: skip
    created = client.post(url, data)
    assert created.status_code == 302, created.content.decode()[:3000]
    assert Incident.objects.get().wards == ["Phường 12"]
    # A ward of another unit is refused on the field, and nothing is written.
    elsewhere = next(w for w in unit_wards(org["home"]) if w not in unit_wards(unit))  # PE0100's, not PE0101's
    refused = client.post(url, {**data, "wards": [elsewhere]})
    assert refused.status_code == 200
    assert "does not serve" in refused.context["adminform"].form.errors["wards"][0]
    assert Incident.objects.count() == 1


def test_api_list_filters_take_codes_and_refuse_unknown_ones(client, staff, make_customer, catalogue, org):
    mine = make_customer(name="Võ Văn Ba", phones=["0903 000 001"])
    other = make_customer(name="Đỗ Thị Năm", phones=["0903 000 002"])
    outage = ticket_open(
        actor=None, category=catalogue["outage"], channel="phone", description="x", customer=mine
    ).ticket  # fmt: skip
    ticket_open(actor=None, category=catalogue["billing"], channel="app", description="y", customer=other)
    crew = staff[Role.FIELD_CREW]
    services.work_order_create(actor=None, ticket=outage, crew=crew)
    client.force_login(staff[Role.SUPERVISOR])

    def numbers(path, **params):
        response = client.get(path, params)
        assert response.status_code == 200, response.content
        return [row.get("number") or row.get("ticket") for row in response.json()["results"]]

    assert numbers("/api/v1/tickets/", category="outage") == [outage.number]
    assert numbers("/api/v1/tickets/", customer=mine.code) == [outage.number]
    assert numbers("/api/v1/tickets/", customer=mine.code.lower()) == [outage.number]
    assert len(numbers("/api/v1/tickets/", unit=org["home"].code)) == 2
    assert len(numbers("/api/v1/work-orders/", unit=org["home"].code, crew=crew.username)) == 1
    for path, params, field in [
        ("/api/v1/tickets/", {"category": "no-such"}, "category"),
        ("/api/v1/tickets/", {"unit": "PE9999"}, "unit"),
        ("/api/v1/tickets/", {"unit": str(org["home"].pk)}, "unit"),  # an internal id is not a code
        ("/api/v1/tickets/", {"unit": org["other_corporation"].code}, "unit"),  # not among the user's units
        ("/api/v1/tickets/", {"customer": "PE01XYZ"}, "customer"),
        ("/api/v1/work-orders/", {"crew": "nobody"}, "crew"),
        ("/api/v1/customers/", {"unit": "PE9999"}, "unit"),
        ("/api/v1/invoices/", {"unit": "PE9999"}, "unit"),
    ]:
        response = client.get(path, params)
        assert response.status_code == 400, (path, params, response.content)
        assert "among those you may see" in response.json()[field][0]


def test_dispatchers_assign_only_to_staff_who_can_work_the_ticket(client, staff, make_customer, catalogue):
    ticket = ticket_open(
        actor=None, category=catalogue["outage"], channel="phone", description="x", customer=make_customer()
    ).ticket  # fmt: skip
    dispatcher, clerk, manager = staff[Role.DISPATCHER], staff[Role.BILLING_CLERK], staff[Role.MANAGER]
    client.force_login(dispatcher)
    url = f"/api/v1/tickets/{ticket.pk}/assign/"
    for outsider in (clerk, manager):  # they serve the unit, but their roles do not work tickets
        refused = client.post(url, {"assignee": outsider.username}, content_type="application/json")
        assert refused.status_code == 400, refused.content
        assert "does not work tickets" in refused.json()["assignee"][0]
    ticket.refresh_from_db()
    assert ticket.assignee_id is None
    assert not TicketEvent.objects.filter(ticket=ticket, kind="assigned").exists()
    # The admin offers only the staff who can work it.
    changelist = reverse("admin:tickets_ticket_changelist")
    form = client.post(changelist, {"action": "assign", "_selected_action": [ticket.pk]})
    offered = set(form.context["form"].fields["assignee"].queryset)
    assert offered == {staff[Role.AGENT], staff[Role.SUPERVISOR], dispatcher, staff[Role.FIELD_CREW]}
    given = client.post(url, {"assignee": staff[Role.FIELD_CREW].username}, content_type="application/json")
    assert given.status_code == 200
    assert WorkOrder.objects.count() == 0


def test_a_note_on_an_unknown_callers_ticket_saves_and_leaves_the_phone_alone(client, staff, catalogue, org):
    ticket = ticket_open(
        actor=None, category=catalogue["outage"], channel="phone", description="Mất điện", unit=org["home"],
        caller_phone="0912 345 678",
    ).ticket  # fmt: skip
    client.force_login(staff[Role.AGENT])
    url = reverse("admin:tickets_ticket_change", args=[ticket.pk])
    page = client.get(url)
    assert 'name="caller_phone"' not in page.content.decode()  # shown, never an input, on a taken ticket
    form = page.context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None}
    for inline in page.context["inline_admin_formsets"]:
        management = inline.formset.management_form
        data.update({management.add_prefix(k): v for k, v in management.initial.items()})
        if inline.formset.model.__name__ == "TicketNote" and inline.formset.extra:
            data[f"{inline.formset.prefix}-0-body"] = "Đã gọi lại cho khách"
    saved = client.post(url, data)
    assert saved.status_code == 302, saved.content.decode()[:2000]
    ticket.refresh_from_db()
    assert ticket.caller_phone == "+84912345678"
    assert ticket.notes.get().body == "Đã gọi lại cho khách"


def test_api_refusal_of_an_unknown_caller_without_unit_names_the_unit_code_field(client, staff, catalogue):
    client.force_login(staff[Role.AGENT])
    answer = client.post("/api/v1/tickets/", {"category": "billing", "channel": "app", "description": "Hỏi giá điện",
                                              "caller_phone": "0903 123 456"}, content_type="application/json")  # fmt: skip
    assert answer.status_code == 400
    assert answer.json() == {"unit_code": ["For an unknown caller, choose the unit responsible for the address."]}
    assert not Ticket.objects.exists()


def test_api_refusal_of_another_customers_contract_names_the_contract_number_field(
    client, staff, make_customer, catalogue
):
    mine = make_customer()
    other = make_customer(name="Trần Văn Bình", phones=["0903 222 333"])
    client.force_login(staff[Role.AGENT])
    answer = client.post("/api/v1/tickets/", {"category": "billing", "channel": "app", "description": "Hỏi hoá đơn",
                                              "customer_code": mine.code,
                                              "contract_number": other.contracts.get().number},
                         content_type="application/json")  # fmt: skip
    assert answer.status_code == 400
    assert answer.json() == {"contract_number": ["The contract is not the customer's."]}
    assert not Ticket.objects.exists()


def test_api_refuses_a_customers_ticket_sent_to_another_unit_by_unit_code(
    client, make_staff, make_customer, catalogue, org
):
    agent = make_staff(Role.AGENT, [org["home"], org["sibling"]])  # serves both units
    customer = make_customer()  # a customer of the home unit
    client.force_login(agent)
    payload = {"category": "billing", "channel": "website", "description": "Hỏi hoá đơn",
               "customer_code": customer.code}  # fmt: skip
    answer = client.post("/api/v1/tickets/", {**payload, "unit_code": org["sibling"].code},
                         content_type="application/json")  # fmt: skip
    assert answer.status_code == 400
    assert answer.json() == {"unit_code": [f"A customer's ticket goes to their unit ({org['home'].code})."]}
    assert not Ticket.objects.exists()
    # the customer's own unit named beside them is taken, and so is no unit at all: both in the customer's unit
    for extra in ({"unit_code": org["home"].code}, {}):
        taken = client.post("/api/v1/tickets/", {**payload, **extra}, content_type="application/json")
        assert taken.status_code == 201, taken.content
    assert list(Ticket.objects.values_list("unit__code", flat=True)) == [org["home"].code] * 2


def test_the_service_refuses_a_customers_ticket_for_another_unit(make_customer, catalogue, org):
    from django.core.exceptions import ValidationError

    customer = make_customer()
    try:
        ticket_open(actor=None, category=catalogue["billing"], channel="phone", description="Hỏi hoá đơn",
                    customer=customer, unit=org["sibling"])  # fmt: skip
    except ValidationError as exc:
        assert exc.message_dict == {"unit": [f"A customer's ticket goes to their unit ({org['home'].code})."]}
    else:
        raise AssertionError("taken in another unit")
    assert not Ticket.objects.exists()


def test_unknown_caller_phone_typed_with_the_trunk_zero_in_brackets_is_taken(client, staff, catalogue, org):
    client.force_login(staff[Role.AGENT])
    answers = []
    for typed in ("+84 (0) 903 123 456", "(+84) 903 123 456"):
        answer = client.post("/api/v1/tickets/", {"category": "billing", "channel": "sms", "description": "Hỏi giá điện",
                                                  "caller_phone": typed, "unit_code": org["home"].code},
                             content_type="application/json")  # fmt: skip
        answers.append((typed, answer.status_code))
    assert answers == [("+84 (0) 903 123 456", 201), ("(+84) 903 123 456", 201)]
    assert list(Ticket.objects.values_list("caller_phone", flat=True)) == ["+84903123456", "+84903123456"]
