"""The emulators' record of the requests they received (``CallLog``)."""

from __future__ import annotations

from dataclasses import dataclass

from django_payments_ru.emulator.base import CallLog


@dataclass(frozen=True)
class Call:
    endpoint: str
    n: int


def test_calls_are_kept_in_order_and_found_by_name() -> None:
    log = CallLog()
    log.add(Call("create", 1))
    log.add(Call("get", 2))
    log.add(Call("create", 3))
    assert [c.n for c in log.named()] == [1, 2, 3]
    assert [c.n for c in log.named("create")] == [1, 3]
    log.clear()
    assert log.named() == []


def test_the_name_is_read_from_the_key_attribute() -> None:
    @dataclass(frozen=True)
    class Function:
        function: str

    log = CallLog(key="function")
    log.add(Function("get-balances"))
    assert log.named("get-balances") == [Function("get-balances")]


def test_a_long_demo_drops_the_oldest_half() -> None:
    log = CallLog()
    log.limit = 10
    for n in range(11):
        log.add(Call("get", n))
    assert [c.n for c in log.named()] == [5, 6, 7, 8, 9, 10]
