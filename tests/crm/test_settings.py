"""The settings refuse unsafe production starts and pass Django's deployment checks."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]


def run_manage(*args, env):
    clean = {
        k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECRET_KEY", "DJANGO_SETTINGS_MODULE")
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "tongdai.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_refuses_to_start_with_debug_off_and_no_secret_key():
    result = run_manage("check", env={"DEBUG": "0"})
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_a_misspelt_boolean_is_an_error_not_false():
    result = run_manage("check", env={"DEBUG": "maybe"})
    assert result.returncode != 0
    assert "DEBUG must be a boolean" in result.stderr


def test_a_malformed_api_rate_is_an_error_at_start():
    result = run_manage("check", env={"DEBUG": "1", "TONGDAI_API_RATE": "100"})
    assert result.returncode != 0
    assert "TONGDAI_API_RATE must be a rate such as 100/s or 10/min, not '100'" in result.stderr


def test_check_deploy_is_clean_under_production_settings():
    result = run_manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env={
            "DEBUG": "0",
            "SECRET_KEY": "k" * 20 + "-production-secret-from-the-environment-0123456789",
            "ALLOWED_HOSTS": "cskh.example.vn",
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_vietnamese_by_default_english_available_times_in_vietnam():
    assert settings.TIME_ZONE == "Asia/Ho_Chi_Minh"
    assert settings.USE_TZ is True
    assert [code for code, _name in settings.LANGUAGES] == ["vi", "en"]
    assert (ROOT / "locale" / "vi" / "LC_MESSAGES" / "django.po").exists()


def test_the_interface_speaks_vietnamese(client, staff):
    from django.utils import translation

    with translation.override("vi"):
        assert str(translation.gettext("Caller lookup")) != "Caller lookup"
    client.force_login(staff["agent"])
    response = client.get("/admin/customers/customer/lookup/", HTTP_ACCEPT_LANGUAGE="vi")
    assert response.status_code == 200
    assert 'lang="vi"' in response.content.decode()


def test_migrations_can_be_checked_without_a_key_but_nothing_else_runs():
    assert run_manage("makemigrations", "--check", "--dry-run", env={"DEBUG": "0"}).returncode == 0
    assert run_manage("migrate", "--plan", env={"DEBUG": "0"}).returncode != 0


def test_the_wsgi_entry_point_serves_and_leaves_the_loaded_application_out_of_garbage_collection():
    clean = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE",)}
    probe = (
        "import gc, io, sys\n"
        "from tongdai.wsgi import application\n"
        "frozen = gc.get_freeze_count()\n"
        "out = []\n"
        "environ = {'REQUEST_METHOD': 'GET', 'PATH_INFO': '/admin/login/', 'SERVER_NAME': 'localhost',\n"
        "           'SERVER_PORT': '80', 'HTTP_HOST': 'localhost', 'wsgi.input': io.BytesIO(),\n"
        "           'wsgi.url_scheme': 'http', 'wsgi.errors': sys.stderr}\n"
        "body = b''.join(application(environ, lambda status, headers: out.append(status)))\n"
        "print(frozen, out[0])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "tongdai.settings", "DEBUG": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    frozen, status = result.stdout.split(maxsplit=1)
    assert int(frozen) > 10_000  # the modules, models and settings loaded at start
    assert status.strip() == "200 OK"


def test_a_number_setting_that_is_not_a_number_is_an_error_at_start():
    result = run_manage("check", env={"DEBUG": "1", "TONGDAI_SLA_TARGET_PERCENT": "ninety"})
    assert result.returncode != 0
    assert "TONGDAI_SLA_TARGET_PERCENT must be a number, not 'ninety'" in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("TONGDAI_ANOMALY_THRESHOLD", "abc", "must be a number above 1 and below 100"),
        ("TONGDAI_ANOMALY_THRESHOLD", "1.333", "with at most 2 decimals, written with a point (such as 1.3)"),
        ("TONGDAI_ANOMALY_THRESHOLD", "1,3", "not '1,3'"),
        ("TONGDAI_ANOMALY_THRESHOLD", "1", "above 1 and below 100"),
        ("TONGDAI_SMS_BACKEND", "crm.outbox.HttpSmsBackendd", "names a backend that cannot be imported"),
        ("TONGDAI_EMAIL_BACKEND", "EmailBackend", "Set TONGDAI_EMAIL_BACKEND to crm.outbox.LoggingBackend"),
        ("TONGDAI_SMS_BACKEND", "crm.outbox.HttpSmsBackend", "TONGDAI_SMS_URL is not set"),
        ("LOG_LEVEL", "verbose", "one of DEBUG, INFO, WARNING, ERROR or CRITICAL, not 'verbose'"),
        ("TONGDAI_EXPORT_CHUNK_SIZE", "0", "must be an integer of at least 1, not '0'"),
        ("TONGDAI_OUTBOX_MAX_ATTEMPTS", "-1", "must be an integer of at least 1"),
        ("TONGDAI_LOOKUP_LIMIT", "-3", "must be an integer of at least 1"),
        ("TONGDAI_SLA_TARGET_PERCENT", "101", "must be a number from 0 to 100"),
        ("TONGDAI_OUTBOX_POLL_SECONDS", "nan", "must be a number from 0.01 to 3600"),
        ("TONGDAI_OUTBOX_POLL_SECONDS", "inf", "must be a number from 0.01 to 3600"),
    ],
)
def test_a_setting_that_cannot_work_stops_the_start_naming_it(variable, value, says):
    result = run_manage("check", env={"DEBUG": "1", variable: value})
    assert result.returncode != 0, f"{variable}={value!r} was accepted at start"
    assert variable in result.stderr and says in result.stderr


def test_settings_that_can_work_are_taken_as_written():
    result = run_manage(
        "shell", "-c",
        "from django.conf import settings as s; print(s.TONGDAI_ANOMALY_THRESHOLD, s.LOGGING['root']['level'],"
        " s.TONGDAI_EXACT_COUNT_LIMIT, s.TONGDAI_NOTIFY_BACKENDS['sms'])",
        env={"DEBUG": "1", "TONGDAI_ANOMALY_THRESHOLD": "1.35", "LOG_LEVEL": "warning",
             "TONGDAI_EXACT_COUNT_LIMIT": "0", "TONGDAI_SMS_BACKEND": "crm.outbox.HttpSmsBackend",
             "TONGDAI_SMS_URL": "https://sms.example.vn/send"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].split() == ["1.35", "WARNING", "0", "crm.outbox.HttpSmsBackend"]
