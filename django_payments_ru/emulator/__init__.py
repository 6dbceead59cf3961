"""Offline emulators of the payment providers, and the machinery they share.

``INSTALLED_APPS += ["django_payments_ru.emulator"]`` and
``path("emulator/", include("django_payments_ru.emulator.urls"))`` serve, under
``emulator/<slug>/``, every provider package that has an ``emulator`` module
exposing ``urlpatterns``. Each emulator is configured in
``settings.PAYMENTS_RU_EMULATOR[<slug>]``, read at every request.

The shared pieces (see :mod:`.base` for how an emulator uses them):

* :mod:`.models`: ``EmulatedPayment`` (the provider's view of a payment),
  ``EmulatedIdempotencyKey``, ``WebhookDelivery``, ``EmulatedFault``;
* :mod:`.base`: the :class:`~.base.Emulator` base class (settings, error
  envelope, API-key auth, endpoint decorator with fault injection, rate limits
  and idempotency, the hosted pay page);
* :mod:`.webhooks`: signed webhook delivery after commit, with retries;
* :mod:`.faults`, :mod:`.limits`, :mod:`.idempotency`, :mod:`.clock`.
"""
