import argparse
import datetime as dt

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from crm.models import OutboxRetrySource
from crm.outbox import outbox_retry
from crm.permissions import NotAllowed


def _moment(value: str) -> dt.datetime:
    """An ISO date (from its midnight) or date and time; without a zone it is the centre's local time."""
    try:
        moment = parse_datetime(value)
        if moment is None:
            day = parse_date(value)
            moment = dt.datetime.combine(day, dt.time()) if day else None
    except ValueError:
        moment = None
    if moment is None:
        raise CommandError(
            f"--since takes a date or a date and time (2026-05-01, 2026-05-01T08:00), not {value!r}"
        )
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


# The largest id a message can have: the database's 64-bit integer (BigAutoField).
MAX_ID = 2**63 - 1


def _message_id(value: str) -> int:
    """A message's id as typed: a whole number from 1 to ``MAX_ID`` (beyond it no message can have it, and the
    database cannot even be asked)."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"an id is a whole number, not {value!r}") from None
    if not 1 <= number <= MAX_ID:
        raise argparse.ArgumentTypeError(f"an id is from 1 to {MAX_ID}, not {value}")
    return number


class Command(BaseCommand):
    help = (
        "Give failed outbox messages back to the delivery sweep: the ones named by id, or every failed one "
        "(--all-failed), optionally only those written since a time (--since). Each retry is recorded."
    )

    def add_arguments(self, parser):
        parser.add_argument("ids", nargs="*", type=_message_id, help="ids of the messages to retry")
        parser.add_argument("--all-failed", action="store_true", help="retry every failed message")
        parser.add_argument("--since", help="only messages written since this date or time (local time)")
        parser.add_argument("--by", default="", help="the username recorded as having retried them")

    def handle(self, *args, ids, all_failed, since, by, **options):
        if bool(ids) == all_failed:
            raise CommandError("Name the messages to retry by id, or give --all-failed (not both).")
        actor = None
        if by:
            actor = get_user_model().objects.filter(username__iexact=by).first()
            if actor is None:
                raise CommandError(f"There is no user {by!r}.")
        try:
            retried = outbox_retry(
                actor=actor,
                source=OutboxRetrySource.COMMAND,
                message_ids=ids or None,
                since=_moment(since) if since else None,
            )
        except NotAllowed as refused:  # --by names someone who may not retry messages
            raise CommandError(f"{by} may not retry outbox messages: {refused}") from refused
        left = sorted(set(ids) - set(retried))
        if left:
            self.stdout.write(f"Not failed (or not found), left alone: {', '.join(map(str, left))}.")
        if retried:
            self.stdout.write(
                f"{len(retried)} message(s) given back to the delivery sweep: {', '.join(map(str, retried))}."
            )
        else:
            self.stdout.write("No failed message to retry.")
