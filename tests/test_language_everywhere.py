"""Walks the pages every role sees, in Vietnamese and in English, and fails on words of the other language.

The interface is Vietnamese for the centre's staff (the settings' language) and English on request. Django's,
the admin's and django-import-export's own strings are translated by the project's catalogue where their own
catalogues miss them, and so are the model names, the field labels, the durations and the error pages. The
walk reads what a person reads: the text of the page and the labels of its buttons and fields, never the data
(customers' names, codes) nor the markup.
"""

from __future__ import annotations

import contextlib
import json
import re
from html.parser import HTMLParser

from django.apps import apps
from django.conf import settings
from django.db.models import CharField, TextField
from django.urls import NoReverseMatch, reverse
from django.utils import translation

from crm import staff_access
from crm.models import Role
from tests.admin_site import registered_admins

# Words that only an untranslated English string puts on a page (whole words, case-sensitive).
ENGLISH = [
    "Select an option", "Show counts", "File to import", "Preview", "Customer", "Contract", "Unit",
    "Opened by", "Save", "Delete", "Search", "Filter", "History", "Home", "Log out", "View site",
    "Action", "Run", "Today", "Export", "Import", "Submit", "Forbidden", "Permission denied",
    "Password", "Username", "selected", "Clear", "Previous", "Next", "Close", "Status", "Description",
    "Reason", "Amount", "Category", "Channel", "Phone", "Address", "Groups", "Permissions", "Welcome",
    "Documentation", "Recent actions", "results", "total", "Yes", "Unknown", "Add ", "Change ", "Invoice",
    "Ticket", "Reading", "Meter", "Dispute", "Refund", "Adjustment", "Rebate", "Incident", "Work order",
    "Interaction", "Callback", "Note", "Attachment", "Created", "Updated", "Period", "Staff", "User",
    "min", "minutes", "hours", "days", "Contact", "Any date", "Past 7 days", "This month", "This year", "Go",
    "password", "passwords", "Enabled", "Disabled",  # the user admin's "password-based authentication"
    # the roles' groups are stored under keys; the interface names them
    "tongdai: agent", "tongdai: supervisor", "tongdai: dispatcher", "tongdai: field_crew",
    "tongdai: billing_clerk", "tongdai: manager", "tongdai: administrator",
]


class VisibleText(HTMLParser):
    """The text a person reads: text nodes outside scripts and styles, and the labels of buttons and inputs
    (``value`` of buttons, ``placeholder``, ``title``, ``aria-label``); data rows are skipped (``td`` cells
    hold customers' data)."""

    SKIP = {"script", "style", "td", "textarea", "pre", "code"}

    def __init__(self):
        super().__init__()
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in self.SKIP:
            self.skipping += 1
        if tag == "input" and attrs.get("type") in ("submit", "button") and attrs.get("value"):
            self.parts.append(attrs["value"])
        for name in ("placeholder", "title", "aria-label"):
            if attrs.get(name) and not self.skipping:
                self.parts.append(attrs[name])

    def handle_endtag(self, tag):
        if tag in self.SKIP and self.skipping:
            self.skipping -= 1

    def handle_data(self, data):
        if not self.skipping and data.strip():
            self.parts.append(data.strip())


def visible_text(html: str) -> str:
    parser = VisibleText()
    parser.feed(html)
    return "\n".join(parser.parts)


def english_words(text: str) -> list[str]:
    found = []
    for word in ENGLISH:
        pattern = r"(?<![\w-])" + re.escape(word.strip()) + r"(?![\w-])"
        if word.endswith(" "):
            pattern = r"(?<![\w-])" + re.escape(word.strip()) + r" (?=\w)"
        for match in re.finditer(pattern, text):
            line = text[text.rfind("\n", 0, match.start()) + 1 : text.find("\n", match.end())]
            found.append(f"{word.strip()!r} in {line!r}")
    return found


def pages(user, customer):
    """The admin's index, every changelist the user may view with its add page and the first row's page, the
    password page of an account the user may change, the card, the lookup (and its offer for an unknown
    number), the callbacks due with a survey form, the dashboard and the field page."""
    urls = [reverse("admin:index"), reverse("admin:customers_customer_lookup")]
    request = _request_for(user)
    for model, model_admin in registered_admins():
        opts = model._meta
        if not model_admin.has_view_or_change_permission(request):
            continue
        urls.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        if model_admin.has_add_permission(request):
            urls.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_add"))
        row = model_admin.get_queryset(request).order_by("pk").first()
        if row is not None:
            urls.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[row.pk]))
    account = staff_access.manageable_users(user).exclude(pk=user.pk).order_by("pk").first()
    if account is not None and user.has_perm("auth.change_user"):
        urls.append(reverse("admin:auth_user_password_change", args=[account.pk]))
    urls.append(reverse("admin:customers_customer_card", args=[customer.pk]))
    urls.append(reverse("admin:customers_customer_lookup") + "?phone=0988777666")  # nobody's: "new ticket for…"
    if user.has_perm("tickets.add_callback"):  # the callbacks due, and the survey form of one of them
        from tickets.models import Ticket

        urls.append(reverse("admin:tickets_ticket_callbacks"))
        resolved = Ticket.objects.for_user(user).filter(status="resolved").order_by("pk").first()
        if resolved is not None:
            urls.append(reverse("admin:tickets_ticket_callback", args=[resolved.pk]))
    for name in ("dashboard", "field-work-orders"):
        with contextlib.suppress(NoReverseMatch):
            urls.append(reverse(name))
    return urls


