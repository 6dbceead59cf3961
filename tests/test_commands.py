"""The management commands of the jobs (payments_process_events,
payments_reconcile, payments_expire, payments_status): their output, progress
on a terminal, ``--json``, exit codes; and the admin's status page, which shows
what payments_status shows."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils import timezone

from django_payments_ru import jobs
from django_payments_ru.management.base import (
    ATTENTION,
    USAGE,
    ProgressLine,
    duration,
)
from django_payments_ru.models import WebhookEvent
from django_payments_ru.status import InvoiceStatus
from tests.test_jobs import (  # noqa: F401  (providers: an autouse fixture)
    NOW,
    FakeProvider,
    providers,
    stored_event,
    waiting,
)

pytestmark = pytest.mark.django_db(transaction=True)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def run(*args: str, stderr: io.StringIO | None = None) -> tuple[int, str, str]:
    """``(exit code, stdout, stderr)`` of ``manage.py <args>``."""
    out, err = io.StringIO(), stderr if stderr is not None else io.StringIO()
    try:
        call_command(*args, stdout=out, stderr=err)
    except SystemExit as exit:
        code = int(exit.code or 0)
    else:
        code = 0
    return code, out.getvalue(), err.getvalue()


# --- the shared parts ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("10m", 600), ("2h", 7200), ("1d", 86400)],
)
def test_durations(text, seconds):
    assert duration(text) == timedelta(seconds=seconds)
    assert duration("01:00:00") == timedelta(hours=1)
    with pytest.raises(ValueError):
        duration("soon")


def test_progress_on_a_terminal_shows_count_rate_and_time_left():
    stream, ticks = Terminal(), iter([0.0, 2.0, 4.0])
    progress = ProgressLine(stream, "Invoices", clock=lambda: next(ticks))

    progress(3, 10)
    progress(6, 10)
    progress.close()

    text = stream.getvalue()
    assert "\rInvoices: 3/10, 1.5/s, 0:00:05 left" in text.replace("\x1b[K", "")
    assert "Invoices: 6/10, 1.5/s, 0:00:03 left" in text
    assert text.endswith("\n") and text.count("\n") == 1  # one line, redrawn


def test_progress_elsewhere_is_a_plain_line_per_tenth():
    stream, ticks = io.StringIO(), iter(range(100))
    progress = ProgressLine(stream, "Events", clock=lambda: float(next(ticks)))

    for done in range(0, 41):
        progress(done, 40)

    lines = stream.getvalue().splitlines()
    assert len(lines) == 11 and "\r" not in stream.getvalue()
    assert lines[-1].startswith("Events: 40/40, ")


# --- payments_process_events --------------------------------------------------------


def test_process_events_summary_and_exit_code():
    row = stored_event(waiting(), age=timedelta(minutes=5))

    code, out, err = run("payments_process_events")

    assert code == 0
    assert "1 event(s) processed, 0 failed, 0 given up and flagged." in out
    assert "Events: 1/1" in err  # progress (plain: not a terminal)
    row.refresh_from_db()
    assert row.status == WebhookEvent.Status.PROCESSED


def test_process_events_json_and_attention(settings, monkeypatch):
    from django_payments_ru import services

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(services, "_apply_locked", boom)
    settings.PAYMENTS_RU = {**settings.PAYMENTS_RU, "SWEEP_MAX_ATTEMPTS": 1}
    row = stored_event(waiting(), age=timedelta(minutes=5))

    code, out, err = run("payments_process_events", "--json")

    assert code == ATTENTION and err == ""
    report = json.loads(out)
    assert report["processed"] == [] and report["gave_up"] == [row.pk]
    assert report["failed"][0]["event"] == row.pk
    assert report["needs_attention"] is True

    code, out, _ = run("payments_process_events")
    assert code == 0 and "0 event(s) processed" in out


def test_process_events_refuses_a_negative_limit():
    with pytest.raises(CommandError) as caught:
        call_command("payments_process_events", "--limit", "-1")
    assert caught.value.returncode == USAGE


# --- payments_reconcile -------------------------------------------------------------


def test_reconcile_reports_the_changes():
    paid, left = waiting(), waiting()
    FakeProvider.answers[str(paid.uuid)] = "paid"

    code, out, err = run("payments_reconcile", "--older-than", "10m")

    assert code == 0
    assert "2 invoices asked, 1 changed, 0 errors." in out
    assert f"Invoice {paid.pk} (Sandbox (fake_a)): Pending → Paid" in out
    assert "Invoices: 2/2" in err
    left.refresh_from_db()
    assert left.status == InvoiceStatus.PENDING


def test_reconcile_on_a_terminal_redraws_its_progress():
    waiting()

    code, _out, err = run("payments_reconcile", stderr=Terminal())

    assert code == 0 and "\r\x1b[KInvoices: 1/1, " in err and " left" in err


def test_reconcile_limit_and_cursor():
    first, second = waiting(), waiting()

    code, out, _ = run("payments_reconcile", "--limit", "1", "--json")

    report = json.loads(out)
    assert code == 0 and report["asked"] == [first.pk]
    assert report["cursor"] == first.pk and report["complete"] is False
    code, out, _ = run("payments_reconcile", "--limit", "1")
    # Without --after or --resume a run starts from the oldest again.
    assert f"Stopped at the limit; continue with --after {first.pk}" in out
    code, out, _ = run("payments_reconcile", "--after", str(first.pk), "--json")
    assert json.loads(out)["asked"] == [second.pk]


def test_reconcile_resume():
    first, second = waiting(), waiting()
    run("payments_reconcile", "--limit", "1")

    _code, out, _ = run("payments_reconcile", "--resume", "--json")

    assert json.loads(out)["asked"] == [second.pk]
    assert first.pk


def test_reconcile_dry_run_and_alias():
    a, b = waiting("fake_a"), waiting("fake_b")

    code, out, _ = run("payments_reconcile", "--dry-run", "--alias", "fake_b")

    assert code == 0
    assert "Dry run: 1 invoice would be asked; nothing changed." in out
    assert f"Invoice {b.pk}" in out and f"Invoice {a.pk}\n" not in out
    assert FakeProvider.calls == []


def test_reconcile_unreachable_provider_exit_code_and_json():
    down, up = waiting("fake_a"), waiting("fake_b")
    FakeProvider.down = {"fake_a"}
    FakeProvider.answers[str(up.uuid)] = "paid"

    code, out, _ = run("payments_reconcile", "--json")

    assert code == ATTENTION
    report = json.loads(out)
    assert set(report) >= {
        "dry_run",
        "asked",
        "changes",
        "errors",
        "unreachable",
        "cursor",
        "complete",
        "needs_attention",
    }
    assert list(report["unreachable"]) == ["fake_a"]
    assert report["changes"] == [
        {
            "invoice": up.pk,
            "reference": str(up.uuid),
            "alias": "fake_b",
            "old": "pending",
            "new": "paid",
        }
    ]
    code, out, _ = run("payments_reconcile")
    assert code == ATTENTION
    assert "Sandbox (fake_a) is unreachable, its invoices are unchanged" in out
    down.refresh_from_db()
    assert down.status == InvoiceStatus.PENDING


def test_reconcile_refuses_an_unknown_alias_and_a_bad_duration():
    with pytest.raises(CommandError) as caught:
        call_command("payments_reconcile", "--alias", "nope")
    assert caught.value.returncode == USAGE
    with pytest.raises(CommandError):
        call_command("payments_reconcile", "--older-than", "soon")


# --- payments_expire ----------------------------------------------------------------


def test_expire_output_and_exit_codes():
    gone = waiting(expires_at=NOW - timedelta(hours=1))
    paid = waiting(expires_at=NOW - timedelta(hours=1))
    FakeProvider.answers[str(paid.uuid)] = "paid"

    code, out, _ = run("payments_expire")

    assert code == 0
    assert f"Invoice {gone.pk} (Sandbox (fake_a)): Pending → Expired" in out
    assert f"Invoice {paid.pk} (Sandbox (fake_a)): Pending → Paid" in out
    stuck = waiting("fake_b", expires_at=NOW - timedelta(hours=1))
    FakeProvider.down = {"fake_b"}
    code, out, _ = run("payments_expire", "--json")
    assert code == ATTENTION
    assert json.loads(out)["unreachable"].keys() == {"fake_b"}
    stuck.refresh_from_db()
    assert stuck.status == InvoiceStatus.PENDING


def test_expire_dry_run_and_grace():
    # The command's clock is the real one: two minutes before it, whenever the
    # test runs (NOW is when the module was imported).
    invoice = waiting(expires_at=timezone.now() - timedelta(minutes=2))

    _code, out, _ = run("payments_expire", "--dry-run")
    assert "Dry run: 0 invoices would" in out
    _code, out, _ = run("payments_expire", "--dry-run", "--grace", "1m")
    assert "Dry run: 1 invoice would" in out and f"Invoice {invoice.pk}" in out
    assert FakeProvider.calls == []


# --- payments_status ----------------------------------------------------------------


def test_status_all_is_well():
    code, out, _ = run("payments_status")

    assert code == 0
    assert out.splitlines()[0].split()[:2] == ["provider", "events"]
    assert "fake_a" in out and "Last reconciliation: never" in out
    assert out.rstrip().endswith("All is well.")


def test_status_needs_attention_json_and_table():
    stored_event(waiting("fake_b"), state="failed", attempts=1, age=timedelta(hours=1))
    waiting("fake_a", needs_attention=True)
    run("payments_reconcile")

    code, out, _ = run("payments_status")

    assert code == ATTENTION
    fake_b = next(line for line in out.splitlines() if line.startswith("fake_b"))
    assert fake_b.split() == ["fake_b", "1", "0", "0", "0", "1"]
    assert "Last reconciliation: " in out and "2 asked" in out
    assert out.rstrip().endswith("Needs attention.")

    code, out, _ = run("payments_status", "--json")
    summary = json.loads(out)
    assert code == ATTENTION and summary["needs_attention"] is True
    assert summary["totals"]["failed"] == 1 and summary["totals"]["flagged"] == 1
    assert summary["providers"]["fake_a"]["flagged"] == 1
    assert summary["last_runs"]["reconcile"]["asked"] == 2


# --- the admin's status page ---------------------------------------------------------


@pytest.fixture
def admin_client_(client, django_user_model):
    user = django_user_model.objects.create_superuser("boss", "b@example.com", "pw")
    client.force_login(user)
    return client


def test_the_admin_status_page_shows_the_summary(admin_client_):
    stored_event(waiting("fake_b"), state="failed", attempts=1, age=timedelta(hours=1))
    url = reverse("admin:django_payments_ru_invoice_status")

    listing = admin_client_.get(reverse("admin:django_payments_ru_invoice_changelist"))
    page = admin_client_.get(url)

    assert f'href="{url}"' in listing.content.decode()
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-needs-attention="1"' in html
    assert '<tr class="provider" data-alias="fake_b">' in html
    assert '<td class="failed">1</td>' in html
    assert "Last reconciliation" in html and "never" in html
    assert jobs.status_summary()["totals"]["failed"] == 1


def test_the_admin_status_page_needs_the_view_permission(client, django_user_model):
    user = django_user_model.objects.create_user("clerk", "c@example.com", "pw")
    user.is_staff = True
    user.save()
    client.force_login(user)

    answer = client.get(reverse("admin:django_payments_ru_invoice_status"))

    assert answer.status_code == 403
