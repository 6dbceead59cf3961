"""``path("payments/api/", include("django_payments_ru.api.urls"))``.

The customer endpoints (:mod:`.customer`), the merchant endpoints
(:mod:`.merchant`) and the OpenAPI schema (:mod:`.schema`); docs/api.rst.
Anything else under the prefix is a 404 in the error shape (JSON, not
Django's HTML page)."""

from django.urls import re_path

from . import customer, merchant, schema
from .errors import not_found

app_name = "django_payments_ru_api"

urlpatterns = [
    *customer.urlpatterns,
    *merchant.urlpatterns,
    *schema.urlpatterns,
    # Last: what no pattern above matches (a token with a slash, a typo).
    re_path(r"^[\s\S]*\Z", not_found, name="not-found"),
]
