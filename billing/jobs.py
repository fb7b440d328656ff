"""Long billing jobs out of the web request: the billing run, the anomaly scan, applying and reversing a
rebate programme run as django-q2 tasks, each followed by a ``BillingJob`` row (queued → running → done or
failed, the units done out of the units asked, the result or the error) and its status page in the admin.

``job_start`` checks what the starter may do, writes the queued row and queues the task once the request's
transaction commits. A second start of the same work (the same kind, month and units, or the same rebate
programme) while one is queued or running is refused with a clear message: the partial unique constraint
``billing_job_one_running`` decides, so two clerks pressing at once cannot both start it. A job left
running without progress for ``LEASE`` (a worker that died) is marked failed at the next start.

``job_run`` is the task's body: it claims the queued row by a conditional update (a second delivery of the
task does nothing), then calls the billing service unit by unit, each unit in its own transaction, and
writes the progress after each (the services are safe to run again: a failed job is restarted as a new one
and makes only what is missing).
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from billing import services
from billing.models import BillingJob, BillingJobKind, ReadingImportStatus, RebateProgramme
from crm.models import Unit
from crm.permissions import require
from crm.scoping import Scope, scope_for

logger = logging.getLogger(__name__)

LEASE = dt.timedelta(hours=2)  # a job without progress for this long is taken as abandoned
TASK_TIMEOUT = 3600  # seconds a worker may spend on one job
QUEUED, RUNNING, DONE, FAILED = (
    ReadingImportStatus.QUEUED, ReadingImportStatus.RUNNING, ReadingImportStatus.DONE, ReadingImportStatus.FAILED,
)  # fmt: skip


def visible_jobs(user):
    """The jobs a member of staff follows: those of their units, and those they started."""
    if user is None:
        return BillingJob.objects.all()
    return BillingJob.objects.filter(
        Q(pk__in=BillingJob.objects.for_user(user).values("pk")) | Q(started_by=user)
    )


def _units_key(units: list) -> str:
    """What units a job covers, in its lock: one unit's id, ``all``, or a digest of several units' ids."""
    ids = sorted(u.pk for u in units if u is not None)
    if not ids:
        return "all"
    if len(ids) == 1:
        return str(ids[0])
    import hashlib

    return "u" + hashlib.sha1(",".join(map(str, ids)).encode()).hexdigest()[:16]


def _units_label(units: list) -> str:
    codes = [u.code for u in units if u is not None]
    return ", ".join(codes) if codes else _("all units")


def _start(*, actor, kind: str, lock: str, params: dict, unit: Unit | None, steps: int) -> BillingJob:
    now = timezone.now()
    # A job left behind by a dead worker does not block the work for ever.
    BillingJob.objects.filter(lock=lock, status__in=[QUEUED, RUNNING]).filter(
        Q(progress_at__lt=now - LEASE) | Q(progress_at__isnull=True, created_at__lt=now - LEASE)
    ).update(status=FAILED, error=_("Abandoned: no progress for too long."), finished_at=now)
    try:
        with transaction.atomic():
            job = BillingJob.objects.create(
                kind=kind, lock=lock, unit=unit, params=params, steps_total=steps, created_at=now,
                started_by=actor if getattr(actor, "pk", None) else None,
            )  # fmt: skip
    except IntegrityError:
        running = (
            BillingJob.objects.filter(lock=lock, status__in=[QUEUED, RUNNING])
            .select_related("started_by")
            .first()
        )
        who = (running.started_by.get_full_name() or running.started_by.get_username()) if (
            running and running.started_by
        ) else _("someone")  # fmt: skip
        raise ValidationError(
            _("%(job)s is already running (started by %(who)s); wait until it ends.")
            % {"job": str(running) if running else BillingJob(kind=kind, params=params), "who": who},
            code="already_running",
        ) from None
    services.audit(actor=actor, action="job.start", obj=job, after={"kind": kind, **params})
    _enqueue(job)
    return job


def _enqueue(job: BillingJob) -> None:
    def enqueue(pk=job.pk):
        from django_q.tasks import async_task

        from crm.outbox import task_broker

        async_task("billing.tasks.run_billing_job", pk, task_name=f"billing-job-{pk}",
                   q_options={"timeout": TASK_TIMEOUT, "broker": task_broker()})  # fmt: skip

    transaction.on_commit(enqueue)


def job_start_billing_run(*, actor, period: dt.date, units: list) -> BillingJob:
    """Queue the billing run of a month over ``units`` (``[None]``: every unit, for those who see all)."""
    require(actor, "billing.add_billingrun")
    for unit in units:
        services.check_reach(actor, unit)
    period = period.replace(day=1)
    return _start(
        actor=actor, kind=BillingJobKind.BILLING_RUN, lock=f"billing_run:{period:%Y-%m}:{_units_key(units)}",
        params={"period": period.isoformat(), "units": [getattr(u, "pk", None) for u in units],
                "label": f"{period:%m/%Y} – {_units_label(units)}"},
        unit=units[0] if len(units) == 1 else None, steps=len(units),
    )  # fmt: skip


def job_start_anomaly_scan(
    *, actor, period: dt.date, units: list, threshold: Decimal | None = None
) -> BillingJob:
    require(actor, "billing.add_anomalybandcount")
    for unit in units:
        services.check_reach(actor, unit)
    if threshold is not None and threshold <= 1:
        raise ValidationError({"threshold": _("The threshold is a rise: more than 1×.")})
    period = period.replace(day=1)
    return _start(
        actor=actor, kind=BillingJobKind.ANOMALY_SCAN, lock=f"anomaly_scan:{period:%Y-%m}:{_units_key(units)}",
        params={"period": period.isoformat(), "units": [getattr(u, "pk", None) for u in units],
                "threshold": str(threshold) if threshold is not None else None,
                "label": f"{period:%m/%Y} – {_units_label(units)}"},
        unit=units[0] if len(units) == 1 else None, steps=len(units),
    )  # fmt: skip


def job_start_rebate(*, actor, programme: RebateProgramme, reverse: bool = False) -> BillingJob:
    """Queue applying (or reversing) a programme. Applying and reversing the same programme exclude each other."""
    require(actor, "billing.apply_rebateprogramme")
    services.rebate_check_reach(actor, programme)  # refused at once, before a job is queued
    services.rebate_check_can_run(programme, reverse=reverse)  # its status and bands, likewise
    kind = BillingJobKind.REBATE_REVERSE if reverse else BillingJobKind.REBATE_APPLY
    return _start(
        actor=actor, kind=kind, lock=f"rebate:{programme.pk}",
        params={"programme": programme.pk, "label": programme.name[:100]}, unit=None, steps=1,
    )  # fmt: skip


# The task's body ------------------------------------------------------------------------------------------


def _step_done(job: BillingJob, done: int, partial: dict) -> None:
    BillingJob.objects.filter(pk=job.pk).update(steps_done=done, progress_at=timezone.now(), result=partial)


def _units(job: BillingJob) -> list:
    ids = job.params.get("units") or [None]
    found = Unit.objects.in_bulk([i for i in ids if i is not None])
    return [found[i] if i is not None else None for i in ids]


def _run_billing(job: BillingJob) -> dict:
    period = dt.date.fromisoformat(job.params["period"])
    rows: list[dict[str, Any]] = []
    totals = {"invoices": 0, "held": 0, "without_reading": 0}
    for done, unit in enumerate(_units(job), 1):
        with transaction.atomic():
            outcome = services.billing_run(actor=job.started_by, period=period, unit=unit)
        row: dict[str, Any] = {"unit": unit.code if unit else "", "invoices": outcome.invoices, "held": outcome.held,
               "without_reading": outcome.without_reading}  # fmt: skip
        rows.append(row)
        for key in totals:
            totals[key] += row[key]
        _step_done(job, done, {"rows": rows, "totals": totals})
    return {"rows": rows, "totals": totals}


def _run_scan(job: BillingJob) -> dict:
    period = dt.date.fromisoformat(job.params["period"])
    threshold = job.params.get("threshold")
    threshold = Decimal(threshold) if threshold else None
    rows, totals = [], {"compared": 0, "reinspections": 0, "held": 0}
    for done, unit in enumerate(_units(job), 1):
        with transaction.atomic():
            outcome = services.anomaly_scan(
                actor=job.started_by, period=period, unit=unit, threshold=threshold
            )
        row = {"unit": unit.code if unit else "", **{key: outcome[key] for key in totals},
               "bands": {k: int(v) for k, v in (outcome.get("bands") or {}).items()}}  # fmt: skip
        rows.append(row)
        for key in totals:
            totals[key] += row[key]
        _step_done(job, done, {"rows": rows, "totals": totals})
    return {"rows": rows, "totals": totals}


def _run_rebate(job: BillingJob) -> dict:
    programme = RebateProgramme.objects.filter(pk=job.params["programme"]).first()
    if programme is None:  # deleted (a draft) while its job waited
        raise ValidationError(
            _("The programme %(name)s was deleted before this job ran: nothing was applied or reversed.")
            % {"name": job.params.get("label", "")}
        )
    with transaction.atomic():
        if job.kind == BillingJobKind.REBATE_REVERSE:
            outcome = services.rebate_reverse(actor=job.started_by, programme=programme)
        else:
            outcome = services.rebate_apply(actor=job.started_by, programme=programme)
    return {key: int(value) for key, value in outcome.items()}


ALL_UNITS = "all"  # an export's reach when its starter sees every unit


def export_reach(user) -> str | list[int]:
    """The units an export by ``user`` covers (their scope): ``ALL_UNITS``, or their units' ids."""
    scope = scope_for(user)
    return ALL_UNITS if scope.everything else sorted(scope.unit_ids)


