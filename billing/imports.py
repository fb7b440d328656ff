"""The fast path for big reading files: a whole file in a few set-based statements, in one transaction.

A file is CSV with a header: ``meter_serial`` (or ``contract_number``, or both), ``value`` (the register),
``period`` (``YYYY-MM`` or ``YYYY-MM-01``; may be left out when the import names its period), and optionally
``taken_at`` (ISO date and time; without an offset it is local time) and ``source`` (remote, handheld, photo or estimated: a
metering system's own estimate, ``RECORDED_SOURCES``).
Other columns are ignored. The pipeline:

1. ``ri_stage``: the file as text, numbered by line (the header is line 1). PostgreSQL: ``COPY … FROM STDIN``
   fed in 1 MB chunks, the file never whole in memory; SQLite: ``executemany`` in batches from a streaming
   ``csv.reader``. Each line is checked once, in the same words on both (``_line_cells``): a file that is not
   UTF-8 or a line of another width than the header refuses the file, naming the line; a line holding a NUL
   character is staged as such and refused alone (step 2).
2. ``ri_rows`` (one ``CREATE TABLE … AS SELECT``): each line parsed once (period and time checked by a regular
   expression and the register for digits before any cast, so a bad text is a refusal, never an error; source)
   and resolved (meter serial → its open assignment, else its last one; or contract number → the contract's
   open assignment, else its last one; → contract → customer → unit), with the first reason to
   refuse it chosen by one ``CASE`` in a fixed order: missing key, period (not a month, a month not yet come,
   another month than the import's), register, source, time, unknown serial or contract, meter not
   installed, the import's unit, the importer's units.
3. ``UPDATE ri_rows``: lines repeating a (contract, period) of the file (a window over the file); periods
   already read (an existing current reading: the same register is *unchanged*, another one is refused).
4. Per period of the file, oldest first (usually there is one): ``ri_calc`` gets the previous current reading
   of each contract and the kWh and days of its last three non-estimated readings (``LATERAL`` index probes in
   contract order on PostgreSQL, correlated subqueries on SQLite); previous register and kWh as
   ``billing.services.reading_record`` computes them (first reading: from the reading at install; a meter
   replaced since the previous reading: old meter's removal reading − previous, plus the whole advance of each
   meter installed and taken off in between, plus register − new meter's reading at install); a register
   below the previous one refused (a roll-over cannot be asserted in a file);
   an implausible jump flagged (kWh > TONGDAI_READING_JUMP_FACTOR × expected and kWh − expected > 50, with
   expected = the average daily kWh of those readings × the days of the period, compared exactly in integers).
   Then ONE ``INSERT INTO billing_meterreading … SELECT`` of the good lines, in contract order. A month that
   ended before the meter was installed is refused, as is a suspended contract (step 2), in the words of
   ``billing.rules``. A line for a month before one already read (rare) is left out of the set-based path and
   goes through ``billing.services.reading_record`` itself, one savepoint each: placed in register order with
   the later month re-based, or refused with the service's reason. So does a line of a contract whose meter
   came off during or after the line's month, or naming a meter on no contract now: the month is read on the
   meter that served the contract then, up to its removal register (the final month of a customer who moved
   out, read after the meter came off).
5. The counts, one audit record for the import, and the refused lines (line, serial, contract, period,
   register, reason) streamed to a CSV.

Everything runs in one transaction: a failure (a malformed file, a reading recorded meanwhile by someone else
for the same contract and period) writes nothing. Running the same file again inserts nothing: its lines come
back as unchanged.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import itertools
import logging
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from billing import rules
from billing.models import RECORDED_SOURCES, ReadingImport, ReadingImportStatus, ReadingSource, ReadingStatus
from billing.services import audit, bulk_work_memory, check_reach, period_bounds, reading_record
from core import db
from core.exports import csv_cell
from crm.models import Unit
from crm.permissions import require
from crm.scoping import scope_for, units_served_today
from customers.models import Contract

logger = logging.getLogger(__name__)

COLUMNS = ("meter_serial", "contract_number", "period", "value", "taken_at", "source")
# A line of a file gives its reading any of ``billing.models.RECORDED_SOURCES``, as ``POST /api/v1/readings/``
# does. ``SOURCES``: what an import may give the lines that say none (``billing.models.IMPORTABLE_SOURCES``),
# never an estimate for a whole file.
SOURCES = (ReadingSource.REMOTE, ReadingSource.HANDHELD, ReadingSource.PHOTO)
CHUNK = 1 << 20  # bytes per COPY write
BATCH = 5000  # rows per executemany on SQLite
PREVIEW = 100  # refused lines kept in memory for display; all of them go to the CSV
LEASE = dt.timedelta(minutes=10)  # a running import without progress for this long is taken over
TASK_TIMEOUT = 3600  # seconds a worker may spend on one file

PERIOD_RE = r"^(19|20)[0-9]{2}-(0[1-9]|1[0-2])(-01)?$"
TIME_RE = (
    r"^(19|20)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?(Z|[+-]([01][0-9]|2[0-3])(:?[0-5][0-9])?)?)?$"
)
REJECT_HEADER = ["line", "meter_serial", "contract_number", "period", "value", "reason"]


@dataclass(frozen=True)
class Reject:
    line: int
    meter_serial: str
    contract_number: str
    period: str
    value: str
    reason: str


@dataclass
class ImportResult:
    total: int = 0
    inserted: int = 0
    flagged: int = 0
    unchanged: int = 0
    rejected: int = 0
    periods: list[str] = field(default_factory=list)
    dry_run: bool = False
    written: bool = True  # False after a dry run, or when bad lines refused a whole file
    seconds: dict[str, float] = field(default_factory=dict)
    rejects: list[Reject] = field(default_factory=list)  # the first PREVIEW of them

    def as_dict(self) -> dict:
        data = asdict(self)
        data["rejects"] = data["rejects"][:20]
        return data


Progress = Callable[..., None]


# SQL helpers --------------------------------------------------------------------------------------------


class _Params(dict):
    """Named parameters of one statement; ``add`` returns the placeholder of a new one."""

    def add(self, value) -> str:
        name = f"p{len(self)}"
        self[name] = value
        return f"%({name})s"


def _message(params: _Params, template: str, **exprs: str) -> str:
    """SQL text of a translated message whose ``%(name)s`` placeholders are filled by SQL expressions."""
    parts = re.split(r"%\((\w+)\)s", template)
    sql = []
    for i, part in enumerate(parts):
        if i % 2 == 0:
            if part:
                sql.append(params.add(part))
        else:
            sql.append(f"CAST({exprs[part]} AS TEXT)")
    return "(" + " || ".join(sql) + ")" if sql else "''"


# A contract's (or a meter's) assignments ``x``, the one a line is resolved to first: the open one, else the
# last one taken off.
LATEST_ASSIGNMENT = "CASE WHEN x.removed_at IS NULL THEN 0 ELSE 1 END, x.removed_at DESC, x.id DESC"


class _Dialect:
    """The few places where PostgreSQL and SQLite need different SQL."""

    def __init__(self) -> None:
        self.postgres = db.is_postgres(connection)

    @property
    def fence(self) -> str:
        """Keeps PostgreSQL from pulling a subquery up (and so repeating its expressions, subqueries and all)."""
        return " OFFSET 0" if self.postgres else ""

    def matches(self, expr: str, params: _Params, pattern: str) -> str:
        # SQLite: Django registers REGEXP (Python's re) on its connections.
        return f"({expr} {'~' if self.postgres else 'REGEXP'} {params.add(pattern)})"

    def date(self, text: str) -> str:
        return f"CAST({text} AS DATE)" if self.postgres else text  # SQLite keeps dates as ISO text

    def month_days(self, date: str) -> str:
        if self.postgres:
            return f"((({date}) + INTERVAL '1 month')::date - ({date}))"
        return f"CAST(julianday(date({date}, '+1 month')) - julianday({date}) AS INTEGER)"

    def digits(self, text: str) -> str:
        """TRUE for 1 to 15 decimal digits (cheaper than a regular expression on a million lines)."""
        if self.postgres:
            return f"(translate({text}, '0123456789', '') = '' AND length({text}) BETWEEN 1 AND 15)"
        return f"(length({text}) BETWEEN 1 AND 15 AND {text} NOT GLOB '*[^0-9]*')"

    def timestamp(self, text: str, params: _Params) -> str:
        """The aware time of an ISO text (local time without an offset), NULL if it is not one."""
        if not self.postgres:
            return f"tongdai_import_ts({text})"
        first = self.date(f"substr({text}, 1, 7) || {params.add('-01')}")
        day_ok = f"substr({text}, 9, 2) <= '28' OR CAST(substr({text}, 9, 2) AS INTEGER) <= {self.month_days(first)}"
        # TIME_RE has checked the shape: a '+', '-' or 'Z' after the date can only be the offset.
        offset = f"right({text}, 1) = 'Z' OR strpos(substr({text}, 11), '+') > 0 OR strpos(substr({text}, 11), '-') > 0"
        cast = (
            f"CASE WHEN {offset} THEN CAST({text} AS TIMESTAMPTZ) "
            f"ELSE CAST({text} AS TIMESTAMP) AT TIME ZONE {params.add(settings.TIME_ZONE)} END"
        )
        # Nested CASEs: PostgreSQL evaluates a CASE's branches in order, never the casts of a bad text.
        return (
            f"(CASE WHEN {self.matches(text, params, TIME_RE)} THEN CASE WHEN {day_ok} THEN {cast} END END)"
        )

    def prepare(self) -> None:
        if self.postgres:
            with connection.cursor() as cursor:
                # Hash joins and sorts of a million lines in memory rather than in batches on disk.
                cursor.execute("SET LOCAL work_mem = '256MB'")
                # Index probes for a small file (the data is in memory: a random read costs about a sequential
                # one), hash joins for a big one; no JIT, whose compile time the import's joins do not repay.
                cursor.execute("SET LOCAL random_page_cost = 1.1")
                cursor.execute("SET LOCAL jit = off")
            return
        connection.ensure_connection()
        connection.connection.create_function("tongdai_import_ts", 1, _sqlite_timestamp, deterministic=True)

    def contract_assignment_join(self) -> str:
        """The contract's meter assignment for lines that name a contract and no meter: the open one, else the
        last one taken off (such a line goes through ``reading_record``, which reads the month on the meter
        that served it: ``_check_against_recorded``)."""
        if self.postgres:
            return (
                "LEFT JOIN LATERAL (SELECT x.id, x.contract_id, x.meter_id, x.reading_at_install, x.installed_at, "
                "x.removed_at FROM customers_meterassignment x WHERE x.contract_id = kc.id AND p.k_serial = '' "
                f"ORDER BY {LATEST_ASSIGNMENT} LIMIT 1) ac ON TRUE"
            )
        return (
            "LEFT JOIN customers_meterassignment ac ON p.k_serial = '' AND ac.id = (SELECT x.id "
            f"FROM customers_meterassignment x WHERE x.contract_id = kc.id ORDER BY {LATEST_ASSIGNMENT} LIMIT 1)"
        )

    def removed_meter_join(self) -> str:
        """For a line naming a meter that is on no contract now: its last assignment (``al``), looked up only
        for such lines. The line goes through ``reading_record``, which reads the month on the meter that served
        the contract then (``_check_against_recorded``)."""
        if self.postgres:
            return (
                "LEFT JOIN LATERAL (SELECT x.id, x.contract_id, x.meter_id, x.reading_at_install, x.installed_at, "
                "x.removed_at FROM customers_meterassignment x WHERE am.id IS NULL AND x.meter_id = m.id "
                f"ORDER BY {LATEST_ASSIGNMENT} LIMIT 1) al ON TRUE"
            )
        return (
            "LEFT JOIN customers_meterassignment al ON am.id IS NULL AND al.id = (SELECT x.id "
            f"FROM customers_meterassignment x WHERE x.meter_id = m.id ORDER BY {LATEST_ASSIGNMENT} LIMIT 1)"
        )

    def month_end_at(self, period: str, params: _Params) -> str:
        """Local midnight at the end of the month of the date ``period`` as stored times compare with it
        (``billing.rules.month_end_at``)."""
        if self.postgres:
            return f"(CAST(({period}) + INTERVAL '1 month' AS TIMESTAMP) AT TIME ZONE {params.add(settings.TIME_ZONE)})"
        connection.ensure_connection()
        connection.connection.create_function("tongdai_month_end_at", 1, _sqlite_month_end_at, deterministic=True)
        return f"tongdai_month_end_at({period})"

    def history(self, days: str) -> str:
        """For each line of ``%(period)s`` still in: its previous current reading (value, meter, period) and the
        count, kWh and days of its last three non-estimated current readings."""
        current = "r.contract_id = i.contract_id AND r.period < %(period)s AND NOT (r.status = 'superseded')"
        latest = f"FROM billing_meterreading r WHERE {current} ORDER BY r.period DESC LIMIT 1"
        cycles = (
            f"FROM billing_meterreading r WHERE {current} AND NOT (r.source = 'estimated') "
            "ORDER BY r.period DESC LIMIT 3"
        )
        todo = "i.period = %(period)s AND i.reject_reason IS NULL AND i.unchanged = 0 AND i.late = 0"
        if self.postgres:
            # Index probes in contract order (the unique (contract, period) index), two per line.
            return (
                "SELECT i.*, pr.value AS last_value, pr.meter_id AS last_meter, pr.period AS last_period, "
                "h.n AS hist_n, "
                "h.kwh AS hist_kwh, h.days AS hist_days "
                f"FROM (SELECT * FROM ri_rows i WHERE {todo} ORDER BY i.contract_id) i "
                f"LEFT JOIN LATERAL (SELECT r.value, r.meter_id, r.period {latest}) pr ON TRUE "
                "LEFT JOIN LATERAL (SELECT COUNT(*) AS n, SUM(y.kwh) AS kwh, SUM(y.days) AS days FROM "
                f"(SELECT r.kwh, {days} AS days {cycles}) y) h ON TRUE"
            )
        return (
            f"SELECT i.*, (SELECT r.value {latest}) AS last_value, (SELECT r.meter_id {latest}) AS last_meter, "
            f"(SELECT r.period {latest}) AS last_period, "
            f"(SELECT COUNT(*) FROM (SELECT 1 {cycles}) y) AS hist_n, "
            f"(SELECT SUM(y.kwh) FROM (SELECT r.kwh {cycles}) y) AS hist_kwh, "
            f"(SELECT SUM(y.days) FROM (SELECT {days} AS days {cycles}) y) AS hist_days "
            f"FROM ri_rows i WHERE {todo}"
        )


_TIME_PATTERN = re.compile(TIME_RE)


def _sqlite_month_end_at(text):
    """SQLite's side of ``_Dialect.month_end_at``: the stored (UTC) text of ``rules.month_end_at``, or None."""
    if text is None:
        return None
    period = dt.date.fromisoformat(str(text)[:10])
    return connection.ops.adapt_datetimefield_value(rules.month_end_at(period))


