"""The jobs (django_payments_ru.jobs): the sweeper's backoff, bound and flags;
reconciliation's order, limit, cursor, dry run, alias filter and unreachable
providers; expiry confirmed by a status query first; the status summary; the
Celery tasks. The providers are a sandbox subclass whose status answers the
test sets (no network); the contract in tests/contracts/reconcile.py runs
reconciliation against every provider's emulator."""

from __future__ import annotations

import copy
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any, ClassVar

import pytest
from django.core.cache import caches
from django.utils import timezone

from django_payments_ru import jobs, services
from django_payments_ru.beat import BEAT_SCHEDULE
from django_payments_ru.events import EventType, PaymentEvent
from django_payments_ru.exceptions import ProviderAPIError, ProviderUnavailable
from django_payments_ru.models import Invoice, WebhookEvent
from django_payments_ru.providers.base import Capability
from django_payments_ru.providers.sandbox.provider import Provider as Sandbox
from django_payments_ru.status import InvoiceStatus
from tests.signals import SignalRecorder

# Real commits: the signals fire after them, the row locks are real.
pytestmark = pytest.mark.django_db(transaction=True)


class FakeProvider(Sandbox):
    """The sandbox, asked nothing over the network: :attr:`answers` says what
    each invoice's status query returns (by reference), :attr:`down` which
    aliases are unreachable, :attr:`calls` who was asked."""

    answers: ClassVar[dict[str, str]] = {}
    down: ClassVar[set[str]] = set()
    broken: ClassVar[set[str]] = set()
    calls: ClassVar[list[tuple[str, list[str]]]] = []

    def _answer(self, invoice: Invoice) -> PaymentEvent | None:
        kind = self.answers.get(str(invoice.uuid))
        if kind is None:
            return None
        return PaymentEvent(
            provider=self.alias,
            dedupe_id=f"poll:{invoice.uuid}:{kind}",
            type=EventType(kind),
            invoice_ref=str(invoice.uuid),
            amount=invoice.amount if kind == "paid" else None,
            currency=invoice.currency,
        )

    def fetch_status(self, invoice: Invoice) -> PaymentEvent | None:
        self.calls.append((self.alias, [str(invoice.uuid)]))
        if self.alias in self.down:
            raise ProviderUnavailable("connection refused", provider=self.alias)
        if str(invoice.uuid) in self.broken:
            raise ProviderAPIError("no such payment", provider=self.alias)
        return self._answer(invoice)


class FakeBatchProvider(FakeProvider):
    capabilities = FakeProvider.capabilities | {Capability.BATCH_STATUS}

    def fetch_statuses(self, invoices: Any) -> list[PaymentEvent]:
        invoices = list(invoices)
        self.calls.append((self.alias, [str(i.uuid) for i in invoices]))
        if self.alias in self.down:
            raise ProviderUnavailable("connection refused", provider=self.alias)
        return [e for e in map(self._answer, invoices) if e is not None]


class LongSessions(FakeProvider):
    session_lifetime = timedelta(hours=48)


def fake(backend: str = "FakeProvider") -> dict[str, Any]:
    return {
        "BACKEND": f"tests.test_jobs.{backend}",
        "OPTIONS": {
            "base_url": "http://testserver/emulator/sandbox/",
            "api_key": "sk_fake",
            "webhook_secret": "whsec_fake",
        },
    }


@pytest.fixture(autouse=True)
def providers(settings):
    config = copy.deepcopy(settings.PAYMENTS_RU)
    config["PROVIDERS"] = {
        "fake_a": fake(),
        "fake_b": fake(),
        "fake_batch": fake("FakeBatchProvider"),
        "fake_long": fake("LongSessions"),
    }
    settings.PAYMENTS_RU = config
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"jobs-{uuid.uuid4().hex}",
        }
    }
    FakeProvider.answers = {}
    FakeProvider.down = set()
    FakeProvider.broken = set()
    FakeProvider.calls = []
    return config


NOW = timezone.now()


