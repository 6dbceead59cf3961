"""docs/providers/payconnect.rst against the code."""

from __future__ import annotations

import ast
import re

from django_payments_ru.emulator.base import COMMON_OPTIONS
from django_payments_ru.providers.payconnect import Provider
from django_payments_ru.providers.payconnect.emulator import PayConnectEmulator
from tests.test_docs import list_table, plain, read

PAGE = "providers/payconnect.rst"


def test_the_page_has_the_common_sections():
    titles = re.findall(r"^(.+)\n-{3,}$", read(PAGE), flags=re.MULTILINE)
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


def test_options_are_documented_with_their_defaults():
    rows = list_table(read(PAGE), "   * - Option")
    documented = {plain(row[0]): plain(row[1]) for row in rows[1:]}
    assert set(documented) == set(Provider.options)
    for name, spec in Provider.options.items():
        parts = [p.strip() for p in documented[name].split(",")]
        words = set(parts) & {"required", "secret"}
        assert ("required" in words) is spec.required, name
        assert ("secret" in words) is spec.secret, name
        if not spec.required:
            value = ", ".join(p for p in parts if p not in words)
            assert ast.literal_eval(value) == spec.default, name


def test_emulator_keys_are_documented():
    rows = list_table(read(PAGE), '``PAYMENTS_RU_EMULATOR["payconnect"]``')
    documented = {}
    for row in rows[1:]:
        for name in plain(row[0]).split(","):
            documented[name.strip()] = plain(row[1])
    assert set(documented) == set(PayConnectEmulator.options) | set(COMMON_OPTIONS)
    for name, default in PayConnectEmulator.options.items():
        assert ast.literal_eval(documented[name]) == default, name


def test_every_assumption_is_listed():
    text = read(PAGE)
    for n in range(1, 14):
        assert f"**A-{n}**" in text
