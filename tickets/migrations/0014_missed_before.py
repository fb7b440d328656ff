from django.db import migrations, models


def from_reopen_events(apps, schema_editor):
    """A ticket reopened before this migration kept the earlier cycle's deadlines and breaches in its reopen
    event: the first missed deadline of each target is carried onto the ticket."""
    Ticket = apps.get_model("tickets", "Ticket")
    TicketEvent = apps.get_model("tickets", "TicketEvent")
    from django.utils.dateparse import parse_datetime

    reopens = TicketEvent.objects.filter(kind="status", after__status="reopened").order_by("ticket_id", "id")
    missed: dict[int, dict] = {}
    for ticket_id, before in reopens.values_list("ticket_id", "before").iterator(chunk_size=2000):
        before = before or {}
        breached = set(before.get("breached") or ())
        resolved_at = parse_datetime(before["resolved_at"]) if before.get("resolved_at") else None
        resolve_due = parse_datetime(before["resolve_due"]) if before.get("resolve_due") else None
        contact_due = parse_datetime(before["contact_due"]) if before.get("contact_due") else None
        into = missed.setdefault(ticket_id, {})
        if "resolve_breached" in breached or (resolved_at and resolve_due and resolved_at > resolve_due):
            into.setdefault("resolve_missed_before", resolve_due)
        if "contact_breached" in breached:
            into.setdefault("contact_missed_before", contact_due)
    for ticket_id, fields in missed.items():
        if fields:
            Ticket.objects.filter(pk=ticket_id).update(**fields)


class Migration(migrations.Migration):

    dependencies = [
        ("tickets", "0013_callback_overdue"),
    ]

    operations = [
        migrations.AddField(
            model_name="ticket",
            name="contact_missed_before",
            field=models.DateTimeField(
                blank=True, null=True, verbose_name="contact deadline missed in an earlier cycle"
            ),
        ),
        migrations.AddField(
            model_name="ticket",
            name="resolve_missed_before",
            field=models.DateTimeField(
                blank=True, null=True, verbose_name="resolve deadline missed in an earlier cycle"
            ),
        ),
        migrations.RunPython(from_reopen_events, migrations.RunPython.noop),
    ]
