"""Benchmark of the billing app's set-based services on PostgreSQL, each beside raw SQL doing the same work.

    python -m bench.billing [--skip-prepare] [--only run|anomaly|rebate]

Uses DATABASE_URL when set, else the local ``tongdai_bench`` (created if missing), which must already hold
the demo customers (``manage.py seed_demo --customers 2600000 --units PE``). It migrates and loads the
reference tariffs, then:

Preparation (once; skipped when the readings are there). One ``INSERT … SELECT`` writes the meter readings
of two consecutive months (PERIOD_1, PERIOD_2) for every active contract with a current meter assignment:
the consumption is drawn from hashes of the contract id (``hashint8extended``, so the same data every
time): residential mostly 50–600 kWh (4 % below, 3 % above, ×1.8/2.6/3.4 for 2–4 households), business,
production and administrative larger; the second month is 0.80–1.25× the first for 90 % of contracts,
1.30–2.29× for 7 % and 2.30–3.50× for 3 % (so ~10 % rise by 30 % or more, ~3 % by 130 % or more).

Steps, each timed around the service call including its COMMIT (where the deferred foreign keys are
checked), with the service's statements listed by time:

* billing run: ``billing_run(period=PERIOD_2)`` over every contract, after the period's draft invoices and
  their lines are deleted. Raw SQL: the charge of every distinct (tariff category, households, kWh) is
  computed beforehand with ``billing.tariff`` (not timed, its time is shown) into two temp tables; then two
  statements, ``INSERT INTO bench_billing_invoice SELECT`` readings ⨝ contracts ⨝ customers ⨝ charges
  (numbered with ROW_NUMBER) and ``INSERT INTO bench_billing_invoiceline SELECT`` those invoices ⨝ contracts
  ⨝ charge lines, into UNLOGGED copies of the tables (``LIKE … INCLUDING ALL``: same indexes and checks, but
  no WAL, no foreign keys, no triggers), giving the same number of invoices and lines. The invoices and
  lines are then VACUUM ANALYZEd (not timed), as autovacuum would after such a load.
* anomaly scan: ``anomaly_scan(period=PERIOD_2)``, after the re-inspections an earlier scan opened are
  deleted and the bills it held put back to draft (its audit records stay: the database forbids deleting
  them). Raw SQL: the same per-unit band counts in one GROUP BY with integer comparisons; and, as a second
  line, the whole of the scan's work (that GROUP BY, the re-inspections inserted, the bills held in one
  statement) in a transaction rolled back.
* rebate: a programme (15 % below 200 kWh, 10 % from 200 kWh, residential, PERIOD_2) restricted to the
  first units whose residential bills add up to 1,000,000 or more, and to a ``max_kwh`` that brings them to
  ~1,000,000. ``rebate_dry_run``, ``rebate_apply``, ``rebate_apply`` again (must find 0), and
  ``rebate_reverse``. Raw SQL: the dry run's aggregate; the apply as one statement (CTE of the eligible
  bills with their last line position and VAT rate, INSERT applications, INSERT lines, UPDATE invoices,
  then ``SET CONSTRAINTS ALL IMMEDIATE`` for the deferred foreign keys) and the reverse likewise, in a
  transaction rolled back before the service runs.

The bench never issues an invoice (the triggers forbid deleting issued ones), so every clean-up deletes
drafts only. To spare minutes of per-row trigger and foreign-key checks, the deletions of the period's draft
invoices and lines run with ``SET session_replication_role = replica`` (which turns triggers and foreign-key
checks off for the session) after checking, with the triggers on, that nothing issued is touched and that no
dispute, adjustment or refund points at those invoices.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import sys
import time

from bench.__main__ import _ensure_database

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/tongdai_bench"

PERIOD_1 = dt.date(2026, 9, 1)
PERIOD_2 = dt.date(2026, 10, 1)
REBATE_INVOICES = 1_000_000
REBATE_NAME = "Bench rebate"

TARGETS_S = {  # seconds, at 2.6M customers
    "billing run": 180,
    "anomaly scan": 30,
    "rebate dry run": 60,
    "rebate apply": 60,
    "rebate apply again": 60,
    "rebate reverse": 60,
}

# A uniform draw in [0, 1) from the contract id: the same for the same id and seed, whatever the order.
_DRAW = "(hashint8extended(c.id, {k}) & 2147483647)::float8 / 2147483648"

READINGS_SQL = f"""
INSERT INTO billing_meterreading (contract_id, meter_id, unit_id, period, value, previous_value, kwh, source,
    status, flag_reason, reader_id, taken_at, corrects_id)
