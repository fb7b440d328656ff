"""Files on tickets are stored and served as the type their extension implies, never the type their uploader's
browser claimed, always as a download that no cache keeps."""

import importlib

import pytest
from django.apps import apps
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from django.urls import reverse

from crm.models import Role
from tickets import services
from tickets.models import TicketAttachment, attachment_content_type


@pytest.fixture
def ticket(make_customer, catalogue):
    return services.ticket_open(
        actor=None,
        category=catalogue["billing"],
        channel="phone",
        description="Hóa đơn",
        customer=make_customer(),
    ).ticket


def upload(name, claimed, data=b"<script>alert(document.cookie)</script>"):
    return SimpleUploadedFile(name, data, content_type=claimed)


@pytest.mark.parametrize(
    ("name", "claimed", "served"),
    [
        ("ghi chú.txt", "text/html", "text/plain"),
        ("Biên bản.PDF", "text/html", "application/pdf"),
        ("đồng hồ.jpeg", "image/svg+xml", "image/jpeg"),
        ("chỉ số.csv", "application/javascript", "text/csv"),
        ("thư.eml", "text/html", "message/rfc822"),
    ],
)
def test_a_file_is_stored_and_served_as_its_extension_says(client, staff, ticket, name, claimed, served):
    # given a file whose uploader's browser claimed another type
    attachment = services.ticket_attach(actor=staff[Role.AGENT], ticket=ticket, upload=upload(name, claimed))
    # when a member of staff downloads it
    client.force_login(staff[Role.AGENT])
    response = client.get(reverse("ticket-attachment", args=[attachment.pk]))
    # then it is kept and served as its extension's type, as a download that no cache keeps, sandboxed
    assert attachment.content_type == served
    assert response.status_code == 200
    assert response["Content-Type"] == served
    assert response["Content-Disposition"].startswith("attachment; filename")
    assert response["Cache-Control"] == "private, no-store"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert b"".join(response.streaming_content) == b"<script>alert(document.cookie)</script>"


def test_an_extension_without_a_known_type_is_served_as_octet_stream(client, staff, ticket):
    # given an extension an operator allowed that the map does not know
    with override_settings(TONGDAI_ATTACHMENT_TYPES=["txt", "html"]):
        attachment = services.ticket_attach(
            actor=None, ticket=ticket, upload=upload("trang.html", "text/html")
        )
    # when it is downloaded
    client.force_login(staff[Role.AGENT])
    response = client.get(reverse("ticket-attachment", args=[attachment.pk]))
    # then it is an opaque download
    assert (attachment.content_type, response["Content-Type"]) == ("application/octet-stream",) * 2
    assert response["Content-Disposition"] == 'attachment; filename="trang.html"'


def test_a_file_stored_with_its_claimed_type_is_served_as_its_extension_says(client, staff, ticket):
    # given a file kept before the type came from the extension: its row says text/html
    attachment = services.ticket_attach(actor=None, ticket=ticket, upload=upload("note.txt", "text/html"))
    TicketAttachment.objects.filter(pk=attachment.pk).update(content_type="text/html")
    # when it is downloaded
    client.force_login(staff[Role.AGENT])
    response = client.get(reverse("ticket-attachment", args=[attachment.pk]))
    # then it is plain text
    assert response["Content-Type"] == "text/plain"


def test_the_migration_gives_stored_files_their_extensions_type(db, ticket):
    # given files stored with their uploaders' claims
    claims = {"a.txt": "text/html", "b.JPG": "image/png", "c.bin": "text/html", "d.png": "image/png"}
    for name, claimed in claims.items():
        with override_settings(TONGDAI_ATTACHMENT_TYPES=["txt", "jpg", "png", "bin"]):
            attachment = services.ticket_attach(actor=None, ticket=ticket, upload=upload(name, claimed))
        TicketAttachment.objects.filter(pk=attachment.pk).update(content_type=claimed)
    # when the data migration runs
    migration = importlib.import_module("tickets.migrations.0005_attachment_types_from_extension")
    migration.forwards(apps, None)
    # then each has its extension's type
    assert dict(TicketAttachment.objects.values_list("name", "content_type")) == {
        "a.txt": "text/plain", "b.JPG": "image/jpeg", "c.bin": "application/octet-stream", "d.png": "image/png",
    }  # fmt: skip


def test_every_allowed_extension_by_default_has_a_type(settings):
    assert {ext: attachment_content_type(f"x.{ext}") for ext in settings.TONGDAI_ATTACHMENT_TYPES} == {
        "pdf": "application/pdf", "jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png",
        "heic": "image/heic", "webp": "image/webp", "txt": "text/plain", "csv": "text/csv",
        "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "eml": "message/rfc822",
    }  # fmt: skip
    assert attachment_content_type("no-extension") == "application/octet-stream"


def test_a_long_file_name_is_shortened_before_its_extension_so_the_type_checked_is_the_type_kept(
    client, staff, ticket
):
    # given an upload through the API whose name is over the 200 characters kept, a PDF by its extension
    # whose first 200 characters would end in ".exe"
    client.force_login(staff[Role.AGENT])
    name = "b" * 196 + ".exe" + ".pdf"
    answer = client.post(f"/api/v1/tickets/{ticket.pk}/attachments/", {"file": upload(name, "application/pdf")})
    assert answer.status_code == 201, answer.content
    attachment = TicketAttachment.objects.get()
    # then the name kept is 200 characters and still a PDF, served as one
    assert (len(attachment.name), attachment.name[-8:], attachment.content_type) == (200, "bbbb.pdf", "application/pdf")
    download = client.get(reverse("ticket-attachment", args=[attachment.pk]))
    assert download["Content-Type"] == "application/pdf"
    assert ".exe" not in download["Content-Disposition"]


def test_an_integration_with_a_token_downloads_the_file_the_api_links(client, staff, ticket, org, make_staff):
    from crm.tokens import api_token_create

    _token, secret = api_token_create(actor=None, user=staff[Role.AGENT], name="app")
    auth = {"HTTP_AUTHORIZATION": f"Token {secret}"}
    uploaded = client.post(f"/api/v1/tickets/{ticket.pk}/attachments/",
                           {"file": upload("meter.jpg", "image/jpeg", b"\xff\xd8\xff photo")}, **auth)  # fmt: skip
    assert uploaded.status_code == 201, uploaded.content
    link = client.get(f"/api/v1/tickets/{ticket.pk}/attachments/", **auth).json()[0]["download"]
    answer = client.get(link, **auth)
    assert answer.status_code == 200, (answer.status_code, answer.get("Location"))
    assert (answer["Content-Type"], answer["X-Content-Type-Options"]) == ("image/jpeg", "nosniff")
    assert "sandbox" in answer["Content-Security-Policy"]
    assert b"".join(answer.streaming_content) == b"\xff\xd8\xff photo"
    # another unit's token gets nothing, nor does a file of another ticket under this ticket's address
    _other, stranger = api_token_create(actor=None, user=make_staff(Role.AGENT, [org["other_corporation"]]),
                                        name="other")  # fmt: skip
    assert client.get(link, HTTP_AUTHORIZATION=f"Token {stranger}").status_code == 404
    elsewhere = services.ticket_open(actor=None, category=ticket.category, channel="phone", description="Khác",
                                     customer=ticket.customer).ticket  # fmt: skip
    attachment_id = uploaded.json()["id"]
    assert client.get(f"/api/v1/tickets/{elsewhere.pk}/attachments/{attachment_id}/download/", **auth).status_code == 404
