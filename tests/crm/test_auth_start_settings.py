"""Settings of the API's throttles and tokens that cannot work stop the start, naming the variable (README,
Configuration); the values at the edge of what can work are taken."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from crm.admin_security import ApiTokenForm
from crm.tokens import MAX_DAYS

ROOT = Path(__file__).resolve().parents[2]


def _run_manage(*args, env):
    clean = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECRET_KEY", "DJANGO_SETTINGS_MODULE")}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "tongdai.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _read_settings(names, env):
    code = "from django.conf import settings as s; print(" + ", ".join(f"repr(s.{n})" for n in names) + ")"
    result = _run_manage("shell", "-c", code, env={"DEBUG": "1", **env})
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()[-1]


def test_auth_a_token_validity_no_token_may_have_stops_the_start_naming_it():
    # given: a default validity above the longest a token may last (crm.tokens.MAX_DAYS, 3650 days)
    value = str(MAX_DAYS + 1)
    # when
    result = _run_manage("check", env={"DEBUG": "1", "TONGDAI_API_TOKEN_DAYS": value})
    # then: the start is refused, naming the variable and the range that can work
    assert result.returncode != 0, f"TONGDAI_API_TOKEN_DAYS={value} was accepted at start"
    assert f"TONGDAI_API_TOKEN_DAYS must be an integer from 1 to {MAX_DAYS}, not '{value}'" in result.stderr


def test_auth_a_token_validity_of_zero_days_is_refused_with_the_whole_range():
    result = _run_manage("check", env={"DEBUG": "1", "TONGDAI_API_TOKEN_DAYS": "0"})
    assert result.returncode != 0
    assert f"TONGDAI_API_TOKEN_DAYS must be an integer from 1 to {MAX_DAYS}, not '0'" in result.stderr


def test_auth_the_longest_token_validity_is_taken():
    assert _read_settings(["TONGDAI_API_TOKEN_DAYS"], {"TONGDAI_API_TOKEN_DAYS": str(MAX_DAYS)}) == str(MAX_DAYS)


def test_auth_the_settings_the_token_service_and_the_form_share_one_longest_validity():
    # one number: the settings' check, crm.tokens (the service) and the admin's form
    assert MAX_DAYS == settings.API_TOKEN_MAX_DAYS == 3650
    assert ApiTokenForm.base_fields["days"].max_value == MAX_DAYS


@pytest.mark.parametrize("variable", ["TONGDAI_API_RATE", "TONGDAI_API_FAILED_TOKEN_RATE"])
@pytest.mark.parametrize("value", ["0/min", "0/s", "00/day"])
def test_auth_a_rate_of_zero_requests_stops_the_start_naming_it(variable, value):
    # given: a rate of no requests at all (every API request, or every token, refused with 429); "no limit"
    # is the empty value
    result = _run_manage("check", env={"DEBUG": "1", variable: value})
    # then
    assert result.returncode != 0, f"{variable}={value} was accepted at start"
    assert (
        f"{variable} must be a rate of at least 1 request such as 100/s, or empty for no limit, not '{value}'"
        in result.stderr
    )


def test_auth_a_rate_of_one_request_and_an_empty_rate_are_taken():
    names = ["REST_FRAMEWORK['DEFAULT_THROTTLE_RATES']['user']",
             "REST_FRAMEWORK['DEFAULT_THROTTLE_RATES']['failed_token']"]  # fmt: skip
    shown = _read_settings(names, {"TONGDAI_API_RATE": "1/min", "TONGDAI_API_FAILED_TOKEN_RATE": ""})
    assert shown == "'1/min' None"