SELECT s.contract_id, s.meter_id, s.unit_id, v.period, v.register, v.register - v.kwh, v.kwh, s.source,
       'valid', '', NULL,
       (v.period + interval '1 month' - interval '1 day' + interval '7 hours' + s.u5 * interval '10 hours')
           AT TIME ZONE 'Asia/Ho_Chi_Minh',
       NULL
FROM (
    SELECT c.id AS contract_id, a.meter_id, cu.unit_id, d.u5,
           CASE WHEN m.kind = 'remote_read' THEN 'remote' ELSE 'handheld' END AS source,
           a.reading_at_install + 1000 + floor(d.u4 * 40000)::bigint AS base, e.k1,
           (CASE WHEN d.u2 < 0.03 THEN ceil(e.k1 * (2.3 + d.u3 * 1.2))
                 WHEN d.u2 < 0.10 THEN ceil(e.k1 * (1.3 + d.u3 * 0.99))
                 ELSE floor(e.k1 * (0.8 + d.u3 * 0.45)) END)::int AS k2
    FROM customers_contract c
    JOIN customers_customer cu ON cu.id = c.customer_id
    JOIN customers_meterassignment a ON a.contract_id = c.id AND a.removed_at IS NULL
    JOIN customers_meter m ON m.id = a.meter_id
    CROSS JOIN LATERAL (SELECT {_DRAW.format(k=1)} AS u1, {_DRAW.format(k=2)} AS u2, {_DRAW.format(k=3)} AS u3,
                               {_DRAW.format(k=4)} AS u4, {_DRAW.format(k=5)} AS u5) d
    CROSS JOIN LATERAL (SELECT GREATEST(1, CASE c.tariff_category
        WHEN 'residential' THEN round(
            CASE WHEN d.u1 < 0.04 THEN 10 + d.u1 / 0.04 * 40
                 WHEN d.u1 < 0.97 THEN 50 + power((d.u1 - 0.04) / 0.93, 1.6) * 550
                 ELSE 600 + (d.u1 - 0.97) / 0.03 * 900 END * (1 + 0.8 * (cu.households - 1)))
        WHEN 'business' THEN 80 + round(d.u1 * d.u1 * 4000)
        WHEN 'production' THEN 500 + round(d.u1 * d.u1 * 30000)
        ELSE 150 + round(d.u1 * d.u1 * 6000) END)::int AS k1) e
    WHERE c.status = 'active'
) s
CROSS JOIN LATERAL (VALUES (%(p1)s::date, s.base + s.k1, s.k1),
                           (%(p2)s::date, s.base + s.k1 + s.k2, s.k2)) AS v(period, register, kwh)
