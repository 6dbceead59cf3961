"""The docs contract every provider's test package inherits, and the helpers
that read ``docs/*.rst`` tables.

A provider's ``tests/providers/<slug>/test_docs.py`` declares::

    class TestAcmeDocs(ProviderDocsContract):
        provider = acme.Provider

and the base checks that ``docs/providers/<slug>.rst`` exists with exactly the
standard sections, lists every option of the provider (and of each of its
``surfaces``) with its default, and that the generated feature matrix
(``docs/_ext/provider_matrix.py``) has the provider's rows with cells equal to
its class attributes.

The page's table of the emulator's settings (found after
``emulator_table_marker``, by default the line naming
``PAYMENTS_RU_EMULATOR["<slug>"]``) lists every setting of the provider's
emulator with its default, and the settings common to every emulator either all
(one row) or none (they are documented in ``configuration.rst``).

``described_defaults`` and ``described_emulator_defaults`` name the options and
emulator settings whose default the page gives in words (a value computed at
run time, or too long to quote), with those words.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
import sys
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import ClassVar

from django_payments_ru.emulator.base import COMMON_OPTIONS, REQUIRED
from django_payments_ru.providers.base import BaseProvider, Capability

DOCS = Path(__file__).resolve().parent.parent.parent / "docs"

#: The sections of every provider page, in order.
SECTIONS = (
    "Settings",
    "Checkout",
    "Webhooks",
    "Status polling",
    "Refunds and extras",
    "Admin",
    "The emulator",
    "Limitations and assumptions",
)

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


def section_titles(text: str) -> list[str]:
    """The titles underlined with ``-`` (a page's sections)."""
    return re.findall(r"^(.+)\n-{3,}$", text, flags=re.MULTILINE)


@cache
def provider_matrix() -> ModuleType:
    """``docs/_ext/provider_matrix.py``, the generator of the feature matrix
    (a Sphinx extension, not a package: loaded from its file)."""
    name = "provider_matrix"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, DOCS / "_ext" / "provider_matrix.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


#: What each yes/no column of the matrix shows, written here again on purpose:
#: the test does not trust the generator's own table.
MATRIX_CAPABILITIES = {
    "Refund": Capability.REFUND,
    "Partial refund": Capability.PARTIAL_REFUND,
    "Status polling": Capability.STATUS,
    "Cancel at provider": Capability.CANCEL,
    "Hold (capture/release)": Capability.HOLD,
    "Batch status": Capability.BATCH_STATUS,
    "Recurrent": Capability.RECURRENT,
    "Split": Capability.SPLIT,
    "Receipts": Capability.RECEIPTS,
}


def expected_cells(cls: type[BaseProvider]) -> dict[str, str]:
    """The matrix cells ``cls``'s attributes call for."""
    cells = {
        "Checkout": cls.checkout_kind,
        # RUB first, then alphabetically.
        "Currencies": ", ".join(
            [code for code in ("RUB",) if code in cls.currencies]
            + sorted(cls.currencies - {"RUB"})
        ),
        "Webhook authentication": cls.webhook_auth,
        "Emulator": "yes" if cls.emulator else "no",
    }
    for column, capability in MATRIX_CAPABILITIES.items():
        cells[column] = "yes" if capability in cls.capabilities else "no"
    return cells


class ProviderDocsContract:
    """Base of every provider's docs tests (not collected itself: no ``Test``
    prefix)."""

    provider: ClassVar[type[BaseProvider]]
    described_defaults: ClassVar[Mapping[str, str]] = {}
    emulator_table_marker: ClassVar[str] = ""
    described_emulator_defaults: ClassVar[Mapping[str, str]] = {}

    @property
    def page(self) -> str:
        return f"providers/{self.provider.slug}.rst"

    def classes(self) -> tuple[type[BaseProvider], ...]:
        """The classes an alias of the provider can be."""
        return self.provider.surfaces or (self.provider,)

    def test_the_page_exists(self):
        assert (DOCS / self.page).is_file(), f"docs/{self.page} is missing"

    def test_the_page_has_the_standard_sections(self):
        assert section_titles(read(self.page)) == list(SECTIONS)

    def test_every_option_is_listed_with_its_default(self):
        rows = list_table(read(self.page), "   * - Option")
        documented = {plain(row[0]): plain(row[1]) for row in rows[1:]}
        classes = (self.provider, *self.provider.surfaces)
        assert set(documented) == {name for cls in classes for name in cls.options}
        for cls in classes:
            for name, spec in cls.options.items():
                where = f"{cls.__name__}.options[{name!r}]"
                parts = [p.strip() for p in documented[name].split(",")]
                words = set(parts) & {"required", "secret"}
                assert ("required" in words) is spec.required, where
                assert ("secret" in words) is spec.secret, where
                if spec.required:
                    continue
                value = ", ".join(p for p in parts if p not in words)
                if name in self.described_defaults:
                    # Computed at run time: None in the class, words in the page.
                    assert spec.default is None, where
                    assert value == self.described_defaults[name], where
                else:
                    assert ast.literal_eval(value) == spec.default, where

    def test_the_feature_matrix_shows_the_class_attributes(self):
        matrix = provider_matrix()
        rows = [row for row in matrix.matrix_rows() if row.slug == self.provider.slug]
        labels = [
            f"{self.provider.display_name} ({cls.surface_label})"
            if self.provider.surfaces
            else self.provider.display_name
            for cls in self.classes()
        ]
        assert [row.label for row in rows] == labels
        for row, cls in zip(rows, self.classes(), strict=True):
            assert row.cells == expected_cells(cls), cls.__name__
            assert cls.webhook_auth, f"{cls.__name__}.webhook_auth is empty"
            assert cls.checkout_kind, f"{cls.__name__}.checkout_kind is empty"

    def test_the_emulator_attribute_names_its_emulator_module(self):
        # DESIGN: every built-in provider comes with an emulator.
        for cls in self.classes():
            assert cls.emulator, f"{cls.__name__} names no emulator"
            module = importlib.import_module(cls.emulator)
            assert hasattr(module, "urlpatterns"), cls.emulator
            assert hasattr(module, "emulator"), cls.emulator
            assert cls.emulator == (
                f"django_payments_ru.providers.{self.provider.slug}.emulator"
            )

    def test_the_emulator_settings_are_documented_with_their_defaults(self):
        slug = self.provider.slug
        marker = self.emulator_table_marker or f'``PAYMENTS_RU_EMULATOR["{slug}"]``'
        documented = {}
        for row in list_table(read(self.page), marker)[1:]:
            for name in plain(row[0]).split(","):
                documented[name.strip()] = plain(row[1])
        emulator = importlib.import_module(self.provider.emulator).emulator
        options = type(emulator).options
        common = set(documented) & set(COMMON_OPTIONS)
        assert common in (set(), set(COMMON_OPTIONS)), "common settings: all or none"
        assert set(documented) - common == set(options)
        for name, default in options.items():
            cell = documented[name]
            if default is REQUIRED:
                assert cell == "required", name
            elif name in self.described_emulator_defaults:
                assert cell == self.described_emulator_defaults[name], name
            else:
                assert ast.literal_eval(cell) == default, name
