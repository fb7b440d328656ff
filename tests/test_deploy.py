"""The production files in deploy/: the services stop without hanging, the example environment passes Django's
deployment checks and holds no real secret, and the database settings they rely on are read."""

from __future__ import annotations

import configparser
import json
import re
from pathlib import Path

import pytest

from tests.crm.test_settings import run_manage

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # systemd's keys are case-sensitive
    parser.read_string((DEPLOY / name).read_text())
    return parser


def gunicorn_config() -> dict:
    namespace: dict = {}
    exec(compile((DEPLOY / "gunicorn.conf.py").read_text(), "gunicorn.conf.py", "exec"), namespace)
    return namespace


def example_environment() -> dict[str, str]:
    env = {}
    for line in (DEPLOY / "tongdai.env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _eq, value = line.partition("=")
            env[name.strip()] = value.strip()
    return env


@pytest.mark.parametrize("name", ["tongdai-web.service", "tongdai-cluster.service", "tongdai-outbox.service"])
def test_a_service_is_stopped_by_sigterm_then_killed_so_a_stop_never_hangs(name):
    service = unit(name)["Service"]
    assert service["KillMode"] == "mixed"
    assert service["KillSignal"] == "SIGTERM"
    assert int(service["TimeoutStopSec"]) > 0
    assert service["EnvironmentFile"] == "/etc/tongdai/tongdai.env"
    assert service["User"] == "tongdai"


def test_the_stop_timeouts_leave_room_for_graceful_work():
    config = gunicorn_config()
    assert config["wsgi_app"] == "tongdai.wsgi:application"
    assert config["worker_class"] == "gthread"
    web, cluster = unit("tongdai-web.service")["Service"], unit("tongdai-cluster.service")["Service"]
    assert int(web["TimeoutStopSec"]) > config["graceful_timeout"]
    assert "deploy/gunicorn.conf.py" in web["ExecStart"]
    # a task may run Q_TIMEOUT seconds (60 by default): the cluster gets longer before it is killed
    assert int(cluster["TimeoutStopSec"]) > 60
    assert cluster["ExecStart"].endswith("manage.py qcluster")
    outbox = unit("tongdai-outbox.service")["Service"]
    assert outbox["ExecStart"].endswith("manage.py outbox_worker")
    # a gateway call may take 10 s (HttpSmsBackend's timeout): the worker gets longer to finish it
    assert int(outbox["TimeoutStopSec"]) > 10


def test_the_example_environment_passes_the_deployment_checks():
    env = example_environment()
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_the_example_environment_holds_no_real_secret():
    env = example_environment()
    for name in ("SECRET_KEY", "EMAIL_HOST_PASSWORD", "TONGDAI_SMS_TOKEN"):
        assert "change-me" in env[name], name
    assert re.search(r"postgres://tongdai:change-me@", env["DATABASE_URL"])


def test_database_connect_timeout_and_server_side_cursors_come_from_the_environment():
    script = (
        "from django.conf import settings; import json; d = settings.DATABASES['default']; "
        "print(json.dumps([d['OPTIONS']['connect_timeout'], d['DISABLE_SERVER_SIDE_CURSORS'], "
        "d['OPTIONS']['keepalives'], settings.SECURE_PROXY_SSL_HEADER]))"
    )
    env = {
        "DEBUG": "1",
        "DATABASE_URL": "postgres://tongdai@127.0.0.1:6432/tongdai",
        "DATABASE_CONNECT_TIMEOUT": "3",
        "DATABASE_DISABLE_SERVER_SIDE_CURSORS": "1",
        "BEHIND_TLS_PROXY": "1",
    }
    result = run_manage("shell", "-c", script, env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [3, True, 1, ["HTTP_X_FORWARDED_PROTO", "https"]]
    defaults = run_manage("shell", "-c", script.replace("settings.SECURE_PROXY_SSL_HEADER", "None"), env={
        "DEBUG": "1",
        "DATABASE_URL": "postgres://tongdai@127.0.0.1:5432/tongdai",
    })
    assert json.loads(defaults.stdout.strip().splitlines()[-1]) == [5, False, 1, None]
