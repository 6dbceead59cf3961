from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("payments/", include("django_payments_ru.urls")),
    path("payments/api/", include("django_payments_ru.api.urls")),
    path("emulator/", include("django_payments_ru.emulator.urls")),
    # The example shop, for the end-to-end test (tests/test_e2e.py).
    path("", include("shop.urls")),
]
