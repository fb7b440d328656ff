"""django-q2 entry points of the customers app: each calls a service and is safe to run twice."""

from customers.services import search_statistics_refresh


def refresh_search_statistics() -> int:
    return search_statistics_refresh()
