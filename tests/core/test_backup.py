"""manage.py backup writes a consistent backup; manage.py restore puts it into a fresh database with the same
rows, and refuses a database that is not empty unless told to replace it."""

from __future__ import annotations

import io
import sqlite3

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from core import backup as backup_module
from crm.models import OutboxMessage


def row_counts_here() -> dict[str, int]:
    with connection.cursor() as cursor:
        counts = {}
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f'SELECT count(*) FROM "{table}"')
            counts[table] = cursor.fetchone()[0]
    return counts


def some_rows(make_customer):
    make_customer(name="Nguyễn Văn An")
    make_customer(name="Trần Thị Bình", phones=("0912 345 678",))
    OutboxMessage.objects.create(channel="sms", recipient="+84903999888", body="x")


def pg_connect(dbname: str, **kwargs):
    settings = connection.settings_dict
    return psycopg.connect(
        dbname=dbname,
        host=settings["HOST"] or None,
        port=settings["PORT"] or None,
        user=settings["USER"] or None,
        password=settings["PASSWORD"] or None,
        **kwargs,
    )


@pytest.fixture
def fresh_pg_database():
    """A new, empty PostgreSQL database on the test server, dropped afterwards."""
    name = f"{connection.settings_dict['NAME']}_restore"
    settings = connection.settings_dict
    with pg_connect("postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    host = settings["HOST"] or "localhost"
    password = f":{settings['PASSWORD']}" if settings["PASSWORD"] else ""
    yield name, f"postgres://{settings['USER']}{password}@{host}:{settings['PORT'] or 5432}/{name}"
    with pg_connect("postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_postgresql_backup_restores_into_a_fresh_database_with_the_same_rows(
    make_customer, tmp_path, fresh_pg_database
):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only (DATABASE_URL=postgres://…)")
    name, url = fresh_pg_database
    some_rows(make_customer)
    before = row_counts_here()
    assert before["customers_customer"] == 2 and before["crm_outboxmessage"] == 1
    dump = tmp_path / "tongdai.dump"

    call_command("backup", str(dump), stdout=io.StringIO())
    assert dump.read_bytes().startswith(b"PGDMP")
    call_command("restore", str(dump), "--database-url", url, stdout=io.StringIO())

    with pg_connect(name) as restored:
        after = {
            table: restored.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0] for table in before
        }
        names = {row[0] for row in restored.execute("SELECT full_name FROM customers_customer")}
    assert after == before
    assert names == {"Nguyễn Văn An", "Trần Thị Bình"}

    # a database that is no longer empty is refused, and left as it was ...
    OutboxMessage.objects.all().delete()
    call_command("backup", str(dump), stdout=io.StringIO())
    with pytest.raises(CommandError, match=rf"The database {name} is not empty \(\d+ tables\)"):
        call_command("restore", str(dump), "--database-url", url, stdout=io.StringIO())
    with pg_connect(name) as restored:
        assert restored.execute("SELECT count(*) FROM crm_outboxmessage").fetchone()[0] == 1
    # ... unless --force replaces what it holds
    call_command("restore", str(dump), "--database-url", url, "--force", stdout=io.StringIO())
    with pg_connect(name) as restored:
        assert restored.execute("SELECT count(*) FROM crm_outboxmessage").fetchone()[0] == 0
        assert restored.execute("SELECT count(*) FROM customers_customer").fetchone()[0] == 2


@pytest.mark.django_db(transaction=True)
def test_a_sqlite_backup_uses_the_online_backup_api_and_restores_into_a_new_file(make_customer, tmp_path):
    if connection.vendor != "sqlite":
        pytest.skip("SQLite only")
    some_rows(make_customer)
    before = row_counts_here()
    copy, target = tmp_path / "tongdai.sqlite3", tmp_path / "restored.sqlite3"

    call_command("backup", str(copy), stdout=io.StringIO())
    call_command("restore", str(copy), "--database-url", f"sqlite:///{target}", stdout=io.StringIO())

    with sqlite3.connect(target) as restored:
        after = {table: restored.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0] for table in before}
    assert after == before
    with pytest.raises(CommandError, match="is not empty"):
        call_command("restore", str(copy), "--database-url", f"sqlite:///{target}", stdout=io.StringIO())
    with pytest.raises(CommandError, match="is a SQLite backup; restore it into a SQLite database"):
        call_command("restore", str(copy), "--database-url", "postgres://nobody@127.0.0.1:1/none")


