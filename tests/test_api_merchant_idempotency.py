"""``Idempotency-Key`` on the merchant API's create: a retried create makes no
second invoice, a reused key with another body is refused, keys are per user
and expire, and a key is stored with its invoice or not at all.

The threaded tests release their requests at the same instant: on PostgreSQL
the unique index makes the second wait for the first (row locks are real
there); on SQLite the write lock does (``transaction_mode="IMMEDIATE"``)."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.db import connection, connections
from django.test import Client
from django.utils import timezone

from django_payments_ru.api import merchant
from django_payments_ru.models import IdempotencyKey, Invoice
from tests.helpers import make_invoice
from tests.test_api_merchant import API, assert_error, client_for, post, user_with

pytestmark = pytest.mark.django_db

BODY = {"provider": "sandbox", "amount": "250.00", "order_id": "A-7"}


def create(client: Client, body: Any = BODY, key: str | None = "key-1") -> Any:
    headers = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
    return post(client, API, body, **headers)


@pytest.fixture
def creator() -> Client:
    return client_for("add_invoice")


def test_the_same_key_and_body_answer_the_same_invoice_once(creator):
    first = create(creator)
    assert first.status_code == 201
    assert "Idempotent-Replayed" not in first
    Invoice.objects.update(status="paid")  # what happens to it afterwards
    again = create(creator, dict(reversed(BODY.items())))  # same data, other order
    assert again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again["Location"] == first["Location"]
    assert again.json() == first.json()  # the first answer, as it was
    assert Invoice.objects.count() == 1
    assert IdempotencyKey.objects.get().invoice == Invoice.objects.get()


def test_a_key_in_quotes_is_the_same_key(creator):
    create(creator, key="abc")
    assert create(creator, key='"abc"')["Idempotent-Replayed"] == "true"
    assert Invoice.objects.count() == 1


def test_another_body_with_the_key_is_a_422(creator):
    create(creator)
    response = create(creator, {**BODY, "amount": "251.00"})
    assert_error(response, 422, "idempotency_key_reused", None)
    assert Invoice.objects.count() == 1


def test_without_a_key_every_create_is_a_new_invoice(creator):
    create(creator, key=None)
    create(creator, key=None)
    assert Invoice.objects.count() == 2
    assert not IdempotencyKey.objects.exists()


def test_keys_are_per_user(creator):
    other = client_for("add_invoice", username="other-clerk")
    a = create(creator).json()
    b = create(other).json()
    assert a["reference"] != b["reference"]
    assert Invoice.objects.count() == 2
    assert set(IdempotencyKey.objects.values_list("owner", flat=True)) == {
        f"auth.user:{user.pk}" for user in _users()
    }


def _users() -> list[Any]:
    from django.contrib.auth import get_user_model

    return list(get_user_model().objects.all())


@pytest.mark.parametrize(
    "key",
    ["", "a" * 256, "with space", "tab\there", "caf\u00e9", 'quote"inside', '""'],
)
def test_a_malformed_key_is_a_400(creator, key):
    response = create(creator, key=key)
    assert_error(response, 400, "invalid_input", "Idempotency-Key")
    assert not Invoice.objects.exists()


def test_the_longest_key_is_taken(creator):
    assert create(creator, key="k" * 255).status_code == 201


def test_a_key_expires(creator, settings):
    settings.PAYMENTS_RU = {**settings.PAYMENTS_RU, "API_IDEMPOTENCY_TTL": 60}
    first = create(creator).json()
    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(seconds=61))
    second = create(creator)
    assert second.status_code == 201
    assert "Idempotent-Replayed" not in second
    assert second.json()["reference"] != first["reference"]
    # The expired row made way for the new one.
    assert IdempotencyKey.objects.get().invoice.uuid.hex == second.json()[
        "reference"
    ].replace("-", "")


def test_the_ttl_may_be_a_timedelta(creator, settings):
    settings.PAYMENTS_RU = {
        **settings.PAYMENTS_RU,
        "API_IDEMPOTENCY_TTL": timedelta(hours=1),
    }
    create(creator)
    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(minutes=59))
    assert create(creator)["Idempotent-Replayed"] == "true"


def test_creates_sweep_expired_keys(creator, settings):
    settings.PAYMENTS_RU = {**settings.PAYMENTS_RU, "API_IDEMPOTENCY_TTL": 60}
    for n in range(3):
        create(creator, key=f"old-{n}")
    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(hours=1))
    create(creator, key="new")
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["new"]
    assert Invoice.objects.count() == 4  # the invoices stay


def test_a_refused_create_leaves_no_key(creator):
    response = create(creator, {**BODY, "amount": "-1"})
    assert_error(response, 400, "invalid_amount", "amount")
    assert not IdempotencyKey.objects.exists()
    # The key is free: the corrected request makes the invoice (a retry of
    # the refused body is refused the same way, not replayed).
    assert_error(create(creator, {**BODY, "amount": "-1"}), 400, "invalid_amount")
    assert create(creator).status_code == 201


def test_a_create_refused_inside_the_transaction_leaves_neither_row(creator):
    # Refused by the services (the order is paid) after the serializer passed.
    paid_sibling = make_invoice(order_key="cart-1")
    Invoice.objects.filter(pk=paid_sibling.pk).update(status="paid")
    response = create(creator, {**BODY, "order_key": "cart-1"})
    assert_error(response, 409, "invalid_operation")
    assert Invoice.objects.count() == 1
    assert not IdempotencyKey.objects.exists()


def test_a_failure_after_the_invoice_was_written_takes_it_back(creator):
    # The key's row cannot be written: the invoice written before it in the
    # same transaction must go too (no invoice without its key).
    with (
        mock.patch.object(
            IdempotencyKey.objects, "create", side_effect=RuntimeError("disk full")
        ),
        pytest.raises(RuntimeError),
    ):
        create(creator)
    assert not Invoice.objects.exists()
    assert not IdempotencyKey.objects.exists()


def test_a_request_that_loses_the_race_replays_the_winners_answer(creator):
    """The path of the second of two concurrent requests, on any database: it
    found no key, made its invoice, then met the winner's key on the unique
    index; its transaction is rolled back and it answers with the winner's."""
    winner = create(creator).json()
    real = merchant._live_key
    calls = []

    def missed_first(owner: str, key: str) -> Any:
        calls.append(key)
        return None if len(calls) == 1 else real(owner, key)

    with mock.patch.object(merchant, "_live_key", side_effect=missed_first):
        response = create(creator)
    assert len(calls) == 2  # before the transaction, and after its failure
    assert response.status_code == 201
    assert response["Idempotent-Replayed"] == "true"
    assert response.json() == winner
    assert Invoice.objects.count() == 1


