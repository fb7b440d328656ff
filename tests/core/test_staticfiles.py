"""The production storage of static files answers each file's URL from the manifest once per process."""

from __future__ import annotations

import json

from core.staticfiles import StaticFilesStorage


def test_each_url_is_the_manifests_and_is_worked_out_once(tmp_path, settings, monkeypatch):
    settings.STATIC_URL = "/static/"
    (tmp_path / "staticfiles.json").write_text(
        json.dumps({"version": "1.1", "paths": {"admin/img/icon-yes.svg": "admin/img/icon-yes.5fdf7.svg"}})
    )
    storage = StaticFilesStorage(location=str(tmp_path), base_url="/static/")
    asked = []
    stored_name = storage.stored_name
    monkeypatch.setattr(storage, "stored_name", lambda name: asked.append(name) or stored_name(name))

    first = storage.url("admin/img/icon-yes.svg")
    again = storage.url("admin/img/icon-yes.svg")

    assert first == again == "/static/admin/img/icon-yes.5fdf7.svg"
    assert asked == ["admin/img/icon-yes.svg"]  # the manifest was read for the first only
