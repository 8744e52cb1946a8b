"""The worker processes that storage's heavy walks run in, at the lowest CPU priority.

GC's reachability walks, scrub's hashing and the usage figures' stat walks parse JSON,
read or stat whole repositories: in the server's own process that pure-Python work would
hold the GIL from every request, even from a thread (a usage walk of an 80,000-file
repository in a thread added 100 ms stalls to requests for other repositories). They run
here instead, in processes started on first use at ``SCHED_IDLE``, so they take spare CPU
only; they end with the server process that started them, even one killed with -9.
There are two, so one long step (GC unlinking a large repository's orphans) never holds
up a short one (the usage walk of a repository just pushed); a walk queued behind scrub
waits for one file at most.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import select
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

#: How many walks run at once: one long step never queues a short one behind it.
WORKERS = 2

_executor: Executor | None = None
#: Pools winding down, each in a thread of its own (see ``wait_walker_stopped``).
_stopping: list[threading.Thread] = []


def _lowest_priority() -> None:
    """Walks run on spare CPU only (SCHED_IDLE): on a busy machine, serving comes first."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        os.nice(19)


#: How often a walker process without a pidfd looks whether its server process lives.
_WATCH_EVERY = 1.0


def _end_with(server_pid: int) -> None:
    """End this walker process when the server process that started it ends, however.

    The pool stops its processes by a message from that process; one killed with -9
    (a crashed worker, which the supervisor replaces) sends none. Each walker process
    then waited for work forever (it holds its own queue's write end, so it never reads
    an end of file), and kept the forkserver alive with it (the forkserver ends when the
    last holder of its pipe does): two orphaned processes per crash. A pidfd names the
    server process itself, so a reused PID cannot fool the watch.
    """

    def watch() -> None:
        try:
            fd = os.pidfd_open(server_pid)
        except ProcessLookupError:
            os._exit(0)  # gone already
        except (AttributeError, OSError):  # no pidfd here (kernel before 5.3): poll
            while _alive(server_pid):
                time.sleep(_WATCH_EVERY)
            os._exit(0)
        select.select([fd], [], [])  # readable once the process has ended
        os._exit(0)  # a cut walk is safe: see stop_walker

    threading.Thread(target=watch, name="server-watch", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # there, though not ours to signal
    return True


def _start_walker_process(server_pid: int) -> None:
    """Each walker process starts at the lowest priority, watching its server process."""
    _lowest_priority()
    _end_with(server_pid)


def walker() -> Executor:
    """The worker processes, started on first use, at lowest priority."""
    global _executor
    if _executor is None:
        context = multiprocessing.get_context("forkserver")
        _executor = ProcessPoolExecutor(
            max_workers=WORKERS,
            mp_context=context,
            initializer=_start_walker_process,
            initargs=(os.getpid(),),
        )
    return _executor


def stop_walker(*, cut_short: bool = False) -> None:
    """Stop the worker processes (shutdown); queued work is cancelled.

    The caller does not wait: the pool winds down in a thread of its own, which joins the
    processes and so releases the pool's semaphores.

    ``cut_short``: kill the processes too, so a walk under way (GC unlinking 80,000 files
    takes minutes) ends now rather than outliving the server, which would stop it holding
    the locks that walk relies on. Every step is safe to cut, as a kill -9 of the server
    is: unlinks and index writes are atomic one by one, and what the databases still say
    of removed files is repaired on use and pruned by the next periodic pass.
    """
    global _executor
    executor, _executor = _executor, None
    if executor is not None and cut_short:
        # ProcessPoolExecutor has no public kill before Python 3.14 (terminate_workers).
        processes = getattr(executor, "_processes", None) or {}
        for process in list(processes.values()):
            process.kill()
    if executor is not None:
        stopper = threading.Thread(
            target=executor.shutdown,
            kwargs={"wait": True, "cancel_futures": True},
            name="walker-stop",
            daemon=True,
        )
        stopper.start()
        _stopping.append(stopper)


def wait_walker_stopped(timeout: float) -> None:
    """Give stopping pools up to ``timeout`` seconds to end.

    A forked server worker leaves through ``os._exit``, which skips the finalizers that
    release a pool's named semaphores; without this wait, multiprocessing's resource
    tracker prints a "leaked semaphore objects" warning into the server's log.
    """
    deadline = time.monotonic() + timeout
    for stopper in _stopping:
        stopper.join(max(0.0, deadline - time.monotonic()))


async def in_walker(fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(*args)`` in a worker process; both must pickle.

    The hand-over happens in a thread: a submit may start a process (and, the first time,
    the forkserver), which takes long enough to stall every request if done on the loop.
    """
    future = await asyncio.to_thread(walker().submit, fn, *args)
    return await asyncio.wrap_future(future)
