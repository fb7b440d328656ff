"""Files already on tickets get the type their extension implies in place of the one their uploader claimed
(the map of ``tickets.models.ATTACHMENT_CONTENT_TYPES`` when this was written; a migration keeps its own copy)."""

from django.db import migrations
from django.db.models import Q

TYPES = {
    "pdf": "application/pdf",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "heic": "image/heic",
    "webp": "image/webp",
    "tif": "image/tiff",
    "tiff": "image/tiff",
    "txt": "text/plain",
    "csv": "text/csv",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "odt": "application/vnd.oasis.opendocument.text",
    "ods": "application/vnd.oasis.opendocument.spreadsheet",
    "eml": "message/rfc822",
}


def forwards(apps, schema_editor):
    attachments = apps.get_model("tickets", "TicketAttachment").objects
    known = Q()
    for extension, content_type in TYPES.items():
        named = Q(name__iendswith=f".{extension}")
        known |= named
        attachments.filter(named).exclude(content_type=content_type).update(content_type=content_type)
    attachments.exclude(known).exclude(content_type="application/octet-stream").update(
        content_type="application/octet-stream"
    )


class Migration(migrations.Migration):
    dependencies = [("tickets", "0004_dashboard_index")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop, elidable=True)]
