"""The URLs the benchmarks serve: the floor next to this app's webhook view,
and the PayConnect emulator (for ``start_payment``)."""

from django.urls import include, path

from . import floor

urlpatterns = [
    path("floor/payconnect/", floor.webhook, name="floor"),
    path("payments/", include("django_payments_ru.urls")),
    path("emulator/", include("django_payments_ru.emulator.urls")),
]
