"""Offline emulators of the payment providers, and the machinery they share.

``INSTALLED_APPS += ["django_payments_ru.emulator"]`` and
``path("emulator/", include("django_payments_ru.emulator.urls"))`` serve, under
``emulator/<slug>/``, the emulator of every configured provider (its class names
the module in its ``emulator`` attribute) and of every module listed in
``settings.PAYMENTS_RU_EMULATOR["EMULATORS"]`` (see :mod:`.registry`). Each
emulator is configured in ``settings.PAYMENTS_RU_EMULATOR[<slug>]``, read at
every request. Development and tests only: system check ``payments_ru.W003``
warns when the emulators are on with ``DEBUG`` off.

The shared pieces (see :mod:`.base` for how an emulator uses them):

* :mod:`.models`: ``EmulatedPayment`` (the provider's view of a payment),
  ``EmulatedIdempotencyKey``, ``WebhookDelivery``, ``EmulatedFault``;
* :mod:`.base`: the :class:`~.base.Emulator` base class (settings, error
  envelope, API-key auth, endpoint decorator with fault injection, rate limits
  and idempotency, the hosted pay page);
* :mod:`.webhooks`: signed webhook delivery after commit, with retries;
* :mod:`.registry`: which emulators are served;
* :mod:`.faults`, :mod:`.limits`, :mod:`.idempotency`, :mod:`.clock`.
"""
