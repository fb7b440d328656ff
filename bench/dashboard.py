"""Benchmark of the managers' dashboard on PostgreSQL: a year of tickets of a 2.6M-customer utility.

    python -m bench.dashboard [--tickets 1000000] [--iterations 30] [--explain] [--index none|unit_created|created_unit]

Uses DATABASE_URL when set, else the local ``tongdai_bench`` (created if missing), which should already hold
the demo customers (``manage.py seed_demo --customers 2600000 --units PE``); it migrates and loads the
organisation and the catalogue.

Preparation (once; a rerun finds ticket ``D000000001`` and reuses the data). Set-based ``INSERT … SELECT``
over ``generate_series``, every draw a hash of the row number (``hashint8extended``), so the same data every
time, inserted in the order received (as a live table grows):

* ``--tickets`` tickets (default 1,000,000) over the 365 days before now, from customers sampled across the
  units that have customers; local hour of the day weighted as the call centre's day; channels and
  categories weighted as ``seed_demo_tickets`` does (phone 55 %, outage 34 %…); acknowledged within 3 minutes
  for 92 %, the unit's call within 4 minutes for 88 % of field categories, outages resolved within 2 hours
  for 75 %, other categories within their limit for 90 %; 4 % cancelled; resolved more than 2 days ago means
  closed; breach flags and escalation levels follow from the times; ``next_check_at`` is left empty so the
  SLA sweep benchmark sharing the database never sees them.
* one interaction per phone ticket (30 s – 10 min before the ticket), a callback for 40 % of the closed
  tickets (85 % surveyed with scores weighted 3/4/10/35/48 %, else unreachable), and 8,000 outage incidents
  (65 % restored within 2 hours). Marked ``bench-dashboard`` (their cause or note). Consumption bands, refunds
  and rebates are not made: they are small summary tables (bands) or written by the billing benchmark.

Measures (Django test Client, logged in as a manager of EVNHCMC holding ``crm.view_dashboard``, whole page,
``DEBUG`` off): the page for the current month (the default), for the whole previous month, for the previous
month and one unit, and for the last 365 days; each beside the same aggregates in raw SQL (the page's ten
statements, hand-written), p50/p95 over ``--iterations``, and the page's target p95 ≤ 500 ms. Then each
widget alone for the previous month. ``--index`` builds a candidate index on ``tickets_ticket`` before
measuring and drops it afterwards (the schema stays as the migrations define it); ``--explain`` prints the
plans of the ticket queries.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
import uuid

from bench.__main__ import _ensure_database, _p, _timed

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/tongdai_bench"
MARK = "bench-dashboard"
TARGET_MS = 500
# Candidate indexes (built before measuring, dropped after): the tickets' by the date received, with the
# callbacks' by completion beside each.
CALLBACK_INDEX = (
    "CREATE INDEX bench_dash_callbacks_idx ON tickets_callback (completed_at) WHERE completed_at IS NOT NULL"
)
INDEXES = {
    "none": [],
    "unit_created": [
        "CREATE INDEX bench_dash_tickets_idx ON tickets_ticket (unit_id, created_at)",
        CALLBACK_INDEX,
    ],
    "created_unit": [
        "CREATE INDEX bench_dash_tickets_idx ON tickets_ticket (created_at, unit_id)",
        CALLBACK_INDEX,
    ],
}
DROP_INDEXES = [
    "DROP INDEX IF EXISTS bench_dash_tickets_idx",
    "DROP INDEX IF EXISTS bench_dash_callbacks_idx",
]

_DRAW = "((hashint8extended(g.i, {k}) & 2147483647)::float8 / 2147483648)"
HOUR_WEIGHTS = [1, 1, 1, 1, 1, 2, 4, 7, 9, 9, 8, 7, 6, 7, 8, 8, 8, 7, 8, 8, 6, 4, 3, 2]
FIX_WEIGHTS = [3, 4, 10, 35, 48]  # % of surveyed callers giving 1…5
ATTITUDE_WEIGHTS = [2, 3, 8, 34, 53]
FIELD_CATEGORIES = ["outage", "meter", "new-lv", "new-lv-network", "new-mv", "contract-change-paid", "other"]

TICKETS_SQL = f"""
INSERT INTO tickets_ticket (number, caller_name, caller_phone, caller_address, channel, priority, description,
    status, created_at, acknowledge_due, contact_due, resolve_due, callback_due, acknowledged_at, contacted_at,
    resolved_at, closed_at, acknowledge_breached, contact_breached, resolve_breached, first_breach_at,
    escalation_level, next_check_at, category_id, customer_id, policy_id, unit_id)
