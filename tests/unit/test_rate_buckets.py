"""``http.ratelimit``'s token buckets and the client key each request counts under."""

from __future__ import annotations

import pytest

from dockyard.api.ratelimit import Buckets, client_key


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("10.0.0.1", "10.0.0.1"),
        ("127.0.0.1", "127.0.0.1"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),  # same /64
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("2001:DB8:1:2::1", "2001:db8:1:2::/64"),  # one client however it is spelt
        ("::1", "::/64"),
        ("fe80::1%eth0", "fe80::/64"),  # the zone id is dropped
        ("::ffff:10.0.0.1", "10.0.0.1"),  # a dual-stack listener's view of IPv4
        ("", ""),
        ("/run/dockyard.sock", "/run/dockyard.sock"),  # not an IP address: itself
    ],
)
def test_client_keys(address: str, key: str) -> None:
    assert client_key(address) == key


@pytest.mark.parametrize(
    ("rate", "burst", "wait_after"),
    [
        (1.0, 1, 1.0),
        (2.0, 2, 0.5),
        (10.0, 10, 0.1),
        (0.5, 1, 2.0),  # under one a second: a bucket still holds one request
    ],
)
def test_a_full_bucket_bursts_one_seconds_worth(rate: float, burst: int, wait_after: float) -> None:
    buckets = Buckets(rate)
    assert [buckets.take("c", 0.0) for _ in range(burst)] == [0.0] * burst
    assert buckets.take("c", 0.0) == pytest.approx(wait_after)


def test_a_refused_request_takes_nothing() -> None:
    buckets = Buckets(rate=1.0)
    assert buckets.take("c", 0.0) == 0
    assert buckets.take("c", 0.0) == pytest.approx(1.0)
    assert buckets.take("c", 0.5) == pytest.approx(0.5)  # not 1.5: the refusal was free
    assert buckets.take("c", 1.0) == 0


def test_buckets_refill_continuously_up_to_their_capacity() -> None:
    buckets = Buckets(rate=4.0)
    for _ in range(4):
        buckets.take("c", 0.0)
    assert buckets.take("c", 0.125) == pytest.approx(0.125)  # half a token back
    assert buckets.take("c", 0.25) == 0  # one token back
    # A long idle refills to one second's worth, never more.
    assert [buckets.take("c", 100.0) for _ in range(4)] == [0.0] * 4
    assert buckets.take("c", 100.0) > 0


def test_clients_are_counted_apart() -> None:
    buckets = Buckets(rate=1.0)
    assert buckets.take("a", 0.0) == 0
    assert buckets.take("a", 0.0) > 0
    assert buckets.take("b", 0.0) == 0
    assert buckets.clients == 2


def test_the_least_recently_seen_client_is_forgotten_first() -> None:
    buckets = Buckets(rate=1.0, max_clients=2)
    buckets.take("a", 0.0)
    buckets.take("b", 0.0)
    assert buckets.take("a", 0.0) > 0  # refused, and now the most recently seen
    buckets.take("c", 0.0)  # over the cap: b goes
    assert buckets.clients == 2
    assert buckets.take("a", 0.0) > 0  # a is remembered, still empty
    assert buckets.take("b", 0.0) == 0  # b comes back with a full bucket


def test_refilled_buckets_are_pruned_as_requests_go_on() -> None:
    """A flood from many addresses leaves nothing behind once their buckets are full
    again: a full bucket holds nothing a new one would not."""
    buckets = Buckets(rate=1000.0)
    for n in range(5000):
        buckets.take(f"10.0.{n >> 8}.{n & 255}", 0.0)
    assert buckets.clients == 5000
    for _ in range(5000):
        buckets.take("steady", 10.0)
    assert buckets.clients == 1
