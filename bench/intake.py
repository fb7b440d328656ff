"""Benchmark of ticket intake through the API under gunicorn, beside a bare Django view inserting the same row.

    python -m bench.intake [--clients 120] [--seconds 60] [--workers 3] [--threads 4] [--rate 0] [--warmup 5]
        [--history 300000]

Uses DATABASE_URL when set, else the local ``tongdai_bench`` (it needs customers: ``python -m bench`` or
``seed_demo`` first). gunicorn serves ``bench.intake_settings`` on loopback; ``--clients`` connections (HTTP/1.1
keep-alive, one request in flight each) post for ``--seconds`` against the bare view, then against
``POST /api/v1/tickets/`` with a token, an Idempotency-Key per request and a random customer. With ``--rate``
> 0 the clients are paced to that many requests a second in all (an offered load) instead of sending back to
back. Each phase starts with a CHECKPOINT and ``--warmup`` seconds of unmeasured load from all the clients, and
prints its throughput and latency per 10 seconds beside the totals, and where its CPU went (Linux): milliseconds
a ticket in gunicorn, in PostgreSQL's processes on this host and in the load generator, with how busy the
machine was and how much of its time the hypervisor took. Afterwards it checks that every 201 is a ticket in
the database, exactly once, with its event and the dispatcher's outbox message, then deletes what the run
created and vacuums those tables. The tickets table holds ``--history`` closed tickets (made on the first
run and kept), as a live centre's would, and is analysed before the run.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from bench.__main__ import _ensure_database, _p

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/tongdai_bench"
ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _client(port, deadline, make, interval, latencies, errors, statuses):
    reader = writer = None
    next_at = time.monotonic() + (random.random() * interval if interval else 0)
    while True:
        if interval:
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            next_at += interval
        if time.monotonic() >= deadline:
            break
        payload = make()
        started = time.perf_counter()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(payload)
            await writer.drain()
            # The status line and headers in one read (the load generator's own CPU is taken from the server's).
            head = await reader.readuntil(b"\r\n\r\n")
            status_line, *lines = head.decode("latin-1").split("\r\n")
            status = int(status_line.split()[1])
            length, close = 0, False
            for line in lines:
                name, _sep, value = line.partition(":")
                name = name.lower()
                if name == "content-length":
                    length = int(value)
                elif name == "connection" and value.strip().lower() == "close":
                    close = True
            body = await reader.readexactly(length) if length else b""
            finished = time.perf_counter()
            latencies.append(finished - started)
            make.finished.append(finished)
            statuses[status] = statuses.get(status, 0) + 1
            if status >= 400:
                errors.append(f"{status} {body[:200]!r}")
            elif status == 201:
                make.created.append(json.loads(body)["id"])
            if close:
                writer.close()
                writer = None
        except (OSError, ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError,
                IndexError) as exc:  # fmt: skip
            errors.append(repr(exc))
            if writer is not None:
                writer.close()
            writer = None
    if writer is not None:
        writer.close()


class Maker:
    """Builds one raw HTTP request per call: a random customer, a fresh Idempotency-Key."""

    def __init__(self, path, token, codes, prefix):
        self.path, self.token, self.codes, self.prefix = path, token, codes, prefix
        self.created: list[int] = []
        self.finished: list[float] = []  # when each answer arrived, beside ``latencies``

    def __call__(self) -> bytes:
        body = json.dumps(
            {"category": "outage", "channel": random.choice(["app", "website", "zalo", "sms"]),
             "description": "Mất điện cả khu phố từ 14h", "customer_code": random.choice(self.codes)}
        ).encode()  # fmt: skip
        headers = [
            f"POST {self.path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json",
            f"Content-Length: {len(body)}", f"Idempotency-Key: {self.prefix}{uuid.uuid4().hex}",
        ]  # fmt: skip
        if self.token:
            headers.append(f"Authorization: Token {self.token}")
        return ("\r\n".join(headers) + "\r\n\r\n").encode() + body


def _load(port, maker, clients, seconds, rate):
    latencies, errors, statuses = [], [], {}
    interval = clients / rate if rate else 0
    deadline = time.monotonic() + seconds

    async def run():
        await asyncio.gather(
            *(_client(port, deadline, maker, interval, latencies, errors, statuses) for _ in range(clients))
        )

    started = time.monotonic()
    asyncio.run(run())
    elapsed = time.monotonic() - started
    return latencies, errors, statuses, elapsed


def _wait_ready(port, proc, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit("gunicorn stopped before serving")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    sys.exit("gunicorn did not start")


_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _process_seconds(server_pid: int) -> dict[int, tuple[str, float]]:
    """Each gunicorn (master and workers) and PostgreSQL process on this host: its kind and CPU seconds so far."""
    seen = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                head, _sep, rest = f.read().rpartition(")")
        except OSError:
            continue
        fields = rest.split()
        pid, comm, ppid = int(entry.name), head.partition("(")[2], int(fields[1])
        if pid == server_pid or ppid == server_pid:
            kind = "gunicorn"
        elif comm == "postgres" or comm.startswith("postgres:"):
            kind = "postgres"
        else:
            continue
        seen[pid] = (kind, (int(fields[11]) + int(fields[12])) / _HZ)
    return seen


class CpuMeter:
    """CPU seconds a phase used in gunicorn, PostgreSQL's processes on this host and this load generator, and the
    machine's busy and stolen seconds (Linux /proc). Processes are sampled every second from a thread, so a
    server connection closed and reopened during the phase (a new PostgreSQL backend) is counted too."""

    def __init__(self, server_pid: int):
        self.server_pid = server_pid
        self.enabled = os.path.exists("/proc/stat")
        self.used = {"gunicorn": 0.0, "postgres": 0.0}
        self._stop = threading.Event()

    def _sample(self):
        now = _process_seconds(self.server_pid)
        for pid, (kind, seconds) in now.items():
            self.used[kind] += seconds - self._last.get(pid, (kind, 0.0))[1]
        self._last = now

    def _machine(self):
        with open("/proc/stat") as f:
            cpu = [int(x) for x in f.readline().split()[1:]]
        return (cpu[3] + cpu[4]) / _HZ, cpu[7] / _HZ, sum(cpu[:8]) / _HZ

    def __enter__(self):
        if self.enabled:
            self._last = _process_seconds(self.server_pid)
            self._client, self._start = time.process_time(), self._machine()
            self.ticks = [self._tick()]  # the counters each second
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(1.0):
            self._sample()
            self.ticks.append(self._tick())

    def _tick(self):
        return (
            time.perf_counter(),
            *self._machine(),
            self.used["gunicorn"],
            self.used["postgres"],
            time.process_time(),
        )

    def between(self, t0: float, t1: float) -> str:
        """The CPU that gunicorn, PostgreSQL, the load generator and the rest of the host used between two
        ``perf_counter`` times, and the time stolen, each in % of one core."""
        if not self.enabled or len(self.ticks) < 2:
            return ""
        a = min(self.ticks, key=lambda tick: abs(tick[0] - t0))
        b = min(self.ticks, key=lambda tick: abs(tick[0] - t1))
        wall = b[0] - a[0]
        if wall <= 0:
            return ""
        idle, steal, total, gunicorn, postgres, client = (
            (y - x) / wall * 100 for x, y in zip(a[1:], b[1:], strict=True)
        )
        others = total - idle - gunicorn - postgres - client
        return (
            f" · CPU % of a core: gunicorn {gunicorn:.0f}, PostgreSQL {postgres:.0f}, load generator {client:.0f},"
            f" the rest {others:.0f}, stolen {steal:.0f}"
        )

    def __exit__(self, *exc):
        if self.enabled:
            self._stop.set()
            self._thread.join()
            self._sample()
            self.used["client"] = time.process_time() - self._client
            idle, steal, total = (b - a for a, b in zip(self._start, self._machine(), strict=True))
            self.used.update(busy=total - idle, steal=steal)
        return False

    def line(self, tickets: int, elapsed: float) -> str:
        """Where the phase's CPU went, per ticket, and how busy the machine was: the figures that tell a slow
        host (more CPU a ticket, time stolen by the hypervisor) from a slow program."""
        if not self.enabled or not tickets or "busy" not in self.used:
            return ""
        per = {k: self.used[k] / tickets * 1000 for k in ("gunicorn", "postgres", "client")}
        return (
            f"CPU a ticket: gunicorn {per['gunicorn']:.2f} ms, PostgreSQL {per['postgres']:.2f} ms, load "
            f"generator {per['client']:.2f} ms; machine busy {self.used['busy'] / elapsed * 100:.0f}% of "
            f"{(os.cpu_count() or 1) * 100}%, stolen {self.used['steal'] / elapsed * 100:.1f}%"
        )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.intake", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=120)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--worker-class", default="gthread", choices=["gthread", "sync"])
    parser.add_argument("--worker-connections", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=0, help="offered requests/s in all (0: back to back)")
    parser.add_argument("--only", choices=["bare", "api"], default=None)
    parser.add_argument(
        "--warmup", type=float, default=5, help="seconds of unmeasured load before each phase"
    )
    parser.add_argument(
        "--history", type=int, default=300_000, help="closed tickets the table holds before the run"
    )
    args = parser.parse_args()
    os.environ.setdefault("DATABASE_URL", DEFAULT_URL)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.intake_settings")
    os.environ.setdefault("SECRET_KEY", "bench-" + uuid.uuid4().hex)
    os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1")
    if not os.environ["DATABASE_URL"].startswith("postgres"):
        sys.exit("The benchmark runs on PostgreSQL: set DATABASE_URL=postgres://…")
    _ensure_database(os.environ["DATABASE_URL"])
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    from crm.models import OutboxMessage, Role, Unit
    from crm.services import staff_create
    from crm.tokens import api_token_create
    from customers.models import Customer
    from tickets.models import Category, Ticket, TicketEvent

    call_command("migrate", verbosity=0)
    call_command("load_organisation", verbosity=0)
    call_command("load_catalogue", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) > 200000 FROM (SELECT 1 FROM customers_customer LIMIT 200001) c")
        sampled = "TABLESAMPLE SYSTEM (1)" if cursor.fetchone()[0] else ""  # a small table is read whole
        cursor.execute(f"SELECT code, unit_id FROM customers_customer {sampled} LIMIT 20000")
        rows = cursor.fetchall()
    if not rows:
        rows = list(Customer.objects.values_list("code", "unit_id")[:20000])
    if not rows:
        sys.exit("No customers: run `python -m bench` (or manage.py seed_demo) first.")
    codes = [code for code, _unit in rows]
    with connection.cursor() as cursor:  # both phases start with the sampled customers in the cache
        cursor.execute(
            "SELECT count(p.number) FROM customers_customer c LEFT JOIN customers_customerphone p "
            "ON p.customer_id = c.id WHERE c.code = ANY(%s)",
            [codes],
        )
    units = list(Unit.objects.filter(pk__in={unit for _c, unit in rows}))
    User = get_user_model()
    agent = User.objects.filter(username="bench-agent").first()
    if agent is None:
        agent = staff_create(actor=None, username="bench-agent", password=uuid.uuid4().hex, role=Role.AGENT,
                             units=units, badge_number="BENCH-A")  # fmt: skip
    if not User.objects.filter(username="bench-dispatcher").exists():
        staff_create(actor=None, username="bench-dispatcher", password=uuid.uuid4().hex, role=Role.DISPATCHER,
                     units=units, badge_number="BENCH-D", phone="0903000999")  # fmt: skip
    agent.staff_profile.units.add(*units)
    _token, secret = api_token_create(actor=None, user=agent, name="intake benchmark", days=1)
    category = Category.objects.get(code="outage")
    os.environ["BENCH_CATEGORY"] = str(category.pk)
    os.environ["BENCH_POLICY"] = str(category.policies.order_by("-valid_from").first().pk)
    with connection.cursor() as cursor:
        cursor.execute("CREATE SEQUENCE IF NOT EXISTS bench_bare_number")
    _ensure_history(args.history, category)
    connection.close()

    port = _free_port()
    gunicorn = [
        str(Path(sys.executable).with_name("gunicorn")), "tongdai.wsgi:application", "--bind",
        f"127.0.0.1:{port}", "--workers", str(args.workers), "--worker-class", args.worker_class, "--threads",
        str(args.threads), "--backlog", "2048", "--keep-alive", "5",
        "--worker-connections", str(args.worker_connections), "--log-level", "warning",
    ]  # fmt: skip
    parser_name = "C HTTP parser" if importlib.util.find_spec("gunicorn_h1c") else "Python HTTP parser"
    print(
        f"gunicorn ({parser_name}): {args.workers} workers × {args.threads} threads; {args.clients} clients for "
        f"{args.seconds:g} s"
        + (f", paced to {args.rate:g} req/s" if args.rate else ", back to back")
        + f"; {len(codes):,} customers sampled"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen(gunicorn, cwd=ROOT, env=env)
    results = {}
    prefix = f"bench-{uuid.uuid4().hex[:8]}-"
    try:
        _wait_ready(port, server)
        phases = [("bare", "/bench/bare-ticket/", ""), ("api", "/api/v1/tickets/", secret)]
        for name, path, key in phases:
            if args.only and name != args.only:
                continue
            _checkpoint()  # a checkpoint's writes start before the phase, not inside it
            # Warm-up at full concurrency: every thread opens its database session and reads
            # the catalogue it needs before the measured seconds.
            _load(port, Maker(path, key, codes, prefix + "warm-"), args.clients, args.warmup, 0)
            maker = Maker(path, key, codes, prefix + name + "-")
            with CpuMeter(server.pid) as meter:
                latencies, errors, statuses, elapsed = _load(
                    port, maker, args.clients, args.seconds, args.rate
                )
            results[name] = (latencies, errors, statuses, elapsed, maker, meter)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)

    print(f"{'':28}{'requests':>10}{'tickets/s':>11}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'errors':>8}")
    for name, (latencies, errors, statuses, elapsed, maker, _meter) in results.items():
        label = {"bare": "bare Django view (1 INSERT)", "api": "API intake (full service)"}[name]
        ms = sorted(x * 1000 for x in latencies)
        print(f"{label:28}{len(ms):>10,}{len(maker.created) / elapsed:>11.1f}{_p(ms, 0.50):>9.1f}"
              f"{_p(ms, 0.95):>9.1f}{_p(ms, 0.99):>9.1f}{len(errors):>8}")  # fmt: skip
        if errors:
            print("   first errors:", errors[:3], "statuses:", statuses)
    for name, (latencies, _errors, _statuses, elapsed, maker, meter) in results.items():
        _timeline(name, latencies, maker.finished, args.seconds, meter)
        if cpu := meter.line(len(latencies), elapsed):
            print(f"   {name} {cpu}")
    if len(results) == 2:
        bare, api = (len(results[n][4].created) / results[n][3] for n in ("bare", "api"))
        print(f"throughput ratio API/bare: {api / bare:.2f}")

    # Nothing lost, nothing doubled: every 201 is exactly one ticket with its event and the dispatcher's message.
    if "api" in results:
        created = results["api"][4].created
        tickets = Ticket.objects.filter(intake_key__key__startswith=prefix + "api-")
        in_db = set(tickets.values_list("id", flat=True))
        events = TicketEvent.objects.filter(ticket__in=in_db, kind="created").count()
        dispatchers = _dispatcher_profiles(units)
        keys = [f"ticket:{pk}:routed:{p}" for pk in in_db for p in dispatchers]
        messages = sum(
            OutboxMessage.objects.filter(dedupe_key__in=keys[i : i + 5000]).count()
            for i in range(0, len(keys), 5000)
        )
        print(
            f"check: {len(created):,} answered 201, {len(in_db):,} tickets in the database, "
            f"{len(set(created)):,} distinct, {events:,} creation events, {messages:,} dispatcher messages"
        )
        if (
            set(created) != in_db
            or len(created) != len(set(created))
            or events != len(in_db)
            or messages != len(keys)
        ):
            print("MISMATCH: a ticket was lost or doubled")
    _cleanup(prefix)


HISTORY = """
INSERT INTO tickets_ticket (number, caller_name, caller_phone, caller_address, category_id, policy_id, channel,
    priority, description, unit_id, status, created_at, acknowledge_due, contact_due, resolve_due, resolved_at,
    closed_at, acknowledge_breached, contact_breached, resolve_breached, escalation_level, customer_id)
