"""``path("emulator/", include("django_payments_ru.emulator.urls"))``.

Serves each registered emulator (see :mod:`.registry`) under ``<slug>/`` (URL
namespace ``payments_ru_emulator:<slug>``) and the shared "done" page.
"""

from __future__ import annotations

from django.apps import apps
from django.urls import URLPattern, URLResolver, include, path

app_name = "payments_ru_emulator"

urlpatterns: list[URLPattern | URLResolver] = []
# Without the app its models cannot load: this include then serves nothing, and
# check payments_ru.E018 says why, instead of an import error of the URLconf.
if apps.is_installed("django_payments_ru.emulator"):
    from . import views
    from .registry import emulator_modules

    urlpatterns += [
        path("done/<slug:slug>/<str:external_id>/", views.done, name="done"),
    ]
    urlpatterns += [
        path(f"{slug}/", include((module.urlpatterns, slug)))
        for slug, module in emulator_modules().items()
    ]
