"""PostgreSQL only: pg_trgm and the trigram index that serves the lookup's word search.

The lookup filters ``search_text LIKE '% word%'`` (folded, space-padded); a GIN index with gin_trgm_ops on the
plain column serves exactly that expression. SQLite has no such index and runs the same query by scanning.
"""

from django.db import migrations


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    schema_editor.execute(
        "CREATE INDEX IF NOT EXISTS customers_search_trgm ON customers_customer "
        "USING gin (search_text gin_trgm_ops)"
    )


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("DROP INDEX IF EXISTS customers_search_trgm")


class Migration(migrations.Migration):
    dependencies = [("customers", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
