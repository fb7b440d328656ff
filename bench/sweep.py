"""Benchmark of the SLA sweep on PostgreSQL: 1,000,000 closed and 100,000 open tickets, with 0 and 1,000 due.

    python -m bench.sweep [--closed 1000000] [--open 100000] [--due 1000] [--iterations 20]

Uses DATABASE_URL when set, else the local ``tongdai_bench`` (created if missing; the customer benchmark's
data may be there already, it is not needed). Tickets are made in SQL (generate_series) once; every measured
sweep runs inside a transaction that is rolled back, so each iteration finds the same work. Each figure is
printed beside the same work in raw SQL (claim the due rows with SKIP LOCKED, mark them, write the events).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time

from bench.__main__ import _ensure_database, _p

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/tongdai_bench"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sweep")
    parser.add_argument("--closed", type=int, default=1_000_000)
    parser.add_argument("--open", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=1_000)
    parser.add_argument("--iterations", type=int, default=20)
    args = parser.parse_args()
    os.environ.setdefault("DATABASE_URL", DEFAULT_URL)
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tongdai.settings")
    _ensure_database(os.environ["DATABASE_URL"])
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.utils import timezone

    from tickets.models import Category, Ticket
    from tickets.sla import sla_sweep

    call_command("migrate", verbosity=0)
    call_command("load_organisation", verbosity=0)
    call_command("load_catalogue", verbosity=0)
    category = Category.objects.get(code="outage")
    policy = category.policies.first()
    from crm.models import Unit

    unit = Unit.objects.get(code="PE0100")
    now = timezone.now().replace(microsecond=0)
    total = args.closed + args.open
    if not Ticket.objects.filter(number__startswith="B").exists():
        started = time.monotonic()
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO tickets_ticket (number, caller_name, caller_phone, caller_address, category_id, policy_id,
                    channel, priority, description, unit_id, status, created_at, acknowledge_due, contact_due,
                    resolve_due, resolved_at, closed_at, acknowledge_breached, contact_breached, resolve_breached,
                    escalation_level, next_check_at)
                SELECT 'B' || lpad(i::text, 9, '0'), 'Khách ' || i, '', '', %(cat)s, %(pol)s, 'phone', 'normal',
                       'Mất điện', %(unit)s,
                       CASE WHEN i <= %(closed)s THEN 'closed' ELSE 'in_progress' END,
                       %(now)s - interval '1 day', %(now)s + interval '1 day', %(now)s + interval '1 day',
                       %(now)s + interval '2 days',
                       CASE WHEN i <= %(closed)s THEN %(now)s - interval '1 hour' END,
                       CASE WHEN i <= %(closed)s THEN %(now)s - interval '1 hour' END,
                       false, false, false, 0,
                       CASE WHEN i <= %(closed)s THEN NULL ELSE %(now)s + interval '1 day' END
                FROM generate_series(1, %(total)s) AS i
                """,
                {
                    "cat": category.pk,
                    "pol": policy.pk,
                    "unit": unit.pk,
                    "closed": args.closed,
                    "total": total,
                    "now": now,
                },
            )
            cursor.execute("ANALYZE tickets_ticket")
        print(f"made {total:,} tickets in {time.monotonic() - started:.1f}s")
    open_ids = list(
        Ticket.objects.filter(number__startswith="B", status="in_progress")
        .order_by("id")
        .values_list("id", flat=True)[: args.due]
    )
    print(
        f"{Ticket.objects.filter(number__startswith='B').count():,} tickets; {len(open_ids):,} made due for the second case\n"
    )

    def make_due(cursor):
        cursor.execute(
            "UPDATE tickets_ticket SET acknowledge_due = %s, next_check_at = %s WHERE id = ANY(%s)",
            [now - dt.timedelta(minutes=1), now - dt.timedelta(minutes=1), open_ids],
        )

    def orm_sweep(due: bool):
        with transaction.atomic():
            if due:
                with connection.cursor() as cursor:
                    make_due(cursor)
            started = time.perf_counter()
            result = sla_sweep(now=now)
            elapsed = (time.perf_counter() - started) * 1000
            transaction.set_rollback(True)
        return elapsed, result

    def raw_sweep(due: bool):
        with transaction.atomic(), connection.cursor() as cursor:
            if due:
                make_due(cursor)
            started = time.perf_counter()
            while True:
                cursor.execute(
                    "SELECT id FROM tickets_ticket WHERE next_check_at <= %s ORDER BY next_check_at, id "
                    "LIMIT 200 FOR UPDATE SKIP LOCKED",
                    [now],
                )
                ids = [r[0] for r in cursor.fetchall()]
                if ids:
                    cursor.execute(
                        "UPDATE tickets_ticket SET acknowledge_breached = true, first_breach_at = acknowledge_due, "
                        "escalation_level = 1, next_check_at = acknowledge_due + interval '30 minutes' "
                        "WHERE id = ANY(%s)",
                        [ids],
                    )
                    cursor.execute(
                        "INSERT INTO tickets_ticketevent (ticket_id, kind, at, before, after, note, level, cycle) "
                        "SELECT t.id, k, %s, '{}', '{}', '', l, t.cycle FROM tickets_ticket t, "
                        "(VALUES ('breach', NULL::int), ('escalated', 1)) AS v(k, l) WHERE t.id = ANY(%s::bigint[])",
                        [now, ids],
                    )
                if len(ids) < 200:
                    break
            elapsed = (time.perf_counter() - started) * 1000
            transaction.set_rollback(True)
        return elapsed

    rows = []
    for due in (False, True):
        iterations = args.iterations if not due else max(5, args.iterations // 4)
        orm = [orm_sweep(due) for _ in range(iterations)]
        results = {r["handled"] for _ms, r in orm}
        raw = [raw_sweep(due) for _ in range(iterations)]
        times = [ms for ms, _r in orm]
        rows.append(
            (
                f"sweep, {len(open_ids) if due else 0} due",
                _p(times, 0.5),
                _p(times, 0.95),
                _p(raw, 0.5),
                _p(raw, 0.95),
                results,
            )
        )
    print(f"{'measure':<20} {'p50 ms':>8} {'p95 ms':>8} {'raw p50':>8} {'raw p95':>8} {'ratio':>6}  handled")
    for name, p50, p95, r50, r95, handled in rows:
        print(
            f"{name:<20} {p50:8.2f} {p95:8.2f} {r50:8.2f} {r95:8.2f} {p95 / max(r95, 1e-6):6.1f}  {sorted(handled)}"
        )


if __name__ == "__main__":
    main()
