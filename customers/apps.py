from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CustomersConfig(AppConfig):
    name = "customers"
    verbose_name = _("Customers")

    def ready(self) -> None:
        from crm import services
        from customers import privacy

        # The export log shows a phone or a national ID typed into an export's filters as its reader sees it.
        services.register_export_filters_shown(privacy.filters_as_seen)
