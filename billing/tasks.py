"""django-q2 entry points of the billing app: each takes ids, calls a service and is safe to run twice."""

from billing.imports import reading_import_run
from billing.jobs import job_run
from billing.partitioning import ensure_months_ahead


def run_reading_import(import_id: int) -> dict | None:
    """Run an uploaded reading import (a second run, or a run of a finished import, does nothing)."""
    return reading_import_run(import_id=import_id)


def run_billing_job(job_id: int) -> dict | None:
    """Run a queued billing job: the billing run, the anomaly scan, a rebate applied or reversed."""
    return job_run(job_id=job_id)


def ensure_billing_partitions() -> int:
    """The coming months' partitions of the readings and the invoices, once they are partitioned (daily)."""
    return ensure_months_ahead()
