"""Staff pages outside the admin: the field crew's phone-sized list of work orders with the next step as a
button, and the download of a ticket's attachment (only for staff who see the ticket)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Case, Value, When
from django.http import FileResponse, Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.csp import CSP
from django.views.decorators.csp import csp_override
from django.views.decorators.http import require_http_methods

from core.text import NOTE_MAX_CHARS
from customers import privacy
from customers.normalise import display_phone
from tickets import services
from tickets.models import (
    ResolutionCode,
    TicketAttachment,
    WorkOrder,
    WorkOrderStatus,
    attachment_content_type,
)

NEXT_STEPS = {
    WorkOrderStatus.ISSUED: [WorkOrderStatus.ACKNOWLEDGED],
    WorkOrderStatus.ACKNOWLEDGED: [WorkOrderStatus.CONTACTED],
    WorkOrderStatus.CONTACTED: [WorkOrderStatus.ON_SITE, WorkOrderStatus.DONE],
    WorkOrderStatus.ON_SITE: [WorkOrderStatus.DONE],
}


@login_required
@require_http_methods(["GET", "POST"])
def work_orders(request):
    if not request.user.has_perm("tickets.change_workorder"):
        raise PermissionDenied  # the page is for the people who do the work
    visible = WorkOrder.objects.for_user(request.user)
    if request.method == "POST":
        number = request.POST.get("order", "")
        if not (number.isascii() and number.isdigit() and len(number) <= 18):
            raise Http404  # a garbled id (an old bookmark, a cut-off form) names no order
        order = get_object_or_404(visible, pk=int(number))
        try:
            services.work_order_advance(
                actor=request.user, order=order, to=request.POST.get("to", ""),
                resolution_code=request.POST.get("resolution_code", ""), note=request.POST.get("note", ""),
            )  # fmt: skip
        except ValidationError as exc:
            for message in exc.messages:
                messages.error(request, f"{order}: {message}")
        return HttpResponseRedirect(reverse("field-work-orders"))
    # The crew member's own orders first (those given to them by name), then the unit's others, oldest first.
    orders = list(
        visible.open()
        .select_related("ticket__customer", "ticket__category")
        .prefetch_related("ticket__customer__phones")
        .annotate(theirs=Case(When(crew_id=request.user.pk, then=Value(0)), default=Value(1)))
        .order_by("theirs", "issued_at")[:100]
    )
    seen = privacy.visibility(request.user)
    for order in orders:
        order.next_steps = [(step, WorkOrderStatus(step).label) for step in NEXT_STEPS.get(order.status, [])]
        order.phone_shown, order.phone_to_call = _phone_to_call(order.ticket, seen)
    # Every open order can be called off by its crew, with the reason (a typed note) for the dispatcher.
    return render(
        request,
        "field/work_orders.html",
        {
            "orders": orders,
            "resolutions": ResolutionCode.choices,
            "cancel_step": WorkOrderStatus.CANCELLED,
            "note_max_chars": NOTE_MAX_CHARS,
        },
    )


def _phone_to_call(ticket, seen: privacy.Visibility) -> tuple[str, str]:
    """The number the crew calls (the caller's, else the customer's primary one) as the user may see it, and
    the number a ``tel:`` link dials (empty when the user sees it masked: a masked number cannot be called)."""
    phone = ticket.caller_phone
    if not phone and ticket.customer is not None:
        phone = next((p.number for p in ticket.customer.phones.all() if p.is_primary), "")
    if not phone:
        return "", ""
    shown = seen.phone(display_phone(phone))
    return shown, phone if not privacy.is_masked(shown) else ""


# A file's own page runs nothing and loads nothing: "sandbox" without a value (Django writes the bare directive
# for True; the stubs know only lists).
ATTACHMENT_CSP = {"default-src": [CSP.NONE], "sandbox": True}


@login_required
@csp_override(ATTACHMENT_CSP)  # type: ignore[arg-type]
def attachment_download(request, pk: int):
    """Files are never served from a public folder: this checks the ticket's scope on every download (the API's
    ``tickets/<id>/attachments/<id>/download/`` does the same for a token)."""
    if not request.user.has_perm("tickets.view_ticketattachment"):
        raise PermissionDenied
    return attachment_response(get_object_or_404(TicketAttachment.objects.for_user(request.user), pk=pk))


def attachment_response(attachment: TicketAttachment) -> FileResponse:
    """The one way a kept file leaves the system: always a download, of the type its extension implies (not the
    type its uploader claimed), never sniffed by the browser; 404 when its file is gone."""
    try:
        handle = attachment.file.open("rb")
    except FileNotFoundError as exc:
        raise Http404 from exc
    response = FileResponse(
        handle,
        as_attachment=True,
        filename=attachment.name,
        content_type=attachment_content_type(attachment.name),
    )
    response["X-Content-Type-Options"] = "nosniff"
    return response
