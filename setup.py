from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
DOCS = "https://django-payments-ru.readthedocs.io/"
REPOSITORY = "https://github.com/django-payments-ru/django-payments-ru"

setup(
    name="django-payments-ru",
    version="0.1.0",
    description=(
        "Django payments for Russian providers: Life-Pay, PayConnect, QuantaPay, "
        "Love&Pay, with a built-in sandbox"
    ),
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    project_urls={
        "Documentation": DOCS,
        "Changelog": f"{DOCS}en/latest/changelog.html",
        "Source": REPOSITORY,
        "Issues": f"{REPOSITORY}/issues",
    },
    # PEP 639: an SPDX expression and the files that carry the licence
    # (setuptools>=77, pyproject.toml), no licence classifier.
    license_expression="MIT",
    license_files=["LICENSE"],
    packages=find_packages(include=["django_payments_ru", "django_payments_ru.*"]),
    # What the wheel carries besides the modules, listed here and only here
    # (MANIFEST.in is the sdist's list): the templates, the Russian catalogue
    # and its compiled form, and the PEP 561 marker. .ci/check_dist.py fails
    # when a file of the package tree is missing from the wheel.
    include_package_data=False,
    package_data={
        "django_payments_ru": [
            "py.typed",
            "templates/**/*.html",
            "locale/*/LC_MESSAGES/django.po",
            "locale/*/LC_MESSAGES/django.mo",
        ],
    },
    zip_safe=False,
    # Tested on 3.11 (docs/compatibility.rst); 3.12+ is expected to work.
    python_requires=">=3.11",
    install_requires=[
        # Tested: 5.2 (CI, tox) and 4.2 (tox); 6.0 and 6.1 are expected to
        # work (the suite fails on their deprecation warnings). 6.2 is unknown.
        "Django>=4.2,<6.2",
        "djangorestframework>=3.14",
        # The API's OpenAPI 3 schema (django_payments_ru.api.schema).
        "drf-spectacular>=0.27",
        "requests>=2.31",
        "urllib3>=2.0",
        "celery>=5.3",
        "PyJWT>=2.8",
        # Currency signs and number formats (CLDR): django_payments_ru.formatting.
        "Babel>=2.12",
    ],
    extras_require={
        "postgres": ["psycopg[binary]>=3.1"],
        # Redis as the Celery broker (and as Django's cache): celery[redis]
        # brings kombu's Redis transport with what it imports (packaging).
        "redis": ["redis>=5.0", "celery[redis]>=5.3"],
        # RabbitMQ as the broker: kombu's "amqp://" transport (pyamqp) needs
        # only py-amqp, a dependency of kombu itself; kombu's "librabbitmq"
        # extra is for Python < 3.11. The extra sets the bounds.
        "rabbitmq": ["celery>=5.3", "amqp>=5.2"],
        # The example shop (example_project/) reads its settings from the
        # environment; the package itself never imports django-environ.
        # segno: the Love&Pay emulator's SBP QR code, scannable (else a dot).
        "example": ["django-environ>=0.11", "segno>=1.5"],
        "test": [
            # tests/settings.py reads DATABASE_URL and REDIS_URL with it.
            "django-environ>=0.11",
            "segno>=1.5",
            "pytest>=8.0",
            "pytest-django>=4.8",
            "pytest-timeout>=2.3",
            "pytest-xdist>=3.5",
            "hypothesis>=6.100",
            # tests/test_api_schemathesis.py: the API against its schema.
            "schemathesis>=4.0",
            "pytest-benchmark>=4.0",
            # tests/test_faults.py: webhooks under load through a real server.
            "gunicorn>=23.0",
            # tests/browser/: Debian's Chromium driven by Playwright (the
            # browser itself is a system package; without it they skip).
            "playwright>=1.40",
        ],
        "lint": [
            "ruff>=0.6",
            "mypy>=1.10",
            "django-stubs>=5.0",
            "djangorestframework-stubs>=3.15",
            "types-requests>=2.31",
        ],
        "docs": ["sphinx>=7.0"],
        # .ci/package.sh: build the sdist and the wheel, check their metadata
        # (twine 6.1 reads the Metadata-Version 2.4 of License-Expression).
        "dist": ["build>=1.2", "twine>=6.1"],
        # The browser tests alone (tests/browser/): Playwright for Python,
        # driving /usr/bin/chromium (apt-get install chromium).
        "browser": ["playwright>=1.40"],
        # make bench: the webhook benchmarks under a real WSGI server.
        "bench": ["gunicorn>=23.0"],
    },
    # What is tested (docs/compatibility.rst), not what is expected to work.
    classifiers=[
        "Development Status :: 4 - Beta",
        "Environment :: Web Environment",
        "Framework :: Django",
        "Framework :: Django :: 4.2",
        "Framework :: Django :: 5.2",
        "Intended Audience :: Developers",
        "Natural Language :: English",
        "Natural Language :: Russian",
        "Operating System :: OS Independent",
        "Programming Language :: Python",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Programming Language :: Python :: 3.11",
        "Topic :: Office/Business :: Financial",
        "Topic :: Software Development :: Libraries :: Python Modules",
        "Typing :: Typed",
    ],
)
