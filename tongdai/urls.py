"""URLs: the admin (staff), the API under /api/v1/, its OpenAPI schema and docs."""

from django.conf import settings
from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.urls import include, path, re_path
from django.utils.csp import CSP
from django.views.decorators.csp import csp_override
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from billing.api.views import DisputeViewSet, InvoiceViewSet, ReadingViewSet
from crm.api.views import UnitViewSet
from crm.health import health
from customers.api.views import ContractViewSet, CustomerViewSet, MeterViewSet
from reports.admin_views import dashboard_view
from tickets import views as field_views
from tickets.api.views import InteractionViewSet, OutageStatusView, TicketViewSet, WorkOrderViewSet

router = DefaultRouter()
router.trailing_slash = "/?"  # /api/v1/customers/lookup?q=… and …/lookup/?q=… both work
router.register("units", UnitViewSet, basename="unit")
router.register("customers", CustomerViewSet, basename="customer")
router.register("contracts", ContractViewSet, basename="contract")
router.register("meters", MeterViewSet, basename="meter")
router.register("tickets", TicketViewSet, basename="ticket")
router.register("work-orders", WorkOrderViewSet, basename="workorder")
router.register("interactions", InteractionViewSet, basename="interaction")
router.register("invoices", InvoiceViewSet, basename="invoice")
router.register("readings", ReadingViewSet, basename="reading")
router.register("disputes", DisputeViewSet, basename="dispute")

# Swagger UI under the Content-Security-Policy: its start-up script is served at the page's own address
# (``?script``) rather than inline, and its stylesheet's icons are data: images. Someone not signed in (or whose
# session still owes its second-factor code) is sent to the sign-in page, as on the field page; the schema
# (/api/schema/) keeps the API's 401.
api_docs = login_required(
    csp_override({**settings.SECURE_CSP, "img-src": [CSP.SELF, "data:"]})(
        SpectacularSwaggerSplitView.as_view(url_name="schema", template_name="api/docs.html")
    )
)

# A database connection error outside a view answers 503 with Retry-After, not the 500 page.
handler500 = "core.middleware.server_error"

urlpatterns = [
    path("health/", health, name="health"),
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("admin/dashboard/", admin.site.admin_view(dashboard_view), name="dashboard"),
    path("admin/", admin.site.urls),
    re_path(r"^api/v1/outages/status/?$", OutageStatusView.as_view(), name="outage-status"),
    path("api/v1/", include(router.urls)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", api_docs, name="api-docs"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("field/", field_views.work_orders, name="field-work-orders"),
    path("tickets/attachments/<int:pk>/", field_views.attachment_download, name="ticket-attachment"),
]