def _sqlite_timestamp(text):
    """SQLite's side of ``_Dialect.timestamp``: the UTC text Django stores, or None."""
    if text is None or not _TIME_PATTERN.match(text):
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if timezone.is_naive(value):
        value = timezone.make_aware(value)
    return value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(sep=" ")


def _execute(sql: str, params=None) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _fetch(sql: str, params=None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


# Reading the file ---------------------------------------------------------------------------------------


def _header(stream: IO[bytes]) -> tuple[list[str], str, int, bytes]:
    """The columns of the header line, the delimiter, the bytes read and the header's line end."""
    line = stream.readline()
    if not line.strip():
        raise ValidationError(_("The file is empty: it needs a header line."))
    try:
        text = line.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationError(_("The file is not UTF-8 text.")) from exc
    delimiter = ";" if ";" in text and "," not in text else ","
    names = [n.strip().lower() for n in next(csv.reader([text], delimiter=delimiter))]
    known = [n for n in names if n in COLUMNS]
    if len(known) != len(set(known)):
        raise ValidationError(_("A column appears twice in the header."))
    if "value" not in names or not {"meter_serial", "contract_number"} & set(names):
        raise ValidationError(
            _(
                "The header needs a “value” column and a “meter_serial” or “contract_number” column; it has: %(h)s"
            )
            % {"h": ", ".join(names)}
        )
    return names, delimiter, len(line), b"\r\n" if line.endswith(b"\r\n") else b"\n"


def _staging_columns(names: list[str]) -> list[str]:
    """The staging column of each column of the file (the unknown ones go to x1, x2, …)."""
    columns, extra = [], 0
    for name in names:
        if name in COLUMNS:
            columns.append(name)
        else:
            extra += 1
            columns.append(f"x{extra}")
    return columns


# Each line of the file is checked once, by ``_line_cells``, in the same words on both databases: the file is
# refused when it is not UTF-8 or a line has another number of cells than the header (named by its line in
# the file, blank lines counted); a line holding a NUL character is staged with ``has_nul`` and refused alone
# (PostgreSQL's text cannot hold the character: it is staged as U+FFFD, which the refused lines' file shows).


def _line_cells(row: list[str], line: int, width: int) -> tuple[list[str] | None, bool]:
    """A line's cells as staged (None for a blank line, or one of empty cells) and whether it held a NUL."""
    if not any(cell.strip(" ") for cell in row):  # spaces only: SQL's TRIM, as the staged cells are read
        return None, False
    if len(row) != width:
        raise ValidationError(
            _("Line %(n)s has %(c)s columns where the header has %(h)s.")
            % {"n": line, "c": len(row), "h": width}
        )
    if any("\x00" in cell for cell in row):
        return [cell.replace("\x00", "\ufffd") for cell in row], True
    return row, False


def _records(
    lines: Iterable[str], delimiter: str, width: int, first: int
) -> Iterator[tuple[int, list[str] | None, bool]]:
    """Each line of the file from line ``first`` on as (its line, ``_line_cells``): a line is a row of the
    file as a spreadsheet numbers it (a quoted cell over several lines is one)."""
    line = first - 1
    for row in csv.reader(lines, delimiter=delimiter):
        line += 1
        yield (line, *_line_cells(row, line, width))


_LINE_END = re.compile(r"(\r\n|\r|\n)")


def _text_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """The lines of the bytes, each with its end (CR LF, LF or CR), decoded strictly as UTF-8 a chunk at a time
    (a line end split between two chunks is one)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    pending = ""
    try:
        for chunk in chunks:
            parts = _LINE_END.split(pending + decoder.decode(chunk))
            lines = [parts[i] + parts[i + 1] for i in range(0, len(parts) - 1, 2)]
            pending = parts[-1]
            if lines and not pending and lines[-1].endswith("\r"):
                pending = lines.pop()  # a CR whose LF may come with the next chunk
            yield from lines
        pending += decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise ValidationError(_("The file is not UTF-8 text.")) from exc
    if pending:
        yield pending


def _read(stream, progress: Progress, offset: int) -> Iterator[bytes]:
    read = offset
    while chunk := stream.read(CHUNK):
        read += len(chunk)
        yield chunk
        progress("copy", bytes_read=read)


def _plain_lines(delimiter: str, width: int) -> re.Pattern[bytes]:
    """Lines that ``_line_cells`` takes as they are: ``width`` cells without quotes, NUL or CR, each line
    ended (COPY reads them as the SQLite path reads them)."""
    d = re.escape(delimiter).encode()
    cell = rb"[^" + d + rb'\r\n"\x00]*+'
    return re.compile(rb"(?>" + cell + rb"(?:" + d + cell + rb"){" + str(width - 1).encode() + rb"}\r?\n)*+")


def _copy_data(stream, columns, delimiter, eol: bytes, nul_lines: list[int], progress: Progress,
               offset: int) -> Iterator[bytes]:  # fmt: skip
    """What COPY reads: the file's lines as they are while they are plain (``_plain_lines``; a blank line a row
    of empty cells, ``_blank_lines_filled``, so that COPY numbers each line as the file does), then, from the
    first chunk that is not, every line checked by ``_line_cells`` and written anew; ``nul_lines`` gets the
    lines that held a NUL."""
    width = len(columns)
    plain = _plain_lines(delimiter, width)
    pieces = _blank_lines_filled(stream, delimiter.encode() * (width - 1))
    line, read, pending = 1, offset, b""
    for piece, size in pieces:
        read += size
        data = pending + piece
        cut = data.rfind(b"\n") + 1
        body, pending = data[:cut], data[cut:]
        if not _is_plain(body, plain, eol) or len(pending) > 1 << 20:  # or no LF in a megabyte (CR line ends)
            pending = body + pending
            break
        line += body.count(b"\n")
        yield body
        progress("copy", bytes_read=read)
    else:
        if not pending or _is_plain(pending + eol, plain, eol):
            yield pending + eol if pending else b""
            return
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator=eol.decode(), quoting=csv.QUOTE_ALL)
    rest = _text_lines(itertools.chain([pending], _counted(pieces, read, progress)))
    for number, cells, nul in _records(rest, delimiter, width, line + 1):
        writer.writerow([""] * width if cells is None else cells)  # a blank line: deleted with the others
        if nul:
            nul_lines.append(number)
        if out.tell() >= CHUNK:
            yield out.getvalue().encode()
            out.seek(0)
            out.truncate()
    yield out.getvalue().encode()


def _counted(pieces: Iterable[tuple[bytes, int]], read: int, progress: Progress) -> Iterator[bytes]:
    for piece, size in pieces:
        read += size
        yield piece
        progress("copy", bytes_read=read)


def _is_plain(body: bytes, plain: re.Pattern[bytes], eol: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError(_("The file is not UTF-8 text.")) from exc
    if plain.fullmatch(body) is None:
        return False
    # COPY takes the line end of its first line for every line: CR LF, or LF without a CR.
    return body.count(b"\r") == body.count(b"\n") if eol == b"\r\n" else b"\r" not in body


def _load_postgres(stream, columns, delimiter, eol: bytes, progress: Progress, offset: int) -> None:
    nul_lines: list[int] = []
    with connection.cursor() as cursor:
        with cursor.cursor.copy(
            f"COPY ri_stage ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv, DELIMITER '{delimiter}')"
        ) as copy:
            for data in _copy_data(stream, columns, delimiter, eol, nul_lines, progress, offset):
                if data:
                    copy.write(data)
        for at in range(0, len(nul_lines), BATCH):
            cursor.execute(
                "UPDATE ri_stage SET has_nul = 1 WHERE row_no = ANY(%s)", [nul_lines[at : at + BATCH]]
            )


def _blank_lines_filled(stream, filler: bytes) -> Iterator[tuple[bytes, int]]:
    """The stream's chunks with ``filler`` written into each blank line, and the bytes read for each. The
    stream starts after the header's line end; the line ends at a chunk's end wait for the next chunk, where
    a blank line may continue them."""
    pending, first = b"\n", True  # the header's line end, before the first line: a blank one is seen
    while True:
        chunk = stream.read(CHUNK)
        data = pending + chunk
        if chunk:
            cut = len(data.rstrip(b"\r\n"))
            body, pending = data[:cut], data[cut:]
        else:
            body, pending = data, b""
        for blank in (b"\n\r\n", b"\n\n"):
            while blank in body:
                body = body.replace(blank, b"\n" + filler + blank[1:])
        if first and body:
            body, first = body[1:], False  # the header's line end was sent with the header
        if body or chunk:
            yield body, len(chunk)
        if not chunk:
            return


def _load_sqlite(stream, columns, delimiter, progress: Progress, offset: int) -> None:
    sql = (
        f"INSERT INTO ri_stage (row_no, {', '.join(columns)}, has_nul) "
        f"VALUES ({', '.join(['%s'] * (len(columns) + 2))})"
    )
    batch: list[tuple[Any, ...]] = []
    lines = _text_lines(_read(stream, progress, offset))
    with connection.cursor() as cursor:
        for line, cells, nul in _records(lines, delimiter, len(columns), 2):
            if cells is None:
                continue  # a blank line, or one of empty cells (deleted on PostgreSQL after COPY)
            batch.append((line, *cells, int(nul)))
            if len(batch) >= BATCH:
                cursor.executemany(sql, batch)
                batch = []
        if batch:
            cursor.executemany(sql, batch)


# The import ---------------------------------------------------------------------------------------------


def _in(column: str, ids) -> str:
    return f"{column} IN ({', '.join(str(int(i)) for i in sorted(ids))})" if ids else "1 = 0"


def _resolve_sql(d: _Dialect, names: list[str], params: _Params, *, unit, unit_ids, scope_ids, period,
                 source) -> str:  # fmt: skip
    """``CREATE TABLE ri_rows AS``: every line parsed, resolved and given its first reason to be refused."""
    has_serial, has_contract = "meter_serial" in names, "contract_number" in names
    parsed = _parsed_sql(d, params, period=period)
    sources = ", ".join(params.add(str(s)) for s in RECORDED_SOURCES)
    joins = _resolve_joins(d, has_serial=has_serial, has_contract=has_contract)
    kind = {(True, False): "m.kind", (False, True): "m2.kind"}.get(
        (has_serial, has_contract), "COALESCE(m.kind, m2.kind)"
    )
    default_source = (
        params.add(source)
        if source
        else f"(CASE WHEN {kind} = {params.add('remote_read')} THEN {params.add('remote')} ELSE {params.add('handheld')} END)"
    )
    checks = _refusal_checks(
        d, params, has_serial=has_serial, has_contract=has_contract, sources=sources, unit=unit,
        unit_ids=unit_ids, scope_ids=scope_ids, period=period,
    )  # fmt: skip
    case = "CASE " + " ".join(f"WHEN {condition} THEN {text}" for condition, text in checks) + " END"

    def assigned(column: str) -> str:
        return _assigned(column, has_serial=has_serial, has_contract=has_contract)

    return (
        "CREATE TEMP TABLE ri_rows AS SELECT p.row_no, p.period AS period, p.value AS value, "
        f"(CASE WHEN p.s_text <> '' THEN p.s_text ELSE {default_source} END) AS source, p.taken AS taken_at, "
        f"k.id AS contract_id, {assigned('id')} AS assignment_id, {assigned('meter_id')} AS meter_id, "
        f"{assigned('reading_at_install')} "
        f"AS reading_at_install, {assigned('installed_at')} AS installed_at, {assigned('removed_at')} AS removed_at, "
        f"CASE WHEN p.k_serial <> '' THEN 1 ELSE 0 END AS by_serial, cu.unit_id AS unit_id, "
        f"{case} AS reject_reason, 0 AS unchanged, 0 AS late "
        f"FROM ({parsed}) p {' '.join(joins)}"
    )


def _parsed_sql(d: _Dialect, params: _Params, *, period) -> str:
    """Each line's texts trimmed, and its period, register and time taken parsed (NULL when not parseable)."""
    period_text = (
        f"COALESCE(NULLIF(TRIM(s.period), ''), {params.add(period.strftime('%Y-%m') if period else None)})"
    )
    texts = (
        "SELECT s.row_no, UPPER(TRIM(COALESCE(s.meter_serial, ''))) AS k_serial, UPPER(TRIM(COALESCE(s.contract_number, ''))) AS k_contract, "
        f"{period_text} AS p_text, TRIM(COALESCE(s.value, '')) AS v_text, "
        "LOWER(TRIM(COALESCE(s.source, ''))) AS s_text, TRIM(COALESCE(s.taken_at, '')) AS t_text, s.has_nul "
        "FROM ri_stage s"
    )
    period_date = (
        f"(CASE WHEN {d.matches('q.p_text', params, PERIOD_RE)} "
        f"THEN {d.date(f'substr(q.p_text, 1, 7) || {params.add("-01")}')} END)"
    )
    value = f"(CASE WHEN {d.digits('q.v_text')} THEN CAST(q.v_text AS BIGINT) END)"
    taken = f"(CASE WHEN q.t_text <> '' THEN {d.timestamp('q.t_text', params)} END)"
    # Each line's texts parsed once (the fence keeps PostgreSQL from repeating the expressions where used).
    return (
        "SELECT q.row_no, q.k_serial, q.k_contract, q.v_text, q.s_text, q.has_nul, "
        f"CASE WHEN q.t_text <> '' THEN 1 ELSE 0 END AS has_taken, {period_date} AS period, {value} AS value, {taken} AS taken FROM ({texts}) q{d.fence}"
    )