def _request_for(user):
    from django.test import RequestFactory

    request = RequestFactory().get("/")
    request.user = user
    return request


def catalogue_pairs():
    """(English, Vietnamese) of every translated string of the project's catalogue (which also holds the
    strings Django's and the libraries' own Vietnamese catalogues lack): a page showing one side in the
    other language is untranslated."""
    from babel.messages.pofile import read_po

    with open(settings.LOCALE_PATHS[0] / "vi" / "LC_MESSAGES" / "django.po", "rb") as po:
        catalog = read_po(po)
    return [
        (message.id, message.string)
        for message in catalog
        if isinstance(message.id, str) and message.string and message.id != message.string and len(message.id) > 3
    ]


def stored_texts() -> set[str]:
    """Every text stored in the rows of the project's tables (names, codes, descriptions): data, which is in
    whatever language the person who typed it used."""
    texts = set()
    for model in apps.get_models():
        if model._meta.app_label not in ("crm", "customers", "tickets", "billing"):
            continue
        fields = [f.attname for f in model._meta.concrete_fields if isinstance(f, (CharField, TextField))]
        for row in model._default_manager.values_list(*fields) if fields else []:
            texts.update(str(value).strip() for value in row if value)
    return texts


def untranslated(text: str, language: str, pairs, data: set[str]) -> list[str]:
    """English words of the list on a Vietnamese page, and any line of the page that is, whole, one side of
    a translated pair in the other language (unless it is stored data)."""
    lines = {line.strip().rstrip(":").strip() for line in text.splitlines()} - data
    other = {english if language == "vi" else vietnamese for english, vietnamese in pairs}
    found = [f"{line!r} (a whole string of the other language)" for line in lines & other]
    if language == "vi":
        found += english_words(text)
    return found


def test_every_page_speaks_one_language(client, staff, two_customers, settings):
    """Every role in Vietnamese, the administrator in English; a page already read in a language by an earlier
    role is not read again (the roles differ in which pages they may open, not in their words)."""
    settings.TONGDAI_AUTH_CACHE_SECONDS = 300  # as served: the walk changes no one's permissions
    mine, _theirs = two_customers
    pairs, data = catalogue_pairs(), stored_texts()
    problems, read = [], set()
    for language, roles in (("vi", [Role.ADMINISTRATOR, *Role.values]), ("en", [Role.ADMINISTRATOR])):
        for role in roles:
            user = staff[role]
            client.force_login(user)
            client.cookies["django_language"] = language
            for url in pages(user, mine):
                if (language, url) in read:
                    continue
                read.add((language, url))
                response = client.get(url, HTTP_ACCEPT_LANGUAGE=language, follow=True)
                assert response.status_code in (200, 403), (url, response.status_code)
                text = visible_text(response.content.decode())
                problems += [f"{language} {role} {url}: {item}" for item in untranslated(text, language, pairs, data)]
    # the page of a refusal, which the walk above reads only for the roles that see it first
    client.force_login(staff[Role.FIELD_CREW])
    for language, heading in (("vi", "Không có quyền truy cập"), ("en", "Access denied")):
        client.cookies["django_language"] = language
        refused = client.get(reverse("dashboard"), HTTP_ACCEPT_LANGUAGE=language)
        assert refused.status_code == 403
        text = visible_text(refused.content.decode())
        assert heading in text, text
        problems += [f"{language} 403: {item}" for item in untranslated(text, language, pairs, data)]
    translation.activate("vi")
    assert not problems, "\n".join(sorted(set(problems)))


def test_a_refused_form_says_so_in_the_pages_language(client, staff):
    """The banner above a refused form's errors (Django's plural "Please correct the error(s) below.")."""
    client.force_login(staff[Role.ADMINISTRATOR])
    for language, banner in (("vi", "Vui lòng sửa các lỗi dưới đây."), ("en", "Please correct the errors below.")):
        answer = client.post(reverse("admin:tickets_holiday_add"), {"day": "", "name": ""},
                             HTTP_ACCEPT_LANGUAGE=language)  # fmt: skip
        page = answer.content.decode()
        assert answer.status_code == 200 and banner in page, (language, english_words(visible_text(page))[:10])
        if language == "vi":
            assert "Please correct" not in page


