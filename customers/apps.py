from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CustomersConfig(AppConfig):
    name = "customers"
    verbose_name = _("Customers")

    def ready(self) -> None:
        from crm import outbox, services
        from customers import privacy

        # The export log shows a phone or a national ID typed into an export's filters as its reader sees it.
        services.register_export_filters_shown(privacy.filters_as_seen)
        # The outbox's log line names a message's phone as the masked lists show it.
        outbox.register_phone_mask(privacy.mask_phone)