def _resolve_joins(d: _Dialect, *, has_serial: bool, has_contract: bool) -> list[str]:
    """The meter, contract and customer of each line, by the meter serial, the contract number or both."""
    joins = []
    if has_serial:
        joins += [
            "LEFT JOIN customers_meter m ON p.k_serial <> '' AND m.serial = p.k_serial",
            "LEFT JOIN customers_meterassignment am ON am.meter_id = m.id AND am.removed_at IS NULL",
            d.removed_meter_join(),
        ]
    if has_contract:
        joins += [
            "LEFT JOIN customers_contract kc ON p.k_contract <> '' AND kc.number = p.k_contract",
            d.contract_assignment_join(),
            "LEFT JOIN customers_meter m2 ON m2.id = ac.meter_id",
        ]
    contract = _assigned("contract_id", has_serial=has_serial, has_contract=has_contract)
    joins += [
        f"LEFT JOIN customers_contract k ON k.id = {contract}",
        "LEFT JOIN customers_customer cu ON cu.id = k.customer_id",
    ]
    return joins


def _assigned(column: str, *, has_serial: bool, has_contract: bool) -> str:
    """A column of the meter assignment a line resolved to (by its serial, else by its contract)."""
    found = [
        f"{alias}.{column}" for alias, present in (("am", has_serial), ("al", has_serial), ("ac", has_contract))
        if present
    ]  # fmt: skip
    return found[0] if len(found) == 1 else f"COALESCE({', '.join(found)})"


