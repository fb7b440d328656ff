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


# -- The refusals of a missing or bad token (the authentication classes', DRF's and crm.auth's) ----------------

SIGN_IN_REFUSALS = {
    "no credentials": (
        {},
        "Chưa cung cấp thông tin xác thực.",
        "Authentication credentials were not provided.",
    ),
    "a revoked or mistyped token": (
        {"HTTP_AUTHORIZATION": "Token tongdai_" + "0" * 64},
        "Mã truy cập không hợp lệ.",
        "Invalid token.",
    ),
    "the word Token alone": (
        {"HTTP_AUTHORIZATION": "Token"},
        "Tiêu đề mã truy cập không hợp lệ. Không có mã truy cập.",
        "Invalid token header. No credentials provided.",
    ),
    "a token with a space": (
        {"HTTP_AUTHORIZATION": "Token tongdai_0 123"},
        "Tiêu đề mã truy cập không hợp lệ. Mã truy cập không được chứa dấu cách.",
        "Invalid token header. Token string should not contain spaces.",
    ),
}


@pytest.mark.parametrize("case", SIGN_IN_REFUSALS)
@pytest.mark.parametrize("asked", ["vi", "en", None])
def test_a_missing_or_bad_token_is_refused_in_the_callers_language(db, client, settings, case, asked):
    """README (API): a request without credentials is answered 401; errors are in the caller's
    ``Accept-Language``, Vietnamese by default (``None``: nothing asked, the site's language)."""
    settings.LANGUAGE_CODE = "vi"  # as served (the tests' settings speak English)
    headers, vietnamese, english = SIGN_IN_REFUSALS[case]
    language = {"HTTP_ACCEPT_LANGUAGE": asked} if asked else {}
    answer = client.get("/api/v1/tickets/", **headers, **language)
    assert answer.status_code == 401
    assert answer.json() == {"detail": english if asked == "en" else vietnamese}


@pytest.mark.parametrize("language", ["vi", "en"])
def test_an_address_throttled_for_bad_tokens_is_told_when_to_retry_in_the_callers_language(db, client, language):
    # given: the failed-token rate of the settings (10 a minute) used up from one address
    for n in range(10):
        bad = f"Token tongdai_{n:064d}"
        assert client.get("/api/v1/tickets/", HTTP_AUTHORIZATION=bad, REMOTE_ADDR="10.0.0.9").status_code == 401
    # when
    answer = client.get(
        "/api/v1/tickets/", HTTP_AUTHORIZATION="Token tongdai_guess", REMOTE_ADDR="10.0.0.9",
        HTTP_ACCEPT_LANGUAGE=language,
    )  # fmt: skip
    # then
    assert answer.status_code == 429
    wait = int(answer["Retry-After"])
    expected = {
        "vi": f"Yêu cầu bị tạm chặn vì gửi quá nhiều. Có thể thử lại sau {wait} giây.",
        "en": f"Request was throttled. Expected available in {wait} second{'' if wait == 1 else 's'}.",
    }[language]
    assert answer.json() == {"detail": expected}
