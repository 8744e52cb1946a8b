"""``http.auth.failLimit``: the failed-login table, a token bucket per client address."""

from __future__ import annotations

import pytest

from dockyard.auth.failures import FailedLogins

IP = "192.0.2.7"


def test_a_full_bucket_admits_limit_checks_then_refuses() -> None:
    table = FailedLogins(limit=3)
    assert [table.take(IP, 0.0) for _ in range(4)] == [True, True, True, False]
    assert table.wait(IP, 0.0) == 20  # a token every 60 / 3 seconds


@pytest.mark.parametrize(
    ("limit", "elapsed", "wait"),
    [
        (3, 0.0, 20),
        (3, 10.0, 10),
        (3, 19.8, 1),  # 0.2 s to go: whole seconds, at least one
        (3, 20.0, 0),
        (30, 0.0, 2),
        (1, 30.0, 30),
        (1, 59.5, 1),
        (1, 60.0, 0),
    ],
)
def test_wait_is_the_whole_seconds_until_the_next_token(
    limit: int, elapsed: float, wait: int
) -> None:
    table = FailedLogins(limit=limit)
    while table.take(IP, 0.0):
        pass
    assert table.wait(IP, elapsed) == wait


def test_a_successful_login_costs_nothing() -> None:
    table = FailedLogins(limit=2)
    for _ in range(10):
        assert table.take(IP, 0.0)
        table.refund(IP, 0.0)
    assert table.wait(IP, 0.0) == 0
    assert [table.take(IP, 0.0) for _ in range(3)] == [True, True, False]


def test_checks_still_running_count_against_the_limit() -> None:
    """Tokens go when a check starts: a flood of concurrent guesses cannot queue more
    than ``limit`` bcrypt checks before the first answer."""
    table = FailedLogins(limit=5)
    started = sum(table.take(IP, 0.0) for _ in range(100))
    assert started == 5


def test_failures_without_a_check_count_but_never_below_empty() -> None:
    table = FailedLogins(limit=3)
    for _ in range(3):
        table.failed(IP, 0.0)
    assert table.wait(IP, 0.0) == 20
    for _ in range(50):
        table.failed(IP, 0.0)
    assert table.wait(IP, 20.0) == 0  # one refill away, not fifty
    assert table.take(IP, 20.0)


def test_refills_stop_at_the_limit() -> None:
    table = FailedLogins(limit=2)
    table.failed(IP, 0.0)
    assert [table.take(IP, 3600.0) for _ in range(3)] == [True, True, False]


def test_unknown_addresses_are_not_stored_by_asking_or_refunding() -> None:
    table = FailedLogins(limit=3)
    assert table.wait(IP, 0.0) == 0
    table.refund(IP, 0.0)
    assert len(table) == 0


def test_addresses_are_counted_apart() -> None:
    table = FailedLogins(limit=1)
    assert table.take("192.0.2.1", 0.0)
    assert not table.take("192.0.2.1", 0.0)
    assert table.take("192.0.2.2", 0.0)


def test_the_least_recently_seen_address_is_forgotten_past_the_cap() -> None:
    table = FailedLogins(limit=1, most=2)
    table.failed("a", 0.0)
    table.failed("b", 0.0)
    table.failed("a", 1.0)  # a is now the most recent
    table.failed("c", 2.0)  # b goes
    assert len(table) == 2
    assert table.wait("a", 2.0) > 0
    assert table.wait("b", 2.0) == 0  # forgotten: a full bucket


def test_a_zero_limit_turns_the_table_off() -> None:
    table = FailedLogins(limit=0)
    assert not table.enabled
    for _ in range(100):
        table.failed(IP, 0.0)
        assert table.take(IP, 0.0)
    assert table.wait(IP, 0.0) == 0
    assert len(table) == 0
