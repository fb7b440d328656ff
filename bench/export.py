"""Benchmark of the streamed changelist export (``core.exports``) on PostgreSQL, beside raw SQL ``COPY``.

    python -m bench.export [--rows 1000000] [--format csv|xlsx|both] [--filter id|units|all] [--explain]

Uses DATABASE_URL when set, else the local ``tongdai_bench`` (created if missing), which should already hold
the demo customers (``manage.py seed_demo --customers 2600000 --units PE``); it migrates and loads the
organisation and the catalogue, and makes a manager of EVNHCMC (``bench-export-manager``, serving PE0100, so
seeing every unit of the corporation) once.

The rows: ``--rows`` customers (default 1,000,000) of the manager's scope, chosen by ``--filter``:

* ``id`` (the default): exactly the newest ``--rows`` of them, as ``?id__gte=…`` on the changelist's query
  string (a lookup on a field of the model, which the changelist applies as it applies its sidebar filters,
  and which "Export (all matching rows)" carries over like any other);
* ``units``: whole units, in code order, until they hold at least ``--rows`` (``?unit__in=…``);
* ``all``: no filter, every customer in scope.
When the scope holds fewer than ``--rows`` customers, all of them are exported; the real count is printed.

Service side: what a manager's click on "Export (all matching rows)" and then "Export" does — the Django test
Client, logged in as the manager, ``DEBUG`` off, GETs the export form (the warm-up: URLconf, templates) and
POSTs ``file_format`` to ``/admin/customers/customer/export-all/?<filter>`` (``StreamingExportMixin`` with
``CustomerResource``: the changelist's scoped queryset, ``iterator()`` by chunks, the phones read once per
chunk, CSV through ``csv.writer`` or XLSX through the streaming SpreadsheetML writer). The streamed response
is consumed chunk by chunk and not kept: bytes, seconds, the child's CPU seconds (what a busy machine's waits
do not inflate), the SQL statements run, the time to the first byte and the longest gap between two chunks
(what a proxy's read timeout sees) are measured; CSV rows are its newlines less the header, XLSX is
written to a temporary file that is opened afterwards with openpyxl (read-only) to count its rows (not timed).
Each format runs in a fresh child process (``python -m bench.export --child csv|xlsx …``) so that one
format's memory does not hide the other's: peak memory is the child's ``ru_maxrss`` after the export, and the
growth is that less its ``ru_maxrss`` just before the POST.

Raw side, in the parent: ``COPY (SELECT …) TO STDOUT WITH (FORMAT csv, HEADER)`` through psycopg's
``cursor.copy()``, the chunks counted and dropped the same way: the same columns as ``CustomerResource``
exports (unit code by a join, the phones joined by ", " primary first, the flag as 1/0, the creation time in
Vietnam's time), the same scope, filter and order: its text is the service's CSV less the byte-order mark and
with ``\n`` line ends (checked on the demo data). Run twice (the first also warms the cache); the better run
gives the ratio service/raw. The raw side does not build XLSX: the XLSX ratio is against the same COPY.

Targets: the child's peak memory ≤ 300 MB, and the export finishes (no timeout: ``--timeout`` seconds per
child, default 3600; the longest gap between chunks is printed beside nginx's default read timeout, 60 s).
``--explain`` prints the plans of the service's main query (as the server-side cursor Django declares for
``iterator()``) and of the raw SELECT.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.import_readings import _peak_mb

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/tongdai_bench"
TARGET_MB = 300
PROXY_READ_TIMEOUT_S = 60  # nginx's proxy_read_timeout default: the longest silence a download survives
MANAGER = "bench-export-manager"
EXPORT_URL = "/admin/customers/customer/export-all/"
RESULT = "BENCH-EXPORT-RESULT "

RAW_SQL = """
COPY (
    SELECT c.code, u.code AS unit, c.full_name, NULLIF(c.national_id, '') AS national_id,
           NULLIF(c.email, '') AS email, c.street, c.ward, c.district, c.province, c.customer_type,
           c.households, p.phones, CASE WHEN c.is_nuisance THEN 1 ELSE 0 END AS is_nuisance,
           to_char(c.created_at AT TIME ZONE %(tz)s, 'YYYY-MM-DD HH24:MI:SS') AS created_at
    FROM customers_customer c
    JOIN crm_unit u ON u.id = c.unit_id
    LEFT JOIN LATERAL (
        SELECT string_agg(ph.number, ', ' ORDER BY ph.is_primary DESC, ph.id) AS phones
        FROM customers_customerphone ph WHERE ph.customer_id = c.id
    ) p ON TRUE
    WHERE {where}
    ORDER BY c.id DESC
) TO STDOUT WITH (FORMAT csv, HEADER)
"""


# Parent: the data, the raw side, the children, the table ---------------------------------------------------


def _manager():
    from django.contrib.auth import get_user_model

    from crm.models import Role, Unit
    from crm.services import staff_create

    manager = get_user_model().objects.filter(username=MANAGER).first()
    if manager is None:
        manager = staff_create(
            actor=None,
            username=MANAGER, password=uuid.uuid4().hex, role=Role.MANAGER, badge_number="BENCH-EXP-M",
            units=[Unit.objects.get(code="PE0100")],
        )  # fmt: skip
    return manager


def choose_rows(kind: str, rows: int, units: list[int]) -> tuple[dict, str, int]:
    """The changelist query string, the matching raw SQL condition and the number of rows it yields."""
    from django.db import connection

    in_scope = f"c.unit_id IN ({', '.join(str(u) for u in units)})"
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT c.unit_id, u.code, count(*) FROM customers_customer c JOIN crm_unit u ON u.id = c.unit_id "
            f"WHERE {in_scope} GROUP BY c.unit_id, u.code ORDER BY u.code"
        )
        per_unit = cursor.fetchall()
        total = sum(n for _u, _c, n in per_unit)
        if kind == "id" and total > rows:
            cursor.execute(
                f"SELECT c.id FROM customers_customer c WHERE {in_scope} ORDER BY c.id DESC OFFSET %s LIMIT 1",
                [rows - 1],
            )
            (min_id,) = cursor.fetchone()
            return {"id__gte": min_id}, f"{in_scope} AND c.id >= {min_id}", rows
    if kind == "units" and total > rows:
        chosen, count = [], 0
        for unit_id, _code, n in per_unit:
            if count >= rows:
                break
            chosen.append(unit_id)
            count += n
        ids = ", ".join(str(u) for u in chosen)
        return {"unit__in": ids.replace(" ", "")}, f"{in_scope} AND c.unit_id IN ({ids})", count
    return {}, in_scope, total


def raw_copy(where: str) -> dict:
    """The raw side: the COPY's chunks counted and dropped."""
    from django.conf import settings
    from django.db import connection

    size = lines = 0
    started = time.perf_counter()
    sql = RAW_SQL.format(where=where)
    with connection.cursor() as cursor, cursor.cursor.copy(sql, {"tz": settings.TIME_ZONE}) as copy:
        for data in copy:
            size += len(data)
            lines += bytes(data).count(b"\n")
    return {"rows": lines - 1, "bytes": size, "seconds": time.perf_counter() - started}