# The administrator's account pages: Django's "password-based authentication" (5.1+), which its Vietnamese
# catalogue lacks, and the password page's warning, which Django writes in English when it is imported.

ENGLISH_ON_ACCOUNT_PAGES = [
    "Password-based authentication", "Whether the user will be able to authenticate using a password or not",
    "Enabled", "Disabled", "the current password for this user will be lost", "Raw passwords are not stored",
]  # fmt: skip


def _account_page(client, url):
    client.cookies["django_language"] = "vi"
    answer = client.get(url, HTTP_ACCEPT_LANGUAGE="vi")
    assert answer.status_code == 200
    html = answer.content.decode()
    return html, [text for text in ENGLISH_ON_ACCOUNT_PAGES if text in html]


def test_the_add_user_page_speaks_vietnamese(client, staff):
    client.force_login(staff[Role.ADMINISTRATOR])
    html, english = _account_page(client, reverse("admin:auth_user_add"))
    assert english == []
    assert "Thêm người dùng" in html
    assert "Xác thực bằng mật khẩu" in html  # the field, its choices and its help in Vietnamese
    choices = re.findall(r'<input type="radio" name="usable_password"[^>]*>\s*([^<]+?)\s*</label>', html)
    assert choices == ["Bật", "Tắt"]
    assert "Người dùng có được đăng nhập bằng mật khẩu hay không." in html


def test_the_password_page_speaks_vietnamese_its_warning_included(client, staff):
    client.force_login(staff[Role.ADMINISTRATOR])
    html, english = _account_page(client, reverse("admin:auth_user_password_change", args=[staff[Role.AGENT].pk]))
    assert english == []
    assert "Hãy nhập mật khẩu mới" in html
    assert (
        "Người dùng có được đăng nhập bằng mật khẩu hay không. Nếu tắt, họ vẫn có thể đăng nhập bằng cách khác, "
        "như đăng nhập một lần (Single Sign-On) hoặc LDAP."
        '<ul id="id_unusable_warning" class="messagelist"><li class="warning">'
        "Nếu tắt, mật khẩu hiện tại của người dùng này sẽ bị mất.</li></ul>"
    ) in html


def test_the_password_page_speaks_english_on_request(client, staff):
    client.force_login(staff[Role.ADMINISTRATOR])
    client.cookies["django_language"] = "en"
    answer = client.get(
        reverse("admin:auth_user_password_change", args=[staff[Role.AGENT].pk]), HTTP_ACCEPT_LANGUAGE="en"
    )
    assert (
        "such as Single Sign-On or LDAP."
        '<ul id="id_unusable_warning" class="messagelist"><li class="warning">'
        "If disabled, the current password for this user will be lost.</li></ul>"
    ) in answer.content.decode()


def test_the_user_page_shows_no_english_help(client, staff):
    client.force_login(staff[Role.ADMINISTRATOR])
    html, english = _account_page(client, reverse("admin:auth_user_change", args=[staff[Role.AGENT].pk]))
    assert english == []
    assert "Mật khẩu không được lưu ở dạng gốc, nên không có cách nào xem mật khẩu của người dùng." in html


# The admin's scripts (the date and time pickers, the two-box pickers of groups and permissions, the actions
# bar) read their words from the script catalogue: Django's Vietnamese one lacks a third of them.
ADMIN_SCRIPT_WORDS = {
    "Choose all %s": "Chọn tất cả %s",
    "Remove all %s": "Bỏ tất cả %s",
    "Today (%(date)s)": "Hôm nay (%(date)s)",
    "Sunday": "Chủ nhật",
    "server": "máy chủ",
}


def test_the_admins_scripts_speak_vietnamese(client, staff):
    client.force_login(staff[Role.AGENT])
    catalogue = {}
    for language in ("vi", "en"):
        client.cookies["django_language"] = language
        answer = client.get(reverse("admin:jsi18n"), HTTP_ACCEPT_LANGUAGE=language)
        assert answer.status_code == 200
        catalogue[language] = answer.content.decode("utf-8")  # the entries written as JSON, "\\u…" escapes
    for english, vietnamese in ADMIN_SCRIPT_WORDS.items():
        assert f"{json.dumps(english)}: {json.dumps(vietnamese)}" in catalogue["vi"], english
        assert json.dumps(vietnamese) not in catalogue["en"], english
    # a plural entry and a month's abbreviation (an entry with a context)
    assert json.dumps("%s lựa chọn đã chọn đang bị ẩn") in catalogue["vi"]
    assert f"{json.dumps('abbrev. month January' + chr(4) + 'Jan')}: {json.dumps('Th1')}" in catalogue["vi"]
