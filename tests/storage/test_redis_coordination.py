"""The Redis coordination pieces against Debian's redis-server: locks with an expiry and a
fence, the change counter, the lease.

Each "replica" here is its own client and its own objects, as two processes would have;
the end-to-end behaviour with real `dockyard serve` replicas is in
tests/workers/test_replicas_redis.py.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from conftest import free_port
from redis_helpers import RedisServer, redis_server  # noqa: F401 - the fixture

from dockyard.storage.dedupe.redis_locations import RedisLocations
from dockyard.storage.errors import LockLost, Unavailable
from dockyard.storage.shared.redis_changes import RedisChanges
from dockyard.storage.shared.redis_client import async_client, sync_client
from dockyard.storage.shared.redis_lease import RedisLease
from dockyard.storage.shared.redis_locks import RedisLocks


def _namespace() -> str:
    return f"dockyard-test:{uuid.uuid4().hex}"


def _replica(url: str, ns: str, expiry: float = 30.0) -> tuple[RedisLocks, RedisChanges]:
    changes = RedisChanges(async_client(url), ns)
    return RedisLocks(async_client(url), ns, changes, expiry), changes


def test_a_lock_held_by_one_replica_makes_another_wait(redis_server: RedisServer) -> None:  # noqa: F811
    ns = _namespace()

    async def scenario() -> list[str]:
        (a, _), (b, _) = _replica(redis_server.url, ns), _replica(redis_server.url, ns)
        order: list[str] = []
        a_holds = asyncio.Event()

        async def first() -> None:
            async with a.hold("repo"):
                a_holds.set()
                order.append("a in")
                await asyncio.sleep(0.3)
                order.append("a out")

        async def second() -> None:
            await a_holds.wait()
            async with b.hold("repo"):
                order.append("b in")
            async with b.hold("other"):  # another key never waits for "repo"
                order.append("b other")

        await asyncio.gather(first(), second())
        return order

    assert asyncio.run(scenario()) == ["a in", "a out", "b in", "b other"]
    assert redis_server.client().keys(f"{ns}:lock:*") == []  # released


def test_the_fence_refuses_a_holder_whose_lock_expired(redis_server: RedisServer) -> None:  # noqa: F811
    """A holder paused past its expiry (here: the expiry cut short in Redis, as time would)
    must not publish once another replica took the lock."""
    ns = _namespace()
    raw = redis_server.client()

    async def scenario() -> None:
        (a, _), (b, _) = _replica(redis_server.url, ns), _replica(redis_server.url, ns)
        async with a.hold("repo") as held_a:
            await held_a.fence()  # still held: passes, and extends the expiry
            assert raw.pttl(a.key("repo")) > 20_000
            raw.pexpire(a.key("repo"), 1)
            await asyncio.sleep(0.01)
            async with b.hold("repo") as held_b:
                with pytest.raises(LockLost):
                    await held_a.fence()
                await held_b.fence()
            # b released; a's holding is still lost: a lock once lost stays lost.
            with pytest.raises(LockLost):
                await held_a.fence()

    asyncio.run(scenario())


def test_a_lock_is_renewed_while_held_and_lapses_without_its_holder(
    redis_server: RedisServer,  # noqa: F811
) -> None:
    ns = _namespace()
    raw = redis_server.client()

    async def scenario() -> None:
        a, _ = _replica(redis_server.url, ns, expiry=0.6)
        async with a.hold("repo") as held:
            await asyncio.sleep(1.5)  # more than twice the expiry: renewed meanwhile
            await held.fence()
        # A holder that stopped renewing (its process died) leaves a key with an expiry.
        raw.set(a.key("repo"), "dead-holder", px=600)
        b, _ = _replica(redis_server.url, ns, expiry=0.6)
        async with asyncio.timeout(5):
            async with b.hold("repo"):
                pass

    asyncio.run(scenario())


def test_a_published_change_is_seen_by_another_replica_and_a_flush_moves_it(
    redis_server: RedisServer,  # noqa: F811
) -> None:
    ns = _namespace()
    raw = redis_server.client()

    async def scenario() -> None:
        _, a = _replica(redis_server.url, ns)
        _, b = _replica(redis_server.url, ns)
        await b.refresh()
        before = b.seen()
        await b.refresh()
        assert b.seen() == before  # nothing changed: equal, so caches are trusted
        a.bump()
        await a.publish()
        await b.refresh()
        after = b.seen()
        assert after != before
        # Concurrent refreshes share fetches and all see the change.
        a.bump()
        await a.publish()
        await asyncio.gather(*(b.refresh() for _ in range(20)))
        assert b.seen() not in (before, after)
        seen = {b.seen()}
        # FLUSHALL resets the count; the value still never returns to an earlier one.
        raw.delete(f"{ns}:changes", f"{ns}:epoch")
        await b.refresh()
        seen.add(b.seen())
        a.bump()
        await a.publish()
        await b.refresh()
        assert b.seen() not in seen | {before, after}

    asyncio.run(scenario())


def test_redis_down_is_unavailable_not_a_crash() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nobody listens here

    async def scenario() -> None:
        locks, changes = _replica(url, _namespace())
        with pytest.raises(Unavailable):
            await changes.refresh()
        changes.bump()
        with pytest.raises(Unavailable):
            await changes.publish()
        with pytest.raises(Unavailable):
            async with locks.hold("repo"):
                pass

    asyncio.run(scenario())


def test_the_lease_is_held_by_one_replica_and_taken_over(redis_server: RedisServer) -> None:  # noqa: F811
    ns = _namespace()
    raw = redis_server.client()

    async def scenario() -> None:
        def lease() -> RedisLease:
            url = redis_server.url
            return RedisLease(async_client(url), sync_client(url), ns, expiry=0.9, poll=0.05)

        a, b = lease(), lease()
        ran: list[str] = []

        async def job(name: str) -> None:
            ran.append(name)
            await asyncio.Event().wait()  # a periodic job: runs until cancelled

        leases = {"a": a, "b": b}

        def holders() -> list[str]:
            return [name for name, lease in leases.items() if lease.held]

        tasks = {"a": asyncio.create_task(a.run(lambda: job("a")))}
        await asyncio.sleep(0.3)
        tasks["b"] = asyncio.create_task(b.run(lambda: job("b")))
        await asyncio.sleep(0.5)
        assert (holders(), ran) == (["a"], ["a"])
        # A FLUSHALL empties the key: one of them holds it again (whoever asks first), and
        # the job runs only there.
        raw.delete(a.key)
        await asyncio.sleep(0.6)
        assert len(holders()) == 1 and ran[-1] == holders()[0]
        # Taken over by someone else (as after an expiry while the holder was paused): the
        # holder stops its job; once that key lapses, one of them runs it again.
        before = holders()[0]
        raw.set(a.key, "someone-else", px=700)
        await asyncio.sleep(0.4)  # more than one renewal period (0.3 s)
        assert holders() == [] and len(ran) == 2
        assert not tasks[before].done()  # waits to hold it again, its job cancelled
        await asyncio.sleep(0.7)
        assert len(holders()) == 1 and len(ran) == 3 and ran[-1] == holders()[0]
        # The holder shuts down: it hands the lease over at once, and the other runs it.
        gone = holders()[0]
        other = "b" if gone == "a" else "a"
        tasks[gone].cancel()
        leases[gone].release()
        await asyncio.sleep(0.3)
        assert holders() == [other] and ran[-1] == other
        tasks[other].cancel()
        leases[other].release()
        assert raw.get(a.key) is None

    asyncio.run(scenario())


def test_the_dedupe_map_reports_redis_down_as_unavailable(tmp_path: Path) -> None:
    m = RedisLocations(tmp_path, sync_client(f"redis://127.0.0.1:{free_port()}/0"), _namespace())
    with pytest.raises(Unavailable):
        m.has_digest("sha256:" + "a" * 64)
