from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


def _number_sequences(sender, using="default", **kwargs) -> None:
    """Ticket numbers of this year and the next come from sequences on PostgreSQL: have them ready."""
    from django.db import connections
    from django.utils import timezone

    from tickets.services import ensure_number_sequence

    if connections[using].vendor != "postgresql":
        return
    year = timezone.localdate().year
    for y in (year, year + 1):
        ensure_number_sequence(y)


class TicketsConfig(AppConfig):
    name = "tickets"
    verbose_name = _("Tickets")

    def ready(self) -> None:
        from crm import shared_cache
        from customers import card_sections
        from tickets import dashboard
        from tickets.models import Category, Incident, SlaPolicy
        from tickets.selectors import card_open_tickets, card_outages

        card_sections.provide("tickets", card_open_tickets)
        card_sections.provide("outages", card_outages)
        dashboard.register_widgets()
        post_migrate.connect(_number_sequences, sender=self)
        shared_cache.invalidate_on_change(shared_cache.CATALOGUE, Category, SlaPolicy)
        shared_cache.invalidate_on_change(shared_cache.OUTAGES, Incident)