def export_download_refusal(job: BillingJob, user) -> str:
    """Why ``user`` may not download the file of export ``job`` ('' when they may): the units it covered
    (``params["reach"]``, its starter's scope when it was written) must all be within what ``user`` sees now.
    Whoever sees every unit may download any export they see."""
    scope = scope_for(user)
    if scope.everything:
        return ""
    reach = job.params.get("reach")
    if reach is None:
        return _("This file was written before exports recorded the units they cover: export the list again.")
    covered = Scope(everything=reach == ALL_UNITS, unit_ids=frozenset(() if reach == ALL_UNITS else reach))
    if not covered.within(scope):
        return _("This file lists records of units you no longer see: it is not downloaded. Export the list "
                 "again for your units.")  # fmt: skip
    return ""


def job_start_export(*, actor, model_admin, filters: str, file_format: str) -> BillingJob:
    """Queue the export of a billing list (its filters and search, ``filters`` as the changelist's query
    string) to a file the job keeps; one export of a list per member of staff at a time. The export log
    records it as started now and completes it with the row count when the file is written."""
    from django.utils import translation

    from core.exports import FORMATS
    from crm.models import ExportKind
    from crm.services import export_log_start

    if file_format not in dict(FORMATS):
        raise ValidationError({"file_format": _("Choose CSV or XLSX.")})
    opts = model_admin.model._meta
    with transaction.atomic():  # the task is queued at the commit, once the job knows its log
        job = _start(
            actor=actor, kind=BillingJobKind.EXPORT, lock=f"export:{opts.label_lower}:{getattr(actor, 'pk', '')}",
            params={"model": opts.label_lower, "filters": filters, "format": file_format,
                    "language": translation.get_language(), "label": str(opts.verbose_name_plural),
                    "reach": export_reach(actor)},
            unit=None, steps=1,
        )  # fmt: skip
        log = export_log_start(
            user=actor,
            kind=ExportKind.LIST,
            source=opts.label_lower,
            file_format=file_format,
            filters=filters,
        )
        job.params["log"] = log.pk
        BillingJob.objects.filter(pk=job.pk).update(params=job.params)
    return job


