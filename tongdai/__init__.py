"""The project: settings, URLs and the WSGI/ASGI entry points. The apps are ``crm`` (the organisation, its
staff and the shared plumbing, at the bottom), ``customers``, ``tickets``, ``billing`` and ``reports`` (the
managers' dashboard and monthly reports, on top)."""
