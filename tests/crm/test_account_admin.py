"""No way up through the admin: an administrator who is not a superuser cannot make anyone (themselves included)
a superuser, cannot change or reset the password of an account holding more than they hold, grants only the
groups and permissions they hold, and cannot change the task cluster's schedules; a schedule, and any task
queued to the cluster, names only a registered task function."""

from __future__ import annotations

import datetime as dt
from multiprocessing import Queue, Value

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.conf import Conf
from django_q.models import Failure, OrmQ, Schedule
from django_q.monitor import monitor
from django_q.scheduler import scheduler
from django_q.tasks import async_task
from django_q.worker import worker

from core.task_registry import REFUSED_TASK, registered_functions
from crm.models import Role, StaffProfile
from crm.services import staff_update

User = get_user_model()


def user_form(user, **changes) -> dict:
    """The user change form's fields as the admin would post them, with ``changes`` applied."""
    data = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "is_active": "on" if user.is_active else "",
        "is_staff": "on" if user.is_staff else "",
        "is_superuser": "on" if user.is_superuser else "",
        "groups": [str(pk) for pk in user.groups.values_list("pk", flat=True)],
        "user_permissions": [str(pk) for pk in user.user_permissions.values_list("pk", flat=True)],
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
        "last_login_0": "",
        "last_login_1": "",
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value not in ("", None)}


def change_url(user) -> str:
    return reverse("admin:auth_user_change", args=[user.pk])


@pytest.fixture
def administrator(staff):
    return staff[Role.ADMINISTRATOR]


@pytest.fixture
def superuser(db):
    return User.objects.create_superuser("root", "root@example.org", "s3cret-root-pass")


def test_an_administrator_cannot_make_themselves_a_superuser(client, administrator):
    # given
    client.force_login(administrator)
    # when
    response = client.post(change_url(administrator), user_form(administrator, is_superuser="on"))
    # then: the field is not theirs to set; the rest of the form saves as before
    assert response.status_code == 302
    administrator.refresh_from_db()
    assert administrator.is_superuser is False
    page = client.get(change_url(administrator)).content.decode()
    assert 'name="is_superuser"' not in page


def test_an_administrator_cannot_make_an_agent_a_superuser(client, administrator, staff):
    # given
    agent = staff[Role.AGENT]
    client.force_login(administrator)
    # when
    response = client.post(change_url(agent), user_form(agent, first_name="Renamed", is_superuser="on"))
    # then: the name changed, the status did not
    assert response.status_code == 302
    agent.refresh_from_db()
    assert (agent.first_name, agent.is_superuser) == ("Renamed", False)


def test_a_superuser_can_grant_superuser_status(client, superuser, staff):
    # given
    agent = staff[Role.AGENT]
    client.force_login(superuser)
    # when
    response = client.post(change_url(agent), user_form(agent, is_superuser="on"))
    # then
    assert response.status_code == 302
    agent.refresh_from_db()
    assert agent.is_superuser is True


def test_an_administrator_cannot_change_a_superuser_or_reset_their_password(client, administrator, superuser):
    # given
    client.force_login(administrator)
    password_url = reverse("admin:auth_user_password_change", args=[superuser.pk])
    # when
    form = client.post(change_url(superuser), user_form(superuser, first_name="Owned", is_active=""))
    reset_page = client.get(password_url)
    reset = client.post(password_url, {"password1": "n3w-pass-word-x", "password2": "n3w-pass-word-x"})
    # then: refused, and nothing changed
    assert (form.status_code, reset_page.status_code, reset.status_code) == (403, 403, 403)
    superuser.refresh_from_db()
    assert (superuser.first_name, superuser.is_active) == ("", True)
    assert superuser.check_password("s3cret-root-pass")
    # the account can still be looked at, read-only
    view = client.get(change_url(superuser))
    assert view.status_code == 200
    assert 'name="first_name"' not in view.content.decode()


def test_an_administrator_cannot_change_an_account_that_holds_more(client, administrator, staff):
    # given: an agent who was given a permission administrators do not hold
    agent = staff[Role.AGENT]
    agent.user_permissions.add(Permission.objects.get(codename="delete_user"))
    client.force_login(administrator)
    password_url = reverse("admin:auth_user_password_change", args=[agent.pk])
    # when
    response = client.post(password_url, {"password1": "n3w-pass-word-x", "password2": "n3w-pass-word-x"})
    # then
    assert response.status_code == 403
    agent.refresh_from_db()
    assert agent.check_password("s3cret-pass-word")


