"""``path("payments/api/", include("django_payments_ru.api.urls"))``."""

from django.urls import path

from . import views

app_name = "django_payments_ru_api"

urlpatterns = [
    path("invoices/<uuid:ref>/", views.InvoiceView.as_view(), name="invoice"),
    path(
        "invoices/<uuid:ref>/checkout/", views.CheckoutView.as_view(), name="checkout"
    ),
]
