"""The README's configuration table lists every setting the code reads: each environment variable that
tongdai/settings.py (and deploy/gunicorn.conf.py) reads, and each ``settings.TONGDAI_…`` the apps read. Settings are
read from the environment only through the ``env_…`` helpers, and the apps never supply defaults of their own."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APPS = ["tongdai", "core", "crm", "customers", "tickets", "billing", "reports"]

ENV_READ = re.compile(
    r"""(?:env_\w+\(|os\.environ\.get\(|os\.environ\[|os\.getenv\()\s*["']([A-Z][A-Z0-9_]*)["']"""
)
GETATTR_SETTING = re.compile(r"""getattr\(\s*settings\s*,\s*["'](TONGDAI_[A-Z0-9_]+)["']""")
SETTING_READ = re.compile(
    r"""\bsettings\.(TONGDAI_[A-Z0-9_]+)|getattr\(\s*settings\s*,\s*["'](TONGDAI_[A-Z0-9_]+)["']"""
)
HELPERS = re.compile(r"^def env_\w+\(.*?(?=^\S)", re.S | re.M)


def environment_reads(path: Path) -> set[str]:
    return set(ENV_READ.findall(path.read_text()))


# Settings built from variables of other names (each of those is in the table).
DERIVED = {"TONGDAI_NOTIFY_BACKENDS": {"TONGDAI_SMS_BACKEND", "TONGDAI_EMAIL_BACKEND"}}


def app_files() -> list[Path]:
    return [path for app in APPS for path in (ROOT / app).rglob("*.py") if "migrations" not in path.parts]


def getattr_settings() -> set[str]:
    """The TONGDAI_ settings the apps read (``settings.TONGDAI_…`` or ``getattr(settings, "TONGDAI_…")``)."""
    names: set[str] = set()
    for path in app_files():
        if path != ROOT / "tongdai" / "settings.py":
            names |= {a or b for a, b in SETTING_READ.findall(path.read_text())}
    for derived, sources in DERIVED.items():
        if derived in names:
            names = (names - {derived}) | sources
    return names


def configuration_table() -> set[str]:
    """The variables named in the first column of the README's configuration table."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Configuration\n", 1)[1].split("\n#", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names |= set(re.findall(r"`([A-Z][A-Z0-9_]*)`", line.split("|")[1]))
    return names


def test_the_readers_are_found():
    # the parser itself: settings read through each helper and through os.environ are seen
    reads = environment_reads(ROOT / "tongdai" / "settings.py")
    assert {"DEBUG", "SECRET_KEY", "DATABASE_URL", "TONGDAI_API_RATE", "CONN_MAX_AGE", "Q_REDIS_URL"} <= reads
    assert {"TONGDAI_SLA_TARGET_PERCENT", "TONGDAI_EXPORT_CHUNK_SIZE"} <= getattr_settings()
    assert {"DEBUG", "TONGDAI_API_RATE"} <= configuration_table()


def test_every_environment_variable_the_settings_read_is_in_the_readme_table():
    read = environment_reads(ROOT / "tongdai" / "settings.py") | environment_reads(
        ROOT / "deploy" / "gunicorn.conf.py"
    )
    missing = sorted(read - configuration_table())
    assert not missing, f"add these to the README's configuration table: {missing}"


def test_every_tongdai_setting_the_apps_read_is_in_the_readme_table():
    missing = sorted(getattr_settings() - configuration_table())
    assert not missing, f"add these to the README's configuration table: {missing}"


def test_every_tongdai_setting_the_apps_read_can_be_set_from_the_environment():
    """A setting read with getattr has its environment variable in tongdai/settings.py, so the table tells the
    truth when it says the variable sets it."""
    missing = sorted(getattr_settings() - environment_reads(ROOT / "tongdai" / "settings.py"))
    assert not missing, missing


def test_settings_read_the_environment_only_through_the_helpers():
    """One way to read a variable (``env_str``, ``env_int``, ``env_float``, ``env_bool``, ``env_list``,
    ``env_rate``): each says what is wrong with a bad value, none reads ``os.environ`` by itself."""
    text = (ROOT / "tongdai" / "settings.py").read_text()
    outside = HELPERS.sub("", text)
    assert "def env_str(" in text and "os.environ" in text
    assert re.findall(r"os\.environ\S*|os\.getenv", outside) == []


def test_no_app_supplies_a_default_for_a_setting_of_its_own():
    """A default lives in tongdai/settings.py (beside its variable and the README's row), never in a module's
    ``getattr(settings, "TONGDAI_…", default)``, where it could drift from the one in the settings."""
    found = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in app_files()
        for name in GETATTR_SETTING.findall(path.read_text())
    ]
    assert found == []