def _refusal_checks(d: _Dialect, params: _Params, *, has_serial: bool, has_contract: bool, sources: str, unit,
                    unit_ids, scope_ids, period) -> list[tuple[str, str]]:  # fmt: skip
    """The reasons to refuse a line, first match wins: (SQL condition, SQL text of the reason)."""

    def reason(text: str) -> str:
        return params.add(text)

    checks = [
        ("p.has_nul = 1", reason(_("The line holds a NUL character."))),  # a damaged line (``_line_cells``)
        ("p.k_serial = '' AND p.k_contract = ''", reason(_("No meter serial or contract number."))),
        ("p.period IS NULL", reason(_("The period is not a month (YYYY-MM or YYYY-MM-01)."))),
        # A month after the current one is not read yet (``billing.rules.future_refusal``).
        (
            f"p.period > {params.add(connection.ops.adapt_datefield_value(rules.current_period()))}",
            reason(str(rules.FUTURE)),
        ),
    ]
    if period is not None:
        checks.append(
            (
                f"p.period <> {params.add(connection.ops.adapt_datefield_value(period))}",
                reason(
                    _("The line is for another month than the import's (%(p)s).") % {"p": f"{period:%m/%Y}"}
                ),
            )
        )
    checks += _register_checks(d, params)
    checks += [
        (
            f"p.s_text <> '' AND p.s_text NOT IN ({sources})",
            reason(_("Unknown source: remote, handheld, photo or estimated.")),
        ),
        ("p.has_taken = 1 AND p.taken IS NULL", reason(_("The time taken is not an ISO date and time."))),
    ]
    if has_serial:
        checks += [
            ("p.k_serial <> '' AND m.id IS NULL", reason(_("Unknown meter serial."))),
            (
                "p.k_serial <> '' AND am.id IS NULL AND al.id IS NULL",
                reason(_("The meter is not installed on any contract.")),
            ),
        ]
    if has_contract:
        checks += [
            ("p.k_contract <> '' AND kc.id IS NULL", reason(_("Unknown contract number."))),
            (
                "p.k_contract <> '' AND k.id <> kc.id",
                reason(_("The meter is not installed on that contract.")),
            ),
            ("p.k_serial = '' AND ac.id IS NULL", reason(_("The contract has no meter installed."))),
        ]
    if unit_ids is not None:
        checks.append(
            (
                f"NOT ({_in('cu.unit_id', unit_ids)})",
                reason(_("The contract is not in the import's unit (%(u)s).") % {"u": unit.code}),
            )
        )
    if scope_ids is not None:
        checks.append(
            (f"NOT ({_in('cu.unit_id', scope_ids)})", reason(_("The contract is not in one of your units.")))
        )
    # The contract is in force for the line's month (``billing.rules.contract_refusal``).
    end = "CAST(k.end_date AS TEXT)"
    checks += [
        (f"k.status = {params.add('suspended')}", reason(rules.contract_refusal("suspended"))),
        (f"k.status = {params.add('pending')}", reason(rules.contract_refusal("pending"))),
        (
            f"k.status = {params.add('terminated')} AND (k.end_date IS NULL OR p.period > k.end_date)",
            _message(params, str(rules.ENDED), d=f"substr({end}, 9, 2) || '/' || substr({end}, 6, 2) || '/' || "
                     f"substr({end}, 1, 4)"),
        ),
    ]  # fmt: skip
    if has_serial:
        checks.append(_install_check(d, params))
    return checks


