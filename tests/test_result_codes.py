"""Stored outcomes are codes translated when shown; counts, numbers and the
admin's history follow the reader's language (issue #13)."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.template import Context, Template
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext

from django_payments_ru import services
from django_payments_ru.events import EventType
from django_payments_ru.exceptions import ProviderAPIError
from django_payments_ru.models import Invoice, Operation, WebhookEvent
from django_payments_ru.providers.base import Checkout
from django_payments_ru.providers.sandbox import Provider as Sandbox
from django_payments_ru.results import MESSAGES, Message, msg, render
from django_payments_ru.templatetags.payments_ru import payment_button
from tests.helpers import (
    event,
    make_invoice,
    payment_object,
    post_webhook,
    webhook_body,
)

pytestmark = pytest.mark.django_db


def _webhook_twice(client) -> WebhookEvent:
    invoice = make_invoice("100.00")
    services.apply_event(event(invoice, EventType.PAID))
    post_webhook(client, webhook_body(payment_object(invoice), event_id="evt_again"))
    return WebhookEvent.objects.get(dedupe_id="evt_again")


@pytest.mark.parametrize("written", ["ru", "en"])
def test_an_event_result_is_shown_in_the_readers_language(client, written):
    with translation.override(written):
        row = _webhook_twice(client)
    assert row.result_code == "same_state" and row.result == ""
    with translation.override("en"):
        assert row.result_text == "already in this state"
    with translation.override("ru"):
        assert row.result_text == "уже в этом статусе"


def test_a_rejection_is_stored_with_its_parameters_and_the_invoice_note_too():
    invoice = make_invoice("100.00")
    with translation.override("ru"):
        result = services.apply_event(
            event(invoice, EventType.PAID, amount=Decimal("60.00"))
        )
    assert result.message == msg("amount_mismatch", got="60.00", want="100.00")
    invoice.refresh_from_db()
    [note] = invoice.attention_notes
    assert note["code"] == "event_rejected"
    assert note["params"]["problem"]["code"] == "amount_mismatch"
    with translation.override("en"):
        assert invoice.attention_text.endswith(
            "“Paid” event rejected: amount 60.00 does not match the invoice's 100.00"
        )
    with translation.override("ru"):
        assert "60,00" in invoice.attention_text  # the reader's separators
        assert "does not match" not in invoice.attention_text


def test_a_refusal_keeps_the_providers_words_untranslated(monkeypatch):
    invoice = make_invoice("100.00")
    services.apply_event(event(invoice, EventType.PAID))
    provider = invoice.get_provider()

    def refuse(*args, **kwargs):
        raise ProviderAPIError("Возврат запрещён", provider="sandbox", status=422)

    monkeypatch.setattr(type(provider), "refund", refuse)
    with pytest.raises(ProviderAPIError):
        services.refund_invoice(invoice)
    claim = Operation.objects.get(kind="refund")
    assert claim.reason_code == "refused"
    with translation.override("en"):
        assert claim.reason_text.startswith("refused: ")
        assert "Возврат запрещён" in claim.reason_text


def test_rows_written_before_codes_show_their_stored_text():
    invoice = make_invoice("100.00")
    invoice.attention_reason = "2025-01-01 10:00: старое"
    invoice.add_attention_note(msg("no_invoice"))
    with translation.override("en"):
        assert invoice.attention_lines[0] == "2025-01-01 10:00: старое"
        assert invoice.attention_lines[1].endswith(": no matching invoice")
    row = WebhookEvent(result="legacy text")
    assert row.result_text == "legacy text"


def test_every_message_renders_in_both_languages_with_its_parameters():
    for code, message in MESSAGES.items():
        names = {
            part.split(")")[0] for part in str(message).split("%(")[1:] if ")" in part
        }
        params = dict.fromkeys(names, "x")
        for language in ("en", "ru"):
            with translation.override(language):
                text = render(code, params)
                assert "%(" not in text, (code, language, text)
    assert render("from_a_newer_version", {"a": 1}) == "from_a_newer_version (a=1)"
    with pytest.raises(ValueError):
        Message("no_such_code")


# --- counts -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "word"),
    [(1, "счёт"), (2, "счёта"), (5, "счетов"), (21, "счёт"), (22, "счёта")],
)
def test_counts_in_russian_use_the_plural_forms(count, word):
    from django.utils.translation import ngettext

    with translation.override("ru"):
        text = ngettext(
            "%(count)d other invoice", "%(count)d other invoices", count
        ) % {"count": count}
    assert text.endswith(f" {word}"), text


@pytest.mark.parametrize(
    ("count", "ru"),
    [
        (1, "обращение к 1 счёту"),
        (2, "обращение к 2 счетам"),
        (5, "обращение к 5 счетам"),
        (21, "обращение к 21 счёту"),
    ],
)
def test_a_dry_runs_report_counts_in_russian(count, ru):
    from django_payments_ru.jobs import RunReport
    from django_payments_ru.management.commands._runs import report_lines

    report = RunReport(dry_run=True)
    report.asked.extend(range(count))
    with translation.override("ru"):
        assert report_lines(report)[0].startswith(f"Пробный запуск: {ru.lower()};")


def test_the_count_filter_groups_digits_as_the_language_does():
    template = Template("{% load payments_ru %}{{ n|count }}")
    with translation.override("ru"):
        assert template.render(Context({"n": 1000000})) == "1\xa0000\xa0000"
    with translation.override("en"):
        assert template.render(Context({"n": 1000000})) == "1,000,000"


def test_select_all_shows_a_grouped_count(admin_client, settings):
    from django_payments_ru.models import Invoice

    Invoice.objects.bulk_create(
        [Invoice(provider="sandbox", amount=Decimal(1)) for _ in range(1001)]
    )
    settings.LANGUAGE_CODE = "ru"
    with translation.override("ru"):
        page = admin_client.get(
            reverse("admin:django_payments_ru_invoice_changelist"),
            headers={"accept-language": "ru"},
        )
    body = page.content.decode()
    question = re.search(r'<span class="question hidden">(.*?)</span>', body, re.S)
    assert question is not None
    # Exact on SQLite (1 001), the estimate on PostgreSQL (около 1 000).
    assert "Выбрать все" in question[1]
    assert re.search(r"1\xa00\d\d", question[1]), question[1]
    everything = re.search(r'<span class="all hidden">(.*?)</span>', body, re.S)
    assert everything is not None and re.search(r"1\xa00\d\d", everything[1])


# --- the admin's history ---------------------------------------------------------


def test_the_history_of_an_operation_is_shown_in_the_readers_language(
    admin_client, monkeypatch
):
    invoice = make_invoice("100.00")
    monkeypatch.setattr(
        Sandbox,
        "start",
        lambda self, invoice, request=None, *, key="": Checkout(
            method="GET", url="https://pay.example/1", payment_id="pay_1"
        ),
    )
    with translation.override("ru"):
        admin_client.post(
            reverse(
                "admin:django_payments_ru_invoice_operation",
                args=[invoice.pk, "start"],
            ),
            headers={"accept-language": "ru"},
        )
    entry = LogEntry.objects.get(object_id=str(invoice.pk))
    # Named in no language: "Recent actions" shows no frozen "(Created)".
    assert "Created" not in entry.object_repr and "Создан" not in entry.object_repr
    assert json.loads(entry.change_message)[0]["payments_ru"]["code"] == (
        "log_operation"
    )
    history = reverse("admin:django_payments_ru_invoice_history", args=[invoice.pk])
    en = admin_client.get(history, headers={"accept-language": "en"}).content.decode()
    assert "payment started" in en
    ru = admin_client.get(history, headers={"accept-language": "ru"}).content.decode()
    assert "оплата начата" in ru and "payment started" not in ru


# --- texts for people ------------------------------------------------------------


def test_the_sandbox_in_russian_declines_no_name():
    invoice = make_invoice("100.00")
    with translation.override("ru"):
        html = payment_button({}, invoice)
        page = gettext("Payment through %(name)s (emulated)") % {
            "name": gettext("Sandbox")
        }
    assert "через" not in html and "Оплатить: Sandbox" in html
    assert page == "Оплата: Песочница (эмуляция)"


def test_a_providers_refusal_in_the_admin_is_wrapped_in_our_words(
    admin_client, monkeypatch
):
    invoice = make_invoice("100.00")
    provider = invoice.get_provider()

    def refuse(*args, **kwargs):
        raise ProviderAPIError(
            "Card blocked", provider=invoice.provider, status=402, code="blocked"
        )

    monkeypatch.setattr(type(provider), "start", refuse)
    page = admin_client.post(
        reverse(
            "admin:django_payments_ru_invoice_operation", args=[invoice.pk, "start"]
        ),
        follow=True,
        headers={"accept-language": "en"},
    )
    [message] = [str(m) for m in page.context["messages"]]
    assert "“Start payment” failed" in message
    assert "Sandbox refused the request. Its answer: “Card blocked”" in message
    assert "(HTTP 402, blocked)" in message
    assert Invoice.objects.get(pk=invoice.pk).status == "created"