def _run_export(job: BillingJob) -> dict:
    """The list's rows as its admin would export them (its scope, filters, search and columns), written to a
    temporary file chunk by chunk (memory stays flat) and kept with the job."""
    from django.apps import apps
    from django.contrib import admin
    from django.http import HttpRequest, QueryDict

    from crm.models import ExportLog
    from crm.services import export_log_finish

    model = apps.get_model(job.params["model"])
    model_admin = admin.site.get_model_admin(model)
    request = HttpRequest()
    request.method = "GET"
    request.GET = QueryDict(job.params.get("filters", ""))
    request.user = job.started_by or AnonymousUser()
    log = ExportLog.objects.get(pk=job.params["log"])
    # The file covers its starter's units as they are now, when it is written: its download is held to them.
    job.params["reach"] = export_reach(job.started_by)
    BillingJob.objects.filter(pk=job.pk).update(params=job.params)
    try:
        count = _write_export(job, model_admin, request)
    except BaseException:
        export_log_finish(log=log, row_count=0, complete=False)
        raise
    export_log_finish(log=log, row_count=count)
    return {"rows": count}


def _write_export(job: BillingJob, model_admin, request) -> int:
    import tempfile

    from django.core.files import File
    from django.utils import translation

    from core.exports import XLSX, changelist_queryset, csv_chunks, xlsx_chunks
    from core.routers import on_replica

    file_format = job.params["format"]
    count = 0
    with translation.override(job.params.get("language")), tempfile.TemporaryFile() as out:
        if not model_admin.has_view_permission(request):
            raise ValidationError(_("You may no longer see this list."))
        queryset = changelist_queryset(model_admin, request)
        resource = model_admin.get_export_resource(request)
        headers = resource.get_export_headers()

        def rows(native):
            nonlocal count
            for row in resource.export_rows(queryset, native=native):
                count += 1
                yield row

        basename = model_admin.export_basename()
        if file_format == XLSX:
            chunks = xlsx_chunks(headers, rows(True), sheet_name=basename)
        else:
            chunks = csv_chunks(headers, rows(False))
        for chunk in on_replica(chunks):  # read on the replica when one is in use (core.routers)
            out.write(chunk)
        out.seek(0)
        stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
        job.file.save(f"{basename}-{stamp}.{file_format}", File(out), save=False)
    BillingJob.objects.filter(pk=job.pk).update(file=job.file.name)
    return count


