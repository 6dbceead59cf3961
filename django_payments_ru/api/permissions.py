"""Who may call the merchant endpoints: by default a user with the Django model
permission each endpoint names (``required_permissions`` on the view, e.g.
``django_payments_ru.change_invoice`` for a refund), the same permissions the
admin asks for. Replace through ``PAYMENTS_RU["API_MERCHANT_PERMISSION_CLASSES"]``."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request


class MerchantPermissions(BasePermission):
    """An authenticated user holding every permission in the view's
    ``required_permissions`` (superusers hold all)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        needed = getattr(view, "required_permissions", None)
        if needed is None:
            # A merchant view that names no permission is a bug: refuse.
            return False
        return bool(user.has_perms(needed))
