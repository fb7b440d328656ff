import pytest
from django.apps import apps
from django.contrib import admin
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from core import db
from crm.models import Role
from customers.models import Customer, CustomerEventKind
from tests.customers.test_import_export import confirm, csv_bytes, customer_row, preview


@pytest.fixture
def agent_client(client, staff):
    client.force_login(staff[Role.AGENT])
    return client


def test_admin_index_links_the_caller_lookup(agent_client):
    response = agent_client.get(reverse("admin:index"))
    assert response.status_code == 200
    assert reverse("admin:customers_customer_lookup") in response.content.decode()


def test_lookup_page_lists_candidates_linking_to_the_card(agent_client, make_customer):
    customer = make_customer(name="Nguyễn Văn An", phones=["0903 123 456"])
    response = agent_client.get(reverse("admin:customers_customer_lookup"), {"q": "nguyen van an"})
    assert response.status_code == 200
    assert [c.pk for c in response.context["found"].customers] == [customer.pk]
    assert reverse("admin:customers_customer_card", args=[customer.pk]) in response.content.decode()


def test_a_lookup_with_one_exact_match_opens_the_card_with_the_number_calling(agent_client, make_customer):
    customer = make_customer(name="Nguyễn Văn An", phones=["0903 123 456"])
    card = reverse("admin:customers_customer_card", args=[customer.pk])
    by_phone = agent_client.get(reverse("admin:customers_customer_lookup"), {"q": "84-903-123-456"})
    assert (by_phone.status_code, by_phone["Location"]) == (302, f"{card}?phone=%2B84903123456")
    by_code = agent_client.get(reverse("admin:customers_customer_lookup"), {"q": customer.code.lower()})
    assert (by_code.status_code, by_code["Location"]) == (302, card)


def test_lookup_page_answers_bad_input_with_a_message_not_a_500(agent_client, org):
    response = agent_client.get(reverse("admin:customers_customer_lookup"), {"q": "!!!"})
    assert response.status_code == 400
    assert response.context["error"] == "The search text has no letters or digits."