def _register_checks(d: _Dialect, params: _Params) -> list[tuple[str, str]]:
    """The register's refusals: negative, not a whole number, above what a meter reads (as the meter moves
    refuse it: ``billing.rules.register_refusal``, in its words)."""
    negative = f"(substr(p.v_text, 1, 1) = '-' AND {d.digits('substr(p.v_text, 2)')})"
    largest = params.add(rules.LARGEST_REGISTER)
    return [
        (f"p.value IS NULL AND {negative}", params.add(_("The register is negative."))),
        ("p.value IS NULL", params.add(_("The register is not a whole number of kWh."))),
        (f"p.value > {largest}", _message(params, str(rules.REGISTER_ABOVE_LARGEST), max=largest, r="p.value")),
    ]


def _install_check(d: _Dialect, params: _Params) -> tuple[str, str]:
    """A line naming a meter for a month that ended before that meter went on the contract (none of its stays
    there was on by then): refused as ``reading_record`` does (``rules.install_refusal``), before the line is
    compared with the month read on the meter that did serve it. The stays are looked up only for a line whose
    meter went on after its month."""
    ends = d.month_end_at("p.period", params)
    month = "CAST(p.period AS TEXT)"
    return (
        f"p.k_serial <> '' AND (CASE WHEN COALESCE(am.installed_at, al.installed_at) >= {ends} THEN "
        "(SELECT COUNT(*) FROM customers_meterassignment y WHERE y.meter_id = m.id AND y.contract_id = k.id "
        f"AND y.installed_at < {ends}) ELSE 1 END) = 0",
        _message(params, str(rules.BEFORE_INSTALL), m=f"substr({month}, 6, 2) || '/' || substr({month}, 1, 4)"),
    )


def _calc_sql(d: _Dialect, params: _Params) -> str:
    """``INSERT INTO ri_calc``: previous register and kWh of one period's lines, refusals and jump flags."""
    r = {
        "before_install": "%(before_install)s",
        "install": _message(params, _("The register is below the reading at install (%(v)s)."), v="c.reading_at_install"),
        "new_meter": _message(
            params, _("The register is below the new meter's reading at install (%(v)s)."), v="c.reading_at_install"
        ),
        "below": _message(
            params,
            _("The register (%(v)s) is below the previous reading (%(p)s). A roll-over cannot be asserted in a "
              "file: record that reading by hand."),
            v="c.value", p="c.last_value",
        ),
        "big": params.add(_("The consumption is implausibly large.")),
        "taken": params.add(str(rules.TAKEN_BEFORE_INSTALL)),  # ``rules.taken_refusal``
    }  # fmt: skip
    # The month's kWh across installations, as ``services._advance_base`` computes it. The stay the previous
    # reading was read in (``services._same_stay``, ``_assignment_read``): the line's own when it is on the same
    # meter, installed before that reading's month ended; else the last stay of that meter installed before then
    # (a meter put back after a stand-in has several). Another stay, or no previous reading: the line's meter
    # advances from its reading at install, and the meters taken off since carry what they advanced
    # (``services._advance_of_meters_off``): the tail of the previous reading's stay and the whole advance of
    # each stay after it (of every stay before the line's, for a contract's first reading); a meter that came
    # off below where it started adds nothing.
    ends = d.month_end_at("h.last_period", params)
    stay = (
        f"CASE WHEN h.last_value IS NULL THEN NULL WHEN h.last_meter = h.meter_id AND h.installed_at < {ends} "
        "THEN h.assignment_id ELSE (SELECT MAX(y.id) FROM customers_meterassignment y WHERE y.contract_id = "
        f"h.contract_id AND y.meter_id = h.last_meter AND y.id < h.assignment_id AND y.installed_at < {ends}) END"
    )
    start = "CASE WHEN x.id = s.last_stay THEN s.last_value ELSE x.reading_at_install END"
    carried = (
        f"CASE WHEN s.last_stay = s.assignment_id THEN 0 ELSE COALESCE((SELECT CAST(SUM(CASE WHEN "
        f"x.reading_at_removal > {start} THEN x.reading_at_removal - {start} ELSE 0 END) AS BIGINT) FROM "
        "customers_meterassignment x WHERE x.contract_id = s.contract_id AND x.id < s.assignment_id "
        "AND (s.last_value IS NULL OR x.id >= s.last_stay)), 0) END"
    )
    crossed = "CASE WHEN s.last_stay = s.assignment_id THEN 0 ELSE 1 END"
    base = "CASE WHEN o.crossed = 1 THEN o.reading_at_install ELSE o.last_value END"
    kwh = "CASE WHEN o.crossed = 1 THEN o.carried + o.value - o.reading_at_install ELSE o.value - o.last_value END"
    history = f"SELECT h.*, {stay} AS last_stay FROM ({d.history(d.month_days('r.period'))}) h{d.fence}"
    # An implausible jump: the SQL twin of ``billing.rules.jump_reason`` (the same comparison, exact in whole
    # numbers: kwh × hist_days > factor × hist_kwh × days, and more than 50 kWh above the expected amount).
    flagged = (
        "CASE WHEN c.hist_kwh > 0 AND c.kwh * c.hist_days > CAST(%(factor)s AS NUMERIC) * c.hist_kwh * %(days)s "
        "AND c.kwh * c.hist_days - c.hist_kwh * %(days)s > 50 * c.hist_days THEN 1 ELSE 0 END"
    )
    return f"""
        INSERT INTO ri_calc (row_no, contract_id, meter_id, unit_id, period, value, source, taken_at, base, kwh,
                             reject_reason, hist_kwh, hist_days, flagged)
        SELECT c.row_no, c.contract_id, c.meter_id, c.unit_id, c.period, c.value, c.source, c.taken_at, c.base,
               c.kwh,
               CASE WHEN c.installed_at >= %(month_end_at)s THEN {r["before_install"]}
                    WHEN c.taken_at IS NOT NULL AND c.taken_at < c.installed_at THEN {r["taken"]}
                    WHEN c.last_value IS NULL AND c.value < c.reading_at_install THEN {r["install"]}
                    WHEN c.crossed = 1 AND c.value < c.reading_at_install THEN {r["new_meter"]}
                    WHEN c.crossed = 0 AND c.value < c.last_value THEN {r["below"]}
                    WHEN c.kwh > 2147483647 THEN {r["big"]} END,
               c.hist_kwh, c.hist_days, {flagged}
        FROM (SELECT o.*, {base} AS base, {kwh} AS kwh
              FROM (SELECT s.*, {crossed} AS crossed, {carried} AS carried FROM ({history}) s{d.fence}) o) c
        ORDER BY c.contract_id
    """


def _insert_sql(params: _Params) -> str:
    """ONE ``INSERT … SELECT`` of a period's good lines; the flag's reason as ``billing.rules.jump_reason`` words
    it (its ``JUMP`` message, the expected figure rounded half to even)."""
    a, b = "c.hist_kwh * %(days)s", "c.hist_days"
    q = f"({a}) / {b}"
    remainder = f"(({a}) - {q} * {b})"
    # round(expected) half to even, as ``rules.jump_reason`` rounds its exact fraction, in integers on both
    # databases.
    expected = f"({q} + CASE WHEN 2 * {remainder} > {b} OR (2 * {remainder} = {b} AND {q} - ({q} / 2) * 2 = 1) THEN 1 ELSE 0 END)"
    reason = _message(params, str(rules.JUMP), k="c.kwh", e=expected)
    return f"""
        INSERT INTO billing_meterreading (contract_id, meter_id, unit_id, period, value, previous_value, kwh, source,
                                          status, flag_reason, reader_id, taken_at, corrects_id)
        SELECT c.contract_id, c.meter_id, c.unit_id, c.period, c.value, c.base, c.kwh, c.source,
               CASE WHEN c.flagged = 1 THEN 'flagged' ELSE 'valid' END,
               CASE WHEN c.flagged = 1 THEN substr({reason}, 1, 200) ELSE '' END,
               %(reader)s, COALESCE(c.taken_at, %(now)s), NULL
        FROM ri_calc c
        WHERE c.period = %(period)s AND c.reject_reason IS NULL
        ORDER BY c.contract_id
    """