WHERE v.period = ANY(%(missing)s::date[])
"""

INVOICE_COLUMNS = (
    "number, kind, contract_id, customer_id, unit_id, period, period_start, period_end, reading_id, kwh, "
    "households, subtotal, vat, total, status, hold_reason, adjusts_id, run_id, created_at, issued_at, paid_at"
)
LINE_COLUMNS = "invoice_id, position, label, segment_start, tier, kwh, price, amount, vat_percent"


class StatementLog:
    """An execute wrapper: how long each statement of a service took."""

    def __init__(self) -> None:
        self.rows: list[tuple[float, str]] = []

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.rows.append((time.perf_counter() - started, sql))

    def report(self, total: float, commit: float, top: int = 4) -> None:
        shown = sorted(self.rows, key=lambda r: -r[0])[:top]
        for seconds, sql in shown:
            print(f"      {seconds:7.2f}s  {' '.join(sql.split())[:110]}")
        rest = total - commit - sum(s for s, _sql in self.rows)
        print(
            f"      {commit:7.2f}s  COMMIT (deferred foreign-key checks)\n"
            f"      {rest:7.2f}s  Python, outside SQL ({len(self.rows)} statements in all)"
        )


def _setup() -> None:
    os.environ.setdefault("DATABASE_URL", DEFAULT_URL)
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tongdai.settings")
    if not os.environ["DATABASE_URL"].startswith("postgres"):
        sys.exit("The benchmark runs on PostgreSQL: set DATABASE_URL=postgres://…")
    _ensure_database(os.environ["DATABASE_URL"])
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from billing.services import tariffs_load_reference

    created = tariffs_load_reference()
    if created["tables"] or created["vat"]:
        print(f"loaded {created['tables']} price tables and {created['vat']} VAT rates")


def _sql(sql: str, params=None):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else cursor.rowcount


def _service(fn):
    """(seconds, result, statement log, commit seconds) of ``fn()``, committed at the end."""
    from django.db import connection, transaction

    log = StatementLog()
    started = time.perf_counter()
    with transaction.atomic():
        with connection.execute_wrapper(log):
            result = fn()
        before_commit = time.perf_counter()
    ended = time.perf_counter()
    return ended - started, result, log, ended - before_commit


def _rolled_back(statements) -> float:
    """Seconds to run ``statements`` (sql, params) and check deferred constraints, then roll back."""
    from django.db import transaction

    with transaction.atomic():
        started = time.perf_counter()
        for sql, params in statements:
            _sql(sql, params)
        _sql("SET CONSTRAINTS ALL IMMEDIATE")
        elapsed = time.perf_counter() - started
        transaction.set_rollback(True)
    return elapsed


def _vacuum(*tables: str) -> None:
    started = time.perf_counter()
    for table in tables:
        _sql(f"VACUUM (ANALYZE) {table}")
    print(f"   (VACUUM ANALYZE {', '.join(tables)}: {time.perf_counter() - started:.1f}s, not timed)")


# Preparation ---------------------------------------------------------------------------------------------


def prepare() -> None:
    from django.db import transaction

    have = dict(
        _sql(
            "SELECT period, COUNT(*) FROM billing_meterreading WHERE period IN (%s, %s) GROUP BY period",
            [PERIOD_1, PERIOD_2],
        )
    )
    missing = [p for p in (PERIOD_1, PERIOD_2) if not have.get(p)]
    if not missing:
        print(
            f"readings already there: {have[PERIOD_1]:,} for {PERIOD_1:%m/%Y}, {have[PERIOD_2]:,} for "
            f"{PERIOD_2:%m/%Y}"
        )
        return
    started = time.perf_counter()
    with transaction.atomic():
        made = _sql(READINGS_SQL, {"p1": PERIOD_1, "p2": PERIOD_2, "missing": missing})
    loaded = time.perf_counter() - started
    _sql("ANALYZE billing_meterreading")
    print(
        f"made {made:,} readings for {', '.join(f'{p:%m/%Y}' for p in missing)} in {loaded:.1f}s "
        f"(+ ANALYZE: {time.perf_counter() - started:.1f}s in all)"
    )


def _readings_of(period: dt.date) -> int:
    return _sql(
        "SELECT COUNT(*) FROM billing_meterreading WHERE period = %s AND status <> 'superseded'", [period]
    )[0][0]


# Billing run ---------------------------------------------------------------------------------------------


def _delete_period_invoices(period: dt.date) -> None:
    """Delete the period's regular draft and held invoices, their lines and rebate applications."""
    from django.db import transaction

    (issued,) = _sql(
        "SELECT COUNT(*) FROM billing_invoice WHERE period = %s AND status IN ('issued', 'paid')", [period]
    )[0]
    if issued:
        sys.exit(
            f"{issued:,} invoices of {period:%m/%Y} are issued: the bench never issues and will not delete them."
        )
    pointing = _sql(
        "SELECT (SELECT COUNT(*) FROM billing_dispute d JOIN billing_invoice i ON i.id = d.invoice_id "
        "WHERE i.period = %(p)s) + (SELECT COUNT(*) FROM billing_adjustment a JOIN billing_invoice i "
        "ON i.id IN (a.original_id, a.invoice_id) WHERE i.period = %(p)s) + (SELECT COUNT(*) FROM "
        "billing_refund r JOIN billing_invoice i ON i.id = r.offset_invoice_id WHERE i.period = %(p)s)",
        {"p": period},
    )[0][0]
    if pointing:
        sys.exit(
            f"{pointing} disputes, adjustments or refunds point at invoices of {period:%m/%Y}: not deleting."
        )
    started = time.perf_counter()
    with transaction.atomic():
        _sql("SET LOCAL session_replication_role = replica")
        _sql(
            "DELETE FROM billing_rebateapplication a USING billing_invoice i WHERE i.id = a.invoice_id "
            "AND i.period = %s AND i.status IN ('draft', 'held')",
            [period],
        )
        lines = _sql(
            "DELETE FROM billing_invoiceline l USING billing_invoice i WHERE i.id = l.invoice_id "
            "AND i.period = %s AND i.status IN ('draft', 'held')",
            [period],
        )
        invoices = _sql(
            "DELETE FROM billing_invoice WHERE period = %s AND status IN ('draft', 'held')", [period]
        )
    if invoices:
        print(
            f"   deleted {invoices:,} draft invoices of {period:%m/%Y} and {lines:,} lines in "
            f"{time.perf_counter() - started:.1f}s (not timed)"
        )
        _vacuum("billing_invoiceline", "billing_invoice", "billing_rebateapplication")


