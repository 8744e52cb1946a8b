"""Worker processes: one listener, N forked workers, and a supervisor that keeps them up.

Python runs one thread of Python at a time, so one process uses one core. ``serve``
with ``http.workers`` (or ``--workers``) above 1 runs this pre-fork model instead:

- the listener is opened first by the parent (``app/listen.py``), so a busy port stays the
  first, one-line error, and every worker inherits the same listening socket: the kernel
  hands each new connection to whichever worker accepts it first;
- workers are forked while the parent has no thread and no event loop (forking either
  is unsafe); each worker then builds its own application, store and loop (``serve``);
- the first worker must come up before the others start, so a start-up failure (a
  damaged database) is printed once and its exit status is the command's;
- a worker that dies is forked again while the others keep serving; workers that keep
  dying before they are ready make the supervisor stop everything and exit 1;
- SIGHUP is forwarded to every worker (each reloads its config); SIGTERM and SIGINT are
  forwarded as SIGTERM (each drains), and the supervisor exits once all have;
- the parent creates the Prometheus multiprocess folder (a private temp folder) before
  the first fork and removes it at the end, so a scrape on any worker sums them all.

With one worker none of this runs: ``serve`` is the single process it always was.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import select
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from dockyard.app.logs import WORKER_ENV, setup_logging
from dockyard.app.preflight import EXIT_START, StartupError
from dockyard.app.reload import Overrides
from dockyard.config import Config, ConfigError, load_config
from dockyard.ext.metrics import MULTIPROC_ENV
from dockyard.storage.changes import set_writer
from dockyard.storage.workers import wait_walker_stopped
from dockyard.util.memory_fs import memory_folder

log = logging.getLogger("dockyard.workers")

#: Signals the supervisor takes synchronously (blocked, then waited for).
_SIGNALS = (signal.SIGCHLD, signal.SIGHUP, signal.SIGTERM, signal.SIGINT)
#: Worker deaths before readiness in a row after which the supervisor gives up.
MAX_START_FAILURES = 5
#: Beyond the drain's grace period: how long the supervisor waits before SIGKILL.
STOP_MARGIN = 10.0
#: Exit status of a worker that died of an exception nobody expected.
EXIT_CRASH = 70
#: How long a stopping worker gives storage's walker processes to end (a GC walk still
#: running is left to die with the pipe to its parent).
WALKER_STOP_WAIT = 5.0
_PR_SET_PDEATHSIG = 1


def cores() -> int:
    """CPUs this process may run on (its affinity, which a container's cpuset limits)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def worker_count(config: Config) -> int:
    """``http.workers``, else one per CPU."""
    return config.http.workers or cores()


@dataclass
class _Worker:
    slot: int
    pid: int
    ready_fd: int | None
    started: float
    ready: bool = False


def _die_with_parent() -> None:
    """A worker whose supervisor was killed (-9) must not keep serving on its own."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _worker_main(
    slot: int,
    config: Config,
    path: Path | None,
    overrides: Overrides | None,
    sockets: list[socket.socket],
    ready_fd: int,
) -> int:
    """Run one worker in the forked child; its exit status."""
    from prometheus_client import values

    from dockyard.app.server import serve

    os.environ[WORKER_ENV] = str(slot)
    set_writer(slot)  # its own slot of each root's change counter
    # prometheus_client chose its value class when it was imported, before the folder
    # was named: choose again, before this worker creates its first metric.
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]

    def ready() -> None:
        with contextlib.suppress(OSError):
            os.write(ready_fd, b"1")
            os.close(ready_fd)

    try:
        serve(config, path, overrides, sockets, ready=ready)
        # The child leaves through os._exit: let storage's walker pool release its
        # semaphores first, else multiprocessing warns of leaks into the log.
        wait_walker_stopped(WALKER_STOP_WAIT)
        return 0
    except StartupError as exc:
        print(f"dockyard: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        return 0
    except BaseException:
        traceback.print_exc()
        return EXIT_CRASH


class Supervisor:
    """Forks, watches and stops the workers; see the module's docstring."""

    def __init__(
        self,
        config: Config,
        path: Path | None,
        overrides: Overrides | None,
        sockets: list[socket.socket],
        count: int,
    ) -> None:
        self.config = config
        self.path = path
        self.overrides = overrides
        self.sockets = sockets
        self.count = count
        self.workers: dict[int, _Worker] = {}
        self.stopping = False
        self.stop_deadline = 0.0
        self.start_failures = 0
        self.failed = False

    # -- forking ----------------------------------------------------------------------------

    def _fresh_config(self) -> Config:
        """The config a restarted worker gets: the file as it is now, if it still loads."""
        if self.path is None:
            return self.config
        try:
            config, _ = load_config(self.path)
        except ConfigError:
            return self.config
        self.config = self.overrides(config) if self.overrides else config
        return self.config

    def _fork(self, slot: int, config: Config) -> _Worker:
        if threading.active_count() > 1:  # never expected: forking a threaded parent deadlocks
            log.warning("forking with %d threads running", threading.active_count())
        read_fd, write_fd = os.pipe()
        _flush_logs()  # else the child would write the parent's buffered lines again
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the worker
            status = EXIT_CRASH
            try:
                os.close(read_fd)
                for sig in _SIGNALS:
                    signal.signal(sig, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_SETMASK, set())
                _die_with_parent()
                status = _worker_main(
                    slot, config, self.path, self.overrides, self.sockets, write_fd
                )
            finally:
                with contextlib.suppress(Exception):
                    logging.shutdown()
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(status)
        os.close(write_fd)
        worker = _Worker(slot, pid, read_fd, time.monotonic())
        self.workers[pid] = worker
        return worker

    # -- watching ---------------------------------------------------------------------------

    def _poll_ready(self, timeout: float) -> None:
        """Mark workers whose readiness byte arrived (waits up to ``timeout``)."""
        waiting = {w.ready_fd: w for w in self.workers.values() if w.ready_fd is not None}
        if not waiting:
            return
        with contextlib.suppress(InterruptedError):
            readable, _, _ = select.select(list(waiting), [], [], timeout)
            for fd in readable:
                worker = waiting[fd]
                data = b""
                with contextlib.suppress(OSError):
                    data = os.read(fd, 1)
                os.close(fd)
                worker.ready_fd = None
                if data:
                    worker.ready = True
                    self.start_failures = 0

    def _reap(self) -> list[tuple[_Worker, int]]:
        """Workers that exited, with their wait status."""
        gone: list[tuple[_Worker, int]] = []
        while self.workers:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            if worker.ready_fd is not None:
                os.close(worker.ready_fd)
                worker.ready_fd = None
            _forget_metrics(pid)
            gone.append((worker, status))
        return gone

    def _signal_all(self, sig: int) -> None:
        for pid in list(self.workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def _stop(self, why: str) -> None:
        if not self.stopping:
            log.info("dockyard stopping (%s): draining %d workers", why, len(self.workers))
            self.stopping = True
            grace = self.config.http.shutdown_timeout
            self.stop_deadline = time.monotonic() + grace + STOP_MARGIN
            # No worker will be forked again: let go of the listener, so that once every
            # worker has closed its copy the port refuses new connections at once.
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.close()
            self._signal_all(signal.SIGTERM)

    def _take_signal(self, timeout: float) -> None:
        info = signal.sigtimedwait(_SIGNALS, timeout)
        if info is None or info.si_signo == signal.SIGCHLD:
            return
        if info.si_signo == signal.SIGHUP:
            log.info("SIGHUP: forwarding to %d workers", len(self.workers))
            self._signal_all(signal.SIGHUP)
        else:
            self._stop(signal.Signals(info.si_signo).name)

    def _first(self) -> int | None:
        """Start worker 0 and wait until it serves; its exit status if it died instead."""
        worker = self._fork(0, self.config)
        while not worker.ready:
            self._poll_ready(0.05)
            for _, status in self._reap():
                return os.waitstatus_to_exitcode(status) or EXIT_START
            with contextlib.suppress(InterruptedError):
                if signal.sigtimedwait((signal.SIGTERM, signal.SIGINT), 0) is not None:
                    self._stop("signal during start-up")
                    return None
        return None

    def run(self) -> int:
        """Serve until told to stop; the command's exit status."""
        failed = self._first()
        if failed is not None:
            return failed
        if not self.stopping:
            for slot in range(1, self.count):
                self._fork(slot, self.config)
            log.info("dockyard running %d workers", self.count)
        while self.workers:
            _flush_logs()
            self._take_signal(0.2 if any(not w.ready for w in self.workers.values()) else 1.0)
            self._poll_ready(0)
            for worker, status in self._reap():
                if self.stopping:
                    continue
                code = os.waitstatus_to_exitcode(status)
                how = f"signal {-code}" if code < 0 else f"status {code}"
                if not worker.ready:
                    self.start_failures += 1
                if self.start_failures >= MAX_START_FAILURES:
                    log.error(
                        "workers keep dying before they serve (%d in a row); stopping",
                        self.start_failures,
                    )
                    self._stop("workers failing")
                    self.failed = True
                    continue
                log.warning(
                    "worker %d (pid %d) ended with %s; starting it again",
                    worker.slot,
                    worker.pid,
                    how,
                )
                time.sleep(min(0.1 * 2**self.start_failures, 2.0))
                self._fork(worker.slot, self._fresh_config())
            if self.stopping and time.monotonic() > self.stop_deadline:
                log.warning("workers still running after the grace period: killing them")
                self._signal_all(signal.SIGKILL)
                self.stop_deadline = float("inf")
        return EXIT_START if self.failed else 0


def _flush_logs() -> None:
    """The log handler batches lines and flushes on the server's timer; the supervisor
    has no loop, so it flushes its own lines here."""
    for handler in logging.getLogger().handlers:
        handler.flush()


def _forget_metrics(pid: int) -> None:
    """Drop a dead worker's live gauges from the multiprocess folder."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        with contextlib.suppress(OSError):
            multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def supervise(
    config: Config,
    path: Path | None,
    overrides: Overrides | None,
    sockets: list[socket.socket],
    count: int,
) -> int:
    """Run ``count`` workers on ``sockets`` until SIGTERM; the command's exit status."""
    try:
        setup_logging(config)
    except OSError as exc:
        why = exc.strerror or exc
        raise StartupError(f"log.output: cannot open {config.log.output}: {why}") from exc
    # In memory when possible: every request bumps counters in these mapped files, and the
    # values die with the server (see util/memory_fs.py).
    metrics_dir = tempfile.mkdtemp(prefix="dockyard-metrics-", dir=memory_folder())
    os.environ[MULTIPROC_ENV] = metrics_dir
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        return Supervisor(config, path, overrides, sockets, count).run()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        shutil.rmtree(metrics_dir, ignore_errors=True)
        os.environ.pop(MULTIPROC_ENV, None)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()
        logging.shutdown()