SELECT 'D' || lpad((row_number() OVER (ORDER BY t.created_at, t.i))::text, 9, '0'), '', '', '', t.channel,
       'normal', 'Bench', t.status, t.created_at, t.ack_due, t.contact_due, t.resolve_due,
       CASE WHEN t.resolved_at IS NOT NULL THEN t.resolved_at + interval '24 hours' END,
       t.ack_at, t.contact_at, t.resolved_at, t.closed_at, t.ack_b, t.contact_b, t.resolve_b, t.first_b,
       CASE WHEN t.first_b IS NULL THEN 0
            WHEN COALESCE(t.resolved_at, %(now)s) >= t.first_b + interval '120 minutes' THEN 3
            WHEN COALESCE(t.resolved_at, %(now)s) >= t.first_b + interval '30 minutes' THEN 2 ELSE 1 END,
       NULL, t.category_id, t.customer_id, t.policy_id, t.unit_id
FROM (
    SELECT s.*,
           s.ack_due <= %(now)s AND (s.ack_at IS NULL OR s.ack_at > s.ack_due) AS ack_b,
           s.field AND s.contact_due <= %(now)s AND (s.contact_at IS NULL OR s.contact_at > s.contact_due) AS contact_b,
           s.status <> 'cancelled' AND s.resolve_due <= %(now)s
               AND (s.resolved_at IS NULL OR s.resolved_at > s.resolve_due) AS resolve_b,
           NULLIF(LEAST(
               CASE WHEN s.ack_due <= %(now)s AND (s.ack_at IS NULL OR s.ack_at > s.ack_due) THEN s.ack_due END,
               CASE WHEN s.field AND s.contact_due <= %(now)s AND (s.contact_at IS NULL OR s.contact_at > s.contact_due)
                    THEN s.contact_due END,
               CASE WHEN s.status <> 'cancelled' AND s.resolve_due <= %(now)s
                         AND (s.resolved_at IS NULL OR s.resolved_at > s.resolve_due) THEN s.resolve_due END,
               'infinity'::timestamptz), 'infinity'::timestamptz) AS first_b
    FROM (
        SELECT r.*,
               CASE WHEN r.ack_t <= %(now)s THEN r.ack_t END AS ack_at,
               CASE WHEN r.field AND r.contact_t <= %(now)s THEN r.contact_t END AS contact_at,
               CASE WHEN r.cancel THEN NULL WHEN r.resolve_t <= %(now)s THEN r.resolve_t END AS resolved_at,
               CASE WHEN NOT r.cancel AND r.resolve_t + interval '2 days' <= %(now)s
                    THEN r.resolve_t + interval '1 day' END AS closed_at,
               CASE WHEN r.cancel THEN 'cancelled'
                    WHEN r.resolve_t + interval '2 days' <= %(now)s THEN 'closed'
                    WHEN r.resolve_t <= %(now)s THEN 'resolved'
                    WHEN r.ack_t <= %(now)s THEN (ARRAY['acknowledged', 'dispatched', 'in_progress'])[1 + floor(r.u9 * 3)::int]
                    ELSE 'new' END AS status
        FROM (
            SELECT q.*,
                   q.created_at + interval '3 minutes' AS ack_due,
                   q.created_at + interval '4 minutes' AS contact_due,
                   q.created_at + q.allowed AS resolve_due,
                   q.created_at + CASE WHEN q.u4 < 0.92 THEN 0.3 + q.u5 * 2.6 ELSE 3.2 + q.u5 * 17 END
                       * interval '1 minute' AS ack_t,
                   q.created_at + CASE WHEN q.u6 < 0.88 THEN 1.2 + q.u5 * 2.7 ELSE 4.2 + q.u5 * 26 END
                       * interval '1 minute' AS contact_t,
                   q.created_at + CASE WHEN q.is_outage THEN
                           CASE WHEN q.u7 < 0.75 THEN 20 + q.u8 * 99 ELSE 121 + q.u8 * 240 END * interval '1 minute'
                       ELSE q.allowed * CASE WHEN q.u7 < 0.90 THEN 0.05 + q.u8 * 0.9 ELSE 1.01 + q.u8 * 0.5 END
                   END AS resolve_t,
                   q.u3 < 0.04 AS cancel
            FROM (
                SELECT g.i, c.id AS customer_id, c.unit_id, cat.id AS category_id, cat.policy_id, cat.allowed,
                       cat.is_outage, cat.field,
                       (%(channels)s::text[])[1 + floor({_DRAW.format(k=2)} * cardinality(%(channels)s::text[]))::int] AS channel,
                       LEAST(%(now)s - interval '1 minute',
                             ((%(today)s::date - floor({_DRAW.format(k=10)} * 365)::int)
                              + (%(hours)s::int[])[1 + floor({_DRAW.format(k=11)} * cardinality(%(hours)s::int[]))::int]
                                * interval '1 hour'
                              + {_DRAW.format(k=12)} * interval '1 hour') AT TIME ZONE 'Asia/Ho_Chi_Minh') AS created_at,
                       {_DRAW.format(k=3)} AS u3, {_DRAW.format(k=4)} AS u4, {_DRAW.format(k=5)} AS u5,
                       {_DRAW.format(k=6)} AS u6, {_DRAW.format(k=7)} AS u7, {_DRAW.format(k=8)} AS u8,
                       {_DRAW.format(k=9)} AS u9
                FROM generate_series(1, %(tickets)s) AS g(i)
                JOIN bench_dash_callers c ON c.n = 1 + floor({_DRAW.format(k=1)} * %(callers)s)::int
                JOIN bench_dash_categories cat
                  ON cat.n = 1 + floor({_DRAW.format(k=13)} * %(category_slots)s)::int
            ) q
        ) r
    ) s
) t
ORDER BY t.created_at, t.i
"""

INTERACTIONS_SQL = """
INSERT INTO tickets_interaction (unit_id, customer_id, ticket_id, agent_id, channel, caller_phone, started_at,
    ended_at, disposition, note)