SELECT 'H' || lpad((%(start)s + row_number() OVER ())::text, 9, '0'), '', '', '', %(category)s, %(policy)s,
    'phone', 'normal', 'Mất điện', c.unit_id, 'closed', t, t, t, t + interval '2 hours', t + interval '1 hour',
    t + interval '1 day', false, false, false, 0, c.id
FROM (SELECT id, unit_id, now() - random() * interval '365 days' AS t FROM customers_customer
      ORDER BY random() LIMIT %(count)s) c
"""


def _ensure_history(count: int, category) -> None:
    """A live centre's ticket table holds years of closed tickets: the run inserts among ``count`` of them (made
    once, kept between runs), and the planner's statistics say so. Against an empty, freshly vacuumed table the
    statements the intake prepares would be planned for an empty table (a sequential scan looking for the
    customer's open tickets) and slow down as the run fills it."""
    from django.db import connection

    from tickets.models import Ticket

    have = Ticket.objects.filter(number__startswith="H").count()
    if have < count:
        started = time.monotonic()
        policy = category.policies.order_by("-valid_from").first()
        with connection.cursor() as cursor:
            cursor.execute(
                HISTORY,
                {"start": have, "count": count - have, "category": category.pk, "policy": policy.pk},
            )
        print(f"made {count - have:,} closed tickets of history in {time.monotonic() - started:.1f}s")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE tickets_ticket, tickets_ticketevent, crm_outboxmessage")


def _checkpoint() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("CHECKPOINT")
    connection.close()


def _timeline(name, latencies, finished, seconds, meter=None, step=10.0):
    """Throughput and latency per ``step`` seconds of a phase, with how busy the machine was and the time stolen
    from it (``meter``): a slow start or a stall shows apart, and whether the host slowed with it."""
    if not finished:
        return
    start = min(f - lat for f, lat in zip(finished, latencies, strict=True))
    windows: dict[int, list[float]] = {}
    # Answers after the end (requests still in flight when the phase stopped) join the last window.
    last = max(0, int(seconds // step) - 1)
    for f, lat in zip(finished, latencies, strict=True):
        windows.setdefault(min(int((f - start) // step), last), []).append(lat * 1000)
    cells = [
        f"{i * step:g}–{(i + 1) * step:g}s {len(ms) / step:.0f}/s p50 {_p(ms, 0.5):.0f} p95 {_p(ms, 0.95):.0f}"
        + (meter.between(start + i * step, start + (i + 1) * step) if meter else "")
        for i, ms in sorted(windows.items())
    ]
    print(f"   {name} by {step:g} s:\n      " + "\n      ".join(cells))


def _dispatcher_profiles(units):
    from crm.models import Role, StaffProfile

    return list(
        StaffProfile.objects.filter(role=Role.DISPATCHER, units__in=units)
        .values_list("pk", flat=True)
        .distinct()
    )


def _cleanup(prefix: str) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            'CREATE TEMP TABLE bench_gone AS SELECT ticket_id AS id FROM tickets_intakekey WHERE "key" LIKE %s '
            "AND ticket_id IS NOT NULL UNION SELECT id FROM tickets_ticket WHERE number LIKE 'X%%'",
            [prefix + "%"],
        )
        cursor.execute('DELETE FROM tickets_intakekey WHERE "key" LIKE %s', [prefix + "%"])
        cursor.execute("DELETE FROM tickets_ticketevent WHERE ticket_id IN (SELECT id FROM bench_gone)")
        cursor.execute(
            "DELETE FROM crm_outboxmessage WHERE dedupe_key LIKE 'ticket:%%' AND "
            "split_part(dedupe_key, ':', 2)::bigint IN (SELECT id FROM bench_gone)"
        )
        cursor.execute("DELETE FROM tickets_ticket WHERE id IN (SELECT id FROM bench_gone)")
        cursor.execute("DELETE FROM django_q_ormq")
        cursor.execute("DROP TABLE bench_gone")
        # What autovacuum would do after such a delete (a server may run with it off): the next run then
        # inserts into reusable pages, not past every earlier run's dead rows.
        cursor.execute("VACUUM ANALYZE tickets_ticket, tickets_ticketevent, tickets_intakekey, crm_outboxmessage, django_q_ormq")


if __name__ == "__main__":
    main()
