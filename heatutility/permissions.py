"""API permissions: staff act through their role's Django model permissions."""

from rest_framework.permissions import DjangoModelPermissions


class StaffModelPermissions(DjangoModelPermissions):
    """Model permissions for staff users, with ``view`` required for reads.

    Customers and meter vendors never pass this check: they have their own scoped
    endpoints (the portal and the vendor API).
    """

    perms_map = {
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": [],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "POST": ["%(app_label)s.add_%(model_name)s"],
        "PUT": ["%(app_label)s.change_%(model_name)s"],
        "PATCH": ["%(app_label)s.change_%(model_name)s"],
        "DELETE": ["%(app_label)s.delete_%(model_name)s"],
    }

    def has_permission(self, request, view):
        user = request.user
        if not (user and user.is_authenticated and user.is_staff and user.is_active):
            return False
        return super().has_permission(request, view)


class HasPermission:
    """``permission_classes = [HasPermission.of("tariffs.approve_tariffversion")]``."""

    @staticmethod
    def of(*perms: str):
        from rest_framework.permissions import BasePermission

        class _Has(BasePermission):
            message = f"Requires permission: {', '.join(perms)}."

            def has_permission(self, request, view):
                user = request.user
                return bool(
                    user and user.is_authenticated and user.is_staff and user.has_perms(perms)
                )

        _Has.__name__ = "Has_" + "_".join(p.replace(".", "_") for p in perms)
        return _Has


class RequirePermissionMixin:
    """For viewset actions that map to a service rather than a model verb."""

    def require(self, perm: str) -> None:
        if not self.request.user.has_perm(perm):
            self.permission_denied(self.request, message=f"Requires permission: {perm}.")
