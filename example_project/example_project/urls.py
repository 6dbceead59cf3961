from django.conf import settings
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("payments/", include("django_payments_ru.urls")),
    # The JSON API (docs/api.rst); its schema at /payments/api/schema/.
    path("payments/api/", include("django_payments_ru.api.urls")),
]
if settings.EMULATOR_ENABLED:
    # The offline provider emulators: the demo pays without leaving this server.
    urlpatterns.append(path("emulator/", include("django_payments_ru.emulator.urls")))
urlpatterns.append(path("", include("shop.urls")))
