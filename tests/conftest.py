"""Fixtures shared by the whole suite (keep them few; module helpers live in
tests/helpers.py)."""

from __future__ import annotations

import copy

import pytest

# The contract bases' asserts explain their failures like a test module's
# (registered before anything imports them).
pytest.register_assert_rewrite("tests.contracts")


def pytest_configure(config: pytest.Config) -> None:
    # Ready for Django 6: its deprecations fail every test on Django 5.2 (the
    # settings install the same filters for Django's set-up: tests/deprecations.py).
    from tests import deprecations

    for line in deprecations.ini_lines():
        config.addinivalue_line("filterwarnings", line)


#: The host the test settings point the providers at (Django's test client).
TESTSERVER = "http://testserver"


@pytest.fixture
def live_payments(live_server, settings):
    """``PAYMENTS_RU`` pointed at the live server: the providers call the
    emulators it serves, and the emulators' webhooks and redirects come back to
    it. Returns the live server."""
    config = copy.deepcopy(settings.PAYMENTS_RU)
    for provider in config["PROVIDERS"].values():
        options = provider.get("OPTIONS", {})
        for name, value in options.items():
            if isinstance(value, str) and value.startswith(TESTSERVER):
                options[name] = live_server.url + value[len(TESTSERVER) :]
    config["BASE_URL"] = live_server.url
    settings.PAYMENTS_RU = config
    return live_server


#: The only names a test may resolve: the live server and local services.
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", ""})


@pytest.fixture(autouse=True)
def no_dns_no_backoff(monkeypatch):
    """No test waits on the network: a host name other than a local one fails
    to resolve at once (``testserver``, the test client's name, is not a real
    host), and the HTTP client's backoff between retries does not sleep.
    A test of the retry schedule passes its own ``sleep`` and sees the delays."""
    import socket

    from django_payments_ru.providers.http import HttpClient

    resolve = socket.getaddrinfo

    def local_only(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else str(host or "")
        if name in LOCAL_HOSTS:
            return resolve(host, *args, **kwargs)
        raise socket.gaierror(socket.EAI_NONAME, f"tests resolve no host ({name})")

    monkeypatch.setattr(socket, "getaddrinfo", local_only)
    defaults = HttpClient.__init__.__kwdefaults__
    assert defaults is not None and "sleep" in defaults
    monkeypatch.setitem(defaults, "sleep", lambda seconds: None)
