"""System checks for PAYMENTS_RU: one id per problem, each with a hint."""

from __future__ import annotations

import copy
import importlib.util
import sys
import types
from io import StringIO
from typing import Any, ClassVar

import pytest
from django.conf import settings
from django.core.checks import Error, Warning
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings
from django.urls import include, path

from django_payments_ru.checks import (
    check_emulator_not_in_production,
    check_emulator_urls_have_the_app,
    check_payments_settings,
)
from django_payments_ru.providers.base import BaseProvider, Option

SANDBOX = "django_payments_ru.providers.sandbox.Provider"


def sandbox_options(**changes: Any) -> dict[str, Any]:
    options = {
        "base_url": "http://testserver/emulator/sandbox/",
        "api_key": "sk_test",
        "webhook_secret": "whsec_test",
    }
    options.update(changes)
    return {key: value for key, value in options.items() if value is not None}


def config(**changes: Any) -> dict[str, Any]:
    """The test settings' PAYMENTS_RU with ``changes`` (None removes a key)."""
    value = copy.deepcopy(settings.PAYMENTS_RU)
    value.update(changes)
    return {key: item for key, item in value.items() if item is not None}


def providers(**entries: Any) -> dict[str, Any]:
    return config(PROVIDERS=entries)


def ids(messages: list[Any]) -> list[str]:
    return [message.id for message in messages]


def run(value: Any, **more_settings: Any) -> list[Any]:
    with override_settings(PAYMENTS_RU=value, **more_settings):
        return check_payments_settings(None)


def test_the_test_settings_pass() -> None:
    assert check_payments_settings(None) == []


def test_every_message_names_the_setting_in_its_hint() -> None:
    messages = [
        *run(["not a dict"]),
        *run(config(PROVIDER={})),
        *run(config(PROVIDERS=[])),
        *run(providers(a={"OPTIONS": {}})),
        *run(providers(a={"BACKEND": "no.such.Module"})),
        *run(providers(a={"BACKEND": "decimal.Decimal"})),
        *run(providers(a={"BACKEND": SANDBOX, "OPTIONS": []})),
        *run(providers(a={"BACKEND": SANDBOX, "OPTIONS": {}})),
        *run(
            providers(
                a={"BACKEND": SANDBOX, "OPTIONS": sandbox_options(webhook_secret="")}
            )
        ),
        *run(config(WEBHOOK_PROCESSING="rq")),
        *run(config(BASE_URL="shop.example.com")),
        *run(config(BASE_URL="")),
        *run(config(HTTP_TIMEOUT=0)),
        *run(config(HTTP_RETRIES=-1)),
        *run(config(HTTP_MAX_RETRY_AFTER="soon")),
        *run(config(CACHE="redis")),
        *run(providers(**{"a/b": {"BACKEND": SANDBOX, "OPTIONS": sandbox_options()}})),
    ]
    found = sorted(set(ids(messages)))
    assert found == sorted(
        [f"payments_ru.E{n:03d}" for n in range(1, 16)]
        + ["payments_ru.W001", "payments_ru.W002"]
    )
    for message in messages:
        assert message.id.startswith("payments_ru.")
        assert message.hint
        assert "PAYMENTS_RU" in message.msg + message.hint


def test_e001_not_a_dict() -> None:
    [message] = run("sandbox")
    assert isinstance(message, Error)
    assert message.id == "payments_ru.E001"
    assert "must be a dict, not str" in message.msg


def test_an_empty_or_missing_setting_is_fine() -> None:
    assert run({}) == []
    assert run(None) == []
    with override_settings():
        del settings.PAYMENTS_RU
        assert check_payments_settings(None) == []


def test_w001_unknown_top_level_key() -> None:
    [message] = run(config(WEBHOOKS_PROCESSING="celery"))
    assert isinstance(message, Warning)
    assert message.id == "payments_ru.W001"
    assert "'WEBHOOKS_PROCESSING'" in message.msg
    assert "WEBHOOK_PROCESSING" in message.hint


def test_e002_providers_not_a_dict() -> None:
    assert ids(run(config(PROVIDERS=["sandbox"]))) == ["payments_ru.E002"]


@pytest.mark.parametrize("entry", ["sandbox", {}, {"OPTIONS": {}}, {"BACKEND": 42}])
def test_e003_entry_without_backend(entry: Any) -> None:
    [message] = run(providers(pay=entry))
    assert message.id == "payments_ru.E003"
    assert "PAYMENTS_RU['PROVIDERS']['pay']" in message.msg
    assert "BACKEND" in message.hint


