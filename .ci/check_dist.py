"""What the built distributions hold: .ci/package.sh runs this after the build.

    python .ci/check_dist.py DIST_DIR

The wheel: every file of the package that git tracks (modules, both apps'
migrations, templates, the Russian catalogue and its compiled form,
``py.typed``) and nothing else: no tests, no example project, no bytecode. Its
metadata: the licence as an SPDX expression with no licence classifier, the
documentation's URL, an upper bound on Django, no django-environ outside the
extras.

The sdist: every tracked file that the test suite needs to run from the
unpacked folder (the package, tests/, example_project/, docs/, benchmarks/,
the pytest configuration), and no bytecode.

Prints what is wrong and exits 1, or prints a summary.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "django_payments_ru"
# The sdist carries these trees and top-level files; .ci/ and the git files
# stay in the repository.
SDIST_TREES = (PACKAGE, "tests", "example_project", "docs", "benchmarks")
SDIST_FILES = (
    "CHANGELOG.md",
    "LICENSE",
    "MANIFEST.in",
    "Makefile",
    "README.md",
    "pyproject.toml",
    "setup.py",
    "tox.ini",
)
# Named on their own so that a failure says plainly what is gone.
WHEEL_MUST_HAVE = (
    f"{PACKAGE}/py.typed",
    f"{PACKAGE}/locale/ru/LC_MESSAGES/django.po",
    f"{PACKAGE}/locale/ru/LC_MESSAGES/django.mo",
    f"{PACKAGE}/templates/django_payments_ru/payment_button.html",
    f"{PACKAGE}/migrations/0001_initial.py",
    f"{PACKAGE}/emulator/migrations/0001_initial.py",
)
SDIST_MUST_HAVE = (
    "tests/conftest.py",
    "tests/settings.py",
    "tests/helpers.py",
    "tests/urls.py",
    "tests/testapp/models.py",
    "example_project/manage.py",
    "example_project/shop/models.py",
    "docs/conf.py",
    "pyproject.toml",
    "PKG-INFO",
)


def tracked(*paths: str) -> set[str]:
    out = subprocess.run(
        ["git", "ls-files", "-z", "--", *paths],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return {name for name in out.split("\0") if name}


def bytecode(names: set[str]) -> list[str]:
    return sorted(n for n in names if "__pycache__/" in n or n.endswith(".pyc"))


def check_wheel(path: Path, problems: list[str]) -> int:
    with zipfile.ZipFile(path) as wheel:
        names = set(wheel.namelist())
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(wheel.read(info).decode("utf-8"))
    dist_info = info.split("/", 1)[0] + "/"
    for name in WHEEL_MUST_HAVE:
        if name not in names:
            problems.append(f"wheel: {name} is missing")
    for name in sorted(tracked(PACKAGE) - names):
        problems.append(f"wheel: {name} (tracked) is missing")
    for name in sorted(names):
        if not (name.startswith(f"{PACKAGE}/") or name.startswith(dist_info)):
            problems.append(f"wheel: {name} is not part of the package")
    problems.extend(f"wheel: bytecode {name}" for name in bytecode(names))

    if metadata.get("License-Expression") != "MIT":
        problems.append("wheel: License-Expression is not MIT")
    for classifier in metadata.get_all("Classifier") or []:
        if classifier.startswith("License ::"):
            problems.append(f"wheel: licence classifier {classifier!r}")
    urls = dict(
        (part.strip() for part in url.split(",", 1))
        for url in metadata.get_all("Project-URL") or []
    )
    if not urls.get("Documentation", "").startswith("https://"):
        problems.append("wheel: no Documentation project URL")
    requires = metadata.get_all("Requires-Dist") or []
    base = [r for r in requires if "extra ==" not in r]
    django = [r for r in base if r.lower().startswith("django") and r[6:7] in "<>=!~ "]
    if not django or "<" not in django[0]:
        problems.append(f"wheel: Django has no upper bound ({django})")
    if any(r.lower().startswith("django-environ") for r in base):
        problems.append("wheel: django-environ is required outside the extras")
    return len(names)


def check_sdist(path: Path, problems: list[str]) -> int:
    with tarfile.open(path) as sdist:
        members = sdist.getnames()
    top = members[0].split("/", 1)[0] + "/"
    names = {m[len(top) :] for m in members if m.startswith(top) and m != top}
    for name in SDIST_MUST_HAVE:
        if name not in names:
            problems.append(f"sdist: {name} is missing")
    for name in sorted(tracked(*SDIST_TREES, *SDIST_FILES) - names):
        problems.append(f"sdist: {name} (tracked) is missing")
    problems.extend(f"sdist: bytecode {name}" for name in bytecode(names))
    return len(names)


def main() -> None:
    dist = Path(sys.argv[1])
    wheels = sorted(dist.glob("*.whl"))
    sdists = sorted(dist.glob("*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        sys.exit(f"expected one wheel and one sdist in {dist}: {wheels + sdists}")
    problems: list[str] = []
    in_wheel = check_wheel(wheels[0], problems)
    in_sdist = check_sdist(sdists[0], problems)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        sys.exit(1)
    print(f"{wheels[0].name}: {in_wheel} files, all of the package's")
    print(f"{sdists[0].name}: {in_sdist} entries, all the test suite needs")


if __name__ == "__main__":
    main()
