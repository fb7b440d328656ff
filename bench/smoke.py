"""Smoke run of every benchmark at a small seed, as CI runs it: each must finish and print its figures, so the
benchmarks keep working as the code changes; the agent's reads also check their budgets (``--check``: the
card's queries, and its time as a ratio to the raw SQL of the same run, so a slow machine does not fail it).

    python -m bench.smoke [--keep]

Runs on a scratch database ``tongdai_bench_smoke`` on the PostgreSQL server of DATABASE_URL (else the local
one), made afresh and dropped afterwards unless ``--keep``. The figures of such a small seed mean nothing:
the benchmarks' own commands (``bench/README.md``) give the real ones.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

SERVER = "postgres://postgres@127.0.0.1:5432"
NAME = "tongdai_bench_smoke"

STEPS = [
    ("the agent's reads", ["bench", "--customers", "2000", "--iterations", "20", "--check"]),
    ("the SLA sweep", ["bench.sweep", "--closed", "5000", "--open", "500", "--due", "50", "--iterations", "3"]),
    ("the dashboard", ["bench.dashboard", "--tickets", "5000", "--iterations", "3"]),
    ("billing", ["bench.billing"]),
    ("exports", ["bench.export", "--rows", "1000", "--format", "both"]),
    ("exports beside COPY", ["bench.exports", "--rows", "1000"]),
    ("a readings file", ["bench.import_readings", "--rows", "1000"]),
    ("intake", ["bench.intake", "--clients", "4", "--seconds", "3", "--warmup", "1", "--workers", "1",
                "--threads", "2", "--history", "0"]),
    ("the agent's pages over HTTP", ["bench.pages", "--agents", "2", "--seconds", "2", "--warmup", "1",
                                     "--workers", "1", "--threads", "2"]),
]  # fmt: skip
TIMEOUT = 600  # seconds a step may take


def _server(url: str | None) -> str:
    if not url or not url.startswith("postgres"):
        return SERVER
    return url.rsplit("/", 1)[0]


def _admin(server: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(server + "/postgres", autocommit=True) as conn:
        conn.execute(sql)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.smoke", description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()
    server = _server(os.environ.get("DATABASE_URL"))
    _admin(server, f'DROP DATABASE IF EXISTS "{NAME}" WITH (FORCE)')
    _admin(server, f'CREATE DATABASE "{NAME}"')
    env = {**os.environ, "DATABASE_URL": f"{server}/{NAME}", "LOG_LEVEL": "WARNING"}
    failed = []
    try:
        for name, command in STEPS:
            started = time.monotonic()
            try:
                done = subprocess.run(
                    [sys.executable, "-m", *command], env=env, capture_output=True, text=True, timeout=TIMEOUT
                )
                code, output = done.returncode, done.stdout + done.stderr
            except subprocess.TimeoutExpired as exc:
                code, output = "timeout", f"{exc.stdout or ''}{exc.stderr or ''}"
            seconds = time.monotonic() - started
            lines = [line for line in str(output).splitlines() if line.strip()]
            print(f"{name:<20} {seconds:6.1f} s  {'ok' if code == 0 else f'FAILED ({code})'}", flush=True)
            if code != 0:
                failed.append(name)
                print("  python -m " + " ".join(command))
                print("\n".join("  | " + line for line in lines[-40:]), flush=True)
    finally:
        if not args.keep:
            _admin(server, f'DROP DATABASE IF EXISTS "{NAME}" WITH (FORCE)')
    if failed:
        print(f"benchmark smoke run failed: {', '.join(failed)}")
        return 1
    print("every benchmark ran")
    return 0


if __name__ == "__main__":
    sys.exit(main())
