from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TicketsConfig(AppConfig):
    name = "tickets"
    verbose_name = _("Tickets")

    def ready(self) -> None:
        from customers import card_sections
        from tickets.selectors import card_open_tickets, card_outages

        card_sections.provide("tickets", card_open_tickets)
        card_sections.provide("outages", card_outages)
