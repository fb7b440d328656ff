"""Staff work phones in +84 form, as the services now store them and the SMS gateway takes them: the phones typed
before ("0903 123 456") are rewritten. One that is not a Vietnamese number is left as it was, for an
administrator to correct (the staff form then asks for a number it can read)."""

from django.db import migrations


def normalise_staff_phones(apps, schema_editor):
    # The phone rule is a pure function of the bottom layer (no model, no app state).
    from core.phones import InvalidPhone, normalise_phone

    StaffProfile = apps.get_model("crm", "StaffProfile")
    for pk, phone in StaffProfile.objects.exclude(phone="").values_list("pk", "phone").iterator():
        try:
            normalised = normalise_phone(phone)
        except InvalidPhone:
            continue
        if normalised != phone:
            StaffProfile.objects.filter(pk=pk).update(phone=normalised)


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0009_staff_assign_new_tickets"),
    ]

    operations = [
        migrations.RunPython(normalise_staff_phones, migrations.RunPython.noop, elidable=True),
    ]
