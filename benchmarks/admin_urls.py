"""The admin benchmark's URLs: the admin site, and this app's views."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("payments/", include("django_payments_ru.urls")),
]