def explain(query: dict, where: str, manager) -> None:
    from django.conf import settings
    from django.contrib import admin
    from django.db import connection, transaction
    from django.test import RequestFactory

    from core.exports import changelist_queryset
    from customers.models import Customer

    model_admin = admin.site.get_model_admin(Customer)
    request = RequestFactory().get(EXPORT_URL, query)
    request.user = manager
    queryset = model_admin.get_export_resource(request).prepare_export(
        changelist_queryset(model_admin, request)
    )
    sql, params = queryset.query.sql_with_params()
    select = RAW_SQL.split("COPY (", 1)[1].rsplit(") TO STDOUT", 1)[0].format(where=where)
    with transaction.atomic(), connection.cursor() as cursor:
        # Django declares the iterator's cursor WITH HOLD in autocommit mode: PostgreSQL runs it to its end
        # and keeps the rows (in a temporary file past work_mem) when the DECLARE commits.
        for label, statement, args in (
            ("the service's main query (DECLARE … WITH HOLD FOR …)", f"DECLARE bench_export NO SCROLL CURSOR WITH HOLD FOR {sql}", params),
            ("the raw SELECT", select, {"tz": settings.TIME_ZONE}),
        ):  # fmt: skip
            cursor.execute("EXPLAIN " + statement, args)
            print(f"\nPlan of {label}:")
            for (line,) in cursor.fetchall():
                print("  " + line)
        transaction.set_rollback(True)