def _charges(period: dt.date) -> float:
    """The charge of every distinct (category, households, kWh) of the period, into temp tables."""
    from django.db import connection

    from billing import tariff
    from billing.selectors import tables_for, vat_rates
    from billing.services import period_bounds

    started = time.perf_counter()
    combos = _sql(
        "SELECT DISTINCT c.tariff_category, cu.households, r.kwh FROM billing_meterreading r "
        "JOIN customers_contract c ON c.id = r.contract_id JOIN customers_customer cu ON cu.id = c.customer_id "
        "WHERE r.period = %s AND r.status <> 'superseded' AND c.status = 'active'",
        [period],
    )
    start, end = period_bounds(period)
    tables = {category: tables_for(category) for category in {c[0] for c in combos}}
    rates = vat_rates()
    for name in ("bench_charge", "bench_charge_line"):
        _sql(f"DROP TABLE IF EXISTS {name}")
    _sql(
        "CREATE TEMP TABLE bench_charge (tariff_category varchar(16), households integer, kwh integer, "
        "subtotal bigint, vat bigint, total bigint)"
    )
    _sql(
        "CREATE TEMP TABLE bench_charge_line (tariff_category varchar(16), households integer, kwh integer, "
        "position integer, label varchar(100), segment_start date, tier integer, line_kwh integer, "
        "price integer, amount bigint, vat_percent integer)"
    )
    charge_rows, line_rows = [], []
    for category, households, kwh in combos:
        ch = tariff.compute_charge(start=start, end=end, consumption=kwh, tables=tables[category],
                                   vat_rates=rates, households=households)  # fmt: skip
        charge_rows.append((category, households, kwh, ch.subtotal, ch.vat, ch.total))
        line_rows += [
            (category, households, kwh, i, line.label[:100], line.valid_from, line.tier, line.kwh, line.price,
             line.amount, line.vat_percent)
            for i, line in enumerate(ch.lines, 1)
        ]  # fmt: skip
    with connection.cursor() as cursor:
        for table, data in (("bench_charge", charge_rows), ("bench_charge_line", line_rows)):
            with cursor.cursor.copy(f"COPY {table} FROM STDIN") as copy:
                for row in data:
                    copy.write_row(row)
    _sql("ANALYZE bench_charge")
    _sql("ANALYZE bench_charge_line")
    elapsed = time.perf_counter() - started
    print(
        f"   raw SQL's charge tables: {len(combos):,} distinct charges computed in {elapsed:.1f}s (not timed)"
    )
    return elapsed


def step_run(rows: list) -> None:
    from django.db import transaction

    from billing.services import billing_run, period_bounds

    period = PERIOD_2
    start, end = period_bounds(period)
    print(f"\n== billing run {period:%m/%Y}: {_readings_of(period):,} readings")
    _delete_period_invoices(period)
    _sql(
        "SELECT COUNT(*), SUM(r.kwh) FROM billing_meterreading r JOIN customers_contract c ON c.id = r.contract_id "
        "JOIN customers_customer cu ON cu.id = c.customer_id WHERE r.period = %s",
        [period],
    )  # warms the cache for both sides

    seconds, result, log, commit = _service(lambda: billing_run(actor=None, period=period))
    (lines,) = _sql(
        "SELECT COUNT(*) FROM billing_invoiceline l JOIN billing_invoice i ON i.id = l.invoice_id "
        "WHERE i.run_id = %s",
        [result.run.pk],
    )[0]
    print(
        f"   service: {result.invoices:,} invoices, {lines:,} lines, {result.held:,} held, "
        f"{result.without_reading:,} active contracts without a reading, {seconds:.1f}s"
    )
    log.report(seconds, commit)

    _charges(period)
    for name in ("bench_billing_invoiceline", "bench_billing_invoice"):
        _sql(f"DROP TABLE IF EXISTS {name}")
    _sql("CREATE UNLOGGED TABLE bench_billing_invoice (LIKE billing_invoice INCLUDING ALL)")
    _sql("CREATE UNLOGGED TABLE bench_billing_invoiceline (LIKE billing_invoiceline INCLUDING ALL)")
    started = time.perf_counter()
    with transaction.atomic():
        raw_invoices = _sql(
            f"""
            INSERT INTO bench_billing_invoice ({INVOICE_COLUMNS})
            SELECT 'HD' || %(year)s || '-' || lpad((ROW_NUMBER() OVER (ORDER BY r.contract_id))::text, 8, '0'),
                   'regular', r.contract_id, c.customer_id, r.unit_id, %(period)s, %(start)s, %(end)s, r.id, r.kwh,
                   cu.households, ch.subtotal, ch.vat, ch.total,
                   CASE WHEN r.status = 'flagged' THEN 'held' ELSE 'draft' END,
                   CASE WHEN r.status = 'flagged' THEN substr('Reading flagged: ' || r.flag_reason, 1, 200)
                        ELSE '' END,
                   NULL, NULL, now(), NULL, NULL
            FROM billing_meterreading r
            JOIN customers_contract c ON c.id = r.contract_id
            JOIN customers_customer cu ON cu.id = c.customer_id
            JOIN bench_charge ch ON ch.tariff_category = c.tariff_category AND ch.households = cu.households
                 AND ch.kwh = r.kwh
            WHERE r.period = %(period)s AND r.status <> 'superseded' AND c.status = 'active'
            """,
            {"year": str(period.year), "period": period, "start": start, "end": end},
        )
        raw_lines = _sql(
            f"""
            INSERT INTO bench_billing_invoiceline ({LINE_COLUMNS})
            SELECT i.id, l.position, l.label, l.segment_start, l.tier, l.line_kwh, l.price, l.amount, l.vat_percent
            FROM bench_billing_invoice i
            JOIN customers_contract c ON c.id = i.contract_id
            JOIN bench_charge_line l ON l.tariff_category = c.tariff_category AND l.households = i.households
                 AND l.kwh = i.kwh
            """
        )
    raw_seconds = time.perf_counter() - started
    print(f"   raw SQL: {raw_invoices:,} invoices, {raw_lines:,} lines, {raw_seconds:.1f}s")
    if (raw_invoices, raw_lines) != (result.invoices, lines):
        print("   !! the raw SQL made a different number of rows")
    for name in ("bench_billing_invoiceline", "bench_billing_invoice", "bench_charge", "bench_charge_line"):
        _sql(f"DROP TABLE IF EXISTS {name}")
    rows.append(("billing run", f"{result.invoices:,} inv", seconds, raw_seconds))
    rows.append(("  (its lines)", f"{lines:,} lines", None, None))
    _vacuum("billing_invoice", "billing_invoiceline")


