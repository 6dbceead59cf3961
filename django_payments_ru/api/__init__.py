"""A JSON API for single-page and mobile checkouts (Django REST framework).

``path("payments/api/", include("django_payments_ru.api.urls"))``:

* ``GET  invoices/<uuid>/`` -> the invoice's public state;
* ``POST invoices/<uuid>/checkout/`` -> the
  :class:`~django_payments_ru.providers.base.Checkout` (registering the payment
  with the provider when needed).

The invoice's UUID is the capability: it is unguessable and only the shop hands it
to its customer. Nothing here changes money or status except through the services.
"""