def test_e004_backend_that_cannot_be_imported() -> None:
    [message] = run(
        providers(
            pay={
                "BACKEND": "django_payments_ru.providers.nosuch.Provider",
                "OPTIONS": {},
            }
        )
    )
    assert message.id == "payments_ru.E004"
    assert "'django_payments_ru.providers.nosuch.Provider' cannot be imported" in (
        message.msg
    )


@pytest.mark.parametrize(
    "path",
    [
        "decimal.Decimal",
        "django_payments_ru.providers.base.Checkout",
        "django_payments_ru.checks.check_payments_settings",
    ],
)
def test_e005_backend_that_is_not_a_provider(path: str) -> None:
    [message] = run(providers(pay={"BACKEND": path, "OPTIONS": {}}))
    assert message.id == "payments_ru.E005"
    assert "BaseProvider" in message.msg


def test_e006_options_not_a_dict() -> None:
    [message] = run(providers(pay={"BACKEND": SANDBOX, "OPTIONS": "api_key=1"}))
    assert message.id == "payments_ru.E006"


def test_e007_one_message_per_missing_or_unknown_option() -> None:
    messages = run(
        providers(
            pay={
                "BACKEND": SANDBOX,
                "OPTIONS": sandbox_options(
                    api_key=None,
                    webhook_secret=None,
                    apikey="sk",
                    webhook_tolerance="300",
                ),
            }
        )
    )
    assert ids(messages) == ["payments_ru.E007"] * 4
    text = "\n".join(message.msg for message in messages)
    assert "Unknown option 'apikey'" in text
    assert "PAYMENTS_RU['PROVIDERS']['pay']['OPTIONS']['api_key']" in text
    assert "PAYMENTS_RU['PROVIDERS']['pay']['OPTIONS']['webhook_secret']" in text
    assert "['OPTIONS']['webhook_tolerance'] must be" in text
    assert all(message.obj == SANDBOX for message in messages)


@pytest.mark.parametrize(
    "options",
    [
        sandbox_options(webhook_secret=""),
        sandbox_options(webhook_secret="   "),
        sandbox_options(api_key=""),
        sandbox_options(previous_webhook_secrets=["old", ""]),
    ],
)
def test_e008_empty_secret_with_debug_off(options: dict[str, Any]) -> None:
    value = providers(pay={"BACKEND": SANDBOX, "OPTIONS": options})
    [message] = run(value, DEBUG=False)
    assert message.id == "payments_ru.E008"
    assert "is empty" in message.msg
    assert "PAYMENTS_RU['PROVIDERS']['pay']['OPTIONS']" in message.hint
    # While developing, an empty secret is allowed.
    assert run(value, DEBUG=True) == []


def test_e008_ignores_secrets_that_are_set_and_non_secret_options() -> None:
    options = sandbox_options(previous_webhook_secrets=[])
    assert run(providers(pay={"BACKEND": SANDBOX, "OPTIONS": options})) == []
    # base_url is not a secret: empty, it is not E008's business.
    messages = run(
        providers(pay={"BACKEND": SANDBOX, "OPTIONS": sandbox_options(base_url="")})
    )
    assert "payments_ru.E008" not in ids(messages)


@pytest.mark.parametrize("mode", ["rq", "", None, "SYNC"])
def test_e009_webhook_processing(mode: Any) -> None:
    value = config()
    value["WEBHOOK_PROCESSING"] = mode
    assert ids(run(value)) == ["payments_ru.E009"]


@pytest.mark.parametrize("mode", ["sync", "celery"])
def test_e009_accepts_the_documented_modes(mode: str) -> None:
    assert run(config(WEBHOOK_PROCESSING=mode)) == []


@pytest.mark.parametrize(
    "url",
    [
        "shop.example.com",
        "/payments",
        "ftp://shop.example.com",
        "https://",
        42,
        ["https://shop.example.com"],
    ],
)
def test_e010_base_url_not_absolute_http(url: Any) -> None:
    [message] = run(config(BASE_URL=url))
    assert message.id == "payments_ru.E010"
    assert "https://shop.example.com" in message.hint


