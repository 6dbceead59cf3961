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
import builtins
import importlib
import re
import textwrap
from pathlib import Path

from django.core.checks import run_checks
from django.test import override_settings

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


def _readme() -> str:
    return (TESTS.parent / "README.md").read_text(encoding="utf-8")


def _readme_provider_rows() -> dict[str, str]:
    """``{slug: provider name}`` of the README's table of providers."""
    return {
        match.group(2): match.group(1).strip()
        for match in re.finditer(r"^\| ([^|`]+) \| `(\w+)` \|", _readme(), re.M)
    }


def _front_page_providers() -> set[str]:
    """The slugs of the providers the front page (docs/index.rst) links to
    (the providers' index page aside)."""
    linked = set(re.findall(r":doc:`[^`<]*<providers/(\w+)>`", read("index.rst")))
    return linked - {"index"}


def test_the_readme_table_lists_exactly_the_providers_that_exist():
    rows = _readme_provider_rows()
    packages = provider_packages()
    assert set(rows) == set(packages)
    for slug, name in rows.items():
        assert name == packages[slug].display_name, slug


def test_the_front_page_lists_exactly_the_providers_that_exist():
    # A provider named on the front page has a package and a page; a package
    # has its line on the front page.
    named = _front_page_providers()
    assert named == set(provider_packages())
    for slug in named:
        assert (DOCS / "providers" / f"{slug}.rst").is_file(), slug
    # No provider named in prose without a link, as the old front page did.
    intro = read("index.rst").split(".. toctree::")[0]
    for slug, provider in provider_packages().items():
        for line in intro.splitlines():
            if provider.display_name in line:
                assert f"<providers/{slug}>" in line, line


# --- README and quickstart tell the same story -------------------------------------


def _markdown_python(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", text, re.M | re.S)


def _rst_python(text: str) -> list[str]:
    """The ``.. code-block:: python`` blocks of a reST page, dedented."""
    blocks = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        match = re.match(r"^(\s*)\.\. code-block:: python3?\s*$", line)
        if not match:
            continue
        indent = len(match.group(1))
        body: list[str] = []
        for following in lines[i + 1 :]:
            stripped = following.strip()
            if stripped and len(following) - len(following.lstrip()) <= indent:
                break
            if not body and stripped.startswith(":"):  # an option
                continue
            body.append(following)
        blocks.append(textwrap.dedent("\n".join(body)).strip() + "\n")
    return blocks


def _snippets() -> dict[str, list[str]]:
    return {
        "README.md": _markdown_python(_readme()),
        "docs/quickstart.rst": _rst_python(read("quickstart.rst")),
    }


def _top_level(blocks: list[str]) -> dict[str, str]:
    """``{name: ast dump}`` of what the snippets define at the top level
    (assignments, functions, classes), comments and layout aside."""
    found: dict[str, str] = {}
    for block in blocks:
        for node in ast.parse(block).body:
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        found[target.id] = ast.dump(node.value)
            elif isinstance(node, ast.FunctionDef | ast.ClassDef):
                found[node.name] = ast.dump(node)
    return found


def _includes(urlpatterns: str) -> list[tuple[str, str]]:
    """``[(route, included module)]`` of the ``path(..., include(...))`` lines."""
    tree = ast.parse(urlpatterns, mode="eval")
    found = []
    for call in ast.walk(tree):
        if (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Name)
            and call.func.id == "path"
            and len(call.args) == 2
            and isinstance(call.args[1], ast.Call)
        ):
            route, include = call.args[0], call.args[1].args[0]
            assert isinstance(route, ast.Constant)
            assert isinstance(include, ast.Constant)
            found.append((route.value, include.value))
    return found


def _installed_apps(blocks: list[str]) -> list[str]:
    for block in blocks:
        for node in ast.parse(block).body:
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id == "INSTALLED_APPS"
            ):
                return [ast.literal_eval(element) for element in node.value.elts]
    raise AssertionError("no INSTALLED_APPS")


def _urlpatterns(blocks: list[str]) -> list[tuple[str, str]]:
    for block in blocks:
        for node in ast.parse(block).body:
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id == "urlpatterns"
            ):
                return _includes(ast.unparse(node.value))
    raise AssertionError("no urlpatterns")


def test_readme_and_quickstart_install_the_same_apps():
    readme, quickstart = _snippets().values()
    assert _installed_apps(readme) == _installed_apps(quickstart)
    # What the app's own pages and checks need is there; nothing it does not
    # need (the API renders JSON only: no rest_framework).
    assert _installed_apps(readme) == [
        "django_payments_ru",
        "django_payments_ru.emulator",
    ]


def test_readme_and_quickstart_include_the_same_urls():
    readme, quickstart = _snippets().values()
    assert _urlpatterns(readme) == _urlpatterns(quickstart)
    included = dict((module, route) for route, module in _urlpatterns(readme))
    assert included == {
        "django_payments_ru.urls": "payments/",
        "django_payments_ru.api.urls": "payments/api/",
        "django_payments_ru.emulator.urls": "emulator/",
    }
    # Each included module exists (a renamed URLconf fails here).
    for module in included:
        importlib.import_module(module)


