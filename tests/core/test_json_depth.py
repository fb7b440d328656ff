"""JSON nested thousands deep is refused with the reason, never a 500 (RecursionError): every API endpoint that
takes a body answers 400 saying the limit and writes nothing, and a JSON field of an admin form shows the
reason as a form error."""

from __future__ import annotations

import json

import pytest
from django import forms
from django.apps import apps
from django.contrib.auth import get_user_model
from django.forms.models import model_to_dict
from django.test import RequestFactory
from django.urls import reverse
from django.utils import translation
from django.utils.html import escape

from billing.models import RebateProgramme
from core import json_input
from tests.admin_site import registered_admins
from tongdai.urls import router

DEEP = 5000
BODIES = {  # 5,000 levels reach the views as data; 50,000 overflow the parser itself (RecursionError)
    "array": "[" * DEEP + "]" * DEEP,
    "object": '{"a": ' * DEEP + "1" + "}" * DEEP,
    "array of 50,000": "[" * 10 * DEEP + "]" * 10 * DEEP,
}
WRITING = ("post", "put", "patch")


def vietnamese_reason() -> str:
    with translation.override("vi"):
        return json_input.too_deep_message()


def test_the_limit_counts_arrays_and_objects_outside_strings(settings):
    settings.TONGDAI_JSON_MAX_DEPTH = 64
    at_limit = "[" * 32 + '{"a": ' * 32 + "1" + "}" * 32 + "]" * 32
    assert json.loads(at_limit) == json_input.loads(at_limit)
    with pytest.raises(json_input.JsonTooDeep):
        json_input.loads("[" + at_limit + "]")
    # Brackets in strings (escaped quotes included) are text.
    text = json.dumps({"note": "[" * 1000 + '\\"{' * 1000, "list": [[["x"]]]})
    assert json_input.loads(text)["list"] == [[["x"]]]
    assert json_input.loads(text.encode()) == json.loads(text)
    with pytest.raises(json_input.JsonTooDeep, match="at most 64 levels"):
        json_input.loads(BODIES["object"].encode())
    settings.TONGDAI_JSON_MAX_DEPTH = 3
    with pytest.raises(json_input.JsonTooDeep, match="at most 3 levels"):
        json_input.loads('[{"a": [[1]]}]')
    assert json_input.loads('[{"a": [1]}]') == [{"a": [1]}]


def our_rows() -> dict:
    """Every row of the project's apps and the task queue, as dicts: what a refused request must leave alone."""
    models = [m for label in ("crm", "customers", "tickets", "billing", "django_q")
              for m in apps.get_app_config(label).get_models()]  # fmt: skip
    return {m._meta.label: [model_to_dict(r) for r in m._default_manager.order_by("pk")] for m in models}


def api_endpoints():
    """Each route of the API router with a sample address and the methods it takes. The sample is the newest row
    (an open ticket: a closed one is refused before its body is read)."""
    for pattern in router.urls:
        actions = getattr(pattern.callback, "actions", None)
        if actions is None or "format" in pattern.pattern.regex.groupindex:
            continue  # the API root, and the same routes with a format suffix
        if not {"post", "put", "patch"} & set(actions):
            continue  # a read (a file's download): no body to refuse
        viewset = pattern.callback.cls
        newest = viewset.queryset.model._default_manager.order_by("-pk")
        # the row's pk, or a code people use that the route names (a meter's serial)
        kwargs = {name: newest.values_list(name, flat=True)[0] for name in pattern.pattern.regex.groupindex}
        yield reverse(pattern.name, kwargs=kwargs), set(actions)


def test_every_api_endpoint_refuses_json_nested_too_deep_with_the_reason_and_writes_nothing(
    client, two_customers, settings
):
    settings.REST_FRAMEWORK = {  # some 150 requests in a few seconds: past the per-user rate
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "user": None},
    }
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "s3cret-pass-word"))
    reason = vietnamese_reason()
    assert reason != json_input.too_deep_message()  # the catalogue has it in Vietnamese
    before = our_rows()
    refused = 0
    for url, methods in api_endpoints():
        for method in WRITING:
            for shape, body in BODIES.items():
                response = getattr(client, method)(url, body, content_type="application/json",
                                                   HTTP_ACCEPT_LANGUAGE="vi")  # fmt: skip
                if method not in methods:
                    assert response.status_code == 405, (url, method, response.status_code)
                    continue
                assert response.status_code == 400, (url, method, shape, response.status_code)
                assert response.json() == {"detail": reason}, (url, method, shape)
                refused += 1
    # tickets (intake, assign, attachments, status, contact, notes, reroute, callback, work orders, outage),
    # interactions, work orders (advance, assign), meters (install, remove), readings (record, estimate),
    # disputes, payments
    assert refused == len(BODIES) * 19
    assert our_rows() == before


def test_a_body_within_the_limit_is_read_as_before(client, staff):
    client.force_login(staff["agent"])
    response = client.post("/api/v1/tickets/", {"channel": "phone"}, content_type="application/json")
    assert response.status_code == 400
    assert "category" in response.json()
    broken = client.post("/api/v1/tickets/", "{", content_type="application/json")
    assert broken.status_code == 400
    assert broken.json()["detail"].startswith("The request body is not valid JSON")


def test_every_json_field_of_an_admin_form_bounds_the_nesting(django_user_model, db):
    request = RequestFactory().get("/")
    request.user = django_user_model(is_superuser=True, is_staff=True)
    json_fields = []
    for model, model_admin in registered_admins():
        for db_field in model._meta.fields:
            field = model_admin.formfield_for_dbfield(db_field, request)
            if isinstance(field, forms.JSONField):
                json_fields.append(f"{model._meta.label}.{db_field.name}")
                assert isinstance(field, json_input.JSONFormField), (model._meta.label, db_field.name)
    assert {"tickets.Incident.wards", "billing.RebateProgramme.customer_types"} <= set(json_fields)


def test_the_admin_shows_json_nested_too_deep_as_a_form_error_and_writes_nothing(client, staff, org):
    # A rebate programme's customer types are a JSON field in the admin (an incident's wards are picked from
    # the unit's list instead).
    client.force_login(staff["administrator"])
    for shape, body in BODIES.items():
        form = {"name": "Giảm giá", "legal_basis": "Nghị quyết", "customer_types": body, "period_from": "2025-10-01",
                "period_to": "2025-10-01", "min_kwh": 0, "status": "draft", "bands-TOTAL_FORMS": 0,
                "bands-INITIAL_FORMS": 0, "bands-MIN_NUM_FORMS": 0, "bands-MAX_NUM_FORMS": 1000}  # fmt: skip
        response = client.post(reverse("admin:billing_rebateprogramme_add"), form, HTTP_ACCEPT_LANGUAGE="vi")
        assert response.status_code == 200, shape
        assert response.context["adminform"].form.errors["customer_types"] == [vietnamese_reason()], shape
        assert escape(body) in response.content.decode(), shape  # shown again as typed, to correct
    assert not RebateProgramme.objects.exists()
