"""Benchmark of the list exports (``core.exports``) on PostgreSQL, each beside ``COPY … TO STDOUT`` of the same
columns and rows.

    python -m bench.exports [--rows 1000000] [--only invoices-csv,customers-csv,invoices-xlsx] [--profile]

Uses DATABASE_URL when set, else the local ``tongdai_bench`` (created if missing). It migrates, loads the
organisation, the catalogue and the reference tariffs, and seeds what is missing: ``--rows`` demo customers
(``seed_demo --units PE``) and, for the invoices, two months of readings and the second month billed
(``bench.billing``'s preparation and ``billing_run``: one invoice per active contract). It makes a manager of
EVNHCMC (``bench-export-manager``, serving PE0100, so seeing every unit of the corporation) once.

The rows: the newest ``--rows`` invoices and the newest ``--rows`` customers in the manager's scope, as
``?id__gte=…`` on the changelist's query string (fewer when the scope holds fewer; the count is printed).

Service side: what the manager's "Export (all matching rows)" does: the Django test client, logged in, DEBUG
off, GETs the export form (the warm-up) and POSTs ``file_format`` to ``/admin/<app>/<model>/export-all/?…``;
the streamed response is read chunk by chunk and dropped (CSV: its newlines counted; XLSX: written to a
temporary file, whose rows openpyxl counts afterwards, not timed). Each export runs in a fresh child process
(``--child``), so its peak memory is its own: the child's ``ru_maxrss`` after the export, and its growth over
``ru_maxrss`` just before the POST. ``--profile`` runs the children under cProfile and prints their top
functions.

Raw side: ``COPY (SELECT …) TO STDOUT WITH (FORMAT csv, HEADER)`` through psycopg's ``cursor.copy()``: the
same columns (natural keys by joins, times in Vietnam's time, a customer's phones joined by ", " primary
first), the same rows and order, read and dropped the same way; run three times, the best run is the
ratio's denominator. The COPY does no masking: the manager sees national IDs and phones masked
(``customers.privacy``), which the export does per cell and SQL does not. The raw side does not build XLSX:
the XLSX ratio is against the invoices' COPY.

Targets: CSV within 3× its COPY, XLSX of a million rows within 40 s, memory flat (the growth
under 100 MB whatever the rows).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.export import _manager
from bench.import_readings import _peak_mb

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/tongdai_bench"
RESULT = "BENCH-EXPORTS-RESULT "
TARGET_CSV_RATIO = 3.0
TARGET_XLSX_SECONDS = 40.0
TARGET_GROWTH_MB = 100.0
MEASURES = ("invoices-csv", "customers-csv", "invoices-xlsx")

LISTS = {
    "invoices": {
        "url": "/admin/billing/invoice/export-all/",
        "table": "billing_invoice",
        "copy": """
COPY (
    SELECT i.number, i.kind, k.number AS contract, c.code AS customer, u.code AS unit, i.period, i.period_start,
           i.period_end, i.kwh, i.households, i.subtotal, i.vat, i.total, i.status, i.hold_reason,
           a.number AS adjusts,
           to_char(i.created_at AT TIME ZONE %(tz)s, 'YYYY-MM-DD HH24:MI:SS') AS created_at,
           to_char(i.issued_at AT TIME ZONE %(tz)s, 'YYYY-MM-DD HH24:MI:SS') AS issued_at,
           to_char(i.paid_at AT TIME ZONE %(tz)s, 'YYYY-MM-DD HH24:MI:SS') AS paid_at
    FROM billing_invoice i
    JOIN customers_contract k ON k.id = i.contract_id
    JOIN customers_customer c ON c.id = i.customer_id
    JOIN crm_unit u ON u.id = i.unit_id
    LEFT JOIN billing_invoice a ON a.id = i.adjusts_id
    WHERE i.unit_id IN ({units}) AND i.id >= %(min_id)s
    ORDER BY i.id DESC
) TO STDOUT WITH (FORMAT csv, HEADER)
""",
    },
    "customers": {
        "url": "/admin/customers/customer/export-all/",
        "table": "customers_customer",
        "copy": """
