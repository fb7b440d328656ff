"""Test settings: the product's settings with a fast hasher, in-memory email and tasks run inline."""

import os

os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("LANGUAGE_CODE", "en")
# PostgreSQL's prepared statements on, as deployed without a pooler (deploy/tongdai.env.example).
os.environ.setdefault("DATABASE_PREPARED_STATEMENTS", "5")

from tongdai.settings import *  # noqa: F403
from tongdai.settings import Q_CLUSTER

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
Q_CLUSTER = {**Q_CLUSTER, "sync": True, "log_level": "WARNING"}
# Tests deliver the outbox explicitly (outbox_deliver / outbox_deliver_due) and assert what was sent.
LANGUAGE_CODE = "en"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
WHITENOISE_AUTOREFRESH = True  # tests run without collectstatic
TONGDAI_AUTH_CACHE_SECONDS = 0  # tests change roles and units between requests
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "tests"}}
# Two-factor admin login is on in production and in `make run`; its tests turn it on here.
TONGDAI_ADMIN_2FA = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":  # noqa: F405
    # The billing tables refuse TRUNCATE but from a session that allows it (billing migration 0010): the
    # test connections do, for the flush after each transactional test.
    _options = DATABASES["default"].setdefault("OPTIONS", {})  # noqa: F405
    _options["options"] = f"{_options.get('options', '')} -c tongdai.allow_truncate=on".strip()
# A second alias for the read replica, mirroring the test database: tests of the router turn
# TONGDAI_REPLICA_READS on and see the reports' queries go there.
DATABASES["replica"] = {**DATABASES["default"], "TEST": {"MIRROR": "default"}}  # noqa: F405
TONGDAI_REPLICA_READS = False
