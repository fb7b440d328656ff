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
