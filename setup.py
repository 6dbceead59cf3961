from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

setup(
    name="django-payments-ru",
    version="0.1.0",
    description=(
        "Django payments for Russian providers: Life-Pay, PayConnect, QuantaPay, "
        "Love&Pay, with a built-in sandbox"
    ),
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    packages=find_packages(include=["django_payments_ru", "django_payments_ru.*"]),
    include_package_data=True,
    zip_safe=False,
    python_requires=">=3.11",
    install_requires=[
        "Django>=4.2",
        "djangorestframework>=3.14",
        # The API's OpenAPI 3 schema (django_payments_ru.api.schema).
        "drf-spectacular>=0.27",
        "requests>=2.31",
        "urllib3>=2.0",
        "django-environ>=0.11",
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
        # RabbitMQ as the broker: kombu's amqp transport is a dependency of
        # celery itself; the extra only sets the bounds the app is tested with.
        "rabbitmq": ["celery>=5.3", "amqp>=5.2"],
        "test": [
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
        # The browser tests alone (tests/browser/): Playwright for Python,
        # driving /usr/bin/chromium (apt-get install chromium).
        "browser": ["playwright>=1.40"],
        # make bench: the webhook benchmarks under a real WSGI server.
        "bench": ["gunicorn>=23.0"],
    },
    classifiers=[
        "Framework :: Django",
        "Framework :: Django :: 4.2",
        "Framework :: Django :: 5.2",
        "Programming Language :: Python :: 3.11",
        "License :: OSI Approved :: MIT License",
        "Natural Language :: Russian",
    ],
)