def test_restore_refuses_a_file_that_is_not_a_backup_and_needs_a_target(tmp_path):
    junk = tmp_path / "notes.txt"
    junk.write_text("hello")
    with pytest.raises(CommandError, match=r"is not a backup made by manage\.py backup"):
        call_command("restore", str(junk), "--database-url", f"sqlite:///{tmp_path / 'x.sqlite3'}")
    with pytest.raises(CommandError, match="--database-url"):
        call_command("restore", str(junk))


def test_a_postgresql_backup_without_pg_dump_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(backup_module.shutil, "which", lambda name: None)
    settings = backup_module.database_of("postgres://postgres@127.0.0.1:5432/tongdai")
    with pytest.raises(backup_module.BackupError, match="pg_dump is not on PATH: install PostgreSQL"):
        backup_module.backup(tmp_path / "x.dump", settings=settings)
    assert not list(tmp_path.iterdir())


def test_restore_into_a_database_that_does_not_exist_says_to_create_it(tmp_path):
    dump = tmp_path / "tongdai.dump"
    dump.write_bytes(b"PGDMP" + b"\x00" * 64)  # pg_dump's custom format, as far as the kind check reads
    with pytest.raises(CommandError, match=r"The database tongdai_forgot_createdb does not exist or cannot"):
        call_command(
            "restore", str(dump), database_url="postgres://postgres@127.0.0.1:5432/tongdai_forgot_createdb",
            stdout=io.StringIO(),
        )  # fmt: skip
    with pytest.raises(CommandError, match="create it with createdb first"):
        call_command("restore", str(dump), database_url="postgres://nobody@127.0.0.1:1/x", stdout=io.StringIO())


def test_a_sqlite_restore_into_a_missing_folder_is_refused_and_writes_nothing(tmp_path):
    backup = tmp_path / "b.sqlite3"
    with sqlite3.connect(backup) as made:
        made.execute("CREATE TABLE t (x)")
    made.close()
    with pytest.raises(CommandError, match=rf"The folder {tmp_path}/no/such/folder does not exist"):
        call_command(
            "restore", str(backup), database_url=f"sqlite:///{tmp_path}/no/such/folder/x.sqlite3",
            stdout=io.StringIO(),
        )  # fmt: skip
    with pytest.raises(CommandError, match=rf"{tmp_path} is a folder: name the file"):
        call_command("restore", str(backup), database_url=f"sqlite:///{tmp_path}", stdout=io.StringIO())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.sqlite3"]


@pytest.mark.django_db
def test_a_backup_into_a_missing_folder_or_onto_a_folder_is_refused_and_writes_nothing(tmp_path):
    missing = tmp_path / "no" / "such" / "folder" / "x.dump"
    with pytest.raises(CommandError, match=rf"The folder {missing.parent} does not exist"):
        call_command("backup", str(missing), stdout=io.StringIO())
    with pytest.raises(CommandError, match=rf"{tmp_path} is a folder: name the file to write"):
        call_command("backup", str(tmp_path), stdout=io.StringIO())
    assert list(tmp_path.iterdir()) == []


def test_a_sqlite_restore_onto_a_file_that_is_not_a_database_says_so(tmp_path):
    backup = tmp_path / "b.sqlite3"
    with sqlite3.connect(backup) as made:
        made.execute("CREATE TABLE t (x)")
    made.close()
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database, but not empty either")
    with pytest.raises(CommandError, match="cannot be read as a SQLite database"):
        call_command("restore", str(backup), database_url=f"sqlite:///{notes}", stdout=io.StringIO())
    assert notes.read_text() == "not a database, but not empty either"