def ensure_invoices() -> None:
    """The later steps need the second period billed: bill what is missing (not timed)."""
    from billing.services import billing_run

    (have,) = _sql("SELECT COUNT(*) FROM billing_invoice WHERE period = %s AND kind = 'regular'", [PERIOD_2])[
        0
    ]
    if have >= _readings_of(PERIOD_2):
        return
    started = time.perf_counter()
    result = billing_run(actor=None, period=PERIOD_2)
    print(
        f"\n(billed {result.invoices:,} missing invoices of {PERIOD_2:%m/%Y} in {time.perf_counter() - started:.1f}s)"
    )
    _vacuum("billing_invoice", "billing_invoiceline")


# Anomaly scan --------------------------------------------------------------------------------------------

PAIRS = """
    FROM billing_meterreading c
    JOIN billing_meterreading p ON p.contract_id = c.contract_id AND p.period = %(previous)s
         AND p.status <> 'superseded'
    WHERE c.period = %(period)s AND c.status <> 'superseded' AND p.kwh > 0
"""
# rise = (c - p) / p: below 30 %, 30–50 %, 50–100 %, 100–300 %, 300 % and more, in integers.
RAW_BANDS = f"""
    SELECT c.unit_id, COUNT(*),
           COUNT(*) FILTER (WHERE c.kwh::bigint * 100 < p.kwh::bigint * 130),
           COUNT(*) FILTER (WHERE c.kwh::bigint * 100 >= p.kwh::bigint * 130 AND c.kwh::bigint * 100 < p.kwh::bigint * 150),
           COUNT(*) FILTER (WHERE c.kwh::bigint * 100 >= p.kwh::bigint * 150 AND c.kwh::bigint * 100 < p.kwh::bigint * 200),
           COUNT(*) FILTER (WHERE c.kwh::bigint * 100 >= p.kwh::bigint * 200 AND c.kwh::bigint * 100 < p.kwh::bigint * 400),
           COUNT(*) FILTER (WHERE c.kwh::bigint * 100 >= p.kwh::bigint * 400)
    {PAIRS}
    GROUP BY c.unit_id ORDER BY c.unit_id
"""
RAW_HOLD = f"""
    WITH opened AS (
        INSERT INTO billing_reinspection (reading_id, unit_id, dispute_id, reason, rise_percent, created_at,
            reread_value, evidence, evidence_file, outcome, inspector_id, done_at)
        SELECT c.id, c.unit_id, NULL, 'anomaly', round((c.kwh - p.kwh) * 100.0 / p.kwh)::int, now(), NULL, '', '',
               '', NULL, NULL
        {PAIRS} AND c.kwh::bigint * 10 >= p.kwh::bigint * 13
        ON CONFLICT (reading_id) WHERE reason = 'anomaly' DO NOTHING
        RETURNING reading_id
    )
    UPDATE billing_invoice i SET status = 'held', hold_reason = 'Consumption rose 1.3× or more: re-inspection'
    FROM opened o
    WHERE i.reading_id = o.reading_id AND i.status = 'draft' AND i.kind = 'regular' AND i.period = %(period)s
"""


