"""``path("payments/", include("django_payments_ru.urls"))``."""

from django.urls import path

from . import views

app_name = "django_payments_ru"

urlpatterns = [
    path("webhooks/<str:alias>/", views.webhook, name="webhook"),
    path("return/<uuid:ref>/", views.return_view, name="return"),
    # The token is the signed invoice reference (django_payments_ru.paylinks).
    path("pay/<str:token>/", views.pay_view, name="pay"),
]
