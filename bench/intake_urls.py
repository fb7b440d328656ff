"""URLs of the intake benchmark's site: the product's, plus one bare view (see ``bench.intake``).

The bare view is the floor to compare with: Django receives the same JSON and inserts the same ticket row
with one SQL statement (no authentication, routing, deadlines, events or outbox). It exists only here.
"""

from __future__ import annotations

import os

from django.db import connection
from django.http import HttpResponseBadRequest, JsonResponse
from django.urls import path
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from core import json_input
from tongdai.urls import urlpatterns as product_urls

BARE_INSERT = """
INSERT INTO tickets_ticket (number, caller_name, caller_phone, caller_address, category_id, policy_id, channel,
    priority, description, unit_id, status, created_at, acknowledge_due, contact_due, resolve_due,
    acknowledge_breached, contact_breached, resolve_breached, escalation_level, customer_id)
SELECT 'X' || lpad(nextval('bench_bare_number')::text, 9, '0'), '', '', '', %(category)s, %(policy)s, %(channel)s,
    'normal', %(description)s, c.unit_id, 'new', %(now)s, %(now)s, %(now)s, %(now)s, false, false, false, 0,
    c.id
FROM customers_customer c WHERE c.code = %(code)s
RETURNING id, number
"""


@csrf_exempt
def bare_ticket(request):
    try:
        data = json_input.loads(request.body)
    except ValueError:
        return HttpResponseBadRequest("bad json")
    with connection.cursor() as cursor:
        cursor.execute(
            BARE_INSERT,
            {
                "category": int(os.environ["BENCH_CATEGORY"]),
                "policy": int(os.environ["BENCH_POLICY"]),
                "channel": data["channel"],
                "description": data["description"],
                "now": timezone.now(),
                "code": data["customer_code"],
            },
        )
        row = cursor.fetchone()
    return JsonResponse({"id": row[0], "number": row[1]}, status=201)


urlpatterns = [path("bench/bare-ticket/", bare_ticket), *product_urls]
