"""django-q2 entry points of the billing app: each takes ids, calls a service and is safe to run twice."""

from billing.imports import reading_import_run


def run_reading_import(import_id: int) -> dict | None:
    """Run an uploaded reading import (a second run, or a run of a finished import, does nothing)."""
    return reading_import_run(import_id=import_id)
