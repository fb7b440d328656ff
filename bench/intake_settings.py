"""Settings of the site the intake benchmark serves under gunicorn: the product's, on loopback plain HTTP.

The bare view is the floor to compare with: Django receives the same JSON and inserts the same ticket row
with one SQL statement (no authentication, routing, deadlines, events or outbox). It exists only here.
"""

from __future__ import annotations

import os

os.environ.setdefault("SECURE_SSL_REDIRECT", "0")  # loopback plain HTTP
os.environ.setdefault("SECURE_HSTS_SECONDS", "0")
os.environ.setdefault("TONGDAI_API_RATE", "")  # one token offers every request: no per-user throttle
os.environ.setdefault("DATABASE_PREPARED_STATEMENTS", "5")  # as deployed (deploy/tongdai.env.example)

from tongdai.settings import *  # noqa: F403

ROOT_URLCONF = "bench.intake_urls"
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
Q_CLUSTER = {**Q_CLUSTER, "log_level": "WARNING"}  # noqa: F405
if os.environ.get("BENCH_REQUEST_LOG"):  # the request log's durations, for ``bench.pages`` to read back
    LOGGING = {
        **LOGGING,
        "formatters": {"duration": {"format": "%(path)s %(duration_ms)s"}},
        "handlers": {
            "requests": {
                "class": "logging.FileHandler", "filename": os.environ["BENCH_REQUEST_LOG"], "formatter": "duration",
            }
        },
        "loggers": {"tongdai.request": {"handlers": ["requests"], "level": "INFO", "propagate": False}},
    }  # fmt: skip