SELECT t.unit_id, t.customer_id, t.id, %(agent)s, 'phone', '',
       t.created_at - (30 + (hashint8extended(t.id, 21) & 1023) %% 570) * interval '1 second', t.created_at,
       'ticket', %(mark)s
FROM tickets_ticket t
WHERE t.number LIKE 'D%%' AND t.channel = 'phone'
ORDER BY t.id
"""

CALLBACKS_SQL = """
INSERT INTO tickets_callback (ticket_id, attempts, outcome, fix_score, attitude_score, comment, agent_id,
    completed_at)
SELECT t.id, CASE WHEN d.u < 0.85 THEN 1 ELSE 3 END,
       CASE WHEN d.u < 0.85 THEN 'surveyed' ELSE 'unreachable' END,
       CASE WHEN d.u < 0.85 THEN (%(fix)s::int[])[1 + (hashint8extended(t.id, 32) & 1023) %% 100] END,
       CASE WHEN d.u < 0.85 THEN (%(attitude)s::int[])[1 + (hashint8extended(t.id, 33) & 1023) %% 100] END,
       %(mark)s, %(agent)s,
       LEAST(t.resolved_at + (hashint8extended(t.id, 34) & 1023) * interval '70 seconds', t.closed_at)
FROM tickets_ticket t
CROSS JOIN LATERAL (SELECT (hashint8extended(t.id, 31) & 2147483647)::float8 / 2147483648 AS u) d
WHERE t.number LIKE 'D%%' AND t.status = 'closed' AND (hashint8extended(t.id, 30) & 1023) < 410
ORDER BY t.id
"""

INCIDENTS_SQL = f"""
INSERT INTO tickets_incident (unit_id, wards, feeder_code, transformer_code, cause, started_at,
    estimated_restore_at, restored_at, created_by_id)
SELECT c.unit_id, '[]'::jsonb, '', '', %(mark)s, s.started_at, NULL,
       CASE WHEN s.restored_at <= %(now)s THEN s.restored_at END, NULL