def waiting(alias: str = "fake_a", age: timedelta = timedelta(hours=1), **fields):
    """An invoice started at ``alias`` (pending, with a checkout), ``age`` old."""
    invoice = services.create_invoice(
        provider=alias, amount="100.00", order_id=f"o-{uuid.uuid4().hex[:8]}"
    )
    values = {
        "status": InvoiceStatus.PENDING,
        "checkout": {"method": "GET", "url": "https://pay.example/x", "fields": {}},
        "provider_payment_id": f"pay_{invoice.uuid.hex[:12]}",
        "created_at": NOW - age,
        **fields,
    }
    Invoice.objects.filter(pk=invoice.pk).update(**values)
    invoice.refresh_from_db()
    return invoice


def asked(alias: str | None = None) -> list[str]:
    return [ref for a, refs in FakeProvider.calls if alias in (None, a) for ref in refs]


def status(invoice: Invoice) -> str:
    invoice.refresh_from_db()
    return invoice.status


# --- the sweeper ----------------------------------------------------------------------


def stored_event(
    invoice: Invoice, *, attempts: int = 0, age: timedelta, state: str = "received"
) -> WebhookEvent:
    event = PaymentEvent(
        provider=invoice.provider,
        dedupe_id=f"evt-{uuid.uuid4().hex[:10]}",
        type=EventType.PAID,
        invoice_ref=str(invoice.uuid),
        amount=invoice.amount,
        currency=invoice.currency,
    )
    row = WebhookEvent.objects.create(
        provider=invoice.provider,
        dedupe_id=event.dedupe_id,
        event_type=event.type,
        event=event.to_json(),
        status=state,
        attempts=attempts,
        result="RuntimeError: boom" if state == "failed" else "",
    )
    # A tried event was last tried when it arrived.
    WebhookEvent.objects.filter(pk=row.pk).update(
        received_at=NOW - age, last_attempt_at=(NOW - age) if attempts else None
    )
    row.refresh_from_db()
    return row


@pytest.fixture
def failing(monkeypatch):
    """Processing any event fails (the services keep the error on the row)."""

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(services, "_apply_locked", boom)


def test_a_received_event_left_behind_is_processed_once():
    invoice = waiting()
    row = stored_event(invoice, age=timedelta(minutes=5))
    with SignalRecorder() as log:
        report = jobs.sweep_events(now=NOW)
        again = jobs.sweep_events(now=NOW)

    assert report.processed == [row.pk] and not report.needs_attention
    assert again.processed == []
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("processed", 1)
    assert status(invoice) == InvoiceStatus.PAID
    assert log.count("invoice_paid") == 1


def test_a_young_event_is_left_to_its_own_task():
    row = stored_event(waiting(), age=timedelta(seconds=30))  # SWEEP_DELAY 60 s

    assert jobs.sweep_events(now=NOW).processed == []
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("received", 0)


def test_the_backoff_doubles_from_the_last_attempt(settings, failing):
    assert [jobs.backoff(n) for n in (1, 2, 3)] == [
        timedelta(seconds=60),
        timedelta(seconds=120),
        timedelta(seconds=240),
    ]
    # Two attempts made, the last one an hour ago: the third was due 120 s
    # after it. An event's first attempt waits SWEEP_DELAY after its arrival.
    row = stored_event(waiting(), attempts=2, state="failed", age=timedelta(0))
    assert jobs.next_attempt_at(row) == row.last_attempt_at + timedelta(seconds=120)
    fresh = stored_event(waiting(), age=timedelta(0))
    assert jobs.next_attempt_at(fresh) == fresh.received_at + timedelta(seconds=60)
    fresh.delete()
    early = row.last_attempt_at + timedelta(seconds=119)

    assert jobs.sweep_events(now=early).failed == []
    row.refresh_from_db()
    assert row.attempts == 2

    report = jobs.sweep_events(now=row.last_attempt_at + timedelta(seconds=120))

    assert [f["event"] for f in report.failed] == [row.pk]
    assert report.failed[0]["attempts"] == 3 and "boom" in report.failed[0]["error"]
    before = row.last_attempt_at
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("failed", 3)
    # The attempt is recorded: the next one is due 240 s after it, however
    # long the sweeper was away before.
    assert row.last_attempt_at > before
    assert jobs.next_attempt_at(row) == row.last_attempt_at + timedelta(seconds=240)
    assert (
        jobs.sweep_events(now=row.last_attempt_at + timedelta(seconds=239)).failed == []
    )


