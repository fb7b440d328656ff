from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CrmConfig(AppConfig):
    name = "crm"
    verbose_name = _("Organisation and staff")

    def ready(self) -> None:
        from django.db.models.signals import post_migrate
        from django_q.signals import pre_enqueue

        from crm import db, roles, task_registry

        # Role groups are reference data: (re)created idempotently after every migrate.
        post_migrate.connect(roles.sync_role_groups_after_migrate, sender=self)
        db.install_sqlite_functions()
        # The cluster runs only the product's registered task functions, whoever queued the task.
        pre_enqueue.connect(task_registry.refuse_unregistered_task, dispatch_uid="tongdai-task-registry")
