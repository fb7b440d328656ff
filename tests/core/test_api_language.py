"""The API answers in the caller's language (``Accept-Language``, else the site's): its own refusals beside DRF's
and Django's, never a Vietnamese field message next to an English one."""

import ast
from pathlib import Path

import pytest

from crm.models import Role
from tickets.models import Ticket
from tickets.services import ticket_open

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("language", "unknown_customer", "required"),
    [
        ("vi", "Không có khách hàng này trong các đơn vị bạn phụ trách.", "Trường này là bắt buộc."),
        ("en", "No such customer in your units.", "This field is required."),
    ],
)
def test_an_intake_refusal_speaks_the_callers_language(client, staff, catalogue, language, unknown_customer,
                                                        required):
    client.force_login(staff[Role.AGENT])
    before = Ticket.objects.count()
    refused = client.post(
        "/api/v1/tickets/", {"category": "outage", "channel": "app", "customer_code": "PE9999999999"},
        content_type="application/json", HTTP_ACCEPT_LANGUAGE=language,
    )  # fmt: skip
    assert refused.status_code == 400
    assert refused.json() == {"description": [required]}  # the fields first, then the codes
    refused = client.post(
        "/api/v1/tickets/",
        {"category": "outage", "channel": "app", "description": "Mất điện", "customer_code": "PE9999999999"},
        content_type="application/json", HTTP_ACCEPT_LANGUAGE=language,
    )  # fmt: skip
    assert refused.status_code == 400
    assert refused.json() == {"customer_code": [unknown_customer]}
    assert Ticket.objects.count() == before


@pytest.mark.parametrize(
    ("language", "expected"),
    [("vi", "Chỉ giám sát viên được chuyển phiếu yêu cầu sang đơn vị khác."), ("en", "Only a supervisor may re-route.")],
)
def test_a_refused_move_says_why_in_the_callers_language(client, staff, org, catalogue, make_customer, language,
                                                         expected):
    ticket = ticket_open(
        actor=None, category=catalogue["billing"], channel="phone", description="Hóa đơn cao", customer=make_customer()
    ).ticket
    client.force_login(staff[Role.AGENT])
    refused = client.post(
        f"/api/v1/tickets/{ticket.pk}/reroute/", {"unit_code": org["sibling"].code, "reason": "Sai địa bàn"},
        content_type="application/json", HTTP_ACCEPT_LANGUAGE=language,
    )  # fmt: skip
    assert (refused.status_code, refused.json()) == (403, {"detail": expected})
    ticket.refresh_from_db()
    assert ticket.unit == org["home"]


def _message_literals(tree):
    """Plain string literals handed to a client as a message: the argument of ``ValidationError(...)`` (or a
    value of its dict), and ``detail`` or a field's list in a ``Response({...})``."""
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name | ast.Attribute)):
            continue
        name = node.func.id if isinstance(node.func, ast.Name) else node.func.attr
        if name not in {"ValidationError", "Response"} or not node.args:
            continue
        first = node.args[0]
        values = first.values if isinstance(first, ast.Dict) else [first] if name == "ValidationError" else []
        for value in values:
            items = value.elts if isinstance(value, ast.List) else [value]
            for item in items:
                if isinstance(item, ast.Constant) and isinstance(item.value, str):
                    yield node.lineno, item.value


def test_no_api_message_is_left_untranslated():
    found = [
        f"{path.relative_to(ROOT)}:{line} {text!r}"
        for folder in ("core", "crm", "customers", "tickets", "billing", "reports")
        for path in sorted((ROOT / folder).rglob("api/*.py"))
        for line, text in _message_literals(ast.parse(path.read_text(), str(path)))
    ]
    assert found == []
