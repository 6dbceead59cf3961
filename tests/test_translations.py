"""Every user-facing string has its Russian translation, compiled.

The catalogs are made with ``makemessages -l ru`` (run in the app's folder and
in the example shop's); this checks that nothing in them is left untranslated
or fuzzy, and that the compiled ``.mo`` files say what the ``.po`` files say.
"""

from __future__ import annotations

import ast
import gettext
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CATALOGS = [
    ROOT / "django_payments_ru/locale/ru/LC_MESSAGES/django.po",
    ROOT / "example_project/shop/locale/ru/LC_MESSAGES/django.po",
]


def entries(path: Path) -> list[dict[str, object]]:
    """The entries of a .po file: msgid, msgid_plural, msgstr(s), flags."""
    found: list[dict[str, object]] = []
    current: dict[str, object] = {}
    key = ""

    def close() -> None:
        if "msgid" in current:
            found.append(dict(current))
        current.clear()

    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line:
            close()
            key = ""
        elif line.startswith("#,"):
            close()
            current["flags"] = {f.strip() for f in line[2:].split(",")}
        elif line.startswith("#"):
            continue
        elif line.startswith('"'):
            current[key] = str(current[key]) + ast.literal_eval(line)
        else:
            key, _, value = line.partition(" ")
            if key == "msgid" and "msgid" in current:
                flags = current.get("flags")
                close()
                if flags is not None:
                    current["flags"] = flags
            current[key] = ast.literal_eval(value)
    close()
    return [e for e in found if e["msgid"]]  # the header has an empty msgid


@pytest.mark.parametrize("path", CATALOGS, ids=lambda p: p.parts[-5])
def test_every_string_is_translated_and_compiled(path: Path) -> None:
    items = entries(path)
    assert items, path
    untranslated = [
        e["msgid"]
        for e in items
        if "fuzzy" in e.get("flags", set())  # type: ignore[operator]
        or not all(v for k, v in e.items() if k.startswith("msgstr"))
    ]
    assert untranslated == []
    with path.with_suffix(".mo").open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    for e in items:
        msgid = str(e["msgid"])
        if "msgid_plural" in e:
            assert (
                compiled.ngettext(msgid, str(e["msgid_plural"]), 1) == e["msgstr[0]"]
            ), msgid
        elif "msgctxt" in e:
            assert compiled.pgettext(str(e["msgctxt"]), msgid) == e["msgstr"], msgid
        else:
            assert compiled.gettext(msgid) == e["msgstr"], (
                f"{msgid!r}: the .mo is out of date (compilemessages)"
            )