def test_an_administrator_can_reset_an_agents_password(client, administrator, staff):
    # given
    agent = staff[Role.AGENT]
    client.force_login(administrator)
    password_url = reverse("admin:auth_user_password_change", args=[agent.pk])
    # when
    response = client.post(
        password_url, {"usable_password": "true", "password1": "n3w-pass-word-x", "password2": "n3w-pass-word-x"}
    )
    # then
    assert response.status_code == 302
    agent.refresh_from_db()
    assert agent.check_password("n3w-pass-word-x")


def test_an_administrator_grants_only_groups_and_permissions_they_hold(client, administrator, staff):
    # given: a group and a permission beyond the administrator's own
    agent = staff[Role.AGENT]
    powerful = Group.objects.create(name="user deleters")
    delete_user = Permission.objects.get(codename="delete_user")
    powerful.permissions.add(delete_user)
    groups_before = set(agent.groups.values_list("name", flat=True))
    client.force_login(administrator)
    # when
    by_group = client.post(change_url(agent), user_form(agent, groups=[str(powerful.pk)]))
    by_permission = client.post(change_url(agent), user_form(agent, user_permissions=[str(delete_user.pk)]))
    # then: both refused on the form, nothing granted
    assert by_group.status_code == 200
    assert by_group.context["adminform"].form.errors["groups"]
    assert by_permission.status_code == 200
    assert by_permission.context["adminform"].form.errors["user_permissions"]
    agent.refresh_from_db()
    assert set(agent.groups.values_list("name", flat=True)) == groups_before
    assert not agent.user_permissions.exists()
    # and the form offers neither
    page = client.get(change_url(agent)).content.decode()
    assert "user deleters" not in page
    assert f'value="{delete_user.pk}"' not in page


def test_an_administrator_can_give_a_role_group_they_hold(client, administrator, staff):
    # given
    agent = staff[Role.AGENT]
    supervisors = Group.objects.get(name="tongdai: supervisor")
    client.force_login(administrator)
    # when
    response = client.post(
        change_url(agent), user_form(agent, groups=[str(pk) for pk in agent.groups.values_list("pk", flat=True)]
                                     + [str(supervisors.pk)])
    )  # fmt: skip
    # then
    assert response.status_code == 302
    assert agent.groups.filter(pk=supervisors.pk).exists()


def test_the_staff_profile_role_is_refused_beyond_the_actors_own(client, org, make_staff):
    # given: an agent who, exceptionally, may change staff profiles, and a fellow agent of the unit
    actor, colleague = make_staff(Role.AGENT, [org["home"]]), make_staff(Role.AGENT, [org["home"]])
    actor.user_permissions.add(*Permission.objects.filter(codename__in=["change_staffprofile", "view_staffprofile"]))
    profile = StaffProfile.objects.get(user=colleague)
    client.force_login(actor)
    url = reverse("admin:crm_staffprofile_change", args=[profile.pk])
    # when
    response = client.post(url, {"role": Role.ADMINISTRATOR, "units": [org["home"].pk], "phone": ""})
    # then
    assert response.status_code == 200
    assert "permissions you do not have" in str(response.context["adminform"].form.errors["role"])
    profile.refresh_from_db()
    assert profile.role == Role.AGENT
    assert not colleague.groups.filter(name="tongdai: administrator").exists()
    # a role within the actor's own is taken
    same = client.post(url, {"role": Role.AGENT, "units": [org["home"].pk], "phone": "0903 000 111"})
    assert same.status_code == 302
    profile.refresh_from_db()
    assert profile.phone == "+84903000111"  # stored in +84 form


def test_staff_update_refuses_an_actor_who_may_not_change_the_account(staff, superuser):
    # given
    administrator = staff[Role.ADMINISTRATOR]
    StaffProfile.objects.create(user=superuser, badge_number="R00", role=Role.AGENT)
    # when / then
    with pytest.raises(PermissionDenied) as refused:
        staff_update(actor=administrator, user=superuser, role=Role.MANAGER)
    assert "Only a superuser" in str(refused.value)
    assert StaffProfile.objects.get(user=superuser).role == Role.AGENT


