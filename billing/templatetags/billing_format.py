"""``{% load billing_format %}``: ``{{ amount|money }}`` → ``1.369.721 ₫``, ``{{ n|kwh }}``, ``{{ line.label|line_label }}``."""

from django import template

from billing import money as rules

register = template.Library()


@register.filter
def money(value):
    return rules.money(value)


@register.filter
def kwh(value):
    return rules.kwh(value)


@register.filter
def line_label(value):
    return rules.line_label(value)


@register.simple_tag
def dispute_link(ticket) -> str:
    """The dispute form for an open billing or meter complaint ticket with a customer; else nothing."""
    from urllib.parse import urlencode

    from django.conf import settings
    from django.urls import reverse

    if ticket is None or not ticket.customer_id or not ticket.is_open:
        return ""
    if ticket.category.code not in settings.TONGDAI_DISPUTE_CATEGORIES:
        return ""
    return reverse("admin:billing_dispute_add") + "?" + urlencode({"ticket": ticket.number})