@pytest.mark.parametrize(
    "url", ["https://shop.example.com", "http://127.0.0.1:8000", "https://a.b/shop/"]
)
def test_e010_accepts_absolute_urls(url: str) -> None:
    assert run(config(BASE_URL=url)) == []


def test_w002_empty_base_url() -> None:
    [message] = run(config(BASE_URL=""))
    assert isinstance(message, Warning)
    assert message.id == "payments_ru.W002"
    assert "outside a request" in message.hint
    assert run(config(BASE_URL=None)) == [message]
    # Nothing configured yet, nothing to build URLs for.
    assert run({"PROVIDERS": {}}) == []


@pytest.mark.parametrize(
    "timeout", [0, -1, "5", None, True, (5,), (5, 0), (5, 30, 60), [1, "30"]]
)
def test_e011_http_timeout(timeout: Any) -> None:
    value = config()
    value["HTTP_TIMEOUT"] = timeout
    assert ids(run(value)) == ["payments_ru.E011"]


@pytest.mark.parametrize("timeout", [10, 2.5, (3, 30), [3.0, 60]])
def test_e011_accepts_a_number_or_a_pair(timeout: Any) -> None:
    assert run(config(HTTP_TIMEOUT=timeout)) == []


@pytest.mark.parametrize("retries", [-1, "3", 1.5, True])
def test_e012_http_retries(retries: Any) -> None:
    assert ids(run(config(HTTP_RETRIES=retries))) == ["payments_ru.E012"]


@pytest.mark.parametrize("wait", [-1, "30", True])
def test_e013_http_max_retry_after(wait: Any) -> None:
    assert ids(run(config(HTTP_MAX_RETRY_AFTER=wait))) == ["payments_ru.E013"]


def test_e012_e013_accept_zero() -> None:
    assert run(config(HTTP_RETRIES=0, HTTP_MAX_RETRY_AFTER=0)) == []


def test_e014_cache_alias() -> None:
    [message] = run(config(CACHE="tokens"))
    assert message.id == "payments_ru.E014"
    assert "'default'" in message.hint


@pytest.mark.parametrize("alias", ["a/b", "pay now", "", 7])
def test_e015_alias_unusable_in_a_url(alias: Any) -> None:
    value = config(
        PROVIDERS={alias: {"BACKEND": SANDBOX, "OPTIONS": sandbox_options()}}
    )
    assert ids(run(value)) == ["payments_ru.E015"]


def test_every_problem_is_reported_at_once() -> None:
    value = {
        "PROVIDERS": {
            "one": {"BACKEND": "no.such.Provider"},
            "two": {"BACKEND": SANDBOX, "OPTIONS": {}},
        },
        "BASE_URL": "nope",
        "WEBHOOK_PROCESSING": "later",
        "TYPO": 1,
    }
    assert sorted(ids(run(value))) == [
        "payments_ru.E004",
        "payments_ru.E007",
        "payments_ru.E007",
        "payments_ru.E007",
        "payments_ru.E009",
        "payments_ru.E010",
        "payments_ru.W001",
    ]


# --- through manage.py check ----------------------------------------------------


def test_manage_py_check_passes_with_the_test_settings() -> None:
    out = StringIO()
    call_command("check", stdout=out, stderr=StringIO())
    assert "no issues" in out.getvalue()


def test_manage_py_check_fails_on_errors() -> None:
    value = providers(
        pay={"BACKEND": SANDBOX, "OPTIONS": sandbox_options(webhook_secret="")}
    )
    with (
        override_settings(PAYMENTS_RU=value, DEBUG=False),
        pytest.raises(SystemCheckError) as excinfo,
    ):
        call_command("check", stdout=StringIO(), stderr=StringIO())
    text = str(excinfo.value)
    assert "payments_ru.E008" in text
    assert "HINT:" in text


def test_manage_py_check_prints_warnings() -> None:
    err = StringIO()
    with override_settings(PAYMENTS_RU=config(BASE_URL="")):
        call_command("check", stdout=StringIO(), stderr=err)
    assert "payments_ru.W002" in err.getvalue()


def test_a_warning_can_be_silenced() -> None:
    err = StringIO()
    with override_settings(
        PAYMENTS_RU=config(BASE_URL=""), SILENCED_SYSTEM_CHECKS=["payments_ru.W002"]
    ):
        call_command("check", stdout=StringIO(), stderr=err)
    assert "payments_ru.W002" not in err.getvalue()