def _undo_anomaly_scan(period: dt.date) -> None:
    """Put back to draft the bills an earlier scan held, and delete the re-inspections it opened."""
    from django.db import transaction

    started = time.perf_counter()
    with transaction.atomic():
        released = _sql(
            "UPDATE billing_invoice i SET status = 'draft', hold_reason = '' FROM billing_reinspection x "
            "WHERE x.reading_id = i.reading_id AND x.reason = 'anomaly' AND x.dispute_id IS NULL "
            "AND x.done_at IS NULL AND i.period = %s AND i.status = 'held' AND i.kind = 'regular'",
            [period],
        )
        deleted = _sql(
            "DELETE FROM billing_reinspection x USING billing_meterreading r WHERE r.id = x.reading_id "
            "AND r.period = %s AND x.reason = 'anomaly' AND x.dispute_id IS NULL AND x.done_at IS NULL",
            [period],
        )
    if deleted or released:
        print(
            f"   removed {deleted:,} re-inspections of an earlier scan, {released:,} bills back to draft "
            f"in {time.perf_counter() - started:.1f}s (not timed)"
        )
        _vacuum("billing_reinspection", "billing_invoice")


def step_anomaly(rows: list) -> None:
    from billing.models import AnomalyBandCount
    from billing.services import anomaly_scan

    period = PERIOD_2
    params = {"period": period, "previous": PERIOD_1}
    print(f"\n== anomaly scan {period:%m/%Y} against {PERIOD_1:%m/%Y}")
    _undo_anomaly_scan(period)
    _sql(RAW_BANDS, params)  # warms the cache for both sides

    started = time.perf_counter()
    raw_counts = _sql(RAW_BANDS, params)
    raw_seconds = time.perf_counter() - started
    raw_full = _rolled_back([(RAW_BANDS, params), (RAW_HOLD, params)])

    seconds, result, log, commit = _service(lambda: anomaly_scan(actor=None, period=period))
    print(
        f"   service: {result['compared']:,} compared in {result['units']} units, {result['reinspections']:,} "
        f"re-inspections, {result['held']:,} held, bands {result['bands']}, {seconds:.1f}s"
    )
    log.report(seconds, commit)
    stored = [
        (b.unit_id, b.compared, b.below_30, b.from_30, b.from_50, b.from_100, b.from_300)
        for b in AnomalyBandCount.objects.filter(period=period).order_by("unit_id")
    ]
    agree = stored == [tuple(r) for r in raw_counts]
    print(
        f"   raw SQL: band counts {raw_seconds:.1f}s (agree with the service: {'yes' if agree else 'NO'}); "
        f"counts + re-inspections + holds, rolled back: {raw_full:.1f}s"
    )
    rows.append(("anomaly scan", f"{result['compared']:,}", seconds, raw_seconds))
    rows.append(("  vs raw full work", f"{result['reinspections']:,} reinsp", seconds, raw_full))


# Rebate ---------------------------------------------------------------------------------------------------


def _remove_bench_programmes() -> None:
    from billing.models import RebateProgramme, RebateStatus
    from billing.services import rebate_reverse

    for programme in RebateProgramme.objects.filter(name__startswith=REBATE_NAME):
        if programme.status == RebateStatus.APPLIED:
            started = time.perf_counter()
            result = rebate_reverse(actor=None, programme=programme)
            print(
                f"   reversed an earlier bench programme ({result['reversed']:,} bills) in "
                f"{time.perf_counter() - started:.1f}s (not timed)"
            )
        programme.delete()


def _make_programme():
    from billing.models import RebateBand, RebateProgramme

    per_unit = _sql(
        "SELECT i.unit_id, COUNT(*) FROM billing_invoice i JOIN customers_customer cu ON cu.id = i.customer_id "
        "WHERE i.period = %s AND i.kind = 'regular' AND i.status IN ('draft', 'held') "
        "AND cu.customer_type = 'residential' GROUP BY i.unit_id ORDER BY i.unit_id",
        [PERIOD_2],
    )
    units, total = [], 0
    for unit_id, count in per_unit:
        if total >= REBATE_INVOICES:
            break
        units.append(unit_id)
        total += count
    max_kwh = None
    if total > REBATE_INVOICES:  # trim to ~1,000,000 with the kWh of the millionth bill
        max_kwh = _sql(
            "SELECT i.kwh FROM billing_invoice i JOIN customers_customer cu ON cu.id = i.customer_id "
            "WHERE i.period = %s AND i.kind = 'regular' AND i.status IN ('draft', 'held') "
            "AND cu.customer_type = 'residential' AND i.unit_id = ANY(%s) ORDER BY i.kwh OFFSET %s LIMIT 1",
            [PERIOD_2, units, REBATE_INVOICES - 1],
        )[0][0]
    programme = RebateProgramme.objects.create(
        name=f"{REBATE_NAME} {PERIOD_2:%m/%Y}", legal_basis="Benchmark (bench.billing)",
        customer_types=["residential"], period_from=PERIOD_2, period_to=PERIOD_2, min_kwh=0, max_kwh=max_kwh,
    )  # fmt: skip
    programme.units.set(units)
    RebateBand.objects.create(programme=programme, from_kwh=0, to_kwh=200, percent=15)
    RebateBand.objects.create(programme=programme, from_kwh=200, to_kwh=None, percent=10)
    print(
        f"   programme #{programme.pk}: {len(units)} units ({total:,} residential bills), max_kwh={max_kwh}, "
        "15 % below 200 kWh, 10 % from 200 kWh"
    )
    return programme, units, max_kwh


