"""Benchmark of the agent's pages over HTTP as production serves them: gunicorn, DEBUG off, sessions.

    python -m bench.pages [--agents 20] [--seconds 30] [--workers 3] [--threads 4] [--warmup 5]
        [--only card,lookup,customers-by-unit,tickets-by-unit]

Uses DATABASE_URL when set, else the local ``tongdai_bench`` (it needs customers: ``python -m bench --customers
2600000`` first). ``--agents`` agents, each logged in with a session of their own (the benchmark's agent, who
serves every unit of EVNHCMC), keep one HTTP/1.1 keep-alive connection each and ask for a page, then wait a
random time of ``--think`` seconds on average (1 s: twenty agents ask about 20 pages a second, far more than
a desk whose agents open a card a call; ``--think 0``: back to back, which measures the machine's capacity
rather than what an agent waits), for ``--seconds`` per page after
``--warmup`` unmeasured seconds (the static files collected first, as a deployment does):

- ``card``: the customer card of a random customer (``/admin/customers/customer/<id>/card/``);
- ``lookup``: the caller lookup by one of their phone numbers (``/admin/customers/customer/lookup/?q=…``):
  with one customer matching, its answer is the redirect to their card (the card is measured on its own);
- ``customers-by-unit``, ``tickets-by-unit``: the changelists filtered by a random unit of the agent's.

It prints requests a second and p50/p95/p99 in milliseconds per page beside the target (p95: card and lookup
≤ 40 ms, changelists ≤ 50 ms), with the commit and date, and the p50/p95 of the time the same requests spent
inside Django (the served processes' request log): the difference is the wait for a free worker or thread and
the network. Every answer must be 200 (or the lookup's 302 to the card): any other status is counted and fails
the run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from math import nan
from pathlib import Path

from bench.__main__ import _ensure_database, _p, provenance
from bench.intake import DEFAULT_URL, _free_port, _wait_ready

ROOT = Path(__file__).resolve().parent.parent
TARGETS_MS = {"card": 40, "lookup": 40, "customers-by-unit": 50, "tickets-by-unit": 50}
PAGES = tuple(TARGETS_MS)


async def _get(reader, writer, path: str, cookie: str) -> tuple[int, str]:
    writer.write(
        (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\nAccept-Language: vi\r\n\r\n").encode()
    )
    await writer.drain()
    status_line = await reader.readline()
    status = int(status_line.split()[1])
    length, location, chunked = 0, "", False
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        name = name.lower()
        if name == "content-length":
            length = int(value)
        elif name == "location":
            location = value.strip()
        elif name == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    if chunked:
        while (size := int((await reader.readline()).strip() or b"0", 16)) > 0:
            await reader.readexactly(size + 2)
        await reader.readline()
    elif length:
        await reader.readexactly(length)
    return status, location


async def _agent(port, deadline, cookie, paths, latencies, statuses, think):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await asyncio.sleep(random.uniform(0, 2 * think))  # the agents do not all start at once
    try:
        while time.monotonic() < deadline:
            path = random.choice(paths)
            started = time.perf_counter()
            status, location = await _get(reader, writer, path, cookie)
            if status == 302 and "/card/" in location:  # a lookup with one match opens the card (measured
                status = 200  # on its own as ``card``)
            latencies.append((time.perf_counter() - started) * 1000)
            statuses[status] = statuses.get(status, 0) + 1
            if think:
                await asyncio.sleep(random.uniform(0, 2 * think))
    finally:
        writer.close()


def _load(port, cookies, paths, seconds, think):
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    deadline = time.monotonic() + seconds

    async def run():
        await asyncio.gather(
            *(_agent(port, deadline, c, paths, latencies, statuses, think) for c in cookies)
        )

    started = time.monotonic()
    asyncio.run(run())
    return latencies, statuses, time.monotonic() - started


def _durations_logged(request_log: Path, offset: int) -> list[float]:
    """The durations (ms) the served processes' request log recorded past ``offset``: the time each request
    spent inside Django, without the wait for a free worker or thread and the network."""
    with request_log.open() as lines:
        lines.seek(offset)
        return [float(line.split()[-1]) for line in lines if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pages", description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument(
        "--think", type=float, default=1.0,
        help="mean seconds an agent waits between two pages (0: back to back, the machine's capacity)",
    )  # fmt: skip
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--only", default=",".join(PAGES), help="comma-separated: " + ", ".join(PAGES))
    args = parser.parse_args()
    os.environ.setdefault("DATABASE_URL", DEFAULT_URL)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.intake_settings")  # the product on loopback HTTP
    os.environ.setdefault("SECRET_KEY", "bench-" + uuid.uuid4().hex)
    os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1,testserver")
    os.environ.setdefault("SESSION_COOKIE_SECURE", "0")
    os.environ.setdefault("CSRF_COOKIE_SECURE", "0")
    if not os.environ["DATABASE_URL"].startswith("postgres"):
        sys.exit("The benchmark runs on PostgreSQL: set DATABASE_URL=postgres://…")
    _ensure_database(os.environ["DATABASE_URL"])
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from crm.models import Role, Unit
    from crm.scoping import scope_for
    from crm.services import staff_create
    from customers.normalise import display_phone

    call_command("collectstatic", interactive=False, verbosity=0)  # as a deployment does (hashed names)
    agent = get_user_model().objects.filter(username="bench-agent").first()
    if agent is None:
        agent = staff_create(actor=None, username="bench-agent", password=uuid.uuid4().hex, role=Role.AGENT,
                             badge_number="BENCH-22",
                             units=list(Unit.objects.filter(company__corporation__code="EVNHCMC")))  # fmt: skip
    units = sorted(scope_for(agent).unit_ids)
    in_units = ", ".join(map(str, units))
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) > 200000 FROM (SELECT 1 FROM customers_customer LIMIT 200001) c")
        sampled = "TABLESAMPLE SYSTEM (1)" if cursor.fetchone()[0] else ""
        cursor.execute(
            f"SELECT c.id, p.number FROM customers_customer c {sampled} JOIN customers_customerphone p "
            f"ON p.customer_id = c.id WHERE c.unit_id IN ({in_units}) LIMIT 5000"
        )
        sample = cursor.fetchall()
    if not sample:
        sys.exit("No customers: run `python -m bench --customers 2600000` (or manage.py seed_demo) first.")
    cookies = []
    for _ in range(args.agents):
        client = Client()
        client.force_login(agent)
        cookies.append(f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}")
    paths = {
        "card": [f"/admin/customers/customer/{cid}/card/" for cid, _n in sample],
        "lookup": [f"/admin/customers/customer/lookup/?q={display_phone(n).replace(' ', '+')}" for _c, n in sample],
        "customers-by-unit": [f"/admin/customers/customer/?unit={u}" for u in units],
        "tickets-by-unit": [f"/admin/tickets/ticket/?unit={u}" for u in units],
    }
    connection.close()

    port = _free_port()
    gunicorn = [
        str(Path(sys.executable).with_name("gunicorn")), "tongdai.wsgi:application", "--bind", f"127.0.0.1:{port}",
        "--workers", str(args.workers), "--worker-class", "gthread", "--threads", str(args.threads),
        "--keep-alive", "30", "--log-level", "warning",
    ]  # fmt: skip
    request_log = Path(tempfile.mkdtemp(prefix="bench-pages-")) / "requests.log"
    request_log.touch()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BENCH_REQUEST_LOG": str(request_log)}
    server = subprocess.Popen(gunicorn, cwd=ROOT, env=env)
    rows, failed = [], False
    try:
        _wait_ready(port, server)
        for page in [p for p in args.only.split(",") if p]:
            _load(port, cookies, paths[page], args.warmup, args.think)
            logged_from = request_log.stat().st_size
            latencies, statuses, elapsed = _load(port, cookies, paths[page], args.seconds, args.think)
            inside = _durations_logged(request_log, logged_from)
            bad = {s: n for s, n in statuses.items() if s != 200}
            failed |= bool(bad) or not latencies
            in_django = (_p(inside, 0.5), _p(inside, 0.95)) if inside else (nan, nan)
            rows.append((page, len(latencies) / elapsed, _p(latencies, 0.5), _p(latencies, 0.95),
                         _p(latencies, 0.99), *in_django, bad))  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=30)
        request_log.unlink(missing_ok=True)
        request_log.parent.rmdir()
    print(
        f"\nMeasured at {provenance()}: {args.agents} agents "
        + (f"each asking a page every {args.think:g} s on average" if args.think else "back to back")
        + f", gunicorn {args.workers} workers × "
        f"{args.threads} threads, {args.seconds:g} s per page.\n"
    )
    print("| page | requests/s | p50 ms | p95 ms | p99 ms | in Django p50 | in Django p95 | target (p95) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for page, rate, p50, p95, p99, inside50, inside95, bad in rows:
        verdict = "met" if p95 <= TARGETS_MS[page] else "**missed**"
        print(f"| {page} | {rate:.0f} | {p50:.1f} | {p95:.1f} | {p99:.1f} | {inside50:.1f} | {inside95:.1f} | "
              f"≤ {TARGETS_MS[page]}: {verdict} |" + (f" statuses {bad}" if bad else ""))  # fmt: skip
    if failed:
        sys.exit("Some pages did not answer 200.")


if __name__ == "__main__":
    main()