def test_card_shows_identity_contracts_meters_and_the_empty_sections(agent_client, make_customer):
    customer = make_customer(name="Lê Thị Bé", phones=["0903 123 456", "028 3822 1234"])
    response = agent_client.get(reverse("admin:customers_customer_card", args=[customer.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert customer.code in html
    assert "0903 123 456" in html
    assert "028 3822 1234" in html
    # a remote-read meter's kind is marked out, and named once ("Remote-read electronic", not twice "remote-read")
    assert '<strong class="remote-read">Remote-read electronic</strong>' in html
    assert html.count("emote-read electronic") == 1 and ">remote-read<" not in html
    card = response.context["card"]
    assert [s.key for s in card.sections] == ["tickets", "invoices", "outages"]
    assert all(not s.rows for s in card.sections)
    assert [c.number for c in card.contracts] == [f"{customer.code}-01"]


def test_card_takes_a_constant_number_of_queries(agent_client, make_customer, org):
    one = make_customer(name="Một", phones=["0903 000 001"])
    many = make_customer(name="Nhiều", phones=["0903 000 002", "0903 000 003"])
    from customers import services

    for _ in range(3):
        services.contract_create(
            actor=None, customer=many, purpose="Kinh doanh", start_date=many.created_at.date()
        )
    counts = []
    for customer in (one, many):
        with CaptureQueriesContext(connection) as ctx:
            assert (
                agent_client.get(reverse("admin:customers_customer_card", args=[customer.pk])).status_code
                == 200
            )
        counts.append(len(ctx))
    assert counts[0] == counts[1]


def test_agent_flags_a_nuisance_caller_from_the_card(agent_client, make_customer, staff):
    customer = make_customer()
    url = reverse("admin:customers_customer_card", args=[customer.pk])
    response = agent_client.post(url, {"action": "flag", "reason": "Chửi bới nhân viên"})
    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.is_nuisance
    assert customer.nuisance_set_by == staff[Role.AGENT]
    assert customer.events.filter(kind=CustomerEventKind.NUISANCE_FLAGGED).count() == 1


def test_a_role_without_the_permission_cannot_flag(client, staff, make_customer):
    customer = make_customer()
    client.force_login(staff[Role.DISPATCHER])
    response = client.post(
        reverse("admin:customers_customer_card", args=[customer.pk]), {"action": "flag", "reason": "x"}
    )
    assert response.status_code == 403
    customer.refresh_from_db()
    assert not customer.is_nuisance
    assert not customer.events.filter(kind=CustomerEventKind.NUISANCE_FLAGGED).exists()


def test_admin_search_box_goes_through_the_lookup(agent_client, make_customer):
    wanted = make_customer(name="Đặng Văn Đạt", phones=["0903 000 009"])
    make_customer(name="Lê Văn Tám", phones=["0903 000 010"])
    response = agent_client.get(reverse("admin:customers_customer_changelist"), {"q": "dang van dat"})
    assert [c.pk for c in response.context["cl"].result_list] == [wanted.pk]


def test_billing_clerk_creates_a_customer_through_the_admin_form(client, staff, org):
    client.force_login(staff[Role.BILLING_CLERK])
    response = client.post(
        reverse("admin:customers_customer_add"),
        {
            "unit": org["home"].pk, "code": "", "full_name": "Võ Thị Sáu", "national_id": "", "email": "",
            "street": "7 Nguyễn Trãi", "ward": "Phường Bến Thành", "district": "", "province": "",
            "customer_type": "residential", "households": "1", "phones_text": "0903 555 666, +84 28 3822 1234",
            "phones-TOTAL_FORMS": "0", "phones-INITIAL_FORMS": "0",
        },
    )  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:2000]
    customer = Customer.objects.get(full_name="Võ Thị Sáu")
    assert customer.code == "PE01000000001"
    assert sorted(customer.phones.values_list("number", flat=True)) == ["+842838221234", "+84903555666"]
    assert customer.events.get().kind == CustomerEventKind.CREATED


def test_customer_form_refuses_a_unit_outside_the_scope(client, staff, org):
    client.force_login(staff[Role.BILLING_CLERK])
    response = client.post(
        reverse("admin:customers_customer_add"),
        {
            "unit": org["other_corporation"].pk, "full_name": "X", "street": "1", "ward": "W",
            "customer_type": "residential", "households": "1",
            "phones-TOTAL_FORMS": "0", "phones-INITIAL_FORMS": "0",
        },
    )  # fmt: skip
    assert response.status_code == 200
    assert "unit" in response.context["adminform"].form.errors
    assert Customer.objects.count() == 0


def changelist_urls():
    return [
        (model, reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist"))
        for model in apps.get_models()
        if admin.site.is_registered(model)
        and model._meta.app_label in ("crm", "customers")
    ]


def test_every_changelist_takes_the_same_number_of_queries_for_few_and_many_rows(
    client, staff, org, make_customer
):
    admin_user = staff[Role.ADMINISTRATOR]
    client.force_login(admin_user)
    make_customer(name="Một", phones=["0903 000 001"])
    few = {}
    for _model, url in changelist_urls():
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(url).status_code == 200, url
        few[url] = len(ctx)
    for i in range(6):
        make_customer(name=f"Người {i}", phones=[f"0903 100 00{i}"], unit=org["sibling"])
    for _model, url in changelist_urls():
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(url).status_code == 200
        assert len(ctx) == few[url], (url, few[url], len(ctx), [q["sql"][:120] for q in ctx.captured_queries])
        assert len(ctx) <= 12, (url, len(ctx))


@override_settings(TONGDAI_EXACT_COUNT_LIMIT=0)  # count like a table of millions
def test_customer_changelist_query_count_as_an_agent(agent_client, make_customer):
    for i in range(5):
        make_customer(name=f"Người {i}", phones=[f"0903 200 00{i}"])
    with CaptureQueriesContext(connection) as ctx:
        response = agent_client.get(
            reverse("admin:customers_customer_changelist"), {"unit": "", "customer_type": "residential"}
        )
    assert response.status_code == 200
    # session, user, 2 permission reads, scope (profile, units, merged units), unit filter choices,
    # the count (an EXPLAIN estimate on PostgreSQL) and the rows with their unit: nothing per row
    assert len(ctx) == 10, "\n".join(q["sql"][:300] for q in ctx.captured_queries)
    sqls = " ".join(q["sql"] for q in ctx.captured_queries)
    assert ("COUNT(*)" in sqls) is (connection.vendor == "sqlite")
    assert ("EXPLAIN" in sqls) is (connection.vendor == "postgresql")
    cl = response.context["cl"]
    expected = 5 if connection.vendor == "sqlite" else db.estimated_query_count(cl.queryset)
    assert cl.result_count == expected


def test_each_rows_link_returns_to_the_filtered_list_and_a_pop_up_keeps_djangos_links(
    agent_client, make_customer, monkeypatch
):
    import re
    from urllib.parse import urlencode

    from django.contrib.admin.templatetags import admin_urls
    from django.contrib.admin.templatetags.admin_urls import add_preserved_filters

    customers = [make_customer(name=f"Người {i}", phones=[f"0903 300 00{i}"]) for i in range(3)]
    filters = {"customer_type": "residential", "q": "Người"}
    resolved = []
    resolve = admin_urls.resolve
    monkeypatch.setattr(admin_urls, "resolve", lambda path, *a: resolved.append(path) or resolve(path, *a))
    response = agent_client.get(reverse("admin:customers_customer_changelist"), filters)
    monkeypatch.undo()
    assert not [path for path in resolved if "/change/" in path]  # no row's link resolved to add the filters
    html = response.content.decode()
    links = set(re.findall(r'<th class="field-code"><a href="([^"]+)"', html))
    # the change page of each row, carrying the list's filters for the way back (as Django writes them)
    expected = {
        reverse("admin:customers_customer_change", args=[c.pk]) + "?" + urlencode({"_changelist_filters":
                                                                                  urlencode(filters)})
        for c in customers
    }  # fmt: skip
    assert links == {link.replace("&amp;", "&") for link in expected}
    # saving a record from such a link returns to the same filtered list
    change = agent_client.get(next(iter(expected)))
    assert change.context["preserved_filters"] == urlencode({"_changelist_filters": urlencode(filters)})
    # a pop-up list (choosing a customer for another form) keeps Django's own links
    popup = agent_client.get(reverse("admin:customers_customer_changelist"), {**filters, "_popup": "1"})
    cl = popup.context["cl"]
    popup_links = {
        int(pk): href.replace("&amp;", "&")
        for href, pk in re.findall(r'<a href="([^"]+)" data-popup-opener="(\d+)"', popup.content.decode())
    }
    assert popup_links == {
        c.pk: add_preserved_filters(
            {"preserved_filters": cl.preserved_filters, "opts": cl.opts},
            reverse("admin:customers_customer_change", args=[c.pk]),
        )
        for c in customers
    }
    assert cl.preserved_filters  # Django's way: its tag adds them to each link


def test_a_service_rule_broken_in_the_admin_form_is_a_message_and_writes_nothing(client, staff, org):
    client.force_login(staff[Role.BILLING_CLERK])
    response = client.post(
        reverse("admin:customers_customer_add"),
        {
            "unit": org["home"].pk, "code": "PE02010000001", "full_name": "Võ Thị Sáu", "street": "7 Nguyễn Trãi",
            "ward": "Phường Bến Thành", "customer_type": "residential", "households": "1",
            "phones_text": "0903 555 666",
        },
        follow=True,
    )  # fmt: skip
    assert response.status_code == 200
    shown = [str(m) for m in response.context["messages"]]
    assert shown == ["A customer code of unit PE0100 starts with PE0100."], shown
    assert Customer.objects.count() == 0


# The admin's add forms take what the imports take (the same normalisers, ``customers.normalise``) -------------


@pytest.fixture
def clerk_client(client, staff):
    client.force_login(staff[Role.BILLING_CLERK])
    return client


def admin_add_customer(client, org, **values):
    data = {
        "unit": org["home"].pk, "code": "", "full_name": "Võ Thị Sáu", "national_id": "", "email": "",
        "street": "7 Nguyễn Trãi", "ward": "Phường Bến Thành", "district": "", "province": "",
        "customer_type": "residential", "households": "1", "phones_text": "0903 555 666",
        "phones-TOTAL_FORMS": "0", "phones-INITIAL_FORMS": "0",
    }  # fmt: skip
    data.update(values)
    return client.post(reverse("admin:customers_customer_add"), data)


def test_a_code_typed_in_small_letters_is_taken_by_the_admin_as_by_the_import(clerk_client, org):
    imported = preview(clerk_client, "customer", csv_bytes([customer_row(code="pe01000000041")]))
    confirm(clerk_client, "customer", imported)
    assert Customer.objects.filter(code="PE01000000041").exists()

    response = admin_add_customer(clerk_client, org, code=" pe01000000042 ")
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Customer.objects.get(full_name="Võ Thị Sáu").code == "PE01000000042"


def test_a_code_in_small_letters_already_taken_is_refused_on_the_field(clerk_client, org, make_customer):
    taken = make_customer()
    response = admin_add_customer(clerk_client, org, code=taken.code.lower())
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["code"] == ["Customer with this Customer code already exists."]
    assert not Customer.objects.filter(full_name="Võ Thị Sáu").exists()


def test_phones_separated_by_semicolons_are_taken_by_the_admin_as_by_the_import(clerk_client, org):
    imported = preview(clerk_client, "customer", csv_bytes([customer_row(phones="0903 555 111; 0913 555 222")]))
    confirm(clerk_client, "customer", imported)
    by_import = Customer.objects.get(full_name="Phạm Văn Bình")
    assert sorted(by_import.phones.values_list("number", flat=True)) == ["+84903555111", "+84913555222"]

    response = admin_add_customer(clerk_client, org, phones_text="0903 555 333; 0913 555 444\n0283 822 1234|")
    assert response.status_code == 302, response.context["adminform"].form.errors
    by_admin = Customer.objects.get(full_name="Võ Thị Sáu")
    assert sorted(by_admin.phones.values_list("number", flat=True)) == [
        "+842838221234", "+84903555333", "+84913555444",
    ]  # fmt: skip


def test_a_phone_that_is_not_one_is_refused_on_the_field_keeping_what_was_typed(clerk_client, org):
    response = admin_add_customer(clerk_client, org, phones_text="0903 555 333; 12ab")
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form.errors["phones_text"] == [
        "12ab: A phone number has only digits, spaces, dots, dashes, brackets and a leading +."
    ]
    assert form["phones_text"].value() == "0903 555 333; 12ab"
    assert form["full_name"].value() == "Võ Thị Sáu"
    assert not Customer.objects.filter(full_name="Võ Thị Sáu").exists()


def test_a_meter_serial_typed_in_small_letters_is_taken_by_the_admin_as_by_the_import(clerk_client, org):
    from customers.models import Meter

    row = {"serial": "abc-00041", "unit": "PE0100", "kind": "remote_read", "phases": "1", "manufacturer": "EMIC"}
    confirm(clerk_client, "meter", preview(clerk_client, "meter", csv_bytes([row])))
    assert Meter.objects.filter(serial="ABC-00041").exists()

    response = clerk_client.post(
        reverse("admin:customers_meter_add"),
        {"serial": " abc-00042", "unit": org["home"].pk, "kind": "remote_read", "phases": "1", "manufacturer": "EMIC"},
    )  # fmt: skip
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Meter.objects.get(serial="ABC-00042").manufacturer == "EMIC"


def test_a_contract_number_is_stored_in_capitals_by_the_admin_as_by_the_import(clerk_client, make_customer):
    from customers.models import Contract

    customer = make_customer()  # its contract is <code>-01
    prefix = customer.code.lower()
    rows = [{"number": f"{prefix}-05", "customer": customer.code, "tariff_category": "residential",
             "purpose": "Sinh hoạt", "start_date": "2024-01-01", "status": "pending"}]  # fmt: skip
    confirm(clerk_client, "contract", preview(clerk_client, "contract", csv_bytes(rows)))

    def add(number):
        return clerk_client.post(
            reverse("admin:customers_contract_add"),
            {"customer": customer.pk, "number": number, "tariff_category": "residential", "purpose": "Sinh hoạt",
             "start_date": "2024-01-01"},
        )  # fmt: skip

    assert add(f" {prefix}-06 ").status_code == 302
    assert list(Contract.objects.filter(customer=customer).order_by("number").values_list("number", flat=True)) == [
        f"{customer.code}-01", f"{customer.code}-05", f"{customer.code}-06",
    ]  # fmt: skip
    # The same number in other letters is the same contract: refused on its field, nothing added.
    again = add(f"{prefix}-05")
    assert again.status_code == 200
    assert again.context["adminform"].form.errors["number"] == ["Contract with this Contract number already exists."]
    assert Contract.objects.filter(customer=customer).count() == 3
    found = clerk_client.get(reverse("admin:customers_contract_changelist"), {"q": f" {prefix}-06"})
    assert [c.number for c in found.context["cl"].result_list] == [f"{customer.code}-06"]
