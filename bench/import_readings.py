"""Benchmark of the reading-file fast path (``billing.imports``) on PostgreSQL, beside raw SQL doing the load.

    python -m bench.import_readings [--rows 1000000] [--period YYYY-MM] [--bad 0.0] [--keep]

Uses DATABASE_URL when set, else the local ``tongdai_bench``, which must already hold the demo customers
with their contracts, meters and assignments (``python -m bench`` / ``manage.py seed_demo``). Nothing is
migrated: the import only needs the readings and audit tables.

1. The period: ``--period``, else the month after the latest one with readings; it must have none yet.
2. A CSV of ``--rows`` readings (``meter_serial,period,value,taken_at``) is written to /tmp by one
   ``COPY (SELECT …) TO STDOUT``: real serials of current meter assignments in a random order, each register
   above the contract's latest reading by a plausible month (0.8–1.25× its last kWh, or 50–600 kWh after the
   reading at install), a reading time in the last days of the month; ``--bad`` of them spoiled (unknown
   serial, negative register, a register below the previous one), to exercise the refusals. Not timed.
3. Raw SQL (in a transaction rolled back): ``COPY`` of the same file into a typed temp table, ANALYZE, and
   one ``INSERT INTO billing_meterreading … SELECT`` joining meter → open assignment → contract → customer
   and the previous reading (LATERAL) for previous value and kWh, in contract order, then
   ``SET CONSTRAINTS ALL IMMEDIATE`` (the deferred foreign-key checks a COMMIT would run). No validation,
   no jump check, no refusals listed. The table is then vacuumed (not timed): the million rolled-back rows
   would otherwise sit in the unique index the import probes.
4. ``import_readings`` on the file, committed (the time includes the COMMIT and its deferred foreign-key
   checks), with its phases; then the same file again (must insert 0: every line comes back unchanged).
5. Unless ``--keep``: the period's readings are deleted again (after checking that nothing points at them,
   with ``session_replication_role = replica`` so that the delete does not check billing_invoice.reading_id,
   which has no index, a million times), and the table vacuumed; the audit records stay (the database forbids
   deleting them).

Peak memory is the process's ``ru_maxrss`` after each step (it only grows). Targets: ≤ 30 s and ≤ 300 MB.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import sys
import time
from pathlib import Path

from bench.__main__ import _ensure_database

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/tongdai_bench"
TARGET_S, TARGET_MB = 30, 300

_DRAW = "(hashint8extended(a.id, {k}) & 2147483647)::float8 / 2147483648"

CSV_SQL = f"""
COPY (
    SELECT CASE WHEN d.bad < %(bad)s / 3 THEN 'ZZ' || m.serial ELSE m.serial END,
           %(month)s,
           CASE WHEN d.bad >= %(bad)s / 3 AND d.bad < 2 * %(bad)s / 3 THEN -1 - floor(d.u1 * 100)::bigint
                WHEN d.bad >= 2 * %(bad)s / 3 AND d.bad < %(bad)s AND r.value IS NOT NULL THEN r.value - 1
                WHEN r.value IS NULL THEN a.reading_at_install + 50 + floor(d.u1 * 550)::bigint
                ELSE r.value + floor(GREATEST(r.kwh, 1) * (0.8 + d.u1 * 0.45))::bigint END,
           to_char(%(last_day)s::date + interval '7 hours' + d.u2 * interval '10 hours', 'YYYY-MM-DD"T"HH24:MI')
    FROM customers_meterassignment a
    JOIN customers_meter m ON m.id = a.meter_id
    CROSS JOIN LATERAL (SELECT {_DRAW.format(k=11)} AS u1, {_DRAW.format(k=12)} AS u2,
                               {_DRAW.format(k=13)} AS bad, hashint8extended(a.id, %(seed)s) AS shuffle) d
    LEFT JOIN billing_meterreading r ON r.contract_id = a.contract_id AND r.period = %(previous)s
         AND NOT (r.status = 'superseded')
    WHERE a.removed_at IS NULL
    ORDER BY d.shuffle
    LIMIT %(rows)s
) TO STDOUT WITH (FORMAT csv)
"""

RAW_INSERT = """
INSERT INTO billing_meterreading (contract_id, meter_id, unit_id, period, value, previous_value, kwh, source,
    status, flag_reason, reader_id, taken_at, corrects_id)
SELECT a.contract_id, a.meter_id, cu.unit_id, CAST(s.month || '-01' AS date), s.value, COALESCE(p.value, a.reading_at_install),
       s.value - COALESCE(p.value, a.reading_at_install),
       CASE WHEN m.kind = 'remote_read' THEN 'remote' ELSE 'handheld' END, 'valid', '', NULL,
       s.taken_at AT TIME ZONE 'Asia/Ho_Chi_Minh', NULL
