import axes.apps
import django.contrib.admin.apps
from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CrmConfig(AppConfig):
    name = "crm"
    verbose_name = _("Organisation and staff")

    def ready(self) -> None:
        from django.db.models.signals import post_migrate
        from django_q.signals import post_execute_in_worker, pre_enqueue, pre_execute

        from core import db, exports, logs, task_registry
        from crm import roles, services, shared_cache

        # Role groups are reference data: (re)created idempotently after every migrate.
        post_migrate.connect(roles.sync_role_groups_after_migrate, sender=self)
        db.install_sqlite_functions()
        # The cluster runs only the product's registered task functions, whoever queued the task.
        pre_enqueue.connect(task_registry.refuse_unregistered_task, dispatch_uid="tongdai-task-registry")
        shared_cache.connect_invalidation()
        # Every export, from any app's admin or job, is recorded in the organisation's export log.
        exports.register_export_log(start=services.export_log_start, finish=services.export_log_finish)
        # One log line per task the cluster runs (its name, duration and success).
        pre_execute.connect(logs.task_started, dispatch_uid="tongdai-task-log-start")
        post_execute_in_worker.connect(logs.task_finished, dispatch_uid="tongdai-task-log")


class TongdaiAdminConfig(django.contrib.admin.apps.AdminConfig):
    """Django's admin, whose site asks administrators and superusers for a one-time code (``crm.admin_site``)."""

    default = False  # named in INSTALLED_APPS; CrmConfig stays this module's default
    default_site = "crm.admin_site.TongdaiAdminSite"


class LoginSecurityConfig(axes.apps.AppConfig):
    """django-axes (failed logins and lockouts), named for the admin's index in the interface's language."""

    default = False
    verbose_name = _("Login security")