def test_after_an_outage_a_failing_event_does_not_burn_its_attempts():
    # The sweeper was down for a day: one attempt now, then the backoff again
    # (not one attempt per sweep until the attempts run out).
    row = stored_event(waiting(), attempts=3, state="failed", age=timedelta(days=1))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(services, "_apply_locked", lambda *a, **k: 1 / 0)
        first = jobs.sweep_events(now=timezone.now())
        second = jobs.sweep_events(now=timezone.now() + timedelta(seconds=30))
    assert [f["event"] for f in first.failed] == [row.pk]
    assert second.failed == []
    row.refresh_from_db()
    assert row.attempts == 4


def test_the_backoff_is_capped(settings):
    settings.PAYMENTS_RU = {**settings.PAYMENTS_RU, "SWEEP_BACKOFF_MAX": 300}
    assert jobs.backoff(10) == timedelta(seconds=300)


def test_out_of_attempts_the_event_and_its_invoice_are_flagged_once(settings, failing):
    settings.PAYMENTS_RU = {**settings.PAYMENTS_RU, "SWEEP_MAX_ATTEMPTS": 3}
    invoice = waiting()
    row = stored_event(invoice, attempts=2, state="failed", age=timedelta(days=1))

    report = jobs.sweep_events(now=NOW)

    assert [f["event"] for f in report.failed] == [row.pk]
    assert report.gave_up == [row.pk] and report.needs_attention
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("failed", 3)
    assert row.needs_attention and "boom" in row.result_text
    assert row.invoice_id == invoice.pk
    invoice.refresh_from_db()
    assert invoice.needs_attention
    assert f"#{row.pk} " in invoice.attention_text
    assert "3 attempts" in invoice.attention_text
    assert invoice.status == InvoiceStatus.PENDING
    note = invoice.attention_text

    later = jobs.sweep_events(now=NOW + timedelta(days=30))

    assert (later.failed, later.gave_up) == ([], [])
    row.refresh_from_db()
    assert row.attempts == 3  # no longer retried
    invoice.refresh_from_db()
    assert invoice.attention_text == note  # flagged once


def test_an_event_out_of_attempts_elsewhere_is_flagged_by_the_sweep(settings):
    """The webhook's own task used the attempts up: the sweep flags it."""
    settings.PAYMENTS_RU = {**settings.PAYMENTS_RU, "SWEEP_MAX_ATTEMPTS": 2}
    invoice = waiting()
    row = stored_event(invoice, attempts=5, state="failed", age=timedelta(hours=1))

    report = jobs.sweep_events(now=NOW)

    assert (report.failed, report.gave_up) == ([], [row.pk])
    invoice.refresh_from_db()
    assert invoice.needs_attention and f"#{row.pk} " in invoice.attention_text
    assert jobs.sweep_events(now=NOW).gave_up == []


def test_the_sweep_respects_its_limit_oldest_first():
    invoices = [waiting() for _ in range(3)]
    rows = [
        stored_event(inv, age=timedelta(minutes=10 - i))
        for i, inv in enumerate(invoices)
    ]

    assert jobs.sweep_events(limit=2, now=NOW).processed == [r.pk for r in rows[:2]]
    assert jobs.sweep_events(limit=2, now=NOW).processed == [rows[2].pk]


# --- reconciliation ---------------------------------------------------------------


