"""The plumbing every app stands on, with no data of its own: database helpers and the set-based reference
checks (``db``, ``integrity``), the read replica's router, JSON input bounds, request and task logs, the
middleware, the task registry, backups, login-security helpers, and the API's base classes (``core.api``).
It imports no app of the product (``tests/test_layers.py``)."""
