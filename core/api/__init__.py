"""The API's base classes: errors, filters, pagination, permissions, scoped viewsets, serializers,
throttles. Each app's ``api`` package builds on them."""