def test_reconciliation_asks_oldest_first_within_the_limit_and_resumes():
    invoices = [waiting(age=timedelta(hours=5 - i)) for i in range(5)]
    for invoice in invoices:
        FakeProvider.answers[str(invoice.uuid)] = "paid"
    refs = [str(i.uuid) for i in invoices]

    first = jobs.reconcile(limit=2, now=NOW)

    assert asked() == refs[:2]
    assert first.cursor == invoices[1].pk and not first.complete
    assert [(c.invoice, c.old, c.new) for c in first.changes] == [
        (invoices[0].pk, "pending", "paid"),
        (invoices[1].pk, "pending", "paid"),
    ]
    # An explicit cursor, then the stored one.
    second = jobs.reconcile(limit=2, after=first.cursor, now=NOW)
    assert asked() == refs[:4] and second.cursor == invoices[3].pk
    third = jobs.reconcile(limit=2, resume=True, now=NOW)
    assert asked() == refs and third.complete
    assert [status(i) for i in invoices] == ["paid"] * 5
    # Nothing left waiting: the next run asks nobody.
    assert jobs.reconcile(resume=True, now=NOW).asked == []


def test_reconciliation_skips_what_is_young_unstarted_or_done():
    young = waiting(age=timedelta(minutes=5))
    unstarted = waiting(checkout={}, status=InvoiceStatus.CREATED)
    paid = waiting(status=InvoiceStatus.PAID)
    old = waiting(age=timedelta(minutes=11))

    report = jobs.reconcile(now=NOW)  # RECONCILE_AFTER: 10 minutes

    assert report.asked == [old.pk]
    assert asked() == [str(old.uuid)]
    assert jobs.reconcile(older_than=timedelta(minutes=1), now=NOW).asked == [
        young.pk,
        old.pk,
    ]
    assert {unstarted.pk, paid.pk}.isdisjoint(jobs.reconcile(older_than=0).asked)


def test_a_dry_run_asks_nobody_and_changes_nothing():
    invoice = waiting()
    FakeProvider.answers[str(invoice.uuid)] = "paid"

    report = jobs.reconcile(dry_run=True, now=NOW)

    assert report.asked == [invoice.pk] and report.dry_run
    assert FakeProvider.calls == [] and report.changes == []
    assert status(invoice) == InvoiceStatus.PENDING
    assert jobs.last_run("reconcile") is None


def test_the_alias_filter():
    a, b = waiting("fake_a"), waiting("fake_b")

    report = jobs.reconcile(alias="fake_b", now=NOW)

    assert report.asked == [b.pk]
    assert asked() == [str(b.uuid)] and a.pk not in report.asked


def test_a_batch_provider_is_asked_once_for_all_its_invoices():
    invoices = [waiting("fake_batch") for _ in range(3)]
    FakeProvider.answers[str(invoices[1].uuid)] = "failed"

    report = jobs.reconcile(now=NOW)

    assert FakeProvider.calls == [("fake_batch", [str(i.uuid) for i in invoices])]
    assert [(c.invoice, c.new) for c in report.changes] == [(invoices[1].pk, "failed")]


def test_an_unreachable_provider_changes_nothing_and_the_next_run_completes():
    a1, a2 = waiting("fake_a"), waiting("fake_a")
    batch = waiting("fake_batch")
    b = waiting("fake_b")
    for invoice in (a1, a2, batch, b):
        FakeProvider.answers[str(invoice.uuid)] = "paid"
    FakeProvider.down = {"fake_a", "fake_batch"}
    with SignalRecorder() as log:
        report = jobs.reconcile(now=NOW)

    assert set(report.unreachable) == {"fake_a", "fake_batch"}
    assert "ProviderUnavailable" in report.unreachable["fake_a"]
    assert report.needs_attention
    # fake_a was asked once (not once per invoice); nothing changed there.
    assert asked("fake_a") == [str(a1.uuid)]
    assert [status(i) for i in (a1, a2, batch)] == ["pending"] * 3
    assert [(c.invoice, c.new) for c in report.changes] == [(b.pk, "paid")]
    assert log.count("invoice_paid") == 1
    assert jobs.last_run("reconcile")["unreachable"] == ["fake_a", "fake_batch"]

    FakeProvider.down = set()
    with SignalRecorder() as log:
        again = jobs.reconcile(now=NOW)

    assert again.unreachable == {} and not again.needs_attention
    assert sorted(c.invoice for c in again.changes) == sorted([a1.pk, a2.pk, batch.pk])
    assert [status(i) for i in (a1, a2, batch, b)] == ["paid"] * 4
    assert log.count("invoice_paid") == 3
    assert jobs.last_run("reconcile")["unreachable"] == []