_TABLES = ("ri_stage", "ri_rows", "ri_calc")


def _drop_tables() -> None:
    for table in _TABLES:
        _execute(f"DROP TABLE IF EXISTS {table}")


def import_readings(
    *,
    stream: IO[bytes],
    actor=None,
    unit: Unit | None = None,
    period: dt.date | None = None,
    source: str | None = None,
    dry_run: bool = False,
    all_or_nothing: bool = False,
    rejects_to: IO[str] | None = None,
    progress: Progress | None = None,
    record: ReadingImport | None = None,
) -> ImportResult:
    """Import a CSV file of readings (a binary stream) in one transaction; see the module's docstring.

    ``actor``: the importer, whose units bound the lines taken (None: the system, every unit) and who is
    the readings' reader. ``unit``: only lines of that unit's contracts (and of units merged into it).
    ``period``: the month of lines that give none, and lines of another month are refused. ``source``: for
    lines without one (else remote for a remote-read meter, handheld otherwise). ``dry_run``: everything is
    checked and counted, then rolled back. ``all_or_nothing``: a file with any refused line writes nothing (its
    lines are still counted and the refused ones listed). ``rejects_to``: a text stream that receives every refused line as
    CSV. ``progress(phase, **counts)``: called between phases (and while the file is read). ``record``: the
    ``ReadingImport`` the audit record points at.
    """
    require(actor, "billing.add_meterreading")
    scope_ids, unit_ids = _import_reach(actor, unit=unit, period=period, source=source)
    progress = progress or (lambda phase, **counts: None)
    d = _Dialect()
    result = ImportResult(dry_run=dry_run)
    lap = _Laps(result.seconds)
    with transaction.atomic():
        d.prepare()
        with connection.cursor() as cursor:  # joins of a million lines with the meters, contracts, customers
            bulk_work_memory(cursor)
        _drop_tables()
        names = _stage_file(d, stream, period=period, progress=progress)
        ((result.total,),) = _fetch("SELECT COUNT(*) FROM ri_stage")
        progress("validate", rows_total=result.total)
        lap("load")

        params = _Params()
        sql = _resolve_sql(d, names, params, unit=unit, unit_ids=unit_ids, scope_ids=scope_ids, period=period,
                           source=source)  # fmt: skip
        _execute(sql, params)
        if d.postgres:
            _execute("ANALYZE ri_rows")
        lap("resolve")

        _lock_contracts(d)
        _refuse_duplicates()
        periods = _check_against_recorded()
        lap("check")
        progress("compute")

        inserting = _insert_periods(d, periods, actor=actor, result=result, progress=progress)
        late_inserted, late_flagged = _record_late_lines(actor)
        result.inserted += late_inserted
        result.periods = [f"{p:%Y-%m}" for p in periods]
        lap("compute+insert")
        result.seconds["insert"] = round(inserting, 3)

        _count_outcome(result, late_flagged=late_flagged)
        _list_rejects(result, rejects_to)
        _drop_tables()
        lap("rejects")
        if dry_run or (all_or_nothing and result.rejected):
            transaction.set_rollback(True)
            result.written = False
            if not dry_run:  # refused: what was counted is not in the database
                result.inserted = result.flagged = 0
        else:
            audit(
                actor=actor, action="reading.import", obj=record, object_type="readingimport" if record else "meterreading",
                unit_id=unit.pk if unit else None, rows=result.inserted,
                after={"lines": result.total, "inserted": result.inserted, "flagged": result.flagged,
                       "unchanged": result.unchanged, "rejected": result.rejected, "periods": result.periods},
            )  # fmt: skip
    progress("done")
    return result



def _import_reach(
    actor, *, unit: Unit | None, period: dt.date | None, source: str | None
) -> tuple[set[int] | None, set[int] | None]:
    """The options checked; the units whose contracts the import may take (None: any), that of the
    importer's scope and that of the import's unit (with the units merged into it)."""
    _check_period(period)
    if source and source not in SOURCES:
        raise ValidationError({"source": _("Unknown source: remote, handheld or photo.")})
    scope = scope_for(actor) if actor is not None else None
    scope_ids = None if scope is None or scope.everything else set(scope.unit_ids)
    if unit is not None and scope is not None and not scope.allows_unit(unit.pk):
        raise ValidationError({"unit": _("This unit is not one of yours.")})
    unit_ids = set(units_served_today([unit.pk])) if unit is not None else None  # merges in effect only
    return scope_ids, unit_ids


def _check_period(period: dt.date | None) -> None:
    """The import's period, when it names one: a month (``period_bounds``) that may be read already."""
    if period is not None:
        period_bounds(period)
        rules.check(rules.future_refusal(period), field="period")


class _Laps:
    """The seconds each phase of an import took, into ``seconds`` by phase name."""

    def __init__(self, seconds: dict) -> None:
        self.seconds, self.clock = seconds, time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(now - self.clock, 3)
        self.clock = now


def _stage_file(d: _Dialect, stream: IO[bytes], *, period: dt.date | None, progress: Progress) -> list[str]:
    """The file's lines as text into the temporary table ``ri_stage`` (numbered by their line in the file);
    the names of the file's columns."""
    names, delimiter, offset, eol = _header(stream)
    if "period" not in names and period is None:
        raise ValidationError(_("The file has no “period” column: give the import's period."))
    columns = _staging_columns(names)
    extra = [c for c in columns if c not in COLUMNS]
    cells = ", ".join(f"{c} TEXT" for c in (*COLUMNS, *extra))
    if d.postgres:
        _execute(
            "CREATE TEMP TABLE ri_stage (row_no BIGINT GENERATED ALWAYS AS IDENTITY (START WITH 2), "
            f"{cells}, has_nul INTEGER NOT NULL DEFAULT 0)"
        )
        _load_postgres(stream, columns, delimiter, eol, progress, offset)
        blank = " AND ".join(f"COALESCE(TRIM({c}), '') = ''" for c in columns)
        _execute(f"DELETE FROM ri_stage WHERE {blank}")  # blank lines (or only spaces), as on SQLite
        _execute("ANALYZE ri_stage")
    else:
        _execute(
            f"CREATE TEMP TABLE ri_stage (row_no INTEGER PRIMARY KEY, {cells}, has_nul INTEGER NOT NULL DEFAULT 0)"
        )
        _load_sqlite(stream, columns, delimiter, progress, offset)
    return names


def _refuse_duplicates() -> None:
    """A line repeating an earlier one of the same contract and period is refused, and so are all of them when
    their registers differ."""
    params = _Params()
    duplicate = _message(params, _("Duplicate of line %(n)s."), n="dup.first_row")
    conflict = _message(
        params,
        _(
            "Several lines for this contract and period with different registers (the first at line %(n)s)."
        ),
        n="dup.first_row",
    )
    _execute(
        f"""
        UPDATE ri_rows SET reject_reason = CASE WHEN dup.low <> dup.high THEN {conflict} ELSE {duplicate} END
        FROM (SELECT row_no, MIN(row_no) OVER w AS first_row, MIN(value) OVER w AS low,
                     MAX(value) OVER w AS high, COUNT(*) OVER w AS n
              FROM ri_rows WHERE reject_reason IS NULL
              WINDOW w AS (PARTITION BY contract_id, period)) dup
        WHERE dup.row_no = ri_rows.row_no AND dup.n > 1 AND (dup.low <> dup.high OR dup.row_no > dup.first_row)
        """,
        params,
    )