COPY (
    SELECT c.code, u.code AS unit, c.full_name, c.national_id, c.email, c.street, c.ward, c.district,
           c.province, c.customer_type, c.households, p.phones, CASE WHEN c.is_nuisance THEN 1 ELSE 0 END,
           to_char(c.created_at AT TIME ZONE %(tz)s, 'YYYY-MM-DD HH24:MI:SS') AS created_at
    FROM customers_customer c
    JOIN crm_unit u ON u.id = c.unit_id
    LEFT JOIN LATERAL (
        SELECT string_agg(ph.number, ', ' ORDER BY ph.is_primary DESC, ph.id) AS phones
        FROM customers_customerphone ph WHERE ph.customer_id = c.id
    ) p ON TRUE
    WHERE c.unit_id IN ({units}) AND c.id >= %(min_id)s
    ORDER BY c.id DESC
) TO STDOUT WITH (FORMAT csv, HEADER)
""",
    },
}


# Parent: the data, the raw side, the children, the table ----------------------------------------------------


def _setup() -> None:
    from bench.billing import _setup as billing_setup

    os.environ.setdefault("DATABASE_URL", DEFAULT_URL)
    os.environ["ALLOWED_HOSTS"] = "testserver,127.0.0.1,localhost"
    billing_setup()  # migrate, the reference tariffs
    from django.core.management import call_command

    call_command("load_organisation", verbosity=0)
    call_command("load_catalogue", verbosity=0)


def seed(rows: int) -> None:
    """The customers, then the invoices (readings of two months, the second billed), when missing."""
    from django.core.management import call_command

    from bench import billing
    from billing.models import Invoice
    from customers.models import Customer

    if Customer.objects.count() < rows:
        started = time.perf_counter()
        call_command("seed_demo", customers=rows, seed=1, units="PE", verbosity=1)
        print(f"(seeded customers in {time.perf_counter() - started:.0f}s)")
    if Invoice.objects.count() < rows:
        billing.prepare()
        billing.ensure_invoices()


def choose(name: str, rows: int, units: list[int]) -> tuple[int, int]:
    """The smallest id of the newest ``rows`` rows of the list in ``units``, and how many rows that is."""
    from django.db import connection

    table = LISTS[name]["table"]
    in_units = ", ".join(map(str, units))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM {table} WHERE unit_id IN ({in_units}) ORDER BY id DESC OFFSET %s LIMIT 1",
            [rows - 1],
        )
        found = cursor.fetchone()
        if found is None:
            cursor.execute(f"SELECT min(id), count(*) FROM {table} WHERE unit_id IN ({in_units})")
            return cursor.fetchone()
    return found[0], rows


def raw_copy(name: str, units: list[int], min_id: int) -> dict:
    """The raw side: the COPY's chunks read and dropped."""
    from django.conf import settings
    from django.db import connection

    sql = LISTS[name]["copy"].format(units=", ".join(map(str, units)))
    size = lines = 0
    started = time.perf_counter()
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(sql, {"tz": settings.TIME_ZONE, "min_id": min_id}) as copy,
    ):
        for data in copy:
            size += len(data)
            lines += bytes(data).count(b"\n")
    return {"rows": lines - 1, "bytes": size, "seconds": time.perf_counter() - started}


