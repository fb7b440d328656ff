"""What the processes keep between requests, and how a change reaches every one of them at once.

A busy API would otherwise read a user's permissions and units, a customer's unit, the catalogue and a unit's
dispatchers on every request. They are kept in Django's cache (``CACHES``: Redis, shared by every web process
and task worker, when one is configured; the process's memory otherwise) for ``TONGDAI_AUTH_CACHE_SECONDS``
(0: not kept), each under the *generations* of the groups of rows it was computed from:

- ``STAFF``: users, their groups and permissions, staff profiles and the units they serve;
- ``ORGANISATION``: the units (a merge changes who sees what);
- ``CATALOGUE``: the request categories and their time limits;
- ``OUTAGES``: the open outage incidents of each unit (intake links outage calls to them; the card shows them).

A value is stored with the generations it was computed under and read in one round trip together with the
current ones. Within a request (``RequestGenerationsMiddleware``) the current generations of every group are
read once, at the first value asked for, and a value already read by this process under those generations is
taken from the process's memory: a request asks the shared cache once, not once per value (each ask builds a
Redis client, the largest cost of an intake after its own queries). A change made by any process is still
seen by every request that starts after it. A change to any row of a group starts a new generation of that group (``changed``, called by the
receivers that ``invalidate_on_change`` connects and by the services that write with ``update()``), so every
process computes the value again on its next read. Those receivers only touch the cache, never the database.

API tokens and users are not cached: they are read from the database on every request, so a revoked token or
a deactivated user is refused at once.
"""

from __future__ import annotations

import pickle
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.conf import settings
from django.core.cache import caches
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save

STAFF = "staff"
ORGANISATION = "organisation"
CATALOGUE = "catalogue"
OUTAGES = "outages"
GROUPS = (STAFF, ORGANISATION, CATALOGUE, OUTAGES)

# The generations read by the current request (None outside a request: every read asks the shared cache).
_request_generations: ContextVar[dict[str, str] | None] = ContextVar("shared_cache_generations", default=None)
# What this process has read, by key: (generations, until (monotonic seconds), the pickled value).
_process_copies: dict[str, tuple[tuple[str, ...], float, bytes]] = {}
_PROCESS_COPIES_MAX = 5_000  # a few hundred users and units a process; a bound, not a working set

def cache():
    """The cache every process shares (``CACHES["default"]``)."""
    return caches["default"]


def _generation_key(group: str) -> str:
    return f"generation:{group}"


def remember[T](key: str, groups: tuple[str, ...], compute: Callable[[], T]) -> T:
    """The value kept under ``key`` if it was computed under the current generations of ``groups``, else
    ``compute()``, kept for ``TONGDAI_AUTH_CACHE_SECONDS``. Each read gets its own copy of the value."""
    seconds = settings.TONGDAI_AUTH_CACHE_SECONDS
    if seconds <= 0:
        return compute()
    known = _request_generations.get()
    if known is not None:
        return _remember_in_request(known, key, groups, compute, seconds)
    found = cache().get_many([key, *(_generation_key(group) for group in groups)])
    generations = tuple(_current_generations(groups, found).values())
    item = found.get(key)
    if item is not None and item[0] == generations:
        return item[1]
    value = compute()
    cache().set(key, (generations, value), seconds)
    return value


def read(key: str, default=None):
    """A plain value of the shared cache (not kept under generations, e.g. a throttle's history). A request's
    first read of the cache brings the generations with it: one round trip for both."""
    known = _request_generations.get()
    if known is None or known:
        return cache().get(key, default)
    found = cache().get_many([key, *(_generation_key(group) for group in GROUPS)])
    known.update(_current_generations(GROUPS, found))
    return found.get(key, default)


def _remember_in_request[T](
    known: dict[str, str], key: str, groups: tuple[str, ...], compute: Callable[[], T], seconds: int
) -> T:
    """``remember`` within a request: the generations read once per request, the value from this process's copy
    when it was read under them."""
    if not known:
        known.update(_current_generations(GROUPS))
    for group in groups:
        if group not in known:  # a group outside GROUPS
            known.update(_current_generations((group,)))
    generations = tuple(known[group] for group in groups)
    copy = _process_copies.get(key)
    if copy is not None and copy[0] == generations and copy[1] > time.monotonic():
        return pickle.loads(copy[2])
    item = cache().get(key)
    if item is not None and item[0] == generations:
        value = item[1]
    else:
        value = compute()
        cache().set(key, (generations, value), seconds)
    if len(_process_copies) >= _PROCESS_COPIES_MAX:
        _process_copies.clear()
    _process_copies[key] = (generations, time.monotonic() + seconds, pickle.dumps(value))
    return value


def _current_generations(groups: tuple[str, ...], found: dict | None = None) -> dict[str, str]:
    """The current generation of each group (read in one round trip unless ``found`` holds them), starting one
    for a group that has none."""
    shared = cache()
    if found is None:
        found = shared.get_many([_generation_key(group) for group in groups])
    generations = {}
    for group in groups:
        generation = found.get(_generation_key(group))
        if generation is None:  # never set, or evicted: start one (another process may start it first)
            shared.add(_generation_key(group), uuid.uuid4().hex, timeout=None)
            generation = shared.get(_generation_key(group)) or uuid.uuid4().hex
        generations[group] = generation
    return generations


@contextmanager
def request_scope() -> Iterator[None]:
    """Within this block the generations are read once, at the first cached value (see the module)."""
    token = _request_generations.set({})
    try:
        yield
    finally:
        _request_generations.reset(token)


class RequestGenerationsMiddleware:
    """Each request is one ``request_scope``."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with request_scope():
            return self.get_response(request)


def _start_generations(groups: tuple[str, ...]) -> None:
    started = {group: uuid.uuid4().hex for group in groups}
    cache().set_many({_generation_key(group): generation for group, generation in started.items()}, timeout=None)
    known = _request_generations.get()
    if known:  # this request sees its own change at once
        known.update(started)


def changed(*groups: str) -> None:
    """Every value computed from ``groups`` is stale: start new generations now, and again when the current
    transaction commits (a process that read the rows before the commit may have kept what it read)."""
    _start_generations(groups)
    transaction.on_commit(lambda: _start_generations(groups))


def invalidate_on_change(group: str, *models) -> None:
    """Start a new generation of ``group`` whenever a row of ``models`` is saved or deleted, or one of their
    many-to-many relations changes."""
    for model in models:
        uid = f"shared_cache:{group}:{model._meta.label}"
        post_save.connect(_on_save(group), sender=model, weak=False, dispatch_uid=f"{uid}:save")
        post_delete.connect(_on_change(group), sender=model, weak=False, dispatch_uid=f"{uid}:delete")
        for field in model._meta.local_many_to_many:
            m2m_changed.connect(
                _on_change(group), sender=field.remote_field.through, weak=False, dispatch_uid=f"{uid}:{field.name}"
            )


def _on_change(group: str):
    def receiver(sender, **kwargs) -> None:
        if kwargs.get("action", "post_").startswith("post_"):
            changed(group)

    return receiver


def _on_save(group: str):
    def receiver(sender, update_fields=None, **kwargs) -> None:
        # A login writes the user's last_login: nothing cached depends on it.
        if update_fields is None or set(update_fields) != {"last_login"}:
            changed(group)

    return receiver


def connect_invalidation() -> None:
    """The organisation's and the staff's rows (the catalogue's are connected by the tickets app)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from crm.models import StaffProfile, Unit

    invalidate_on_change(STAFF, get_user_model(), Group, StaffProfile)
    invalidate_on_change(ORGANISATION, Unit)
