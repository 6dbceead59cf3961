"""``path("emulator/", include("django_payments_ru.emulator.urls"))``.

Serves each provider's emulator under ``<slug>/`` (URL namespace
``payments_ru_emulator:<slug>``) and the shared "done" page.
"""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, include, path

from . import views
from .registry import emulator_modules

app_name = "payments_ru_emulator"

urlpatterns: list[URLPattern | URLResolver] = [
    path("done/<slug:slug>/<str:external_id>/", views.done, name="done"),
]
urlpatterns += [
    path(f"{slug}/", include((module.urlpatterns, slug)))
    for slug, module in emulator_modules().items()
]
