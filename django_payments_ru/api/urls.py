"""``path("payments/api/", include("django_payments_ru.api.urls"))``.

The customer endpoints (:mod:`.customer`), the merchant endpoints
(:mod:`.merchant`) and the OpenAPI schema (:mod:`.schema`); docs/api.rst."""

from . import customer, merchant, schema

app_name = "django_payments_ru_api"

urlpatterns = [*customer.urlpatterns, *merchant.urlpatterns, *schema.urlpatterns]