def test_readme_and_quickstart_define_shared_names_alike():
    # PAYMENTS_RU, the credentials it reads, the emulator's settings, the view
    # that creates an invoice, the receiver: where both define a name, it is
    # the same code.
    readme, quickstart = (_top_level(blocks) for blocks in _snippets().values())
    shared = readme.keys() & quickstart.keys()
    assert {"INSTALLED_APPS", "PAYMENTS_RU", "PAYMENTS_RU_EMULATOR"} <= shared
    assert {"urlpatterns", "pay", "order_paid"} <= shared
    assert {name: readme[name] for name in shared} == {
        name: quickstart[name] for name in shared
    }


def test_the_payments_ru_example_is_a_valid_configuration():
    # The snippet's PAYMENTS_RU, run as written, passes the app's checks.
    blocks = _snippets()["README.md"]
    namespace: dict[str, object] = {}
    settings_block = next(b for b in blocks if "PAYMENTS_RU = {" in b)
    exec(compile(settings_block, "README.md", "exec"), namespace)
    with override_settings(
        PAYMENTS_RU=namespace["PAYMENTS_RU"],
        PAYMENTS_RU_EMULATOR=namespace["PAYMENTS_RU_EMULATOR"],
    ):
        errors = [
            message
            for message in run_checks()
            if message.id and message.id.startswith("payments_ru.E")
        ]
    assert errors == []


_BUILTINS = set(dir(builtins))


def _bound(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return names


def test_every_name_in_the_readme_and_quickstart_snippets_is_defined():
    # No bare env(...): a name a snippet uses is imported or defined in it or
    # in an earlier snippet of the same page.
    for page, blocks in _snippets().items():
        known = set(_BUILTINS)
        for block in blocks:
            tree = ast.parse(block)
            known |= _bound(tree)
            used = {
                node.id
                for node in ast.walk(tree)
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)
            }
            assert used <= known, f"{page}: {sorted(used - known)} in\n{block}"


# --- every file a page names exists -------------------------------------------------

ROOT = TESTS.parent
#: Made by a build or a run, not kept in the repository.
GENERATED = ("docs/_build", "artifacts/", ".venv")
#: Where a template name (``django_payments_ru/base.html``) is found.
TEMPLATE_DIRS = (ROOT / "django_payments_ru" / "templates",)
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+")
_PATH = re.compile(r"(?<![\w/.<>*-])\.?[\w-]+(?:/[\w.<>*-]+)+/?")
_DOCUMENT = re.compile(r"(?<![\w/.-])[\w-]+\.(?:md|rst)\b")


def _pages() -> dict[str, str]:
    pages = {"README.md": _readme()}
    for path in sorted(DOCS.rglob("*.rst")):
        if "_build" not in path.parts:
            pages[str(path.relative_to(ROOT))] = path.read_text(encoding="utf-8")
    return pages


def _repository_entries() -> set[str]:
    return {path.name for path in ROOT.iterdir()} - {".git"}


def _mentioned_files(text: str) -> tuple[set[str], set[str]]:
    """The repository paths (``tests/test_faults.py``, with ``<slug>`` expanded
    to every provider) and the document names (``lifepay.md``) ``text``
    mentions. A path counts when its first part is an entry of the
    repository's root; anything else (``shop/receivers.py``,
    ``payments/webhooks/<alias>/``) is the reader's project or a URL."""
    text = _URL.sub(" ", text)
    top = _repository_entries()
    paths: set[str] = set()
    for candidate in _PATH.findall(text):
        candidate = candidate.rstrip(".")  # the end of a sentence
        if candidate.split("/")[0] not in top:
            continue
        if "<slug>" in candidate:
            paths |= {candidate.replace("<slug>", s) for s in provider_packages()}
        elif not re.search(r"[<>*]", candidate):
            paths.add(candidate)
    return paths, set(_DOCUMENT.findall(text))


def _exists(path: str) -> bool:
    if path.startswith(GENERATED):
        return True
    if (ROOT / path).exists():
        return True
    # A template, by its name: django_payments_ru/base.html.
    return any((folder / path).is_file() for folder in TEMPLATE_DIRS)


def test_every_file_a_page_mentions_is_in_the_repository():
    documents = {path.name for path in ROOT.rglob("*.md") if ".venv" not in path.parts}
    documents |= {path.name for path in DOCS.rglob("*.rst")}
    missing = []
    found = 0
    for page, text in _pages().items():
        paths, names = _mentioned_files(text)
        found += len(paths) + len(names)
        missing += [f"{page}: {path}" for path in sorted(paths) if not _exists(path)]
        missing += [f"{page}: {name}" for name in sorted(names - documents)]
    assert found > 30  # the scan finds the pages' references at all
    assert missing == []


def test_the_file_scan_finds_what_it_must():
    paths, names = _mentioned_files(
        "See ``tests/test_faults.py`` and ``django_payments_ru/base.html``,"
        " lifepay.md section 4, docs/quickstart.rst, https://x.example/a/b.py,"
        " ``shop/receivers.py``, ``payments/webhooks/<alias>/``,"
        " ``django_payments_ru/providers/<slug>/emulator.py``."
    )
    assert names == {"lifepay.md"}
    assert "tests/test_faults.py" in paths
    assert "django_payments_ru/base.html" in paths
    assert "docs/quickstart.rst" in paths
    assert "django_payments_ru/providers/sandbox/emulator.py" in paths
    assert not {p for p in paths if p.startswith(("shop", "payments", "https"))}
    assert not _exists("docs/missing.rst")
    assert _exists("django_payments_ru/base.html")
