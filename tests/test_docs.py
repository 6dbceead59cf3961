"""The documentation against the code it describes, so that neither drifts.

Each test reads a table of ``docs/*.rst`` (a ``list-table``) and compares it with
the code: the transition table with ``status.TRANSITIONS``, the settings tables
with their defaults, the system check ids with ``checks.py``. Each provider's
page and its rows of the generated feature matrix are checked by its subclass
of :class:`tests.contracts.docs.ProviderDocsContract`; this module checks that
every provider package has one (and a webhook contract, and a page).
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

from django_payments_ru import celery_checks, checks, conf, signals
from django_payments_ru.emulator.base import COMMON_OPTIONS
from django_payments_ru.events import EventType
from django_payments_ru.status import TRANSITIONS, InvoiceStatus, Outcome
from tests.contracts import provider_packages
from tests.contracts.docs import (
    DOCS,
    ProviderDocsContract,
    list_table,
    plain,
    provider_matrix,
    read,
)
from tests.contracts.webhooks import WebhookContract

TESTS = Path(__file__).resolve().parent

# --- the state machine ------------------------------------------------------------


def _expected_cell(status: InvoiceStatus, event: EventType) -> str:
    rule = TRANSITIONS[status][event]
    if rule.outcome is Outcome.NOOP:
        return "no-op"
    if rule.outcome is Outcome.IGNORE:
        return "ignored"
    assert rule.target is not None
    if event is EventType.REFUNDED:
        # The services narrow it to partially_refunded or refunded by amount.
        assert rule.target is InvoiceStatus.REFUNDED
        return "refund"
    return str(rule.target.value) + (" (flagged)" if rule.flag else "")


def test_transition_table_matches_the_code():
    rows = list_table(read("states.rst"), ".. _transition-table:")
    header, body = rows[0], rows[1:]
    columns = [EventType(plain(cell)) for cell in header[1:]]
    assert columns == [e for e in EventType if e is not EventType.INFO]
    assert [InvoiceStatus(plain(row[0])) for row in body] == list(InvoiceStatus)
    documented = {
        (InvoiceStatus(plain(row[0])), event): plain(cell)
        for row in body
        for event, cell in zip(columns, row[1:], strict=True)
    }
    expected = {
        (status, event): _expected_cell(status, event)
        for status in TRANSITIONS
        for event in TRANSITIONS[status]
    }
    assert documented == expected


def test_every_status_and_event_type_is_described():
    statuses = list_table(read("states.rst"), "Statuses")
    assert [plain(row[0]) for row in statuses[1:]] == [s.value for s in InvoiceStatus]
    events = list_table(read("states.rst"), ".. _event-types:")
    assert [plain(row[0]) for row in events[1:]] == [e.value for e in EventType]


# --- settings -----------------------------------------------------------------------


def test_every_payments_ru_key_is_documented_with_its_default():
    rows = list_table(read("configuration.rst"), "``PAYMENTS_RU``")
    documented = {plain(row[0]): ast.literal_eval(plain(row[1])) for row in rows[1:]}
    assert documented == conf.DEFAULTS


def test_every_common_emulator_key_is_documented_with_its_default():
    rows = list_table(read("configuration.rst"), "``PAYMENTS_RU_EMULATOR``")
    documented = {plain(row[0]): ast.literal_eval(plain(row[1])) for row in rows[1:]}
    assert documented == COMMON_OPTIONS


def test_every_system_check_id_is_documented():
    source = Path(checks.__file__).read_text(encoding="utf-8")
    in_code = {
        f"payments_ru.{kind}{int(number):03d}"
        for kind, number in re.findall(r'_id\("([EW])", (\d+)\)', source)
    }
    celery = Path(celery_checks.__file__).read_text(encoding="utf-8")
    in_code |= set(re.findall(r'id="(payments_ru\.[EW]\d{3})"', celery))
    rows = list_table(read("configuration.rst"), ".. _system-checks:")
    documented = {plain(row[0]) for row in rows[1:]}
    assert in_code
    assert documented == in_code


def test_every_signal_is_documented():
    names = {name for name in dir(signals) if name.startswith("invoice_")}
    text = read("webhooks.rst")
    for name in names:
        assert f".. autodata:: django_payments_ru.signals.{name}" in text


# --- providers ---------------------------------------------------------------------


#: Where a provider's test package subclasses each contract base.
CONTRACT_MODULES: dict[type, str] = {
    WebhookContract: "test_webhooks",
    ProviderDocsContract: "test_docs",
}


def contract_tests(slug: str, base: type) -> list[type]:
    """The collected subclasses (``Test...``) of ``base`` in
    tests/providers/<slug>/<its module>.py."""
    name = CONTRACT_MODULES[base]
    if not (TESTS / "providers" / slug / f"{name}.py").is_file():
        return []
    module = importlib.import_module(f"tests.providers.{slug}.{name}")
    return [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type)
        and issubclass(obj, base)
        and obj.__name__.startswith("Test")
        and obj.__module__ == module.__name__
    ]


def test_every_provider_has_a_page_contract_tests_and_a_matrix_row():
    packages = provider_packages()
    assert {"sandbox", "payconnect", "lifepay"} <= set(packages)
    missing = []
    for slug, provider in sorted(packages.items()):
        if provider.slug != slug:
            missing.append(f"{slug}: Provider.slug is {provider.slug!r}")
        if not (DOCS / "providers" / f"{slug}.rst").is_file():
            missing.append(f"{slug}: no docs/providers/{slug}.rst")
        for base, module in CONTRACT_MODULES.items():
            if not contract_tests(slug, base):
                missing.append(
                    f"{slug}: no Test* subclass of {base.__name__} in "
                    f"tests/providers/{slug}/{module}.py"
                )
        for cls in contract_tests(slug, ProviderDocsContract):
            if getattr(cls, "provider", None) is not provider:
                missing.append(f"{slug}: {cls.__name__} documents another class")
    rows = {row.slug for row in provider_matrix().matrix_rows()}
    missing += [
        f"{slug}: no row in the feature matrix" for slug in packages.keys() - rows
    ]
    assert missing == []


def test_the_providers_index_generates_its_matrix_and_lists_every_page():
    text = read("providers/index.rst")
    assert ".. provider-matrix::" in text
    assert "* - Provider" not in text  # no hand-written matrix left
    toctree = text[text.index(".. toctree::") :].split("\n\n")[:2]
    assert ":glob:" in toctree[0]
    assert toctree[1].split() == ["sandbox", "*"]


def test_planned_providers_are_not_available_yet():
    # A "Planned: ``name`` ..." sentence names providers without a package
    # yet: once one exists, the matrix shows it and the sentence must drop it.
    for line in read("providers/index.rst").splitlines():
        if line.startswith("Planned:"):
            planned = set(re.findall(r"``(\w+)``", line))
            assert planned
            assert not planned & set(provider_packages())


def test_the_readme_lists_every_provider_as_available():
    readme = (TESTS.parent / "README.md").read_text(encoding="utf-8")
    rows = {
        match.group(1): match.group(2)
        for match in re.finditer(r"^\|[^|]+\| `(\w+)` \|.*\| (\w+) \|$", readme, re.M)
    }
    assert set(provider_packages()) <= set(rows), "a provider without a README row"
    for slug in provider_packages():
        assert rows[slug] == "available", slug
