"""``setup_schedules`` removes the product's schedules renamed or dropped in code, and nothing else."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django_q.models import Schedule

from core.task_registry import (
    PRODUCT_SCHEDULE_PREFIX,
    declared_schedule_names,
    on_demand_functions,
    schedule_modules,
)


def _setup() -> list[str]:
    out = io.StringIO()
    call_command("setup_schedules", stdout=out, stderr=io.StringIO())
    return out.getvalue().splitlines()


def _product_names() -> set[str]:
    return set(Schedule.objects.filter(name__startswith=PRODUCT_SCHEDULE_PREFIX).values_list("name", flat=True))


def test_every_declared_schedule_has_the_product_prefix():
    # a product schedule without it could never be retired by the next release
    names = [entry[0] for module in schedule_modules() for entry in module.SCHEDULES]
    assert names and all(name.startswith(PRODUCT_SCHEDULE_PREFIX) for name in names)
    assert declared_schedule_names() == set(names)


def test_setup_schedules_removes_a_product_schedule_renamed_in_code(db):
    _setup()
    Schedule.objects.filter(name="tongdai: deliver the outbox").update(name="tongdai: outbox delivery")
    lines = _setup()
    assert "created: tongdai: deliver the outbox" in lines
    assert "removed: tongdai: outbox delivery" in lines
    assert Schedule.objects.filter(func="crm.tasks.deliver_outbox").count() == 1
    assert not Schedule.objects.filter(name="tongdai: outbox delivery").exists()


def test_setup_schedules_removes_a_product_schedule_dropped_from_code(db):
    _setup()
    Schedule.objects.create(
        name="tongdai: old nightly job", func="crm.tasks.nightly_job_removed", schedule_type="D", repeats=-1
    )
    lines = _setup()
    assert lines.count("removed: tongdai: old nightly job") == 1
    assert _product_names() == declared_schedule_names()
    # idempotent: the next run removes nothing and keeps every declared schedule
    again = _setup()
    assert not [line for line in again if line.startswith("removed:")]
    assert sorted(again) == sorted(f"kept: {name}" for name in declared_schedule_names())


def test_setup_schedules_leaves_alone_what_an_administrator_scheduled(db):
    _setup()
    on_demand = sorted(on_demand_functions())[0]
    kept = [
        # another name, even for a product function or one no longer in code
        Schedule.objects.create(name="extra outbox sweep", func="crm.tasks.deliver_outbox", schedule_type="I"),
        Schedule.objects.create(name="my old job", func="crm.tasks.nightly_job_removed", schedule_type="D"),
        Schedule.objects.create(name="", func="crm.tasks.cluster_heartbeat", schedule_type="D"),
        # the prefix spelled otherwise (SQLite's LIKE ignores case)
        Schedule.objects.create(name="Tongdai: my report", func="crm.tasks.deliver_outbox", schedule_type="D"),
        # an on-demand task scheduled by hand under the product's prefix
        Schedule.objects.create(name="tongdai: reports again", func=on_demand, schedule_type="D"),
        # a second schedule with a declared name (reported, never changed)
        Schedule.objects.create(name="tongdai: SLA sweep", func="tickets.tasks.sweep_sla", schedule_type="D"),
    ]
    before = {s.pk: (s.name, s.func, s.schedule_type) for s in kept}
    lines = _setup()
    assert not [line for line in lines if line.startswith("removed:")]
    after = {s.pk: (s.name, s.func, s.schedule_type) for s in Schedule.objects.filter(pk__in=before)}
    assert after == before


@pytest.mark.parametrize("func", ["crm.tasks.deliver_outbox", "crm.tasks.refused_task"])
def test_a_retired_schedule_is_removed_whatever_it_runs_unless_on_demand(db, func):
    _setup()
    Schedule.objects.create(name="tongdai: gone", func=func, schedule_type="D")
    assert "removed: tongdai: gone" in _setup()
    assert _product_names() == declared_schedule_names()