def test_a_loser_with_another_body_gets_the_422(creator):
    create(creator)
    real = merchant._live_key
    calls = []

    def missed_first(owner: str, key: str) -> Any:
        calls.append(key)
        return None if len(calls) == 1 else real(owner, key)

    with mock.patch.object(merchant, "_live_key", side_effect=missed_first):
        response = create(creator, {**BODY, "amount": "1.00"})
    assert_error(response, 422, "idempotency_key_reused")
    assert Invoice.objects.count() == 1


# --- concurrency ----------------------------------------------------------------------

THREADS = 6
ROUNDS = 5


def _create_from_threads(username: str, key: str) -> list[Any]:
    """``THREADS`` creates with one key, released at the same instant."""
    barrier = threading.Barrier(THREADS)
    answers: list[Any] = [None] * THREADS
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            client = Client()
            client.login(username=username, password="pw")
            barrier.wait(timeout=10)
            answers[i] = create(client, key=key)
        except BaseException as exc:  # reported in the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return answers


def _one_invoice_per_key() -> None:
    user_with("add_invoice", username="racer")
    for round_ in range(ROUNDS):
        answers = _create_from_threads("racer", f"race-{round_}")
        assert [a.status_code for a in answers] == [201] * THREADS, [
            (a.status_code, a.content[:200]) for a in answers
        ]
        references = {a.json()["reference"] for a in answers}
        assert len(references) == 1, references
        assert sum("Idempotent-Replayed" in a for a in answers) == THREADS - 1
        assert Invoice.objects.filter(order_id="A-7").count() == round_ + 1
        assert IdempotencyKey.objects.filter(key=f"race-{round_}").count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_with_one_key_make_one_invoice_on_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: set DATABASE_URL=postgres://... to run")
    _one_invoice_per_key()


@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_with_one_key_make_one_invoice_on_sqlite():
    if connection.vendor != "sqlite":
        pytest.skip("the SQLite run of the race (PostgreSQL has its own)")
    _one_invoice_per_key()


def test_the_refusal_is_in_the_request_language(creator):
    create(creator)
    response = post(
        creator,
        API,
        {**BODY, "amount": "1.00"},
        HTTP_IDEMPOTENCY_KEY="key-1",
        HTTP_ACCEPT_LANGUAGE="ru",
    )
    data = assert_error(response, 422, "idempotency_key_reused")
    assert "другим телом запроса" in data["detail"]