def step_rebate(rows: list) -> None:
    from billing.services import rebate_apply, rebate_dry_run, rebate_reverse

    print(f"\n== rebate round {PERIOD_2:%m/%Y}")
    _remove_bench_programmes()
    programme, units, max_kwh = _make_programme()
    label = f"Rebate: {programme.name}"[:100]
    eligible = """
        FROM (SELECT i.id, i.unit_id, i.subtotal, i.period_start,
                     CASE WHEN i.kwh < 200 THEN 15.00 ELSE 10.00 END AS pct
              FROM billing_invoice i JOIN customers_customer cu ON cu.id = i.customer_id
              WHERE i.kind = 'regular' AND i.status IN ('draft', 'held') AND i.period = %(period)s
                AND i.kwh <= %(max_kwh)s AND cu.customer_type = 'residential' AND i.unit_id = ANY(%(units)s)
                AND NOT EXISTS (SELECT 1 FROM billing_rebateapplication a
                                WHERE a.invoice_id = i.id AND a.programme_id = %(programme)s)) e
    """
    params = {
        "period": PERIOD_2,
        "units": units,
        "max_kwh": max_kwh if max_kwh is not None else 2**31 - 1,
        "programme": programme.pk,
        "label": label,
        "now": dt.datetime.now(dt.UTC),
    }
    raw_dry = f"""
        SELECT e.unit_id, e.pct, COUNT(*), SUM(FLOOR(e.subtotal * e.pct / 100.0 + 0.5)::bigint), SUM(e.subtotal)
        {eligible} GROUP BY e.unit_id, e.pct ORDER BY e.unit_id, e.pct
    """
    raw_apply = f"""
        WITH elig AS MATERIALIZED (
            SELECT e.id, e.subtotal, e.period_start, e.pct, FLOOR(e.subtotal * e.pct / 100.0 + 0.5)::bigint AS amount,
                   l.last_position, COALESCE(l.vat_percent, 0) AS vat_percent
            {eligible}
            CROSS JOIN LATERAL (SELECT MAX(position) AS last_position, MAX(vat_percent) AS vat_percent
                                FROM billing_invoiceline WHERE invoice_id = e.id) l
        ), v AS MATERIALIZED (
            SELECT elig.*, FLOOR(elig.amount * elig.vat_percent / 100.0 + 0.5)::bigint AS vat FROM elig
        ), a AS (
            INSERT INTO billing_rebateapplication (programme_id, invoice_id, percent, base, amount, vat, applied_at)
            SELECT %(programme)s, v.id, v.pct, v.subtotal, v.amount, v.vat, %(now)s FROM v
        ), l AS (
            INSERT INTO billing_invoiceline ({LINE_COLUMNS})
            SELECT v.id, v.last_position + 1, %(label)s, v.period_start, NULL, 0, 0, -v.amount, v.vat_percent FROM v
        )
        UPDATE billing_invoice i SET subtotal = i.subtotal - v.amount, vat = i.vat - v.vat,
               total = i.total - v.amount - v.vat
        FROM v WHERE v.id = i.id
    """
    raw_reverse = """
        WITH a AS (
            DELETE FROM billing_rebateapplication a USING billing_invoice i
            WHERE i.id = a.invoice_id AND a.programme_id = %(programme)s AND i.status IN ('draft', 'held')
            RETURNING a.invoice_id, a.amount, a.vat
        ), l AS (
            DELETE FROM billing_invoiceline l USING a WHERE l.invoice_id = a.invoice_id AND l.label = %(label)s
        )
        UPDATE billing_invoice i SET subtotal = i.subtotal + a.amount, vat = i.vat + a.vat,
               total = i.total + a.amount + a.vat
        FROM a WHERE a.invoice_id = i.id
    """

    dry_seconds, dry, log, commit = _service(lambda: rebate_dry_run(programme=programme))
    print(f"   service dry run: {dry['invoices']:,} bills, {dry['amount']:,} đồng off, {dry_seconds:.1f}s")
    log.report(dry_seconds, commit, top=2)
    started = time.perf_counter()
    raw_rows = _sql(raw_dry, params)
    raw_dry_seconds = time.perf_counter() - started
    raw_total = (sum(r[2] for r in raw_rows), sum(int(r[3]) for r in raw_rows))
    print(
        f"   raw dry run: {raw_total[0]:,} bills, {raw_total[1]:,} đồng, {raw_dry_seconds:.1f}s "
        f"(agree: {'yes' if raw_total == (dry['invoices'], dry['amount']) else 'NO'})"
    )

    from django.db import transaction

    with transaction.atomic():
        started = time.perf_counter()
        raw_applied = _sql(raw_apply, params)
        _sql("SET CONSTRAINTS ALL IMMEDIATE")
        raw_apply_seconds = time.perf_counter() - started
        started = time.perf_counter()
        raw_reversed = _sql(raw_reverse, params)
        _sql("SET CONSTRAINTS ALL IMMEDIATE")
        raw_reverse_seconds = time.perf_counter() - started
        transaction.set_rollback(True)
    print(
        f"   raw apply: {raw_applied:,} bills in {raw_apply_seconds:.1f}s; raw reverse: {raw_reversed:,} in "
        f"{raw_reverse_seconds:.1f}s (rolled back)"
    )
    _vacuum("billing_invoice", "billing_invoiceline", "billing_rebateapplication")

    apply_seconds, applied, log, commit = _service(lambda: rebate_apply(actor=None, programme=programme))
    print(
        f"   service apply: {applied['invoices']:,} bills, {applied['amount']:,} đồng, {apply_seconds:.1f}s"
    )
    log.report(apply_seconds, commit)
    again_seconds, again, log, commit = _service(lambda: rebate_apply(actor=None, programme=programme))
    print(f"   service apply again: {again['invoices']:,} bills, {again_seconds:.1f}s")
    log.report(again_seconds, commit, top=2)
    reverse_seconds, reversed_, log, commit = _service(
        lambda: rebate_reverse(actor=None, programme=programme)
    )
    print(f"   service reverse: {reversed_['reversed']:,} bills, {reverse_seconds:.1f}s")
    log.report(reverse_seconds, commit)
    left = _sql(
        "SELECT COUNT(*) FROM billing_invoiceline l JOIN billing_invoice i ON i.id = l.invoice_id "
        "WHERE i.period = %s AND l.label = %s",
        [PERIOD_2, label],
    )[0][0]
    if left:
        print(f"   !! {left:,} rebate lines left after the reverse")

    rows.append(("rebate dry run", f"{dry['invoices']:,}", dry_seconds, raw_dry_seconds))
    rows.append(("rebate apply", f"{applied['invoices']:,}", apply_seconds, raw_apply_seconds))
    rows.append(("rebate apply again", f"{again['invoices']:,}", again_seconds, None))
    rows.append(("rebate reverse", f"{reversed_['reversed']:,}", reverse_seconds, raw_reverse_seconds))