def test_an_error_on_one_invoice_does_not_stop_the_others():
    bad, good = waiting(), waiting()
    FakeProvider.broken = {str(bad.uuid)}
    FakeProvider.answers[str(good.uuid)] = "paid"

    report = jobs.reconcile(now=NOW)

    assert [e["invoice"] for e in report.errors] == [bad.pk]
    assert "no such payment" in report.errors[0]["error"]
    assert report.unreachable == {} and report.asked == [good.pk]
    assert status(good) == "paid" and status(bad) == "pending"


# --- expiry --------------------------------------------------------------------------


def past_session(alias: str = "fake_a", **fields: Any) -> Invoice:
    return waiting(alias, expires_at=NOW - timedelta(minutes=10), **fields)


def test_an_invoice_past_its_session_is_confirmed_then_expired_once():
    invoice = past_session()
    with SignalRecorder() as log:
        report = jobs.expire(now=NOW)
        again = jobs.expire(now=NOW)

    assert asked() == [str(invoice.uuid)]  # asked first
    assert [(c.invoice, c.old, c.new) for c in report.changes] == [
        (invoice.pk, "pending", "expired")
    ]
    assert status(invoice) == InvoiceStatus.EXPIRED
    assert again.asked == [] and again.changes == []
    assert log.count("invoice_status_changed") == 1


def test_a_paid_invoice_past_its_session_becomes_paid_not_expired():
    invoice = past_session()
    FakeProvider.answers[str(invoice.uuid)] = "paid"
    with SignalRecorder() as log:
        report = jobs.expire(now=NOW)

    assert [(c.invoice, c.new) for c in report.changes] == [(invoice.pk, "paid")]
    assert status(invoice) == InvoiceStatus.PAID
    assert invoice.paid_amount == Decimal("100.00")
    assert log.count("invoice_paid") == 1


def test_an_invoice_whose_provider_cannot_be_asked_is_left():
    invoice = past_session()
    batch = past_session("fake_batch")
    FakeProvider.down = {"fake_a", "fake_batch"}

    report = jobs.expire(now=NOW)

    assert set(report.unreachable) == {"fake_a", "fake_batch"}
    assert report.changes == [] and report.needs_attention
    assert status(invoice) == status(batch) == InvoiceStatus.PENDING


def test_expiry_waits_for_the_grace_and_the_session():
    soon = waiting(expires_at=NOW + timedelta(minutes=1))
    just = waiting(expires_at=NOW - timedelta(minutes=1))  # EXPIRY_GRACE: 5 min
    no_deadline = waiting()  # fake_a has no session lifetime

    assert jobs.expire(now=NOW).asked == []
    assert jobs.expire(grace=0, now=NOW).asked == [just.pk]
    assert status(soon) == status(no_deadline) == InvoiceStatus.PENDING


def test_the_providers_session_lifetime_without_expires_at():
    old = waiting("fake_long", age=timedelta(hours=49))
    young = waiting("fake_long", age=timedelta(hours=47))

    report = jobs.expire(now=NOW)

    assert report.asked == [old.pk]
    assert status(old) == InvoiceStatus.EXPIRED
    assert status(young) == InvoiceStatus.PENDING


def test_an_expiry_dry_run_changes_nothing():
    invoice = past_session()

    report = jobs.expire(dry_run=True, now=NOW)

    assert report.asked == [invoice.pk] and FakeProvider.calls == []
    assert status(invoice) == InvoiceStatus.PENDING


# --- the status summary -----------------------------------------------------------


