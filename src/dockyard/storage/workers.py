"""The worker process that storage's heavy walks run in, at the lowest CPU priority.

GC's reachability walks and scrub's hashing parse JSON and read whole stores: in the
server's own process that would hold the GIL from every request. They run here instead,
in one process started on first use at ``SCHED_IDLE``, so they take spare CPU only, and a
walk queued behind scrub waits for one file at most.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from functools import partial
from typing import Any, TypeVar

T = TypeVar("T")

_executor: Executor | None = None


def _lowest_priority() -> None:
    """Walks run on spare CPU only (SCHED_IDLE): on a busy machine, serving comes first."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        os.nice(19)


def walker() -> Executor:
    """The one worker process, started on first use, at lowest priority."""
    global _executor
    if _executor is None:
        context = multiprocessing.get_context("forkserver")
        _executor = ProcessPoolExecutor(
            max_workers=1, mp_context=context, initializer=_lowest_priority
        )
    return _executor


def stop_walker() -> None:
    """Stop the worker process (shutdown); queued work is cancelled."""
    global _executor
    if _executor is not None:
        _executor.shutdown(wait=False, cancel_futures=True)
        _executor = None


async def in_walker(fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(*args)`` in the worker process; both must pickle."""
    return await asyncio.get_running_loop().run_in_executor(walker(), partial(fn, *args))
