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

    def has_permission(self, request, view):
        user = request.user
        if not (user and user.is_authenticated):
            return False
        model = view_model(view)
        if model is None:
            return True  # the API's root page: a list of links, no model behind it
        return user.has_perms(self.get_required_permissions(request.method, model))


def view_model(view):
    """The model a view serves. Its base queryset names it without building the user's scoped one
    (``get_queryset`` still scopes every row the view reads); None for the router's root page."""
    from rest_framework.routers import APIRootView

    queryset = getattr(view, "queryset", None)
    if queryset is None:
        if isinstance(view, APIRootView):
            return None
        queryset = view.get_queryset()
    return queryset.model


class CanChangeModel(ScopedModelPermissions):
    """For POST actions that move an existing object: they need the change permission, not add."""

    def has_permission(self, request, view):
        model = view_model(view)
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
