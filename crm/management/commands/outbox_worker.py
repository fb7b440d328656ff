"""The outbox worker: a long-lived process that delivers outbox messages as they become due (``make run`` starts
one; in production ``deploy/tongdai-outbox.service``). SIGTERM or SIGINT stops it after the message it is
sending."""

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand

from crm.outbox import outbox_worker


class Command(BaseCommand):
    help = (
        "Deliver outbox messages as they become due, until stopped (SIGTERM, Ctrl-C); with --once, one pass. "
        "Several workers may run at once: each message is claimed by one."
    )

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="deliver what is due now, then stop")
        parser.add_argument(
            "--poll", type=float, default=None,
            help="seconds to wait when nothing is due (default TONGDAI_OUTBOX_POLL_SECONDS)",
        )  # fmt: skip

    def handle(self, *args, once=False, poll=None, **options):
        stop = threading.Event()
        if not once:
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: stop.set())
        poll = settings.TONGDAI_OUTBOX_POLL_SECONDS if poll is None else poll
        if poll <= 0:
            self.stderr.write("--poll must be more than 0 seconds")
            return
        sent = outbox_worker(poll=poll, stop=stop, once=once)
        if once or options["verbosity"] > 1:
            self.stdout.write(f"{sent} message(s) sent")