@pytest.mark.parametrize(
    ("value", "check_id"),
    [
        ("nope", "payments_ru.E001"),
        (config(PROVIDERS="nope"), "payments_ru.E002"),
        (providers(pay={"OPTIONS": {}}), "payments_ru.E003"),
        (providers(pay={"BACKEND": "x.y.Z"}), "payments_ru.E004"),
        (providers(pay={"BACKEND": "decimal.Decimal"}), "payments_ru.E005"),
        (providers(pay={"BACKEND": SANDBOX, "OPTIONS": 1}), "payments_ru.E006"),
        (providers(pay={"BACKEND": SANDBOX, "OPTIONS": {}}), "payments_ru.E007"),
        (config(WEBHOOK_PROCESSING="x"), "payments_ru.E009"),
        (config(BASE_URL="x"), "payments_ru.E010"),
        (config(HTTP_TIMEOUT="x"), "payments_ru.E011"),
        (config(HTTP_RETRIES="x"), "payments_ru.E012"),
        (config(HTTP_MAX_RETRY_AFTER="x"), "payments_ru.E013"),
        (config(CACHE="x"), "payments_ru.E014"),
        (config(RETURN_URL_HOSTS="x"), "payments_ru.E016"),
        (
            providers(**{"a b": {"BACKEND": SANDBOX, "OPTIONS": sandbox_options()}}),
            "payments_ru.E015",
        ),
    ],
)
def test_each_error_fails_manage_py_check(value: Any, check_id: str) -> None:
    with (
        override_settings(PAYMENTS_RU=value),
        pytest.raises(SystemCheckError, match=check_id),
    ):
        call_command("check", stdout=StringIO(), stderr=StringIO())


class _Passworded(BaseProvider):
    """A provider whose secrets are named neither "secret" nor "key"."""

    slug = "passworded"
    options: ClassVar[dict[str, Option]] = {
        "login": Option(),
        "password": Option(secret=True),
        "old_tokens": Option(
            required=False, default=(), secret=True, types=(list, tuple)
        ),
    }


PASSWORDED = f"{__name__}._Passworded"


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"login": "shop", "password": ""}, "password"),
        ({"login": "shop", "password": "  "}, "password"),
        ({"login": "shop", "password": "pw", "old_tokens": ["t1", ""]}, "old_tokens"),
    ],
)
def test_e008_covers_every_secret_option_whatever_its_name(
    options: dict[str, Any], name: str
) -> None:
    value = providers(pay={"BACKEND": PASSWORDED, "OPTIONS": options})
    [message] = run(value, DEBUG=False)
    assert message.id == "payments_ru.E008"
    assert f"['OPTIONS'][{name!r}] is empty" in message.msg
    assert run(value, DEBUG=True) == []


def test_e008_leaves_empty_non_secret_options_alone() -> None:
    # "login" is not secret: an empty one is the provider's business, not E008's.
    value = providers(
        pay={"BACKEND": PASSWORDED, "OPTIONS": {"login": "", "password": "pw"}}
    )
    assert run(value, DEBUG=False) == []


@pytest.mark.parametrize(
    "hosts",
    [
        "shop.example.com",
        {"shop.example.com": True},
        ["https://shop.example.com"],
        ["shop.example.com/orders/"],
        ["user@shop.example.com"],
        [""],
        [42],
    ],
)
def test_e016_return_url_hosts_must_be_host_names(hosts: Any) -> None:
    [message] = run(config(RETURN_URL_HOSTS=hosts))
    assert message.id == "payments_ru.E016"
    assert "PAYMENTS_RU['RETURN_URL_HOSTS']" in message.hint


@pytest.mark.parametrize(
    "hosts",
    [[], ("app.example.com",), ["shop.example.com:8443", "127.0.0.1", "[::1]:8000"]],
)
def test_e016_accepts_host_names_with_ports(hosts: Any) -> None:
    assert run(config(RETURN_URL_HOSTS=hosts)) == []


# --- the emulators (W003, E018) -------------------------------------------------

EMULATOR_APP = "django_payments_ru.emulator"
WITHOUT_EMULATOR_APP = [app for app in settings.INSTALLED_APPS if app != EMULATOR_APP]


def emulator_ids() -> list[str]:
    return ids(
        [
            *check_emulator_not_in_production(None),
            *check_emulator_urls_have_the_app(None),
        ]
    )


