"""References between big tables checked once per statement instead of once per row.

A foreign-key constraint checks each inserted row on its own: one lookup and one row lock on the referenced
table per row and per key. For tables written a few million rows at a time (a billing run: 2.6 million
invoices, each with four references, and their lines; a reading import: a million readings with three) that
costs minutes at COMMIT, far more than the insert itself. Those references are kept by triggers instead:

* the referencing table has a statement-level trigger after INSERT that looks for the new rows' keys missing
  from the referenced table in one anti-join, and raises ``foreign_key_violation`` naming the column when
  there is one; an UPDATE that changes a referencing column is checked row by row (PostgreSQL gives no
  transition table to a trigger on some columns only, and such updates are rare);
* each referenced table has a statement-level trigger after DELETE that raises the same error when a
  deleted row is still referenced. When the statement deleted rows (a DELETE of none locks nothing) it first
  takes a SHARE lock on the referencing table, which waits for the transactions writing to it to finish and
  keeps new writers out until it commits, so a delete and a concurrent insert cannot both pass: whichever
  runs second sees the other. It reads the referencing column through an index (each one has its own).

Whichever runs second sees the other only because each statement of a READ COMMITTED transaction reads the
rows committed before it: a REPEATABLE READ or SERIALIZABLE transaction reads its first snapshot, in which a
concurrent delete or insert is not seen yet. The triggers therefore refuse to check, and the statement, in a
transaction of another isolation level (``feature_not_supported``).

The rules hold at the end of each statement (a foreign key declared by Django is checked at COMMIT), so a
referenced row must be written before the rows that point at it, as the services do.

On SQLite the same insert checks are row triggers (Django's ``on_delete=PROTECT`` keeps the referenced rows).
The fields themselves are declared with ``db_constraint=False``. A migration holds its own SQL: ``References``
writes it (``postgresql_forward()``, ``postgresql_functions()``, ``sqlite_forward()``) to be pasted into a new
migration as literals, never imported by one.
"""

from __future__ import annotations

from dataclasses import dataclass

# Raised first by every check: its rules hold only when each statement sees what was committed before it.
READ_COMMITTED_ONLY = """    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION USING ERRCODE = 'feature_not_supported',
            MESSAGE = 'the references of {table} are checked in READ COMMITTED transactions only';
    END IF;"""


@dataclass(frozen=True)
class References:
    """The references of ``table``: (column, referenced table) pairs, all pointing at the ``id`` column."""

    table: str
    columns: tuple[tuple[str, str], ...]

    def _check_function(self) -> str:
        checks = "\n".join(
            f"""    IF EXISTS (SELECT 1 FROM new_rows n WHERE n.{column} IS NOT NULL
                 AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE p.id = n.{column})) THEN
        RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation',
            MESSAGE = '{self.table}.{column} refers to a row missing from {parent}';
    END IF;"""
            for column, parent in self.columns
        )
        row_checks = "\n".join(
            f"""    IF NEW.{column} IS DISTINCT FROM OLD.{column} AND NEW.{column} IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE p.id = NEW.{column}) THEN
        RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation',
            MESSAGE = '{self.table}.{column} refers to a row missing from {parent}';
    END IF;"""
            for column, parent in self.columns
        )
        guard = READ_COMMITTED_ONLY.format(table=self.table)
        return f"""
CREATE OR REPLACE FUNCTION {self.table}_refs_check() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM new_rows) THEN
        RETURN NULL;
    END IF;
{guard}
{checks}
    RETURN NULL;
END $$;
CREATE TRIGGER {self.table}_refs_insert AFTER INSERT ON {self.table}
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {self.table}_refs_check();
CREATE OR REPLACE FUNCTION {self.table}_refs_check_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
{guard}
{row_checks}
    RETURN NEW;
END $$;
CREATE TRIGGER {self.table}_refs_update BEFORE UPDATE OF {", ".join(c for c, _p in self.columns)} ON {self.table}
    FOR EACH ROW WHEN ({" OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c, _p in self.columns)})
    EXECUTE FUNCTION {self.table}_refs_check_row();
"""

    def _parent_name(self, column: str) -> str:
        return f"{self.table}_{column}_kept"

    def _parent_function(self, column: str, parent: str) -> str:
        name = self._parent_name(column)
        return f"""
CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM old_rows) THEN
        RETURN NULL;
    END IF;
{READ_COMMITTED_ONLY.format(table=self.table)}
    LOCK TABLE {self.table} IN SHARE MODE;
    IF EXISTS (SELECT 1 FROM old_rows o JOIN {self.table} c ON c.{column} = o.id) THEN
        RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation',
            MESSAGE = 'a deleted row of {parent} is still referenced by {self.table}.{column}';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER {name} AFTER DELETE ON {parent}
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION {name}();
"""

    def postgresql_forward(self) -> str:
        return self._check_function() + "".join(self._parent_function(c, p) for c, p in self.columns)

    def postgresql_functions(self) -> str:
        """The functions alone (``CREATE OR REPLACE``), for a migration that changes what the triggers run."""
        return "".join(
            part.split("CREATE TRIGGER", 1)[0] + "\n"
            for part in self.postgresql_forward().split("\nCREATE OR REPLACE FUNCTION")[1:]
            for part in ["CREATE OR REPLACE FUNCTION" + part]
        )

    def postgresql_backward(self) -> str:
        statements = [
            f"DROP TRIGGER IF EXISTS {self.table}_refs_insert ON {self.table};",
            f"DROP TRIGGER IF EXISTS {self.table}_refs_update ON {self.table};",
            f"DROP FUNCTION IF EXISTS {self.table}_refs_check();",
            f"DROP FUNCTION IF EXISTS {self.table}_refs_check_row();",
        ]
        for column, parent in self.columns:
            name = self._parent_name(column)
            statements += [
                f"DROP TRIGGER IF EXISTS {name} ON {parent};",
                f"DROP FUNCTION IF EXISTS {name}();",
            ]
        return "\n".join(statements)

    def sqlite_names(self) -> list[str]:
        return [
            f"{self.table}_{column}_{op}_ref" for column, _p in self.columns for op in ("insert", "update")
        ]

    def sqlite_forward(self) -> list[str]:
        statements = []
        for column, parent in self.columns:
            for op, when in (("insert", "INSERT"), ("update", f"UPDATE OF {column}")):
                statements.append(
                    f"CREATE TRIGGER {self.table}_{column}_{op}_ref BEFORE {when} ON {self.table} "
                    f"WHEN NEW.{column} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {parent} WHERE id = NEW.{column}) "
                    f"BEGIN SELECT RAISE(ABORT, '{self.table}.{column} refers to a row missing from {parent}'); END"
                )
        return statements

    def forward(self, schema_editor) -> None:
        vendor = schema_editor.connection.vendor
        if vendor == "postgresql":
            schema_editor.execute(self.postgresql_forward(), params=None)
        elif vendor == "sqlite":
            for statement in self.sqlite_forward():
                schema_editor.execute(statement)

    def backward(self, schema_editor) -> None:
        vendor = schema_editor.connection.vendor
        if vendor == "postgresql":
            schema_editor.execute(self.postgresql_backward(), params=None)
        elif vendor == "sqlite":
            for name in self.sqlite_names():
                schema_editor.execute(f"DROP TRIGGER IF EXISTS {name}")