def run_child(measure: str, min_id: int, timeout: float, profile: bool) -> dict:
    command = [sys.executable, "-m", "bench.exports", "--child", measure, "--min-id", str(min_id)]
    if profile:
        command.append("--profile")
    started = time.perf_counter()
    try:
        done = subprocess.run(
            command, cwd=Path(__file__).resolve().parent.parent, stdout=subprocess.PIPE, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {time.perf_counter() - started:.0f}s"}
    result = None
    for line in done.stdout.splitlines():
        if line.startswith(RESULT):
            result = json.loads(line[len(RESULT) :])
        elif profile:
            print("   " + line)
    return result or {"error": f"the child exited with {done.returncode} and no result: {done.stdout[-500:]}"}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.exports", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--only", default=",".join(MEASURES), help="comma-separated: " + ", ".join(MEASURES))
    parser.add_argument("--timeout", type=float, default=3600, help="seconds allowed to each export")
    parser.add_argument("--profile", action="store_true", help="profile each export (slower; no ratio)")
    parser.add_argument("--child", choices=MEASURES, help=argparse.SUPPRESS)
    parser.add_argument("--min-id", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.min_id, args.profile)
        return

    _setup()
    seed(args.rows)
    from crm.scoping import scope_for

    manager = _manager()
    units = sorted(scope_for(manager).unit_ids)
    measures = [m for m in args.only.split(",") if m]
    chosen = {name: choose(name, args.rows, units) for name in {m.split("-")[0] for m in measures}}
    raws = {}
    for name, (min_id, count) in sorted(chosen.items()):
        runs = [raw_copy(name, units, min_id) for _ in range(3)]
        raws[name] = min(runs, key=lambda r: r["seconds"])
        print(
            f"{name}: the newest {count:,} in the manager's {len(units)} units (?id__gte={min_id}); COPY "
            f"{', '.join(f'{r["seconds"]:.2f}s' for r in runs)}"
        )
    print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)\n")
    results = {m: run_child(m, chosen[m.split("-")[0]][0], args.timeout, args.profile) for m in measures}

    print(f"{'export':<16} {'rows':>10} {'MB':>7} {'seconds':>8} {'cpu s':>6} {'1st byte':>8} {'queries':>7} {'peak MB':>7} {'growth':>6} {'COPY s':>7} {'ratio':>6}  target")  # fmt: skip
    for measure, r in results.items():
        name, file_format = measure.split("-")
        raw = raws[name]
        if "error" in r:
            print(f"{measure:<16} {r['error']}")
            continue
        ratio = r["seconds"] / raw["seconds"]
        if file_format == "csv":
            verdict = f"≤{TARGET_CSV_RATIO:.0f}× {'ok' if ratio <= TARGET_CSV_RATIO else 'MISS'}"
        else:
            limit = TARGET_XLSX_SECONDS * r["rows"] / 1_000_000
            verdict = f"≤{limit:.0f} s {'ok' if r['seconds'] <= limit else 'MISS'}"
        growth = r["peak_mb"] - r["before_mb"]
        verdict += f", growth ≤{TARGET_GROWTH_MB:.0f} MB {'ok' if growth <= TARGET_GROWTH_MB else 'MISS'}"
        count = "" if r["rows"] == chosen[name][1] else f"  (WRONG: {chosen[name][1]:,} rows expected)"
        print(f"{measure:<16} {r['rows']:>10,} {r['bytes'] / 1e6:7.1f} {r['seconds']:8.2f} {r['cpu']:6.2f} {r['first_byte']:8.2f} {r['queries']:>7} {r['peak_mb']:7.0f} {growth:6.0f} {raw['seconds']:7.2f} {ratio:6.1f}  {verdict}{count}")  # fmt: skip
    for name, raw in sorted(raws.items()):
        print(f"{'COPY ' + name:<16} {raw['rows']:>10,} {raw['bytes'] / 1e6:7.1f} {raw['seconds']:8.2f}")
    print("(the raw side does not build XLSX: the XLSX ratio is against the invoices' COPY)")


# Child: one export through the admin view, in a fresh process -------------------------------------------------


def child(measure: str, min_id: int, profile: bool) -> None:
    from bench.import_readings import _setup as setup

    os.environ["ALLOWED_HOSTS"] = "testserver,127.0.0.1,localhost"
    setup()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import override_settings

    name, file_format = measure.split("-")
    client = Client()
    client.force_login(get_user_model().objects.get(username="bench-export-manager"))
    url = f"{LISTS[name]['url']}?id__gte={min_id}"
    queries = 0

    def count(execute, *rest):
        nonlocal queries
        queries += 1
        return execute(*rest)

    xlsx = Path(tempfile.gettempdir()) / f"bench_exports_{os.getpid()}.xlsx"
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
    try:
        with override_settings(DEBUG=False, WHITENOISE_AUTOREFRESH=True), xlsx.open("wb") as out:
            form = client.get(url)  # the page before the click: the URLconf, the admin, the templates
            assert form.status_code == 200, form.status_code
            before = _peak_mb()
            size = lines = 0
            first = None
            with connection.execute_wrapper(count):
                if profiler:
                    profiler.enable()
                cpu = time.process_time()
                started = time.perf_counter()
                response = client.post(url, {"file_format": file_format})
                assert response.status_code == 200 and response.streaming, response.status_code
                for data in response.streaming_content:
                    if first is None:
                        first = time.perf_counter() - started
                    size += len(data)
                    if file_format == "csv":
                        lines += data.count(b"\n")
                    else:
                        out.write(data)
                seconds = time.perf_counter() - started
                cpu = time.process_time() - cpu
                if profiler:
                    profiler.disable()
            peak = _peak_mb()
        result = {
            "bytes": size, "seconds": seconds, "first_byte": first or seconds, "cpu": cpu, "queries": queries,
            "before_mb": before, "peak_mb": peak, "rows": lines - 1,
        }  # fmt: skip
        if file_format == "xlsx":
            from openpyxl import load_workbook

            workbook = load_workbook(xlsx, read_only=True)
            result["rows"] = sum(
                sum(1 for _ in s.iter_rows(values_only=True)) - 1 for s in workbook.worksheets
            )
            workbook.close()
    finally:
        xlsx.unlink(missing_ok=True)
    if profiler:
        import pstats

        pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(15)
    print(RESULT + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
