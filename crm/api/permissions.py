"""API permissions: the model permission of the user's role, for reads too (the groups grant view_*)."""

from rest_framework.permissions import DjangoModelPermissions


class ScopedModelPermissions(DjangoModelPermissions):
    perms_map = {
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "POST": ["%(app_label)s.add_%(model_name)s"],
        "PUT": ["%(app_label)s.change_%(model_name)s"],
        "PATCH": ["%(app_label)s.change_%(model_name)s"],
        "DELETE": ["%(app_label)s.delete_%(model_name)s"],
    }

    def _queryset(self, view):
        """Only the model is needed here: the view's base queryset names it without building the user's scoped
        one (``get_queryset`` still scopes every row the view reads)."""
        queryset = getattr(view, "queryset", None)
        return queryset if queryset is not None else super()._queryset(view)


class CanChangeModel(ScopedModelPermissions):
    """For POST actions that move an existing object: they need the change permission, not add."""

    def has_permission(self, request, view):
        model = self._queryset(view).model
        return bool(
            request.user
            and request.user.is_authenticated
            and request.user.has_perm(f"{model._meta.app_label}.change_{model._meta.model_name}")
        )


def needs(*perms: str):
    """A permission class for one action: the user must hold every named permission (reads included)."""

    class Needs(DjangoModelPermissions):
        def has_permission(self, request, view):
            user = request.user
            return bool(user and user.is_authenticated and user.has_perms(perms))

    Needs.__name__ = f"Needs({', '.join(perms)})"
    return Needs
