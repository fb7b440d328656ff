from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = _("Billing")

    def ready(self) -> None:
        from billing import dashboard
        from billing.selectors import CARD_ANNOTATIONS, card_invoices
        from customers import card_sections

        card_sections.provide("invoices", card_invoices, annotations=CARD_ANNOTATIONS)
        dashboard.register_widgets()
