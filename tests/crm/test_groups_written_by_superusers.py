"""A group's permissions are every member's: only a superuser adds, changes or deletes a group. Whoever else
was given ``auth.change_group`` (no role has it) sees the groups and cannot grant through them."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.test import override_settings
from django.urls import reverse

from crm.models import Role
from crm.roles import group_name

User = get_user_model()


def _local_admin(make_staff, org, *codenames):
    """A supervisor of the home unit's company given every group right directly."""
    user = make_staff(Role.SUPERVISOR, [org["home"]])
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="auth", codename__in=codenames))
    return User.objects.get(pk=user.pk)


@override_settings(TONGDAI_ADMIN_2FA=False)
def test_a_non_superuser_who_holds_group_rights_cannot_write_a_group(client, org, make_staff):
    actor = _local_admin(make_staff, org, "view_group", "add_group", "change_group", "delete_group")
    group = Group.objects.get(name=group_name(Role.SUPERVISOR))  # their own role's group
    before = set(group.permissions.values_list("pk", flat=True))
    beyond = Permission.objects.get(content_type__app_label="auth", codename="delete_user")
    assert not actor.has_perm("auth.delete_user")
    client.force_login(actor)
    change = reverse("admin:auth_group_change", args=[group.pk])
    # The page is read-only for them (Django's view page), and a forged post changes nothing.
    page = client.get(change)
    assert page.status_code == 200 and not page.context["has_change_permission"]
    response = client.post(change, {"permissions": [*map(str, before), str(beyond.pk)]})
    assert response.status_code == 403
    assert set(group.permissions.values_list("pk", flat=True)) == before
    assert not User.objects.get(pk=actor.pk).has_perm("auth.delete_user")
    # Nor may they add a group holding what they lack, or delete one.
    groups = Group.objects.count()
    assert client.post(reverse("admin:auth_group_add"), {"name": "x", "permissions": [beyond.pk]}).status_code == 403
    assert client.post(reverse("admin:auth_group_delete", args=[group.pk]), {"post": "yes"}).status_code == 403
    assert Group.objects.count() == groups and Group.objects.filter(pk=group.pk).exists()


@override_settings(TONGDAI_ADMIN_2FA=False)
def test_a_superuser_still_writes_a_group(admin_client):
    group = Group.objects.create(name="Kiểm toán viên")
    permission = Permission.objects.get(content_type__app_label="auth", codename="view_user")
    response = admin_client.post(
        reverse("admin:auth_group_change", args=[group.pk]), {"name": group.name, "permissions": [permission.pk]}
    )
    assert response.status_code == 302
    assert list(group.permissions.all()) == [permission]
