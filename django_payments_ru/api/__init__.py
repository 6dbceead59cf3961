"""A JSON API for single-page and mobile checkouts and the shop's back office
(Django REST framework; docs/api.rst).

``path("payments/api/", include("django_payments_ru.api.urls"))``:

* customer endpoints (:mod:`.customer`), reached with the invoice's pay link
  token: ``GET pay/<token>/`` (its public state) and
  ``POST pay/<token>/checkout/`` (the
  :class:`~django_payments_ru.providers.base.Checkout`);
* merchant endpoints (:mod:`.merchant`), for authenticated staff;
* ``GET schema/``: the OpenAPI 3 schema (:mod:`.schema`).

Nothing here changes money or status except through the services.
"""
