"""The documentation against the code it describes, so that neither drifts.

Each test reads a table of ``docs/*.rst`` (a ``list-table``) and compares it with
the code: the transition table with ``status.TRANSITIONS``, the settings tables
with their defaults, the system check ids with ``checks.py``, the provider
options and the feature matrix with the provider classes.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

from django_payments_ru import checks, conf, signals
from django_payments_ru.emulator.base import COMMON_OPTIONS, REQUIRED
from django_payments_ru.events import EventType
from django_payments_ru.providers.base import Capability
from django_payments_ru.providers.sandbox import Provider as Sandbox
from django_payments_ru.providers.sandbox.emulator import SandboxEmulator
from django_payments_ru.status import TRANSITIONS, InvoiceStatus, Outcome

DOCS = Path(__file__).resolve().parent.parent / "docs"

_ROW = re.compile(r"^(\s*)\* - ?(.*)$")
_CELL = re.compile(r"^(\s*)- ?(.*)$")


def read(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def list_table(text: str, marker: str) -> list[list[str]]:
    """The rows of the first ``list-table`` after the first line containing
    ``marker`` (or of the table whose header row that line is), each a list of
    cells, continuation lines joined by spaces."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if marker in line)
    if lines[start].lstrip().startswith("* -"):
        # The marker is the header row: its table starts above it.
        start = next(
            i
            for i in range(start, -1, -1)
            if lines[i].lstrip().startswith(".. list-table::")
        )
    else:
        start = next(
            i
            for i in range(start, len(lines))
            if lines[i].lstrip().startswith(".. list-table::")
        )
    directive_indent = len(lines[start]) - len(lines[start].lstrip())
    rows: list[list[str]] = []
    for line in lines[start + 1 :]:
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if indent <= directive_indent:
            break
        if line.lstrip().startswith(":"):  # a directive option
            continue
        row = _ROW.match(line)
        cell = _CELL.match(line)
        if row:
            rows.append([row.group(2).strip()])
        elif cell:
            rows[-1].append(cell.group(2).strip())
        else:  # continuation of the last cell
            rows[-1][-1] = (rows[-1][-1] + " " + line.strip()).strip()
    assert rows, f"no list-table after {marker!r}"
    return rows


def plain(cell: str) -> str:
    """A cell without inline markup."""
    return cell.replace("``", "").strip()


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


def test_sandbox_options_are_documented_with_their_defaults():
    rows = list_table(read("providers/sandbox.rst"), "   * - Option")
    documented = {plain(row[0]): plain(row[1]) for row in rows[1:]}
    assert set(documented) == set(Sandbox.options)
    for name, spec in Sandbox.options.items():
        parts = [p.strip() for p in documented[name].split(",")]
        words = set(parts) & {"required", "secret"}
        assert ("required" in words) is spec.required, name
        assert ("secret" in words) is spec.secret, name
        if not spec.required:
            value = ", ".join(p for p in parts if p not in words)
            assert ast.literal_eval(value) == spec.default, name


def test_sandbox_emulator_keys_are_documented():
    rows = list_table(
        read("providers/sandbox.rst"), '``PAYMENTS_RU_EMULATOR["sandbox"]``'
    )
    documented = {}
    for row in rows[1:]:
        for name in plain(row[0]).split(","):
            documented[name.strip()] = plain(row[1])
    assert set(documented) == set(SandboxEmulator.options) | set(COMMON_OPTIONS)
    for name, default in SandboxEmulator.options.items():
        if default is REQUIRED:
            assert documented[name] == "required", name
        else:
            assert ast.literal_eval(documented[name]) == default, name


MATRIX_CAPABILITIES = {
    "Refund": Capability.REFUND,
    "Partial refund": Capability.PARTIAL_REFUND,
    "Status polling": Capability.STATUS,
    "Cancel at provider": Capability.CANCEL,
    "Hold (capture/release)": Capability.HOLD,
    "Batch status": Capability.BATCH_STATUS,
    "Recurrent": Capability.RECURRENT,
    "Split": Capability.SPLIT,
}


def _slug(cell: str) -> str:
    match = re.search(r":doc:`(\w+)`|``(\w+)``", cell)
    assert match, cell
    return match.group(1) or match.group(2)


def test_feature_matrix_matches_the_providers():
    rows = list_table(read("providers/index.rst"), "Feature matrix")
    header = [plain(cell) for cell in rows[0]]
    assert set(MATRIX_CAPABILITIES) <= set(header)
    available = 0
    for row in rows[1:]:
        cells = dict(zip(header, row, strict=True))
        slug = _slug(row[0])
        if cells["Status"] == "planned":
            continue
        assert cells["Status"] == "available", slug
        available += 1
        provider = importlib.import_module(
            f"django_payments_ru.providers.{slug}"
        ).Provider
        assert provider.slug == slug
        currencies = {c.strip() for c in cells["Currencies"].split(",")}
        assert currencies == set(provider.currencies), slug
        for column, capability in MATRIX_CAPABILITIES.items():
            assert cells[column] in ("yes", "no"), (slug, column)
            assert (cells[column] == "yes") is (capability in provider.capabilities), (
                slug,
                column,
            )
    assert available >= 1


@pytest.mark.parametrize("page", ["providers/sandbox.rst"])
def test_provider_pages_have_the_common_sections(page):
    text = read(page)
    titles = re.findall(r"^(.+)\n-{3,}$", text, flags=re.MULTILINE)
    assert titles == [
        "Settings",
        "Checkout",
        "Webhooks",
        "Status polling",
        "Refunds and extras",
        "Admin",
        "The emulator",
        "Limitations and assumptions",
    ]
