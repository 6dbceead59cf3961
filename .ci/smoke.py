"""The installed package, used as a project uses it: .ci/package.sh runs this
with the Python of a fresh virtualenv that has the wheel installed, from a
directory outside the checkout.

    python -I smoke.py WORKDIR

It writes a minimal Django project into WORKDIR (the settings the README
gives: ``rest_framework`` and ``django_payments_ru`` installed, the sandbox
provider, SQLite), then, each in a process of its own started in WORKDIR:

* fails unless ``import django_payments_ru`` is the virtualenv's installed
  copy (site-packages), not a source tree;
* ``manage.py migrate``, ``manage.py check --fail-level WARNING``, and
  ``makemigrations --check`` (the wheel's migrations match its models);
* creates an invoice with ``services.create_invoice``, renders
  ``{% load payments_ru %}{% payment_button invoice %}`` and checks the pay
  link, renders it again in Russian (the compiled catalogue is installed),
  and opens the invoice list of the admin (its templates are installed);
* resolves Celery's broker transports for Redis and RabbitMQ (the extras).

Django 6.0's and 6.1's deprecation warnings are errors in the project.

Exits non-zero with the reason on the first failure.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SETTINGS = """
import warnings
from pathlib import Path

from django.utils import deprecation

# What Django 6.0 and 6.1 remove fails here too (migrate, check, the button).
for name in ("RemovedInDjango60Warning", "RemovedInDjango61Warning"):
    if hasattr(deprecation, name):
        warnings.filterwarnings("error", category=getattr(deprecation, name))

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "smoke-test-only-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["shop.example.com", "testserver"]
USE_TZ = True
LANGUAGE_CODE = "en"
USE_I18N = True

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_payments_ru",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "smokeshop.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": BASE_DIR / "db.sqlite3",
    }
}
STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

PAYMENTS_RU = {
    "PROVIDERS": {
        "sandbox": {
            "BACKEND": "django_payments_ru.providers.sandbox.Provider",
            "OPTIONS": {
                "base_url": "http://127.0.0.1:8000/emulator/sandbox/",
                "api_key": "sk_sandbox_smoke",
                "webhook_secret": "whsec_sandbox_smoke",
            },
        },
    },
    "BASE_URL": "https://shop.example.com",
    "WEBHOOK_PROCESSING": "sync",
}
"""

URLS = """
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("payments/", include("django_payments_ru.urls")),
]
"""

MANAGE = """
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smokeshop.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
"""

# Which copy of the package is imported: the installed one, nothing else.
WHERE = """
import sys
import sysconfig
from pathlib import Path

import django_payments_ru

module = Path(django_payments_ru.__file__).resolve()
site = Path(sysconfig.get_paths()["purelib"]).resolve()
assert module.is_relative_to(site), f"{module} is not under {site}"
assert Path(sys.prefix).resolve() != Path(sys.base_prefix).resolve(), "no venv"
print(f"django_payments_ru from {module.parent}")
"""

USE = """
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smokeshop.settings")

import django

django.setup()

from django.contrib.auth import get_user_model
from django.template import Context, Template
from django.test import Client
from django.utils import translation

from django_payments_ru import services

invoice = services.create_invoice(
    provider="sandbox",
    amount="990.00",
    currency="RUB",
    order_id="smoke-1",
    description="Smoke test order",
    customer_email="buyer@example.com",
)
button = Template("{% load payments_ru %}{% payment_button invoice %}")
html = button.render(Context({"invoice": invoice}))
link = invoice.get_pay_url()
assert link.startswith("https://shop.example.com/payments/pay/"), link
assert f'href="{link}"' in html, html
assert "Pay with Sandbox" in html, html
print(f"button: {html}")

with translation.override("ru"):
    html_ru = button.render(Context({"invoice": invoice}))
assert "Оплатить: Sandbox" in html_ru, html_ru
print(f"button in Russian: {html_ru}")

admin = get_user_model().objects.create_superuser("admin", "a@example.com", "x")
client = Client(HTTP_HOST="shop.example.com")
client.force_login(admin)
response = client.get("/admin/django_payments_ru/invoice/")
assert response.status_code == 200, response.status_code
assert "smoke-1" in response.content.decode(), "the invoice is not listed"
print("admin: the invoice list shows the invoice")
"""

BROKERS = """
from kombu.transport import resolve_transport
from kombu.utils.imports import symbol_by_name

for scheme in ("redis", "amqp"):
    transport = symbol_by_name(resolve_transport(scheme))
    print(f"broker {scheme}://: {transport.__module__}.{transport.__name__}")
"""


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")


def run(workdir: Path, *args: str) -> None:
    print(f"$ python {' '.join(args)}", flush=True)
    # Neither PYTHONPATH (-E) nor the user's site-packages (-s); the script's
    # folder, WORKDIR, is on the path (not -I, which leaves it out).
    done = subprocess.run([sys.executable, "-E", "-s", *args], cwd=workdir, check=False)
    if done.returncode:
        sys.exit(f"smoke test failed: python {' '.join(args)} ({done.returncode})")


def main() -> None:
    workdir = Path(sys.argv[1]).resolve()
    write(workdir / "smokeshop" / "__init__.py", "")
    write(workdir / "smokeshop" / "settings.py", SETTINGS)
    write(workdir / "smokeshop" / "urls.py", URLS)
    write(workdir / "manage.py", MANAGE)
    write(workdir / "where.py", WHERE)
    write(workdir / "use.py", USE)
    write(workdir / "brokers.py", BROKERS)

    run(workdir, "where.py")
    run(workdir, "manage.py", "migrate", "--noinput", "-v", "0")
    run(workdir, "manage.py", "check", "--fail-level", "WARNING")
    run(workdir, "manage.py", "makemigrations", "--check", "--dry-run")
    run(workdir, "use.py")
    run(workdir, "brokers.py")
    print("smoke test passed")


if __name__ == "__main__":
    main()
