"""Backups of the database and their restore into a fresh database (``manage.py backup``, ``manage.py restore``).

PostgreSQL: ``pg_dump --format=custom``, which reads every table in one snapshot (a consistent backup while
the product runs), and ``pg_restore`` in one transaction into an empty database. The client programs must be
on ``PATH`` (Debian's ``postgresql-client``, of the server's major version or newer). The connection's
password travels in the environment (``PGPASSWORD``), never on the command line.

SQLite: sqlite3's online backup API, a consistent copy while the product runs, and the same API back into a
new file.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path
from typing import Any

import dj_database_url
import psycopg
from django.core.exceptions import ImproperlyConfigured
from django.db import connections

PG_MAGIC = b"PGDMP"
SQLITE_MAGIC = b"SQLite format 3\x00"


class BackupError(Exception):
    """A backup or restore that cannot be done, with the reason for the operator."""


def database_of(url: str | None = None, alias: str = "default") -> dict[str, Any]:
    """Django's settings of a database: those of ``url``, else of the configured ``alias``."""
    if url is None:
        return connections[alias].settings_dict
    try:
        return dict(dj_database_url.parse(url))
    except (ValueError, ImproperlyConfigured) as exc:
        raise BackupError(f"{url!r} is not a database URL: {exc}") from None


def is_postgresql(settings: dict) -> bool:
    return settings["ENGINE"] == "django.db.backends.postgresql"


def is_sqlite(settings: dict) -> bool:
    return settings["ENGINE"] == "django.db.backends.sqlite3"


def libpq_environment(settings: dict) -> dict[str, str]:
    """The environment that points pg_dump/pg_restore at a database (password included, off the command line)."""
    env = dict(os.environ)
    for variable, key in (
        ("PGHOST", "HOST"),
        ("PGPORT", "PORT"),
        ("PGUSER", "USER"),
        ("PGPASSWORD", "PASSWORD"),
    ):
        if settings.get(key):
            env[variable] = str(settings[key])
    env["PGDATABASE"] = settings["NAME"]
    options = settings.get("OPTIONS") or {}
    if options.get("sslmode"):
        env["PGSSLMODE"] = options["sslmode"]
    if options.get("connect_timeout"):
        env["PGCONNECT_TIMEOUT"] = str(options["connect_timeout"])
    return env


def client_program(name: str) -> str:
    program = shutil.which(name)
    if program is None:
        raise BackupError(
            f"{name} is not on PATH: install PostgreSQL's client programs (Debian: postgresql-client) of the "
            "server's major version or newer."
        )
    return program


def run(command: list[str], env: dict[str, str]) -> None:
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise BackupError(f"{Path(command[0]).name} failed ({result.returncode}): {result.stderr.strip()}")


def writable_target(path: Path) -> None:
    """Refuse a file name that cannot take a backup or a restored database: a folder, or a file in a folder
    that does not exist."""
    if path.is_dir():
        raise BackupError(f"{path} is a folder: name the file to write, e.g. {path / 'tongdai.dump'}.")
    if not path.parent.is_dir():
        raise BackupError(f"The folder {path.parent} does not exist: create it first, or name another one.")


