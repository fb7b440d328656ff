"""A username is one person whatever its case (``nv.lan`` and ``NV.Lan``): the database holds it to that with a
unique index on the lower-cased username, as the staff forms and ``create_staff`` already refuse, so that
Django's ``createsuperuser`` (which compares usernames exactly) cannot make a second account of one name, and
the sign-in may read a username in any case (``crm.auth.CachedModelBackend``). An existing database holding two
such accounts stops here, naming the index: rename one (in the user admin) and migrate again.

SQLite's ``lower`` folds ASCII letters only; PostgreSQL's folds every letter. Usernames are ASCII in practice
(the badge-based names the centre gives)."""

from django.db import migrations

INDEX = "crm_auth_user_username_any_case"


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("crm", "0012_export_log_units"),
    ]

    operations = [
        migrations.RunSQL(
            f"CREATE UNIQUE INDEX {INDEX} ON auth_user (LOWER(username))",
            f"DROP INDEX {INDEX}",
        ),
    ]