def test_an_administrator_sees_the_task_cluster_read_only(client, administrator):
    # given
    schedule = Schedule.objects.create(name="tongdai: SLA sweep", func="tickets.tasks.sweep_sla", minutes=1,
                                       schedule_type=Schedule.MINUTES)  # fmt: skip
    client.force_login(administrator)
    # when
    listing = client.get(reverse("admin:django_q_schedule_changelist"))
    add = client.get(reverse("admin:django_q_schedule_add"))
    change = client.post(
        reverse("admin:django_q_schedule_change", args=[schedule.pk]),
        {"name": "x", "func": "os.system", "args": "'id'", "schedule_type": "O", "repeats": "-1"},
    )
    failures = client.get(reverse("admin:django_q_failure_changelist"))
    # then
    assert (listing.status_code, add.status_code, change.status_code, failures.status_code) == (200, 403, 403, 200)
    schedule.refresh_from_db()
    assert (schedule.name, schedule.func) == ("tongdai: SLA sweep", "tickets.tasks.sweep_sla")
    assert "resubmit_task" not in failures.content.decode()


def _schedule_form(func: str, **extra) -> dict:
    return {
        "name": "run it", "func": func, "schedule_type": "I", "minutes": "5", "repeats": "-1",
        "next_run_0": "2026-12-04", "next_run_1": "10:00:00", "cluster": "", "intended_date_kwarg": "", **extra,
    }  # fmt: skip


def test_a_schedule_may_name_only_a_registered_function(client, superuser):
    # given
    client.force_login(superuser)
    url = reverse("admin:django_q_schedule_add")
    # when
    refused = client.post(url, _schedule_form("os.system", args="'touch /tmp/owned'"))
    refused_hook = client.post(url, _schedule_form("tickets.tasks.sweep_sla", name="hooked", hook="os.system"))
    # then
    assert refused.status_code == 200
    assert "os.system is not a task of tongdai" in str(refused.context["adminform"].form.errors["func"])
    assert "os.system is not a task of tongdai" in str(refused_hook.context["adminform"].form.errors["hook"])
    assert not Schedule.objects.exists()
    # when: a registered one
    accepted = client.post(url, _schedule_form("tickets.tasks.sweep_sla"))
    # then
    assert accepted.status_code == 302
    assert Schedule.objects.get().func == "tickets.tasks.sweep_sla"


def test_the_product_schedules_are_registered():
    # Every function setup_schedules creates a schedule for is one the cluster will run.

    from core.task_registry import schedule_modules

    named = {entry[1] for module in schedule_modules() for entry in module.SCHEDULES}
    assert named <= registered_functions()
    assert "django.core.management.call_command" not in registered_functions()


def _run_queued_tasks() -> None:
    """Take what the ORM broker holds and run it through django-q2's own worker and monitor, as a cluster
    does."""
    broker = get_broker()
    tasks, results = Queue(), Queue()
    for _id, package in broker.dequeue() or []:
        from django_q.signing import SignedPackage

        tasks.put(SignedPackage.loads(package))
    tasks.put("STOP")
    worker(tasks, results, Value("f", -1))
    results.put("STOP")
    monitor(results)


@pytest.mark.django_db(transaction=True)
def test_the_cluster_refuses_a_schedule_naming_an_unregistered_function(tmp_path, monkeypatch, settings):
    # given: a schedule written past the admin (a shell, an old database), due now
    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr(Conf, "ORM", "default")
    proof = tmp_path / "owned"
    Schedule.objects.create(name="evil", func="os.system", args=repr(f"touch {proof}"),
                            schedule_type=Schedule.MINUTES, minutes=1)  # fmt: skip
    Schedule.objects.filter(name="evil").update(next_run=timezone.now() - dt.timedelta(seconds=30))
    # when: the cluster's scheduler queues it and a worker runs what was queued
    scheduler()
    queued = [row.task for row in OrmQ.objects.all()]
    _run_queued_tasks()
    # then: what was queued is the refusal, it failed with the reason, and no command ran
    assert [(task["func"], task["args"]) for task in queued] == [(REFUSED_TASK, ("os.system",))]
    failure = Failure.objects.get()
    assert "os.system is not a registered task function" in failure.result
    assert not proof.exists()


@pytest.mark.django_db(transaction=True)
def test_a_task_queued_from_code_with_an_unregistered_function_is_refused(monkeypatch):
    # given
    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr(Conf, "ORM", "default")
    # when
    async_task("os.system", "id")
    async_task("tickets.tasks.sweep_sla", hook="os.system")
    async_task("tickets.tasks.sweep_sla")
    # then
    queued = sorted((row.task["func"], row.task["args"]) for row in OrmQ.objects.all())
    assert queued == sorted(
        [(REFUSED_TASK, ("os.system",)), (REFUSED_TASK, ("os.system (hook)",)), ("tickets.tasks.sweep_sla", ())]
    )
