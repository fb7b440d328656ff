"""The outbox worker: a long-lived process that delivers outbox messages as they become due (``make run`` starts
one; in production ``deploy/tongdai-outbox.service``). SIGTERM or SIGINT stops it after the message it is
sending."""

import math
import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from crm.outbox import outbox_worker

# The longest wait between two looks at the outbox when nothing is due (an hour).
MAX_POLL_SECONDS = 3600


class Command(BaseCommand):
    help = (
        "Deliver outbox messages as they become due, until stopped (SIGTERM, Ctrl-C); with --once, one pass. "
        "Several workers may run at once: each message is claimed by one."
    )

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="deliver what is due now, then stop")
        parser.add_argument(
            "--poll", type=float, default=None,
            help=f"seconds to wait when nothing is due, above 0 and at most {MAX_POLL_SECONDS} "
            "(default TONGDAI_OUTBOX_POLL_SECONDS)",
        )  # fmt: skip

    def handle(self, *args, once=False, poll=None, **options):
        given = "--poll" if poll is not None else "TONGDAI_OUTBOX_POLL_SECONDS"
        poll = settings.TONGDAI_OUTBOX_POLL_SECONDS if poll is None else poll
        # nan would make every wait return at once (a loop on the database), inf cannot be waited for, 0 is a
        # loop too: each is refused, with a non-zero exit status a service manager sees.
        if not math.isfinite(poll) or not 0 < poll <= MAX_POLL_SECONDS:
            raise CommandError(
                f"{given} must be a number of seconds above 0 and at most {MAX_POLL_SECONDS}, not {poll:g}"
            )
        stop = threading.Event()
        if not once:
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: stop.set())
        sent = outbox_worker(poll=poll, stop=stop, once=once)
        if once or options["verbosity"] > 1:
            self.stdout.write(f"{sent} message(s) sent")