# Main ------------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.billing", description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-prepare", action="store_true", help="do not make the meter readings")
    parser.add_argument("--only", choices=["run", "anomaly", "rebate"], help="run one step only")
    args = parser.parse_args()
    _setup()
    from customers.models import Customer

    print(f"{Customer.objects.count():,} customers in the database")
    if args.skip_prepare:
        if not _readings_of(PERIOD_2) or not _readings_of(PERIOD_1):
            sys.exit("No readings for the two periods: run without --skip-prepare first.")
    else:
        prepare()

    rows: list = []
    if args.only in (None, "run"):
        step_run(rows)
    if args.only in (None, "anomaly"):
        ensure_invoices()
        step_anomaly(rows)
    if args.only in (None, "rebate"):
        ensure_invoices()
        step_rebate(rows)

    print(f"\n{'step':<22} {'rows':>18} {'seconds':>9} {'raw SQL s':>10} {'ratio':>7} {'target':>10}")
    for name, count, seconds, raw in rows:
        target = TARGETS_S.get(name)
        verdict = (
            "" if target is None or seconds is None else f"≤{target} {'ok' if seconds <= target else 'MISS'}"
        )
        print(
            f"{name:<22} {count:>18} {'' if seconds is None else f'{seconds:9.2f}':>9} "
            f"{'' if raw is None else f'{raw:10.2f}':>10} "
            f"{'' if raw is None or seconds is None else f'{seconds / max(raw, 1e-6):7.1f}':>7} {verdict:>10}"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS of the process: {peak:,.0f} MB")


if __name__ == "__main__":
    main()
