"""Merchant endpoints (docs/api.rst)."""

urlpatterns: list = []
