"""The production example environment sends the outbox's e-mails through the SMTP server it configures, and the
outbox worker's unit lets a send in progress finish before it kills the worker."""

from __future__ import annotations

import json

from tests.crm.test_settings import run_manage
from tests.test_deploy import example_environment, unit

# What the outbox unit's stop timeout leaves beyond the longest single exchange of a send.
MARGIN_SECONDS = 10


def test_the_example_environment_sends_the_outbox_email_through_the_smtp_server_it_configures():
    env = example_environment()
    assert env["EMAIL_HOST"] and env["EMAIL_HOST_USER"] and env["EMAIL_HOST_PASSWORD"]
    result = run_manage(
        "shell", "-c",
        "import json; from django.conf import settings; print(json.dumps(settings.TONGDAI_NOTIFY_BACKENDS))",
        env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    backends = json.loads(result.stdout.strip().splitlines()[-1])
    assert backends["email"] == "crm.outbox.EmailBackend"
    assert backends["sms"] == "crm.outbox.HttpSmsBackend"


def test_the_outbox_unit_waits_for_a_send_to_finish_before_killing_the_worker():
    env = example_environment()
    service = unit("tongdai-outbox.service")["Service"]
    stop_sec = int(service["TimeoutStopSec"])
    assert stop_sec >= int(env["EMAIL_TIMEOUT"]) + MARGIN_SECONDS
    assert stop_sec >= int(env.get("TONGDAI_SMS_TIMEOUT", 10)) + MARGIN_SECONDS
    assert service["KillSignal"] == "SIGTERM" and service["KillMode"] == "mixed"
    assert service["ExecStart"].endswith("manage.py outbox_worker")
