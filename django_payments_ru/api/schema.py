"""The OpenAPI schema (docs/api.rst)."""

urlpatterns: list = []
