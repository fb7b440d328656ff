"""The export log as the manager reads it."""

import importlib
from types import SimpleNamespace

import pytest
from django.apps import apps as django_apps
from django.db import DatabaseError, connection, transaction
from django.urls import reverse
from django.utils import timezone

from crm.models import ExportKind, ExportLog, Role, StaffProfile
from crm.services import export_log_record, staff_delete, staff_update


def test_a_manager_still_reads_the_exports_of_a_clerk_who_has_left(client, staff):
    # given a billing clerk of the manager's unit who exported the customers list, then left (the
    # administrator removed their staff profile, the README's way of recording a departure)
    clerk = staff[Role.BILLING_CLERK]
    log = export_log_record(user=clerk, kind=ExportKind.LIST, source="customers.customer",
                            file_format="csv", row_count=2600000)  # fmt: skip
    staff_delete(actor=None, profile=StaffProfile.objects.get(user=clerk))

    # when the manager of that unit reads the export log
    client.force_login(staff[Role.MANAGER])
    response = client.get(reverse("admin:crm_exportlog_changelist"))

    # then the clerk's export is still there: who took the customers away is what the log is for
    assert response.status_code == 200
    assert log.pk in {row.pk for row in response.context["cl"].result_list}


def test_an_export_stays_with_the_units_its_author_served_when_the_author_moves(
    client, org, staff, make_staff
):
    # given a billing clerk of the home unit who exported the customers list, then moved to another corporation
    clerk = staff[Role.BILLING_CLERK]
    log = export_log_record(user=clerk, kind=ExportKind.LIST, source="customers.customer",
                            file_format="csv", row_count=12)  # fmt: skip
    staff_update(actor=None, user=clerk, role=Role.BILLING_CLERK, units=[org["other_corporation"]])
    newer = export_log_record(user=clerk, kind=ExportKind.LIST, source="tickets.ticket",
                              file_format="csv", row_count=3)  # fmt: skip
    far_manager = make_staff(Role.MANAGER, [org["other_corporation"]])

    # then each export is read by the managers of the units the clerk served when making it
    assert set(log.units.values_list("pk", flat=True)) == {org["home"].pk}
    assert set(newer.units.values_list("pk", flat=True)) == {org["other_corporation"].pk}
    assert _listed(client, staff[Role.MANAGER]) == {log.pk}
    assert _listed(client, far_manager) == {newer.pk}


def _listed(client, user) -> set[int]:
    client.force_login(user)
    response = client.get(reverse("admin:crm_exportlog_changelist"))
    assert response.status_code == 200
    return {row.pk for row in response.context["cl"].result_list}


def _refused(sql: str, params=()) -> None:
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


def test_the_database_refuses_to_change_the_units_of_an_export(org, staff):
    # given a finished export of the home unit's clerk
    log = export_log_record(user=staff[Role.BILLING_CLERK], kind=ExportKind.LIST, source="customers.customer",
                            file_format="csv", row_count=1)  # fmt: skip
    table = ExportLog.units.through._meta.db_table
    # then its units can be neither removed, changed nor added to (which would move it to other managers)
    _refused(f"DELETE FROM {table} WHERE exportlog_id = %s", [log.pk])
    _refused(
        f"UPDATE {table} SET unit_id = %s WHERE exportlog_id = %s", [org["other_corporation"].pk, log.pk]
    )
    _refused(
        f"INSERT INTO {table} (exportlog_id, unit_id) VALUES (%s, %s)", [log.pk, org["other_corporation"].pk]
    )
    with pytest.raises(DatabaseError), transaction.atomic():
        log.units.clear()
    assert list(log.units.values_list("pk", flat=True)) == [org["home"].pk]


def test_the_migration_gives_an_export_logged_before_it_the_units_its_author_serves(org, staff):
    # given an export started before the units were recorded (none stored with it)
    clerk = staff[Role.BILLING_CLERK]
    log = ExportLog.objects.create(user=clerk, started_at=timezone.now(), kind=ExportKind.LIST,
                                   source="customers.customer", file_format="csv")  # fmt: skip
    assert not log.units.exists()
    # when the migration's backfill runs
    migration = importlib.import_module("crm.migrations.0012_export_log_units")
    migration.backfill(django_apps, SimpleNamespace(connection=connection))  # it only reads the connection
    # then the export has the units its author serves
    assert list(log.units.values_list("pk", flat=True)) == [org["home"].pk]