def _check_against_recorded() -> list[dt.date]:
    """Lines against the readings already recorded: the same register is unchanged, another is refused, and a
    line for a month before one already read is marked late. The periods of the lines still taken."""
    periods = [
        p if isinstance(p, dt.date) else dt.date.fromisoformat(p)
        for (p,) in _fetch(
            "SELECT DISTINCT period FROM ri_rows WHERE reject_reason IS NULL ORDER BY period"
        )
    ]
    if periods:
        params = _Params()
        other = _message(
            params,
            _("This period is already read for the contract with another register (%(v)s): correct that "
              "reading instead."),
            v="e.value",
        )  # fmt: skip
        in_periods = ", ".join(params.add(connection.ops.adapt_datefield_value(p)) for p in periods)
        _execute(
            f"""
            UPDATE ri_rows SET unchanged = CASE WHEN e.value = ri_rows.value THEN 1 ELSE 0 END,
                               reject_reason = CASE WHEN e.value = ri_rows.value THEN NULL ELSE {other} END
            FROM billing_meterreading e
            WHERE e.contract_id = ri_rows.contract_id AND e.period = ri_rows.period
              AND NOT (e.status = 'superseded') AND e.period IN ({in_periods})
              AND ri_rows.reject_reason IS NULL
            """,
            params,
        )
        # A line for a month before one already read is placed among its neighbours by reading_record
        # itself (below): the set-based path leaves it out. The usual file, of the newest month, has none:
        # one probe of the period index says so before any line is looked at.
        if _fetch(
            "SELECT 1 FROM billing_meterreading WHERE period > %s AND NOT (status = 'superseded') LIMIT 1",
            [connection.ops.adapt_datefield_value(periods[0])],
        ):
            _execute(
                """
                UPDATE ri_rows SET late = 1
                WHERE reject_reason IS NULL AND unchanged = 0 AND EXISTS (
                    SELECT 1 FROM billing_meterreading e WHERE e.contract_id = ri_rows.contract_id
                    AND e.period > ri_rows.period AND NOT (e.status = 'superseded'))
                """
            )
        # A line below an estimated register of an earlier month goes through reading_record too, which trues
        # the estimate up (or refuses the line with its reason); so does a line whose previous reading is an
        # estimate made on another meter (a swap in a month never read): reading_record trues it up to the old
        # meter's removal register (``services._true_up_estimate``). Estimates are few: their own index says at
        # once whether any is in force.
        if _fetch(
            "SELECT 1 FROM billing_meterreading WHERE source = 'estimated' AND NOT (status = 'superseded') LIMIT 1"
        ):
            _execute(
                """
                UPDATE ri_rows SET late = 1
                WHERE reject_reason IS NULL AND unchanged = 0 AND late = 0 AND EXISTS (
                    SELECT 1 FROM billing_meterreading e WHERE e.contract_id = ri_rows.contract_id
                    AND e.period < ri_rows.period AND e.source = 'estimated' AND NOT (e.status = 'superseded')
                    AND (e.value > ri_rows.value OR (e.meter_id <> ri_rows.meter_id AND NOT EXISTS (
                        SELECT 1 FROM billing_meterreading n WHERE n.contract_id = e.contract_id
                        AND n.period > e.period AND n.period < ri_rows.period AND NOT (n.status = 'superseded')))))
                """
            )
        _mark_meters_taken_off(periods)
    return periods


def _mark_meters_taken_off(periods: list[dt.date]) -> None:
    """A line of a contract whose meter came off during or after the line's month (the final month of a
    customer who moved out, read after the meter came off; a meter replaced since), or naming a meter on no
    contract now, goes through ``reading_record`` too: the month is read on the meter that served the contract
    then, up to its removal register, or refused with the service's reason. One statement a month."""
    for period in periods:
        _execute(
            """
            UPDATE ri_rows SET late = 1
            WHERE reject_reason IS NULL AND unchanged = 0 AND late = 0 AND period = %s
              AND (removed_at IS NOT NULL OR contract_id IN (
                   SELECT x.contract_id FROM customers_meterassignment x WHERE x.removed_at > %s))
            """,
            [
                connection.ops.adapt_datefield_value(period),
                connection.ops.adapt_datetimefield_value(rules.month_start_at(period)),
            ],
        )


def _lock_contracts(d: _Dialect) -> None:
    """The contracts of the lines taken are locked before their lines are checked against the readings
    recorded and their advance is computed: a contract's readings change one at a time
    (``billing.services.lock_contract``, the same ``FOR NO KEY UPDATE``). A correction of a month before, open
    meanwhile, commits first and the advance runs from its register; one started meanwhile waits for the
    import, then sees its month and re-bases it. One statement, in the order of the ids (two imports sharing
    contracts wait for each other, never in a cycle), before any period lock (``reading_record`` of the late
    lines): the order of every reading path. SQLite has one writer at a time anyway."""
    if not d.postgres:
        return
    _execute(
        "SELECT COUNT(*) FROM (SELECT c.id FROM customers_contract c WHERE c.id IN "
        "(SELECT r.contract_id FROM ri_rows r WHERE r.reject_reason IS NULL) ORDER BY c.id FOR NO KEY UPDATE) k"
    )


def _insert_periods(
    d: _Dialect, periods: list[dt.date], *, actor, result: ImportResult, progress: Progress
) -> float:
    """Each period's lines computed (previous register, kWh, refusals, jump flags) and inserted as readings,
    a period at a time; the seconds spent inserting."""
    _execute(
        "CREATE TEMP TABLE ri_calc (row_no bigint, contract_id bigint, meter_id bigint, unit_id bigint, "
        "period date, value bigint, source varchar(12), taken_at timestamptz, base bigint, kwh bigint, "
        "reject_reason text, hist_kwh bigint, hist_days bigint, flagged integer)"
    )
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    reader = getattr(actor, "pk", None)
    factor = str(settings.TONGDAI_READING_JUMP_FACTOR)
    inserting = 0.0
    for wave in periods:
        start, end = period_bounds(wave)
        calc_params = _Params(
            period=connection.ops.adapt_datefield_value(wave),
            days=(end - start).days,
            factor=factor,
            month_end_at=connection.ops.adapt_datetimefield_value(rules.month_end_at(wave)),
            before_install=rules.install_refusal(rules.month_end_at(wave), wave),
        )
        _execute(_calc_sql(d, calc_params), calc_params)
        _execute(
            "UPDATE ri_rows SET reject_reason = c.reject_reason FROM ri_calc c WHERE c.row_no = ri_rows.row_no "
            "AND c.period = %(period)s AND c.reject_reason IS NOT NULL",
            {"period": calc_params["period"]},
        )
        progress("insert", rows_inserted=result.inserted)
        insert_params = _Params(
            period=calc_params["period"], days=calc_params["days"], reader=reader, now=now
        )
        started = time.perf_counter()
        try:
            with transaction.atomic():
                result.inserted += _execute(_insert_sql(insert_params), insert_params)
        except IntegrityError as exc:
            raise ValidationError(
                _("A reading of this file was recorded meanwhile by someone else: nothing was imported. "
                  "Run the import again.")
            ) from exc  # fmt: skip
        inserting += time.perf_counter() - started
    return inserting


def _count_outcome(result: ImportResult, *, late_flagged: int) -> None:
    """How many lines were refused, unchanged and flagged."""
    ((rejected, unchanged),) = _fetch(
        "SELECT COALESCE(SUM(CASE WHEN reject_reason IS NOT NULL THEN 1 ELSE 0 END), 0), "
        "COALESCE(SUM(unchanged), 0) FROM ri_rows"
    )
    ((flagged,),) = _fetch("SELECT COALESCE(SUM(flagged), 0) FROM ri_calc WHERE reject_reason IS NULL")
    result.rejected, result.unchanged = int(rejected), int(unchanged)
    result.flagged = int(flagged) + late_flagged


def _record_late_lines(actor) -> tuple[int, int]:
    """The lines for a month before one already read, one by one through ``reading_record`` (the reading
    rules of ``billing.rules``: placed in register order, the later reading re-based, or refused with the
    same reason). Rare in a file; each in a savepoint, its refusal written on the line."""
    inserted = flagged = 0
    rows = _fetch(
        "SELECT row_no, contract_id, period, value, source, taken_at, by_serial, meter_id FROM ri_rows "
        "WHERE late = 1 AND reject_reason IS NULL ORDER BY row_no"
    )
    for row_no, contract_id, period, value, source, taken_at, by_serial, meter_id in rows:
        if not isinstance(period, dt.date):
            period = dt.date.fromisoformat(str(period)[:10])
        if taken_at is not None and not isinstance(taken_at, dt.datetime):
            taken_at = dt.datetime.fromisoformat(str(taken_at)).replace(tzinfo=dt.UTC)
        try:
            with transaction.atomic():
                reading = reading_record(actor=actor, contract=Contract(pk=contract_id), period=period,
                                         value=int(value), source=source, taken_at=taken_at,
                                         meter_id=meter_id if by_serial else None)  # fmt: skip
        except ValidationError as exc:
            _execute(
                "UPDATE ri_rows SET reject_reason = %s WHERE row_no = %s", ["; ".join(exc.messages), row_no]
            )
            continue
        inserted += 1
        flagged += reading.status == ReadingStatus.FLAGGED
    return inserted, flagged