def test_the_status_summary_per_provider():
    empty = jobs.status_summary(now=NOW)
    assert not empty["needs_attention"]
    assert empty["providers"]["fake_a"] == {
        "failed": 0,
        "received": 0,
        "gave_up": 0,
        "flagged": 0,
        "waiting": 0,
    }
    assert empty["last_runs"] == {"reconcile": None, "expire": None}

    a = waiting("fake_a")
    stored_event(a, state="failed", attempts=1, age=timedelta(hours=1))
    stored_event(a, state="received", age=timedelta(hours=1))
    spent = stored_event(a, state="failed", attempts=8, age=timedelta(days=1))
    WebhookEvent.objects.filter(pk=spent.pk).update(needs_attention=True)  # given up
    stored_event(a, state="processed", attempts=1, age=timedelta(hours=1))
    b = waiting("fake_b", needs_attention=True)
    waiting("fake_b", age=timedelta(minutes=1))  # not waiting long yet
    FakeProvider.down = {"fake_b"}
    jobs.reconcile(now=NOW)

    summary = jobs.status_summary(now=NOW)

    assert summary["providers"]["fake_a"] == {
        "failed": 2,
        "received": 1,
        "gave_up": 1,
        "flagged": 0,
        "waiting": 1,
    }
    assert summary["providers"]["fake_b"]["flagged"] == 1
    assert summary["providers"]["fake_b"]["waiting"] == 1
    assert summary["totals"]["failed"] == 2 and summary["totals"]["flagged"] == 1
    run = summary["last_runs"]["reconcile"]
    assert run["unreachable"] == ["fake_b"] and run["asked"] == 1
    assert jobs.run_time(run) is not None
    assert summary["needs_attention"]
    assert b.pk


def test_a_cache_outage_does_not_fail_the_job(monkeypatch):
    class Down:
        def set(self, *args, **kwargs):
            raise ConnectionError("cache down")

        def get(self, *args, **kwargs):
            raise ConnectionError("cache down")

    invoice = past_session()
    monkeypatch.setattr(jobs, "_cache", lambda: Down())

    assert jobs.expire(now=NOW).changes[0].invoice == invoice.pk
    assert jobs.last_run("expire") is None


# --- the tasks and the schedule ---------------------------------------------------


def test_the_tasks_are_registered_with_late_acknowledgement():
    from celery import current_app

    from django_payments_ru import tasks

    for name, task in [
        ("django_payments_ru.sweep_events", tasks.sweep_events_task),
        ("django_payments_ru.reconcile", tasks.reconcile_task),
        ("django_payments_ru.expire", tasks.expire_task),
    ]:
        assert task.name == name and task.acks_late
        assert current_app.tasks[name].run is task.run
    assert {e["task"] for e in BEAT_SCHEDULE.values()} == {
        "django_payments_ru.sweep_events",
        "django_payments_ru.reconcile",
        "django_payments_ru.expire",
    }
    assert jobs.BEAT_SCHEDULE is BEAT_SCHEDULE


def test_the_tasks_run_the_jobs():
    invoice = waiting()
    FakeProvider.answers[str(invoice.uuid)] = "paid"
    stored_event(waiting(), age=timedelta(minutes=5))

    swept = jobs.sweep_events_task.delay().get()
    reconciled = jobs.reconcile_task.delay().get()
    expired = jobs.expire_task.delay().get()

    assert len(swept["processed"]) == 1
    assert reconciled["changes"][0]["invoice"] == invoice.pk
    assert reconciled["complete"] and expired["changes"] == []


def test_a_run_in_progress_is_not_started_twice():
    waiting()
    caches["default"].add(f"{jobs.CACHE_PREFIX}lock:reconcile:*", "other", 60)

    assert jobs.reconcile_task.delay().get() == {
        "skipped": "another run is in progress"
    }
    assert FakeProvider.calls == []
    caches["default"].delete(f"{jobs.CACHE_PREFIX}lock:reconcile:*")
    assert jobs.reconcile_task.delay().get()["asked"]