RUNNERS = {
    BillingJobKind.BILLING_RUN: _run_billing,
    BillingJobKind.ANOMALY_SCAN: _run_scan,
    BillingJobKind.REBATE_APPLY: _run_rebate,
    BillingJobKind.REBATE_REVERSE: _run_rebate,
    BillingJobKind.EXPORT: _run_export,
}


def job_run(*, job_id: int) -> dict | None:
    """Run a queued job (the task's body). A second delivery, or a job already finished, does nothing."""
    now = timezone.now()
    claimed = BillingJob.objects.filter(pk=job_id, status=QUEUED).update(
        status=RUNNING, started_at=now, progress_at=now
    )
    if not claimed:
        return None
    job = BillingJob.objects.select_related("started_by").get(pk=job_id)
    try:
        result = RUNNERS[BillingJobKind(job.kind)](job)
    except Exception as exc:
        message = (
            "; ".join(exc.messages) if isinstance(exc, ValidationError) else f"{type(exc).__name__}: {exc}"
        )
        if not isinstance(exc, ValidationError):
            logger.exception("billing job %s failed", job_id)
        BillingJob.objects.filter(pk=job_id).update(
            status=FAILED, error=message[:2000], finished_at=timezone.now(), progress_at=timezone.now()
        )
        return {"status": "failed", "error": message}
    BillingJob.objects.filter(pk=job_id).update(
        status=DONE, result=result, steps_done=job.steps_total, finished_at=timezone.now(),
        progress_at=timezone.now(),
    )  # fmt: skip
    return {"status": "done", **result}
