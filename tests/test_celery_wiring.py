"""The Celery wiring as docs/configuration.rst documents it, and the system
checks that catch it when it is incomplete (``payments_ru.W005``-``W007``).

The project test builds a project in a temporary directory from the code blocks
of the docs' Celery section, word for word (so the docs cannot drift), runs its
web server and a real worker with Redis as the broker, and has a webhook in
celery mode processed by that worker. It needs Redis (``REDIS_URL``) and is
skipped without it; the checks' tests need nothing.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
import requests
from celery import Celery, _state

from django_payments_ru.celery_checks import check_celery_wiring
from tests.celery_procs import ROOT, closed_port, require_redis, stop, wait_for
from tests.helpers import webhook_body, webhook_headers

DOCS = ROOT / "docs" / "configuration.rst"


def doc_blocks() -> dict[str, str]:
    """The Celery section's Python blocks, by the file their first comment
    names (``# yourproject/celery.py``)."""
    text = DOCS.read_text(encoding="utf-8")
    section = text[text.index("\nCelery\n------\n") :]
    section = section[: section.index("\n.. _system-checks:")]
    blocks = {}
    pattern = r"\.\. code-block:: python\n\n((?:   .*\n|\n)+)"
    for match in re.finditer(pattern, section):
        code = textwrap.dedent(match.group(1)).strip() + "\n"
        first = code.splitlines()[0]
        found = re.match(r"# (yourproject/\S+\.py)", first)
        if found:
            blocks[found.group(1)] = code
    return blocks


def test_the_docs_give_all_three_pieces():
    blocks = doc_blocks()
    assert set(blocks) == {
        "yourproject/celery.py",
        "yourproject/__init__.py",
        "yourproject/settings.py",
    }
    assert "from .celery import app as celery_app" in blocks["yourproject/__init__.py"]
    assert "CELERY_BROKER_URL" in blocks["yourproject/settings.py"]


# --- the documented project, run ---------------------------------------------------

SECRET = "whsec_wiring_" + uuid.uuid4().hex[:8]

BASE_SETTINGS = f"""\
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "wiring-test"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django_payments_ru",
]
ROOT_URLCONF = "yourproject.urls"
DATABASES = {{
    "default": {{
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": BASE_DIR / "db.sqlite3",
        "OPTIONS": {{"timeout": 30}},
    }}
}}
PAYMENTS_RU = {{
    "PROVIDERS": {{
        "sandbox": {{
            "BACKEND": "django_payments_ru.providers.sandbox.Provider",
            "OPTIONS": {{
                "base_url": "http://127.0.0.1:9/",
                "api_key": "sk_wiring",
                "webhook_secret": {SECRET!r},
            }},
        }}
    }},
    "BASE_URL": "http://127.0.0.1:8000",
}}
"""

URLS = """\
from django.urls import include, path

urlpatterns = [path("payments/", include("django_payments_ru.urls"))]
"""

MANAGE = """\
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "yourproject.settings")
from django.core.management import execute_from_command_line

execute_from_command_line(sys.argv)
"""


def build_project(where: Path, broker: str, queue: str, *, init: bool = True) -> None:
    """The project as the docs lay it out; the settings the docs do not cover
    (apps, database, provider) come first, then the docs' block."""
    blocks = doc_blocks()
    package = where / "yourproject"
    package.mkdir()
    (where / "manage.py").write_text(MANAGE)
    (package / "urls.py").write_text(URLS)
    (package / "celery.py").write_text(blocks["yourproject/celery.py"])
    (package / "__init__.py").write_text(
        blocks["yourproject/__init__.py"] if init else ""
    )
    documented = blocks["yourproject/settings.py"]
    documented = documented.replace("redis://127.0.0.1:6379/0", broker)
    (package / "settings.py").write_text(
        BASE_SETTINGS
        + "\n"
        + documented
        # A queue of this test's own, so that no other run's worker takes it.
        + f"\nCELERY_TASK_DEFAULT_QUEUE = {queue!r}\n"
    )


def run(where: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, *args],
        cwd=where,
        env=_environ(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


#: ``manage.py check`` with the Celery checks registered (also before the app's
#: ready() imports them).
CHECK = (
    "manage.py",
    "shell",
    "-c",
    "import django_payments_ru.celery_checks;"
    "from django.core.management import call_command; call_command('check')",
)


def _environ() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def test_the_documented_project_has_its_webhook_processed_by_a_real_worker(
    tmp_path,
):
    redis_url = require_redis()
    queue = f"payments-ru-wiring-{uuid.uuid4().hex[:8]}"
    build_project(tmp_path, redis_url, queue)
    run(tmp_path, "manage.py", "migrate", "--noinput", "-v", "0")
    checks = run(tmp_path, *CHECK)
    assert "payments_ru.W00" not in checks
    out = run(
        tmp_path,
        "manage.py",
        "shell",
        "-c",
        "from django_payments_ru import services;"
        "print(services.create_invoice(provider='sandbox', amount='100.00',"
        " currency='RUB', order_id='wiring-1').uuid)",
    )
    ref = re.findall(r"[0-9a-f]{8}-[0-9a-f-]{27}", out)[-1]
    port = closed_port()
    logs = tmp_path / "processes.log"
    with logs.open("wb") as out:
        # The docs' worker command, on the test's own queue.
        worker = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "celery"),
                "-A",
                "yourproject",
                "worker",
                "--loglevel",
                "info",
                "--pool",
                "solo",
                "--queues",
                queue,
            ],
            cwd=tmp_path,
            env=_environ(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        # runserver serves each request in a thread of its own: the wiring
        # must hold there too (Celery's current app is per thread).
        server = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "runserver",
                "--noreload",
                f"127.0.0.1:{port}",
            ],
            cwd=tmp_path,
            env=_environ(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        payment = {
            "id": f"pay_{uuid.UUID(ref).hex[:16]}",
            "status": "succeeded",
            "amount": "100.00",
            "currency": "RUB",
            "reference": ref,
            "refunded_amount": "0.00",
            "failure_reason": None,
        }
        body = webhook_body(payment)

        def deliver() -> int:
            try:
                return requests.post(
                    f"http://127.0.0.1:{port}/payments/webhooks/sandbox/",
                    data=body,
                    headers={
                        "Content-Type": "application/json",
                        **webhook_headers(body, secret=SECRET),
                    },
                    timeout=10,
                ).status_code
            except requests.ConnectionError:
                return 0  # not listening yet

        assert wait_for(deliver, f"runserver to answer (log: {logs})") == 200

        def status() -> str:
            with sqlite3.connect(tmp_path / "db.sqlite3", timeout=30) as db:
                (value,) = db.execute(
                    "SELECT status FROM django_payments_ru_invoice WHERE uuid = ?",
                    [ref.replace("-", "")],
                ).fetchone()
            return str(value)

        wait_for(lambda: status() == "paid", f"the worker (log: {logs})")
        assert "process_webhook_event" in logs.read_text()
    finally:
        stop(server)
        stop(worker)
        import redis

        redis.Redis.from_url(redis_url).delete(queue)


def test_without_the_init_import_the_check_warns(tmp_path):
    build_project(tmp_path, "redis://127.0.0.1:1/0", "unused", init=False)
    assert "payments_ru.W005" in run(tmp_path, *CHECK)


# --- the checks, in this process ---------------------------------------------------


@pytest.fixture
def celery_mode(settings):
    settings.PAYMENTS_RU = {**settings.PAYMENTS_RU, "WEBHOOK_PROCESSING": "celery"}


@pytest.fixture
def no_default_app(monkeypatch):
    """As in a project whose Celery app is not the default one: a request's
    thread finds Celery's fallback app."""
    monkeypatch.setattr(_state, "default_app", None)


def ids(messages):
    return [message.id for message in messages]


def test_sync_mode_needs_no_celery_app(settings, no_default_app):
    assert check_celery_wiring() == []


def test_w005_no_project_app_loaded(celery_mode, no_default_app, monkeypatch):
    import weakref

    monkeypatch.setattr(_state, "_apps", weakref.WeakSet())
    [message] = check_celery_wiring()
    assert message.id == "payments_ru.W005"
    assert "from .celery import app as celery_app" in message.hint


def test_w005_project_app_current_in_one_thread_only(celery_mode, no_default_app):
    # Something used Celery before the project's app was made: Django's fixup
    # then does not make the project's app the default one.
    _state._get_current_app()
    app = Celery("yourproject", set_as_current=True)
    [message] = check_celery_wiring()
    assert message.id == "payments_ru.W005"
    assert "app.set_default()" in message.hint
    app.set_default()
    assert "payments_ru.W005" not in ids(check_celery_wiring())


def test_w006_eager_with_debug_off(celery_mode, settings):
    settings.DEBUG = False
    assert ids(check_celery_wiring()) == ["payments_ru.W006"]  # the test app is eager
    settings.DEBUG = True
    assert check_celery_wiring() == []


def test_w007_app_not_configured_from_the_settings(celery_mode, settings, monkeypatch):
    settings.DEBUG = True
    app = Celery("yourproject", broker="redis://elsewhere:6379/0", set_as_current=False)
    monkeypatch.setattr(_state, "default_app", app)
    [message] = check_celery_wiring()
    assert message.id == "payments_ru.W007"
    assert "config_from_object" in message.hint


def test_the_test_suite_app_passes(celery_mode, settings):
    settings.DEBUG = True
    assert check_celery_wiring() == []