def _list_rejects(result: ImportResult, rejects_to: IO[str] | None) -> None:
    """Every refused line in file order: the first PREVIEW in ``result.rejects``, all of them to the CSV."""
    if not result.rejected:
        return
    writer = csv.writer(rejects_to) if rejects_to is not None else None
    if writer is not None:
        writer.writerow(REJECT_HEADER)
    with connection.chunked_cursor() as cursor:  # a server-side cursor on PostgreSQL: never all in memory
        cursor.execute(
            "SELECT r.row_no, COALESCE(s.meter_serial, ''), COALESCE(s.contract_number, ''), COALESCE(s.period, ''), "
            "COALESCE(s.value, ''), r.reject_reason FROM ri_rows r JOIN ri_stage s ON s.row_no = r.row_no "
            "WHERE r.reject_reason IS NOT NULL ORDER BY r.row_no"
        )
        while rows := cursor.fetchmany(5000):
            for row in rows:
                if len(result.rejects) < PREVIEW:
                    result.rejects.append(Reject(*row))
            if writer is not None:  # the file's own cells, which a spreadsheet must not run as formulas
                writer.writerows([[csv_cell(cell) for cell in row] for row in rows])
            if writer is None and len(result.rejects) >= PREVIEW:
                break


# Imports uploaded in the admin and run by a task ----------------------------------------------------------


def csv_stream(handle: IO[bytes], name: str) -> IO[bytes]:
    """The file as CSV bytes: itself, or, for an ``.xlsx`` workbook, its first sheet written out as CSV into a
    temporary file (openpyxl in read-only mode, row by row: memory does not grow with the rows)."""
    if not name.lower().endswith(".xlsx"):
        return handle
    from openpyxl import load_workbook

    try:
        book = load_workbook(handle, read_only=True, data_only=True)
    except Exception as exc:  # not a workbook: a clear message, not a crash
        raise ValidationError(_("The file could not be read as an XLSX workbook.")) from exc
    out = tempfile.TemporaryFile("w+b")  # noqa: SIM115 (returned open: the caller reads it)
    text = io.TextIOWrapper(out, encoding="utf-8", newline="")
    writer = csv.writer(text)
    for row in book.worksheets[0].iter_rows(values_only=True):
        writer.writerow(["" if v is None else _cell_text(v) for v in row])
    book.close()
    text.flush()
    text.detach()
    out.seek(0)
    return out


def _cell_text(value) -> str:
    """A cell as the CSV's text: whole numbers without ".0", dates and times as ISO."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime) and value.time() == dt.time(0):  # a date typed into a cell
        return value.date().isoformat()
    if isinstance(value, dt.date):  # a datetime too
        return value.isoformat()
    return str(value)


def reading_import_create(*, actor, upload, unit: Unit | None = None, period: dt.date | None = None,
                          source: str = "", dry_run: bool = False,
                          skip_bad_lines: bool = True) -> ReadingImport:  # fmt: skip
    """Store an uploaded file as a queued import. Someone who does not see every unit names one of theirs."""
    require(actor, "billing.add_readingimport")
    if period is not None:
        period = period.replace(day=1)
    _check_period(period)
    if source and source not in SOURCES:
        raise ValidationError({"source": _("Unknown source: remote, handheld or photo.")})
    check_reach(actor, unit)
    return ReadingImport.objects.create(
        file=upload, uploaded_by=actor if getattr(actor, "pk", None) else None, unit=unit, period=period,
        source=source or "", bytes_total=getattr(upload, "size", 0) or 0, created_at=timezone.now(),
        dry_run=dry_run, skip_bad_lines=skip_bad_lines,
    )  # fmt: skip


def reading_import_enqueue(item: ReadingImport) -> None:
    """Hand the import to a django-q2 worker once the upload's transaction commits."""

    def enqueue(pk=item.pk):
        from django_q.tasks import async_task

        from crm.outbox import task_broker

        async_task("billing.tasks.run_reading_import", pk, task_name=f"reading-import-{pk}",
                   q_options={"timeout": TASK_TIMEOUT, "broker": task_broker()})  # fmt: skip

    transaction.on_commit(enqueue)


class _ProgressWriter:
    """Writes an import's progress where others can see it while its transaction is still open.

    PostgreSQL: through a second connection in autocommit (at most once a second, and at each phase), so the
    admin page shows the phase, the bytes read and the lines counted while the import runs. SQLite has one
    writer at a time: nothing is shown there before the end (the page says *running*)."""

    def __init__(self, import_id: int) -> None:
        self.import_id = import_id
        self.conn: psycopg.Connection[Any] | None = None
        self.last = 0.0
        self.phase = ""
        self.enabled = db.is_postgres(connection)

    def __call__(self, phase: str, **counts) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if phase == self.phase and now - self.last < 1.0:
            return
        self.phase, self.last = phase, now
        fields = {"phase": phase, "progress_at": timezone.now(), **counts}
        try:
            if self.conn is None:
                import psycopg

                self.conn = psycopg.connect(**connection.get_connection_params(), autocommit=True)
            sets = ", ".join(f"{name} = %s" for name in fields)
            self.conn.execute(
                f"UPDATE billing_readingimport SET {sets} WHERE id = %s", [*fields.values(), self.import_id]
            )
        except Exception:  # progress is a courtesy: never let it fail the import
            logger.warning("reading import %s: progress not written", self.import_id, exc_info=True)
            self.enabled = False

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def reading_import_run(*, import_id: int) -> dict | None:
    """Run a queued import (the task's body). Safe to run twice and from two workers: the claim is a
    conditional update only one wins; an import left running without progress for LEASE is taken over."""
    now = timezone.now()
    stale = now - LEASE
    claimed = ReadingImport.objects.filter(
        Q(status=ReadingImportStatus.QUEUED)
        | Q(status=ReadingImportStatus.RUNNING, progress_at__lt=stale)
        | Q(status=ReadingImportStatus.RUNNING, progress_at__isnull=True, started_at__lt=stale),
        pk=import_id,
    ).update(status=ReadingImportStatus.RUNNING, started_at=now, progress_at=now, phase="copy", error="")
    if not claimed:
        return None
    item = ReadingImport.objects.select_related("unit", "uploaded_by").get(pk=import_id)
    writer = _ProgressWriter(import_id)
    try:
        with transaction.atomic():
            with tempfile.TemporaryFile("w+b") as raw:
                rejects = io.TextIOWrapper(raw, encoding="utf-8", newline="")
                item.file.open("rb")
                try:
                    stream = csv_stream(item.file, item.file.name or "")
                    result = import_readings(
                        stream=stream, actor=item.uploaded_by, unit=item.unit, period=item.period,
                        source=item.source or None, dry_run=item.dry_run, all_or_nothing=not item.skip_bad_lines,
                        rejects_to=rejects, progress=writer, record=item,
                    )  # fmt: skip
                finally:
                    item.file.close()
                    writer.close()
                rejects.flush()
                rejects.detach()
                name = ""
                if result.rejected:
                    raw.seek(0)
                    stem = (item.file.name or "readings").rsplit("/", 1)[-1].rsplit(".", 1)[0]
                    item.rejects_file.save(f"{stem}.rejects.csv", File(raw), save=False)
                    name = item.rejects_file.name or ""
            ReadingImport.objects.filter(pk=import_id).update(
                status=ReadingImportStatus.DONE, phase="done", rows_total=result.total,
                rows_inserted=result.inserted, rows_flagged=result.flagged, rows_unchanged=result.unchanged,
                rows_rejected=result.rejected, rejects_file=name, bytes_read=item.bytes_total,
                progress_at=timezone.now(), finished_at=timezone.now(),
            )  # fmt: skip
    except Exception as exc:
        message = (
            "; ".join(exc.messages) if isinstance(exc, ValidationError) else f"{type(exc).__name__}: {exc}"
        )
        if not isinstance(exc, ValidationError):
            logger.exception("reading import %s failed", import_id)
        ReadingImport.objects.filter(pk=import_id).update(
            status=ReadingImportStatus.FAILED, phase="", error=message[:2000], finished_at=timezone.now()
        )
        return {"status": "failed", "error": message}
    return {"status": "done", **result.as_dict()}
