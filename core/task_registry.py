"""The functions the task cluster may run, and the guard that holds it to them.

django-q2 runs whatever dotted path a schedule or a queued task names, so a schedule naming ``os.system``
would run a shell command. The product's task functions are declared in each app's ``schedules.py``
(``crm.schedules``); the schedule admin offers only those, and every task queued to the cluster, from a
schedule or from code, is checked as it is queued (django-q2's ``pre_enqueue`` signal, which the cluster's
scheduler sends too). A task naming anything else (or with a hook that is not registered) is replaced by
``crm.tasks.refused_task``, which fails with the reason: the failure is listed in the admin's failed tasks and
nothing of the named function runs.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from importlib import import_module

from django.apps import apps
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

logger = logging.getLogger("tongdai.tasks")

REFUSED_TASK = "crm.tasks.refused_task"

#: What every schedule the product declares is named with (``SCHEDULES``): a schedule under this prefix that is no
#: longer declared (renamed or dropped in code) is the product's old one, and ``setup_schedules`` removes it.
PRODUCT_SCHEDULE_PREFIX = "tongdai: "


def schedule_modules() -> list:
    """The ``schedules`` module of every installed app that has one, in the order of ``INSTALLED_APPS``."""
    modules = []
    for config in apps.get_app_configs():
        name = f"{config.name}.schedules"
        if importlib.util.find_spec(name) is not None:
            modules.append(import_module(name))
    return modules


def declared_schedule_names() -> frozenset[str]:
    """The names of the schedules the product declares now (every app's ``SCHEDULES``)."""
    return frozenset(entry[0] for module in schedule_modules() for entry in module.SCHEDULES)


def on_demand_functions() -> frozenset[str]:
    """The functions the apps queue on demand (``TASKS``), which an administrator may also schedule by hand."""
    return frozenset(name for module in schedule_modules() for name in getattr(module, "TASKS", ()))


@functools.cache
def registered_functions() -> frozenset[str]:
    """Every dotted function the cluster may run: each app's scheduled and on-demand tasks."""
    names: set[str] = set()
    for module in schedule_modules():
        names.update(entry[1] for entry in module.SCHEDULES)
        names.update(getattr(module, "TASKS", ()))
    return frozenset(names)


def dotted_name(func) -> str:
    """The dotted path of a task's function, as django-q2 stores it (a string, or a callable's path)."""
    if isinstance(func, str):
        return func
    return f"{getattr(func, '__module__', '')}.{getattr(func, '__qualname__', repr(func))}"


def check_task_function(func) -> None:
    """Refuse a function the project does not register, with the list of those it does."""
    name = dotted_name(func).strip()
    if name not in registered_functions():
        raise ValidationError(
            _("%(func)s is not a task of tongdai. Choose one of: %(known)s.")
            % {"func": name or "—", "known": ", ".join(sorted(registered_functions()))},
            code="unregistered_task",
        )


def refuse_unregistered_task(sender, task: dict, **kwargs) -> None:
    """``pre_enqueue`` receiver: a task naming an unregistered function or hook is replaced, before it is
    signed and queued, by one that fails with the reason (raising here would abort the cluster's scheduler
    for every other schedule in the same pass)."""
    func, hook = dotted_name(task.get("func")), task.get("hook")
    problem = None
    if func == REFUSED_TASK:
        return
    if func not in registered_functions():
        problem = func
    elif hook and dotted_name(hook) not in registered_functions():
        problem = f"{dotted_name(hook)} (hook)"
    if problem is None:
        return
    logger.error("refused to queue task %s: %s is not a registered task function", task.get("name"), problem)
    task["func"] = REFUSED_TASK
    task["args"] = (problem,)
    task["kwargs"] = {}
    task.pop("hook", None)