def run_child(file_format: str, query: dict, timeout: float) -> dict:
    command = [sys.executable, "-m", "bench.export", "--child", file_format, "--query", json.dumps(query)]
    started = time.perf_counter()
    try:
        done = subprocess.run(
            command, cwd=Path(__file__).resolve().parent.parent, stdout=subprocess.PIPE, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {time.perf_counter() - started:.0f}s"}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(RESULT):
            return json.loads(line[len(RESULT) :])
    return {"error": f"the child exited with {done.returncode} and no result: {done.stdout[-500:]}"}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--format", choices=["csv", "xlsx", "both"], default="both")
    parser.add_argument(
        "--filter", choices=["id", "units", "all"], default="id", help="how the rows are chosen"
    )
    parser.add_argument("--timeout", type=float, default=3600, help="seconds allowed to each export")
    parser.add_argument("--explain", action="store_true", help="print the plans of the export queries")
    parser.add_argument("--child", choices=["csv", "xlsx"], help=argparse.SUPPRESS)
    parser.add_argument("--query", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, json.loads(args.query))
        return

    os.environ.setdefault("DATABASE_URL", DEFAULT_URL)
    from bench.dashboard import _setup

    _setup()
    from crm.scoping import scope_for
    from customers.models import Customer

    manager = _manager()
    units = sorted(scope_for(manager).unit_ids)
    query, where, expected = choose_rows(args.filter, args.rows, units)
    query_string = "?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else ""
    print(
        f"\n{Customer.objects.count():,} customers in the database; {MANAGER} (manager) sees {len(units)} units."
    )
    chose = {
        "id": f"the newest {expected:,} customers in scope",
        "units": f"{query.get('unit__in', '').count(',') + 1 if query else len(units)} whole units in code order",
        "all": "every customer in scope",
    }[args.filter]
    if expected < args.rows:
        chose = f"every customer in scope (only {expected:,}, fewer than --rows {args.rows:,})"
    print(f"Rows: {query_string or '(no filter)'}: {chose}; {expected:,} rows expected.")
    print(
        f"Service: POST {EXPORT_URL}{query_string} file_format=…, test Client, DEBUG off, a child per format."
    )
    if args.explain:
        explain(query, where, manager)

    raw_runs = [raw_copy(where) for _ in range(2)]
    raw = min(raw_runs, key=lambda r: r["seconds"])
    print(
        f"Raw: COPY (SELECT …) TO STDOUT WITH (FORMAT csv, HEADER): "
        f"{', '.join(f'{r["seconds"]:.2f}s' for r in raw_runs)} (the better used; load average "
        f"{os.getloadavg()[0]:.1f})\n"
    )
    formats = ["csv", "xlsx"] if args.format == "both" else [args.format]
    results = {f: run_child(f, query, args.timeout) for f in formats}

    print(f"{'measure':<26} {'rows':>10} {'MB':>8} {'seconds':>8} {'cpu s':>7} {'rows/s':>9} {'1st byte':>8} {'max gap':>8} {'queries':>7} {'peak MB':>8} {'growth':>7} {'ratio':>6}")  # fmt: skip
    for file_format, r in results.items():
        name = f"export {file_format.upper()} (admin view)"
        if "error" in r:
            print(f"{name:<26} {r['error']}")
            continue
        print(f"{name:<26} {r['rows']:>10,} {r['bytes'] / 1e6:8.1f} {r['seconds']:8.2f} {r['cpu']:7.2f} {r['rows'] / r['seconds']:9,.0f} {r['first_byte']:8.2f} {r['max_gap']:8.2f} {r['queries']:>7} {r['peak_mb']:8.0f} {r['peak_mb'] - r['before_mb']:7.0f} {r['seconds'] / raw['seconds']:6.1f}")  # fmt: skip
    print(f"{'raw COPY (CSV)':<26} {raw['rows']:>10,} {raw['bytes'] / 1e6:8.1f} {raw['seconds']:8.2f} {'':>7} {raw['rows'] / raw['seconds']:9,.0f}")  # fmt: skip
    print("(the raw side does not build XLSX: both ratios are against the same COPY)\n")

    for file_format, r in results.items():
        if "error" in r:
            print(f"{file_format.upper()}: MISS: {r['error']}")
            continue
        memory = "ok" if r["peak_mb"] <= TARGET_MB else "MISS"
        count = "ok" if r["rows"] == expected else f"WRONG, {expected:,} expected"
        print(
            f"{file_format.upper()}: peak {r['peak_mb']:.0f} MB (before the export {r['before_mb']:.0f} MB) "
            f"≤{TARGET_MB} MB {memory}; finished in {r['seconds']:.1f}s, first byte after {r['first_byte']:.2f}s, "
            f"longest gap {r['max_gap']:.2f}s (≤{PROXY_READ_TIMEOUT_S}s "
            f"{'ok' if r['max_gap'] <= PROXY_READ_TIMEOUT_S else 'MISS'}); {r['rows']:,} rows {count}"
            + (f" (counted with openpyxl in {r['count_seconds']:.1f}s, not timed)" if file_format == "xlsx" else "")
        )  # fmt: skip


# Child: one export through the admin view, in a fresh process -----------------------------------------------


def child(file_format: str, query: dict) -> None:
    from bench.import_readings import _setup

    os.environ["ALLOWED_HOSTS"] = "testserver,127.0.0.1,localhost"
    _setup()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import override_settings

    client = Client()
    client.force_login(get_user_model().objects.get(username=MANAGER))
    queries = 0

    def count(execute, *rest):
        nonlocal queries
        queries += 1
        return execute(*rest)

    url = f"{EXPORT_URL}?" + "&".join(f"{k}={v}" for k, v in query.items())
    xlsx = Path(tempfile.gettempdir()) / f"bench_export_{os.getpid()}.xlsx"
    try:
        with (
            override_settings(DEBUG=False, WHITENOISE_AUTOREFRESH=True),
            xlsx.open("wb") if file_format == "xlsx" else contextlib.nullcontext() as out,
        ):
            form = client.get(url)  # the page before the click: the URLconf, the admin, the templates
            assert form.status_code == 200, form.status_code
            before = _peak_mb()
            size = lines = 0
            first = max_gap = None
            with connection.execute_wrapper(count):
                cpu = time.process_time()
                started = last = time.perf_counter()
                response = client.post(url, {"file_format": file_format})
                assert response.status_code == 200 and response.streaming, response.status_code
                for data in response.streaming_content:
                    now = time.perf_counter()
                    if first is None:
                        first = now - started
                    max_gap = max(max_gap or 0.0, now - last)
                    last = now
                    size += len(data)
                    if out is None:
                        lines += data.count(b"\n")
                    else:
                        out.write(data)
                seconds = time.perf_counter() - started
                cpu = time.process_time() - cpu
            peak = _peak_mb()
        result = {
            "bytes": size, "seconds": seconds, "first_byte": first or seconds, "max_gap": max_gap or seconds,
            "cpu": cpu, "queries": queries, "before_mb": before, "peak_mb": peak, "rows": lines - 1,
        }  # fmt: skip
        if file_format == "xlsx":
            from openpyxl import load_workbook

            counting = time.perf_counter()
            workbook = load_workbook(xlsx, read_only=True)
            result["rows"] = sum(
                sum(1 for _ in sheet.iter_rows(values_only=True)) - 1 for sheet in workbook.worksheets
            )
            workbook.close()
            result["count_seconds"] = time.perf_counter() - counting
    finally:
        xlsx.unlink(missing_ok=True)
    print(RESULT + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