def backup(path: Path, *, settings: dict) -> None:
    """Write a consistent backup of the database to ``path`` (written beside it first, then renamed)."""
    path = Path(path)
    writable_target(path)
    partial = path.with_name(path.name + ".partial")
    try:
        if is_postgresql(settings):
            pg_dump = client_program("pg_dump")
            command = [pg_dump, "--format=custom", "--no-owner", "--no-privileges", "--file", str(partial)]
            run(command, libpq_environment(settings))
        elif is_sqlite(settings):
            sqlite_backup(settings, partial)
        else:
            raise BackupError(f"Backups of {settings['ENGINE']} databases are not supported.")
        partial.replace(path)
    except (OSError, sqlite3.Error) as exc:
        raise BackupError(f"The backup could not be written to {path}: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)


def sqlite_backup(settings: dict, target: Path) -> None:
    """sqlite3's online backup API, through the project's own connection (an in-memory test database too)."""
    connection = connections["default"] if connections["default"].settings_dict is settings else None
    destination = sqlite3.connect(target)
    try:
        if connection is not None:
            connection.ensure_connection()
            connection.connection.backup(destination)
        else:
            with sqlite3.connect(settings["NAME"]) as source:
                source.backup(destination)
    finally:
        destination.close()


def backup_kind(path: Path) -> str:
    with open(path, "rb") as file:
        head = file.read(16)
    if head.startswith(PG_MAGIC):
        return "postgresql"
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    raise BackupError(
        f"{path} is not a backup made by manage.py backup (neither pg_dump's custom format nor SQLite)."
    )


def postgresql_tables(settings: dict) -> int:
    """How many tables the database holds outside PostgreSQL's own schemas."""
    options = {k: v for k, v in (settings.get("OPTIONS") or {}).items() if k in ("sslmode",)}
    try:
        with psycopg.connect(
            dbname=settings["NAME"],
            host=settings.get("HOST") or None,
            port=settings.get("PORT") or None,
            user=settings.get("USER") or None,
            password=settings.get("PASSWORD") or None,
            connect_timeout=10,
            **options,
        ) as conn:
            (count,) = conn.execute(
                "SELECT count(*) FROM pg_catalog.pg_tables "
                "WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
            ).fetchone() or (0,)
            return count
    except psycopg.OperationalError as exc:
        raise BackupError(
            f"The database {settings['NAME']} does not exist or cannot be reached ({str(exc).strip()}): create "
            "it with createdb first, and check the host, port, user and password of --database-url."
        ) from None


def sqlite_tables(path: Path) -> int:
    if not path.exists() or path.stat().st_size == 0:
        return 0
    try:
        with closing(sqlite3.connect(path)) as conn:
            return conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
    except sqlite3.Error as exc:
        raise BackupError(f"{path} cannot be read as a SQLite database ({exc}): name a new file.") from None


def restore(path: Path, *, settings: dict, force: bool = False) -> None:
    """Restore the backup at ``path`` into the database of ``settings``, which must be empty unless ``force``
    (then what it holds is replaced: the backup's tables are dropped and created again)."""
    path = Path(path)
    if not path.is_file():
        raise BackupError(f"{path} is not a file.")
    kind = backup_kind(path)
    if is_postgresql(settings):
        if kind != "postgresql":
            raise BackupError(f"{path} is a SQLite backup; restore it into a SQLite database (sqlite:///…).")
        tables = postgresql_tables(settings)
        if tables and not force:
            raise BackupError(
                f"The database {settings['NAME']} is not empty ({tables} tables): restore into a new, empty "
                "database (createdb), or pass --force to replace what it holds."
            )
        command = [client_program("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error"]
        command.append("--single-transaction")
        if tables:
            command += ["--clean", "--if-exists"]
        run([*command, "--dbname", settings["NAME"], str(path)], libpq_environment(settings))
    elif is_sqlite(settings):
        if kind != "sqlite":
            raise BackupError(
                f"{path} is a PostgreSQL backup; restore it into a PostgreSQL database (postgres://…)."
            )
        target = Path(settings["NAME"])
        writable_target(target)
        tables = sqlite_tables(target)
        if tables and not force:
            raise BackupError(
                f"The database {target} is not empty ({tables} tables): restore into a new file, or pass --force "
                "to replace it."
            )
        try:
            with closing(sqlite3.connect(path)) as source, closing(sqlite3.connect(target)) as destination:
                source.backup(destination)
        except sqlite3.Error as exc:
            raise BackupError(f"{path} could not be restored into {target}: {exc}") from None
    else:
        raise BackupError(f"Restoring into {settings['ENGINE']} databases is not supported.")