FROM (
    SELECT g.i,
           %(now)s - {_DRAW.format(k=41)} * interval '365 days' AS started_at,
           %(now)s - {_DRAW.format(k=41)} * interval '365 days'
               + CASE WHEN {_DRAW.format(k=42)} < 0.65 THEN 15 + {_DRAW.format(k=43)} * 104
                      ELSE 120 + {_DRAW.format(k=43)} * 360 END * interval '1 minute' AS restored_at,
           1 + floor({_DRAW.format(k=44)} * %(callers)s)::int AS n
    FROM generate_series(1, %(incidents)s) AS g(i)
) s
JOIN bench_dash_callers c ON c.n = s.n
ORDER BY s.started_at
"""


def _slots(weights: list[int]) -> list[int]:
    """Scores 1…5, each repeated by its weight (100 in all): a draw picks one slot."""
    return [score for score, weight in enumerate(weights, start=1) for _ in range(weight)]


def _raw_statements(units: list[int], begin, stop, unit_id: int | None, everything: bool = False):
    """The page's ten aggregates, hand-written (same filters as the widgets of ``tickets.dashboard`` and
    ``billing.dashboard``); ``everything``: an administrator, whose ``units`` are all of them."""
    scope = f"unit_id IN ({', '.join(map(str, units))})" + (
        f" AND unit_id = {int(unit_id)}" if unit_id else ""
    )
    ticket_scope = scope.replace("unit_id", "t.unit_id")
    in_range = "created_at >= %(b)s AND created_at < %(s)s"
    sla = ", ".join(
        f"count(*) FILTER (WHERE {done} IS NOT NULL OR ({flag} AND status NOT IN ('cancelled', 'duplicate'))"
        f"{f' OR {missed} IS NOT NULL' if missed else ''}), "
        f"count(*) FILTER (WHERE {done} <= {due}{f' AND {missed} IS NULL' if missed else ''})"
        for done, due, flag, missed in (
            ("acknowledged_at", "acknowledge_due", "acknowledge_breached", ""),
            ("contacted_at", "contact_due", "contact_breached", "contact_missed_before"),
            ("resolved_at", "resolve_due", "resolve_breached", "resolve_missed_before"),
        )
    )
    open_statuses = "('new', 'acknowledged', 'dispatched', 'in_progress', 'pending_customer', 'reopened')"
    return [
        f"SELECT unit_id, channel, category_id, count(*), {sla} FROM tickets_ticket "
        f"WHERE {in_range} AND {scope} GROUP BY unit_id, channel, category_id",
        f"SELECT id, code, name FROM crm_unit WHERE {scope.replace('unit_id', 'id')}",
        "SELECT id, code, name FROM tickets_category",
        f"SELECT unit_id, count(*), count(*) FILTER (WHERE escalation_level > 0), "
        f"count(*) FILTER (WHERE acknowledge_breached), count(*) FILTER (WHERE contact_breached), "
        f"count(*) FILTER (WHERE resolve_breached), count(*) FILTER (WHERE escalation_level = 2), "
        f"count(*) FILTER (WHERE escalation_level = 3) FROM tickets_ticket "
        f"WHERE status IN {open_statuses} AND {scope} GROUP BY unit_id",
        f"SELECT channel, count(*), avg(ended_at - started_at) FROM tickets_interaction "
        f"WHERE started_at >= %(b)s AND started_at < %(s)s AND {scope} GROUP BY channel",
        "SELECT count(*) FILTER (WHERE outcome = 'surveyed'), count(*) FILTER (WHERE outcome = 'unreachable'), "
        "avg(fix_score), avg(attitude_score) FROM tickets_callback b "
        "WHERE b.completed_at >= %(b)s AND b.completed_at < %(s)s "
        + (
            ""
            if everything and not unit_id
            else f"AND (SELECT t.id FROM tickets_ticket t WHERE t.id = b.ticket_id AND {ticket_scope} LIMIT 1) IS NOT NULL"
        ),
        f"SELECT u.code, u.name, count(*), count(restored_at), "
        f"count(*) FILTER (WHERE restored_at <= started_at + interval '2 hours'), avg(restored_at - started_at) "
        f"FROM tickets_incident i JOIN crm_unit u ON u.id = i.unit_id "
        f"WHERE started_at >= %(b)s AND started_at < %(s)s AND called_off_at IS NULL "
        f"AND {scope.replace('unit_id', 'i.unit_id')} "
        f"GROUP BY u.code, u.name",
        f"SELECT count(DISTINCT period), sum(compared), sum(below_30), sum(from_30), sum(from_50), sum(from_100), "
        f"sum(from_300), sum(held) FROM billing_anomalybandcount "
        f"WHERE period >= %(pb)s AND period <= %(pe)s AND {scope}",
        f"SELECT count(*), sum(amount), count(settled_at), sum(amount) FILTER (WHERE settled_at IS NOT NULL) "
        f"FROM billing_refund WHERE {in_range} AND {scope}",
        f"SELECT p.name, count(*), sum(a.amount), sum(a.vat) FROM billing_rebateapplication a "
        f"JOIN billing_invoice v ON v.id = a.invoice_id JOIN billing_rebateprogramme p ON p.id = a.programme_id "
        f"WHERE a.applied_at >= %(b)s AND a.applied_at < %(s)s AND {scope.replace('unit_id', 'v.unit_id')} "
        f"GROUP BY p.name",
    ]


def _setup() -> None:
    os.environ.setdefault("DATABASE_URL", DEFAULT_URL)
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tongdai.settings")
    os.environ["ALLOWED_HOSTS"] = "testserver,127.0.0.1,localhost"
    # The administrator's pages are measured once signed in: the second factor is a login step, not the page's.
    os.environ["TONGDAI_ADMIN_2FA"] = "0"
    if not os.environ["DATABASE_URL"].startswith("postgres"):
        sys.exit("The benchmark runs on PostgreSQL: set DATABASE_URL=postgres://…")
    _ensure_database(os.environ["DATABASE_URL"])
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("load_organisation", verbosity=0)
    call_command("load_catalogue", verbosity=0)


def prepare(tickets: int, now: dt.datetime, agent_id: int) -> None:
    """Make the year of tickets, interactions, callbacks and incidents, once."""
    from django.db import connection, transaction
    from django.utils import timezone

    from tickets.management.commands.seed_demo_tickets import CATEGORY_WEIGHTS, CHANNEL_WEIGHTS
    from tickets.models import Category, Ticket

    if Ticket.objects.filter(number="D000000001").exists():
        print(
            f"reusing the dashboard data ({Ticket.objects.filter(number__startswith='D').count():,} tickets)"
        )
        return
    channels = [str(c) for c, w in CHANNEL_WEIGHTS for _ in range(w)]
    hours = [h for h, w in enumerate(HOUR_WEIGHTS) for _ in range(w)]
    slots = []
    for category in Category.objects.filter(code__in=CATEGORY_WEIGHTS).prefetch_related("policies"):
        policy = category.policies.order_by("valid_from").first()
        allowed = (
            dt.timedelta(minutes=policy.resolve_minutes)
            if policy.resolve_minutes
            else dt.timedelta(days=policy.resolve_working_days * 7 / 5)
        )
        row = (category.pk, policy.pk, allowed, category.is_outage, category.code in FIELD_CATEGORIES)
        slots += [row] * CATEGORY_WEIGHTS[category.code]
    started = time.monotonic()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE bench_dash_callers ON COMMIT DROP AS SELECT row_number() OVER (ORDER BY id) AS n, "
            "id, unit_id FROM customers_customer TABLESAMPLE SYSTEM (20) REPEATABLE (7)"
        )
        cursor.execute("CREATE UNIQUE INDEX ON bench_dash_callers (n)")
        cursor.execute("SELECT count(*) FROM bench_dash_callers")
        callers = cursor.fetchone()[0]
        if not callers:
            sys.exit("No customers: seed them first (manage.py seed_demo --customers 2600000 --units PE).")
        cursor.execute(
            "CREATE TEMP TABLE bench_dash_categories (n int PRIMARY KEY, id bigint, policy_id bigint, "
            "allowed interval, is_outage boolean, field boolean) ON COMMIT DROP"
        )
        cursor.executemany(
            "INSERT INTO bench_dash_categories VALUES (%s, %s, %s, %s, %s, %s)",
            [(n, *row) for n, row in enumerate(slots, start=1)],
        )
        params = {
            "now": now, "today": timezone.localdate(now), "tickets": tickets, "callers": callers,
            "channels": channels, "hours": hours, "category_slots": len(slots), "agent": agent_id, "mark": MARK,
            "incidents": 8000, "fix": _slots(FIX_WEIGHTS), "attitude": _slots(ATTITUDE_WEIGHTS),
        }  # fmt: skip
        for name, sql in (
            ("tickets", TICKETS_SQL),
            ("interactions", INTERACTIONS_SQL),
            ("callbacks", CALLBACKS_SQL),
            ("incidents", INCIDENTS_SQL),
        ):
            step = time.monotonic()
            cursor.execute(sql, params)
            print(f"made {cursor.rowcount:,} {name} in {time.monotonic() - step:.1f}s")
    with connection.cursor() as cursor:
        for table in ("tickets_ticket", "tickets_interaction", "tickets_callback", "tickets_incident"):
            cursor.execute(f"VACUUM ANALYZE {table}")
    print(f"(prepared in {time.monotonic() - started:.1f}s, vacuum and analyze included)\n")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--explain", action="store_true", help="print the plans of the ticket queries")
    parser.add_argument(
        "--index", choices=sorted(INDEXES), default="none", help="a candidate index, dropped after"
    )
    args = parser.parse_args()
    _setup()

    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission
    from django.db import connection
    from django.utils import timezone

    from crm.models import Role, Unit
    from crm.scoping import scope_for
    from crm.services import staff_create

    now = timezone.now().replace(microsecond=0)
    users = get_user_model().objects
    agent, _created = users.get_or_create(username="bench-dashboard-agent")
    prepare(args.tickets, now, agent.pk)
    manager = users.filter(username="bench-dashboard-manager").first()
    if manager is None:
        manager = staff_create(
            actor=None,
            username="bench-dashboard-manager", password=uuid.uuid4().hex, role=Role.MANAGER,
            badge_number="BENCH-DASH-M", units=[Unit.objects.get(code="PE0100")],
        )  # fmt: skip
    administrator = users.filter(username="bench-dashboard-admin").first()
    if administrator is None:
        administrator = staff_create(
            actor=None,
            username="bench-dashboard-admin", password=uuid.uuid4().hex, role=Role.ADMINISTRATOR,
            badge_number="BENCH-DASH-A",
        )  # fmt: skip
    permission = Permission.objects.get(content_type__app_label="crm", codename="view_dashboard")
    manager.user_permissions.add(permission)  # what crm.roles will grant managers
    administrator.user_permissions.add(permission)
    units = sorted(scope_for(manager).unit_ids)
    busiest = (
        Unit.objects.filter(pk__in=units, tickets__number="D000000001").values_list("pk", flat=True).first()
        or units[0]
    )

    if INDEXES[args.index]:
        with connection.cursor() as cursor:
            for sql in DROP_INDEXES:
                cursor.execute(sql)
            for sql in INDEXES[args.index]:
                started = time.monotonic()
                cursor.execute(sql)
                print(f"candidate index built in {time.monotonic() - started:.1f}s: {sql}")
            cursor.execute("ANALYZE tickets_ticket")
            cursor.execute("ANALYZE tickets_callback")
    try:
        _measure(args, manager, administrator, units, busiest, now)
    finally:
        if INDEXES[args.index]:
            with connection.cursor() as cursor:
                for sql in DROP_INDEXES:
                    cursor.execute(sql)


def _measure(args, manager, administrator, units: list[int], busiest: int, now: dt.datetime) -> None:
    from django.db import connection
    from django.db.models import Count
    from django.test import Client
    from django.test.utils import override_settings
    from django.utils import timezone

    from crm.dashboard_widgets import window
    from crm.models import Unit
    from reports import dashboard
    from tickets import dashboard as ticket_widgets
    from tickets.models import Ticket

    today = timezone.localdate(now)
    this_month = dashboard.month_bounds(today)
    last_month = dashboard.month_bounds(this_month[0] - dt.timedelta(days=1))
    year = (today - dt.timedelta(days=364), today)
    last = {"start": last_month[0], "end": last_month[1]}
    cases = [  # name, user, their units (None: all), period, unit, query string
        ("page, this month (default)", manager, units, this_month, None, {}),
        ("page, last month", manager, units, last_month, None, last),
        ("page, last month, 1 unit", manager, units, last_month, busiest, {**last, "unit": busiest}),
        ("page, last month, admin", administrator, None, last_month, None, last),
        ("page, last 365 days", manager, units, year, None, {"start": year[0], "end": year[1]}),
    ]  # fmt: skip
    total = Ticket.objects.count()
    print(
        f"{total:,} tickets in the database; the manager sees {len(units)} units; "
        f"{Ticket.objects.for_user(manager).filter(created_at__gte=window(*last_month)[0], created_at__lt=window(*last_month)[1]).count():,} "
        f"tickets received last month in their scope.\n"
    )  # fmt: skip
    clients = {}
    for user in (manager, administrator):
        clients[user.pk] = Client()
        clients[user.pk].force_login(user)
    rows = []

    every_unit = sorted(Unit.objects.values_list("pk", flat=True))

    def raw_all(scope_units, period, unit_id):
        begin, stop = window(*period)
        params = {"b": begin, "s": stop, "pb": period[0].replace(day=1), "pe": period[1]}
        everything = scope_units is None
        with connection.cursor() as cursor:
            for sql in _raw_statements(
                every_unit if everything else scope_units, begin, stop, unit_id, everything
            ):
                cursor.execute(sql, params)
                cursor.fetchall()

    with override_settings(DEBUG=False, WHITENOISE_AUTOREFRESH=True):
        for name, user, scope_units, period, unit_id, query in cases:
            params = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in query.items()}
            client = clients[user.pk]

            def page(_i, params=params, client=client):
                response = client.get("/admin/dashboard/", params)
                assert response.status_code == 200, response.status_code

            iterations = args.iterations if "365" not in name else max(5, args.iterations // 5)
            statements = []
            with connection.execute_wrapper(
                lambda execute, sql, *rest, seen=statements: seen.append(sql) or execute(sql, *rest)
            ):
                page(0)
            orm = _timed(page, iterations, warmup=2)
            sql = _timed(
                lambda _i, s=scope_units, p=period, u=unit_id: raw_all(s, p, u), iterations, warmup=2
            )
            rows.append((name, len(statements), _p(orm, 0.5), _p(orm, 0.95), _p(sql, 0.5), _p(sql, 0.95)))

    print(f"{'measure':<30} {'queries':>7} {'p50 ms':>8} {'p95 ms':>8} {'raw p50':>8} {'raw p95':>8} {'ratio':>6} {'target':>9}")  # fmt: skip
    for name, count, p50, p95, r50, r95 in rows:
        verdict = f"≤{TARGET_MS} {'ok' if p95 <= TARGET_MS else 'MISS'}" if "365" not in name else "(info)"
        print(f"{name:<30} {count:>7} {p50:8.1f} {p95:8.1f} {r50:8.1f} {r95:8.1f} {p95 / max(r95, 1e-6):6.1f} {verdict:>9}")  # fmt: skip

    print(f"\nEach widget alone, last month ({args.iterations} iterations, ms):")
    print(f"{'widget':<30} {'p50':>8} {'p95':>8}")
    for widget in dashboard.WIDGETS:

        def one(_i, widget=widget):
            dashboard.Dashboard(manager, *last_month).data(widget)

        samples = _timed(one, args.iterations, warmup=1)
        print(f"{widget.key:<30} {_p(samples, 0.5):8.1f} {_p(samples, 0.95):8.1f}")

    if args.explain:
        board = dashboard.Dashboard(manager, *last_month)
        for label, queryset in (
            (
                "tickets per (unit, channel, category)",
                ticket_widgets.received(board)
                .values("unit_id", "channel", "category_id")
                .annotate(count=Count("id"), **ticket_widgets.sla_aggregates())
                .order_by(),
            ),
            ("open breaches", Ticket.objects.for_user(manager).open().values("unit_id").annotate(n=Count("id")).order_by()),
            ("satisfaction", ticket_widgets.completed_callbacks(board).values("outcome").annotate(n=Count("id")).order_by()),
        ):  # fmt: skip
            sql, params = queryset.query.sql_with_params()
            with connection.cursor() as cursor:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
                print(f"\nPlan of the {label} query, last month:")
                for (line,) in cursor.fetchall():
                    print("  " + line)


if __name__ == "__main__":
    main()
