"""``.. provider-matrix::``: the providers' feature matrix, generated from the
provider classes, so that a new provider gets its row and a changed capability
changes the table with no edit of the docs.

The rows are every package under ``django_payments_ru.providers`` with a
``Provider`` class, by display name; a provider whose ``surfaces`` name the
classes an alias can become (Life-Pay's A1Lite and ECOM) has one row per
surface, "Life-Pay (A1Lite)". The cells are the classes' attributes:
``checkout_kind``, ``currencies``, ``capabilities``, ``webhook_auth`` and
``emulator``.

:func:`matrix_rows` returns the table as plain data, without Sphinx (the test
suite compares it with the classes); the directive is registered by
:func:`setup`, which imports docutils only then.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from dataclasses import dataclass
from typing import Any

from django_payments_ru import providers
from django_payments_ru.providers.base import BaseProvider, Capability

#: The columns after "Provider", in order.
COLUMNS = (
    "Checkout",
    "Currencies",
    "Refund",
    "Partial refund",
    "Status polling",
    "Cancel at provider",
    "Hold (capture/release)",
    "Batch status",
    "Recurrent",
    "Split",
    "Receipts",
    "Webhook authentication",
    "Emulator",
)
#: The yes/no columns and the capability each shows.
CAPABILITY_COLUMNS = {
    "Refund": Capability.REFUND,
    "Partial refund": Capability.PARTIAL_REFUND,
    "Status polling": Capability.STATUS,
    "Cancel at provider": Capability.CANCEL,
    "Hold (capture/release)": Capability.HOLD,
    "Batch status": Capability.BATCH_STATUS,
    "Recurrent": Capability.RECURRENT,
    "Split": Capability.SPLIT,
    # 54-FZ receipts (docs/receipts.rst).
    "Receipts": Capability.RECEIPTS,
}


@dataclass(frozen=True)
class MatrixRow:
    """One row: the provider's slug (its page), the label, the cells."""

    slug: str
    label: str
    provider_class: type[BaseProvider]
    cells: dict[str, str]


def provider_classes() -> dict[str, type[BaseProvider]]:
    """``{slug: Provider}`` of every provider package."""
    found = {}
    for info in pkgutil.iter_modules(providers.__path__):
        if not info.ispkg:
            continue
        module = importlib.import_module(f"{providers.__name__}.{info.name}")
        cls = getattr(module, "Provider", None)
        if isinstance(cls, type) and issubclass(cls, BaseProvider):
            found[info.name] = cls
    return found


def currencies_cell(codes: frozenset[str]) -> str:
    """The currencies, RUB first, then alphabetically."""
    return ", ".join(sorted(codes, key=lambda code: (code != "RUB", code)))


def cells(cls: type[BaseProvider]) -> dict[str, str]:
    values = {
        "Checkout": cls.checkout_kind,
        "Currencies": currencies_cell(cls.currencies),
        "Webhook authentication": cls.webhook_auth,
        "Emulator": "yes" if cls.emulator else "no",
    }
    for column, capability in CAPABILITY_COLUMNS.items():
        values[column] = "yes" if capability in cls.capabilities else "no"
    return {column: values[column] for column in COLUMNS}


def matrix_rows() -> list[MatrixRow]:
    """The feature matrix as data: one row per provider class or surface."""
    rows = []
    classes = provider_classes()
    for slug, provider in sorted(classes.items(), key=lambda i: i[1].display_name):
        for cls in provider.surfaces or (provider,):
            label = provider.display_name
            if provider.surfaces:
                label = f"{label} ({cls.surface_label})"
            rows.append(MatrixRow(slug, label, cls, cells(cls)))
    return rows


def matrix_rst(rows: list[MatrixRow]) -> list[str]:
    """``rows`` as a ``list-table``, each label linked to its provider's page."""
    lines = [".. list-table::", "   :header-rows: 1", "   :stub-columns: 1", ""]
    lines.append("   * - Provider")
    lines += [f"     - {column}" for column in COLUMNS]
    for row in rows:
        lines.append(f"   * - :doc:`{row.label} </providers/{row.slug}>`")
        lines += [f"     - {row.cells[column] or '?'}" for column in COLUMNS]
    return lines


def setup(app: Any) -> dict[str, Any]:
    from docutils import nodes
    from docutils.parsers.rst import Directive
    from docutils.statemachine import StringList

    class ProviderMatrix(Directive):
        has_content = False

        def run(self) -> list[Any]:
            rows = matrix_rows()
            env = self.state.document.settings.env
            for row in rows:
                # A changed provider class rebuilds the page that shows it.
                source = inspect.getsourcefile(row.provider_class)
                if source:
                    env.note_dependency(source)
            container = nodes.container()
            content = StringList(matrix_rst(rows), source="provider-matrix")
            self.state.nested_parse(content, self.content_offset, container)
            return list(container.children)

    app.add_directive("provider-matrix", ProviderMatrix)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