FROM bench_raw s
JOIN customers_meter m ON m.serial = s.meter_serial
JOIN customers_meterassignment a ON a.meter_id = m.id AND a.removed_at IS NULL
JOIN customers_contract k ON k.id = a.contract_id
JOIN customers_customer cu ON cu.id = k.customer_id
LEFT JOIN LATERAL (SELECT r.value FROM billing_meterreading r WHERE r.contract_id = a.contract_id
                   AND r.period < CAST(s.month || '-01' AS date) AND NOT (r.status = 'superseded') ORDER BY r.period DESC LIMIT 1) p ON TRUE
WHERE s.value >= COALESCE(p.value, a.reading_at_install)
ORDER BY a.contract_id
"""


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _setup() -> None:
    os.environ.setdefault("DATABASE_URL", DEFAULT_URL)
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tongdai.settings")
    if not os.environ["DATABASE_URL"].startswith("postgres"):
        sys.exit("The benchmark runs on PostgreSQL: set DATABASE_URL=postgres://…")
    _ensure_database(os.environ["DATABASE_URL"])
    import django

    django.setup()


def _sql(sql: str, params=None):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else cursor.rowcount


def _month(text: str) -> dt.date:
    return dt.date.fromisoformat(f"{text[:7]}-01")


def _next_month(day: dt.date) -> dt.date:
    return (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def choose_period(arg: str | None) -> dt.date:
    if arg:
        period = _month(arg)
    else:
        (latest,) = _sql("SELECT MAX(period) FROM billing_meterreading")[0]
        period = _next_month(latest) if latest else dt.date.today().replace(day=1)
    (have,) = _sql("SELECT COUNT(*) FROM billing_meterreading WHERE period = %s", [period])[0]
    if have:
        sys.exit(f"{period:%Y-%m} already has {have:,} readings: choose another --period (or delete them).")
    return period


def write_csv(path: Path, *, rows: int, period: dt.date, bad: float) -> int:
    from django.db import connection

    previous = (period - dt.timedelta(days=1)).replace(day=1)
    last_day = _next_month(period) - dt.timedelta(days=3)
    size = 0
    with path.open("wb") as out:
        out.write(b"meter_serial,period,value,taken_at\n")
        with connection.cursor() as cursor:
            params = {"rows": rows, "month": f"{period:%Y-%m}", "previous": previous, "last_day": last_day,
                      "bad": bad, "seed": 7}  # fmt: skip
            with cursor.cursor.copy(CSV_SQL, params) as copy:
                for data in copy:
                    out.write(data)
                    size += len(data)
    return size


def raw_load(path: Path) -> tuple[float, int]:
    """COPY + ANALYZE + one INSERT … SELECT + the deferred FK checks, rolled back: (seconds, rows)."""
    from django.db import connection, transaction

    with transaction.atomic():
        started = time.perf_counter()
        _sql("SET LOCAL work_mem = '256MB'")
        _sql(
            "CREATE TEMP TABLE bench_raw (meter_serial text, month text, value bigint, taken_at timestamp) "
            "ON COMMIT DROP"
        )
        with connection.cursor() as cursor, path.open("rb") as stream:
            stream.readline()
            with cursor.cursor.copy("COPY bench_raw FROM STDIN WITH (FORMAT csv)") as copy:
                while chunk := stream.read(1 << 20):
                    copy.write(chunk)
        copied = time.perf_counter()
        _sql("ANALYZE bench_raw")
        inserted = _sql(RAW_INSERT)
        insert_done = time.perf_counter()
        _sql("SET CONSTRAINTS ALL IMMEDIATE")
        elapsed = time.perf_counter() - started
        print(
            f"   raw: COPY {copied - started:.1f}s, INSERT … SELECT {insert_done - copied:.1f}s, "
            f"deferred FK checks {elapsed - (insert_done - started):.1f}s"
        )
        transaction.set_rollback(True)
    return elapsed, inserted


def run_import(path: Path, period: dt.date):
    from billing.imports import import_readings

    rejects_path = path.with_name(path.name + ".rejects.csv")
    started = time.perf_counter()
    with path.open("rb") as stream, rejects_path.open("w", newline="", encoding="utf-8") as rejects:
        result = import_readings(stream=stream, period=period, rejects_to=rejects)
    return time.perf_counter() - started, result, rejects_path


def cleanup(period: dt.date) -> None:
    from django.db import transaction

    referenced = _sql(
        """
        SELECT (SELECT COUNT(*) FROM billing_invoice WHERE period = %(p)s)
             + (SELECT COUNT(*) FROM billing_dispute d JOIN billing_meterreading r ON r.id = d.reading_id
                WHERE r.period = %(p)s)
             + (SELECT COUNT(*) FROM billing_reinspection x JOIN billing_meterreading r ON r.id = x.reading_id
                WHERE r.period = %(p)s)
             + (SELECT COUNT(*) FROM billing_adjustment j JOIN billing_meterreading r ON r.id = j.corrected_reading_id
                WHERE r.period = %(p)s)
             + (SELECT COUNT(*) FROM billing_meterreading c JOIN billing_meterreading r ON r.id = c.corrects_id
                WHERE r.period = %(p)s)
        """,
        {"p": period},
    )[0][0]
    if referenced:
        print(f"   {referenced} rows point at the {period:%Y-%m} readings: kept them.")
        return
    started = time.perf_counter()
    with transaction.atomic():
        _sql("SET LOCAL session_replication_role = replica")
        deleted = _sql("DELETE FROM billing_meterreading WHERE period = %s", [period])
    vacuumed = time.perf_counter()
    _sql("VACUUM (ANALYZE) billing_meterreading")  # the dead rows would slow the next run's index probes
    print(
        f"   deleted the {deleted:,} readings of {period:%Y-%m} again in {vacuumed - started:.1f}s "
        f"(+ VACUUM ANALYZE {time.perf_counter() - vacuumed:.1f}s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.import_readings", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--period", help="YYYY-MM (default: the month after the latest read)")
    parser.add_argument("--bad", type=float, default=0.0, help="share of spoiled lines, e.g. 0.001")
    parser.add_argument("--keep", action="store_true", help="keep the imported readings")
    parser.add_argument("--skip-raw", action="store_true")
    args = parser.parse_args()
    _setup()
    base_mb = _peak_mb()
    period = choose_period(args.period)
    path = Path(f"/tmp/bench_readings_{period:%Y%m}.csv")
    started = time.perf_counter()
    size = write_csv(path, rows=args.rows, period=period, bad=args.bad)
    print(
        f"period {period:%Y-%m}; wrote {path} ({size / 1e6:.1f} MB, {args.rows:,} lines) in "
        f"{time.perf_counter() - started:.1f}s (not timed); load average {os.getloadavg()[0]:.1f}"
    )
    rows = []
    if not args.skip_raw:
        seconds, inserted = raw_load(path)
        rows.append(("raw COPY + INSERT…SELECT", seconds, inserted, _peak_mb()))
        vacuumed = time.perf_counter()
        _sql("VACUUM (ANALYZE) billing_meterreading")  # the rolled-back rows would slow the import's probes
        print(
            f"   (VACUUM ANALYZE after the rolled-back raw load: {time.perf_counter() - vacuumed:.1f}s, not timed)"
        )
    seconds, result, rejects_path = run_import(path, period)
    rows.append(("import_readings", seconds, result.inserted, _peak_mb()))
    print(
        f"   import: {result.total:,} lines, {result.inserted:,} inserted ({result.flagged:,} flagged), "
        f"{result.unchanged:,} unchanged, {result.rejected:,} rejected → {rejects_path}"
    )
    print("   phases (s): " + ", ".join(f"{k} {v:.1f}" for k, v in result.seconds.items()))
    again_seconds, again, _rejects = run_import(path, period)
    rows.append(("re-import (same file)", again_seconds, again.inserted, _peak_mb()))
    print(
        f"   re-import: {again.inserted:,} inserted, {again.unchanged:,} unchanged, {again.rejected:,} rejected; "
        "phases (s): " + ", ".join(f"{k} {v:.1f}" for k, v in again.seconds.items())
    )
    print(f"\n{'step':<28} {'seconds':>8} {'inserted':>10} {'lines/s':>9} {'peak MB':>8}")
    for name, seconds, inserted, peak in rows:
        print(f"{name:<28} {seconds:8.1f} {inserted:10,} {args.rows / seconds:9,.0f} {peak:8.0f}")
    imported = rows[-2]
    verdict = "ok" if imported[1] <= TARGET_S and imported[3] <= TARGET_MB else "MISS"
    ratio = f"import/raw {imported[1] / rows[0][1]:.2f}×; " if not args.skip_raw else ""
    print(
        f"(process after django.setup: {base_mb:.0f} MB) {ratio}target ≤{TARGET_S}s and ≤{TARGET_MB} MB: {verdict}; "
        f"re-import inserted {again.inserted} ({'ok' if again.inserted == 0 else 'WRONG'})"
    )
    if not args.keep:
        cleanup(period)


if __name__ == "__main__":
    main()