@pytest.fixture
def urlconf(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Make a root URLconf module of ``patterns``; returns its name."""

    def make(*patterns: Any) -> str:
        name = f"tests._urlconf_{len(made)}"
        module = types.ModuleType(name)
        module.urlpatterns = list(patterns)  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, name, module)
        made.append(name)
        return name

    made: list[str] = []
    return make


def test_w003_the_emulators_with_debug_off() -> None:
    # The test settings: installed, included (tests/urls.py), DEBUG off.
    with override_settings(DEBUG=False):
        [message] = check_emulator_not_in_production(None)
    assert message.id == "payments_ru.W003"
    assert isinstance(message, Warning)
    assert "'django_payments_ru.emulator' is in INSTALLED_APPS" in message.msg
    assert "includes django_payments_ru.emulator.urls" in message.msg
    assert "SILENCED_SYSTEM_CHECKS = ['payments_ru.W003']" in message.hint
    with override_settings(DEBUG=True):
        assert check_emulator_not_in_production(None) == []


def test_w003_the_app_alone_or_the_urls_alone(urlconf: Any) -> None:
    plain = urlconf(path("payments/", include("django_payments_ru.urls")))
    with override_settings(DEBUG=False, ROOT_URLCONF=plain):
        [message] = check_emulator_not_in_production(None)
        assert "URLconf" not in message.msg
    with override_settings(
        DEBUG=False, ROOT_URLCONF="tests.urls", INSTALLED_APPS=WITHOUT_EMULATOR_APP
    ):
        [message] = check_emulator_not_in_production(None)
        assert "INSTALLED_APPS" not in message.msg
    with override_settings(
        DEBUG=False, ROOT_URLCONF=plain, INSTALLED_APPS=WITHOUT_EMULATOR_APP
    ):
        assert emulator_ids() == []


def test_w003_is_printed_unless_silenced() -> None:
    err = StringIO()
    with override_settings(DEBUG=False, SILENCED_SYSTEM_CHECKS=[]):
        call_command("check", stdout=StringIO(), stderr=err)
    assert "payments_ru.W003" in err.getvalue()
    err = StringIO()
    with override_settings(DEBUG=False, SILENCED_SYSTEM_CHECKS=["payments_ru.W003"]):
        call_command("check", stdout=StringIO(), stderr=err)
    assert "payments_ru.W003" not in err.getvalue()


def test_e018_the_emulator_urls_without_the_app(urlconf: Any) -> None:
    nested = urlconf(
        path(
            "dev/",
            include([path("emu/", include("django_payments_ru.emulator.urls", "emu"))]),
        )
    )
    for root in ("tests.urls", nested):
        with override_settings(
            DEBUG=True, ROOT_URLCONF=root, INSTALLED_APPS=WITHOUT_EMULATOR_APP
        ):
            [message] = check_emulator_urls_have_the_app(None)
        assert message.id == "payments_ru.E018"
        assert isinstance(message, Error)
        assert "INSTALLED_APPS" in message.hint
    # With the app, or without its URLs, all is well.
    assert check_emulator_urls_have_the_app(None) == []
    plain = urlconf(path("payments/", include("django_payments_ru.urls")))
    with override_settings(ROOT_URLCONF=plain, INSTALLED_APPS=WITHOUT_EMULATOR_APP):
        assert check_emulator_urls_have_the_app(None) == []


def test_the_emulator_urls_load_without_the_app() -> None:
    # Its models cannot load without the app: the URLs serve nothing instead of
    # failing the URLconf's import, so that E018 can say what is wrong.
    spec = importlib.util.find_spec("django_payments_ru.emulator.urls")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with override_settings(INSTALLED_APPS=WITHOUT_EMULATOR_APP):
        spec.loader.exec_module(module)
    assert module.urlpatterns == []


def test_e018_fails_manage_py_check() -> None:
    with (
        override_settings(INSTALLED_APPS=WITHOUT_EMULATOR_APP),
        pytest.raises(SystemCheckError, match=r"payments_ru\.E018"),
    ):
        call_command("check", stdout=StringIO(), stderr=StringIO())


def test_the_emulator_checks_leave_a_broken_urlconf_to_django(urlconf: Any) -> None:
    with override_settings(DEBUG=False, ROOT_URLCONF="tests.no_such_urls"):
        [message] = check_emulator_not_in_production(None)
        assert "URLconf" not in message.msg
        assert check_emulator_urls_have_the_app(None) == []
